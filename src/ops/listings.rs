//! What a registry lists, in lexical order from a cursor: a repository's tags, the repositories a caller
//! may pull (the catalog), the manifests that refer to a digest, and what the management API shows of a
//! repository.

use crate::auth::{self, token::Claims};
use crate::errors::OciError;
use crate::metadata::{self, Db, manifests::ReferrerRow};

pub use crate::metadata::{manifests::ManifestSummary, tags::TagSummary};
use crate::oci::digest::Digest;
use crate::oci::reference::{Reference, RepoName, Tag};
use crate::tenant::Tenant;

/// Repositories read per query while filtering the catalog by what the caller may pull.
const CATALOG_BATCH: i64 = 1_000;

/// Up to `limit` tags of `repo` after `after`; NAME_UNKNOWN without the repository.
pub async fn tags(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    Ok(metadata::tags::list(db, repository_id, after, i64::try_from(limit).unwrap_or(i64::MAX)).await?)
}

/// Up to `limit` repositories after `after` that the caller of token `caller` may pull.
pub async fn catalog(
    db: &Db,
    reg: &Tenant,
    caller: &Claims,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, OciError> {
    let identity = auth::identity_of(db, &reg.row, &caller.sub, caller.password.as_ref().map(|m| m.slot))
        .await?
        .ok_or(OciError::Denied)?;
    let permissions = auth::Permissions::of(db, &reg.row, &identity).await?;
    let mut visible = Vec::new();
    let mut after = after.map(str::to_owned);
    while visible.len() < limit {
        let batch = metadata::repositories::list(db, reg.row.id, after.as_deref(), CATALOG_BATCH).await?;
        let exhausted = batch.len() < CATALOG_BATCH as usize;
        after = batch.last().cloned();
        visible.extend(
            batch
                .into_iter()
                .filter(|repo| permissions.actions_on(repo).contains("pull")),
        );
        if exhausted {
            break;
        }
    }
    visible.truncate(limit);
    Ok(visible)
}

/// The manifests of `repo` whose subject is `subject`, of `artifact_type` when given; none when the
/// repository does not exist.
pub async fn referrers(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<ReferrerRow>, OciError> {
    Ok(match reg.find_repository(db, repo).await? {
        Some(repository_id) => {
            metadata::manifests::referrers(db, repository_id, &subject.to_string(), artifact_type).await?
        }
        None => Vec::new(),
    })
}

/// Every repository of the registry.
pub async fn repositories(db: &Db, reg: &Tenant) -> Result<Vec<String>, OciError> {
    Ok(metadata::repositories::list(db, reg.row.id, None, i64::MAX).await?)
}

/// Every manifest of `repo`, with its tags; NAME_UNKNOWN without the repository.
pub async fn manifests(db: &Db, reg: &Tenant, repo: &RepoName) -> Result<Vec<ManifestSummary>, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    Ok(metadata::manifests::summaries(db, repository_id).await?)
}

/// The newest `limit` manifests of `repo` that no tag and no index names; NAME_UNKNOWN without the
/// repository.
pub async fn untagged(db: &Db, reg: &Tenant, repo: &RepoName, limit: usize) -> Result<Vec<ManifestSummary>, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(metadata::manifests::untagged_summaries(db, repository_id, limit).await?)
}

/// Manifest `digest` of `repo` with its tags and locks; MANIFEST_UNKNOWN without it.
pub async fn manifest(db: &Db, reg: &Tenant, repo: &RepoName, digest: &Digest) -> Result<ManifestSummary, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    metadata::manifests::summary(db, repository_id, &digest.to_string())
        .await?
        .ok_or_else(|| OciError::ManifestUnknown(format!("manifest {digest} is not in repository {repo}")))
}

/// The listed tags of `repo` with their manifests, pulls and locks; NAME_UNKNOWN without the repository.
pub async fn tag_details(db: &Db, reg: &Tenant, repo: &RepoName) -> Result<Vec<TagSummary>, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    Ok(metadata::tags::summaries(db, repository_id, false).await?)
}

/// How many listed tags `repo` has, and those of them on page `page` (from 0) of `per_page`, in name
/// order; NAME_UNKNOWN without the repository.
pub async fn tag_details_page(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    page: usize,
    per_page: usize,
) -> Result<(usize, Vec<TagSummary>), OciError> {
    let repository_id = reg.repository(db, repo).await?;
    let total = metadata::tags::count_listed(db, repository_id).await?;
    let (offset, limit) = (page.saturating_mul(per_page), per_page);
    let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let rows = metadata::tags::summaries_page(db, repository_id, as_i64(offset), as_i64(limit)).await?;
    Ok((usize::try_from(total).unwrap_or(0), rows))
}

/// Tag `tag` of `repo` with its manifest and locks; MANIFEST_UNKNOWN without it.
pub async fn tag(db: &Db, reg: &Tenant, repo: &RepoName, tag: &Tag) -> Result<TagSummary, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    metadata::tags::summary(db, repository_id, tag.as_str())
        .await?
        .ok_or_else(|| OciError::ManifestUnknown(format!("tag {tag} is not in repository {repo}")))
}

/// The platforms of index `digest` of `repo` (`os/architecture[/variant]`); none for an image manifest.
pub async fn platforms(db: &Db, reg: &Tenant, repo: &RepoName, digest: &Digest) -> Result<Vec<String>, OciError> {
    let row = crate::ops::manifests::get(db, reg, repo, &Reference::Digest(digest.clone())).await?;
    Ok(crate::oci::manifest::platforms(&row.content))
}
