//! The tenant: the registry a request is for, with what every workflow in it needs (its row, its blob
//! store, the limits in force, its login server), and the one lookup of a repository in it.

use crate::errors::OciError;
use crate::metadata::{self, Db, registries::RegistryRow};
use crate::oci::reference::RepoName;
use crate::storage::BlobStore;

/// One registry, ready to serve.
#[derive(Clone)]
pub struct Tenant {
    pub row: RegistryRow,
    pub blobs: BlobStore,
    /// Its overrides, else its SKU's defaults.
    pub limits: RegistryLimits,
    /// `<name lowercased>.<domain>`: where clients reach it, and the audience of its tokens.
    pub login_server: String,
}

/// The limits in force for a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Concurrent pulls.
    pub pulls: u32,
    /// Concurrent pushes.
    pub pushes: u32,
    /// Bytes of blobs it may store; `None`: no quota.
    pub storage_bytes: Option<u64>,
}

impl Tenant {
    /// The id of repository `repo`, if it exists.
    pub async fn find_repository(&self, db: &Db, repo: &RepoName) -> Result<Option<i64>, OciError> {
        Ok(metadata::repositories::id(db, self.row.id, repo.as_str()).await?)
    }

    /// The id of repository `repo`, or NAME_UNKNOWN.
    pub async fn repository(&self, db: &Db, repo: &RepoName) -> Result<i64, OciError> {
        self.find_repository(db, repo)
            .await?
            .ok_or_else(|| OciError::NameUnknown(format!("repository {repo} is not known")))
    }
}
