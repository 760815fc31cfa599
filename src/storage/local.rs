//! The local-files backend: a registry's blobs as files below a folder. Chunks are written straight into
//! their files ([`chunk_file`]), every upload's in one folder; a commit renames them and lists what else
//! the upload staged in one blocking task (object_store would take one per rename and per listing, and
//! stat every file of the uploads folder); blobs are read with large buffers. Deleting and listing go
//! through object_store's `LocalFileSystem`.

mod chunk_file;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use super::{Backend, ByteStream, LOCAL_WRITE_PART, ObjectKey, Placement, StorageError};
use crate::oci::route::UploadId;

/// Size of the buffers a local blob file is read with.
const READ_BUFFER: usize = 256 * 1024;

#[derive(Clone)]
pub(super) struct LocalFiles {
    root: PathBuf,
    /// Sync chunk files, and the folders chunks are renamed into, before answering.
    sync: bool,
    /// The same folder through object_store.
    files: Arc<dyn ObjectStore>,
}

impl LocalFiles {
    /// The folder `root` (created if missing); with `sync`, what is written there is synced to disk
    /// before the write returns.
    pub(super) fn open(root: PathBuf, sync: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&root).map_err(|e| anyhow::anyhow!("creating {}: {e}", root.display()))?;
        let files = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(LocalFiles {
            root,
            sync,
            files: Arc::new(files),
        })
    }
}

impl Backend for LocalFiles {
    fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.files
    }

    fn placement(&self) -> Placement {
        Placement::Rename
    }

    fn chunk_key(&self, id: &UploadId, name: &str) -> ObjectKey {
        ObjectKey::local_chunk(id, name)
    }

    async fn staged(&self, id: &UploadId) -> Result<Vec<ObjectKey>, StorageError> {
        let (root, id) = (self.root.clone(), id.clone());
        blocking(move || staged_now(&root, &id)).await
    }

    async fn write_chunk<S>(&self, key: &ObjectKey, body: S) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
    {
        chunk_file::write(key.file_in(&self.root), body, LOCAL_WRITE_PART, self.sync).await
    }

    /// Written through object_store; with `sync`, then the file and the folder that names it are synced.
    async fn write_empty(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.files.put(key.path(), Bytes::new().into()).await?;
        if !self.sync {
            return Ok(());
        }
        let path = key.file_in(&self.root);
        blocking(move || {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(StorageError::Io)?;
            path.parent().map_or(Ok(()), sync_folder)
        })
        .await
    }

    /// Renames each chunk (making the target folder if needed; with `sync`, then syncing the folders
    /// whose entries changed) and lists what the upload still has staged, all in one blocking task.
    async fn place(&self, moves: Vec<(ObjectKey, ObjectKey)>, id: &UploadId) -> Result<Vec<ObjectKey>, StorageError> {
        let (root, id, sync) = (self.root.clone(), id.clone(), self.sync);
        blocking(move || {
            let mut changed = std::collections::BTreeSet::new();
            for (from, to) in &moves {
                changed.extend(rename(&from.file_in(&root), &to.file_in(&root))?);
            }
            if sync {
                for folder in changed {
                    sync_folder(&folder)?;
                }
            }
            staged_now(&root, &id)
        })
        .await
    }
}

/// What upload `upload` has staged in the uploads folder of `root` ([`ObjectKey::local_chunk`]).
fn staged_now(root: &std::path::Path, upload: &UploadId) -> Result<Vec<ObjectKey>, StorageError> {
    let entries = match std::fs::read_dir(ObjectKey::local_uploads().file_in(root)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::Io(e)),
    };
    let mut staged = Vec::new();
    for entry in entries {
        let name = entry.map_err(StorageError::Io)?.file_name();
        if let Some(chunk) = name.to_str().and_then(|n| ObjectKey::local_chunk_name(upload, n)) {
            staged.push(ObjectKey::local_chunk(upload, chunk));
        }
    }
    Ok(staged)
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| StorageError::Io(std::io::Error::other(join)))?
}

fn sync_folder(folder: &std::path::Path) -> Result<(), StorageError> {
    std::fs::File::open(folder)
        .and_then(|f| f.sync_all())
        .map_err(StorageError::Io)
}

/// Renames `from` to `to`, making `to`'s folder if it is missing; [`StorageError::NotFound`] if `from` is.
/// Returns the folders whose entries changed: `to`'s, and the parents of the folders it made.
fn rename(from: &std::path::Path, to: &std::path::Path) -> Result<Vec<PathBuf>, StorageError> {
    let folder = to.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    match std::fs::rename(from, to) {
        Ok(()) => Ok(vec![folder]),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !from.exists() {
                // Renamed by an earlier commit of this upload that crashed before recording the blob.
                return if to.exists() {
                    Ok(vec![folder])
                } else {
                    Err(StorageError::NotFound)
                };
            }
            let mut changed = vec![folder.clone()];
            let mut missing = folder.as_path();
            while !missing.exists() {
                let Some(parent) = missing.parent() else { break };
                changed.push(parent.to_path_buf());
                missing = parent;
            }
            std::fs::create_dir_all(&folder).map_err(StorageError::Io)?;
            std::fs::rename(from, to).map_err(StorageError::Io)?;
            Ok(changed)
        }
        Err(e) => Err(StorageError::Io(e)),
    }
}

/// Streams a byte range of a local file with large buffers (object_store's own file stream reads 8 KiB).
pub(super) fn read_file(file: std::fs::File, range: Range<u64>) -> ByteStream {
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
