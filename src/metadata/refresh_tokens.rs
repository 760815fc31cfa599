//! Refresh tokens, stored as SHA-256 hashes; deleting a row revokes the token.

use super::{Db, Touches, now, on_db, on_writer};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub registry_id: i64,
    pub subject: String,
    pub principal_id: Option<i64>,
    /// The admin password (1 or 2) the token was obtained with.
    pub password_slot: Option<i64>,
    pub expires_at: i64,
}

pub async fn insert(db: &Db, token_hash: &str, row: &RefreshRow) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO refresh_tokens \
                       (token_hash, registry_id, subject, principal_id, password_slot, expires_at, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7)";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(token_hash).bind(row.registry_id).bind(&row.subject).bind(row.principal_id)
        .bind(row.password_slot).bind(row.expires_at).bind(now()).execute(p).await.map(|_| ()))
}

/// The unexpired refresh token with this hash.
pub async fn find(db: &Db, token_hash: &str) -> sqlx::Result<Option<RefreshRow>> {
    const SQL: &str = "SELECT registry_id, subject, principal_id, password_slot, expires_at FROM refresh_tokens \
                       WHERE token_hash = $1 AND expires_at > $2";
    on_db!(db, p => sqlx::query_as(SQL).bind(token_hash).bind(now()).fetch_optional(p).await)
}

/// Revokes every refresh token of `subject` in a registry (e.g. the admin user's).
pub async fn revoke_subject(db: &Db, registry_id: i64, subject: &str) -> sqlx::Result<()> {
    const SQL: &str = "DELETE FROM refresh_tokens WHERE registry_id = $1 AND subject = $2";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(registry_id).bind(subject).execute(p).await.map(|_| ()))
}

/// Revokes the refresh tokens `subject` (the admin user) obtained with its password `slot`, and those
/// whose password is not known.
pub async fn revoke_password(db: &Db, registry_id: i64, subject: &str, slot: u8) -> sqlx::Result<()> {
    const SQL: &str = "DELETE FROM refresh_tokens WHERE registry_id = $1 AND subject = $2 \
                       AND (password_slot = $3 OR password_slot IS NULL)";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(registry_id).bind(subject).bind(i64::from(slot))
        .execute(p).await.map(|_| ()))
}

/// Deletes refresh tokens that have expired; returns how many.
pub async fn purge_expired(db: &Db) -> sqlx::Result<u64> {
    const SQL: &str = "DELETE FROM refresh_tokens WHERE expires_at <= $1";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(now()).execute(p).await.map(|r| r.rows_affected()))
}
