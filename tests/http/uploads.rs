//! Uploads: chunked and streamed PATCH, Content-Range checks, status, cancel, digest verification,
//! a restart in the middle, and concurrent pushes of the same blob.

use reqwest::{Method, StatusCode};

use crate::common::{TestServer, bytes, error_code, header, sha256};

/// POST …/blobs/uploads/ and return the session's Location.
async fn start_upload(server: &TestServer, repo: &str) -> String {
    let resp = server
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), "0-0");
    assert!(!header(&resp, "docker-upload-uuid").is_empty());
    assert_eq!(header(&resp, "content-length"), "0");
    header(&resp, "location").to_string()
}

async fn patch(server: &TestServer, location: &str, start: usize, chunk: &[u8]) -> reqwest::Response {
    let end = start + chunk.len() - 1;
    server
        .req(Method::PATCH, location)
        .await
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{start}-{end}"))
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap()
}

async fn put_digest(server: &TestServer, location: &str, digest: &str) -> reqwest::Response {
    server
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .await
        .send()
        .await
        .unwrap()
}

async fn read_blob(server: &TestServer, repo: &str, digest: &str) -> Vec<u8> {
    let resp = server
        .req(Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

/// Files under a folder of the data directory (uploads or blobs of the default registry).
fn files_under(server: &TestServer, sub: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out)
            } else {
                out.push(path)
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.dir.join("registries/default").join(sub), &mut out);
    out
}

#[tokio::test]
async fn chunked_upload_with_odd_chunk_sizes_commits_the_exact_bytes() {
    let server = TestServer::start().await;
    let data = bytes(1000 + 333 + 77 + 1 + 4096 + 65, 7);
    let location = start_upload(&server, "chunky/repo").await;
    let mut offset = 0;
    for size in [1000, 333, 77, 1, 4096, 65] {
        let resp = patch(&server, &location, offset, &data[offset..offset + size]).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        offset += size;
        assert_eq!(header(&resp, "range"), format!("0-{}", offset - 1));
        assert_eq!(header(&resp, "location"), location);
        let status = server.req(Method::GET, &location).await.send().await.unwrap();
        assert_eq!(status.status(), StatusCode::NO_CONTENT);
        assert_eq!(header(&status, "range"), format!("0-{}", offset - 1));
    }
    let digest = sha256(&data);
    let resp = put_digest(&server, &location, &digest).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "location"), format!("/v2/chunky/repo/blobs/{digest}"));
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(read_blob(&server, "chunky/repo", &digest).await, data);
    let ranged = server
        .req(Method::GET, &format!("/v2/chunky/repo/blobs/{digest}"))
        .await
        .header("range", "bytes=1300-1420")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.bytes().await.unwrap().as_ref(),
        &data[1300..=1420],
        "a range across chunk borders"
    );
    assert!(files_under(&server, "uploads").is_empty(), "no staged chunk is left");
    let gone = server.req(Method::GET, &location).await.send().await.unwrap();
    assert_eq!(error_code(gone).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn streamed_patch_without_content_range_then_put_with_the_last_chunk() {
    let server = TestServer::start().await;
    let data = bytes(300_001, 8);
    let location = start_upload(&server, "stream").await;
    let resp = server
        .req(Method::PATCH, &location)
        .await
        .body(data[..200_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), "0-199999");
    let digest = sha256(&data);
    let resp = server
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .await
        .header("content-range", "200000-300000")
        .body(data[200_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(read_blob(&server, "stream", &digest).await, data);
}

#[tokio::test]
async fn a_chunk_out_of_order_is_416_with_the_current_range() {
    let server = TestServer::start().await;
    let location = start_upload(&server, "order").await;
    assert_eq!(
        patch(&server, &location, 0, b"0123456789").await.status(),
        StatusCode::ACCEPTED
    );
    for start in [0, 5, 11] {
        let resp = patch(&server, &location, start, b"abc").await;
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "start {start}");
        assert_eq!(header(&resp, "range"), "0-9");
        assert_eq!(header(&resp, "location"), location);
        assert_eq!(error_code(resp).await, "BLOB_UPLOAD_INVALID");
    }
    let bad = server
        .req(Method::PATCH, &location)
        .await
        .header("content-range", "x-y")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        patch(&server, &location, 10, b"abc").await.status(),
        StatusCode::ACCEPTED
    );
    let digest = sha256(b"0123456789abc");
    assert_eq!(
        put_digest(&server, &location, &digest).await.status(),
        StatusCode::CREATED
    );
}

/// Two PATCHes of the same range, both streaming when they read the session: one is recorded, the other
/// refused, and the refused one's chunk is removed at once (not left for the commit to find).
#[tokio::test]
async fn of_two_racing_chunks_one_is_recorded_and_the_other_removed() {
    let server = TestServer::start().await;
    let location = start_upload(&server, "race").await;
    let mut senders = Vec::new();
    let mut requests = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
        let request = server
            .req(Method::PATCH, &location)
            .await
            .header("content-range", "0-9")
            .header("content-length", "10")
            .body(reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(
                rx,
            )));
        requests.push(tokio::spawn(async move { request.send().await.unwrap() }));
        senders.push(tx);
    }
    for (tx, first) in senders.iter().zip([b"aaaaa", b"bbbbb"]) {
        tx.send(Ok(bytes::Bytes::from_static(first))).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for (tx, rest) in senders.iter().zip([b"AAAAA", b"BBBBB"]) {
        tx.send(Ok(bytes::Bytes::from_static(rest))).await.unwrap();
    }
    drop(senders);
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap().status());
    }
    let winner: &[u8] = match statuses.as_slice() {
        [StatusCode::ACCEPTED, StatusCode::RANGE_NOT_SATISFIABLE] => b"aaaaaAAAAA",
        [StatusCode::RANGE_NOT_SATISFIABLE, StatusCode::ACCEPTED] => b"bbbbbBBBBB",
        other => panic!("one chunk recorded, one refused; got {other:?}"),
    };
    assert_eq!(
        files_under(&server, "uploads").len(),
        1,
        "only the recorded chunk is staged"
    );
    let digest = sha256(winner);
    assert_eq!(
        put_digest(&server, &location, &digest).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(read_blob(&server, "race", &digest).await, winner);
    assert!(files_under(&server, "uploads").is_empty());
}

#[tokio::test]
async fn a_digest_mismatch_is_refused_and_leaves_nothing_behind() {
    let server = TestServer::start().await;
    let location = start_upload(&server, "mismatch").await;
    patch(&server, &location, 0, b"the real content").await;
    let wrong = sha256(b"something else");
    let resp = put_digest(&server, &location, &wrong).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, "DIGEST_INVALID");
    let blob = server
        .req(Method::HEAD, &format!("/v2/mismatch/blobs/{wrong}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), StatusCode::NOT_FOUND);
    let real = server
        .req(
            Method::HEAD,
            &format!("/v2/mismatch/blobs/{}", sha256(b"the real content")),
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), StatusCode::NOT_FOUND);
    let session = server.req(Method::GET, &location).await.send().await.unwrap();
    assert_eq!(session.status(), StatusCode::NOT_FOUND);
    assert!(files_under(&server, "uploads").is_empty());
    assert!(files_under(&server, "blobs").is_empty());

    let resp = server
        .req(Method::POST, &format!("/v2/mismatch/blobs/uploads/?digest={wrong}"))
        .await
        .body("monolithic but wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await, "DIGEST_INVALID");
    assert!(files_under(&server, "uploads").is_empty() && files_under(&server, "blobs").is_empty());
}

#[tokio::test]
async fn put_needs_a_valid_digest_parameter() {
    let server = TestServer::start().await;
    let location = start_upload(&server, "needs-digest").await;
    let missing = server.req(Method::PUT, &location).await.send().await.unwrap();
    assert_eq!(error_code(missing).await, "DIGEST_INVALID");
    let malformed = put_digest(&server, &location, "sha256:1234").await;
    assert_eq!(error_code(malformed).await, "DIGEST_INVALID");
    let unknown_algorithm = put_digest(&server, &location, "md5:d41d8cd98f00b204e9800998ecf8427e").await;
    assert_eq!(unknown_algorithm.status(), StatusCode::BAD_REQUEST);
    let empty = put_digest(&server, &location, &sha256(b"")).await;
    assert_eq!(empty.status(), StatusCode::CREATED, "an empty upload is the empty blob");
}

#[tokio::test]
async fn cancel_ends_the_session() {
    let server = TestServer::start().await;
    let location = start_upload(&server, "cancel").await;
    patch(&server, &location, 0, b"partial").await;
    let resp = server.req(Method::DELETE, &location).await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let again = server.req(Method::GET, &location).await.send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(again).await, "BLOB_UPLOAD_UNKNOWN");
    let patch_after = patch(&server, &location, 7, b"more").await;
    assert_eq!(error_code(patch_after).await, "BLOB_UPLOAD_UNKNOWN");
    assert!(files_under(&server, "uploads").is_empty());
}

#[tokio::test]
async fn a_session_is_only_reachable_through_its_own_repository() {
    let server = TestServer::start().await;
    let location = start_upload(&server, "owner").await;
    let id = location.rsplit('/').next().unwrap();
    server.push_blob("intruder", b"x").await;
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let resp = server
            .req(method.clone(), &format!("/v2/intruder/blobs/uploads/{id}"))
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(resp).await, "BLOB_UPLOAD_UNKNOWN", "{method}");
    }
    let unknown = server
        .req(Method::GET, "/v2/owner/blobs/uploads/does-not-exist")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unknown).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn a_chunked_sha512_upload_is_verified_by_rehashing() {
    use sha2::{Digest as _, Sha512};
    let server = TestServer::start().await;
    let data = bytes(10_000, 9);
    let location = start_upload(&server, "five-twelve").await;
    patch(&server, &location, 0, &data[..4321]).await;
    patch(&server, &location, 4321, &data[4321..]).await;
    let digest = format!("sha512:{}", hex::encode(Sha512::digest(&data)));
    assert_eq!(
        put_digest(&server, &location, &digest).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(read_blob(&server, "five-twelve", &digest).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_survives_a_server_restart() {
    let server = TestServer::start().await;
    let data = bytes(70_001, 10);
    let location = start_upload(&server, "restart/me").await;
    assert_eq!(
        patch(&server, &location, 0, &data[..30_007]).await.status(),
        StatusCode::ACCEPTED
    );
    let (dir, tempdir) = server.stop().await;

    let server = TestServer::start_in(dir, |_| {}).await;
    let status = server.req(Method::GET, &location).await.send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), "0-30006");
    assert_eq!(
        patch(&server, &location, 30_007, &data[30_007..]).await.status(),
        StatusCode::ACCEPTED
    );
    let digest = sha256(&data);
    assert_eq!(
        put_digest(&server, &location, &digest).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(read_blob(&server, "restart/me", &digest).await, data);
    drop(server);
    drop(tempdir);
}

/// A crash between putting an upload's chunks in place and recording the blob (simulated: the server is
/// stopped, and the store's half of the commit is done through the library as the dead process did it)
/// leaves a session that the client's retried commit finishes, with nothing staged left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cut_between_placing_the_bytes_and_recording_the_blob_is_finished_by_a_retry() {
    let server = TestServer::start().await;
    let data = bytes(3 * 1024 * 1024 + 17, 12);
    let digest = sha256(&data);
    let location = start_upload(&server, "cut/commit").await;
    let half = data.len() / 2;
    for (offset, chunk) in [(0, &data[..half]), (half, &data[half..])] {
        assert_eq!(
            patch(&server, &location, offset, chunk).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let (dir, tempdir) = server.stop().await;

    let mut config = berth::config::Config::for_tests(&dir);
    if let Some(url) = crate::common::postgres_database_for(&dir).await {
        config.database.url = url;
    }
    let db = berth::metadata::connect(&config.database_url(), 2, std::time::Duration::from_secs(30), false)
        .await
        .unwrap();
    let id = location.rsplit('/').next().unwrap();
    let row = berth::metadata::uploads::find(&db, id).await.unwrap().unwrap();
    let chunks = berth::storage::Chunk::decode_list(&row.chunks).unwrap();
    assert_eq!(chunks.len(), 2);
    let store = berth::storage::registry_stores::RegistryStores::new(config.storage.clone())
        .get("default", None)
        .unwrap();
    let (_placed, _leftovers) = store
        .commit(&id.parse().unwrap(), &chunks, &digest.parse().unwrap())
        .await
        .unwrap();
    drop(db);

    let server = TestServer::start_in(dir.clone(), |_| {}).await;
    assert_eq!(
        put_digest(&server, &location, &digest).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(read_blob(&server, "cut/commit", &digest).await, data);
    let staged: Vec<_> = crate::gc::files_below(&dir.join("registries/default"))
        .into_iter()
        .filter(|(path, _)| path.to_string_lossy().contains("/uploads/"))
        .collect();
    assert!(staged.is_empty(), "nothing of the upload is left staged: {staged:?}");
    drop(server);
    drop(tempdir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_of_the_same_blob_all_succeed_and_store_it_once() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let data = std::sync::Arc::new(bytes(256 * 1024 + 3, 11));
    let digest = sha256(&data);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (server, data, digest) = (server.clone(), data.clone(), digest.clone());
        tasks.push(tokio::spawn(async move {
            let repo = format!("same/r{}", i % 3);
            if i % 2 == 0 {
                server.push_blob(&repo, &data).await;
            } else {
                let location = start_upload(&server, &repo).await;
                patch(&server, &location, 0, &data[..100_000]).await;
                patch(&server, &location, 100_000, &data[100_000..]).await;
                assert_eq!(
                    put_digest(&server, &location, &digest).await.status(),
                    StatusCode::CREATED
                );
            }
            repo
        }));
    }
    for task in tasks {
        let repo = task.await.unwrap();
        assert_eq!(read_blob(&server, &repo, &digest).await, *data);
    }
    let blob_files = files_under(&server, "blobs");
    let hex = digest.trim_start_matches("sha256:");
    assert!(
        blob_files.iter().all(|p| p.to_string_lossy().contains(hex)),
        "{blob_files:?}"
    );
    // A whole object is `<hex>.<upload id>`; parts are files in `<hex>.parts/<upload id>/`.
    let is_part = |p: &std::path::Path| p.to_string_lossy().contains(".parts/");
    let whole_objects = blob_files.iter().filter(|p| !is_part(p)).count();
    let part_sets: std::collections::HashSet<_> = blob_files
        .iter()
        .filter(|p| is_part(p))
        .filter_map(|p| p.parent().map(|d| d.to_path_buf()))
        .collect();
    assert_eq!(whole_objects + part_sets.len(), 1, "one stored copy: {blob_files:?}");
    assert!(files_under(&server, "uploads").is_empty());
}

#[tokio::test]
async fn idle_upload_sessions_are_cancelled_and_their_chunks_removed() {
    let server = TestServer::start_with(|c| c.storage.upload_max_idle_secs = 1).await;
    let location = start_upload(&server, "idle").await;
    assert_eq!(
        patch(&server, &location, 0, b"abandoned").await.status(),
        StatusCode::ACCEPTED
    );
    assert!(!files_under(&server, "uploads").is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = server.req(Method::GET, &location).await.send().await.unwrap().status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle session was never cancelled: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(files_under(&server, "uploads").is_empty());
    assert!(
        catalog(&server).await.is_empty(),
        "the abandoned upload's repository stayed"
    );
}

async fn catalog(server: &TestServer) -> Vec<String> {
    let resp = server.req(Method::GET, "/v2/_catalog").await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    serde_json::from_value(body["repositories"].clone()).unwrap()
}

/// An upload started on a new repository and cancelled (or ended by a digest mismatch) leaves no empty
/// repository behind; a repository that holds something keeps it.
#[tokio::test]
async fn an_upload_that_never_commits_leaves_no_repository_behind() {
    let server = TestServer::start().await;
    let cancelled = start_upload(&server, "cancelled").await;
    assert_eq!(catalog(&server).await, ["cancelled"], "listed while the upload runs");
    let resp = server.req(Method::DELETE, &cancelled).await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let mismatched = start_upload(&server, "mismatched").await;
    let wrong = sha256(b"something else");
    let resp = server
        .req(Method::PUT, &format!("{mismatched}?digest={wrong}"))
        .await
        .body("content")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(catalog(&server).await.is_empty());

    server.push_blob("kept", b"layer").await;
    let location = start_upload(&server, "kept").await;
    server.req(Method::DELETE, &location).await.send().await.unwrap();
    assert_eq!(catalog(&server).await, ["kept"]);
    // The name can be pushed again after its empty repository went.
    server.push_blob("cancelled", b"layer").await;
    assert_eq!(catalog(&server).await, ["cancelled", "kept"]);
}

/// With `storage.sync_writes` (files and SQLite commits synced to disk before answering), pushes of every
/// shape still commit the exact bytes: one chunk, several chunks, the empty blob, and an image.
#[tokio::test]
async fn with_synced_writes_uploads_and_images_commit_the_exact_bytes() {
    let server = TestServer::start_with(|config| config.storage.sync_writes = true).await;
    let whole = bytes(70_000, 3);
    let digest = server.push_blob("synced", &whole).await;
    assert_eq!(read_blob(&server, "synced", &digest).await, whole);
    let empty = server.push_blob("synced", b"").await;
    assert_eq!(read_blob(&server, "synced", &empty).await, b"");
    let location = start_upload(&server, "synced").await;
    let chunked = bytes(5000, 4);
    for (start, end) in [(0, 2000), (2000, 4500), (4500, 5000)] {
        assert_eq!(
            patch(&server, &location, start, &chunked[start..end]).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let digest = sha256(&chunked);
    assert_eq!(
        put_digest(&server, &location, &digest).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(read_blob(&server, "synced", &digest).await, chunked);
    let manifest_digest = server.push_image("synced", "v1", b"layer bytes").await;
    let resp = server
        .req(Method::GET, "/v2/synced/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "docker-content-digest"), manifest_digest);
}

/// Property: any bytes, pushed in any chunking (sizes that are not multiples of the hash block included),
/// read back identical and under their digest.
#[test]
fn any_bytes_in_any_chunking_read_back_identical() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start());
    let cases = proptest::test_runner::Config {
        cases: 24,
        ..Default::default()
    };
    let chunked_bytes = (
        proptest::collection::vec(any::<u8>(), 0..300_000),
        proptest::collection::vec(1usize..100_000, 0..6),
    );
    proptest::test_runner::TestRunner::new(cases)
        .run(&chunked_bytes, |(data, sizes)| {
            runtime.block_on(async {
                let location = start_upload(&server, "prop").await;
                let mut start: usize = 0;
                for size in sizes.into_iter().chain([usize::MAX]) {
                    let end = start.saturating_add(size).min(data.len());
                    if end > start {
                        let resp = patch(&server, &location, start, &data[start..end]).await;
                        assert_eq!(resp.status(), StatusCode::ACCEPTED);
                        start = end;
                    }
                }
                let digest = sha256(&data);
                assert_eq!(
                    put_digest(&server, &location, &digest).await.status(),
                    StatusCode::CREATED
                );
                let read = server
                    .req(Method::GET, &format!("/v2/prop/blobs/{digest}"))
                    .await
                    .send()
                    .await
                    .unwrap();
                assert_eq!(read.status(), StatusCode::OK);
                assert!(
                    read.bytes().await.unwrap() == data,
                    "{} bytes read back changed",
                    data.len()
                );
            });
            Ok(())
        })
        .unwrap();
}
