//! Upload sessions: how far each upload has come, its chunks and its saved hash state.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Db, Touches, now, on_db, on_writer};

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

/// Upload sessions as this process last wrote them, when it owns the database (SQLite): a push reads its
/// session on every `PATCH` and `PUT`, and only this process writes it. Rows enter only from this
/// process's own successful writes (never from reads), and only with a greater offset than the row they
/// replace. A failed or ending write leaves a tombstone, so a write that finishes late never brings its
/// row back. Past [`MAX_CACHED_SESSIONS`] entries everything is dropped and the generation moves, so no
/// write that started before can keep its row. A miss reads the database.
#[derive(Debug)]
pub(super) struct SessionCache {
    enabled: bool,
    state: Mutex<SessionState>,
}

#[derive(Debug, Default)]
struct SessionState {
    generation: u64,
    /// `None`: a tombstone (session ended, or a write on it failed).
    rows: HashMap<String, Option<UploadRow>>,
}

/// Entries (rows and tombstones) kept at most.
const MAX_CACHED_SESSIONS: usize = 10_000;

impl SessionCache {
    pub(super) fn new(enabled: bool) -> Self {
        SessionCache {
            enabled,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: &str) -> Option<UploadRow> {
        if !self.enabled {
            return None;
        }
        self.state().rows.get(id).cloned().flatten()
    }

    fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Keeps `row` as written by a write that started at `generation`.
    fn keep(&self, generation: u64, row: &UploadRow) {
        if !self.enabled {
            return;
        }
        let mut state = self.state();
        let superseded = match state.rows.get(&row.id) {
            Some(None) => true,
            Some(Some(cached)) => cached.byte_offset >= row.byte_offset,
            None => false,
        };
        if state.generation == generation && !superseded {
            state.rows.insert(row.id.clone(), Some(row.clone()));
            state.make_room();
        }
    }

    /// Marks session `id` as not to be served from here any more.
    pub(super) fn forget(&self, id: &str) {
        if !self.enabled {
            return;
        }
        let mut state = self.state();
        state.rows.insert(id.to_owned(), None);
        state.make_room();
    }

    /// Forgets the sessions of registry `registry_id` (its repositories went, and their sessions with them).
    pub(super) fn forget_registry(&self, registry_id: i64) {
        if !self.enabled {
            return;
        }
        let mut state = self.state();
        state.generation += 1;
        state
            .rows
            .retain(|_, row| row.as_ref().is_none_or(|r| r.registry_id != registry_id));
    }
}

impl SessionState {
    fn make_room(&mut self) {
        if self.rows.len() > MAX_CACHED_SESSIONS {
            self.generation += 1;
            self.rows.clear();
        }
    }
}

/// Opens a session and returns it as stored.
pub async fn create(db: &Db, id: &str, registry_id: i64, repository_id: i64, owner: &str) -> sqlx::Result<UploadRow> {
    let sql = format!(
        "INSERT INTO upload_sessions (id, registry_id, repository_id, owner, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    );
    let generation = db.caches.sessions.generation();
    let row: UploadRow = on_writer!(db, Touches::Nothing, p => sqlx::query_as(&sql).bind(id).bind(registry_id).bind(repository_id).bind(owner).bind(now()).fetch_one(p).await)?;
    db.caches.sessions.keep(generation, &row);
    Ok(row)
}

pub async fn find(db: &Db, id: &str) -> sqlx::Result<Option<UploadRow>> {
    if let Some(row) = db.caches.sessions.get(id) {
        return Ok(Some(row));
    }
    let sql = format!("SELECT {COLUMNS} FROM upload_sessions WHERE id = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
}

/// Records a received chunk: `row` is the session as it now stands, written only if it still stood at
/// `expected_offset`; `false` means another request moved it first.
pub async fn advance(db: &Db, row: &UploadRow, expected_offset: i64) -> sqlx::Result<bool> {
    const SQL: &str = "UPDATE upload_sessions SET byte_offset = $1, chunks = $2, hash_state = $3, updated_at = $4 \
                       WHERE id = $5 AND byte_offset = $6";
    let generation = db.caches.sessions.generation();
    let done = on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(row.byte_offset).bind(&row.chunks).bind(&row.hash_state)
        .bind(now()).bind(&row.id).bind(expected_offset).execute(p).await.map(|r| r.rows_affected()))?;
    if done == 1 {
        db.caches.sessions.keep(generation, row);
    } else {
        db.caches.sessions.forget(&row.id);
    }
    Ok(done == 1)
}

/// Ends a session; `false` if it was already gone.
pub async fn delete(db: &Db, id: &str) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM upload_sessions WHERE id = $1";
    let done =
        on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(id).execute(p).await.map(|r| r.rows_affected()));
    db.caches.sessions.forget(id);
    Ok(done? == 1)
}

/// The statement ending a session only if it still stands at an offset (parameters: id, offset).
pub(super) fn end_sql(id: &str, expected_offset: &str) -> String {
    format!("DELETE FROM upload_sessions WHERE id = {id} AND byte_offset = {expected_offset}")
}

/// An upload session nobody has touched for a while, with where its registry keeps blobs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaleUpload {
    pub id: String,
    pub registry_id: i64,
    pub repository_id: i64,
    pub registry: String,
    pub storage_url: Option<String>,
}

/// Sessions last updated before `before` (unix seconds).
pub async fn stale(db: &Db, before: i64) -> sqlx::Result<Vec<StaleUpload>> {
    const SQL: &str = "SELECT u.id, u.registry_id, u.repository_id, r.name AS registry, r.storage_url FROM upload_sessions u \
                       JOIN registries r ON r.id = u.registry_id WHERE u.updated_at < $1";
    on_db!(db, p => sqlx::query_as(SQL).bind(before).fetch_all(p).await)
}

/// The number of upload sessions in progress, by registry name.
pub async fn count_by_registry(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    const SQL: &str =
        "SELECT r.name, COUNT(*) FROM upload_sessions u JOIN registries r ON r.id = u.registry_id GROUP BY r.name";
    on_db!(db, p => sqlx::query_as(SQL).fetch_all(p).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, offset: i64) -> UploadRow {
        UploadRow {
            id: id.to_owned(),
            registry_id: 1,
            repository_id: 1,
            byte_offset: offset,
            chunks: String::new(),
            hash_state: None,
            owner: "me".to_owned(),
        }
    }

    #[test]
    fn only_newer_rows_of_live_sessions_are_kept() {
        let cache = SessionCache::new(true);
        let g = cache.generation();
        cache.keep(g, &row("a", 10));
        cache.keep(g, &row("a", 5)); // a write that finished late
        assert_eq!(cache.get("a").map(|r| r.byte_offset), Some(10));

        cache.forget("a"); // the session ended
        cache.keep(g, &row("a", 20)); // a write that started before
        assert!(cache.get("a").is_none());

        let g = cache.generation();
        cache.keep(g, &row("c", 1));
        cache.forget_registry(1);
        cache.keep(g, &row("b", 1));
        assert!(cache.get("c").is_none(), "the registry's sessions are forgotten");
        assert!(cache.get("b").is_none(), "a write from before the clear keeps nothing");
    }

    #[test]
    fn entries_are_bounded_and_a_disabled_cache_keeps_nothing() {
        let cache = SessionCache::new(true);
        for i in 0..=MAX_CACHED_SESSIONS {
            cache.forget(&i.to_string());
        }
        assert!(cache.state().rows.len() <= MAX_CACHED_SESSIONS);

        let disabled = SessionCache::new(false);
        disabled.keep(disabled.generation(), &row("a", 1));
        assert!(disabled.get("a").is_none());
    }
}
