//! Repositories inside a registry, created on first push; the catalog reads them from here.

use super::cache::Lookup;
use super::history::{self, Actor, Place};
use super::{Db, Touches, Tx, now, on_db, on_tx, on_writer};

/// The id of repository `name` in registry `registry_id`.
pub async fn id(db: &Db, registry_id: i64, name: &str) -> sqlx::Result<Option<i64>> {
    const SQL: &str = "SELECT id FROM repositories WHERE registry_id = $1 AND name = $2";
    let cache = &db.caches.repositories;
    let key = (registry_id, name.to_owned());
    let generation = match cache.lookup(&key) {
        Lookup::Hit(id) => return Ok(Some(id)),
        Lookup::Miss(generation) => generation,
    };
    let id: Option<i64> =
        on_db!(db, p => sqlx::query_scalar(SQL).bind(registry_id).bind(name).fetch_optional(p).await)?;
    if let Some(id) = id {
        let weight = name.len() + 32;
        cache.keep(generation, key, id, weight);
    }
    Ok(id)
}

const ENSURE: &str = "INSERT INTO repositories (registry_id, name, created_at) VALUES ($1, $2, $3) \
                      ON CONFLICT (registry_id, name) DO UPDATE SET name = excluded.name RETURNING id";

/// The id of repository `name`, creating it if needed (a write only the first time).
pub async fn ensure(db: &Db, registry_id: i64, name: &str) -> sqlx::Result<i64> {
    if let Some(id) = id(db, registry_id, name).await? {
        return Ok(id);
    }
    on_writer!(db, Touches::Nothing, p => sqlx::query_scalar(ENSURE).bind(registry_id).bind(name).bind(now()).fetch_one(p).await)
}

/// [`ensure`] inside a transaction.
pub async fn ensure_in(tx: &mut Tx, registry_id: i64, name: &str) -> sqlx::Result<i64> {
    on_tx!(tx, c => sqlx::query_scalar(ENSURE).bind(registry_id).bind(name).bind(now()).fetch_one(c).await)
}

/// Deletes repository `id` of registry `registry_id` if nothing is in it: no manifest, no blob link, no
/// upload session (what an upload that was started and never committed leaves behind); `true` if it went.
pub async fn delete_if_empty(db: &Db, registry_id: i64, id: i64) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM repositories WHERE id = $1 \
                       AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1) \
                       AND NOT EXISTS (SELECT 1 FROM repository_blobs WHERE repository_id = $1) \
                       AND NOT EXISTS (SELECT 1 FROM upload_sessions WHERE repository_id = $1)";
    let done = on_writer!(db, Touches::Repositories(registry_id), p => sqlx::query(SQL).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Listed repository names of a registry (not those whose list lock is set) in lexical order after
/// `last`, at most `limit` of them. The hidden ones are one small set (a partial index), so the listing
/// itself still reads the names' index alone.
pub async fn list(db: &Db, registry_id: i64, last: Option<&str>, limit: i64) -> sqlx::Result<Vec<String>> {
    const PAGE: &str = "SELECT name FROM repositories WHERE registry_id = $1 AND name > $2 AND name NOT IN \
                        (SELECT name FROM repositories WHERE registry_id = $1 AND NOT list_enabled) \
                        ORDER BY name LIMIT $3";
    super::ordered_names(db, PAGE, registry_id, last.unwrap_or(""), limit).await
}

/// Every repository of a registry, listed or not: (id, name) by name.
pub async fn all(db: &Db, registry_id: i64) -> sqlx::Result<Vec<(i64, String)>> {
    const SQL: &str = "SELECT id, name FROM repositories WHERE registry_id = $1 ORDER BY name";
    on_db!(db, p => sqlx::query_as(SQL).bind(registry_id).fetch_all(p).await)
}

/// Deletes repository `name` with its manifests, tags and blob links (its tags and manifests kept in the
/// tag history and the deleted manifests, to be restored); `false` if there was none.
pub async fn delete(db: &Db, registry_id: i64, name: &str, actor: Actor<'_>) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM repositories WHERE id = $1";
    let Some(repository_id) = id(db, registry_id, name).await? else {
        return Ok(false);
    };
    let place = Place {
        registry_id,
        repository: name,
        repository_id,
    };
    let mut tx = db.begin(Touches::Repositories(registry_id)).await?;
    history::record_deletions(&mut tx, place, actor, "$2 = ''", Some("$2 = ''"), "").await?;
    let done = on_tx!(tx, c => sqlx::query(SQL).bind(repository_id).execute(c).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(done == 1)
}
