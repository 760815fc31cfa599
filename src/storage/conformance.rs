//! One behaviour suite every object store backend must pass: InMemory and the local filesystem always,
//! S3 and Azure Blob when `TEST_S3_ENDPOINT` / `TEST_AZURITE_ENDPOINT` name a running server (an
//! S3-compatible one such as moto, and Azurite; `.ci/run` starts both).

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;

use super::registry_stores::RegistryStores;
use super::{BlobLayout, BlobStore, Chunk, ObjectKey, Placement, StorageError};
use crate::config::{Config, StorageConfig};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::route::UploadId;

fn body(chunks: &[&'static [u8]]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::iter(chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect::<Vec<_>>())
}

async fn read_all(store: &BlobStore, layout: &BlobLayout, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = store.read(layout, range).await.unwrap().try_collect().await.unwrap();
    chunks.concat()
}

/// What upload `id` has staged, sorted.
async fn staged_keys(store: &BlobStore, id: &UploadId) -> Vec<String> {
    let mut keys: Vec<String> = store
        .staged(id)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    keys.sort();
    keys
}

/// The keys of every object below `prefix`, sorted.
async fn keys(store: &BlobStore, prefix: &str) -> Vec<String> {
    let prefix = Path::from(prefix);
    let mut keys: Vec<String> = store
        .objects()
        .list(Some(&prefix))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

/// What the store says of object `key` (entity tag, modification time, size): a copy would differ.
async fn identity(store: &BlobStore, key: &str) -> object_store::ObjectMeta {
    store.objects().head(&Path::from(key)).await.unwrap()
}

async fn run_suite(store: BlobStore) {
    let in_place = store.placement() == Placement::InPlace;

    // A single-chunk upload becomes one object: renamed to blobs/..., or on a cloud store the very chunk
    // object, not a copy of it.
    let id = UploadId::generate();
    let name = ObjectKey::chunk_name(0);
    assert_eq!(
        store.put_chunk(&id, &name, body(&[b"hello ", b"world"])).await.unwrap(),
        11
    );
    let chunk_key = store.chunk_key(&id, &name).to_string();
    let before = identity(&store, &chunk_key).await;
    let loser = ObjectKey::chunk_name(0);
    store.put_chunk(&id, &loser, body(&[b"raced"])).await.unwrap();
    let withdrawn = ObjectKey::chunk_name(0);
    store.put_chunk(&id, &withdrawn, body(&[b"withdrawn"])).await.unwrap();
    let digest = Digest::of(Algorithm::Sha256, b"hello world");
    let (single, leftovers) = store
        .commit(
            &id,
            &[Chunk {
                name: name.clone(),
                size: 11,
            }],
            &digest,
        )
        .await
        .unwrap();
    // A crash between placing the chunks and recording the blob: the commit repeated finds them placed.
    let (again, _) = store.commit(&id, &[Chunk { name, size: 11 }], &digest).await.unwrap();
    assert_eq!(again, single);
    // Requests that lost the race remove their own chunks, listed or not.
    let late = ObjectKey::chunk_name(1);
    store.put_chunk(&id, &late, body(&[b"late"])).await.unwrap();
    store.discard_chunk(&id, &late).await.unwrap();
    store.discard_chunk(&id, &withdrawn).await.unwrap();
    store.discard(leftovers).await.unwrap();
    assert!(single.parts.is_empty());
    if in_place {
        assert_eq!(
            single.key.as_str(),
            chunk_key,
            "the layout names the chunk object itself"
        );
        assert_eq!(
            identity(&store, &chunk_key).await,
            before,
            "the chunk object was not rewritten"
        );
        assert!(
            keys(&store, "blobs").await.is_empty(),
            "nothing was copied under blobs/"
        );
    } else {
        assert_eq!(
            single.key.as_str(),
            format!("blobs/sha256/{}/{}.{id}", &digest.hex()[..2], digest.hex()),
            "named after the digest and the upload"
        );
    }
    assert_eq!(
        staged_keys(&store, &id).await,
        if in_place { vec![chunk_key.clone()] } else { Vec::new() },
        "the losing, withdrawn and late chunks are gone, the used one stays"
    );
    assert_eq!(read_all(&store, &single, None).await, b"hello world");
    assert_eq!(read_all(&store, &single, Some(6..11)).await, b"world");
    if let Some(url) = store.presigned_url(&single).await.unwrap() {
        let fetched = reqwest::get(&url).await.unwrap();
        assert!(fetched.status().is_success(), "{url}: {}", fetched.status());
        assert_eq!(fetched.bytes().await.unwrap(), &b"hello world"[..]);
    }

    // A chunked upload keeps its parts and reads across their borders.
    let id = UploadId::generate();
    let mut chunks = Vec::new();
    for (i, data) in [&b"abc"[..], b"defgh", b"ij"].into_iter().enumerate() {
        let data: &'static [u8] = Box::leak(data.to_vec().into_boxed_slice());
        let name = ObjectKey::chunk_name(i);
        let size = store.put_chunk(&id, &name, body(&[data])).await.unwrap();
        chunks.push(Chunk { name, size });
    }
    assert_eq!(Chunk::decode_list(&Chunk::encode_list(&chunks)).unwrap(), chunks);
    let rehashed: Vec<Bytes> = store.read_chunks(&id, &chunks).try_collect().await.unwrap();
    assert_eq!(rehashed.concat(), b"abcdefghij");
    let digest = Digest::of(Algorithm::Sha256, b"abcdefghij");
    let staged = staged_keys(&store, &id).await;
    let (parts, leftovers) = store.commit(&id, &chunks, &digest).await.unwrap();
    let (again, _) = store.commit(&id, &chunks, &digest).await.unwrap();
    assert_eq!(again, parts, "a repeated commit finds the parts placed");
    store.discard(leftovers).await.unwrap();
    assert_eq!(parts.parts.iter().map(|p| p.size).collect::<Vec<_>>(), vec![3, 5, 2]);
    if in_place {
        assert_eq!(parts.key.as_str(), format!("uploads/{id}"));
        assert_eq!(parts.parts, chunks, "the layout names the original chunk objects");
        assert_eq!(staged_keys(&store, &id).await, staged, "no chunk moved or went");
        assert!(
            keys(&store, "blobs").await.is_empty(),
            "nothing was copied under blobs/"
        );
    } else {
        assert_eq!(staged_keys(&store, &id).await, Vec::<String>::new());
    }
    assert_eq!(
        store.presigned_url(&parts).await.unwrap(),
        None,
        "parts are never redirected"
    );
    let stored = BlobLayout::from_stored(parts.key.to_string(), parts.parts_text().as_deref()).unwrap();
    assert_eq!(stored, parts);
    assert_eq!(read_all(&store, &parts, None).await, b"abcdefghij");
    assert_eq!(read_all(&store, &parts, Some(2..9)).await, b"cdefghi");
    assert_eq!(read_all(&store, &parts, Some(3..8)).await, b"defgh");

    // An empty blob.
    let (empty, _) = store
        .commit(&UploadId::generate(), &[], &Digest::of(Algorithm::Sha256, b""))
        .await
        .unwrap();
    assert_eq!(read_all(&store, &empty, None).await, b"");
    store.delete(&empty).await.unwrap();

    // A failing body leaves nothing behind; abort removes staged chunks.
    let id = UploadId::generate();
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"x")),
        Err(std::io::Error::other("client went away")),
    ]);
    let failed = ObjectKey::chunk_name(0);
    assert!(store.put_chunk(&id, &failed, failing).await.is_err());
    let staged = Chunk {
        name: ObjectKey::chunk_name(1),
        size: 1,
    };
    store.put_chunk(&id, &staged.name, body(&[b"y"])).await.unwrap();
    store.abort(&id).await.unwrap();
    let gone = store.read_chunks(&id, &[staged]).try_collect::<Vec<_>>().await;
    assert!(matches!(gone, Err(StorageError::NotFound)));
    assert!(Chunk::decode_list("a:1,b").is_err() && Chunk::decode_list("../x:1").is_err());

    // Deleting a blob removes it, and a missing blob reads as NotFound.
    store.delete(&parts).await.unwrap();
    store.delete(&single).await.unwrap();
    assert!(matches!(store.read(&single, None).await, Err(StorageError::NotFound)));
    store.delete(&single).await.unwrap();
}

#[tokio::test]
async fn in_memory_store_conforms() {
    run_suite(BlobStore::new(
        Arc::new(object_store::memory::InMemory::new()),
        Placement::Rename,
    ))
    .await;
}

#[tokio::test]
async fn local_filesystem_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    run_suite(BlobStore::on_local_files(dir.path().to_path_buf(), true).unwrap()).await;
    let leftovers: Vec<_> = walk(dir.path());
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
}

/// Storage settings for the test servers, with presigned redirects on.
fn test_storage_config() -> StorageConfig {
    let mut config = Config::for_tests(std::path::Path::new("/nonexistent")).storage;
    config.redirect = true;
    config
}

/// Runs the suite on the cloud store at `url` (a fresh prefix) and checks it leaves nothing behind.
async fn run_cloud_suite(config: StorageConfig, url: &str) {
    let store = RegistryStores::new(config).get("conformance", Some(url)).unwrap();
    assert_eq!(store.placement(), Placement::InPlace, "a cloud store never renames");
    assert!(store.presigner.is_some());
    run_suite(store.clone()).await;
    assert_eq!(
        keys(&store, "").await,
        Vec::<String>::new(),
        "objects left behind in {url}"
    );
}

#[tokio::test]
async fn s3_store_conforms() {
    let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") else {
        eprintln!("skipping s3_store_conforms: TEST_S3_ENDPOINT is not set (see .ci/run)");
        return;
    };
    let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "berth-test".into());
    let mut config = test_storage_config();
    config.s3.allow_http = endpoint.starts_with("http://");
    config.s3.endpoint = endpoint;
    config.s3.region = "us-east-1".into();
    config.s3.access_key_id = std::env::var("TEST_S3_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
    config.s3.secret_access_key = std::env::var("TEST_S3_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into());
    let url = format!("s3://{bucket}/conformance-{}", uuid::Uuid::new_v4().simple());
    run_cloud_suite(config, &url).await;
}

#[tokio::test]
async fn azure_store_conforms() {
    let Ok(endpoint) = std::env::var("TEST_AZURITE_ENDPOINT") else {
        eprintln!("skipping azure_store_conforms: TEST_AZURITE_ENDPOINT is not set (see .ci/run)");
        return;
    };
    let container = std::env::var("TEST_AZURITE_CONTAINER").unwrap_or_else(|_| "berth-test".into());
    let mut config = test_storage_config();
    config.azure.allow_http = endpoint.starts_with("http://");
    config.azure.endpoint = endpoint;
    config.azure.account = AZURITE_ACCOUNT.into();
    config.azure.access_key = AZURITE_KEY.into();
    let url = format!("azure://{container}/conformance-{}", uuid::Uuid::new_v4().simple());
    run_cloud_suite(config, &url).await;
}

/// Azurite's well-known development account and key (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}
