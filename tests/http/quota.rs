//! Storage quotas: a push past its registry's quota is refused with 413 DENIED and a message naming the
//! quota (before its body moves when its size is known, else at commit, the upload then discarded), a blob
//! the registry has already fits, a registry at its quota opens no upload, pushes past the warning
//! threshold carry a `Warning`, and a collection gives the space back.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{TestServer, bytes, header, scopes_for, sha256};
use crate::gc::{collect, quick_collector};

/// Sets the default registry's own quota (as the operator) and returns the registry as shown.
async fn set_quota(server: &TestServer, bytes: u64) -> Value {
    let resp = server
        .api(Method::PATCH, "/registries/default")
        .json(&json!({ "storageQuotaBytes": bytes }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// Pushes `data` with one monolithic POST and returns the answer.
async fn push(server: &TestServer, repo: &str, data: &[u8]) -> reqwest::Response {
    server
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(data)),
        )
        .await
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

/// Asserts `resp` is a quota refusal and returns its message.
async fn refused(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    let error = &body["errors"][0];
    assert_eq!(error["code"], "DENIED", "{body}");
    let message = error["message"].as_str().unwrap().to_owned();
    assert!(message.contains("storage quota exceeded"), "{message}");
    message
}

/// Bytes the default registry stores, as its usage says.
async fn stored(server: &TestServer) -> u64 {
    let usage = server.api_get("/registries/default/usage").await;
    usage["value"][0]["currentValue"].as_u64().unwrap()
}

/// A monolithic upload that announces `length` bytes and sends none, over a raw socket: its answer can only
/// come before the body.
async fn announce_without_body(server: &TestServer, repo: &str, digest: &str, length: usize) -> String {
    let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
    let token_answer: Value = server
        .token_as("default", &server.admin_password, &scopes_for(&path))
        .await
        .json()
        .await
        .unwrap();
    let token = token_answer["token"].as_str().unwrap();
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("the server answers before the body comes")
        .unwrap();
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

#[tokio::test]
async fn pushes_past_the_quota_are_refused_until_a_collection_gives_space_back() {
    let server = TestServer::start_with(quick_collector).await;
    let shown = set_quota(&server, 10_000).await;
    assert_eq!(shown["limits"]["storageBytes"], 10_000);
    let config_len = br#"{"architecture":"amd64","os":"linux"}"#.len() as u64;

    let (one, two) = (bytes(5000, 1), bytes(4000, 2));
    server.push_image("app", "v1", &one).await;
    let first = push(&server, "app", &two).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let used = config_len + 9000;
    assert_eq!(stored(&server).await, used);
    let warning = header(&first, "warning");
    assert!(
        warning.starts_with("299 - \"registry default uses 90% of its"),
        "{warning}"
    );

    // Its size known, a push that would not fit is refused before its body moves.
    let three = bytes(1000, 3);
    let answer = announce_without_body(&server, "app", &sha256(&three), three.len()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("storage quota exceeded"), "{answer}");
    let message = refused(push(&server, "app", &three).await).await;
    assert!(
        message.contains("registry default stores") && message.contains("berth gc run -n default"),
        "{message}"
    );

    // A chunk whose length is known and would not fit is refused; one whose length is not said is
    // staged, and the commit is refused and discards the upload.
    let start = server
        .req(Method::POST, "/v2/app/blobs/uploads/")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::ACCEPTED);
    let location = header(&start, "location").to_owned();
    let sized = server
        .req(Method::PATCH, &location)
        .await
        .header("content-length", three.len())
        .body(three.clone())
        .send()
        .await
        .unwrap();
    refused(sized).await;
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(three.clone())]);
    let streamed = server
        .req(Method::PATCH, &location)
        .await
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::ACCEPTED);
    let commit = server
        .req(Method::PUT, &format!("{location}?digest={}", sha256(&three)))
        .await
        .send()
        .await
        .unwrap();
    refused(commit).await;
    let status = server.req(Method::GET, &location).await.send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NOT_FOUND, "the refused upload is gone");
    assert_eq!(stored(&server).await, used);

    // A blob the registry has already adds nothing, so it fits (into another repository too).
    assert_eq!(push(&server, "other", &two).await.status(), StatusCode::CREATED);

    // A registry at its quota opens no upload.
    set_quota(&server, used).await;
    let message = refused(
        server
            .req(Method::POST, "/v2/app/blobs/uploads/")
            .await
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(message.contains("no new upload"), "{message}");

    // Deleting what is not needed and collecting it gives the space back.
    for repo in ["app", "other"] {
        let digest = sha256(&two);
        let unlinked = server
            .req(Method::DELETE, &format!("/v2/{repo}/blobs/{digest}"))
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(unlinked.status(), StatusCode::ACCEPTED);
    }
    tokio::time::sleep(Duration::from_millis(3100)).await;
    collect(&server, "default", false).await;
    assert_eq!(stored(&server).await, config_len + 5000);
    assert_eq!(push(&server, "app", &three).await.status(), StatusCode::CREATED);

    // 0 returns to the SKU's quota.
    let reset = set_quota(&server, 0).await;
    assert_eq!(reset["limits"]["storageBytes"], 10u64 << 30);
}

#[tokio::test]
async fn a_sku_without_a_quota_takes_any_push() {
    let server = TestServer::start_with(|c| c.limits.basic.storage_gib = 0).await;
    let shown = server.api_get("/registries/default").await;
    assert_eq!(shown["limits"]["storageBytes"], Value::Null);
    let usage = server.api_get("/registries/default/usage").await;
    assert_eq!(usage["value"][0]["limit"], Value::Null);
    let big = bytes(64 * 1024, 4);
    assert_eq!(push(&server, "app", &big).await.status(), StatusCode::CREATED);
}
