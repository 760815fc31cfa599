//! The durable queue of objects a collection took: each row is a collected blob's objects, deleted from
//! its registry's store after the collection committed, and the row only once they are gone.

use super::{Db, Touches, on_db, on_writer};

/// A queued blob's objects, with the store they are in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedObjects {
    pub id: i64,
    pub registry: String,
    pub storage_url: Option<String>,
    pub object_key: String,
    pub parts: Option<String>,
    pub size: i64,
}

/// The oldest `limit` queued rows.
pub async fn next(db: &Db, limit: i64) -> sqlx::Result<Vec<QueuedObjects>> {
    const SQL: &str = "SELECT q.id, r.name AS registry, r.storage_url, q.object_key, q.parts, q.size \
                       FROM gc_queue q JOIN registries r ON r.id = q.registry_id ORDER BY q.id LIMIT $1";
    on_db!(db, p => sqlx::query_as(SQL).bind(limit).fetch_all(p).await)
}

/// Removes row `id`: its objects are gone.
pub async fn done(db: &Db, id: i64) -> sqlx::Result<()> {
    const SQL: &str = "DELETE FROM gc_queue WHERE id = $1";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(id).execute(p).await.map(|_| ()))
}

/// `(registry name, queued blobs, their bytes)` of every registry with queued objects.
pub async fn depth_by_registry(db: &Db) -> sqlx::Result<Vec<(String, i64, i64)>> {
    const SQL: &str = "SELECT r.name, COUNT(*), CAST(COALESCE(SUM(q.size), 0) AS BIGINT) \
                       FROM gc_queue q JOIN registries r ON r.id = q.registry_id GROUP BY r.name";
    on_db!(db, p => sqlx::query_as(SQL).fetch_all(p).await)
}
