//! Operator tokens (installation superusers), stored as SHA-256 hashes.

use super::{Db, Touches, now, on_db, on_tx, on_writer};

pub async fn any(db: &Db) -> sqlx::Result<bool> {
    const SQL: &str = "SELECT COUNT(*) FROM operator_tokens";
    let n: i64 = on_db!(db, p => sqlx::query_scalar(SQL).fetch_one(p).await)?;
    Ok(n > 0)
}

pub async fn insert(db: &Db, token_hash: &str) -> sqlx::Result<()> {
    const SQL: &str =
        "INSERT INTO operator_tokens (token_hash, created_at) VALUES ($1, $2) ON CONFLICT (token_hash) DO NOTHING";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(token_hash).bind(now()).execute(p).await.map(|_| ()))
}

pub async fn exists(db: &Db, token_hash: &str) -> sqlx::Result<bool> {
    const SQL: &str = "SELECT COUNT(*) FROM operator_tokens WHERE token_hash = $1";
    let n: i64 = on_db!(db, p => sqlx::query_scalar(SQL).bind(token_hash).fetch_one(p).await)?;
    Ok(n > 0)
}

/// Makes `token_hash` the only operator token: every other one is revoked.
pub async fn replace_all(db: &Db, token_hash: &str) -> sqlx::Result<()> {
    const REVOKE: &str = "DELETE FROM operator_tokens WHERE token_hash <> $1";
    let mut tx = db.begin(Touches::Nothing).await?;
    on_tx!(&mut tx, c => sqlx::query(REVOKE).bind(token_hash).execute(c).await.map(|_| ()))?;
    const INSERT: &str =
        "INSERT INTO operator_tokens (token_hash, created_at) VALUES ($1, $2) ON CONFLICT (token_hash) DO NOTHING";
    on_tx!(&mut tx, c => sqlx::query(INSERT).bind(token_hash).bind(now()).execute(c).await.map(|_| ()))?;
    tx.commit().await
}
