//! What a registry's content adds up to, read from the metadata alone (never by walking the store):
//! the bytes of its blobs, those no manifest references, and counts of repositories, manifests and tags.

use super::{Db, on_db};

/// A registry's usage.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RegistryUsage {
    /// Bytes of the registry's blobs, each counted once however many repositories share it.
    pub stored_bytes: i64,
    /// Bytes of blobs no manifest of the registry references: what a collection may give back.
    pub unreferenced_bytes: i64,
    pub repositories: i64,
    pub manifests: i64,
    pub tags: i64,
}

/// A repository's usage.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RepositoryUsage {
    /// Bytes of the blobs its manifests reference, each counted once (blobs shared with other
    /// repositories count in each).
    pub bytes: i64,
    pub manifests: i64,
    pub tags: i64,
}

/// Whether blob `b` (of registry `registry`) is named by no manifest of any repository of that registry.
const UNREFERENCED: &str = "NOT EXISTS (SELECT 1 FROM manifest_blobs f JOIN repositories p ON p.id = f.repository_id \
                            WHERE p.registry_id = b.registry_id AND f.blob_digest = b.digest)";

/// The usage of registry `registry_id`.
pub async fn of_registry(db: &Db, registry_id: i64) -> sqlx::Result<RegistryUsage> {
    let sql = format!(
        "SELECT \
         (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b WHERE b.registry_id = $1) AS stored_bytes, \
         (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b WHERE b.registry_id = $1 AND {UNREFERENCED}) \
         AS unreferenced_bytes, \
         (SELECT COUNT(*) FROM repositories WHERE registry_id = $1) AS repositories, \
         (SELECT COUNT(*) FROM manifests m JOIN repositories p ON p.id = m.repository_id WHERE p.registry_id = $1) \
         AS manifests, \
         (SELECT COUNT(*) FROM tags t JOIN repositories p ON p.id = t.repository_id WHERE p.registry_id = $1) AS tags"
    );
    on_db!(db, p => sqlx::query_as(&sql).bind(registry_id).fetch_one(p).await)
}

/// Bytes of registry `registry_id`'s blobs, each counted once: what its storage quota limits.
pub async fn stored_bytes(db: &Db, registry_id: i64) -> sqlx::Result<i64> {
    const SQL: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs WHERE registry_id = $1";
    on_db!(db, p => sqlx::query_scalar(SQL).bind(registry_id).fetch_one(p).await)
}

/// The usage of repository `repository_id` of registry `registry_id`.
pub async fn of_repository(db: &Db, registry_id: i64, repository_id: i64) -> sqlx::Result<RepositoryUsage> {
    const SQL: &str = "SELECT \
         (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b WHERE b.registry_id = $1 AND b.digest IN \
         (SELECT blob_digest FROM manifest_blobs WHERE repository_id = $2)) AS bytes, \
         (SELECT COUNT(*) FROM manifests WHERE repository_id = $2) AS manifests, \
         (SELECT COUNT(*) FROM tags WHERE repository_id = $2) AS tags";
    on_db!(db, p => sqlx::query_as(SQL).bind(registry_id).bind(repository_id).fetch_one(p).await)
}

/// `(registry name, stored bytes, unreferenced bytes)` of every registry, for the metrics.
pub async fn bytes_by_registry(db: &Db) -> sqlx::Result<Vec<(String, i64, i64)>> {
    let sql = format!(
        "SELECT r.name, CAST(COALESCE(SUM(b.size), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN {UNREFERENCED} THEN b.size ELSE 0 END), 0) AS BIGINT) \
         FROM registries r LEFT JOIN blobs b ON b.registry_id = r.id GROUP BY r.id, r.name"
    );
    on_db!(db, p => sqlx::query_as(&sql).fetch_all(p).await)
}
