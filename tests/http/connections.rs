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
