//! Purge: tags matching a filter older than an age, but the newest N, and the untagged manifests left
//! behind; never what was pulled within the age, locked, write-once, a child of an index that stays or a
//! referrer of a manifest that stays; at most so many deletions a run; every deletion restorable. Ages come
//! from push times set in the database (the clock the purge reads is the server's).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{OCI_INDEX, OCI_MANIFEST, TestServer, bytes, execute_on_server_db, sha256, unix_now};

const DAY: i64 = 86_400;

/// Makes tag `tag` of `repo` and the manifest it points at look pushed `days` days ago (less an hour, so
/// that an age of exactly the purge's is within it).
async fn age(server: &TestServer, repo: &str, tag: &str, days: i64) {
    let at = unix_now() - days * DAY + 3600;
    let tags = format!(
        "UPDATE tags SET updated_at = {at} WHERE name = $1 \
         AND repository_id = (SELECT id FROM repositories WHERE name = '{repo}')"
    );
    assert_eq!(execute_on_server_db(server, &tags, tag).await.unwrap(), 1);
    let manifests = format!(
        "UPDATE manifests SET created_at = {at} WHERE digest = \
         (SELECT manifest_digest FROM tags WHERE name = $1 AND repository_id = manifests.repository_id) \
         AND repository_id = (SELECT id FROM repositories WHERE name = '{repo}')"
    );
    execute_on_server_db(server, &manifests, tag).await.unwrap();
}

/// Makes manifest `digest` (untagged) look pushed `days` days ago.
async fn age_manifest(server: &TestServer, digest: &str, days: i64) {
    let sql = format!(
        "UPDATE manifests SET created_at = {} WHERE digest = $1",
        unix_now() - days * DAY
    );
    assert!(execute_on_server_db(server, &sql, digest).await.unwrap() >= 1);
}

async fn purge(server: &TestServer, body: Value) -> Value {
    let resp = server
        .api(Method::POST, "/registries/default/purge")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    resp.json().await.unwrap()
}

/// The tags (or, for untagged manifests, digests) of `report` with `action`.
fn with_action(report: &Value, action: &str) -> BTreeSet<String> {
    report["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == action)
        .map(|c| {
            c["tag"]
                .as_str()
                .unwrap_or_else(|| c["digest"].as_str().unwrap())
                .to_owned()
        })
        .collect()
}

fn reason(report: &Value, tag: &str) -> String {
    let candidate = report["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tag"] == tag)
        .unwrap();
    candidate["reason"].as_str().unwrap().to_owned()
}

async fn tags(server: &TestServer, repo: &str) -> BTreeSet<String> {
    let resp = server
        .req(Method::GET, &format!("/v2/{repo}/tags/list"))
        .await
        .send()
        .await
        .unwrap();
    let list: Value = resp.json().await.unwrap();
    list["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn builds(numbers: impl IntoIterator<Item = i64>) -> BTreeSet<String> {
    numbers.into_iter().map(|n| format!("build-{n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_exactly_what_the_purge_then_deletes() {
    let server = TestServer::start_with(|c| c.retention.pulls_flush_secs = 1).await;
    // build-N pushed 31 - N days ago: build-1 is 30 days old, build-30 a day old.
    let mut digests = Vec::new();
    for n in 1..=30 {
        let tag = format!("build-{n}");
        digests.push(server.push_image("ci/app", &tag, &bytes(32, n as u8)).await);
        age(&server, "ci/app", &tag, 31 - n).await;
    }
    server.push_image("ci/other", "build-1", b"elsewhere").await;
    age(&server, "ci/other", "build-1", 40).await;
    // build-2 was pulled by digest a moment ago; build-4 is locked; build-6 is write-once.
    let pulled = server
        .req(Method::GET, &format!("/v2/ci/app/manifests/{}", digests[1]))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    let lock = server
        .api(Method::PATCH, "/registries/default/repositories/ci/app/_tags/build-4")
        .json(&json!({ "deleteEnabled": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), StatusCode::OK);
    let rule = server
        .api(Method::POST, "/registries/default/immutability-rules")
        .json(&json!({ "repositories": "ci/app", "tags": "build-6" }))
        .send()
        .await
        .unwrap();
    assert_eq!(rule.status(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let spec = json!({ "filters": ["ci/app:build-.*"], "ago": "15d", "keep": 3, "untagged": true, "dryRun": true });
    let dry = purge(&server, spec.clone()).await;
    let expected = builds((1..=15).filter(|n| ![2, 4, 6].contains(n)));
    let tagged: BTreeSet<String> = with_action(&dry, "delete")
        .into_iter()
        .filter(|t| t.starts_with("build"))
        .collect();
    assert_eq!(tagged, expected);
    assert_eq!(dry["deletedTags"], 12);
    assert_eq!(
        dry["deletedManifests"], 12,
        "their manifests are left untagged: {dry:#}"
    );
    assert!(
        reason(&dry, "build-2").starts_with("pulled "),
        "{}",
        reason(&dry, "build-2")
    );
    assert!(
        reason(&dry, "build-4").starts_with("locked"),
        "{}",
        reason(&dry, "build-4")
    );
    assert!(
        reason(&dry, "build-6").contains("immutability rule 1"),
        "{}",
        reason(&dry, "build-6")
    );
    assert!(
        reason(&dry, "build-16").starts_with("pushed "),
        "{}",
        reason(&dry, "build-16")
    );
    assert_eq!(reason(&dry, "build-30"), "among the 3 newest");
    assert!(
        reason(&dry, "build-1").starts_with("pushed and last pulled before"),
        "{}",
        reason(&dry, "build-1")
    );
    assert_eq!(tags(&server, "ci/app").await.len(), 30, "a dry run deletes nothing");

    let mut apply = spec.clone();
    apply["dryRun"] = json!(false);
    let applied = purge(&server, apply).await;
    assert_eq!(with_action(&applied, "delete"), with_action(&dry, "delete"));
    assert_eq!(
        (&applied["deletedTags"], &applied["deletedManifests"]),
        (&json!(12), &json!(12))
    );
    let left = tags(&server, "ci/app").await;
    assert_eq!(left, builds(1..=30).difference(&expected).cloned().collect());
    for tag in &left {
        let resp = server
            .req(Method::GET, &format!("/v2/ci/app/manifests/{tag}"))
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{tag}");
    }
    assert_eq!(tags(&server, "ci/other").await.len(), 1, "not matched by the filter");

    // A purged tag is restored and pulls again.
    let restored = server
        .api(Method::POST, "/registries/default/repositories/ci/app/_restore")
        .json(&json!({ "tag": "build-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    let resp = server
        .req(Method::GET, "/v2/ci/app/manifests/build-1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["docker-content-digest"], digests[0].as_str());

    // A run stops at its maximum.
    for tag in ["a", "b", "c"] {
        server.push_image("ci/old", tag, tag.as_bytes()).await;
        age(&server, "ci/old", tag, 40).await;
    }
    let capped = purge(
        &server,
        json!({ "filters": ["ci/old:.*"], "ago": "10d", "maxDeletions": 2 }),
    )
    .await;
    assert_eq!((&capped["deletedTags"], &capped["stopped"]), (&json!(2), &json!(true)));
    let kept = with_action(&capped, "keep");
    assert_eq!(kept.len(), 1);
    let last = kept.iter().next().unwrap();
    assert_eq!(reason(&capped, last), "the run's maximum of 2 deletions was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_kept_index_and_referrers_of_a_kept_manifest_stay() {
    let server = TestServer::start().await;
    let mut children = Vec::new();
    for arch in [1u8, 2] {
        let body = server.image_manifest("multi", &bytes(16, arch), "").await;
        let digest = sha256(body.as_bytes());
        let resp = server.put_manifest("multi", &digest, OCI_MANIFEST, &body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        age_manifest(&server, &digest, 60).await;
        children.push((digest, body.len()));
    }
    let entries: Vec<String> = children
        .iter()
        .map(|(d, len)| format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{len}}}"#))
        .collect();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    assert_eq!(
        server.put_manifest("multi", "v1", OCI_INDEX, &index).await.status(),
        StatusCode::CREATED
    );
    age(&server, "multi", "v1", 60).await;
    // A signature of the index, untagged and old.
    let signature = server
        .image_manifest(
            "multi",
            b"sig",
            &format!(
                r#","subject":{{"mediaType":"{OCI_INDEX}","digest":"{}","size":{}}}"#,
                sha256(index.as_bytes()),
                index.len()
            ),
        )
        .await;
    let signature_digest = sha256(signature.as_bytes());
    assert_eq!(
        server
            .put_manifest("multi", &signature_digest, OCI_MANIFEST, &signature)
            .await
            .status(),
        StatusCode::CREATED
    );
    age_manifest(&server, &signature_digest, 60).await;

    // Untagged only: the index stays (tagged), so do its children and its signature.
    let untagged = purge(
        &server,
        json!({ "filters": ["multi:none"], "ago": "1d", "untagged": true }),
    )
    .await;
    assert_eq!(untagged["deletedManifests"], 0, "{untagged:#}");
    let kept = untagged["candidates"].as_array().unwrap();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|c| c["action"] == "keep"));
    assert!(
        kept.iter()
            .any(|c| c["reason"].as_str().unwrap().starts_with("a child of index"))
    );
    assert!(
        kept.iter()
            .any(|c| c["reason"].as_str().unwrap().starts_with("a referrer of"))
    );
    for (digest, _) in &children {
        let resp = server
            .req(Method::GET, &format!("/v2/multi/manifests/{digest}"))
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    // The index's tag goes: the index, then its children and its signature go with the run.
    let all = purge(
        &server,
        json!({ "filters": ["multi:v.*"], "ago": "1d", "untagged": true }),
    )
    .await;
    assert_eq!(
        (&all["deletedTags"], &all["deletedManifests"]),
        (&json!(1), &json!(3)),
        "{all:#}"
    );
    assert!(tags(&server, "multi").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_purges_are_refused_clearly() {
    let server = TestServer::start().await;
    for (body, why) in [
        (json!({ "filters": [] }), "at least one filter"),
        (json!({ "filters": ["nocolon"] }), "REPOSITORY_REGEX:TAG_REGEX"),
        (json!({ "filters": ["a:("] }), "is not a regex"),
        (json!({ "filters": ["a:b"], "ago": "soon" }), "is not a duration"),
        (json!({ "filters": ["a:b"], "olderThan": "1d" }), "unknown field"),
        (
            json!({ "filters": ["a:b"], "maxDeletions": 2_000_000 }),
            "at most 1000000",
        ),
    ] {
        let resp = server
            .api(Method::POST, "/registries/default/purge")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(why), "{body}: {text}");
    }
}
