//! Path-like and malformed names are 400s, never a path outside the store. Sent over a raw socket so no
//! client normalises `..` or `%2e` first.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::TestServer;

/// Sends one raw HTTP/1.1 request and returns the status code and body.
async fn raw(server: &TestServer, method: &str, path: &str) -> (u16, String) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test]
async fn path_like_and_malformed_names_are_refused_with_name_invalid() {
    let server = TestServer::start().await;
    let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let long = "a".repeat(256);
    let paths = [
        "/v2/../../etc/tags/list".to_string(),
        "/v2/a/../b/tags/list".to_string(),
        "/v2/%2e%2e/tags/list".to_string(),
        "/v2/a/%2e%2e/%2e%2e/tags/list".to_string(),
        "/v2/a%2f..%2f..%2fb/tags/list".to_string(),
        "/v2/Upper/tags/list".to_string(),
        "/v2/UPPER/case/manifests/latest".to_string(),
        format!("/v2/{long}/tags/list"),
        format!("/v2/{long}/blobs/{digest}"),
        "/v2/a%00b/tags/list".to_string(),
        "/v2/%ff%fe/tags/list".to_string(),
        "/v2/a//b/tags/list".to_string(),
        "/v2/-a/blobs/uploads/".to_string(),
    ];
    for path in &paths {
        let (status, body) = raw(&server, "GET", path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("NAME_INVALID"), "{path}: {body}");
    }
    let (status, body) = raw(&server, "POST", "/v2/%2e%2e/blobs/uploads/").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        !server
            .dir
            .join("registries/default/..")
            .join("..")
            .join("blobs")
            .exists()
    );
}

#[tokio::test]
async fn bad_blob_digests_are_400s() {
    let server = TestServer::start().await;
    for (path, code) in [
        ("/v2/repo/blobs/sha256:abc", "DIGEST_INVALID"),
        ("/v2/repo/blobs/sha256:..%2f..%2fetc", "DIGEST_INVALID"),
        ("/v2/repo/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", "DIGEST_INVALID"),
    ] {
        let (status, body) = raw(&server, "GET", path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(code), "{path}: {body}");
    }
}
