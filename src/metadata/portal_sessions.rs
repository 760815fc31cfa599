//! Web portal sessions, stored by the SHA-256 of their cookie; deleting a row ends the session.

use super::{Db, Touches, now, on_db, on_writer};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// `operator`, `admin` or `sp:<appId>`.
    pub subject: String,
    /// The registry an admin or principal session is confined to; `None` for the operator.
    pub registry_id: Option<i64>,
    /// That registry's name (read with the session).
    #[sqlx(default)]
    pub registry_name: Option<String>,
    /// What the credentials behind the session were when it began.
    pub stamp: String,
    pub csrf_token: String,
    pub expires_at: i64,
}

pub async fn insert(db: &Db, token_hash: &str, row: &SessionRow) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO portal_sessions \
                       (token_hash, subject, registry_id, stamp, csrf_token, created_at, expires_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7)";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(token_hash).bind(&row.subject).bind(row.registry_id)
        .bind(&row.stamp).bind(&row.csrf_token).bind(now()).bind(row.expires_at).execute(p).await.map(|_| ()))
}

/// The unexpired session with this hash.
pub async fn find(db: &Db, token_hash: &str) -> sqlx::Result<Option<SessionRow>> {
    const SQL: &str = "SELECT s.subject, s.registry_id, r.name AS registry_name, s.stamp, s.csrf_token, s.expires_at \
                       FROM portal_sessions s LEFT JOIN registries r ON r.id = s.registry_id \
                       WHERE s.token_hash = $1 AND s.expires_at > $2";
    on_db!(db, p => sqlx::query_as(SQL).bind(token_hash).bind(now()).fetch_optional(p).await)
}

pub async fn delete(db: &Db, token_hash: &str) -> sqlx::Result<()> {
    const SQL: &str = "DELETE FROM portal_sessions WHERE token_hash = $1";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(token_hash).execute(p).await.map(|_| ()))
}

/// Deletes expired sessions; returns how many.
pub async fn purge_expired(db: &Db) -> sqlx::Result<u64> {
    const SQL: &str = "DELETE FROM portal_sessions WHERE expires_at <= $1";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(now()).execute(p).await.map(|r| r.rows_affected()))
}
