//! Blob reads: HEAD/GET with ranges, repository scoping, DELETE; the base endpoint and common headers.

use reqwest::{Method, StatusCode};

use crate::common::{TestServer, bytes, error_code, execute_on_server_db, header, sha256};

#[tokio::test]
async fn base_endpoint_answers_with_the_api_version_header() {
    let server = TestServer::start().await;
    for path in ["/v2/", "/v2"] {
        let resp = server.req(Method::GET, path).await.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "docker-distribution-api-version"), "registry/2.0");
    }
    let resp = server.req(Method::GET, "/nothing/here").await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&resp, "docker-distribution-api-version"), "registry/2.0");
}

#[tokio::test]
async fn head_and_get_serve_the_blob_with_its_digest_and_length() {
    let server = TestServer::start().await;
    let data = bytes(100_000, 1);
    let digest = server.push_blob("lib/app", &data).await;
    let path = format!("/v2/lib/app/blobs/{digest}");

    let head = server.req(Method::HEAD, &path).await.send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-length"), "100000");
    assert_eq!(header(&head, "docker-content-digest"), digest);
    assert_eq!(header(&head, "accept-ranges"), "bytes");

    let get = server.req(Method::GET, &path).await.send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(header(&get, "docker-content-digest"), digest);
    assert_eq!(get.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn ranges_give_206_and_unsatisfiable_ranges_give_416() {
    let server = TestServer::start().await;
    let data = bytes(1000, 2);
    let digest = server.push_blob("r", &data).await;
    let path = format!("/v2/r/blobs/{digest}");
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-2000", 500, 999),
    ] {
        let resp = server
            .req(Method::GET, &path)
            .await
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&resp, "content-range"), format!("bytes {start}-{end}/1000"));
        assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[start..=end], "{range}");
    }
    let resp = server
        .req(Method::GET, &path)
        .await
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "content-range"), "bytes */1000");
}

#[tokio::test]
async fn a_blob_is_readable_only_through_repositories_it_was_pushed_or_mounted_to() {
    let server = TestServer::start().await;
    let digest = server.push_blob("team-a/app", b"secret layer").await;
    server.push_blob("team-b/app", b"something else").await;
    let other = server
        .req(Method::GET, &format!("/v2/team-b/app/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(other).await, "BLOB_UNKNOWN");
    let unknown_repo = server
        .req(Method::HEAD, &format!("/v2/nobody/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_repo.status(), StatusCode::NOT_FOUND);

    let mount = server
        .req(
            Method::POST,
            &format!("/v2/team-b/app/blobs/uploads/?mount={digest}&from=team-a/app"),
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(mount.status(), StatusCode::CREATED);
    assert_eq!(header(&mount, "location"), format!("/v2/team-b/app/blobs/{digest}"));
    assert_eq!(header(&mount, "docker-content-digest"), digest);
    let now = server
        .req(Method::GET, &format!("/v2/team-b/app/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(now.bytes().await.unwrap().as_ref(), b"secret layer");
}

#[tokio::test]
async fn a_mount_of_an_unknown_blob_falls_back_to_an_upload_session() {
    let server = TestServer::start().await;
    let missing = sha256(b"never pushed");
    for query in [
        format!("mount={missing}&from=elsewhere"),
        format!("mount={missing}"),
        format!("mount={missing}&from=NOT..valid"),
    ] {
        let resp = server
            .req(Method::POST, &format!("/v2/target/blobs/uploads/?{query}"))
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{query}");
        assert!(header(&resp, "location").starts_with("/v2/target/blobs/uploads/"));
    }
}

#[tokio::test]
async fn delete_unlinks_the_blob_from_one_repository_only() {
    let server = TestServer::start().await;
    let digest = server.push_blob("one", b"shared").await;
    server.push_blob("two", b"shared").await;
    let resp = server
        .req(Method::DELETE, &format!("/v2/one/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let gone = server
        .req(Method::GET, &format!("/v2/one/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(gone).await, "BLOB_UNKNOWN");
    let again = server
        .req(Method::DELETE, &format!("/v2/one/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let kept = server
        .req(Method::GET, &format!("/v2/two/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(kept.bytes().await.unwrap().as_ref(), b"shared");
}

/// A blob a manifest references stays linked: deleting it is refused (409, saying why) until the manifest
/// goes, so no manifest is ever left naming a blob its repository cannot serve.
#[tokio::test]
async fn a_blob_a_manifest_references_is_not_unlinked() {
    let server = TestServer::start().await;
    let manifest = server.push_image("held", "v1", b"held layer").await;
    let layer = format!("/v2/held/blobs/{}", sha256(b"held layer"));
    let refused = server.req(Method::DELETE, &layer).await.send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("referenced by a manifest") && text.contains("delete the manifest first"),
        "{text}"
    );
    let still = server.req(Method::GET, &layer).await.send().await.unwrap();
    assert_eq!(still.bytes().await.unwrap().as_ref(), b"held layer");
    let path = format!("/v2/held/manifests/{manifest}");
    let deleted = server.req(Method::DELETE, &path).await.send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let unlinked = server.req(Method::DELETE, &layer).await.send().await.unwrap();
    assert_eq!(unlinked.status(), StatusCode::ACCEPTED);
}

/// A read touches the blob's link (what a collection's grace period counts from), at most once an hour:
/// a HEAD then a manifest push naming the blob find it still there.
#[tokio::test]
async fn reading_a_blob_touches_its_link_once_an_hour() {
    let server = TestServer::start().await;
    let digest = server.push_blob("touched", b"touch me").await;
    let head = || async {
        let resp = server
            .req(Method::HEAD, &format!("/v2/touched/blobs/{digest}"))
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    };
    let set = "UPDATE repository_blobs SET touched_at = 1000 WHERE digest = $1";
    assert_eq!(execute_on_server_db(&server, set, &digest).await.unwrap(), 1);
    head().await;
    let recent = "UPDATE repository_blobs SET touched_at = 2000 WHERE digest = $1 AND touched_at > 1000";
    assert_eq!(
        execute_on_server_db(&server, recent, &digest).await.unwrap(),
        1,
        "the HEAD touched the link"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = format!(
        "UPDATE repository_blobs SET touched_at = {} WHERE digest = $1",
        now - 600
    );
    assert_eq!(execute_on_server_db(&server, &fresh, &digest).await.unwrap(), 1);
    head().await;
    let kept = format!(
        "UPDATE repository_blobs SET touched_at = 0 WHERE digest = $1 AND touched_at = {}",
        now - 600
    );
    assert_eq!(
        execute_on_server_db(&server, &kept, &digest).await.unwrap(),
        1,
        "touched 10 minutes ago: not again"
    );
}

#[tokio::test]
async fn sha512_blobs_are_verified_and_served() {
    use sha2::{Digest as _, Sha512};
    let server = TestServer::start().await;
    let data = bytes(5000, 3);
    let digest = format!("sha512:{}", hex::encode(Sha512::digest(&data)));
    let resp = server
        .req(Method::POST, &format!("/v2/s/blobs/uploads/?digest={digest}"))
        .await
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let got = server
        .req(Method::GET, &format!("/v2/s/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(header(&got, "docker-content-digest"), digest);
    assert_eq!(got.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn unsupported_methods_are_405_unsupported() {
    let server = TestServer::start().await;
    let digest = sha256(b"x");
    let resp = server
        .req(Method::PUT, &format!("/v2/x/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(resp).await, "UNSUPPORTED");
}
