//! Registries whose blobs live in S3 or Azure Blob: pushes (chunked, monolithic, an image) and pulls byte
//! for byte, the objects in the bucket are the uploaded chunks themselves (no copy at commit), a digest
//! mismatch leaves nothing, deleting the registry empties its prefix, and optional presigned redirects.
//! They run against the servers named by `TEST_S3_ENDPOINT` (S3-compatible, e.g. moto) and
//! `TEST_AZURITE_ENDPOINT` (Azurite), which `.ci/run` starts; without them they skip.

use std::sync::Arc;

use berth::config::{Config, StorageConfig};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{OCI_MANIFEST, TestServer, bytes, error_code, header, sha256};

/// Azurite's well-known development account and key (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A cloud backend under test: how to configure the server for it and where a registry's blobs go.
struct Backend {
    storage: StorageConfig,
    /// The registry's storage location (a fresh prefix in the test bucket or container).
    location: String,
    /// The same location opened directly, to look at the objects.
    objects: Arc<dyn ObjectStore>,
}

impl Backend {
    /// The S3 backend, when `TEST_S3_ENDPOINT` is set.
    fn s3() -> Option<Backend> {
        let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") else {
            eprintln!("skipping: TEST_S3_ENDPOINT is not set (see .ci/run)");
            return None;
        };
        let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "berth-test".into());
        let mut storage = base_storage();
        storage.s3.allow_http = endpoint.starts_with("http://");
        storage.s3.endpoint = endpoint;
        storage.s3.region = "us-east-1".into();
        storage.s3.access_key_id = std::env::var("TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
        storage.s3.secret_access_key = std::env::var("TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into());
        Some(Backend::at(
            storage,
            format!("s3://{bucket}/berth-{}", uuid::Uuid::new_v4().simple()),
        ))
    }

    /// The Azure Blob backend, when `TEST_AZURITE_ENDPOINT` is set.
    fn azure() -> Option<Backend> {
        let Ok(endpoint) = std::env::var("TEST_AZURITE_ENDPOINT") else {
            eprintln!("skipping: TEST_AZURITE_ENDPOINT is not set (see .ci/run)");
            return None;
        };
        let container = std::env::var("TEST_AZURITE_CONTAINER").unwrap_or_else(|_| "berth-test".into());
        let mut storage = base_storage();
        storage.azure.allow_http = endpoint.starts_with("http://");
        storage.azure.endpoint = endpoint;
        storage.azure.account = AZURITE_ACCOUNT.into();
        storage.azure.access_key = AZURITE_KEY.into();
        Some(Backend::at(
            storage,
            format!("azure://{container}/berth-{}", uuid::Uuid::new_v4().simple()),
        ))
    }

    fn at(storage: StorageConfig, location: String) -> Backend {
        let objects = berth::storage::cloud::open(&location, &storage).unwrap().unwrap().store;
        Backend {
            storage,
            location,
            objects,
        }
    }

    async fn start_server(&self, redirect: bool) -> TestServer {
        let storage = StorageConfig {
            redirect,
            ..self.storage.clone()
        };
        TestServer::start_with(move |config| {
            config.storage = StorageConfig {
                data_dir: config.storage.data_dir.clone(),
                ..storage
            };
            crate::gc::quick_collector(config);
        })
        .await
    }

    /// Every object key under the registry's location, sorted.
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let prefix = Path::from(prefix);
        let mut keys: Vec<String> = self
            .objects
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }
}

fn base_storage() -> StorageConfig {
    Config::for_tests(std::path::Path::new("/nonexistent")).storage
}

/// A registry created through the API with the backend's storage location, and a push/pull token on it.
struct Tenant<'a> {
    server: &'a TestServer,
    name: String,
    host: String,
    token: String,
}

impl<'a> Tenant<'a> {
    async fn create(server: &'a TestServer, backend: &Backend) -> Tenant<'a> {
        let name = format!("obj{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let resp = server
            .api(Method::POST, "/registries")
            .json(&json!({ "name": name, "adminUserEnabled": true, "storageLocation": backend.location }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        let created: Value = resp.json().await.unwrap();
        assert_eq!(created["storageAccount"]["name"], backend.location.as_str());
        let creds: Value = server.api_get(&format!("/registries/{name}/credentials")).await;
        let host = format!("{name}.localhost");
        let resp = server
            .anon(Method::GET, "/oauth2/token?scope=repository:app:pull,push")
            .header("host", &host)
            .basic_auth(&name, creds["passwords"][0]["value"].as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let token: Value = resp.json().await.unwrap();
        Tenant {
            server,
            name,
            host,
            token: token["token"].as_str().unwrap().to_string(),
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.server
            .anon(method, path)
            .header("host", &self.host)
            .bearer_auth(&self.token)
    }

    /// Uploads `data` in PATCHes of `chunk` bytes, then a PUT with the digest; returns the digest and the
    /// session id.
    async fn push_chunked(&self, data: &[u8], chunk: usize) -> (String, String) {
        let location = self.start_upload().await;
        for (i, piece) in data.chunks(chunk).enumerate() {
            let start = i * chunk;
            let resp = self
                .req(Method::PATCH, &location)
                .header("content-range", format!("{start}-{}", start + piece.len() - 1))
                .body(piece.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::ACCEPTED, "{}", resp.text().await.unwrap());
        }
        let digest = sha256(data);
        let resp = self
            .req(Method::PUT, &format!("{location}?digest={digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        (digest, session_id(&location))
    }

    /// Pushes `data` with one monolithic POST; returns its digest.
    async fn push_monolithic(&self, data: &[u8]) -> String {
        let digest = sha256(data);
        let resp = self
            .req(Method::POST, &format!("/v2/app/blobs/uploads/?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        digest
    }

    async fn start_upload(&self) -> String {
        let resp = self.req(Method::POST, "/v2/app/blobs/uploads/").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        header(&resp, "location").to_string()
    }

    async fn pull(&self, digest: &str) -> Vec<u8> {
        let resp = self
            .req(Method::GET, &format!("/v2/app/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.bytes().await.unwrap().to_vec()
    }
}

fn session_id(location: &str) -> String {
    location.rsplit('/').next().unwrap().to_string()
}

/// Pushes and pulls through a registry on `backend` and checks what lands in the store.
async fn pushes_and_pulls_without_copies(backend: Backend) {
    let server = backend.start_server(false).await;
    let tenant = Tenant::create(&server, &backend).await;

    // A chunked upload: its three chunk objects are the blob (nothing under blobs/, no copy).
    let chunked = bytes(700_000, 31);
    let (chunked_digest, chunked_id) = tenant.push_chunked(&chunked, 300_000).await;
    let chunk_keys = backend.keys(&format!("uploads/{chunked_id}")).await;
    assert_eq!(chunk_keys.len(), 3, "{chunk_keys:?}");
    assert_eq!(tenant.pull(&chunked_digest).await, chunked);
    let ranged = tenant
        .req(Method::GET, &format!("/v2/app/blobs/{chunked_digest}"))
        .header("range", "bytes=299990-600009")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), &chunked[299_990..600_010]);

    // A monolithic blob and an image.
    let mono = bytes(123_457, 32);
    let mono_digest = tenant.push_monolithic(&mono).await;
    assert_eq!(tenant.pull(&mono_digest).await, mono);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = bytes(50_000, 33);
    let (config_digest, layer_digest) = (
        tenant.push_monolithic(config).await,
        tenant.push_monolithic(&layer).await,
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let resp = tenant
        .req(Method::PUT, "/v2/app/manifests/v1")
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    let pulled = tenant.req(Method::GET, "/v2/app/manifests/v1").send().await.unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(pulled.text().await.unwrap(), manifest);
    assert_eq!(tenant.pull(&config_digest).await, config);
    assert_eq!(tenant.pull(&layer_digest).await, layer);

    // In the store: only the uploaded chunks, one object per monolithic blob, nothing copied.
    let all = backend.keys("").await;
    assert_eq!(all.len(), 3 + 3, "{all:?}");
    assert!(all.iter().all(|k| k.starts_with("uploads/")), "{all:?}");
    assert!(backend.keys("blobs").await.is_empty());

    // Pushing a blob the registry has already discards the new copy and keeps serving the first.
    let again = tenant.push_monolithic(&mono).await;
    assert_eq!(again, mono_digest);
    assert_eq!(backend.keys("").await, all);
    assert_eq!(tenant.pull(&mono_digest).await, mono);

    // A digest mismatch leaves nothing behind.
    let location = tenant.start_upload().await;
    let resp = tenant
        .req(Method::PATCH, &location)
        .body(bytes(10_000, 34))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let wrong = sha256(b"something else");
    let resp = tenant
        .req(Method::PUT, &format!("{location}?digest={wrong}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, "DIGEST_INVALID");
    assert!(
        backend
            .keys(&format!("uploads/{}", session_id(&location)))
            .await
            .is_empty()
    );
    assert_eq!(backend.keys("").await, all);

    // Deleting the registry empties its location.
    let resp = server
        .api(Method::DELETE, &format!("/registries/{}", tenant.name))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(backend.keys("").await.is_empty());
}

/// The collector deletes every object of a blob in parts (a chunked upload left in place) and of a
/// single-object blob; the sweep, listing the bucket, leaves the objects of referenced blobs alone.
async fn collects_blobs_in_parts(backend: Backend) {
    let server = backend.start_server(false).await;
    let tenant = Tenant::create(&server, &backend).await;
    let (chunked_digest, chunked_id) = tenant.push_chunked(&bytes(700_000, 51), 300_000).await;
    let mono_digest = tenant.push_monolithic(&bytes(90_000, 52)).await;
    let layer = bytes(50_000, 53);
    let layer_digest = tenant.push_monolithic(&layer).await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{layer_digest}","size":50000}},"layers":[]}}"#
    );
    let resp = tenant
        .req(Method::PUT, "/v2/app/manifests/v1")
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(backend.keys(&format!("uploads/{chunked_id}")).await.len(), 3);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let report = crate::gc::collect(&server, &tenant.name, false).await;
    assert_eq!(
        (report["blobsRemoved"].clone(), report["objectsSwept"].clone()),
        (2.into(), 0.into()),
        "{report}"
    );
    assert!(
        backend.keys(&format!("uploads/{chunked_id}")).await.is_empty(),
        "every part is gone"
    );
    assert_eq!(
        backend.keys("").await.len(),
        1,
        "only the referenced blob's object is left"
    );
    for gone in [&chunked_digest, &mono_digest] {
        let head = tenant
            .req(Method::HEAD, &format!("/v2/app/blobs/{gone}"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(tenant.pull(&layer_digest).await, layer);
}

/// With `storage.redirect`, a whole-blob GET of a single-object blob answers 307 to a presigned URL that
/// serves the bytes; ranges, HEAD and multi-part blobs are still served by Berth.
async fn redirects_to_presigned_urls(backend: Backend) {
    let server = backend.start_server(true).await;
    let tenant = Tenant::create(&server, &backend).await;
    let mono = bytes(80_000, 41);
    let digest = tenant.push_monolithic(&mono).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(server.url(&format!("/v2/app/blobs/{digest}")))
        .header("host", &tenant.host)
        .bearer_auth(&tenant.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    let signed = header(&resp, "location").to_string();
    let fetched = no_redirects.get(&signed).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK, "{signed}");
    assert_eq!(fetched.bytes().await.unwrap(), mono);

    let ranged = tenant
        .req(Method::GET, &format!("/v2/app/blobs/{digest}"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), &mono[10..20]);
    let head = tenant
        .req(Method::HEAD, &format!("/v2/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);

    let chunked = bytes(90_000, 42);
    let (chunked_digest, _) = tenant.push_chunked(&chunked, 40_000).await;
    let resp = no_redirects
        .get(server.url(&format!("/v2/app/blobs/{chunked_digest}")))
        .header("host", &tenant.host)
        .bearer_auth(&tenant.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "multi-part blobs are streamed");
    assert_eq!(resp.bytes().await.unwrap(), chunked);

    let resp = server
        .api(Method::DELETE, &format!("/registries/{}", tenant.name))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

#[tokio::test]
async fn s3_registry_stores_blobs_in_place_and_serves_them() {
    if let Some(backend) = Backend::s3() {
        pushes_and_pulls_without_copies(backend).await;
    }
}

#[tokio::test]
async fn s3_registry_redirects_blob_gets_when_enabled() {
    if let Some(backend) = Backend::s3() {
        redirects_to_presigned_urls(backend).await;
    }
}

#[tokio::test]
async fn azure_registry_stores_blobs_in_place_and_serves_them() {
    if let Some(backend) = Backend::azure() {
        pushes_and_pulls_without_copies(backend).await;
    }
}

#[tokio::test]
async fn azure_registry_redirects_blob_gets_when_enabled() {
    if let Some(backend) = Backend::azure() {
        redirects_to_presigned_urls(backend).await;
    }
}

#[tokio::test]
async fn s3_registry_collects_blobs_in_parts() {
    if let Some(backend) = Backend::s3() {
        collects_blobs_in_parts(backend).await;
    }
}

#[tokio::test]
async fn azure_registry_collects_blobs_in_parts() {
    if let Some(backend) = Backend::azure() {
        collects_blobs_in_parts(backend).await;
    }
}
