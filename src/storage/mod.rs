//! Blob bytes in object storage. This module alone builds object paths, all of them in `key`; it knows
//! digests and upload ids, never repositories (which blobs a repository may read is metadata's business).
//!
//! Renaming is only done where it is cheap (local files, memory). On S3, Azure Blob and GCS a rename is a
//! server-side copy (which S3 refuses above 5 GiB), so there a committed blob stays in its chunk objects
//! under `uploads/<id>/` and its [`BlobLayout`] names them: finishing an upload never copies its data.
//!
//! A registry's store has one of two backends behind one seam, the `Backend` trait: local files
//! (`local`), written, renamed and read by this process itself, or a store reached through object_store
//! (`object_storage`). [`BlobStore`] picks one in one place (`on_backend!`); everything else it does
//! (reads, deletes, listings, presigned URLs) is the same on both, through the backend's object_store.

pub mod cloud;
mod key;
mod layout;
mod local;
mod object_storage;
pub mod registry_stores;

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};

use crate::errors::OciError;
use crate::oci::digest::Digest;
use crate::oci::route::UploadId;

pub use key::ObjectKey;
pub use layout::{BlobLayout, Chunk};

/// Size of the parts a chunk is written in where renaming is cheap (local files, memory): smaller than a
/// cloud store's, which keeps memory low under many uploads.
const LOCAL_WRITE_PART: usize = 2 * 1024 * 1024;
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
    /// A blob the store does not have is the client's 404; a store without room left is 507; any other
    /// failure is the server's.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => OciError::BlobUnknown,
            StorageError::Io(io) if is_storage_full(&io) => OciError::InsufficientStorage,
            other => OciError::Internal(other.into()),
        }
    }
}

/// Whether an I/O error says the disk (or the user's disk quota) is full.
fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
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

/// What differs between the two backends of a registry's store: how chunks are named, written and
/// listed, and how a commit puts them in place. Everything else goes through [`Backend::objects`].
trait Backend {
    /// The backend's objects through object_store, for reading, deleting and listing.
    fn objects(&self) -> &Arc<dyn ObjectStore>;

    /// How a commit puts chunks in place.
    fn placement(&self) -> Placement;

    /// Where chunk `name` of upload `id` is.
    fn chunk_key(&self, id: &UploadId, name: &str) -> ObjectKey;

    /// The objects upload `id` has staged.
    async fn staged(&self, id: &UploadId) -> Result<Vec<ObjectKey>, StorageError>;

    /// Writes the new object `key` from `body`, streaming; returns the number of bytes written. On any
    /// error the partial object is removed.
    async fn write_chunk<S>(&self, key: &ObjectKey, body: S) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send;

    /// Writes the empty object `key` (the empty blob).
    async fn write_empty(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Renames each `(from, to)` (a chunk already at `to` counts as renamed), then lists what upload `id`
    /// still has staged.
    async fn place(&self, moves: Vec<(ObjectKey, ObjectKey)>, id: &UploadId) -> Result<Vec<ObjectKey>, StorageError>;
}

/// The two backends.
#[derive(Clone)]
enum Backends {
    LocalFiles(local::LocalFiles),
    ObjectStorage(object_storage::ObjectStorage),
}

/// Evaluates `$body` with `$backend` bound to the backend of `$store`, whichever it is: the one place a
/// backend is chosen (a match, so the calls are static and generic bodies stay unboxed).
macro_rules! on_backend {
    ($store:expr, $backend:ident => $body:expr) => {
        match &$store.backend {
            Backends::LocalFiles($backend) => $body,
            Backends::ObjectStorage($backend) => $body,
        }
    };
}

/// One registry's blob storage.
#[derive(Clone)]
pub struct BlobStore {
    backend: Backends,
    presigner: Option<cloud::Presigner>,
}

impl BlobStore {
    /// A store on `store`, whose commits put chunks in place as `placement` says.
    pub fn new(store: Arc<dyn ObjectStore>, placement: Placement) -> Self {
        BlobStore {
            backend: Backends::ObjectStorage(object_storage::ObjectStorage::new(store, placement)),
            presigner: None,
        }
    }

    /// A store on the local folder `root` (created if missing); with `sync`, what it writes is synced to
    /// disk before the write returns.
    pub fn on_local_files(root: PathBuf, sync: bool) -> anyhow::Result<Self> {
        Ok(BlobStore {
            backend: Backends::LocalFiles(local::LocalFiles::open(root, sync)?),
            presigner: None,
        })
    }

    /// Lets [`BlobStore::presigned_url`] hand out URLs signed by `presigner`.
    pub fn with_presigner(self, presigner: cloud::Presigner) -> Self {
        BlobStore {
            presigner: Some(presigner),
            ..self
        }
    }

    fn objects(&self) -> &Arc<dyn ObjectStore> {
        on_backend!(self, backend => backend.objects())
    }

    fn placement(&self) -> Placement {
        on_backend!(self, backend => backend.placement())
    }

    fn chunk_key(&self, id: &UploadId, name: &str) -> ObjectKey {
        on_backend!(self, backend => backend.chunk_key(id, name))
    }

    async fn staged(&self, id: &UploadId) -> Result<Vec<ObjectKey>, StorageError> {
        on_backend!(self, backend => backend.staged(id).await)
    }

    /// Writes one chunk of an upload, streaming: at most a few parts of the body are in memory at once.
    /// On any error the partial chunk is removed. Returns the number of bytes written.
    pub async fn put_chunk<S>(&self, id: &UploadId, name: &str, body: S) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
    {
        let key = self.chunk_key(id, name);
        on_backend!(self, backend => backend.write_chunk(&key, body).await)
    }

    /// Streams the chunks of an upload in order (to re-hash them when no hash state could be used).
    pub fn read_chunks(&self, id: &UploadId, chunks: &[Chunk]) -> ByteStream {
        self.read_in_turn(chunks.iter().map(|c| (self.chunk_key(id, &c.name), None)).collect())
    }

    /// Puts an upload's chunks in place as the blob `digest` and returns where they are: renamed under
    /// `blobs/` with [`Placement::Rename`], left where they are with [`Placement::InPlace`] (the caller's
    /// record of the session, ended in the same transaction as the blob is recorded, guards against a
    /// concurrent cancel). Either way no byte is copied. Repeating a commit that was interrupted after
    /// (part of) the renames finds those chunks in place, so the session can still be finished. Also
    /// returns what else the upload has staged, for [`BlobStore::discard`] once the blob is recorded.
    pub async fn commit(
        &self,
        id: &UploadId,
        chunks: &[Chunk],
        digest: &Digest,
    ) -> Result<(BlobLayout, Leftovers), StorageError> {
        let (layout, moves) = self.plan(id, chunks, digest);
        if chunks.is_empty() {
            on_backend!(self, backend => backend.write_empty(&layout.key).await)?;
        }
        let mut leftovers = on_backend!(self, backend => backend.place(moves, id).await)?;
        let used: HashSet<ObjectKey> = layout.objects().into_iter().collect();
        leftovers.retain(|key| !used.contains(key));
        Ok((layout, Leftovers(leftovers)))
    }

    /// Where committing `chunks` as blob `digest` puts them, and the renames that takes.
    fn plan(&self, id: &UploadId, chunks: &[Chunk], digest: &Digest) -> (BlobLayout, Vec<(ObjectKey, ObjectKey)>) {
        let in_place = self.placement() == Placement::InPlace;
        let single = |key: ObjectKey| BlobLayout { key, parts: Vec::new() };
        match chunks {
            [] => (single(ObjectKey::blob(digest, id)), Vec::new()),
            [only] if in_place => (single(self.chunk_key(id, &only.name)), Vec::new()),
            [only] => {
                let key = ObjectKey::blob(digest, id);
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
    /// A leftover may be gone already: the request that wrote it removes it once it cannot record it.
    pub async fn discard(&self, leftovers: Leftovers) -> Result<(), StorageError> {
        self.delete_objects(leftovers.0).await
    }

    /// Deletes `keys`; an object already gone counts as deleted.
    pub async fn delete_objects(&self, keys: Vec<ObjectKey>) -> Result<(), StorageError> {
        if keys.is_empty() {
            return Ok(());
        }
        let paths = stream::iter(keys.into_iter().map(|key| Ok(key.into_path()))).boxed();
        self.objects()
            .delete_stream(paths)
            .filter(|deleted| futures::future::ready(!matches!(deleted, Err(object_store::Error::NotFound { .. }))))
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Every object of the store last written before `before` (seconds since the Unix epoch), with its
    /// size.
    pub fn objects_written_before(&self, before: i64) -> BoxStream<'static, Result<(ObjectKey, u64), StorageError>> {
        self.objects()
            .list(None)
            .try_filter_map(move |meta| {
                let old = meta.last_modified.timestamp() < before;
                futures::future::ready(Ok(old.then(|| (ObjectKey::listed(meta.location), meta.size))))
            })
            .map_err(StorageError::from)
            .boxed()
    }

    /// Removes chunk `name` of upload `id`, which its request wrote but could not record.
    pub async fn discard_chunk(&self, id: &UploadId, name: &str) -> Result<(), StorageError> {
        match self.objects().delete(self.chunk_key(id, name).path()).await {
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

    /// Removes whatever an upload session has staged.
    pub async fn abort(&self, id: &UploadId) -> Result<(), StorageError> {
        self.discard(Leftovers(self.staged(id).await?)).await
    }

    /// Removes a committed blob's objects (those already gone count as removed).
    pub async fn delete(&self, layout: &BlobLayout) -> Result<(), StorageError> {
        self.delete_objects(layout.objects()).await
    }

    /// Whether the store holds any object at all.
    pub async fn holds_anything(&self) -> Result<bool, StorageError> {
        match self.objects().list(None).next().await {
            None | Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// Removes every object of the store (the registry is being deleted).
    pub async fn delete_everything(&self) -> Result<(), StorageError> {
        let paths = self.objects().list(None).map_ok(|meta| meta.location).boxed();
        self.objects().delete_stream(paths).try_collect::<Vec<_>>().await?;
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
                pieces.push((key, Some((from - part_start)..(to - part_start))));
            }
            part_start = part_end;
        }
        Ok(self.read_in_turn(pieces))
    }

    /// Streams objects one after the other, each whole or the range given, opening each once the one
    /// before it is read.
    fn read_in_turn(&self, pieces: Vec<(ObjectKey, Option<Range<u64>>)>) -> ByteStream {
        let store = self.clone();
        stream::iter(pieces)
            .then(move |(key, range)| {
                let store = store.clone();
                async move { store.read_object(&key, range).await }
            })
            .try_flatten()
            .boxed()
    }

    async fn read_object(&self, key: &ObjectKey, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = match self.objects().get_opts(key.path(), options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(StorageError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let range = result.range.clone();
        match result.payload {
            GetResultPayload::File(file, _) => Ok(local::read_file(file, range)),
            GetResultPayload::Stream(s) => Ok(s.map_err(StorageError::from).boxed()),
        }
    }
}

#[cfg(test)]
mod conformance;
