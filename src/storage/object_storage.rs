//! The object-store backend: a registry's blobs in a store reached through object_store (S3, Azure Blob,
//! GCS, memory). Each chunk is a multipart upload of its own, an upload's chunks share a folder, and a
//! commit renames them ([`Placement::Rename`]) or leaves them where they are ([`Placement::InPlace`]).

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::{ObjectStore, WriteMultipart};

use super::{Backend, LOCAL_WRITE_PART, ObjectKey, Placement, StorageError};
use crate::oci::route::UploadId;

/// Size of the parts a chunk is written in on a cloud store (they need parts of at least 5 MiB), and
/// how many may be in flight at once.
const CLOUD_WRITE_PART: usize = 8 * 1024 * 1024;
const WRITE_CONCURRENCY: usize = 2;

#[derive(Clone)]
pub(super) struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    placement: Placement,
}

impl ObjectStorage {
    pub(super) fn new(store: Arc<dyn ObjectStore>, placement: Placement) -> Self {
        ObjectStorage { store, placement }
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
}

impl Backend for ObjectStorage {
    fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn placement(&self) -> Placement {
        self.placement
    }

    fn chunk_key(&self, id: &UploadId, name: &str) -> ObjectKey {
        ObjectKey::chunk(id, name)
    }

    async fn staged(&self, id: &UploadId) -> Result<Vec<ObjectKey>, StorageError> {
        Ok(self
            .store
            .list(Some(ObjectKey::upload(id).path()))
            .map_ok(|m| ObjectKey::listed(m.location))
            .try_collect()
            .await?)
    }

    /// At most [`WRITE_CONCURRENCY`] parts of the body are in memory at once; on any error the multipart
    /// upload is aborted.
    async fn write_chunk<S>(&self, key: &ObjectKey, body: S) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
    {
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

    async fn write_empty(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.store.put(key.path(), Bytes::new().into()).await?;
        Ok(())
    }

    async fn place(&self, moves: Vec<(ObjectKey, ObjectKey)>, id: &UploadId) -> Result<Vec<ObjectKey>, StorageError> {
        for (from, to) in &moves {
            self.rename(from, to).await?;
        }
        self.staged(id).await
    }
}
