//! Storage usage from the database: a registry's bytes (each blob once) and the bytes no manifest
//! references, counts of repositories, manifests and tags, a repository's size, and the metrics.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, bytes, sha256};

/// `{name: currentValue}` of the registry's usage items, each with no limit but the size (the quota).
pub async fn usage(server: &TestServer) -> Value {
    let answer = server.api_get("/registries/default/usage").await;
    let items = answer["value"].as_array().unwrap();
    let quota = server.api_get("/registries/default").await["limits"]["storageBytes"].clone();
    for item in items {
        let limit = if item["name"] == "Size" { &quota } else { &Value::Null };
        assert_eq!(&item["limit"], limit, "{answer}");
    }
    let pairs = items
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_owned(), i["currentValue"].clone()));
    Value::Object(pairs.collect())
}

async fn repository(server: &TestServer, repo: &str) -> Value {
    server
        .api_get(&format!("/registries/default/repositories/{repo}"))
        .await
}

#[tokio::test]
async fn usage_counts_each_blob_once_and_what_no_manifest_references() {
    let server = TestServer::start().await;
    let config_len = br#"{"architecture":"amd64","os":"linux"}"#.len() as i64;
    let (one, two) = (bytes(1000, 1), bytes(2000, 2));
    server.push_image("app", "v1", &one).await;
    let v2 = server.push_image("app", "v2", &two).await;
    // Another repository shares the config and the first layer: stored once.
    server.push_image("other", "v1", &one).await;
    let stored = config_len + 3000;
    assert_eq!(
        usage(&server).await,
        json!({ "Size": stored, "UnreferencedSize": 0, "Repositories": 2, "Manifests": 3, "Tags": 3 })
    );
    let app = repository(&server, "app").await;
    assert_eq!(
        (&app["manifestCount"], &app["tagCount"], &app["sizeBytes"]),
        (&json!(2), &json!(2), &json!(stored))
    );
    assert_eq!(
        repository(&server, "other").await["sizeBytes"],
        json!(config_len + 1000)
    );

    let deleted = server
        .req(Method::DELETE, &format!("/v2/app/manifests/{v2}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let stray = bytes(500, 3);
    assert_eq!(server.push_blob("app", &stray).await, sha256(&stray));
    let expected =
        json!({ "Size": stored + 500, "UnreferencedSize": 2500, "Repositories": 2, "Manifests": 2, "Tags": 2 });
    assert_eq!(
        usage(&server).await,
        expected,
        "the second layer and the stray blob are unreferenced"
    );
    assert_eq!(repository(&server, "app").await["sizeBytes"], json!(config_len + 1000));

    let metrics = server.api_metrics().await;
    for (series, value) in [
        ("berth_registry_stored_bytes{registry=\"default\"}", stored + 500),
        ("berth_registry_unreferenced_bytes{registry=\"default\"}", 2500),
    ] {
        assert!(
            metrics.lines().any(|l| l == format!("{series} {value}")),
            "{series} {value} in\n{metrics}"
        );
    }
    let missing = server
        .api(Method::GET, "/registries/default/repositories/nothing")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
