//! The tag history of a repository, and restoring a deleted or moved tag, or a deleted manifest with the
//! tags and referrers deleted with it, while the manifest is kept (`retention.deleted_days`) and its blobs
//! are not collected.

use crate::errors::OciError;
use crate::metadata::{self, Db};
use crate::oci::digest::Digest;
use crate::oci::manifest;
use crate::oci::reference::{Reference, RepoName, Tag};
use crate::ops::{manifests, uploads};
use crate::tenant::Tenant;

pub use crate::metadata::history::{Actor, RegistryChange, TagChange};

/// The changes of `repo` (of one tag, when given), newest first. The history outlives the repository.
pub async fn changes(db: &Db, reg: &Tenant, repo: &RepoName, tag: Option<&Tag>) -> Result<Vec<TagChange>, OciError> {
    let tag = tag.map(Tag::as_str);
    Ok(metadata::history::changes(db, reg.row.id, repo.as_str(), tag).await?)
}

/// The latest `limit` changes in the registry (in repository `repo`, when given), newest first.
pub async fn recent(
    db: &Db,
    reg: &Tenant,
    repo: Option<&RepoName>,
    limit: u32,
) -> Result<Vec<RegistryChange>, OciError> {
    let repo = repo.map(RepoName::as_str);
    Ok(metadata::history::recent(db, reg.row.id, repo, i64::from(limit)).await?)
}

/// What to restore.
pub enum Restore<'a> {
    /// A tag, to the digest it pointed at before its last delete or move.
    Tag(&'a Tag),
    /// A deleted manifest, with the tags deleted with it.
    Manifest(&'a Digest),
}

/// What a restore did: the manifest it (re)stored, the tags now pointing at it, and the referrers deleted
/// with it that came back too.
pub struct Restored {
    pub digest: String,
    pub tags: Vec<String>,
    pub referrers: Vec<String>,
}

pub async fn restore(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    what: Restore<'_>,
    actor: Actor<'_>,
) -> Result<Restored, OciError> {
    match what {
        Restore::Tag(tag) => {
            let changes = metadata::history::changes(db, reg.row.id, repo.as_str(), Some(tag.as_str())).await?;
            let digest = changes.iter().find_map(|c| c.old_digest.clone()).ok_or_else(|| {
                OciError::NotFound(format!(
                    "tag {tag} of {repo} never pointed elsewhere: nothing to restore"
                ))
            })?;
            let (media_type, content, kept) = manifest_to_restore(db, reg, repo, &digest).await?;
            let reference = Reference::Tag(tag.clone());
            put_back(db, reg, repo, &reference, &media_type, &content, actor).await?;
            if kept {
                metadata::history::forget_deleted(db, reg.row.id, repo.as_str(), &digest).await?;
            }
            Ok(Restored {
                digest,
                tags: vec![tag.to_string()],
                referrers: Vec::new(),
            })
        }
        Restore::Manifest(digest) => {
            let text = digest.to_string();
            let deleted = metadata::history::deleted_manifest(db, reg.row.id, repo.as_str(), &text)
                .await?
                .ok_or_else(|| gone(repo, &text))?;
            let tags = bring_back(db, reg, repo, &text, &deleted, actor).await?;
            // The referrers deleted with it (a signature, an SBOM, a signature of that SBOM) follow.
            let mut referrers = Vec::new();
            let mut subjects = vec![text.clone()];
            while let Some(subject) = subjects.pop() {
                let found = metadata::history::referrers_deleted_with(
                    db,
                    reg.row.id,
                    repo.as_str(),
                    &subject,
                    deleted.deleted_at,
                )
                .await?;
                for referrer in found {
                    bring_back(db, reg, repo, &referrer.digest, &referrer.manifest, actor).await?;
                    subjects.push(referrer.digest.clone());
                    referrers.push(referrer.digest);
                }
            }
            Ok(Restored {
                digest: text,
                tags,
                referrers,
            })
        }
    }
}

/// Pushes deleted manifest `digest` back with the tags deleted with it (those not pushed again since),
/// and forgets it; the tags restored.
async fn bring_back(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    digest: &str,
    deleted: &metadata::history::DeletedManifest,
    actor: Actor<'_>,
) -> Result<Vec<String>, OciError> {
    let reference = Reference::Digest(
        digest
            .parse()
            .map_err(|e: crate::oci::GrammarError| OciError::Internal(e.into()))?,
    );
    put_back(db, reg, repo, &reference, &deleted.media_type, &deleted.content, actor).await?;
    let tags = metadata::history::tags_deleted_with(db, reg.row.id, repo.as_str(), digest, deleted.deleted_at).await?;
    let mut restored = Vec::new();
    for name in tags {
        let Ok(tag) = name.parse::<Tag>() else { continue };
        // A tag pushed again since points where its new push said.
        let now = metadata::manifests::by_tag(db, reg.row.id, repo.as_str(), tag.as_str()).await?;
        if now.is_none() {
            let reference = Reference::Tag(tag);
            put_back(db, reg, repo, &reference, &deleted.media_type, &deleted.content, actor).await?;
            restored.push(name);
        }
    }
    metadata::history::forget_deleted(db, reg.row.id, repo.as_str(), digest).await?;
    Ok(restored)
}

/// The media type and bytes of manifest `digest` of `repo`: stored, or kept since its deletion (`true`).
async fn manifest_to_restore(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    digest: &str,
) -> Result<(String, Vec<u8>, bool), OciError> {
    if let Some(row) = metadata::manifests::by_digest(db, reg.row.id, repo.as_str(), digest).await? {
        return Ok((row.media_type, row.content, false));
    }
    match metadata::history::deleted_manifest(db, reg.row.id, repo.as_str(), digest).await? {
        Some(kept) => Ok((kept.media_type, kept.content, true)),
        None => Err(gone(repo, digest)),
    }
}

fn gone(repo: &RepoName, digest: &str) -> OciError {
    OciError::NotFound(format!(
        "manifest {digest} of {repo} is not kept: it was never deleted, or longer ago than retention.deleted_days"
    ))
}

/// Pushes a manifest back as it was pushed. The blobs it names that the registry still has are linked
/// into the repository first (a deleted repository took its links along); one collected since makes it
/// fail clearly.
async fn put_back(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    reference: &Reference,
    media_type: &str,
    content: &[u8],
    actor: Actor<'_>,
) -> Result<(), OciError> {
    let info = manifest::parse(Some(media_type), content)?;
    for blob in &info.blobs {
        uploads::link_into(db, reg, repo, &blob.to_string()).await?;
    }
    match manifests::put(db, reg, repo, reference, Some(media_type), content, actor).await {
        Ok(_) => Ok(()),
        Err(OciError::ManifestBlobUnknown(blob)) => Err(OciError::Conflict(format!(
            "cannot restore {repo}: blob {blob} it names was collected since; push the image again"
        ))),
        Err(e) => Err(e),
    }
}

/// Drops the deleted manifests kept longer than `days`; how many.
pub async fn purge_deleted(db: &Db, days: u64) -> Result<u64, OciError> {
    let cutoff = metadata::now() - (days as i64).saturating_mul(86_400);
    Ok(metadata::history::purge_deleted(db, cutoff).await?)
}
