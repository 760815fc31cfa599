//! Writing one chunk file of a local store. object_store's multipart upload stages a file, writes each
//! part and renames the file into place, one blocking task each; here the chunk's name is already unique
//! to the request and only recorded once complete, so the file is written where it belongs: one blocking
//! task per part, the next part gathered while the previous one is written.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::task::JoinHandle;

use super::{StorageError, blocking};

/// Streams `body` into the new file `path` in parts of about `part` bytes, then with `sync` syncs its data
/// to disk; returns the bytes written. On any error the partial file is removed.
pub async fn write<S>(path: PathBuf, body: S, part: usize, sync: bool) -> Result<u64, StorageError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
{
    let mut writer = Writer {
        path,
        file: None,
        in_flight: None,
        created: false,
    };
    match writer.write_all(body, part, sync).await {
        Ok(written) => Ok(written),
        Err(e) => {
            writer.discard().await;
            Err(e)
        }
    }
}

struct Writer {
    path: PathBuf,
    /// The open file between parts (`None` before the first part and while a part is being written).
    file: Option<std::fs::File>,
    in_flight: Option<JoinHandle<Result<std::fs::File, PartError>>>,
    /// Whether this writer made the file (so it is its to remove on failure).
    created: bool,
}

/// A part that failed, and whether the file had been made by then.
struct PartError {
    error: std::io::Error,
    created: bool,
}

impl Writer {
    async fn write_all<S>(&mut self, body: S, part: usize, sync: bool) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
    {
        let mut body = std::pin::pin!(body);
        let (mut gathered, mut gathered_len, mut written) = (Vec::new(), 0usize, 0u64);
        while let Some(next) = body.next().await {
            let bytes = next.map_err(StorageError::Io)?;
            gathered_len += bytes.len();
            written += bytes.len() as u64;
            gathered.push(bytes);
            if gathered_len >= part {
                self.start_part(std::mem::take(&mut gathered)).await?;
                gathered_len = 0;
            }
        }
        // The last part, or an empty file for an empty chunk.
        if !gathered.is_empty() || (self.file.is_none() && self.in_flight.is_none()) {
            self.start_part(gathered).await?;
        }
        self.settle().await?;
        if sync && let Some(file) = self.file.take() {
            blocking(move || file.sync_data().map_err(StorageError::Io)).await?;
        }
        Ok(written)
    }

    /// Waits for the part being written, then hands `parts` to a blocking task of their own.
    async fn start_part(&mut self, parts: Vec<Bytes>) -> Result<(), StorageError> {
        self.settle().await?;
        let (file, path) = (self.file.take(), self.path.clone());
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => create_new(&path).map_err(|error| PartError { error, created: false })?,
            };
            for bytes in &parts {
                file.write_all(bytes)
                    .map_err(|error| PartError { error, created: true })?;
            }
            Ok(file)
        }));
        Ok(())
    }

    async fn settle(&mut self) -> Result<(), StorageError> {
        let Some(task) = self.in_flight.take() else {
            return Ok(());
        };
        match task.await {
            Ok(Ok(file)) => {
                self.created = true;
                self.file = Some(file);
                Ok(())
            }
            Ok(Err(failed)) => {
                self.created |= failed.created;
                Err(StorageError::Io(failed.error))
            }
            Err(join) => Err(StorageError::Io(std::io::Error::other(join))),
        }
    }

    async fn discard(&mut self) {
        let _ = self.settle().await;
        self.file = None;
        if self.created {
            let path = self.path.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        }
    }
}

/// Creates `path` (which must not exist), and its folder if needed.
fn create_new(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let open = || std::fs::OpenOptions::new().write(true).create_new(true).open(path);
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            open()
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(pieces: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::iter(pieces.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn parts_land_in_order_and_an_empty_body_makes_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uploads/u1/00000000-a");
        let written = write(path.clone(), body(&[b"abc", b"defg", b"h", b"ijklm"]), 4, true)
            .await
            .unwrap();
        assert_eq!(written, 13);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefghijklm");

        let empty = dir.path().join("uploads/u1/00000001-b");
        assert_eq!(write(empty.clone(), body(&[]), 4, false).await.unwrap(), 0);
        assert_eq!(std::fs::read(&empty).unwrap(), b"");
    }

    #[tokio::test]
    async fn a_failing_body_leaves_no_file_and_an_existing_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let failing = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"0123456789")),
            Err(std::io::Error::other("connection reset")),
        ]);
        assert!(matches!(
            write(path.clone(), failing, 4, false).await,
            Err(StorageError::Io(_))
        ));
        assert!(!path.exists());

        std::fs::write(&path, b"first").unwrap();
        assert!(write(path.clone(), body(&[b"second"]), 4, false).await.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"first", "never overwritten");
    }
}
