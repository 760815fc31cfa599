//! The garbage collector over HTTP: what it takes after the grace period and what it keeps, the race a
//! blob check and a collection must not lose, the durable queue after a crash, the sweep of unknown
//! objects, emptied stores of deleted registries, the lease, and the API and metrics.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{OCI_MANIFEST, TestServer, bytes, error_code, execute_on_server_db, sha256};
use crate::usage::usage;

/// A grace period short enough for tests, with no scheduled collections.
pub fn quick_collector(config: &mut berth::config::Config) {
    config.gc.grace_secs = 2;
    config.gc.interval_secs = 0;
}

/// Lets everything pushed so far go stale past the grace period of [`quick_collector`].
pub async fn outlive_grace() {
    tokio::time::sleep(Duration::from_millis(3100)).await;
}

/// Runs a collection of registry `name` (dry with `dry`) and returns its report.
pub async fn collect(server: &TestServer, name: &str, dry: bool) -> Value {
    let query = if dry { "?dryRun=true" } else { "" };
    let resp = server
        .api(Method::POST, &format!("/registries/{name}/gc{query}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Every file below `dir` with its size.
pub fn files_below(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            found.extend(files_below(&entry.path()));
        } else {
            found.push((entry.path(), meta.len()));
        }
    }
    found
}

/// The bytes of the default registry's store on disk.
pub fn stored_on_disk(server: &TestServer) -> u64 {
    files_below(&server.dir.join("registries/default"))
        .iter()
        .map(|(_, len)| len)
        .sum()
}

async fn blob_status(server: &TestServer, repo: &str, digest: &str) -> StatusCode {
    let path = format!("/v2/{repo}/blobs/{digest}");
    server.req(Method::HEAD, &path).await.send().await.unwrap().status()
}

/// Deletes manifest `digest` of `repo` through the data plane, expecting 202.
pub(crate) async fn delete_manifest(server: &TestServer, repo: &str, digest: &str) {
    let path = format!("/v2/{repo}/manifests/{digest}");
    let resp = server.req(Method::DELETE, &path).await.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn unreferenced_blobs_go_after_the_grace_period_and_usage_matches_the_disk() {
    let server = TestServer::start_with(quick_collector).await;
    let (kept_layer, dropped_layer, stray) = (bytes(3000, 1), bytes(5000, 2), bytes(700, 3));
    server.push_image("app", "v1", &kept_layer).await;
    let v2 = server.push_image("app", "v2", &dropped_layer).await;
    let stray_digest = server.push_blob("app", &stray).await;
    delete_manifest(&server, "app", &v2).await;

    let fresh = collect(&server, "default", false).await;
    assert_eq!(
        fresh["blobsRemoved"], 0,
        "nothing is collected within the grace period: {fresh}"
    );
    outlive_grace().await;
    let dry = collect(&server, "default", true).await;
    assert_eq!(
        (dry["dryRun"].clone(), dry["linksRemoved"].clone()),
        (Value::Bool(true), 2.into())
    );
    assert_eq!(
        (dry["blobsRemoved"].clone(), dry["bytesReclaimed"].clone()),
        (2.into(), 5700.into())
    );
    assert_eq!(
        collect(&server, "default", true).await["blobsRemoved"],
        2,
        "a dry run changes nothing"
    );

    let report = collect(&server, "default", false).await;
    assert_eq!(report["blobsRemoved"], 2, "{report}");
    assert_eq!(report["bytesReclaimed"], 5700);
    assert_eq!(blob_status(&server, "app", &stray_digest).await, StatusCode::NOT_FOUND);
    assert_eq!(
        blob_status(&server, "app", &sha256(&dropped_layer)).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(blob_status(&server, "app", &sha256(&kept_layer)).await, StatusCode::OK);
    let pulled = server
        .req(Method::GET, "/v2/app/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);

    let usage = usage(&server).await;
    assert_eq!(usage["UnreferencedSize"], 0, "{usage}");
    assert_eq!(
        usage["Size"].as_u64().unwrap(),
        stored_on_disk(&server),
        "usage is what is on disk"
    );

    let status = server.api_get("/registries/default/gc").await;
    assert_eq!(
        (status["blobsRemoved"].clone(), status["totalBytesReclaimed"].clone()),
        (2.into(), 5700.into())
    );
    assert_eq!(status["queuedBlobs"], 0, "{status}");
    assert!(status["lastRunFinishedAt"].is_string() && status["lastSweptAt"].is_string());
    let all = server.api_get("/gc").await;
    assert_eq!(all["value"][0]["registry"], "default", "{all}");
    assert_eq!(
        server
            .metric("berth_gc_reclaimed_bytes_total{registry=\"default\"}")
            .await,
        5700.0
    );
}

/// The race that breaks other registries' collectors: a client finds a blob present (so it skips the
/// upload), then pushes a manifest naming it. The check touches the blob, so a collection between the
/// two keeps it; a collection before the check takes it, and the check says so.
#[tokio::test]
async fn a_blob_found_present_is_still_there_for_the_manifest_naming_it() {
    let server = TestServer::start_with(quick_collector).await;
    let layer = bytes(4000, 9);
    let manifest = server.image_manifest("app", &layer, "").await;
    outlive_grace().await;
    assert_eq!(blob_status(&server, "app", &sha256(&layer)).await, StatusCode::OK);
    let config = sha256(br#"{"architecture":"amd64","os":"linux"}"#);
    assert_eq!(blob_status(&server, "app", &config).await, StatusCode::OK);
    let report = collect(&server, "default", false).await;
    assert_eq!(report["blobsRemoved"], 0, "both were just checked: {report}");
    let put = server.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(put.status(), StatusCode::CREATED);

    // The other order: collected first, then the check finds nothing and the client uploads.
    let other = bytes(4000, 10);
    let other_digest = server.push_blob("app", &other).await;
    outlive_grace().await;
    assert_eq!(collect(&server, "default", false).await["blobsRemoved"], 1);
    assert_eq!(blob_status(&server, "app", &other_digest).await, StatusCode::NOT_FOUND);
    server.push_blob("app", &other).await;
    assert_eq!(blob_status(&server, "app", &other_digest).await, StatusCode::OK);
}

/// A crash between a collection's commit and the deletion of its objects leaves them queued: the next
/// run deletes them, once, and an object already gone counts as deleted.
#[tokio::test]
async fn queued_objects_are_deleted_after_a_restart() {
    let server = TestServer::start_with(quick_collector).await;
    let (one, two) = (bytes(1500, 1), bytes(2500, 2));
    let (d1, d2) = (server.push_blob("app", &one).await, server.push_blob("app", &two).await);
    let image = bytes(800, 3);
    server.push_image("app", "v1", &image).await;
    let before = stored_on_disk(&server);
    // The state a crash right after the metadata commit leaves: the rows gone, the objects queued.
    let queue = "INSERT INTO gc_queue (registry_id, object_key, parts, size, queued_at) \
                 SELECT l.registry_id, b.object_key, b.parts, b.size, 0 FROM blobs b JOIN repository_blobs l \
                 ON l.registry_id = b.registry_id AND l.digest = b.digest WHERE b.digest = $1";
    for digest in [&d1, &d2] {
        assert_eq!(execute_on_server_db(&server, queue, digest).await.unwrap(), 1);
        execute_on_server_db(&server, "DELETE FROM repository_blobs WHERE digest = $1", digest)
            .await
            .unwrap();
        execute_on_server_db(&server, "DELETE FROM blobs WHERE digest = $1", digest)
            .await
            .unwrap();
    }
    // One of them was already deleted when the process died.
    let gone = files_below(&server.dir.join("registries/default/blobs"))
        .into_iter()
        .find(|(path, _)| path.to_string_lossy().contains(&d1["sha256:".len()..]))
        .unwrap();
    std::fs::remove_file(&gone.0).unwrap();
    let (dir, tempdir) = server.stop().await;
    let server = TestServer::start_in(dir, quick_collector).await;
    let status = server.api_get("/registries/default/gc").await;
    assert_eq!(
        (status["queuedBlobs"].clone(), status["queuedBytes"].clone()),
        (2.into(), 4000.into())
    );
    collect(&server, "default", false).await;
    assert_eq!(server.api_get("/registries/default/gc").await["queuedBlobs"], 0);
    assert_eq!(stored_on_disk(&server), before - 4000);
    assert_eq!(usage(&server).await["Size"].as_u64().unwrap(), stored_on_disk(&server));
    let pulled = server
        .req(Method::GET, "/v2/app/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    drop(tempdir);
}

/// Objects the database does not know (a crash between writing and recording) are swept once older
/// than the grace period; objects it knows, and young ones, stay.
#[tokio::test]
async fn the_sweep_deletes_old_objects_the_database_does_not_know() {
    let server = TestServer::start_with(quick_collector).await;
    let layer = bytes(2000, 4);
    server.push_image("app", "v1", &layer).await;
    let open = server
        .req(Method::POST, "/v2/app/blobs/uploads/")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::ACCEPTED);
    let location = open.headers()["location"].to_str().unwrap().to_owned();
    let patched = server
        .req(Method::PATCH, &location)
        .await
        .header("content-type", "application/octet-stream")
        .body(bytes(300, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(
        patched.status(),
        StatusCode::ACCEPTED,
        "an upload in progress is known by its session"
    );
    let store = server.dir.join("registries/default");
    let strays = [
        store.join("blobs/sha256/ab/abababab.0b6c1a5e-dead"),
        store.join("uploads/0b6c1a5e-dead.00000000-feed"),
    ];
    let young = store.join("uploads/0b6c1a5e-beef.00000000-feed");
    for path in strays.iter().chain([&young]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"stray").unwrap();
    }
    outlive_grace().await;
    let known_before = stored_on_disk(&server);
    std::fs::write(&young, b"stray").unwrap();
    let report = collect(&server, "default", false).await;
    assert_eq!(report["objectsSwept"], 2, "{report}");
    assert!(strays.iter().all(|p| !p.exists()));
    assert!(young.exists(), "younger than the grace period");
    assert_eq!(stored_on_disk(&server), known_before - 10);
    let finished = server
        .req(Method::PUT, &format!("{location}?digest={}", sha256(&bytes(300, 5))))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished.status(),
        StatusCode::CREATED,
        "the upload in progress kept its chunk"
    );
    let pulled = server
        .req(Method::GET, &format!("/v2/app/blobs/{}", sha256(&layer)))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.bytes().await.unwrap(), layer);
}

/// Deleting a registry empties its store; a registry created later with the same name starts empty, and
/// none may take a location while a deleted registry's store there is still being emptied.
#[tokio::test]
async fn a_deleted_registry_s_store_is_emptied_and_its_name_starts_afresh() {
    let server = TestServer::start_with(|c| {
        quick_collector(c);
        c.gc.interval_secs = 1;
    })
    .await;
    let create = |name: &'static str| {
        server
            .api(Method::POST, "/registries")
            .json(&serde_json::json!({ "name": name, "adminUserEnabled": true }))
            .send()
    };
    assert_eq!(create("gone01").await.unwrap().status(), StatusCode::CREATED);
    let folder = server.dir.join("registries/gone01");
    std::fs::create_dir_all(folder.join("blobs")).unwrap();
    std::fs::write(folder.join("blobs/x"), b"tenant bytes").unwrap();
    let deleted = server.api(Method::DELETE, "/registries/gone01").send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(!folder.exists(), "emptied before the answer");
    assert_eq!(create("gone01").await.unwrap().status(), StatusCode::CREATED);
    assert!(files_below(&folder).is_empty());

    // A store still being emptied (its remover died): the name waits until the collector empties it.
    std::fs::create_dir_all(folder.join("blobs")).unwrap();
    std::fs::write(folder.join("blobs/y"), b"tenant bytes").unwrap();
    let sql = "INSERT INTO store_removals (name, storage_url, claimed_until, queued_at) VALUES ($1, NULL, 0, 0)";
    let row = "DELETE FROM registries WHERE name = $1";
    execute_on_server_db(&server, row, "gone01").await.unwrap();
    execute_on_server_db(&server, sql, "gone01").await.unwrap();
    let refused = create("gone01").await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(refused.text().await.unwrap().contains("still being emptied"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = create("gone01").await.unwrap();
        if resp.status() == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "the collector empties the store");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(files_below(&folder).is_empty());
}

/// One collector at a time: a requested collection waits for the lease another holder has.
#[tokio::test]
async fn a_collection_waits_for_the_one_running() {
    let server = TestServer::start_with(quick_collector).await;
    let until = berth::metadata::now() + 3;
    let sql = format!("INSERT INTO leases (name, holder, expires_at) VALUES ($1, 'another node', {until})");
    execute_on_server_db(&server, &sql, "collector").await.unwrap();
    let started = Instant::now();
    collect(&server, "default", false).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for the lease to expire"
    );
}

/// A manifest naming a blob the collector took is refused as such; deleting an index's child is refused.
#[tokio::test]
async fn a_manifest_naming_a_collected_blob_is_refused_as_unknown() {
    let server = TestServer::start_with(quick_collector).await;
    let layer = bytes(1000, 7);
    let manifest = server.image_manifest("app", &layer, "").await;
    outlive_grace().await;
    collect(&server, "default", false).await;
    let put = server.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(put.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(put).await, "MANIFEST_BLOB_UNKNOWN");
}

/// On Postgres a collection and a manifest push naming the blob it takes are exclusive through row
/// locks, whichever comes first: each step is held open on a connection of its own while the other
/// runs. (On SQLite both run on the one writer, one after the other.)
#[tokio::test]
async fn on_postgres_a_collection_and_a_manifest_push_wait_for_each_other() {
    use sqlx::Connection;
    let server = std::sync::Arc::new(TestServer::start_with(quick_collector).await);
    let Some(url) = crate::common::postgres_database_for(&server.dir).await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (layer, other) = (bytes(1000, 11), bytes(1000, 12));
    let manifest = server.image_manifest("app", &layer, "").await;
    let other_manifest = server.image_manifest("app", &other, "").await;
    let config = sha256(br#"{"architecture":"amd64","os":"linux"}"#);
    outlive_grace().await;

    // A collection has taken the layer's link and not committed yet: the push waits, then is told.
    let mut collection = conn.begin().await.unwrap();
    sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
        .bind(sha256(&layer))
        .execute(&mut *collection)
        .await
        .unwrap();
    let pushing = tokio::spawn({
        let (server, manifest) = (server.clone(), manifest.clone());
        async move { server.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!pushing.is_finished(), "the push waits for the collection");
    collection.commit().await.unwrap();
    let pushed = pushing.await.unwrap();
    assert_eq!(pushed.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(pushed).await, "MANIFEST_BLOB_UNKNOWN");

    // A push has touched the links it names and not committed yet: the collection waits, then keeps them.
    let mut push = conn.begin().await.unwrap();
    for digest in [sha256(&other), config] {
        sqlx::query("UPDATE repository_blobs SET touched_at = $2 WHERE digest = $1")
            .bind(digest)
            .bind(berth::metadata::now())
            .execute(&mut *push)
            .await
            .unwrap();
    }
    let collecting = tokio::spawn({
        let server = server.clone();
        async move { collect(&server, "default", false).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!collecting.is_finished(), "the collection waits for the push");
    push.commit().await.unwrap();
    let report = collecting.await.unwrap();
    assert_eq!(
        report["blobsRemoved"], 1,
        "only the first layer, whose link went: {report}"
    );
    let put = server.put_manifest("app", "v2", OCI_MANIFEST, &other_manifest).await;
    assert_eq!(put.status(), StatusCode::CREATED);
}
