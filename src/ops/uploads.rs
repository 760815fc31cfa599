//! Blob uploads: sessions, chunks (streamed and hashed once), digest-verified commits, mounts.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::errors::OciError;
use crate::metadata::{self, Db, uploads::UploadRow};
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::oci::range::ByteRange;
use crate::oci::reference::RepoName;
use crate::oci::route::UploadId;
use crate::ops::locks;
use crate::storage::registry_stores::RegistryStores;
use crate::storage::{BlobLayout, Chunk, ObjectKey, StorageError};
use crate::tenant::Tenant;

/// An upload session that belongs to the repository it is addressed through.
pub struct Session {
    pub id: UploadId,
    pub row: UploadRow,
}

impl Session {
    pub fn offset(&self) -> u64 {
        self.row.byte_offset as u64
    }
}

/// Opens a new session on `repo` for `owner` (a token subject), creating the repository on first push.
/// A repository that an ending session left empty is removed ([`forget_if_empty`]); when that happens
/// between finding the repository and opening the session, the repository is created again.
pub async fn start(db: &Db, reg: &Tenant, repo: &RepoName, owner: &str) -> Result<Session, OciError> {
    let id = UploadId::generate();
    let mut attempts = 0;
    let row = loop {
        attempts += 1;
        let repository_id = metadata::repositories::ensure(db, reg.row.id, repo.as_str()).await?;
        match metadata::uploads::create(db, id.as_str(), reg.row.id, repository_id, owner).await {
            Err(e) if attempts == 1 && metadata::is_foreign_key_violation(&e) => continue,
            created => break created.map_err(|e| locks::naming(e, format_args!("push to {repo}")))?,
        }
    };
    Ok(Session { id, row })
}

/// Removes the repository of an ended session if nothing was ever committed to it, so an upload that was
/// started and abandoned leaves no empty repository in the catalog.
async fn forget_if_empty(db: &Db, registry_id: i64, repository_id: i64) -> Result<(), OciError> {
    metadata::repositories::delete_if_empty(db, registry_id, repository_id).await?;
    Ok(())
}

/// The session `id`, if it exists, was started on `repo` of this registry and belongs to `owner` (a token
/// subject): an upload outlives the token that started it, not the identity.
pub async fn find(db: &Db, reg: &Tenant, repo: &RepoName, id: &UploadId, owner: &str) -> Result<Session, OciError> {
    let row = metadata::uploads::find(db, id.as_str())
        .await?
        .ok_or(OciError::BlobUploadUnknown)?;
    let repository_id = reg.find_repository(db, repo).await?;
    if row.registry_id != reg.row.id || Some(row.repository_id) != repository_id || row.owner != owner {
        return Err(OciError::BlobUploadUnknown);
    }
    Ok(Session { id: id.clone(), row })
}

/// Appends one chunk to the session: checks it starts where the upload stands, streams it to storage
/// while hashing it, then records it only if no other request moved the session meanwhile (a chunk it
/// stored but could not record, it removes).
/// `declared` is the chunk's `Content-Range`, `length` its `Content-Length`. Returns the session as it
/// now stands.
pub async fn receive_chunk<S, E>(
    db: &Db,
    reg: &Tenant,
    mut session: Session,
    location: &str,
    declared: Option<ByteRange>,
    length: Option<u64>,
    body: S,
) -> Result<Session, OciError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let offset = session.offset();
    let out_of_order = || OciError::UploadRangeInvalid {
        location: location.to_owned(),
        offset,
    };
    if let Some(range) = declared
        && (range.start != offset || length.is_some_and(|l| l != range.len()))
    {
        return Err(out_of_order());
    }
    let mut hasher = match &session.row.hash_state {
        Some(state) => Hasher::restore(state),
        None if offset == 0 => Some(Hasher::new(Algorithm::Sha256)),
        None => None,
    };
    let mut chunks = Chunk::decode_list(&session.row.chunks).map_err(|e| OciError::Internal(e.into()))?;
    let name = ObjectKey::chunk_name(chunks.len());
    let hashed = body
        .map_err(|e| std::io::Error::other(BodyEnded(e.to_string())))
        .inspect_ok(|bytes| {
            if let Some(h) = hasher.as_mut() {
                h.update(bytes);
            }
        });
    let written = match reg.blobs.put_chunk(&session.id, &name, hashed).await {
        Ok(n) => n,
        Err(StorageError::Io(e)) => return Err(chunk_write_failed(e)),
        Err(e) => return Err(e.into()),
    };
    // The chunk is stored: unless it is recorded below, it is this request's to remove.
    let discard_ours = || async {
        if let Err(e) = reg.blobs.discard_chunk(&session.id, &name).await {
            tracing::warn!(upload = %session.id, error = %e, "removing an unrecorded chunk failed");
        }
    };
    let expected = declared.map(|r| r.len()).or(length);
    if expected.is_some_and(|e| e != written) {
        discard_ours().await;
        return Err(OciError::SizeInvalid(format!(
            "received {written} bytes, expected {}",
            expected.unwrap_or(0)
        )));
    }
    if written == 0 {
        discard_ours().await;
        return Ok(session);
    }
    chunks.push(Chunk {
        name: name.clone(),
        size: written,
    });
    let advanced = UploadRow {
        byte_offset: (offset + written) as i64,
        chunks: Chunk::encode_list(&chunks),
        hash_state: hasher.map(|h| h.save()),
        ..session.row.clone()
    };
    // A database error keeps the chunk: the write may have landed all the same. If it did not, the
    // commit's leftovers or the idle-session purge remove the chunk.
    if !metadata::uploads::advance(db, &advanced, offset as i64).await? {
        discard_ours().await;
        return Err(out_of_order());
    }
    session.row = advanced;
    Ok(session)
}

/// Finishes an upload as blob `digest` of the session's repository, in Distribution's commit order:
/// finish the hash, refuse a mismatch (discarding everything staged), put the bytes in place (no copy,
/// noting what else is staged), record blob, link and session end in one transaction, and only then, as
/// the request that ended the session, discard what the blob does not use.
pub async fn commit(db: &Db, reg: &Tenant, session: &Session, digest: &Digest) -> Result<(), OciError> {
    let chunks = Chunk::decode_list(&session.row.chunks).map_err(|e| OciError::Internal(e.into()))?;
    let computed = match session.row.hash_state.as_deref().and_then(Hasher::restore) {
        Some(h) if h.algorithm() == digest.algorithm() => h.finish(),
        None if chunks.is_empty() => Digest::of(digest.algorithm(), b""),
        _ => rehash(reg, &session.id, &chunks, digest.algorithm()).await?,
    };
    if &computed != digest {
        cancel(db, reg, session).await?;
        return Err(OciError::DigestInvalid(format!(
            "content hashes to {computed}, not {digest}"
        )));
    }
    let size = session.offset() as i64;
    let (layout, leftovers) = match reg.blobs.commit(&session.id, &chunks, digest).await {
        Ok(committed) => committed,
        Err(StorageError::NotFound) => return Err(OciError::BlobUploadUnknown),
        Err(e) => return Err(e.into()),
    };
    let digest_text = digest.to_string();
    let parts = layout.parts_text();
    let upload = metadata::blobs::Upload {
        id: session.id.as_str(),
        registry_id: reg.row.id,
        repository_id: session.row.repository_id,
        digest: &digest_text,
        size,
        object_key: layout.key.as_str(),
        parts: parts.as_deref(),
    };
    let recorded = match metadata::blobs::record_upload(db, &upload).await {
        // A collection removed the registry's copy of the blob as this one linked it (Postgres): now the
        // blob is missing, recording inserts this copy.
        Err(e) if metadata::is_foreign_key_violation(&e) => metadata::blobs::record_upload(db, &upload).await,
        recorded => recorded,
    }
    .map_err(|e| locks::naming(e, format_args!("push of blob {digest}")))?;
    if !recorded.ended {
        return Err(OciError::BlobUploadUnknown);
    }
    let inserted = recorded.inserted;
    if let Err(e) = reg.blobs.discard(leftovers).await {
        tracing::warn!(upload = %session.id, error = %e, "removing an upload's unused chunks failed");
    }
    if !inserted {
        discard_duplicate(db, reg, &digest_text, &layout).await?;
    }
    Ok(())
}

/// When the registry already had the blob, the copy just placed is redundant; remove it unless it is the
/// very object the existing row points at.
async fn discard_duplicate(db: &Db, reg: &Tenant, digest: &str, ours: &BlobLayout) -> Result<(), OciError> {
    let existing = metadata::blobs::in_registry(db, reg.row.id, digest).await?;
    if existing.is_some_and(|row| row.object_key != ours.key.as_str()) {
        reg.blobs.delete(ours).await?;
    }
    Ok(())
}

async fn rehash(reg: &Tenant, id: &UploadId, chunks: &[Chunk], algorithm: Algorithm) -> Result<Digest, OciError> {
    let mut hasher = Hasher::new(algorithm);
    let mut stream = reg.blobs.read_chunks(id, chunks);
    while let Some(bytes) = stream.next().await {
        hasher.update(&bytes?);
    }
    Ok(hasher.finish())
}

/// Ends a session and discards what it staged (a session is only cancelled before it is committed, so
/// nothing it staged belongs to a blob yet).
pub async fn cancel(db: &Db, reg: &Tenant, session: &Session) -> Result<(), OciError> {
    metadata::uploads::delete(db, session.id.as_str()).await?;
    reg.blobs.abort(&session.id).await?;
    forget_if_empty(db, session.row.registry_id, session.row.repository_id).await
}

/// Links blob `digest` from repository `from` into `repo` when `from` has it; `false` when it does not,
/// or no longer does (the caller then falls back to a plain upload).
pub async fn mount(db: &Db, reg: &Tenant, repo: &RepoName, from: &RepoName, digest: &Digest) -> Result<bool, OciError> {
    let Some(from_id) = reg.find_repository(db, from).await? else {
        return Ok(false);
    };
    let digest = digest.to_string();
    // A repository whose read lock is set lends none of its blobs.
    if !metadata::blobs::linked(db, from_id, &digest)
        .await?
        .is_some_and(|blob| blob.readable)
    {
        return Ok(false);
    }
    link_into(db, reg, repo, &digest).await
}

/// Links blob `digest` of the registry into `repo` (creating the repository), as a mount does; `false`
/// when the registry no longer has it.
pub async fn link_into(db: &Db, reg: &Tenant, repo: &RepoName, digest: &str) -> Result<bool, OciError> {
    let linked = async {
        let mut tx = db.begin(metadata::Touches::Nothing).await?;
        let repository_id = metadata::repositories::ensure_in(&mut tx, reg.row.id, repo.as_str()).await?;
        metadata::blobs::link(&mut tx, reg.row.id, repository_id, digest).await?;
        tx.commit().await
    };
    match linked.await {
        Ok(()) => Ok(true),
        // The registry has no such blob, or a collection took it since it was looked up.
        Err(e) if metadata::is_foreign_key_violation(&e) => Ok(false),
        Err(e) => Err(locks::naming(e, format_args!("mount of blob {digest} into {repo}"))),
    }
}

/// How many upload sessions each registry has open, by registry name.
pub async fn count_by_registry(db: &Db) -> Result<Vec<(String, i64)>, OciError> {
    Ok(metadata::uploads::count_by_registry(db).await?)
}

/// Cancels every session idle for more than `max_idle_secs`, removing its staged chunks; returns how many.
pub async fn purge_stale(db: &Db, stores: &RegistryStores, max_idle_secs: u64) -> anyhow::Result<usize> {
    let stale = metadata::uploads::stale(db, metadata::now() - max_idle_secs as i64).await?;
    for upload in &stale {
        let id: UploadId = upload
            .id
            .parse()
            .map_err(|_| anyhow::anyhow!("stored upload id {:?} is invalid", upload.id))?;
        if metadata::uploads::delete(db, &upload.id).await? {
            stores
                .get(&upload.registry, upload.storage_url.as_deref())?
                .abort(&id)
                .await?;
            metadata::repositories::delete_if_empty(db, upload.registry_id, upload.repository_id).await?;
        }
    }
    Ok(stale.len())
}

/// A request body that failed while a chunk was being written: the client's doing, not the store's.
#[derive(Debug, thiserror::Error)]
#[error("request body ended early: {0}")]
struct BodyEnded(String);

/// What a chunk write that failed with `e` answers: the client's body ending early is its mistake (400);
/// a full disk is 507 and any other store failure 500, and the session stays where it was, resumable.
fn chunk_write_failed(e: std::io::Error) -> OciError {
    if e.get_ref().is_some_and(|inner| inner.is::<BodyEnded>()) {
        return OciError::BlobUploadInvalid(e.to_string());
    }
    tracing::error!(error = %e, "writing an upload chunk failed");
    StorageError::Io(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_chunk_write_is_the_client_s_only_when_its_body_failed() {
        let body = std::io::Error::other(BodyEnded("connection reset".into()));
        assert_eq!(chunk_write_failed(body).code_and_status().1.as_u16(), 400);
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(chunk_write_failed(full).code_and_status().1.as_u16(), 507);
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(chunk_write_failed(denied).code_and_status().1.as_u16(), 500);
    }
}
