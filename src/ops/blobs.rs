//! Blob reads and unlinking in one repository: finding a blob, decoding where its bytes are stored, and
//! opening them (whole, a range, or a presigned URL of the registry's object store).

use std::ops::Range;

use crate::errors::OciError;
use crate::metadata::{self, Db, blobs::BlobRow};
use crate::oci::digest::Digest;
use crate::oci::reference::RepoName;
use crate::ops::locks;
use crate::storage::{BlobLayout, ByteStream};
use crate::tenant::Tenant;

/// A blob linked into a repository.
pub struct Blob(BlobRow);

/// Where a blob's bytes come from.
pub enum Content {
    /// A presigned URL of the object store: the client fetches the bytes there.
    Redirect(String),
    Stream(ByteStream),
}

impl Blob {
    pub fn size(&self) -> u64 {
        self.0.size as u64
    }

    /// The blob's bytes, or the `range` of them; a whole blob may be a redirect to a presigned URL when
    /// the registry's store hands one out (a signing failure is logged and the blob streamed instead).
    pub async fn open(self, reg: &Tenant, range: Option<Range<u64>>) -> Result<Content, OciError> {
        let layout = BlobLayout::from_stored(self.0.object_key, self.0.parts.as_deref())
            .map_err(|e| OciError::Internal(e.into()))?;
        if range.is_none() {
            match reg.blobs.presigned_url(&layout).await {
                Ok(Some(url)) => return Ok(Content::Redirect(url)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(registry = %reg.row.name, error = %e, "presigning a blob URL failed; streaming it")
                }
            }
        }
        Ok(Content::Stream(reg.blobs.read(&layout, range).await?))
    }
}

/// Blob `digest` of `repo`: NAME_UNKNOWN without the repository, BLOB_UNKNOWN when it does not link it.
/// The read touches the link when its last touch is more than `touch_every` seconds old (see
/// `GcConfig::touch_every_secs`), so a client that checks a blob exists and then pushes a manifest naming
/// it finds it still there. The touch and a collection's delete are exclusive: a link the collector took
/// in between is not found.
pub async fn find(db: &Db, reg: &Tenant, repo: &RepoName, digest: &Digest, touch_every: i64) -> Result<Blob, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    let digest = digest.to_string();
    let linked = metadata::blobs::linked(db, repository_id, &digest)
        .await?
        .ok_or(OciError::BlobUnknown)?;
    if !linked.readable {
        return Err(locks::unreadable(
            format_args!("pull of blob {digest} from {repo}"),
            "repository",
        ));
    }
    if linked.touched_at < metadata::now() - touch_every
        && !metadata::blobs::touch_link(db, repository_id, &digest).await?
    {
        return Err(OciError::BlobUnknown);
    }
    Ok(Blob(linked.blob))
}

/// Removes blob `digest` from `repo` (other repositories that link it keep it); refused while a manifest
/// of `repo` references it, or while the repository's delete lock is set.
pub async fn unlink(db: &Db, reg: &Tenant, repo: &RepoName, digest: &Digest) -> Result<(), OciError> {
    let repository_id = reg.repository(db, repo).await?;
    // The statement itself spares the links of a delete-locked repository; the lock is read again only
    // to say why nothing was removed.
    match metadata::blobs::unlink(db, repository_id, &digest.to_string()).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            let locks = metadata::locks::get(db, metadata::locks::Target::Repository(repository_id)).await?;
            if locks.is_some_and(|l| !l.delete_enabled) {
                return Err(OciError::Locked(format!(
                    "delete of blob {digest} from {repo} refused by a lock: deleteEnabled is false on the repository"
                )));
            }
            Err(OciError::BlobUnknown)
        }
        Err(e) if metadata::is_foreign_key_violation(&e) => Err(OciError::Conflict(format!(
            "blob {digest} is referenced by a manifest of repository {repo}: delete the manifest first"
        ))),
        Err(e) => Err(e.into()),
    }
}
