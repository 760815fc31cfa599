//! SQLite's one writing connection. SQLite runs one write transaction at a time; with several writing
//! connections, writers wait for its lock, and each connection empties its page cache whenever another
//! one has written. Here every write takes the one writer connection in turn (an async lock, no pool:
//! sqlx's pool also pings each connection it gets back, one more hand-off per statement), so its cache
//! stays valid and nothing waits inside SQLite. Reads use a pool of read-only connections.
//!
//! A transaction sent as `BEGIN`, statements and `COMMIT` in separate calls holds the turn across the
//! hand-offs between tokio and sqlx's worker thread; a `batch` sends one [`transaction`] script.
//!
//! Once writes pause, the write-ahead log is emptied ([`Writer::empty_log_if_idle`]). SQLite otherwise
//! rewrites the log file from its start after each checkpoint, and its frames (a 24-byte header and a
//! page) do not line up with the operating system's pages: every frame written over a page of the file
//! that memory pressure evicted reads that page from disk first, one synchronous read at a time on the
//! writer. A log emptied while idle is appended to instead, with no reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::SqliteConnection;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The writer connection, shared.
#[derive(Clone, Debug)]
pub struct Writer {
    conn: Arc<Mutex<SqliteConnection>>,
    /// What the idle check saw: the writer's `total_changes()` at the last look, and when the log was
    /// last emptied (-1: never).
    changes_seen: Arc<AtomicI64>,
    emptied_at: Arc<AtomicI64>,
}

/// How long an idle log's checkpoint waits for readers still on an older snapshot before it gives up
/// until the next look (it holds the writer meanwhile).
const IDLE_CHECKPOINT_WAIT: Duration = Duration::from_millis(100);

impl Writer {
    pub fn new(conn: SqliteConnection) -> Self {
        Writer {
            conn: Arc::new(Mutex::new(conn)),
            changes_seen: Arc::new(AtomicI64::new(-1)),
            emptied_at: Arc::new(AtomicI64::new(-1)),
        }
    }

    /// Checkpoints the whole log and truncates it to nothing, when the writer is free, has changed no
    /// row since the last call and has changed some since the log was last emptied. Called every few
    /// seconds; `true` when it emptied the log. `busy_timeout` is the connection's usual lock wait, put
    /// back afterwards.
    pub async fn empty_log_if_idle(&self, busy_timeout: Duration) -> sqlx::Result<bool> {
        let Ok(mut conn) = self.conn.try_lock() else {
            return Ok(false);
        };
        let changes: i64 = sqlx::query_scalar("SELECT total_changes()")
            .fetch_one(&mut *conn)
            .await?;
        let idle = self.changes_seen.swap(changes, Ordering::Relaxed) == changes;
        if !idle || self.emptied_at.load(Ordering::Relaxed) == changes {
            return Ok(false);
        }
        set_busy_timeout(&mut conn, IDLE_CHECKPOINT_WAIT).await?;
        let checkpoint = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await;
        set_busy_timeout(&mut conn, busy_timeout).await?;
        let (busy, _, _) = checkpoint?;
        if busy != 0 {
            return Ok(false);
        }
        self.emptied_at.store(changes, Ordering::Relaxed);
        Ok(true)
    }
}

async fn set_busy_timeout(conn: &mut SqliteConnection, wait: Duration) -> sqlx::Result<()> {
    sqlx::query(&format!("PRAGMA busy_timeout = {}", wait.as_millis()))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Wraps `statements` (separated by `;`) in `BEGIN IMMEDIATE` … `COMMIT`.
pub fn transaction(statements: &str) -> String {
    format!("BEGIN IMMEDIATE;\n{statements};\nCOMMIT")
}

/// The writer, held for a transaction (opened by [`Turn::begin`] or inside a [`transaction`] script).
/// A transaction not marked [`Turn::finished`] may still be open (a script failed part-way, or its caller
/// stopped waiting): dropping the turn then rolls it back, in a task of its own that keeps the writer
/// until the rollback is done.
pub struct Turn {
    conn: Option<OwnedMutexGuard<SqliteConnection>>,
    finished: bool,
}

impl Turn {
    /// Waits for the writer.
    pub async fn take(writer: &Writer) -> Self {
        Turn {
            conn: Some(writer.conn.clone().lock_owned().await),
            finished: false,
        }
    }

    /// Waits for the writer and opens a transaction on it.
    pub async fn begin(writer: &Writer) -> sqlx::Result<Self> {
        let mut turn = Turn::take(writer).await;
        sqlx::query("BEGIN IMMEDIATE").execute(turn.conn()).await?;
        Ok(turn)
    }

    pub fn conn(&mut self) -> &mut SqliteConnection {
        match self.conn.as_deref_mut() {
            Some(conn) => conn,
            None => unreachable!("a turn holds the writer until it is dropped"),
        }
    }

    /// Commits the transaction [`Turn::begin`] opened.
    pub async fn commit(mut self) -> sqlx::Result<()> {
        sqlx::query("COMMIT").execute(self.conn()).await?;
        self.finished();
        Ok(())
    }

    /// The transaction is over (a script ran to its `COMMIT`): the writer is free once this is dropped.
    pub fn finished(&mut self) {
        self.finished = true;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (Some(mut conn), Ok(runtime)) = (self.conn.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *conn).await
                && !e.to_string().contains("no transaction is active")
            {
                tracing::error!(error = %e, "rolling back an abandoned SQLite write failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        (dir, Writer::new(conn))
    }

    async fn count(writer: &Writer) -> i64 {
        let mut turn = Turn::take(writer).await;
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(turn.conn())
            .await
            .unwrap();
        turn.finished();
        n
    }

    #[tokio::test]
    async fn a_script_failing_part_way_is_rolled_back_before_the_next_turn() {
        let (_dir, writer) = writer().await;
        let script = transaction("INSERT INTO t VALUES (1); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)");
        let mut turn = Turn::take(&writer).await;
        assert!(
            sqlx::query(&script).execute(turn.conn()).await.is_err(),
            "the second insert conflicts"
        );
        drop(turn);
        // An open transaction would make this BEGIN fail.
        let mut turn = Turn::take(&writer).await;
        sqlx::query(&transaction("INSERT INTO t VALUES (3)"))
            .execute(turn.conn())
            .await
            .unwrap();
        turn.finished();
        drop(turn);
        assert_eq!(count(&writer).await, 1);
    }

    #[tokio::test]
    async fn a_transaction_dropped_uncommitted_is_rolled_back() {
        let (_dir, writer) = writer().await;
        let mut turn = Turn::begin(&writer).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(turn.conn())
            .await
            .unwrap();
        drop(turn);
        let mut turn = Turn::begin(&writer).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(turn.conn())
            .await
            .unwrap();
        turn.commit().await.unwrap();
        assert_eq!(count(&writer).await, 1);
    }

    fn log_size(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("t.db-wal")).map_or(0, |m| m.len())
    }

    #[tokio::test]
    async fn the_log_is_emptied_once_writes_pause_and_not_while_they_go_on() {
        let (dir, writer) = writer().await;
        let mut turn = Turn::take(&writer).await;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(turn.conn())
            .await
            .unwrap();
        turn.finished();
        drop(turn);
        let wait = Duration::from_secs(1);
        let insert = |k: i64| {
            let writer = writer.clone();
            async move {
                let mut turn = Turn::take(&writer).await;
                sqlx::query("INSERT INTO t VALUES (?)")
                    .bind(k)
                    .execute(turn.conn())
                    .await
                    .unwrap();
                turn.finished();
            }
        };
        insert(1).await;
        assert!(
            !writer.empty_log_if_idle(wait).await.unwrap(),
            "first look: not known idle yet"
        );
        insert(2).await;
        assert!(
            !writer.empty_log_if_idle(wait).await.unwrap(),
            "a write since the last look"
        );
        assert!(log_size(&dir) > 0);
        let mut held = Turn::take(&writer).await;
        assert!(!writer.empty_log_if_idle(wait).await.unwrap(), "the writer is busy");
        held.finished();
        drop(held);
        assert!(
            writer.empty_log_if_idle(wait).await.unwrap(),
            "no write since the last look"
        );
        assert_eq!(log_size(&dir), 0);
        assert!(
            !writer.empty_log_if_idle(wait).await.unwrap(),
            "nothing written since it was emptied"
        );
        insert(3).await;
        writer.empty_log_if_idle(wait).await.unwrap();
        assert!(writer.empty_log_if_idle(wait).await.unwrap());
        assert_eq!(count(&writer).await, 3);
    }
}
