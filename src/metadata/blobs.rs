//! Committed blobs of a registry (size, where the bytes are) and their links to repositories.

use super::{Db, Tx, now, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BlobRow {
    pub size: i64,
    pub object_key: String,
    /// The parts below `object_key` as `name:size,...`; `None` when `object_key` is one object.
    pub parts: Option<String>,
}

/// The blob `digest` if repository `repository_id` may serve it.
pub async fn linked(db: &Db, repository_id: i64, digest: &str) -> sqlx::Result<Option<BlobRow>> {
    const SQL: &str = "SELECT b.size, b.object_key, b.parts FROM repository_blobs l \
                       JOIN repositories r ON r.id = l.repository_id \
                       JOIN blobs b ON b.registry_id = r.registry_id AND b.digest = l.digest \
                       WHERE l.repository_id = $1 AND l.digest = $2";
    on_db!(db, p => sqlx::query_as(SQL).bind(repository_id).bind(digest).fetch_optional(p).await)
}

/// Records a committed blob; `false` if the registry already had it (the caller's copy is then redundant).
pub async fn insert(
    tx: &mut Tx,
    registry_id: i64,
    digest: &str,
    size: i64,
    object_key: &str,
    parts: Option<&str>,
) -> sqlx::Result<bool> {
    const SQL: &str = "INSERT INTO blobs (registry_id, digest, size, object_key, parts, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (registry_id, digest) DO NOTHING";
    let done = on_tx!(tx, c => sqlx::query(SQL).bind(registry_id).bind(digest).bind(size).bind(object_key)
        .bind(parts).bind(now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Makes blob `digest` readable through repository `repository_id`.
pub async fn link(tx: &mut Tx, repository_id: i64, digest: &str) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3) \
                       ON CONFLICT (repository_id, digest) DO NOTHING";
    on_tx!(tx, c => sqlx::query(SQL).bind(repository_id).bind(digest).bind(now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes the link of blob `digest` from a repository; `false` if there was none.
pub async fn unlink(db: &Db, repository_id: i64, digest: &str) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2";
    let done =
        on_db!(db, p => sqlx::query(SQL).bind(repository_id).bind(digest).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Of `digests`, the first that repository `repository_id` cannot serve.
pub async fn first_unlinked(db: &Db, repository_id: i64, digests: &[String]) -> sqlx::Result<Option<String>> {
    const SQL: &str = "SELECT digest FROM repository_blobs WHERE repository_id = $1 AND digest";
    super::first_absent(db, SQL, repository_id, digests).await
}

/// The registry's record of blob `digest`, whichever repositories link it.
pub async fn in_registry(db: &Db, registry_id: i64, digest: &str) -> sqlx::Result<Option<BlobRow>> {
    const SQL: &str = "SELECT size, object_key, parts FROM blobs WHERE registry_id = $1 AND digest = $2";
    on_db!(db, p => sqlx::query_as(SQL).bind(registry_id).bind(digest).fetch_optional(p).await)
}
