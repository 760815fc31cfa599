//! Stored retention policies: set and shown through the API and the CLI's shape, checked, and applied by
//! the background runner on the collector's schedule (untagged manifests older than N days, keep rules
//! for tags), each deletion recorded in the tag history as the retention's.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{OCI_MANIFEST, TestServer, bytes, execute_on_server_db, sha256, unix_now};

const POLICY: &str = "/registries/default/retention";

async fn set_policy(server: &TestServer, policy: Value) -> reqwest::Response {
    server.api(Method::PUT, POLICY).json(&policy).send().await.unwrap()
}

/// Makes manifest `digest` and the tags pointing at it look pushed `days` days ago.
async fn age(server: &TestServer, digest: &str, days: i64) {
    let at = unix_now() - days * 86_400;
    let manifests = format!("UPDATE manifests SET created_at = {at} WHERE digest = $1");
    assert_eq!(execute_on_server_db(server, &manifests, digest).await.unwrap(), 1);
    let tags = format!("UPDATE tags SET updated_at = {at} WHERE manifest_digest = $1");
    execute_on_server_db(server, &tags, digest).await.unwrap();
}

async fn status(server: &TestServer, reference: &str) -> StatusCode {
    let path = format!("/v2/app/manifests/{reference}");
    server.req(Method::GET, &path).await.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_checked_and_shown() {
    let server = TestServer::start().await;
    assert_eq!(
        server.api_get(POLICY).await,
        json!({ "untaggedDays": null, "rules": [], "maxDeletions": null })
    );
    let policy = json!({ "untaggedDays": 7, "rules": [{ "filter": "ci/.*:build-.*", "days": 30, "keep": 5 }], "maxDeletions": 50 });
    let resp = set_policy(&server, policy.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(server.api_get(POLICY).await, policy);
    for (bad, why) in [
        (
            json!({ "rules": [{ "filter": "nocolon", "days": 1 }] }),
            "REPOSITORY_REGEX:TAG_REGEX",
        ),
        (json!({ "rules": [{ "filter": "a:(", "days": 1 }] }), "is not a regex"),
        (json!({ "untaggedDays": -1 }), "invalid"),
        (json!({ "keepForever": true }), "unknown field"),
        (
            json!({ "rules": [{ "filter": "a:b", "days": 1, "keep": 2_000_000 }] }),
            "at most 1000000",
        ),
    ] {
        let resp = set_policy(&server, bad.clone()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(why), "{bad}: {text}");
    }
    assert_eq!(server.api_get(POLICY).await, policy, "a refused policy changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_runner_applies_the_policy() {
    let server = TestServer::start_with(|c| {
        c.gc.interval_secs = 1;
        c.gc.grace_secs = 3600;
    })
    .await;
    let mut builds = Vec::new();
    for n in 1..=3u8 {
        let digest = server.push_image("app", &format!("build-{n}"), &bytes(32, n)).await;
        age(&server, &digest, 40 - i64::from(n)).await;
        builds.push(digest);
    }
    let kept = server.push_image("app", "latest", b"current").await;
    let body = server.image_manifest("app", b"old, untagged", "").await;
    let untagged = sha256(body.as_bytes());
    assert_eq!(
        server
            .put_manifest("app", &untagged, OCI_MANIFEST, &body)
            .await
            .status(),
        StatusCode::CREATED
    );
    age(&server, &untagged, 20).await;
    let fresh = server.image_manifest("app", b"new, untagged", "").await;
    let fresh_digest = sha256(fresh.as_bytes());
    assert_eq!(
        server
            .put_manifest("app", &fresh_digest, OCI_MANIFEST, &fresh)
            .await
            .status(),
        StatusCode::CREATED
    );

    let policy = json!({ "untaggedDays": 7, "rules": [{ "filter": "app:build-.*", "days": 30, "keep": 1 }] });
    let dry = server
        .api(Method::POST, &format!("{POLICY}/run?dryRun=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(dry.json::<Value>().await.unwrap()["deletedTags"], 0, "no policy yet");
    assert_eq!(set_policy(&server, policy).await.status(), StatusCode::OK);
    let dry: Value = server
        .api(Method::POST, &format!("{POLICY}/run?dryRun=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&dry["deletedTags"], &dry["deletedManifests"]),
        (&json!(2), &json!(3)),
        "{dry:#}"
    );

    // The runner passes every second: build-1 and build-2 go with their manifests, build-3 is the newest
    // kept, the old untagged manifest goes, the new one and latest stay.
    let mut gone = false;
    for _ in 0..100 {
        if status(&server, "build-1").await == StatusCode::NOT_FOUND
            && status(&server, &untagged).await == StatusCode::NOT_FOUND
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the policy was not applied");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (reference, expected) in [
        ("build-2", StatusCode::NOT_FOUND),
        (builds[1].as_str(), StatusCode::NOT_FOUND),
        ("build-3", StatusCode::OK),
        ("latest", StatusCode::OK),
        (kept.as_str(), StatusCode::OK),
        (fresh_digest.as_str(), StatusCode::OK),
    ] {
        assert_eq!(status(&server, reference).await, expected, "{reference}");
    }
    let history = server
        .api_get("/registries/default/repositories/app/_history?tag=build-1")
        .await;
    assert_eq!(history[0]["action"], "delete");
    assert_eq!(history[0]["actor"], "retention");
}
