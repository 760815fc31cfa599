//! Locks on a repository, one of its manifests or one of its tags: showing and changing them, and naming
//! the lock in the error of a write it refused.

use std::fmt::Display;

use crate::errors::OciError;
use crate::metadata::Db;
use crate::metadata::locks::{self, Target};
use crate::oci::digest::Digest;
use crate::oci::reference::{RepoName, Tag};
use crate::tenant::Tenant;

pub use crate::metadata::locks::{Attributes, Changes};

/// What in a repository carries the locks to show or change.
pub enum Subject<'a> {
    Repository,
    Manifest(&'a Digest),
    Tag(&'a Tag),
}

/// The locks of `repo` itself; NAME_UNKNOWN without it.
pub async fn of_repository(db: &Db, reg: &Tenant, repo: &RepoName) -> Result<Attributes, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    let found = locks::get(db, Target::Repository(repository_id)).await?;
    found.ok_or_else(|| unknown(repo, &Subject::Repository))
}

/// Applies `changes` to `subject` in `repo`; its attributes after.
pub async fn update(
    db: &Db,
    reg: &Tenant,
    repo: &RepoName,
    subject: Subject<'_>,
    changes: Changes,
) -> Result<Attributes, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    let digest = subject_key(&subject);
    let target = target(repository_id, &subject, &digest);
    let changed = locks::set(db, reg.row.id, target, changes).await?;
    let attributes = changed.ok_or_else(|| unknown(repo, &subject))?;
    tracing::info!(registry = %reg.row.name, repository = %repo, ?attributes, "locks changed");
    Ok(attributes)
}

/// The digest of a manifest subject as stored (other subjects need none).
fn subject_key(subject: &Subject<'_>) -> String {
    match subject {
        Subject::Manifest(digest) => digest.to_string(),
        _ => String::new(),
    }
}

fn target<'a>(repository_id: i64, subject: &'a Subject<'_>, digest: &'a str) -> Target<'a> {
    match subject {
        Subject::Repository => Target::Repository(repository_id),
        Subject::Manifest(_) => Target::Manifest(repository_id, digest),
        Subject::Tag(tag) => Target::Tag(repository_id, tag.as_str()),
    }
}

fn unknown(repo: &RepoName, subject: &Subject<'_>) -> OciError {
    match subject {
        Subject::Repository => OciError::NameUnknown(format!("repository {repo} is not known")),
        Subject::Manifest(digest) => {
            OciError::ManifestUnknown(format!("manifest {digest} is not in repository {repo}"))
        }
        Subject::Tag(tag) => OciError::ManifestUnknown(format!("tag {tag} is not in repository {repo}")),
    }
}

/// `e`, naming what was refused (`action`, e.g. "push of app:v1") when a lock refused it.
pub fn naming(e: impl Into<OciError>, action: impl Display) -> OciError {
    match e.into() {
        OciError::Locked(why) => OciError::Locked(format!("{action} {why}")),
        other => other,
    }
}

/// The refusal of a read that read lock `level` ('repository', 'manifest' or 'tag') forbids.
pub fn unreadable(action: impl Display, level: &str) -> OciError {
    OciError::Locked(format!(
        "{action} refused by a lock: readEnabled is false on the {level}"
    ))
}
