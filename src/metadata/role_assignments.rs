//! Role assignments: (principal, registry, repository prefix, role).

use super::{Db, Touches, now, on_db, on_tx, on_writer};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssignmentRow {
    pub id: i64,
    pub app_id: String,
    pub principal_name: String,
    pub registry: String,
    pub repo_prefix: String,
    pub role: String,
    pub created_at: i64,
}

const SELECT: &str = "SELECT a.id, p.app_id, p.display_name AS principal_name, r.name AS registry, a.repo_prefix, a.role, \
                      a.created_at FROM role_assignments a JOIN principals p ON p.id = a.principal_id \
                      JOIN registries r ON r.id = a.registry_id";

/// Assigns a role (idempotent) and returns the assignment.
pub async fn create(
    db: &Db,
    principal_id: i64,
    registry_id: i64,
    repo_prefix: &str,
    role: &str,
) -> sqlx::Result<AssignmentRow> {
    const SQL: &str = "INSERT INTO role_assignments (principal_id, registry_id, repo_prefix, role, created_at) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (principal_id, registry_id, repo_prefix, role) DO NOTHING";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(principal_id).bind(registry_id).bind(repo_prefix).bind(role).bind(now())
        .execute(p).await.map(|_| ()))?;
    let sql =
        format!("{SELECT} WHERE a.principal_id = $1 AND a.registry_id = $2 AND a.repo_prefix = $3 AND a.role = $4");
    on_db!(db, p => sqlx::query_as(&sql).bind(principal_id).bind(registry_id).bind(repo_prefix).bind(role).fetch_one(p).await)
}

/// `(repo_prefix, role)` of every assignment a principal holds in a registry.
pub async fn of_principal(db: &Db, principal_id: i64, registry_id: i64) -> sqlx::Result<Vec<(String, String)>> {
    const SQL: &str = "SELECT repo_prefix, role FROM role_assignments WHERE principal_id = $1 AND registry_id = $2";
    on_db!(db, p => sqlx::query_as(SQL).bind(principal_id).bind(registry_id).fetch_all(p).await)
}

/// Assignments, optionally only those of one registry and/or one principal.
pub async fn list(db: &Db, registry_id: Option<i64>, principal_id: Option<i64>) -> sqlx::Result<Vec<AssignmentRow>> {
    let sql = format!(
        "{SELECT} WHERE ($1 IS NULL OR a.registry_id = $1) AND ($2 IS NULL OR a.principal_id = $2) ORDER BY a.id"
    );
    on_db!(db, p => sqlx::query_as(&sql).bind(registry_id).bind(principal_id).fetch_all(p).await)
}

/// `(principal_id, registry_id)` of assignment `id`.
pub async fn owner_of(db: &Db, id: i64) -> sqlx::Result<Option<(i64, i64)>> {
    const SQL: &str = "SELECT principal_id, registry_id FROM role_assignments WHERE id = $1";
    on_db!(db, p => sqlx::query_as(SQL).bind(id).fetch_optional(p).await)
}

/// Deletes an assignment and revokes the principal's access tokens (they may carry what the role
/// granted); when it was the principal's last one in that registry, its refresh tokens there are revoked
/// in the same transaction.
pub async fn delete(db: &Db, id: i64, principal_id: i64, registry_id: i64) -> sqlx::Result<bool> {
    const DELETE: &str = "DELETE FROM role_assignments WHERE id = $1";
    const REMAINING: &str = "SELECT COUNT(*) FROM role_assignments WHERE principal_id = $1 AND registry_id = $2";
    const REVOKE: &str = "DELETE FROM refresh_tokens WHERE principal_id = $1 AND registry_id = $2";
    let mut tx = db.begin(Touches::Nothing).await?;
    let done = on_tx!(&mut tx, c => sqlx::query(DELETE).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    let remaining: i64 =
        on_tx!(&mut tx, c => sqlx::query_scalar(REMAINING).bind(principal_id).bind(registry_id).fetch_one(c).await)?;
    if remaining == 0 {
        on_tx!(&mut tx, c => sqlx::query(REVOKE).bind(principal_id).bind(registry_id).execute(c).await.map(|_| ()))?;
    }
    tx.revoke_access_tokens(principal_id).await?;
    tx.commit().await?;
    Ok(done == 1)
}
