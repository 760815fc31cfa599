//! Manifests: every supported media type, references that must exist, Accept, HEAD, DELETE, referrers.

use reqwest::{Method, StatusCode};

use crate::common::{OCI_INDEX, OCI_MANIFEST, TestServer, bytes, error_code, header, sha256};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn docker_manifest(config: &str, config_len: usize, layer: &str, layer_len: usize) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{config_len},"digest":"{config}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{layer_len},"digest":"{layer}"}}]}}"#
    )
}

fn index(media_type: &str, children: &[(&str, &str, usize)]) -> String {
    let manifests: Vec<String> = children
        .iter()
        .enumerate()
        .map(|(i, (mt, d, size))| {
            format!(r#"{{"mediaType":"{mt}","digest":"{d}","size":{size},"platform":{{"architecture":"arch{i}","os":"linux"}}}}"#)
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]}}"#,
        manifests.join(",")
    )
}

#[tokio::test]
async fn an_oci_image_is_stored_byte_for_byte_and_served_by_tag_and_digest() {
    let server = TestServer::start().await;
    let body = server.image_manifest("apps/web", &bytes(2048, 1), "").await;
    let body = format!("{body}\n  ");
    let digest = sha256(body.as_bytes());
    let resp = server.put_manifest("apps/web", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "location"), format!("/v2/apps/web/manifests/{digest}"));
    assert_eq!(header(&resp, "docker-content-digest"), digest);

    for reference in ["v1", digest.as_str()] {
        let path = format!("/v2/apps/web/manifests/{reference}");
        let get = server
            .req(Method::GET, &path)
            .await
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), StatusCode::OK);
        assert_eq!(header(&get, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&get, "docker-content-digest"), digest);
        assert_eq!(
            get.bytes().await.unwrap().as_ref(),
            body.as_bytes(),
            "bytes exactly as pushed"
        );
        let head = server.req(Method::HEAD, &path).await.send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(header(&head, "content-length"), body.len().to_string());
        assert_eq!(header(&head, "docker-content-digest"), digest);
    }
}

#[tokio::test]
async fn docker_schema2_manifests_and_manifest_lists_are_accepted() {
    let server = TestServer::start().await;
    let mut children = Vec::new();
    for arch in 0..2u8 {
        let config = format!(r#"{{"architecture":"a{arch}"}}"#);
        let config_digest = server.push_blob("multi", config.as_bytes()).await;
        let layer = bytes(100, arch);
        let layer_digest = server.push_blob("multi", &layer).await;
        let body = docker_manifest(&config_digest, config.len(), &layer_digest, layer.len());
        let digest = sha256(body.as_bytes());
        let resp = server.put_manifest("multi", &digest, DOCKER_MANIFEST, &body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        children.push((digest, body.len()));
    }
    let list = index(
        DOCKER_LIST,
        &children
            .iter()
            .map(|(d, s)| (DOCKER_MANIFEST, d.as_str(), *s))
            .collect::<Vec<_>>(),
    );
    let resp = server.put_manifest("multi", "latest", DOCKER_LIST, &list).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let get = server
        .req(Method::GET, "/v2/multi/manifests/latest")
        .await
        .header("accept", format!("{DOCKER_MANIFEST}, {DOCKER_LIST}"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&get, "content-type"), DOCKER_LIST);
    assert_eq!(get.text().await.unwrap(), list);
}

#[tokio::test]
async fn an_oci_index_needs_its_children_in_the_repository() {
    let server = TestServer::start().await;
    let child_body = server.image_manifest("idx", b"layer", "").await;
    let child = sha256(child_body.as_bytes());
    let idx = index(OCI_INDEX, &[(OCI_MANIFEST, &child, child_body.len())]);
    let resp = server.put_manifest("idx", "all", OCI_INDEX, &idx).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(resp).await, "MANIFEST_UNKNOWN");
    assert_eq!(
        server
            .put_manifest("idx", &child, OCI_MANIFEST, &child_body)
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        server.put_manifest("idx", "all", OCI_INDEX, &idx).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_manifest_whose_blobs_are_not_in_the_repository_is_refused() {
    let server = TestServer::start().await;
    let body = server.image_manifest("has-blobs", b"layer bytes", "").await;
    let resp = server.put_manifest("lacks-blobs", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(resp).await, "MANIFEST_BLOB_UNKNOWN");
    let missing_layer = body.replace(&sha256(b"layer bytes"), &sha256(b"never pushed"));
    let resp = server
        .put_manifest("has-blobs", "v1", OCI_MANIFEST, &missing_layer)
        .await;
    assert_eq!(error_code(resp).await, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn foreign_layers_with_urls_need_no_blob() {
    let server = TestServer::start().await;
    let config = server.push_blob("windows", b"{}").await;
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"{config}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":5,"digest":"{}","urls":["https://mcr.invalid/layer"]}}]}}"#,
        sha256(b"base!")
    );
    assert_eq!(
        server
            .put_manifest("windows", "ltsc", DOCKER_MANIFEST, &body)
            .await
            .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn invalid_manifests_and_references_are_400s() {
    let server = TestServer::start().await;
    let body = server.image_manifest("bad", b"l", "").await;
    let cases = [
        ("v1", OCI_MANIFEST, "{not json".to_string(), "MANIFEST_INVALID"),
        (
            "v1",
            OCI_MANIFEST,
            r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#.to_string(),
            "MANIFEST_INVALID",
        ),
        ("v1", OCI_INDEX, body.clone(), "MANIFEST_INVALID"),
        (
            "v1",
            "text/plain",
            body.replace(OCI_MANIFEST, "text/plain"),
            "MANIFEST_INVALID",
        ),
        (&sha256(b"other"), OCI_MANIFEST, body.clone(), "DIGEST_INVALID"),
        ("-bad-tag", OCI_MANIFEST, body.clone(), "MANIFEST_INVALID"),
    ];
    for (reference, media_type, body, code) in cases {
        let resp = server.put_manifest("bad", reference, media_type, &body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{reference} {media_type}");
        assert_eq!(error_code(resp).await, code, "{reference} {media_type}");
    }
    let huge = format!("{}{}", " ".repeat(4 * 1024 * 1024), body);
    let resp = server.put_manifest("bad", "huge", OCI_MANIFEST, &huge).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(resp).await, "MANIFEST_INVALID");
}

#[tokio::test]
async fn unknown_manifests_and_unaccepted_types_are_404() {
    let server = TestServer::start().await;
    let unknown_repo = server
        .req(Method::GET, "/v2/ghost/manifests/latest")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unknown_repo).await, "NAME_UNKNOWN");
    server.push_image("real", "v1", b"x").await;
    let unknown_tag = server
        .req(Method::GET, "/v2/real/manifests/v2")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_tag.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown_tag).await, "MANIFEST_UNKNOWN");
    let head = server
        .req(Method::HEAD, &format!("/v2/real/manifests/{}", sha256(b"nope")))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let only_docker = server
        .req(Method::GET, "/v2/real/manifests/v1")
        .await
        .header("accept", DOCKER_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(only_docker.status(), StatusCode::NOT_FOUND);
    let wildcard = server
        .req(Method::GET, "/v2/real/manifests/v1")
        .await
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(wildcard.status(), StatusCode::OK);
    // Types that are no manifest type are not understood, hence ignored (curl's and browsers' habits).
    for accept in ["application/json", "text/html, application/json;q=0.9"] {
        let resp = server
            .req(Method::GET, "/v2/real/manifests/v1")
            .await
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "Accept: {accept}");
        assert_eq!(header(&resp, "content-type"), OCI_MANIFEST);
    }
    let docker_and_json = server
        .req(Method::GET, "/v2/real/manifests/v1")
        .await
        .header("accept", format!("{DOCKER_MANIFEST}, application/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        docker_and_json.status(),
        StatusCode::NOT_FOUND,
        "a manifest type was named, not this one"
    );
}

/// A `Content-Type` that names no manifest type is ignored on a push: the body's `mediaType` decides.
#[tokio::test]
async fn a_push_with_an_unrelated_content_type_is_stored_as_its_media_type() {
    let server = TestServer::start().await;
    let manifest = server.image_manifest("typed", b"layer", "").await;
    let resp = server
        .req(Method::PUT, "/v2/typed/manifests/v1")
        .await
        .header("content-type", "text/plain; charset=utf-8")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    let got = server
        .req(Method::GET, "/v2/typed/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(header(&got, "content-type"), OCI_MANIFEST);
    assert_eq!(got.text().await.unwrap(), manifest);
}

#[tokio::test]
async fn deleting_by_tag_removes_the_tag_and_by_digest_the_manifest() {
    let server = TestServer::start().await;
    let digest = server.push_image("del", "v1", b"a").await;
    let body = server
        .req(Method::GET, "/v2/del/manifests/v1")
        .await
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        server.put_manifest("del", "v2", OCI_MANIFEST, &body).await.status(),
        StatusCode::CREATED
    );

    let resp = server
        .req(Method::DELETE, "/v2/del/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(
        server
            .req(Method::GET, "/v2/del/manifests/v1")
            .await
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .req(Method::GET, "/v2/del/manifests/v2")
            .await
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let resp = server
        .req(Method::DELETE, &format!("/v2/del/manifests/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(
        server
            .req(Method::GET, &format!("/v2/del/manifests/{digest}"))
            .await
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .req(Method::GET, "/v2/del/manifests/v2")
            .await
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND,
        "its tags go too"
    );
    let again = server
        .req(Method::DELETE, &format!("/v2/del/manifests/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn moving_a_tag_points_it_at_the_new_manifest() {
    let server = TestServer::start().await;
    let head_latest = || async {
        let resp = server
            .req(Method::HEAD, "/v2/mv/manifests/latest")
            .await
            .send()
            .await
            .unwrap();
        header(&resp, "docker-content-digest").to_owned()
    };
    let first = server.push_image("mv", "latest", b"one").await;
    assert_eq!(head_latest().await, first);
    let second = server.push_image("mv", "latest", b"two").await;
    assert_eq!(
        head_latest().await,
        second,
        "the move is seen at once (nothing serves the old tag)"
    );
}

#[tokio::test]
async fn artifacts_with_a_subject_are_listed_by_the_referrers_api() {
    let server = TestServer::start().await;
    let subject = server.push_image("art", "v1", b"image").await;
    let subject_size = server
        .req(Method::GET, "/v2/art/manifests/v1")
        .await
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    let empty = server.push_blob("art", b"{}").await;
    let mut referrers = Vec::new();
    for (artifact_type, payload) in [
        ("application/vnd.example.sbom", "sbom"),
        ("application/vnd.example.signature", "sig"),
    ] {
        let layer = server.push_blob("art", payload.as_bytes()).await;
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{artifact_type}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{layer}","size":{}}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{subject_size}}},"annotations":{{"org.example.kind":"{payload}"}}}}"#,
            payload.len()
        );
        let digest = sha256(body.as_bytes());
        let resp = server.put_manifest("art", &digest, OCI_MANIFEST, &body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(header(&resp, "oci-subject"), subject);
        referrers.push((digest, artifact_type));
    }

    let resp = server
        .req(Method::GET, &format!("/v2/art/referrers/{subject}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), OCI_INDEX);
    assert!(resp.headers().get("oci-filters-applied").is_none());
    let listed: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(listed["schemaVersion"], 2);
    assert_eq!(listed["manifests"].as_array().unwrap().len(), 2);
    for entry in listed["manifests"].as_array().unwrap() {
        let (_, artifact_type) = referrers
            .iter()
            .find(|(d, _)| entry["digest"] == d.as_str())
            .expect("a pushed referrer");
        assert_eq!(entry["artifactType"], *artifact_type);
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
        assert!(entry["annotations"]["org.example.kind"].is_string());
    }

    let filtered = server
        .req(
            Method::GET,
            &format!("/v2/art/referrers/{subject}?artifactType=application/vnd.example.sbom"),
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(header(&filtered, "oci-filters-applied"), "artifactType");
    let filtered: serde_json::Value = filtered.json().await.unwrap();
    assert_eq!(filtered["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["manifests"][0]["digest"], referrers[0].0.as_str());

    let none = server
        .req(Method::GET, &format!("/v2/nowhere/referrers/{}", sha256(b"?")))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::OK, "an empty index, never 404");
    let none: serde_json::Value = none.json().await.unwrap();
    assert_eq!(none["manifests"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_manifest_with_a_subject_that_does_not_exist_is_accepted() {
    let server = TestServer::start().await;
    let extra = format!(
        r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10}}"#,
        sha256(b"absent")
    );
    let body = server.image_manifest("orphan", b"sig", &extra).await;
    let resp = server
        .put_manifest("orphan", &sha256(body.as_bytes()), OCI_MANIFEST, &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "oci-subject"), sha256(b"absent"));
}

/// How many blob references of manifest `digest` the server's database holds (SQLite or Postgres).
async fn blob_refs(server: &TestServer, digest: &str) -> i64 {
    use sqlx::Connection;
    const SQL: &str = "SELECT COUNT(*) FROM manifest_blobs WHERE manifest_digest = $1";
    match crate::common::postgres_database_for(&server.dir).await {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(SQL).bind(digest).fetch_one(&mut conn).await.unwrap()
        }
        None => {
            let url = format!("sqlite://{}", server.dir.join("berth.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(SQL).bind(digest).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// The database itself holds references to what they name, whatever writes it (a collector deleting
/// links and blobs relies on it): a referenced link cannot be deleted, nor a linked blob, and a
/// reference cannot name a blob its repository does not link.
#[tokio::test]
async fn the_database_refuses_dangling_blob_references() {
    let server = TestServer::start().await;
    let manifest = server.push_image("fk", "v1", b"fk layer").await;
    let layer = sha256(b"fk layer");
    let is_fk = |r: Result<u64, sqlx::Error>| match r {
        Err(e) => e
            .as_database_error()
            .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation),
        Ok(_) => false,
    };
    let unlink = "DELETE FROM repository_blobs WHERE digest = $1";
    assert!(
        is_fk(crate::common::execute_on_server_db(&server, unlink, &layer).await),
        "a referenced link"
    );
    let drop_blob = "DELETE FROM blobs WHERE digest = $1";
    assert!(
        is_fk(crate::common::execute_on_server_db(&server, drop_blob, &layer).await),
        "a linked blob"
    );
    let unlinked = sha256(b"never pushed");
    let dangling = format!(
        "INSERT INTO manifest_blobs (repository_id, manifest_digest, blob_digest) \
         SELECT repository_id, manifest_digest, $1 FROM manifest_blobs WHERE manifest_digest = '{manifest}' LIMIT 1"
    );
    assert!(
        is_fk(crate::common::execute_on_server_db(&server, &dangling, &unlinked).await),
        "a reference without a link"
    );
}

/// Every blob a manifest names is recorded as its reference, on either backend (SQLite stores the
/// manifest, its references and its tag in one call).
#[tokio::test]
async fn a_stored_manifest_records_the_blobs_it_references() {
    let server = TestServer::start().await;
    let digest = server.push_image("refs", "v1", b"layer").await;
    assert_eq!(blob_refs(&server, &digest).await, 2, "the config and the layer");
}

/// A manifest of 32,800 references (one layer named again and again: recorded once), near the 4 MiB a
/// manifest may have, is stored whole with its tag on either backend.
#[tokio::test]
async fn a_manifest_of_32800_references_is_stored_whole() {
    let server = TestServer::start().await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = server.push_blob("huge", config).await;
    let layer_digest = server.push_blob("huge", b"layer").await;
    // A short media type keeps the manifest under the 4 MiB a manifest may have.
    let layer = format!(r#"{{"mediaType":"a/b","digest":"{layer_digest}","size":5}}"#);
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        vec![layer; 32_800].join(",")
    );
    let digest = sha256(body.as_bytes());
    let resp = server.put_manifest("huge", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    assert_eq!(
        blob_refs(&server, &digest).await,
        2,
        "the config and the layer, once each"
    );
    let get = server
        .req(Method::GET, "/v2/huge/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(header(&get, "docker-content-digest"), digest);
    assert_eq!(get.bytes().await.unwrap().len(), body.len());
}

/// A manifest naming more blobs than one statement binds (500) is stored whole, with every reference and
/// its tag, and pushing it again changes nothing.
#[tokio::test]
async fn a_manifest_with_more_than_500_references_is_stored_whole() {
    let server = TestServer::start().await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = server.push_blob("wide", config).await;
    let mut layers = Vec::new();
    for i in 0..600 {
        let data = format!("layer {i}");
        let digest = server.push_blob("wide", data.as_bytes()).await;
        layers.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{}}}"#,
            data.len()
        ));
    }
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layers.join(",")
    );
    let digest = sha256(body.as_bytes());
    for _ in 0..2 {
        let resp = server.put_manifest("wide", "v1", OCI_MANIFEST, &body).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        assert_eq!(blob_refs(&server, &digest).await, 601, "the config and 600 layers");
    }
    let get = server
        .req(Method::GET, "/v2/wide/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(header(&get, "docker-content-digest"), digest);
    assert_eq!(get.bytes().await.unwrap().as_ref(), body.as_bytes());
}

/// Pushes an artifact manifest in repository `repo` whose subject is `subject` (of `subject_size` bytes);
/// returns its digest and its body.
async fn push_referrer(
    server: &TestServer,
    repo: &str,
    subject: &str,
    subject_size: usize,
    payload: &str,
) -> (String, String) {
    let empty = server.push_blob(repo, b"{}").await;
    let layer = server.push_blob(repo, payload.as_bytes()).await;
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{layer}","size":{}}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{subject_size}}}}}"#,
        payload.len()
    );
    let digest = sha256(body.as_bytes());
    let resp = server.put_manifest(repo, &digest, OCI_MANIFEST, &body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    (digest, body)
}

async fn status_of(server: &TestServer, method: Method, path: &str) -> StatusCode {
    server.req(method, path).await.send().await.unwrap().status()
}

/// A manifest an index names is not deleted while the index stays (409, saying which index); deleting a
/// manifest takes its referrers with it, and theirs (a signature of its SBOM), tags included.
#[tokio::test]
async fn deleting_a_manifest_spares_indexes_and_takes_its_referrers() {
    let server = TestServer::start().await;
    let child_body = server.image_manifest("safe", b"layer", "").await;
    let child = sha256(child_body.as_bytes());
    let put = server.put_manifest("safe", "child", OCI_MANIFEST, &child_body).await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let idx = index(OCI_INDEX, &[(OCI_MANIFEST, &child, child_body.len())]);
    let idx_digest = sha256(idx.as_bytes());
    assert_eq!(
        server.put_manifest("safe", "all", OCI_INDEX, &idx).await.status(),
        StatusCode::CREATED
    );

    let resp = server
        .req(Method::DELETE, &format!("/v2/safe/manifests/{child}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(&idx_digest) && text.contains("delete the index first"),
        "{text}"
    );
    assert_eq!(
        status_of(&server, Method::GET, "/v2/safe/manifests/child").await,
        StatusCode::OK
    );

    // The index's own referrer goes with it; so do the child's SBOM and the SBOM's signature (tagged).
    let (idx_note, _) = push_referrer(&server, "safe", &idx_digest, idx.len(), "note").await;
    let (sbom, sbom_body) = push_referrer(&server, "safe", &child, child_body.len(), "sbom").await;
    let (signature, signature_body) = push_referrer(&server, "safe", &sbom, sbom_body.len(), "signature").await;
    let tagged = server.put_manifest("safe", "sig", OCI_MANIFEST, &signature_body).await;
    assert_eq!(tagged.status(), StatusCode::CREATED);

    for (digest, status) in [(&idx_digest, StatusCode::ACCEPTED), (&child, StatusCode::ACCEPTED)] {
        let path = format!("/v2/safe/manifests/{digest}");
        assert_eq!(
            status_of(&server, Method::DELETE, &path).await,
            status,
            "DELETE {digest}"
        );
    }
    for gone in [&idx_digest, &idx_note, &child, &sbom, &signature] {
        let path = format!("/v2/safe/manifests/{gone}");
        assert_eq!(
            status_of(&server, Method::GET, &path).await,
            StatusCode::NOT_FOUND,
            "{gone}"
        );
    }
    for tag in ["all", "child", "sig"] {
        let path = format!("/v2/safe/manifests/{tag}");
        assert_eq!(
            status_of(&server, Method::GET, &path).await,
            StatusCode::NOT_FOUND,
            "{tag}"
        );
    }
    let path = format!("/v2/safe/manifests/{child}");
    assert_eq!(status_of(&server, Method::DELETE, &path).await, StatusCode::NOT_FOUND);
}
