//! Removing a whole repository: its manifests, tags and blob links, unless a lock or a write-once tag
//! holds it.

use crate::errors::OciError;
use crate::metadata::{self, Db, history::Actor};
use crate::oci::reference::RepoName;
use crate::ops::immutability::Rules;
use crate::ops::locks;
use crate::tenant::Tenant;

/// Deletes `repo`; NAME_UNKNOWN when there is none.
pub async fn delete(db: &Db, reg: &Tenant, repo: &RepoName, actor: Actor<'_>) -> Result<(), OciError> {
    let rules = Rules::of(&reg.row)?;
    if !rules.spare(repo)
        && let Some(repository_id) = reg.find_repository(db, repo).await?
    {
        // Every tag, listed or not: through the manifests.
        let manifests = metadata::manifests::summaries(db, repository_id).await?;
        let tags = manifests
            .iter()
            .flat_map(|m| m.tags.as_deref().unwrap_or_default().split(','));
        rules.check_tags(&format!("delete of repository {repo}"), repo, tags)?;
    }
    let deleted = metadata::repositories::delete(db, reg.row.id, repo.as_str(), actor).await;
    if deleted.map_err(|e| locks::naming(e, format_args!("delete of repository {repo}")))? {
        Ok(())
    } else {
        Err(OciError::NameUnknown(format!("repository {repo} is not known")))
    }
}
