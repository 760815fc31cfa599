//! Service principals and their password hashes.

use super::cache::Lookup;
use super::{Db, Touches, now, on_db, on_tx, on_writer};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PrincipalRow {
    pub id: i64,
    pub app_id: String,
    pub display_name: String,
    pub created_at: i64,
    /// Moves when the principal's credentials are reset or one of its roles is removed: access tokens of
    /// an earlier epoch are refused.
    pub auth_epoch: i64,
}

const COLUMNS: &str = "id, app_id, display_name, created_at, auth_epoch";

/// Creates a principal with one password hash.
pub async fn create(db: &Db, app_id: &str, display_name: &str, secret_hash: &str) -> sqlx::Result<PrincipalRow> {
    const SQL: &str = "INSERT INTO principals (app_id, display_name, created_at) VALUES ($1, $2, $3) RETURNING id";
    let mut tx = db.begin(Touches::Nothing).await?;
    let id: i64 =
        on_tx!(&mut tx, c => sqlx::query_scalar(SQL).bind(app_id).bind(display_name).bind(now()).fetch_one(c).await)?;
    add_secret(&mut tx, id, secret_hash).await?;
    tx.commit().await?;
    find(db, app_id).await?.ok_or(sqlx::Error::RowNotFound)
}

async fn add_secret(tx: &mut super::Tx, principal_id: i64, secret_hash: &str) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO principal_secrets (principal_id, secret_hash, created_at) VALUES ($1, $2, $3)";
    on_tx!(tx, c => sqlx::query(SQL).bind(principal_id).bind(secret_hash).bind(now()).execute(c).await.map(|_| ()))
}

/// Replaces every password of a principal with one new hash and revokes its refresh and access tokens.
pub async fn reset_secret(db: &Db, principal_id: i64, secret_hash: &str) -> sqlx::Result<()> {
    const DELETE: &str = "DELETE FROM principal_secrets WHERE principal_id = $1";
    const REVOKE: &str = "DELETE FROM refresh_tokens WHERE principal_id = $1";
    let mut tx = db.begin(Touches::Nothing).await?;
    on_tx!(&mut tx, c => sqlx::query(DELETE).bind(principal_id).execute(c).await.map(|_| ()))?;
    on_tx!(&mut tx, c => sqlx::query(REVOKE).bind(principal_id).execute(c).await.map(|_| ()))?;
    add_secret(&mut tx, principal_id, secret_hash).await?;
    tx.revoke_access_tokens(principal_id).await?;
    tx.commit().await
}

/// The current revocation epoch of the principal `app_id`; `None` when it no longer exists.
pub async fn epoch(db: &Db, app_id: &str) -> sqlx::Result<Option<i64>> {
    const SQL: &str = "SELECT auth_epoch FROM principals WHERE app_id = $1";
    let cache = &db.caches.principal_epochs;
    let generation = match cache.lookup(app_id) {
        Lookup::Hit(epoch) => return Ok(Some(epoch)),
        Lookup::Miss(generation) => generation,
    };
    let epoch: Option<i64> = on_db!(db, p => sqlx::query_scalar(SQL).bind(app_id).fetch_optional(p).await)?;
    if let Some(epoch) = epoch {
        cache.keep(generation, app_id.to_owned(), epoch, 64);
    }
    Ok(epoch)
}

pub async fn find(db: &Db, app_id: &str) -> sqlx::Result<Option<PrincipalRow>> {
    let sql = format!("SELECT {COLUMNS} FROM principals WHERE app_id = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(app_id).fetch_optional(p).await)
}

pub async fn list(db: &Db) -> sqlx::Result<Vec<PrincipalRow>> {
    let sql = format!("SELECT {COLUMNS} FROM principals ORDER BY display_name, app_id");
    on_db!(db, p => sqlx::query_as(&sql).fetch_all(p).await)
}

/// The password hashes of a principal.
pub async fn secret_hashes(db: &Db, principal_id: i64) -> sqlx::Result<Vec<String>> {
    const SQL: &str = "SELECT secret_hash FROM principal_secrets WHERE principal_id = $1";
    on_db!(db, p => sqlx::query_scalar(SQL).bind(principal_id).fetch_all(p).await)
}

/// Deletes a principal with its passwords, role assignments and refresh tokens.
pub async fn delete(db: &Db, id: i64) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM principals WHERE id = $1";
    let done = on_writer!(db, Touches::PrincipalEpochs, p => sqlx::query(SQL).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}
