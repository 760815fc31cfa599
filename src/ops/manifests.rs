//! Storing manifests (verified against their references) and resolving them by tag or digest.

use crate::errors::OciError;
use crate::metadata::{
    self, Db,
    history::{Actor, Place},
    manifests::{Deletion, ManifestRow, NewManifest, TagPut},
};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::manifest::{self, ManifestInfo};
use crate::oci::reference::{Reference, RepoName};
use crate::ops::immutability::{self, Rules};
use crate::ops::locks;
use crate::tenant::Tenant;

/// A stored manifest's digest and, when it has one, its subject.
pub struct Stored {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

/// Validates and stores a pushed manifest under `reference` (a tag, or a digest it must hash to).
pub async fn put(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    reference: &Reference,
    content_type: Option<&str>,
    body: &[u8],
    actor: Actor<'_>,
) -> Result<Stored, OciError> {
    let info = manifest::parse(content_type, body)?;
    let digest = match reference {
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), body);
            if &actual != expected {
                return Err(OciError::DigestInvalid(format!(
                    "manifest hashes to {actual}, not {expected}"
                )));
            }
            actual
        }
        Reference::Tag(_) => Digest::of(Algorithm::Sha256, body),
    };
    let repository_id = metadata::repositories::ensure(db, reg.row.id, repo.as_str()).await?;
    check_references(db, repository_id, &info).await?;
    let digest_text = digest.to_string();
    let subject_text = info.subject.as_ref().map(Digest::to_string);
    let texts = |digests: &[Digest]| -> Vec<String> { digests.iter().map(Digest::to_string).collect() };
    let new = NewManifest {
        digest: &digest_text,
        media_type: &info.media_type,
        artifact_type: info.artifact_type.as_deref(),
        subject: subject_text.as_deref(),
        annotations: info.annotations.as_deref(),
        content: body,
        blobs: texts(&info.blobs),
        children: texts(&info.children),
    };
    let action = format!("push of {repo}{}", at(reference));
    let (tag, rule) = match reference {
        Reference::Tag(tag) => {
            let rules = Rules::of(&reg.row)?;
            let rule = rules.covering(repo, tag).cloned();
            let put = TagPut {
                name: tag.as_str(),
                write_once: rule.is_some(),
                repository: repo.as_str(),
                actor,
            };
            (Some(put), rule)
        }
        Reference::Digest(_) => (None, None),
    };
    if let Err(e) = metadata::manifests::store(db, reg.row.id, repository_id, &new, tag).await {
        // A blob's link or a child manifest went between the check and the store (the database refuses
        // the reference): say which.
        if metadata::is_foreign_key_violation(&e) {
            check_references(db, repository_id, &info).await?;
        }
        if let Some(rule) = rule.filter(|_| metadata::is_not_null_violation(&e)) {
            return Err(immutability::refusal(
                &format!("{action} (the tag holds another digest)"),
                &rule,
            ));
        }
        return Err(locks::naming(e, action));
    }
    Ok(Stored {
        digest,
        subject: info.subject,
    })
}

/// Every blob must be linked to the repository, every child manifest stored in it.
async fn check_references(db: &Db, repository_id: i64, info: &ManifestInfo) -> Result<(), OciError> {
    let blobs: Vec<String> = info.blobs.iter().map(Digest::to_string).collect();
    if let Some(missing) = metadata::blobs::first_unlinked(db, repository_id, &blobs).await? {
        return Err(OciError::ManifestBlobUnknown(missing));
    }
    let children: Vec<String> = info.children.iter().map(Digest::to_string).collect();
    if let Some(missing) = metadata::manifests::first_missing(db, repository_id, &children).await? {
        return Err(OciError::ManifestUnknown(format!(
            "referenced manifest {missing} is not in the repository"
        )));
    }
    Ok(())
}

/// The manifest `reference` points at in `repo`.
pub async fn get(db: &Db, reg: &Tenant, repo: &RepoName, reference: &Reference) -> Result<ManifestRow, OciError> {
    let (registry_id, name) = (reg.row.id, repo.as_str());
    let row = match reference {
        Reference::Tag(tag) => metadata::manifests::by_tag(db, registry_id, name, tag.as_str()).await?,
        Reference::Digest(d) => metadata::manifests::by_digest(db, registry_id, name, &d.to_string()).await?,
    };
    if let Some(row) = row {
        if let Some(level) = &row.read_lock {
            return Err(locks::unreadable(
                format_args!("pull of {repo}{}", at(reference)),
                level,
            ));
        }
        return Ok(row);
    }
    reg.repository(db, repo).await?;
    Err(OciError::ManifestUnknown(format!(
        "manifest {reference} is not in repository {repo}"
    )))
}

/// Deletes a manifest (by digest: with its tags and its referrers, refused while an index that stays
/// names it) or just a tag (by tag).
pub async fn delete(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    reference: &Reference,
    actor: Actor<'_>,
) -> Result<(), OciError> {
    let repository_id = reg.repository(db, repo).await?;
    let place = Place {
        registry_id: reg.row.id,
        repository: repo.as_str(),
        repository_id,
    };
    let unknown = || OciError::ManifestUnknown(format!("manifest {reference} is not in repository {repo}"));
    let action = format!("delete of {repo}{}", at(reference));
    let rules = Rules::of(&reg.row)?;
    if !rules.spare(repo) {
        match reference {
            Reference::Tag(tag) => rules.check_tags(&action, repo, [tag.as_str()])?,
            Reference::Digest(d) => {
                if let Some(m) = metadata::manifests::summary(db, repository_id, &d.to_string()).await? {
                    rules.check_tags(&action, repo, m.tags.as_deref().unwrap_or_default().split(','))?;
                }
            }
        }
    }
    let refused = |e| locks::naming(e, &action);
    match reference {
        Reference::Tag(tag) => match metadata::tags::delete(db, place, actor, tag.as_str())
            .await
            .map_err(refused)?
        {
            true => Ok(()),
            false => Err(unknown()),
        },
        Reference::Digest(d) => match metadata::manifests::delete(db, place, actor, &d.to_string())
            .await
            .map_err(refused)?
        {
            Deletion::Deleted => Ok(()),
            Deletion::Absent => Err(unknown()),
            Deletion::ReferencedBy(index) => Err(OciError::Conflict(format!(
                "manifest {d} is referenced by index {index} in repository {repo}: delete the index first"
            ))),
        },
    }
}

/// How `reference` follows a repository's name in an image reference: `:tag` or `@digest`.
fn at(reference: &Reference) -> String {
    match reference {
        Reference::Tag(tag) => format!(":{tag}"),
        Reference::Digest(digest) => format!("@{digest}"),
    }
}
