//! Work one holder does at a time across nodes (the collector): a named row held until it expires,
//! renewed by its holder while it works.

use super::{Db, Touches, on_writer};

/// Takes lease `name` for `holder` until `secs` from now if it is free, expired or already `holder`'s;
/// whether `holder` has it.
pub async fn acquire(db: &Db, name: &str, holder: &str, secs: i64) -> sqlx::Result<bool> {
    const SQL: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.expires_at < $4 OR leases.holder = excluded.holder";
    let now = super::now();
    let done = on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(name).bind(holder).bind(now + secs)
        .bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Gives lease `name` back if `holder` has it.
pub async fn release(db: &Db, name: &str, holder: &str) -> sqlx::Result<()> {
    const SQL: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(name).bind(holder).execute(p).await.map(|_| ()))
}
