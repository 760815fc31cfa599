//! What the collections of each registry did: the last one, and totals since the registry was created.

use super::{Db, Touches, on_db, on_writer};

/// One registry's record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GcRun {
    pub registry: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub links: i64,
    pub blobs: i64,
    pub bytes: i64,
    pub swept_objects: i64,
    /// When the store was last swept for objects the database does not know (0: never).
    pub swept_at: i64,
    pub total_blobs: i64,
    pub total_bytes: i64,
}

/// A finished collection of registry `registry_id`.
pub struct Finished {
    pub registry_id: i64,
    pub started_at: i64,
    pub links: i64,
    pub blobs: i64,
    pub bytes: i64,
    /// Objects the sweep removed, when it ran.
    pub swept: Option<i64>,
}

/// Records `run`, adding it to the registry's totals.
pub async fn record(db: &Db, run: &Finished) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO gc_runs (registry_id, started_at, finished_at, links, blobs, bytes, \
         swept_objects, swept_at, total_blobs, total_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $5, $6) \
         ON CONFLICT (registry_id) DO UPDATE SET started_at = $2, finished_at = $3, links = $4, blobs = $5, \
         bytes = $6, swept_objects = $7, swept_at = CASE WHEN $8 > 0 THEN $8 ELSE gc_runs.swept_at END, \
         total_blobs = gc_runs.total_blobs + $5, total_bytes = gc_runs.total_bytes + $6";
    let now = super::now();
    let swept_at = if run.swept.is_some() { now } else { 0 };
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL)
        .bind(run.registry_id).bind(run.started_at).bind(now).bind(run.links).bind(run.blobs)
        .bind(run.bytes).bind(run.swept.unwrap_or(0)).bind(swept_at)
        .execute(p).await.map(|_| ()))
}

/// The records of every registry collected at least once, by registry name.
pub async fn all(db: &Db) -> sqlx::Result<Vec<GcRun>> {
    const SQL: &str = "SELECT r.name AS registry, g.started_at, g.finished_at, g.links, g.blobs, g.bytes, \
         g.swept_objects, g.swept_at, g.total_blobs, g.total_bytes \
         FROM gc_runs g JOIN registries r ON r.id = g.registry_id ORDER BY r.name_key";
    on_db!(db, p => sqlx::query_as(SQL).fetch_all(p).await)
}

/// When registry `registry_id`'s store was last swept (0: never).
pub async fn swept_at(db: &Db, registry_id: i64) -> sqlx::Result<i64> {
    const SQL: &str = "SELECT swept_at FROM gc_runs WHERE registry_id = $1";
    let at: Option<i64> = on_db!(db, p => sqlx::query_scalar(SQL).bind(registry_id).fetch_optional(p).await)?;
    Ok(at.unwrap_or(0))
}
