//! Blob bytes in object storage. This module alone builds object paths, all of them in [`key`]; it knows
//! digests and upload ids, never repositories (which blobs a repository may read is metadata's business).
//!
//! Renaming is only done where it is cheap (local files, memory). On S3, Azure Blob and GCS a rename is a
//! server-side copy (which S3 refuses above 5 GiB), so there a committed blob stays in its chunk objects
//! under `uploads/<id>/` and its [`BlobLayout`] names them: finishing an upload never copies its data.

pub mod cloud;
mod key;
mod layout;
mod local_chunks;
pub mod registry_stores;

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, WriteMultipart};

use crate::errors::OciError;
use crate::oci::digest::Digest;
use crate::oci::route::UploadId;

pub use key::ObjectKey;
pub use layout::{BlobLayout, Chunk};

/// Size of the buffers a local blob file is read with.
const READ_BUFFER: usize = 256 * 1024;
/// Size of the parts a chunk is written in, and how many may be in flight at once: cloud stores need
/// parts of at least 5 MiB; local files take smaller ones, which keeps memory low under many uploads.
const CLOUD_WRITE_PART: usize = 8 * 1024 * 1024;
const LOCAL_WRITE_PART: usize = 2 * 1024 * 1024;
const WRITE_CONCURRENCY: usize = 2;
/// How long a presigned blob URL stays valid.
const PRESIGNED_FOR: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("I/O: {0}")]
    Io(#[source] std::io::Error),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("invalid stored blob layout: {0}")]
    Layout(String),
}

impl From<StorageError> for OciError {
    /// A blob the store does not have is the client's 404; any other failure is the server's.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => OciError::BlobUnknown,
            other => OciError::Internal(other.into()),
        }
    }
}

/// Objects an upload staged that its blob does not use: chunks of requests that lost a race, or of a
/// process that stopped between writing a chunk and recording it. Requests that lose a race after the
/// commit listed these remove their own chunk.
#[must_use]
pub struct Leftovers(Vec<ObjectKey>);

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// How committing an upload puts its chunks in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Rename the chunks under `blobs/`: renaming is cheap here (local files, memory).
    Rename,
    /// Leave the chunks where they are and name them in the layout: renaming would be a server-side copy
    /// (S3, Azure Blob, GCS).
    InPlace,
}

/// One registry's blob storage.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    placement: Placement,
    presigner: Option<cloud::Presigner>,
    /// The folder of a store on local files, where chunks are written directly ([`local_chunks`]).
    local_root: Option<PathBuf>,
    /// On local files: sync chunk files, and the folders chunks are renamed into, before answering.
    sync: bool,
}

impl BlobStore {
    pub fn new(store: Arc<dyn ObjectStore>, placement: Placement) -> Self {
        BlobStore {
            store,
            placement,
            presigner: None,
            local_root: None,
            sync: false,
        }
    }

    /// Where chunk `name` of upload `id` is (see the layout above).
    fn chunk_key(&self, id: &UploadId, name: &str) -> ObjectKey {
        if self.local_root.is_some() {
            ObjectKey::local_chunk(id, name)
        } else {
            ObjectKey::chunk(id, name)
        }
    }

    /// The objects upload `id` has staged.
    async fn staged(&self, id: &UploadId) -> Result<Vec<ObjectKey>, StorageError> {
        match &self.local_root {
            Some(root) => local_chunks::staged(root.clone(), id.clone()).await,
            None => Ok(self
                .store
                .list(Some(ObjectKey::upload(id).path()))
                .map_ok(|m| ObjectKey::listed(m.location))
                .try_collect()
                .await?),
        }
    }

    /// A store on the local folder `root` (created if missing); with `sync`, what it writes is synced to
    /// disk before the write returns.
    pub fn on_local_files(root: PathBuf, sync: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&root).map_err(|e| anyhow::anyhow!("creating {}: {e}", root.display()))?;
        let files = object_store::local::LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(BlobStore {
            local_root: Some(root),
            sync,
            ..BlobStore::new(Arc::new(files), Placement::Rename)
        })
    }

    /// Lets [`BlobStore::presigned_url`] hand out URLs signed by `presigner`.
    pub fn with_presigner(self, presigner: cloud::Presigner) -> Self {
        BlobStore {
            presigner: Some(presigner),
            ..self
        }
    }

    /// Writes one chunk of an upload, streaming: at most a few parts of the body are in memory at once.
    /// On any error the partial chunk is removed. Returns the number of bytes written.
    pub async fn put_chunk<S>(&self, id: &UploadId, name: &str, body: S) -> Result<u64, StorageError>
    where
        S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send,
    {
        let key = self.chunk_key(id, name);
        if let Some(root) = &self.local_root {
            return local_chunks::write(key.file_in(root), body, LOCAL_WRITE_PART, self.sync).await;
        }
        let upload = self.store.put_multipart(key.path()).await?;
        let part = match self.placement {
            Placement::Rename => LOCAL_WRITE_PART,
            Placement::InPlace => CLOUD_WRITE_PART,
        };
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        let mut written = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(next) = body.next().await {
            let result = match next {
                Ok(bytes) => writer
                    .wait_for_capacity(WRITE_CONCURRENCY)
                    .await
                    .map(|()| bytes)
                    .map_err(StorageError::from),
                Err(e) => Err(StorageError::Io(e)),
            };
            match result {
                Ok(bytes) => {
                    written += bytes.len() as u64;
                    writer.put(bytes);
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
        writer.finish().await?;
        Ok(written)
    }

    /// Streams the chunks of an upload in order (to re-hash them when no hash state could be used).
    pub fn read_chunks(&self, id: &UploadId, chunks: &[Chunk]) -> ByteStream {
        let keys: Vec<ObjectKey> = chunks.iter().map(|c| self.chunk_key(id, &c.name)).collect();
        let store = self.clone();
        stream::iter(keys)
            .then(move |key| {
                let store = store.clone();
                async move { store.read_object(&key, None).await }
            })
            .try_flatten()
            .boxed()
    }

    /// Puts an upload's chunks in place as the blob `digest` and returns where they are: renamed under
    /// `blobs/` with [`Placement::Rename`], left where they are with [`Placement::InPlace`] (the caller's
    /// record of the session, ended in the same transaction as the blob is recorded, guards against a
    /// concurrent cancel). Either way no byte is copied. Repeating a commit that was interrupted after
    /// (part of) the renames finds those chunks in place, so the session can still be finished. Also returns what else the upload has staged,
    /// for [`BlobStore::discard`] once the blob is recorded. On local files renaming and listing are one
    /// blocking task.
    pub async fn commit(
        &self,
        id: &UploadId,
        chunks: &[Chunk],
        digest: &Digest,
    ) -> Result<(BlobLayout, Leftovers), StorageError> {
        let (layout, moves) = self.plan(id, chunks, digest);
        if chunks.is_empty() {
            self.store.put(layout.key.path(), Bytes::new().into()).await?;
            if let Some(root) = self.local_root.as_ref().filter(|_| self.sync) {
                local_chunks::sync_file(layout.key.file_in(root)).await?;
            }
        }
        if let Some(root) = &self.local_root {
            let leftovers = local_chunks::rename_and_list(root.clone(), moves, id.clone(), self.sync).await?;
            return Ok((layout, Leftovers(leftovers)));
        }
        for (from, to) in &moves {
            self.rename(from, to).await?;
        }
        let used: HashSet<ObjectKey> = layout.objects().into_iter().collect();
        let mut leftovers = self.staged(id).await?;
        leftovers.retain(|path| !used.contains(path));
        Ok((layout, Leftovers(leftovers)))
    }

    /// Where committing `chunks` as blob `digest` puts them, and the renames that takes.
    fn plan(&self, id: &UploadId, chunks: &[Chunk], digest: &Digest) -> (BlobLayout, Vec<(ObjectKey, ObjectKey)>) {
        let in_place = self.placement == Placement::InPlace;
        let single = |key: ObjectKey| BlobLayout { key, parts: Vec::new() };
        match chunks {
            [] => (single(ObjectKey::blob(digest)), Vec::new()),
            [only] if in_place => (single(self.chunk_key(id, &only.name)), Vec::new()),
            [only] => {
                let key = ObjectKey::blob(digest);
                let moves = vec![(self.chunk_key(id, &only.name), key.clone())];
                (single(key), moves)
            }
            _ if in_place => (
                BlobLayout {
                    key: ObjectKey::upload(id),
                    parts: chunks.to_vec(),
                },
                Vec::new(),
            ),
            _ => {
                let key = ObjectKey::blob_parts(digest, id);
                let (parts, moves) = chunks
                    .iter()
                    .enumerate()
                    .map(|(i, chunk)| {
                        let name = ObjectKey::part_name(i);
                        let to = key.child(&name);
                        let part = Chunk { name, size: chunk.size };
                        (part, (self.chunk_key(id, &chunk.name), to))
                    })
                    .unzip();
                (BlobLayout { key, parts }, moves)
            }
        }
    }

    /// Removes what [`BlobStore::commit`] found staged beside the blob. Only the request that recorded the
    /// blob may call this, once it has (until then those chunks may still become part of the session).
    pub async fn discard(&self, leftovers: Leftovers) -> Result<(), StorageError> {
        if leftovers.0.is_empty() {
            return Ok(());
        }
        // A leftover may be gone already: the request that wrote it removes it once it cannot record it.
        let paths = stream::iter(leftovers.0.into_iter().map(|key| Ok(key.into_path()))).boxed();
        self.store
            .delete_stream(paths)
            .filter(|deleted| futures::future::ready(!matches!(deleted, Err(object_store::Error::NotFound { .. }))))
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Removes chunk `name` of upload `id`, which its request wrote but could not record.
    pub async fn discard_chunk(&self, id: &UploadId, name: &str) -> Result<(), StorageError> {
        match self.store.delete(self.chunk_key(id, name).path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A URL valid for a while that serves the whole blob straight from the object store, when the store
    /// can sign one and the blob is a single object; `None` otherwise.
    pub async fn presigned_url(&self, layout: &BlobLayout) -> Result<Option<String>, StorageError> {
        match &self.presigner {
            Some(presigner) if layout.parts.is_empty() => {
                let url = presigner.get_url(layout.key.path(), PRESIGNED_FOR).await?;
                Ok(Some(url))
            }
            _ => Ok(None),
        }
    }

    /// Moves one chunk into place; a chunk already there (moved by an earlier commit of the same upload
    /// that crashed before the blob was recorded) counts as moved.
    async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        match self.store.rename(from.path(), to.path()).await {
            Err(object_store::Error::NotFound { .. }) => match self.store.head(to.path()).await {
                Ok(_) => Ok(()),
                Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
                Err(e) => Err(e.into()),
            },
            other => Ok(other?),
        }
    }

    /// Removes whatever an upload session has staged.
    pub async fn abort(&self, id: &UploadId) -> Result<(), StorageError> {
        self.discard(Leftovers(self.staged(id).await?)).await
    }

    /// Removes a committed blob's objects.
    pub async fn delete(&self, layout: &BlobLayout) -> Result<(), StorageError> {
        for key in layout.objects() {
            match self.store.delete(key.path()).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes every object of the store (the registry is being deleted).
    /// Whether the store holds any object at all.
    pub async fn holds_anything(&self) -> Result<bool, StorageError> {
        match self.store.list(None).next().await {
            None | Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(e.into()),
        }
    }

    pub async fn delete_everything(&self) -> Result<(), StorageError> {
        let paths = self.store.list(None).map_ok(|meta| meta.location).boxed();
        self.store.delete_stream(paths).try_collect::<Vec<_>>().await?;
        Ok(())
    }

    /// Streams `range` (exclusive end) of a committed blob, or all of it.
    pub async fn read(&self, layout: &BlobLayout, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        if layout.parts.is_empty() {
            return self.read_object(&layout.key, range).await;
        }
        let total: u64 = layout.parts.iter().map(|p| p.size).sum();
        let wanted = range.unwrap_or(0..total);
        let mut pieces = Vec::new();
        let mut part_start = 0u64;
        for (key, part) in layout.objects().into_iter().zip(&layout.parts) {
            let part_end = part_start + part.size;
            let (from, to) = (wanted.start.max(part_start), wanted.end.min(part_end));
            if from < to {
                pieces.push((key, (from - part_start)..(to - part_start)));
            }
            part_start = part_end;
        }
        let store = self.clone();
        Ok(stream::iter(pieces)
            .then(move |(key, range)| {
                let store = store.clone();
                async move { store.read_object(&key, Some(range)).await }
            })
            .try_flatten()
            .boxed())
    }

    async fn read_object(&self, key: &ObjectKey, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = match self.store.get_opts(key.path(), options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(StorageError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let range = result.range.clone();
        match result.payload {
            GetResultPayload::File(file, _) => Ok(read_file(file, range)),
            GetResultPayload::Stream(s) => Ok(s.map_err(StorageError::from).boxed()),
        }
    }
}

/// Streams a byte range of a local file with large buffers (object_store's own file stream reads 8 KiB).
fn read_file(file: std::fs::File, range: Range<u64>) -> ByteStream {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    stream::once(async move {
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(StorageError::Io)?;
        let reader = file.take(range.end - range.start);
        Ok::<_, StorageError>(
            tokio_util::io::ReaderStream::with_capacity(reader, READ_BUFFER).map_err(StorageError::Io),
        )
    })
    .try_flatten()
    .boxed()
}

#[cfg(test)]
mod conformance;
