//! One behaviour suite every object store backend must pass (InMemory and the local filesystem here).

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;

use super::{BlobLayout, BlobStore, Chunk, StorageError};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::route::UploadId;

fn body(chunks: &[&'static [u8]]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::iter(chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect::<Vec<_>>())
}

async fn read_all(store: &BlobStore, layout: &BlobLayout, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = store.read(layout, range).await.unwrap().try_collect().await.unwrap();
    chunks.concat()
}

async fn run_suite(objects: Arc<dyn ObjectStore>) {
    let store = BlobStore::new(objects);

    // A single-chunk upload becomes one object.
    let id = UploadId::generate();
    let name = Chunk::new_name(0);
    assert_eq!(
        store.put_chunk(&id, &name, body(&[b"hello ", b"world"])).await.unwrap(),
        11
    );
    let loser = Chunk::new_name(0);
    store.put_chunk(&id, &loser, body(&[b"raced"])).await.unwrap();
    let digest = Digest::of(Algorithm::Sha256, b"hello world");
    let single = store.commit(&id, &[Chunk { name, size: 11 }], &digest).await.unwrap();
    assert!(single.parts.is_empty());
    assert_eq!(read_all(&store, &single, None).await, b"hello world");
    assert_eq!(read_all(&store, &single, Some(6..11)).await, b"world");

    // A chunked upload keeps its parts and reads across their borders.
    let id = UploadId::generate();
    let mut chunks = Vec::new();
    for (i, data) in [&b"abc"[..], b"defgh", b"ij"].into_iter().enumerate() {
        let data: &'static [u8] = Box::leak(data.to_vec().into_boxed_slice());
        let name = Chunk::new_name(i);
        let size = store.put_chunk(&id, &name, body(&[data])).await.unwrap();
        chunks.push(Chunk { name, size });
    }
    assert_eq!(Chunk::decode_list(&Chunk::encode_list(&chunks)).unwrap(), chunks);
    let rehashed: Vec<Bytes> = store.read_chunks(&id, &chunks).try_collect().await.unwrap();
    assert_eq!(rehashed.concat(), b"abcdefghij");
    let digest = Digest::of(Algorithm::Sha256, b"abcdefghij");
    let parts = store.commit(&id, &chunks, &digest).await.unwrap();
    assert_eq!(parts.parts, vec![3, 5, 2]);
    let stored = BlobLayout::from_stored(parts.key.clone(), parts.parts_text().as_deref()).unwrap();
    assert_eq!(stored, parts);
    assert_eq!(read_all(&store, &parts, None).await, b"abcdefghij");
    assert_eq!(read_all(&store, &parts, Some(2..9)).await, b"cdefghi");
    assert_eq!(read_all(&store, &parts, Some(3..8)).await, b"defgh");

    // An empty blob.
    let empty = store
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
    let failed = Chunk::new_name(0);
    assert!(store.put_chunk(&id, &failed, failing).await.is_err());
    let staged = Chunk {
        name: Chunk::new_name(1),
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
    run_suite(Arc::new(object_store::memory::InMemory::new())).await;
}

#[tokio::test]
async fn local_filesystem_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_automatic_cleanup(true);
    run_suite(Arc::new(fs)).await;
    let leftovers: Vec<_> = walk(dir.path());
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
}

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
