//! Last pulled and pull counts: a manifest GET counts for the manifest and, by tag, for the tag; a HEAD
//! counts for nothing; counts are written every `retention.pulls_flush_secs` and at shutdown.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{OCI_MANIFEST, TestServer, sha256};
use crate::process::Served;

async fn pull(server: &TestServer, method: Method, reference: &str) {
    let resp = server
        .req(method, &format!("/v2/app/manifests/{reference}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// The repository's tags with details, once `ready` holds for them (counts are written every second).
async fn tags_once(server: &TestServer, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..50 {
        let tags = server
            .api_get("/registries/default/repositories/app/_tags?detail=true")
            .await;
        if ready(&tags) {
            return tags;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pull counts were not written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_count_for_the_tag_and_the_manifest_pulled() {
    let server = TestServer::start_with(|c| c.retention.pulls_flush_secs = 1).await;
    let v1 = server.push_image("app", "v1", b"one").await;
    let v2 = server.push_image("app", "v2", b"two").await;
    let before = server
        .api_get("/registries/default/repositories/app/_tags?detail=true")
        .await;
    assert_eq!(before[0]["pullCount"], 0);
    assert_eq!(before[0]["lastPulledTime"], Value::Null);

    for _ in 0..3 {
        pull(&server, Method::GET, "v1").await;
    }
    pull(&server, Method::HEAD, "v1").await;
    pull(&server, Method::GET, &v2).await;
    pull(&server, Method::GET, &v2).await;
    let tags = tags_once(&server, |t| t[0]["pullCount"] == 3).await;
    assert_eq!(
        (&tags[0]["name"], &tags[0]["digest"]),
        (&Value::from("v1"), &Value::from(v1.as_str()))
    );
    assert!(tags[0]["lastPulledTime"].as_str().unwrap().ends_with('Z'), "{tags}");
    assert_eq!(tags[1]["pullCount"], 0, "pulls by digest are the manifest's: {tags}");
    assert_eq!(tags[1]["lastPulledTime"], Value::Null);

    let manifests = server.api_get("/registries/default/repositories/app/_manifests").await;
    let count = |digest: &str| {
        let m = manifests
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == digest)
            .unwrap();
        (m["pullCount"].as_i64().unwrap(), m["lastPulledTime"].is_string())
    };
    assert_eq!(count(&v1), (3, true));
    assert_eq!(count(&v2), (2, true));
    let shown = server
        .api_get(&format!("/registries/default/repositories/app/_manifests/{v2}"))
        .await;
    assert_eq!(shown["pullCount"], 2);

    // Counts add up across writes.
    pull(&server, Method::GET, "v1").await;
    tags_once(&server, |t| t[0]["pullCount"] == 4).await;
}

/// A real process stopped by SIGTERM writes what it counted before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_counted_before_a_shutdown_are_written() {
    let mut served = Served::start_with(&[("BERTH_RETENTION_PULLS_FLUSH_SECS", "3600")]).await;
    let token = served.admin_token("repository:app:pull,push").await;
    let mut descriptors = Vec::new();
    for blob in [&b"{}"[..], b"layer"] {
        let digest = sha256(blob);
        let resp = served
            .req(Method::POST, &format!("/v2/app/blobs/uploads/?digest={digest}"))
            .bearer_auth(&token)
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        descriptors.push(format!(
            r#"{{"mediaType":"application/octet-stream","digest":"{digest}","size":{}}}"#,
            blob.len()
        ));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]}}"#,
        descriptors[0], descriptors[1]
    );
    let put = served
        .req(Method::PUT, "/v2/app/manifests/v1")
        .bearer_auth(&token)
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    for _ in 0..2 {
        let resp = served
            .req(Method::GET, "/v2/app/manifests/v1")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let pid = served.child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());

    use sqlx::Connection;
    let url = format!("sqlite://{}", served.dir.path().join("berth.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (tag, manifest): (i64, i64) = sqlx::query_as(
        "SELECT t.pull_count, m.pull_count FROM tags t JOIN manifests m \
         ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest WHERE t.name = 'v1'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((tag, manifest), (2, 2));
}
