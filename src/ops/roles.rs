//! Role assignments: a principal's Reader, Contributor or Owner role on a registry or a repository
//! prefix in it; assigning, listing and removing them.

use crate::errors::OciError;
use crate::metadata::{self, Db};

pub use crate::metadata::role_assignments::AssignmentRow;

/// Gives principal `principal_id` `role` on `repo_prefix` (empty: the whole registry) of `registry_id`.
pub async fn assign(
    db: &Db,
    principal_id: i64,
    registry_id: i64,
    repo_prefix: &str,
    role: &str,
) -> Result<AssignmentRow, OciError> {
    Ok(metadata::role_assignments::create(db, principal_id, registry_id, repo_prefix, role).await?)
}

/// The assignments in registry `registry_id` and of principal `principal_id`, each when given.
pub async fn list(
    db: &Db,
    registry_id: Option<i64>,
    principal_id: Option<i64>,
) -> Result<Vec<AssignmentRow>, OciError> {
    Ok(metadata::role_assignments::list(db, registry_id, principal_id).await?)
}

/// The principal and the registry of assignment `id`, if it exists.
pub async fn holder(db: &Db, id: i64) -> Result<Option<(i64, i64)>, OciError> {
    Ok(metadata::role_assignments::owner_of(db, id).await?)
}

/// Removes assignment `id` (of principal `principal_id` in registry `registry_id`), revoking the
/// principal's access tokens, and its refresh tokens there when it was its last role there.
pub async fn remove(db: &Db, id: i64, principal_id: i64, registry_id: i64) -> Result<(), OciError> {
    metadata::role_assignments::delete(db, id, principal_id, registry_id).await?;
    Ok(())
}
