//! Tags: names pointing at manifests of a repository.

use super::{Db, Tx, now, on_db, on_tx};

/// Points `tag` at `manifest_digest`, moving it if it pointed elsewhere.
pub async fn upsert(tx: &mut Tx, repository_id: i64, tag: &str, manifest_digest: &str) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4) \
                       ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, \
                       updated_at = excluded.updated_at";
    on_tx!(tx, c => sqlx::query(SQL).bind(repository_id).bind(tag).bind(manifest_digest).bind(now()).execute(c).await.map(|r| r.rows_affected()))?;
    tx.forget_manifests = true;
    Ok(())
}

/// Tag names in lexical order after `last`, at most `limit` of them.
pub async fn list(db: &Db, repository_id: i64, last: Option<&str>, limit: i64) -> sqlx::Result<Vec<String>> {
    const PAGE: &str = "SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3";
    super::ordered_names(db, PAGE, repository_id, last.unwrap_or(""), limit).await
}

/// Removes a tag (not the manifest); `false` if there was no such tag.
pub async fn delete(db: &Db, repository_id: i64, tag: &str) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM tags WHERE repository_id = $1 AND name = $2";
    let done =
        on_db!(db, p => sqlx::query(SQL).bind(repository_id).bind(tag).execute(p).await.map(|r| r.rows_affected()))?;
    db.caches.manifests.forget_all();
    Ok(done == 1)
}
