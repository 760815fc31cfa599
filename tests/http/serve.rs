//! The real `berth serve` process: structured JSON request logs with the source client, bounded metric
//! labels, health and readiness, and a graceful shutdown on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::process::Command;

use crate::process::Served;

/// A PATCH of the upload at `location` whose body arrives only as the returned sender sends it; the task
/// gives its status.
fn held_patch(
    served: &Served,
    token: &str,
    location: &str,
) -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    tokio::task::JoinHandle<StatusCode>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let patch = served
        .req(Method::PATCH, location)
        .bearer_auth(token)
        .body(reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )));
    (tx, tokio::spawn(async move { patch.send().await.unwrap().status() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_json_log_line_with_its_source_client() {
    let served = Served::start().await;
    let token = served.admin_token("repository:telemetry/app:pull,push").await;
    let digest = crate::common::sha256(b"logged bytes");
    let resp = served
        .req(
            Method::POST,
            &format!("/v2/telemetry/app/blobs/uploads/?digest={digest}"),
        )
        .bearer_auth(&token)
        .header("x-meta-source-client", "azure/compute/batch")
        .header("user-agent", "docker/28.2.2 go/go1.24")
        .body("logged bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let get = served
        .req(Method::GET, &format!("/v2/telemetry/app/blobs/{digest}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.bytes().await.unwrap().as_ref(), b"logged bytes");

    let lines = served
        .logged(|l| l["fields"]["message"] == "request" && l["fields"]["source_client"] == "azure/compute/batch")
        .await;
    let line = lines.first().expect("a request log line carries the source client");
    let fields = &line["fields"];
    assert_eq!(fields["registry"], "default");
    assert_eq!(fields["repository"], "telemetry/app");
    assert_eq!(fields["operation"], "upload_start");
    assert_eq!(fields["status"], 201);
    assert_eq!(fields["bytes_in"], 12);
    assert_eq!(fields["principal"], "admin");
    assert_eq!(fields["user_agent"], "docker/28.2.2 go/go1.24");
    assert!(fields["duration_ms"].as_f64().unwrap() >= 0.0);
    let pulled = served
        .request_logs()
        .into_iter()
        .find(|l| l["fields"]["operation"] == "blob_get")
        .unwrap();
    assert_eq!(pulled["fields"]["bytes_out"], 12);
    let logs = served.lines.lock().unwrap().join("\n");
    assert!(!logs.contains(&token), "tokens never reach the log");

    let metrics = served.metrics().await;
    assert!(
        metrics.contains(r#"berth_client_requests_total{source_client="azure/compute/batch",user_agent="docker"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"berth_http_requests_total{operation="upload_start",registry="default",status="201"} 1"#)
    );
    assert!(metrics.contains(r#"berth_http_received_bytes_total{registry="default"} 12"#));
    assert!(metrics.contains(r#"berth_tokens_issued_total{registry="default"} 1"#));
    assert!(metrics.contains("berth_http_request_duration_seconds_bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_junk_source_clients_do_not_grow_the_metric_series() {
    let served = Arc::new(Served::start().await);
    let requests = (0..10_000).map(|i| {
        let served = served.clone();
        async move {
            let junk = format!("junk/{i}/{}", "x".repeat(i % 50));
            let resp = served
                .req(Method::GET, "/healthz")
                .header("x-meta-source-client", junk)
                .header("user-agent", format!("agent-{i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }
    });
    futures::stream::iter(requests)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let metrics = served.metrics().await;
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("berth_client_requests_total{"))
        .collect();
    assert_eq!(
        series,
        vec![r#"berth_client_requests_total{source_client="other",user_agent="other"} 10000"#],
        "{series:?}"
    );
    assert!(!metrics.contains("junk/"), "raw input never becomes a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_a_graceful_shutdown() {
    let mut served = Served::start().await;
    let health = served.req(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = served.req(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["database"], "ok");
    let anonymous_metrics = served.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(
        anonymous_metrics.status(),
        StatusCode::UNAUTHORIZED,
        "metrics name tenants: operator only"
    );

    // A slow upload is running when SIGTERM comes: it finishes, new connections are refused, the process exits 0.
    let token = served.admin_token("repository:slow/app:pull,push").await;
    let started = served
        .req(Method::POST, "/v2/slow/app/blobs/uploads/")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let (tx, running) = held_patch(&served, &token, &location);
    tx.send(Ok(Bytes::from_static(b"before the signal, "))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = served.child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    // Within a few seconds (the signal is handled asynchronously) the listener closes.
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if reqwest::Client::new()
            .get(format!("{}/healthz", served.base))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "no new connections after SIGTERM");
    tx.send(Ok(Bytes::from_static(b"after it"))).await.unwrap();
    drop(tx);
    assert_eq!(
        running.await.unwrap(),
        StatusCode::ACCEPTED,
        "the running request finished"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), served.child.wait())
        .await
        .expect("the server exits")
        .unwrap();
    assert!(status.success());
    assert!(served.dir.path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_storage_is_gone() {
    let served = Served::start().await;
    std::fs::remove_dir_all(served.dir.path()).unwrap();
    let ready = served.req(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_ne!(body["storage"], "ok");
    assert_eq!(
        served.req(Method::GET, "/healthz").send().await.unwrap().status(),
        StatusCode::OK,
        "the process is still up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_has_an_id_in_its_answer_its_log_line_and_what_is_logged_while_serving_it() {
    let served = Served::start().await;
    let id_of = |resp: &reqwest::Response| resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let generated = |id: &str| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());

    let first = served.req(Method::GET, "/healthz").send().await.unwrap();
    let second = served.req(Method::GET, "/healthz").send().await.unwrap();
    assert!(generated(&id_of(&first)) && generated(&id_of(&second)));
    assert_ne!(id_of(&first), id_of(&second));

    // A proxy's id is kept when it is a short plain token, and replaced otherwise.
    let listed = served
        .req(Method::GET, "/api/registries")
        .bearer_auth(crate::process::OPERATOR)
        .header("x-request-id", "edge-7f3a.2:1")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(id_of(&listed), "edge-7f3a.2:1");
    for unusable in ["has space", "quote\"", &"x".repeat(65)] {
        let resp = served
            .req(Method::GET, "/healthz")
            .header("x-request-id", unusable)
            .send()
            .await
            .unwrap();
        assert!(generated(&id_of(&resp)), "{unusable:?} was replaced");
    }

    // The request line carries the id, and a management call its caller, like a data-plane call.
    let line = served.logged(|l| l["fields"]["request_id"] == "edge-7f3a.2:1").await;
    assert_eq!(line.len(), 1, "one request line for the API call");
    assert_eq!(line[0]["fields"]["message"], "request");
    assert_eq!(line[0]["fields"]["operation"], "api");
    assert_eq!(line[0]["fields"]["principal"], "operator");
    let sp: Value = served
        .req(Method::POST, "/api/service-principals")
        .bearer_auth(crate::process::OPERATOR)
        .json(&serde_json::json!({ "name": "logged-sp" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app_id = sp["appId"].as_str().unwrap();
    let own = served
        .req(Method::GET, "/api/registries")
        .basic_auth(app_id, sp["password"].as_str())
        .send()
        .await
        .unwrap();
    let own_id = id_of(&own);
    let line = served.logged(|l| l["fields"]["request_id"] == own_id.as_str()).await;
    assert_eq!(line[0]["fields"]["principal"], format!("sp:{app_id}"));

    // A warning logged while serving a request names that request.
    std::fs::remove_dir_all(served.dir.path()).unwrap();
    let ready = served.req(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready_id = id_of(&ready);
    let warned = served.logged(|l| l["fields"]["message"] == "not ready").await;
    assert_eq!(warned.len(), 1, "one readiness warning");
    assert_eq!(warned[0]["span"]["name"], "request");
    assert_eq!(warned[0]["span"]["id"], ready_id.as_str());
}

/// A SQLite file belongs to one process (which lets it keep registry rows in memory): a second
/// `berth serve` on the same data folder refuses to start and says why; the first keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_sqlite_file_is_refused() {
    let served = Served::start().await;
    let second = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .env("BERTH_HTTP_BIND", "127.0.0.1:0")
        .env("BERTH_DATA_DIR", served.dir.path())
        .env_remove("BERTH_DATABASE_URL")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second process exits")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another berth process"), "stderr: {stderr}");
    assert_eq!(
        served.req(Method::GET, "/readyz").send().await.unwrap().status(),
        StatusCode::OK
    );
}

/// A request refused at its registry's limit is visible to the operator: logged at warn with the registry,
/// the direction, the limit and how long it waited, and counted with the registry and direction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_at_its_limit_is_logged_and_counted_with_its_registry_and_limit() {
    let served = Served::start_with(&[("BERTH_LIMITS_QUEUE_TIMEOUT_MS", "300")]).await;
    let limited = served
        .req(Method::PATCH, "/api/registries/default")
        .bearer_auth(crate::process::OPERATOR)
        .json(&serde_json::json!({ "pushLimit": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::OK);
    let token = served.admin_token("repository:app:pull,push").await;
    let start = || {
        served
            .req(Method::POST, "/v2/app/blobs/uploads/")
            .bearer_auth(&token)
            .send()
    };
    let location = start().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    // An upload whose body keeps coming holds the one push slot.
    let (tx, held) = held_patch(&served, &token, &location);
    tx.send(Ok(Bytes::from_static(b"still coming"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = start().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("registry default allows 1 concurrent pushes and all were busy for 300 ms"),
        "{message}"
    );
    let logged = served
        .logged(|j| j["fields"]["message"] == "push limit reached: request refused with 429")
        .await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    let fields = &logged[0]["fields"];
    assert_eq!(logged[0]["level"], "WARN");
    assert_eq!(
        (
            &fields["registry"],
            &fields["direction"],
            &fields["limit"],
            &fields["waited_ms"]
        ),
        (
            &Value::from("default"),
            &Value::from("push"),
            &Value::from(1),
            &Value::from(300)
        )
    );
    let counted = "berth_limit_throttled_total{direction=\"push\",registry=\"default\"} 1";
    assert!(served.metrics().await.lines().any(|l| l == counted), "{counted}");
    drop(tx);
    assert_eq!(held.await.unwrap(), StatusCode::ACCEPTED);
}
