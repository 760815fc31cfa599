//! Registry metadata in SQL: SQLite (embedded default) or Postgres, chosen by the database URL.
//! Only this module holds SQL. Each aggregate module owns its row structs and statements; one SQL text
//! serves both backends (the portable subset: `$n` parameters, `ON CONFLICT`, `RETURNING`).

pub mod blobs;
pub mod manifests;
pub mod operators;
pub mod principals;
pub mod refresh_tokens;
pub mod registries;
pub mod repositories;
pub mod role_assignments;
pub mod signing_keys;
pub mod tags;
pub mod uploads;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// A connection pool on one of the supported backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on one of the supported backends.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$e` with `$p` bound to the backend's pool (or connection), whichever it is.
macro_rules! on_db {
    ($db:expr, $p:ident => $e:expr) => {
        match $db {
            $crate::metadata::Db::Sqlite($p) => $e,
            $crate::metadata::Db::Postgres($p) => $e,
        }
    };
}
pub(crate) use on_db;

/// Runs `$e` with `$c` bound to the transaction's connection.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $e:expr) => {
        match $tx {
            $crate::metadata::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $e
            }
            $crate::metadata::Tx::Postgres(t) => {
                let $c = &mut **t;
                $e
            }
        }
    };
}
pub(crate) use on_tx;

impl Db {
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> sqlx::Result<()> {
        on_db!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
    }
}

impl Tx {
    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

/// Opens the pool for `url` (`sqlite://…` or `postgres://…`) and applies the migrations. On Postgres every
/// statement is cut off after `statement_timeout`.
pub async fn connect(url: &str, max_connections: u32, statement_timeout: Duration) -> anyhow::Result<Db> {
    let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let timeout_ms = statement_timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", timeout_ms.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Db::Postgres(pool)
    } else if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Db::Sqlite(pool)
    } else {
        anyhow::bail!("unsupported database URL (use sqlite://<file> or postgres://…)");
    };
    Ok(db)
}

/// Of `digests`, the first for which `exists_sql` (binding `$1` = repository id, `$2` = digest) finds
/// no row.
async fn first_absent(
    db: &Db,
    exists_sql: &str,
    repository_id: i64,
    digests: &[String],
) -> sqlx::Result<Option<String>> {
    for digest in digests {
        let found: Option<i32> =
            on_db!(db, p => sqlx::query_scalar(exists_sql).bind(repository_id).bind(digest).fetch_optional(p).await)?;
        if found.is_none() {
            return Ok(Some(digest.clone()));
        }
    }
    Ok(None)
}

/// The names `page_sql` selects (binding `$1` = owner id, `$2` = last name, `$3` = limit), in order, read
/// as one comma-joined value: one row instead of thousands. Tag and repository names never hold a comma.
async fn ordered_names(db: &Db, page_sql: &str, owner_id: i64, last: &str, limit: i64) -> sqlx::Result<Vec<String>> {
    let sql = format!("SELECT STRING_AGG(name, ',' ORDER BY name) FROM ({page_sql}) AS page");
    let joined: Option<String> =
        on_db!(db, p => sqlx::query_scalar(&sql).bind(owner_id).bind(last).bind(limit).fetch_one(p).await)?;
    Ok(joined
        .map(|j| j.split(',').map(str::to_owned).collect())
        .unwrap_or_default())
}

/// Seconds since the Unix epoch, the one time unit stored in metadata.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |dir: &str| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let sqlite = names(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"));
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite,
            names(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        );
    }
}
