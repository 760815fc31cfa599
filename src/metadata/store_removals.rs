//! The stores of deleted registries, still to be emptied. A row is written in the transaction that
//! deletes the registry, claimed by whoever empties the store (the request, then the collector if the
//! request's process died), and removed once the store is empty; while it stands no new registry may
//! take the location.

use super::{Db, Touches, on_db, on_writer};

/// A store to empty.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoreRemoval {
    pub id: i64,
    pub name: String,
    pub storage_url: Option<String>,
}

/// Deletes registry `registry_id` and, through the foreign keys, everything in it, recording its store
/// (of registry `name` at `storage_url`) as one to empty, claimed for `claim_secs` by the caller; `None`
/// if there was no such registry.
pub async fn delete_registry(
    db: &Db,
    registry_id: i64,
    name: &str,
    storage_url: Option<&str>,
    claim_secs: i64,
) -> sqlx::Result<Option<StoreRemoval>> {
    // A registry goes with everything in it: the delete locks (which refuse deletes, see `locks`) of its
    // repositories, manifests and tags are lifted first, in the same transaction.
    const UNLOCK: [&str; 3] = [
        "UPDATE tags SET delete_enabled = TRUE WHERE NOT delete_enabled \
         AND repository_id IN (SELECT id FROM repositories WHERE registry_id = $1)",
        "UPDATE manifests SET delete_enabled = TRUE WHERE NOT delete_enabled \
         AND repository_id IN (SELECT id FROM repositories WHERE registry_id = $1)",
        "UPDATE repositories SET delete_enabled = TRUE WHERE NOT delete_enabled AND registry_id = $1",
    ];
    const DELETE: &str = "DELETE FROM registries WHERE id = $1";
    const RECORD: &str = "INSERT INTO store_removals (name, storage_url, claimed_until, queued_at) \
                          VALUES ($1, $2, $3, $4) RETURNING id, name, storage_url";
    let mut tx = db.begin(Touches::Everything(registry_id)).await?;
    for unlock in UNLOCK {
        super::on_tx!(tx, c => sqlx::query(unlock).bind(registry_id).execute(c).await.map(|_| ()))?;
    }
    let deleted =
        super::on_tx!(tx, c => sqlx::query(DELETE).bind(registry_id).execute(c).await.map(|r| r.rows_affected()))?;
    if deleted == 0 {
        return Ok(None);
    }
    let now = super::now();
    let removal = super::on_tx!(tx, c => sqlx::query_as(RECORD).bind(name).bind(storage_url)
        .bind(now + claim_secs).bind(now).fetch_one(c).await)?;
    tx.commit().await?;
    Ok(Some(removal))
}

/// Every store still to be emptied.
pub async fn pending(db: &Db) -> sqlx::Result<Vec<StoreRemoval>> {
    const SQL: &str = "SELECT id, name, storage_url FROM store_removals ORDER BY id";
    on_db!(db, p => sqlx::query_as(SQL).fetch_all(p).await)
}

/// Claims for `claim_secs` every store to empty whose claim has lapsed.
pub async fn claim_lapsed(db: &Db, claim_secs: i64) -> sqlx::Result<Vec<StoreRemoval>> {
    const SQL: &str = "UPDATE store_removals SET claimed_until = $1 WHERE claimed_until < $2 \
                       RETURNING id, name, storage_url";
    let now = super::now();
    on_writer!(db, Touches::Nothing, p => sqlx::query_as(SQL).bind(now + claim_secs).bind(now).fetch_all(p).await)
}

/// Removes row `id`: its store is empty.
pub async fn done(db: &Db, id: i64) -> sqlx::Result<()> {
    const SQL: &str = "DELETE FROM store_removals WHERE id = $1";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(id).execute(p).await.map(|_| ()))
}
