//! Write transactions sent to SQLite in one call. sqlx hands each call to the connection's worker thread
//! and waits for the answer; a transaction made of `BEGIN`, the statements and `COMMIT` as separate calls
//! holds SQLite's one write lock across those hand-offs, while other connections wait for it. A script that
//! starts with `BEGIN IMMEDIATE` and ends with `COMMIT` holds the lock only while SQLite runs it.

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

/// Wraps `statements` (separated by `;`) in `BEGIN IMMEDIATE` … `COMMIT`.
pub fn transaction(statements: &str) -> String {
    format!("BEGIN IMMEDIATE;\n{statements};\nCOMMIT")
}

/// A pooled connection to run one [`transaction`] script on. A script that fails part-way, or whose
/// caller stops waiting for it, may leave its transaction open: unless [`ScriptConn::done`] is called, the
/// connection is closed instead of going back to the pool, and closing rolls the transaction back.
pub struct ScriptConn {
    conn: PoolConnection<Sqlite>,
    done: bool,
}

impl ScriptConn {
    pub async fn acquire(pool: &SqlitePool) -> sqlx::Result<Self> {
        Ok(ScriptConn {
            conn: pool.acquire().await?,
            done: false,
        })
    }

    pub fn get(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// The script ran to its `COMMIT`: the connection goes back to the pool.
    pub fn done(mut self) {
        self.done = true;
    }
}

impl Drop for ScriptConn {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool() -> (tempfile::TempDir, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let pool = SqlitePool::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        (dir, pool)
    }

    async fn count(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_script_failing_part_way_changes_nothing_and_leaves_no_transaction_open() {
        let (_dir, pool) = pool().await;
        let script = transaction("INSERT INTO t VALUES (1); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)");
        let mut conn = ScriptConn::acquire(&pool).await.unwrap();
        assert!(
            sqlx::query(&script).execute(conn.get()).await.is_err(),
            "the second insert conflicts"
        );
        drop(conn);
        // Another writer gets the lock at once (an open transaction would hold it) and sees no row.
        let ok = transaction("INSERT INTO t VALUES (3)");
        let mut conn = ScriptConn::acquire(&pool).await.unwrap();
        sqlx::query(&ok).execute(conn.get()).await.unwrap();
        conn.done();
        assert_eq!(count(&pool).await, 1);
    }
}
