//! Upload sessions: how far each upload has come, its chunks and its saved hash state.

use super::{Db, now, on_db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRow {
    pub id: String,
    pub registry_id: i64,
    pub repository_id: i64,
    pub byte_offset: i64,
    /// The chunks received so far, as [`crate::storage::Chunk::encode_list`] wrote them.
    pub chunks: String,
    pub hash_state: Option<Vec<u8>>,
    /// The token subject that started the upload.
    pub owner: String,
}

const COLUMNS: &str = "id, registry_id, repository_id, byte_offset, chunks, hash_state, owner";

/// Opens a session and returns it as stored.
pub async fn create(db: &Db, id: &str, registry_id: i64, repository_id: i64, owner: &str) -> sqlx::Result<UploadRow> {
    let sql = format!(
        "INSERT INTO upload_sessions (id, registry_id, repository_id, owner, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    );
    on_db!(db, p => sqlx::query_as(&sql).bind(id).bind(registry_id).bind(repository_id).bind(owner).bind(now()).fetch_one(p).await)
}

pub async fn find(db: &Db, id: &str) -> sqlx::Result<Option<UploadRow>> {
    let sql = format!("SELECT {COLUMNS} FROM upload_sessions WHERE id = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
}

/// Records a received chunk, only if the session still stands at `expected_offset`; `false` means another
/// request moved it first.
pub async fn advance(
    db: &Db,
    id: &str,
    expected_offset: i64,
    new_offset: i64,
    chunks: &str,
    hash_state: Option<&[u8]>,
) -> sqlx::Result<bool> {
    const SQL: &str = "UPDATE upload_sessions SET byte_offset = $1, chunks = $2, hash_state = $3, updated_at = $4 \
                       WHERE id = $5 AND byte_offset = $6";
    let done = on_db!(db, p => sqlx::query(SQL).bind(new_offset).bind(chunks).bind(hash_state).bind(now())
        .bind(id).bind(expected_offset).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Ends a session; `false` if it was already gone.
pub async fn delete(db: &Db, id: &str) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM upload_sessions WHERE id = $1";
    let done = on_db!(db, p => sqlx::query(SQL).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// The statement ending a session only if it still stands at an offset (parameters: id, offset).
pub(super) fn end_sql(id: &str, expected_offset: &str) -> String {
    format!("DELETE FROM upload_sessions WHERE id = {id} AND byte_offset = {expected_offset}")
}

/// An upload session nobody has touched for a while, with where its registry keeps blobs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaleUpload {
    pub id: String,
    pub registry: String,
    pub storage_url: Option<String>,
}

/// Sessions last updated before `before` (unix seconds).
pub async fn stale(db: &Db, before: i64) -> sqlx::Result<Vec<StaleUpload>> {
    const SQL: &str = "SELECT u.id, r.name AS registry, r.storage_url FROM upload_sessions u \
                       JOIN registries r ON r.id = u.registry_id WHERE u.updated_at < $1";
    on_db!(db, p => sqlx::query_as(SQL).bind(before).fetch_all(p).await)
}

/// The number of upload sessions in progress, by registry name.
pub async fn count_by_registry(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    const SQL: &str =
        "SELECT r.name, COUNT(*) FROM upload_sessions u JOIN registries r ON r.id = u.registry_id GROUP BY r.name";
    on_db!(db, p => sqlx::query_as(SQL).fetch_all(p).await)
}
