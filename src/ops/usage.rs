//! Storage usage of registries and repositories, as the database records it.

use crate::errors::OciError;
use crate::metadata::{self, Db};
use crate::oci::reference::RepoName;
use crate::tenant::Tenant;

pub use crate::metadata::usage::{RegistryUsage, RepositoryUsage};

/// The usage of registry `registry_id`.
pub async fn of_registry(db: &Db, registry_id: i64) -> Result<RegistryUsage, OciError> {
    Ok(metadata::usage::of_registry(db, registry_id).await?)
}

/// The usage of `repo`; NAME_UNKNOWN when there is none.
pub async fn of_repository(db: &Db, reg: &Tenant, repo: &RepoName) -> Result<RepositoryUsage, OciError> {
    let repository_id = reg.repository(db, repo).await?;
    Ok(metadata::usage::of_repository(db, reg.row.id, repository_id).await?)
}

/// `(registry name, stored bytes, unreferenced bytes)` of every registry.
pub async fn bytes_by_registry(db: &Db) -> Result<Vec<(String, i64, i64)>, OciError> {
    Ok(metadata::usage::bytes_by_registry(db).await?)
}
