//! Tag immutability rules: a covered tag takes its first digest and the same again, refuses another (and
//! of racing pushes exactly one wins), and is never deleted; exceptions, other repositories and signature
//! fallback tags stay mutable; rules are managed by the operator and Owners.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::principal;
use crate::common::{OCI_MANIFEST, TestServer, bytes, sha256};

const RULES: &str = "/registries/default/immutability-rules";

async fn create_rule(server: &TestServer, rule: Value) -> reqwest::Response {
    server.api(Method::POST, RULES).json(&rule).send().await.unwrap()
}

/// Pushes an image manifest with its own layer to `repo`, by digest; returns its body.
async fn image(server: &TestServer, repo: &str, seed: u8) -> String {
    let body = server.image_manifest(repo, &bytes(64, seed), "").await;
    let resp = server
        .put_manifest(repo, &sha256(body.as_bytes()), OCI_MANIFEST, &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    body
}

async fn put(server: &TestServer, tag: &str, body: &str) -> reqwest::Response {
    server.put_manifest("prod/team/app", tag, OCI_MANIFEST, body).await
}

async fn message(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    body["errors"][0]["message"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_covered_tag_is_written_once_and_never_deleted() {
    let server = TestServer::start().await;
    let created = create_rule(
        &server,
        json!({ "repositories": "prod/**", "tags": "v*", "except": ["v*-rc*"] }),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        created.json::<Value>().await.unwrap(),
        json!({ "id": 1, "repositories": "prod/**", "tags": "v*", "except": ["v*-rc*"], "includeReferrerTags": false })
    );
    let first = image(&server, "prod/team/app", 1).await;
    let second = image(&server, "prod/team/app", 2).await;

    assert_eq!(put(&server, "v1", &first).await.status(), StatusCode::CREATED);
    assert_eq!(
        put(&server, "v1", &first).await.status(),
        StatusCode::CREATED,
        "the same digest again (a CI retry)"
    );
    assert_eq!(
        message(put(&server, "v1", &second).await).await,
        "push of prod/team/app:v1 (the tag holds another digest) refused: tag immutability rule 1 \
         (repositories \"prod/**\", tags \"v*\") makes the tag write-once"
    );
    let pulled = server
        .req(Method::GET, "/v2/prod/team/app/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.text().await.unwrap(), first);

    // Exceptions, tags the glob does not match and signature fallback tags move freely.
    let referrer_tag = format!("sha256-{}.sig", "b".repeat(64));
    for tag in ["v1-rc1", "latest", &referrer_tag] {
        assert_eq!(put(&server, tag, &first).await.status(), StatusCode::CREATED, "{tag}");
        assert_eq!(put(&server, tag, &second).await.status(), StatusCode::CREATED, "{tag}");
    }
    let elsewhere = image(&server, "dev/app", 3).await;
    for _ in 0..2 {
        let resp = server.put_manifest("dev/app", "v1", OCI_MANIFEST, &elsewhere).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let other = image(&server, "dev/app", 4).await;
    let resp = server.put_manifest("dev/app", "v1", OCI_MANIFEST, &other).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "dev/** is not covered");

    let untag = server
        .req(Method::DELETE, "/v2/prod/team/app/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert!(message(untag).await.contains("makes the tag write-once"));
    let path = format!("/v2/prod/team/app/manifests/{}", sha256(first.as_bytes()));
    let by_digest = server.req(Method::DELETE, &path).await.send().await.unwrap();
    assert!(message(by_digest).await.contains("(it would remove tag v1)"));
    let repository = server
        .api(Method::DELETE, "/registries/default/repositories/prod/team/app")
        .send()
        .await
        .unwrap();
    assert_eq!(repository.status(), StatusCode::FORBIDDEN);

    let resp = server.api(Method::DELETE, &format!("{RULES}/1")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.api_get(RULES).await, json!([]));
    assert_eq!(
        put(&server, "v1", &second).await.status(),
        StatusCode::CREATED,
        "mutable again"
    );
}

/// Of pushes racing to a covered tag that does not exist yet, exactly one wins and the tag holds its digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_racing_pushes_to_a_new_write_once_tag_one_wins() {
    let server = TestServer::start().await;
    assert_eq!(
        create_rule(&server, json!({ "repositories": "app", "tags": "*" }))
            .await
            .status(),
        StatusCode::CREATED
    );
    let mut bodies = Vec::new();
    for seed in 0..8 {
        bodies.push(image(&server, "app", seed).await);
    }
    for round in 0..3 {
        let tag = format!("race{round}");
        let mut pushes = Vec::new();
        for body in &bodies {
            let request = server
                .req(Method::PUT, &format!("/v2/app/manifests/{tag}"))
                .await
                .header("content-type", OCI_MANIFEST)
                .body(body.clone());
            pushes.push(tokio::spawn(async move { request.send().await.unwrap().status() }));
        }
        let mut winners = Vec::new();
        for (body, push) in bodies.iter().zip(pushes) {
            match push.await.unwrap() {
                StatusCode::CREATED => winners.push(body),
                StatusCode::FORBIDDEN => {}
                other => panic!("{other}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        let held = server
            .req(Method::GET, &format!("/v2/app/manifests/{tag}"))
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(&held.text().await.unwrap(), winners[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_checked_and_managed_by_owners() {
    let server = TestServer::start().await;
    for (rule, why) in [
        (json!({ "repositories": "prod/[", "tags": "v*" }), "is not a glob"),
        (
            json!({ "repositories": "", "tags": "v*" }),
            "patterns are 1 to 256 characters",
        ),
        (
            json!({ "repositories": "a", "tags": "v*", "mutable": true }),
            "unknown field",
        ),
        (json!({ "tags": "v*" }), "missing field"),
    ] {
        let resp = create_rule(&server, rule.clone()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{rule}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(why), "{rule}: {text}");
    }
    let resp = server.api(Method::DELETE, &format!("{RULES}/9")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let as_principal = |(id, password): (String, String), method: Method| {
        reqwest::Client::new()
            .request(method, server.url(&format!("/api{RULES}")))
            .basic_auth(id, Some(password))
    };
    let contributor = principal(&server, "/registries/default", "Contributor").await;
    let resp = as_principal(contributor, Method::POST)
        .json(&json!({ "repositories": "**", "tags": "*" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let owner = principal(&server, "/registries/default", "Owner").await;
    let resp = as_principal(owner.clone(), Method::POST)
        .json(&json!({ "repositories": "**", "tags": "stable", "includeReferrerTags": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let listed: Value = as_principal(owner, Method::GET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["includeReferrerTags"], true);
    assert_eq!(listed[0]["except"], json!([]));
}
