//! Clients too slow to matter give back their concurrency permits (bodies paced in both directions), a
//! slow but real client is served, and an answer sent before its request body was read never kills a
//! connection the client reuses.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::common::{TestServer, bytes, sha256};
use crate::connections::{addr, connect_from, read_until_closed};

/// A server whose bodies must move 16 KiB/s over each second of waiting, whose default registry allows
/// one pull and one push at a time, and whose queue outlasts any cut-off.
async fn paced_server() -> TestServer {
    let server = TestServer::start_with(|c| {
        c.http.body_min_bytes_per_sec = 16 * 1024;
        c.http.body_stall_timeout_secs = 1;
        c.limits.queue_timeout_ms = 15_000;
    })
    .await;
    let resp = server
        .api(Method::PATCH, "/registries/default")
        .json(&serde_json::json!({ "pullLimit": 1, "pushLimit": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    server
}

async fn token(server: &TestServer, repo: &str) -> String {
    let scopes = [format!("repository:{repo}:pull,push")];
    let resp = server.token_as("default", &server.admin_password, &scopes).await;
    resp.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_pull_gives_back_its_permit_and_a_slow_reader_is_served() {
    let server = paced_server().await;
    let blob = bytes(16 << 20, 7);
    let digest = server.push_blob("slow/pull", &blob).await;
    let token = token(&server, "slow/pull").await;

    // A client with a small receive window that reads the status line, then nothing.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(addr(&server)).await.unwrap();
    let request = format!(
        "GET /v2/slow/pull/blobs/{digest} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stuck.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stuck.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let started = Instant::now();
    let second = server
        .req(Method::GET, &format!("/v2/slow/pull/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::OK, "the stuck pull's permit came back");
    assert_eq!(second.bytes().await.unwrap().len(), blob.len());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(
        read_until_closed(&mut stuck, Duration::from_secs(5)).await.1,
        "the stuck pull's connection was cut"
    );

    // 256 KiB/s, sixteen times the minimum, in bursts: served to the last byte.
    let blob = bytes(2 << 20, 8);
    let digest = server.push_blob("slow/pull", &blob).await;
    let mut slow = connect_from(&server, [127, 0, 0, 1]).await;
    let request = format!(
        "GET /v2/slow/pull/blobs/{digest} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let n = slow.read(&mut chunk).await.unwrap();
        assert_ne!(n, 0, "the slow reader was cut after {} bytes", received.len());
        received.extend_from_slice(&chunk[..n]);
        if received.ends_with(&blob[blob.len() - 64..]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250 * n as u64 / (64 * 1024) + 1)).await;
    }
    let body_at = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(sha256(&received[body_at..]), digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_push_gives_back_its_permit() {
    let server = paced_server().await;
    let started = server
        .req(Method::POST, "/v2/slow/push/blobs/uploads/")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let trickle = tokio::spawn(async move {
        // A byte every 500 ms, for at most 30 s.
        for _ in 0..60 {
            if tx.send(Ok(Bytes::from_static(b"x"))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let patch = server
        .req(Method::PATCH, &location)
        .await
        .body(reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )));
    let trickling = tokio::spawn(async move { patch.send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pushed_at = Instant::now();
    server.push_blob("slow/push", b"a real push").await;
    assert!(
        pushed_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        pushed_at.elapsed()
    );
    let cut = tokio::time::timeout(Duration::from_secs(10), trickling)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cut.as_ref().map_or(true, |status| *status != StatusCode::ACCEPTED),
        "the trickling PATCH failed: {cut:?}"
    );
    trickle.abort();
}

/// Sends `head` (a request with a declared body), reads the answer, then sends the body in a separate
/// write and a second request on the same connection: the second answer must come back whole.
async fn reuse_after_an_early_answer(server: &TestServer, head: &str, body: &[u8]) -> String {
    let mut conn = connect_from(server, [127, 0, 0, 1]).await;
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut first))
        .await
        .expect("answered before the body was sent")
        .unwrap();
    let first = String::from_utf8_lossy(&first[..n]).to_string();
    conn.write_all(body).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let written = conn
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    let (second, _) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    let second = String::from_utf8_lossy(&second).to_string();
    assert!(
        written.is_ok() && second.starts_with("HTTP/1.1 200"),
        "after {first:?} the reused connection answered {second:?}"
    );
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_answered_before_their_body_stay_usable_or_say_close() {
    let server = TestServer::start().await;
    let body = bytes(4096, 3);
    // No token: a 401 challenge before the body is read (then 404, 416 and 400 answers, likewise).
    let head = format!(
        "POST /v2/early/app/blobs/uploads/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let first = reuse_after_an_early_answer(&server, &head, &body).await;
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    // An unknown upload: a 404 before the body is read.
    let token = token(&server, "early/app").await;
    let head = format!(
        "PATCH /v2/early/app/blobs/uploads/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let first = reuse_after_an_early_answer(&server, &head, &body).await;
    assert!(first.starts_with("HTTP/1.1 404"), "{first}");
    // A chunk out of order: a 416 before the body is read.
    let started = server
        .req(Method::POST, "/v2/early/app/blobs/uploads/")
        .await
        .send()
        .await
        .unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Range: 100-{}\r\nContent-Length: {}\r\n\r\n",
        99 + body.len(),
        body.len()
    );
    let first = reuse_after_an_early_answer(&server, &head, &body).await;
    assert!(first.starts_with("HTTP/1.1 416"), "{first}");
    // A monolithic upload with a malformed digest: a 400 before the body is read.
    let head = format!(
        "POST /v2/early/app/blobs/uploads/?digest=sha256:nothex HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let first = reuse_after_an_early_answer(&server, &head, &body).await;
    assert!(first.starts_with("HTTP/1.1 400"), "{first}");

    // A body too big to discard: the answer says the connection closes.
    let resp = server
        .anon(Method::POST, "/v2/early/app/blobs/uploads/")
        .body(bytes(1 << 20, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["connection"], "close");
}
