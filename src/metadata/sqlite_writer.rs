//! SQLite's one writing connection. SQLite runs one write transaction at a time; with several writing
//! connections, writers wait for its lock, and each connection empties its page cache whenever another
//! one has written. Here every write takes the one writer connection in turn (an async lock, no pool:
//! sqlx's pool also pings each connection it gets back, one more hand-off per statement), so its cache
//! stays valid and nothing waits inside SQLite. Reads use a pool of read-only connections.
//!
//! A transaction sent as `BEGIN`, statements and `COMMIT` in separate calls holds the turn across the
//! hand-offs between tokio and sqlx's worker thread; a `batch` sends one [`transaction`] script.

use std::sync::Arc;

use sqlx::SqliteConnection;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The writer connection, shared.
pub type Writer = Arc<Mutex<SqliteConnection>>;

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
            conn: Some(writer.clone().lock_owned().await),
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
        (dir, Arc::new(Mutex::new(conn)))
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
}
