//! Registry metadata in SQL: SQLite (embedded default) or Postgres, chosen by the database URL.
//! Only this module holds SQL. Each aggregate module owns its row structs and statements; one SQL text
//! serves both backends (the portable subset: `$n` parameters, `ON CONFLICT`, `RETURNING`). A write of
//! several statements either opens a transaction ([`Db::begin`]) or, when it is hot, is one `batch`: one
//! round trip on either database.

mod batch;
pub mod blobs;
pub mod cache;
pub mod collection;
mod failure;
pub mod gc_queue;
pub mod gc_runs;
pub mod history;
pub mod leases;
pub mod locks;
pub mod manifests;
pub mod operators;
pub mod portal_sessions;
pub mod principals;
pub mod pulls;
pub mod refresh_tokens;
pub mod registries;
pub mod repositories;
pub mod role_assignments;
pub mod signing_keys;
mod sqlite_writer;
pub mod store_removals;
pub mod tags;
pub mod uploads;
pub mod usage;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cache::ReadCache;
use sqlite_writer::Turn;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// A connection pool on one of the supported backends.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The metadata database: its pools, and the rows this process may keep in memory (only on the embedded
/// SQLite database, which one process owns: see [`connect`]).
#[derive(Clone, Debug)]
pub struct Db {
    /// Where reads go.
    pub pool: Pool,
    /// Where writes go.
    writer: Writer,
    caches: Arc<Caches>,
    /// Held while the pool lives: the lock that makes this process the SQLite file's only user.
    _owner: Option<Arc<std::fs::File>>,
    /// The SQLite file as opened; every write first checks it is still there.
    file: Option<Arc<OpenedFile>>,
}

/// A SQLite database file as it was opened. Deleted or replaced while the server runs, it would take
/// every later write with it at the next start: such writes are refused (503) and `/readyz` fails.
#[derive(Debug)]
struct OpenedFile {
    path: std::path::PathBuf,
    identity: (u64, u64),
}

impl OpenedFile {
    fn open(path: &Path) -> anyhow::Result<Option<OpenedFile>> {
        if path.as_os_str().is_empty() || path == Path::new(":memory:") {
            return Ok(None);
        }
        let identity = Self::identity(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(OpenedFile {
            path: path.to_path_buf(),
            identity,
        }))
    }

    /// (device, inode) of the file at `path` now.
    fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok((meta.dev(), meta.ino()))
    }

    fn check(&self) -> sqlx::Result<()> {
        if Self::identity(&self.path).is_ok_and(|now| now == self.identity) {
            return Ok(());
        }
        tracing::error!(path = %self.path.display(), "the SQLite database file was deleted or replaced; refusing writes");
        Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "the database file {} was deleted or replaced while the server ran",
                self.path.display()
            ),
        )))
    }
}

/// Where a [`Db`]'s writes go: SQLite's one writer connection (`sqlite_writer`), or the Postgres pool.
#[derive(Clone, Debug)]
enum Writer {
    Sqlite(sqlite_writer::Writer),
    Postgres(PgPool),
}

/// The caches of [`Db`]: registry rows by name key, repository ids by (registry, name), manifests by
/// (registry, repository, reference), and upload sessions: the reads every pull and push makes.
#[derive(Debug)]
struct Caches {
    registries: ReadCache<String, registries::RegistryRow>,
    repositories: ReadCache<(i64, String), i64>,
    manifests: ReadCache<manifests::ManifestKey, manifests::ManifestRow>,
    sessions: uploads::SessionCache,
    /// Revocation epochs of principals by appId, read by every request a principal's token makes.
    principal_epochs: ReadCache<String, i64>,
}

impl Caches {
    /// Registry rows and repository ids are small (1 MiB, 2 MiB); manifests are bounded to 8 MiB (each
    /// at most 512 KiB).
    fn new(enabled: bool) -> Arc<Self> {
        Arc::new(Caches {
            registries: ReadCache::new(enabled, 1 << 20),
            repositories: ReadCache::new(enabled, 2 << 20),
            manifests: ReadCache::new(enabled, 8 << 20),
            sessions: uploads::SessionCache::new(enabled),
            principal_epochs: ReadCache::new(enabled, 1 << 20),
        })
    }

    /// Forgets what a write that `touches` may have changed.
    fn forget(&self, touches: Touches) {
        match touches {
            Touches::Nothing => {}
            Touches::Registry(id) => self.registries.forget_where(|_, row| row.id == id),
            Touches::Manifests(id) => self.manifests.forget_where(|(registry, ..), _| *registry == id),
            Touches::Repositories(id) => {
                self.repositories.forget_where(|(registry, _), _| *registry == id);
                self.manifests.forget_where(|(registry, ..), _| *registry == id);
                self.sessions.forget_registry(id);
            }
            Touches::Everything(id) => {
                self.forget(Touches::Registry(id));
                self.forget(Touches::Repositories(id));
            }
            Touches::PrincipalEpochs => self.principal_epochs.forget_all(),
        }
    }
}

/// What a write changes among the rows this process keeps in memory (see `Caches`). Every write says it
/// to its entry point (`on_writer!`, [`Db::begin`], [`Tx::touch`], `batch::Batch::new`), which forgets exactly
/// that once the write is over: a write cannot forget to, and it leaves other registries' rows cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// No row any cache holds (blob links, refresh tokens, role rows, keys; upload rows keep their own),
    /// or only new rows: caches keep rows found, never "not found", so creating one forgets nothing.
    Nothing,
    /// Registry `id`'s own row: its settings or passwords.
    Registry(i64),
    /// The tags and manifests of registry `id`.
    Manifests(i64),
    /// Repositories of registry `id`, with what is in them (one went).
    Repositories(i64),
    /// Registry `id` and everything in it (it went).
    Everything(i64),
    /// The revocation epochs of principals.
    PrincipalEpochs,
}

/// A transaction on one of the supported backends. It is opened saying what it touches, and writes that
/// touch more inside it add that ([`Tx::touch`]); the caches forget it all once the transaction commits
/// (not before: a read between would cache the old rows).
pub struct Tx {
    conn: TxConn,
    caches: Arc<Caches>,
    touches: Vec<Touches>,
}

enum TxConn {
    Sqlite(sqlite_writer::Turn),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$e` with `$p` bound to the backend's pool (or connection), whichever it is.
macro_rules! on_db {
    ($db:expr, $p:ident => $e:expr) => {
        match &$db.pool {
            $crate::metadata::Pool::Sqlite($p) => $e,
            $crate::metadata::Pool::Postgres($p) => $e,
        }
    };
}
pub(crate) use on_db;

/// Runs the write `$e` (one statement), which changes what `$touches` says (a [`Touches`]), with `$p`
/// bound to the backend's writer: SQLite's writer connection, taken in turn, or the Postgres pool. The
/// caches forget what it touched once it is over.
macro_rules! on_writer {
    ($db:expr, $touches:expr, $p:ident => $e:expr) => {{
        let result = match &$db.writer {
            $crate::metadata::Writer::Sqlite(writer) => match $db.file_still_open() {
                Err(e) => Err(e),
                Ok(()) => {
                    let mut turn = $crate::metadata::sqlite_writer::Turn::take(writer).await;
                    let result = {
                        let $p = turn.conn();
                        $e
                    };
                    // One statement commits (or fails) by itself: no transaction is left open.
                    turn.finished();
                    result
                }
            },
            $crate::metadata::Writer::Postgres($p) => $e,
        };
        $db.caches.forget($touches);
        result
    }};
}
pub(crate) use on_writer;

/// Runs `$e` with `$c` bound to the transaction's connection.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $e:expr) => {
        match &mut $tx.conn {
            $crate::metadata::TxConn::Sqlite(t) => {
                let $c = t.conn();
                $e
            }
            $crate::metadata::TxConn::Postgres(t) => {
                let $c = &mut **t;
                $e
            }
        }
    };
}
pub(crate) use on_tx;

impl Db {
    /// A write transaction that changes what `touches` says.
    pub async fn begin(&self, touches: Touches) -> sqlx::Result<Tx> {
        self.file_still_open()?;
        let conn = match &self.writer {
            Writer::Sqlite(w) => TxConn::Sqlite(sqlite_writer::Turn::begin(w).await?),
            Writer::Postgres(p) => TxConn::Postgres(p.begin().await?),
        };
        Ok(Tx {
            conn,
            caches: self.caches.clone(),
            touches: vec![touches],
        })
    }

    /// Runs `script` on SQLite's writer: statements sharing numbered parameters, in one transaction it
    /// opens and commits itself (see [`sqlite_writer::transaction`]), changing what `touches` says. A
    /// script that fails part-way is rolled back before the writer's next turn.
    async fn script<'q>(
        &self,
        writer: &sqlite_writer::Writer,
        touches: Touches,
        script: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> sqlx::Result<Vec<sqlx::sqlite::SqliteRow>> {
        self.file_still_open()?;
        let mut turn = Turn::take(writer).await;
        let rows = script.fetch_all(turn.conn()).await;
        if rows.is_ok() {
            turn.finished();
        }
        drop(turn);
        self.caches.forget(touches);
        rows
    }

    /// On SQLite, empties the write-ahead log once writes have paused (see [`sqlite_writer`]); `true` when
    /// it did. Called every few seconds.
    pub async fn empty_log_if_idle(&self) -> sqlx::Result<bool> {
        match &self.writer {
            Writer::Sqlite(writer) if self.file_still_open().is_ok() => {
                writer.empty_log_if_idle(SQLITE_LOCK_WAIT).await
            }
            _ => Ok(false),
        }
    }

    /// Whether the SQLite file this process opened is still the one at its path (always, on Postgres).
    fn file_still_open(&self) -> sqlx::Result<()> {
        self.file.as_ref().map_or(Ok(()), |f| f.check())
    }

    /// Whether the database answers a trivial query, for reads and (within [`WRITER_PING_WAIT`], in its
    /// turn) for writes.
    pub async fn ping(&self) -> sqlx::Result<()> {
        on_db!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        let write_side =
            async { on_writer!(self, Touches::Nothing, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ())) };
        tokio::time::timeout(WRITER_PING_WAIT, write_side)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }
}

impl Tx {
    pub async fn commit(self) -> sqlx::Result<()> {
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        for touches in self.touches {
            self.caches.forget(touches);
        }
        Ok(())
    }

    /// Adds to what the transaction changes.
    pub fn touch(&mut self, touches: Touches) {
        self.touches.push(touches);
    }

    /// Moves a principal's revocation epoch: every access token issued to it before is refused once this
    /// transaction commits.
    pub async fn revoke_access_tokens(&mut self, principal_id: i64) -> sqlx::Result<()> {
        const SQL: &str = "UPDATE principals SET auth_epoch = auth_epoch + 1 WHERE id = $1";
        on_tx!(self, c => sqlx::query(SQL).bind(principal_id).execute(c).await.map(|_| ()))?;
        self.touch(Touches::PrincipalEpochs);
        Ok(())
    }
}

/// Opens the pool for `url` (`sqlite://…` or `postgres://…`) and applies the migrations. On Postgres every
/// statement is cut off after `statement_timeout`. A SQLite file belongs to one process: a second
/// `berth serve` on it is refused (several nodes share Postgres instead), which lets this process keep
/// rows in memory (see `Caches`), since every change to them goes through it.
pub async fn connect(
    url: &str,
    max_connections: u32,
    statement_timeout: Duration,
    sync_commits: bool,
) -> anyhow::Result<Db> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let timeout_ms = statement_timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", timeout_ms.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Db {
            writer: Writer::Postgres(pool.clone()),
            pool: Pool::Postgres(pool),
            caches: Caches::new(false),
            _owner: None,
            file: None,
        })
    } else if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if sync_commits {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .foreign_keys(true)
            .busy_timeout(SQLITE_LOCK_WAIT);
        let owner = own_sqlite_file(options.get_filename())?;
        let opened_path = options.get_filename().to_path_buf();
        let mut writer = SqliteConnection::connect_with(&options.clone().pragma("cache_size", WRITER_CACHE)).await?;
        sqlx::migrate!("migrations/sqlite").run(&mut writer).await?;
        release_what_an_earlier_process_held(&mut writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(max_connections.clamp(1, SQLITE_MAX_READERS))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Db {
            pool: Pool::Sqlite(readers),
            writer: Writer::Sqlite(sqlite_writer::Writer::new(writer)),
            caches: Caches::new(true),
            _owner: owner.map(Arc::new),
            file: OpenedFile::open(&opened_path)?.map(Arc::new),
        })
    } else {
        anyhow::bail!("unsupported database URL (use sqlite://<file> or postgres://…)");
    }
}

/// Drops the collector's lease and lets claims on stores to empty lapse: on SQLite, whose file one
/// process owns, whatever held them was an earlier process of this database, now gone.
async fn release_what_an_earlier_process_held(writer: &mut SqliteConnection) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM leases").execute(&mut *writer).await?;
    sqlx::query("UPDATE store_removals SET claimed_until = 0")
        .execute(&mut *writer)
        .await?;
    Ok(())
}

/// SQLite's writes share one connection (`sqlite_writer`); [`WRITER_CACHE`] bounds its page cache
/// (`cache_size`, in KiB when negative). Reads use a few read-only connections (each is a thread).
const SQLITE_MAX_READERS: u32 = 4;
const WRITER_CACHE: &str = "-16384";
/// How long a SQLite statement waits for a lock before it fails with `SQLITE_BUSY` (SQLite's own busy
/// handler). With one writer connection and read-only WAL readers nothing waits for a lock in practice:
/// a handler counting its calls saw none over 2,000 manifest PUTs, 200 blob pushes and pulls, 40 images
/// and 21,000 HEAD+GETs at 32 in flight.
const SQLITE_LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long a readiness check waits for its turn on the writer.
const WRITER_PING_WAIT: Duration = Duration::from_secs(2);

/// Takes the exclusive lock on `<file>.lock` beside a SQLite database file (none for an in-memory one).
fn own_sqlite_file(file: &Path) -> anyhow::Result<Option<std::fs::File>> {
    if file.as_os_str().is_empty() || file == Path::new(":memory:") {
        return Ok(None);
    }
    let mut lock_path = file.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", Path::new(&lock_path).display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the database {} is in use by another berth process (one process per SQLite file; several nodes need Postgres)",
            file.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", Path::new(&lock_path).display()))
        }
    }
}

/// Of `digests`, the first that `present_sql` does not find: it selects `digest` from rows with
/// `repository_id = $1 AND digest IN (…)`, the list spelled out here as `$2, $3, …` (one query per
/// [`DIGESTS_PER_QUERY`], far below both backends' limits on parameters).
async fn first_absent(
    db: &Db,
    present_sql: &str,
    repository_id: i64,
    digests: &[String],
) -> sqlx::Result<Option<String>> {
    for batch in digests.chunks(DIGESTS_PER_QUERY) {
        let placeholders: Vec<String> = (2..batch.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!("{present_sql} IN ({})", placeholders.join(", "));
        let present: Vec<String> = on_db!(db, p => {
            let mut query = sqlx::query_scalar(&sql).bind(repository_id);
            for digest in batch {
                query = query.bind(digest);
            }
            query.fetch_all(p).await
        })?;
        if let Some(missing) = batch.iter().find(|d| !present.contains(d)) {
            return Ok(Some(missing.clone()));
        }
    }
    Ok(None)
}

/// Digests (or references) bound in one statement.
const DIGESTS_PER_QUERY: usize = 500;

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

/// Whether `e` is a write refused because a row it points at is gone.
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// Whether `e` is a write refused because it left a required column empty.
pub fn is_not_null_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::NotNullViolation)
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
    use super::*;

    /// A write sent to the read pool by mistake fails (in every test) instead of quietly taking the
    /// writer's place; reads see what the writer committed.
    #[tokio::test]
    async fn on_sqlite_only_the_writer_writes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let db = connect(&url, 4, Duration::from_secs(5), true).await.unwrap();
        let Pool::Sqlite(readers) = &db.pool else {
            panic!("a SQLite URL gives SQLite pools")
        };
        let insert = "INSERT INTO operator_tokens (token_hash, created_at) VALUES ('h', 0)";
        let refused = sqlx::query(insert).execute(readers).await.unwrap_err();
        assert!(refused.to_string().contains("readonly"), "{refused}");
        operators::insert(&db, "h").await.unwrap();
        assert!(operators::exists(&db, "h").await.unwrap());
    }

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
