//! Removing a whole repository: its manifests, tags and blob links.

use crate::errors::OciError;
use crate::metadata::{self, Db};
use crate::oci::reference::RepoName;
use crate::tenant::Tenant;

/// Deletes `repo`; NAME_UNKNOWN when there is none.
pub async fn delete(db: &Db, reg: &Tenant, repo: &RepoName) -> Result<(), OciError> {
    if metadata::repositories::delete(db, reg.row.id, repo.as_str()).await? {
        Ok(())
    } else {
        Err(OciError::NameUnknown(format!("repository {repo} is not known")))
    }
}
