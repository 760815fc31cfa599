//! A soak of the collector under concurrent pushes: clients push images sharing base layers (mounting
//! them into a second repository), re-point their tags and delete the manifests they replaced, and pull
//! what they pushed, while the collector runs every second with a grace period of a few seconds. No push
//! may meet BLOB_UNKNOWN or MANIFEST_BLOB_UNKNOWN; at the end every live tag copies out whole with skopeo
//! and the store holds exactly the bytes of the referenced blobs. `BERTH_SOAK_SECS` sets how long the
//! clients push (20 s by default; `bench/soak.sh` runs it longer).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::common::{OCI_MANIFEST, TestServer, bytes, sha256};
use crate::gc::{collect, stored_on_disk};
use crate::skopeo::{Setup, tagged_digest};

const CLIENTS: u8 = 4;
const GRACE_SECS: u64 = 3;
/// A client's own layer and config come back after this many rounds: some after they were collected
/// (pushed again), some while they wait for collection (found present and referenced again).
const ROTATION: usize = 60;

/// What went wrong, as each client saw it.
type Failures = Arc<Mutex<Vec<String>>>;

fn fail(failures: &Failures, what: String) {
    failures.lock().unwrap().push(what);
}

/// Makes `data` a blob of `repo` as docker does: HEAD it, and only if it is missing mount it from
/// `from` (when given) or upload it.
async fn ensure_blob(server: &TestServer, repo: &str, from: Option<&str>, data: &[u8], failures: &Failures) {
    let digest = sha256(data);
    let head = server
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    if head.status() == StatusCode::OK {
        return;
    }
    let path = match from {
        Some(from) => format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
        None => format!("/v2/{repo}/blobs/uploads/"),
    };
    let started = server.req(Method::POST, &path).await.send().await.unwrap();
    if started.status() == StatusCode::CREATED {
        return;
    }
    if started.status() != StatusCode::ACCEPTED {
        return fail(failures, format!("POST {path}: {}", started.status()));
    }
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let put = server
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .await
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    if put.status() != StatusCode::CREATED {
        let status = put.status();
        fail(
            failures,
            format!("upload of {digest}: {status} {}", put.text().await.unwrap()),
        );
    }
}

/// One client until `until`: pushes an image of three base layers' one, a layer of its own and a config
/// (both repeating every [`ROTATION`] rounds), tags it, deletes the manifest the tag had, and pulls the image.
/// Returns its repository and tag.
async fn client(server: Arc<TestServer>, id: u8, until: Instant, failures: Failures) -> (String, String) {
    let (repo, from) = if id.is_multiple_of(2) {
        ("soak", None)
    } else {
        ("soak-mirror", Some("soak"))
    };
    let tag = format!("client{id}");
    let bases: Vec<Vec<u8>> = (0..3).map(|n| bytes(64 * 1024, 100 + n)).collect();
    let mut replaced: Option<String> = None;
    let mut round = 0usize;
    while Instant::now() < until {
        let base = &bases[round % 3];
        let own = bytes(20_000 + usize::from(id), (round % ROTATION) as u8);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","client":{id},"round":{}}}"#,
            round % ROTATION
        );
        for blob in [base.as_slice(), &own, config.as_bytes()] {
            ensure_blob(&server, repo, from, blob, &failures).await;
        }
        let layer = |data: &[u8]| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}"#,
                sha256(data),
                data.len()
            )
        };
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{},{}]}}"#,
            sha256(config.as_bytes()),
            config.len(),
            layer(base),
            layer(&own)
        );
        let digest = sha256(manifest.as_bytes());
        let put = server.put_manifest(repo, &tag, OCI_MANIFEST, &manifest).await;
        if put.status() != StatusCode::CREATED {
            let status = put.status();
            fail(
                &failures,
                format!("manifest PUT {repo}:{tag}: {status} {}", put.text().await.unwrap()),
            );
        }
        if let Some(old) = replaced.replace(digest.clone()).filter(|old| *old != digest) {
            let path = format!("/v2/{repo}/manifests/{old}");
            let deleted = server.req(Method::DELETE, &path).await.send().await.unwrap();
            if deleted.status() != StatusCode::ACCEPTED {
                fail(&failures, format!("DELETE {path}: {}", deleted.status()));
            }
        }
        for blob in [base.as_slice(), &own, config.as_bytes()] {
            let path = format!("/v2/{repo}/blobs/{}", sha256(blob));
            let got = server.req(Method::GET, &path).await.send().await.unwrap();
            if got.status() != StatusCode::OK || got.bytes().await.unwrap() != blob {
                fail(&failures, format!("GET {path} of a tagged image failed"));
            }
        }
        round += 1;
    }
    eprintln!("client {id}: {round} rounds");
    (repo.to_owned(), tag)
}

#[tokio::test]
async fn pushes_deletes_and_pulls_never_lose_a_blob_to_the_collector() {
    let secs: u64 = std::env::var("BERTH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let server = Arc::new(
        TestServer::start_with(|c| {
            c.gc.grace_secs = GRACE_SECS;
            c.gc.interval_secs = 1;
        })
        .await,
    );
    let failures: Failures = Arc::default();
    let until = Instant::now() + Duration::from_secs(secs);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(server.clone(), id, until, failures.clone())))
        .collect();
    let mut tags = Vec::new();
    for c in clients {
        tags.push(c.await.unwrap());
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let status = server.api_get("/registries/default/gc").await;
    assert!(
        status["totalBlobsRemoved"].as_i64().unwrap() > 0,
        "the collector ran and took something: {status}"
    );

    tokio::time::sleep(Duration::from_secs(GRACE_SECS + 1)).await;
    collect(&server, "default", false).await;
    let usage = crate::usage::usage(&server).await;
    assert_eq!(usage["UnreferencedSize"], 0, "{usage}");
    assert_eq!(
        usage["Size"].as_u64().unwrap(),
        stored_on_disk(&server),
        "the store holds what is referenced"
    );

    let server = Arc::try_unwrap(server).ok().unwrap();
    let skopeo = Setup::with_server(server, None);
    for (repo, tag) in tags {
        let layout = skopeo.path(&format!("{repo}-{tag}"));
        skopeo
            .pull_as(None, &repo, &tag, &layout, "copied")
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let pulled = skopeo
            .server
            .req(Method::HEAD, &format!("/v2/{repo}/manifests/{tag}"))
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(
            tagged_digest(&layout, "copied"),
            crate::common::header(&pulled, "docker-content-digest")
        );
    }
}
