//! The connection layer against raw sockets: header-read and keep-alive idle timeouts, the per-address
//! and global connection caps, and HTTP/2 without TLS refused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::TestServer;

/// The server's address.
pub fn addr(server: &TestServer) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection to the server from `local` (a loopback address of the 127/8 block).
pub async fn connect_from(server: &TestServer, local: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((local, 0).into()).unwrap();
    socket.connect(addr(server)).await.unwrap()
}

/// Reads until the server closes the connection or `limit` passes; returns what was read and whether it
/// closed.
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (seen, false),
            Ok(Ok(0) | Err(_)) => return (seen, true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_trickling_and_idle_kept_alive_sockets_are_closed_after_the_header_read_timeout() {
    let server = TestServer::start_with(|c| c.http.header_read_timeout_secs = 1).await;
    let started = Instant::now();
    let mut silent = connect_from(&server, [127, 0, 0, 1]).await;
    let mut idle = connect_from(&server, [127, 0, 0, 1]).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut trickling = connect_from(&server, [127, 0, 0, 1]).await;
    let trickle = tokio::spawn(async move {
        // One byte every 200 ms: never a whole header block in the 14 s this would take.
        for byte in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: yes\r\nX-Slower: yes\r\n\r\n".iter() {
            if trickling.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });

    let (_, silent_closed) = read_until_closed(&mut silent, Duration::from_secs(8)).await;
    assert!(silent_closed, "a socket that sends nothing is closed");
    let (answer, idle_closed) = read_until_closed(&mut idle, Duration::from_secs(8)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "it was served first"
    );
    assert!(idle_closed, "a kept-alive connection idle after its response is closed");
    let trickler_cut = tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .unwrap()
        .unwrap();
    assert!(trickler_cut, "headers trickled a byte at a time are cut off");
    assert!(started.elapsed() < Duration::from_secs(12));
    assert_eq!(
        server.anon(Method::GET, "/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holding_idle_sockets_leaves_room_for_health_checks_and_real_clients() {
    let server = TestServer::start_with(|c| {
        c.http.max_connections = 12;
        c.http.max_connections_per_ip = 4;
    })
    .await;
    let digest = server.push_blob("capped/app", b"still served").await;

    let mut attacker = Vec::new();
    for _ in 0..40 {
        attacker.push(connect_from(&server, [127, 0, 0, 2]).await);
    }
    let mut refused = 0;
    for socket in &mut attacker {
        if read_until_closed(socket, Duration::from_millis(300)).await.1 {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 36,
        "only 4 connections of one address are kept; the others are closed at once"
    );

    assert_eq!(
        server.anon(Method::GET, "/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
    let pulled = server
        .req(Method::GET, &format!("/v2/capped/app/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), b"still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_without_tls_is_refused_not_routed() {
    let server = TestServer::start().await;
    let mut h2c = connect_from(&server, [127, 0, 0, 1]).await;
    // The HTTP/2 connection preface, then an empty SETTINGS frame.
    h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut h2c, Duration::from_secs(5)).await;
    assert!(closed, "the connection is closed");
    assert!(
        answer.is_empty(),
        "no HTTP/2 frames (a SETTINGS frame would mean h2c is served): {answer:?}"
    );
    assert_eq!(
        server.anon(Method::GET, "/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_global_cap_wait_their_turn_and_are_served() {
    let server = TestServer::start_with(|c| {
        c.http.max_connections = 4;
        c.http.max_connections_per_ip = 0;
        c.http.header_read_timeout_secs = 2;
    })
    .await;
    let mut silent = Vec::new();
    for last in 3..7 {
        silent.push(connect_from(&server, [127, 0, 0, last]).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fifth connection waits in the listen queue while the four hold every slot, then is served once
    // the header-read timeout has closed them.
    let asked = Instant::now();
    let mut fifth = connect_from(&server, [127, 0, 0, 7]).await;
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut fifth, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "answered after {:?}, before a slot was free",
        asked.elapsed()
    );
    for socket in &mut silent {
        assert!(read_until_closed(socket, Duration::from_secs(5)).await.1);
    }
}

/// Under an open-file limit of 300 (hard 600), `berth serve` raises its soft limit to the hard one and caps
/// connections at (600 - 256) / 2; 400 idle sockets, more than the limit it was given, never make
/// `accept` fail, and health is answered once the header-read timeout has closed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_open_file_limit_idle_sockets_never_exhaust_the_descriptors() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -Sn 300 && ulimit -Hn 600 && exec \"$0\" serve --log-format json",
            env!("CARGO_BIN_EXE_berth"),
        ])
        .env("BERTH_HTTP_BIND", "127.0.0.1:0")
        .env("BERTH_DATA_DIR", dir.path())
        .env("BERTH_OPERATOR_TOKEN", crate::process::OPERATOR)
        .env("BERTH_HEADER_READ_TIMEOUT_SECS", "2")
        .env("BERTH_MAX_CONNECTIONS_PER_IP", "0")
        .env("BERTH_LOG_LEVEL", "info")
        .env_remove("BERTH_DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut cap, mut address) = (None, None);
    while address.is_none() || cap.is_none() {
        let line = lines.next_line().await.unwrap().expect("berth serve logs its start");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        match json["fields"]["message"].as_str() {
            Some("connection caps") => cap = json["fields"]["max_connections"].as_u64(),
            Some("berth listening") => address = json["fields"]["address"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    assert_eq!(cap, Some(172), "(600 - 256) / 2");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &open_files[3..5],
        ["600", "600"],
        "the soft limit is raised to the hard one"
    );
    let failed_accepts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = failed_accepts.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("accept failed") {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });

    let addr: SocketAddr = address.unwrap().parse().unwrap();
    let mut idle = Vec::new();
    for i in 0..400u32 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 1, (i % 200 + 1) as u8], 0).into()).unwrap();
        idle.push(socket.connect(addr).await.unwrap());
    }
    let asked = Instant::now();
    let mut health = None;
    while health.is_none() && asked.elapsed() < Duration::from_secs(30) {
        let sent = reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        health = sent.ok().map(|r| r.status());
    }
    assert_eq!(health, Some(StatusCode::OK));
    assert_eq!(failed_accepts.load(std::sync::atomic::Ordering::Relaxed), 0);
    drop(idle);
}
