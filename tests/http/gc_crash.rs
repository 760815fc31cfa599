//! A real `berth serve` killed with SIGKILL while it collects garbage, then started again on the same
//! data (SQLite, or Postgres in CI's Postgres pass): the next collection converges, deleting every
//! unreferenced blob's bytes once, and nothing referenced is gone.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{DataDir, OCI_MANIFEST, bytes, postgres_database_for, sha256};
use crate::gc::files_below;
use crate::process::{OPERATOR, Served};

/// Unreferenced blobs pushed before the kill: enough that deleting their objects takes a while.
const GARBAGE: usize = 1500;

async fn push_blob(node: &Served, token: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let resp = node
        .req(Method::POST, &format!("/v2/crash/app/blobs/uploads/?digest={digest}"))
        .bearer_auth(token)
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    digest
}

async fn api(node: &Served, method: Method, path: &str) -> reqwest::Response {
    node.req(method, &format!("/api{path}"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_collecting_converges_after_a_restart() {
    let data = DataDir::create();
    let database = postgres_database_for(data.path()).await;
    let mut env = vec![
        ("BERTH_DATA_DIR", data.path().to_str().unwrap().to_owned()),
        ("BERTH_GC_GRACE_SECS", "2".to_owned()),
        ("BERTH_GC_INTERVAL_SECS", "0".to_owned()),
    ];
    env.extend(database.map(|url| ("BERTH_DATABASE_URL", url)));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut one = Served::start_with(&env).await;
    let password = one.admin_password().await;
    let token = one.token(&password, "repository:crash/app:pull,push").await;

    let (config, layer) = (br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), bytes(50_000, 1));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        push_blob(&one, &token, &config).await,
        config.len(),
        push_blob(&one, &token, &layer).await,
        layer.len()
    );
    let put = one
        .req(Method::PUT, "/v2/crash/app/manifests/v1")
        .bearer_auth(&token)
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let garbage: Vec<String> = futures::stream::iter(0..GARBAGE)
        .map(|n| {
            let (one, token) = (&one, &token);
            async move { push_blob(one, token, format!("garbage {n}").as_bytes()).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    // Past the grace period: times are whole seconds, so 2 s of grace need 3 s to pass for sure.
    tokio::time::sleep(Duration::from_millis(3100)).await;

    let collecting = tokio::spawn(
        one.req(Method::POST, "/api/registries/default/gc")
            .bearer_auth(OPERATOR)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    one.child.start_kill().unwrap();
    one.child.wait().await.unwrap();
    let cut_short = collecting.await.unwrap().is_err();
    eprintln!("the collection was cut short by the kill: {cut_short}");

    let two = Served::start_with(&env).await;
    let status: Value = api(&two, Method::GET, "/registries/default/gc")
        .await
        .json()
        .await
        .unwrap();
    eprintln!("after the restart, before collecting: {status}");
    let ran = api(&two, Method::POST, "/registries/default/gc").await;
    assert_eq!(ran.status(), StatusCode::OK);
    let status: Value = api(&two, Method::GET, "/registries/default/gc")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["queuedBlobs"], 0, "{status}");

    let token = two.token(&password, "repository:crash/app:pull").await;
    for digest in garbage.iter().step_by(100) {
        let head = two
            .req(Method::HEAD, &format!("/v2/crash/app/blobs/{digest}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
    }
    let got = two
        .req(Method::GET, &format!("/v2/crash/app/blobs/{}", sha256(&layer)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), layer, "the referenced layer is intact");
    let usage: Value = api(&two, Method::GET, "/registries/default/usage")
        .await
        .json()
        .await
        .unwrap();
    let size = usage["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "Size")
        .unwrap()["currentValue"]
        .clone();
    let on_disk: u64 = files_below(&data.path().join("registries/default"))
        .iter()
        .map(|(_, len)| len)
        .sum();
    assert_eq!(
        size.as_u64().unwrap(),
        on_disk,
        "the store holds exactly the referenced bytes"
    );
    assert_eq!(on_disk, (config.len() + layer.len()) as u64);
}
