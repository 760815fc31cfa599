//! Per-registry pull and push limits: permits held to the last byte, FIFO waiting, 429 with Retry-After
//! past the queue timeout (naming the limit), isolation between registries, and limit changes without
//! restart that apply to the requests in flight.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::common::{TestServer, bytes, error_code, header, sha256};

/// Large enough that a response cannot hide in the socket buffers: an unread response keeps its permit.
const BIG: usize = 24 * 1024 * 1024;

fn gauge(kind: &str, registry: &str, direction: &str) -> String {
    format!("berth_limit_{kind}{{direction=\"{direction}\",registry=\"{registry}\"}}")
}

/// Polls `/metrics` until `series` equals `want` (up to 5 s).
async fn wait_for(server: &TestServer, series: &str, want: f64) {
    for _ in 0..200 {
        if server.metric(series).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{series} never reached {want}; metrics:\n{}",
        server.api_metrics().await
    );
}

/// A registry other than `default`, reached by its login server, with an admin token for `repo`.
struct Tenant {
    host: String,
    token: String,
}

impl Tenant {
    async fn create(server: &TestServer, name: &str, repo: &str) -> Tenant {
        let resp = server
            .api(Method::POST, "/registries")
            .json(&json!({ "name": name, "adminUserEnabled": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let creds: Value = server.api_get(&format!("/registries/{name}/credentials")).await;
        let host = format!("{}.localhost", name.to_lowercase());
        let token: Value = server
            .anon(Method::GET, &format!("/oauth2/token?scope=repository:{repo}:pull,push"))
            .header("host", &host)
            .basic_auth(name, creds["passwords"][0]["value"].as_str())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Tenant {
            host,
            token: token["token"].as_str().unwrap().to_string(),
        }
    }

    fn req(&self, server: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
        server
            .anon(method, path)
            .header("host", &self.host)
            .bearer_auth(&self.token)
    }
}

/// Starts `n` GETs of a big blob that read their bodies only once `go` is notified; each task returns the
/// status and, for a 200, whether the bytes hash right.
fn held_pulls(
    server: &Arc<TestServer>,
    path: &str,
    digest: &str,
    n: usize,
    go: &Arc<Notify>,
) -> Vec<tokio::task::JoinHandle<(u16, bool, Option<String>)>> {
    (0..n)
        .map(|_| {
            let (server, path, digest, go) = (server.clone(), path.to_string(), digest.to_string(), go.clone());
            tokio::spawn(async move {
                let resp = server.req(Method::GET, &path).await.send().await.unwrap();
                let status = resp.status().as_u16();
                if status != 200 {
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    let code = error_code(resp).await;
                    assert_eq!(code, "TOOMANYREQUESTS");
                    return (status, false, retry_after);
                }
                go.notified().await;
                let body = resp.bytes().await.unwrap();
                (status, sha256(&body) == digest, None)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_held_pulls_against_a_limit_of_ten_run_ten_at_a_time() {
    let server = Arc::new(TestServer::start_with(|c| c.limits.basic.pulls = 10).await);
    let data = bytes(BIG, 1);
    let digest = server.push_blob("big", &data).await;
    let path = format!("/v2/big/blobs/{digest}");
    let go = Arc::new(Notify::new());
    let tasks = held_pulls(&server, &path, &digest, 40, &go);
    wait_for(&server, &gauge("in_flight", "default", "pull"), 10.0).await;
    wait_for(&server, &gauge("queued", "default", "pull"), 30.0).await;
    let mut finished = Vec::new();
    let mut most = 0.0f64;
    let mut tasks = tasks;
    while !tasks.is_empty() {
        go.notify_waiters();
        most = most.max(server.metric(&gauge("in_flight", "default", "pull")).await);
        let (done, rest): (Vec<_>, Vec<_>) = tasks.into_iter().partition(|t| t.is_finished());
        for task in done {
            finished.push(task.await.unwrap());
        }
        tasks = rest;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(most <= 10.0, "at most 10 pulls in flight, saw {most}");
    assert_eq!(finished.len(), 40);
    assert!(
        finished.iter().all(|(status, ok, _)| *status == 200 && *ok),
        "all 40 pulls succeed with the right bytes"
    );
    wait_for(&server, &gauge("in_flight", "default", "pull"), 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_queue_timeout_excess_pulls_get_429_and_succeed_when_retried() {
    let server = Arc::new(
        TestServer::start_with(|c| {
            c.limits.basic.pulls = 10;
            c.limits.queue_timeout_ms = 300;
        })
        .await,
    );
    let digest = server.push_blob("big", &bytes(BIG, 2)).await;
    let path = format!("/v2/big/blobs/{digest}");
    let go = Arc::new(Notify::new());
    let holders = held_pulls(&server, &path, &digest, 10, &go);
    wait_for(&server, &gauge("in_flight", "default", "pull"), 10.0).await;
    let excess = held_pulls(&server, &path, &digest, 3, &go);
    for task in excess {
        let (status, _, retry_after) = task.await.unwrap();
        assert_eq!(status, 429);
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    assert_eq!(
        server
            .metric("berth_limit_throttled_total{direction=\"pull\",registry=\"default\"}")
            .await,
        3.0
    );
    let manifest_head = server
        .req(Method::HEAD, "/v2/big/manifests/latest")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(
        manifest_head.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "manifest reads are pulls too"
    );
    let tags = server.req(Method::GET, "/v2/big/tags/list").await.send().await.unwrap();
    assert_eq!(tags.status(), StatusCode::OK, "listings are not limited");
    let token = server.token_as("default", &server.admin_password, &[]).await;
    assert_eq!(token.status(), StatusCode::OK, "the token endpoint is not limited");
    go.notify_waiters();
    while !holders.iter().all(|t| t.is_finished()) {
        go.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for holder in holders {
        assert_eq!(holder.await.unwrap().0, 200);
    }
    let retried = server.req(Method::GET, &path).await.send().await.unwrap();
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(sha256(&retried.bytes().await.unwrap()), digest);
}

/// Starts an upload session (a push itself) and returns its location.
async fn start_upload(server: &TestServer, repo: &str) -> String {
    let started = server
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    header(&started, "location").to_string()
}

/// A PATCH whose body arrives only as the returned sender sends it.
async fn held_patch(
    server: &Arc<TestServer>,
    location: &str,
) -> (
    mpsc::Sender<Result<Bytes, std::io::Error>>,
    tokio::task::JoinHandle<reqwest::Response>,
) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let request = server
        .req(Method::PATCH, location)
        .await
        .body(reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )));
    let task = tokio::spawn(async move { request.send().await.unwrap() });
    (tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_held_to_five_and_the_rest_wait_or_get_429() {
    let server = Arc::new(
        TestServer::start_with(|c| {
            c.limits.basic.pushes = 5;
            c.limits.queue_timeout_ms = 1_500;
        })
        .await,
    );
    let mut locations = Vec::new();
    for _ in 0..8 {
        locations.push(start_upload(&server, "pushed").await);
    }
    let mut uploads = Vec::new();
    for location in &locations {
        let (tx, task) = held_patch(&server, location).await;
        tx.send(Ok(Bytes::from_static(b"first bytes"))).await.unwrap();
        uploads.push((tx, task));
    }
    wait_for(&server, &gauge("in_flight", "default", "push"), 5.0).await;
    wait_for(&server, &gauge("queued", "default", "push"), 3.0).await;
    let mut statuses = Vec::new();
    // The three waiting past the queue timeout are refused; then the five held ones finish.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    for (tx, task) in uploads {
        drop(tx);
        statuses.push(task.await.unwrap().status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![202, 202, 202, 202, 202, 429, 429, 429]);
    wait_for(&server, &gauge("in_flight", "default", "push"), 0.0).await;
    // Retried, a push goes through.
    let (tx, task) = held_patch(&server, &locations[7]).await;
    tx.send(Ok(Bytes::from_static(b"retry"))).await.unwrap();
    drop(tx);
    assert_eq!(task.await.unwrap().status(), StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_registry_saturated_does_not_slow_or_refuse_another() {
    let server = Arc::new(
        TestServer::start_with(|c| {
            c.limits.basic.pulls = 2;
            c.limits.queue_timeout_ms = 30_000;
        })
        .await,
    );
    let digest = server.push_blob("big", &bytes(BIG, 3)).await;
    let go = Arc::new(Notify::new());
    let path = format!("/v2/big/blobs/{digest}");
    let saturating = held_pulls(&server, &path, &digest, 5, &go);
    wait_for(&server, &gauge("in_flight", "default", "pull"), 2.0).await;
    wait_for(&server, &gauge("queued", "default", "pull"), 3.0).await;

    let beta = Tenant::create(&server, "regbeta", "app").await;
    let small = b"beta's own blob";
    let small_digest = sha256(small);
    let pushed = beta
        .req(
            &server,
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={small_digest}"),
        )
        .body(&small[..])
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED);
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let resp = beta
            .req(&server, Method::GET, &format!("/v2/app/blobs/{small_digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap().as_ref(), small);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "regbeta answered while default was saturated"
    );
    assert_eq!(server.metric(&gauge("queued", "regbeta", "pull")).await, 0.0);

    while !saturating.iter().all(|t| t.is_finished()) {
        go.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in saturating {
        assert_eq!(task.await.unwrap().0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_limit_applies_at_once_and_a_lowered_one_counts_the_pulls_in_flight() {
    let server = Arc::new(TestServer::start_with(|c| c.limits.queue_timeout_ms = 300).await);
    let shown: Value = server.api_get("/registries/default").await;
    let basic = json!({ "pulls": 10, "pushes": 5, "storageBytes": 10u64 << 30 });
    assert_eq!(shown["limits"], basic, "Basic's defaults");
    let updated: Value = server
        .api(Method::PATCH, "/registries/default")
        .json(&json!({ "pullLimit": 2 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["limits"]["pulls"], 2);
    let digest = server.push_blob("big", &bytes(BIG, 4)).await;
    let path = format!("/v2/big/blobs/{digest}");
    let go = Arc::new(Notify::new());
    let holders = held_pulls(&server, &path, &digest, 2, &go);
    wait_for(&server, &gauge("in_flight", "default", "pull"), 2.0).await;
    let third = server.req(Method::GET, &path).await.send().await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);

    server
        .api(Method::PATCH, "/registries/default")
        .json(&json!({ "pullLimit": 3 }))
        .send()
        .await
        .unwrap();
    let after = server.req(Method::HEAD, &path).await.send().await.unwrap();
    assert_eq!(after.status(), StatusCode::OK, "the raised limit applies at once");

    // Lowered below the pulls in flight: they count against it until they finish.
    server
        .api(Method::PATCH, "/registries/default")
        .json(&json!({ "pullLimit": 1 }))
        .send()
        .await
        .unwrap();
    let refused = server.req(Method::GET, &path).await.send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "2 in flight, limit 1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["message"],
        "too many requests: registry default allows 1 concurrent pulls and all were busy for 300 ms"
    );
    while !holders.iter().all(|t| t.is_finished()) {
        go.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for holder in holders {
        assert_eq!(holder.await.unwrap().0, 200);
    }
    let one = server.req(Method::HEAD, &path).await.send().await.unwrap();
    assert_eq!(
        one.status(),
        StatusCode::OK,
        "the lowered limit once the pulls in flight finished"
    );

    let reset: Value = server
        .api(Method::PATCH, "/registries/default")
        .json(&json!({ "pullLimit": 0, "sku": "Premium" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reset["limits"]["pulls"], 200, "0 returns to the SKU's default");
}
