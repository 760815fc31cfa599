//! Locks ("changeable attributes") of repositories, manifests and tags: reading and setting them, and
//! telling which lock refused a write. The database's triggers (migration `0010_locks`) enforce the write
//! and delete locks inside every write's transaction; reads and listings test the columns themselves.

use super::{Db, Touches, on_db, on_writer};

/// The four attributes of one repository, manifest or tag, as stored (not inherited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    pub write_enabled: bool,
    pub delete_enabled: bool,
    pub read_enabled: bool,
    pub list_enabled: bool,
}

/// A change of some attributes; `None` keeps the attribute as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Changes {
    pub write_enabled: Option<bool>,
    pub delete_enabled: Option<bool>,
    pub read_enabled: Option<bool>,
    pub list_enabled: Option<bool>,
}

/// What carries locks: a repository (by id), a manifest of it (by digest) or a tag of it (by name).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Repository(i64),
    Manifest(i64, &'a str),
    Tag(i64, &'a str),
}

impl Target<'_> {
    /// The table and the condition on `$1`, `$2` naming the row (a repository's `$2` is bound to '').
    fn row(&self) -> (&'static str, &'static str) {
        match self {
            Target::Repository(_) => ("repositories", "id = $1 AND $2 = ''"),
            Target::Manifest(..) => ("manifests", "repository_id = $1 AND digest = $2"),
            Target::Tag(..) => ("tags", "repository_id = $1 AND name = $2"),
        }
    }

    fn binds(&self) -> (i64, &str) {
        match *self {
            Target::Repository(id) => (id, ""),
            Target::Manifest(id, key) | Target::Tag(id, key) => (id, key),
        }
    }
}

const COLUMNS: &str = "write_enabled, delete_enabled, read_enabled, list_enabled";

/// The attributes of `target`; `None` when it does not exist.
pub async fn get(db: &Db, target: Target<'_>) -> sqlx::Result<Option<Attributes>> {
    let (table, row) = target.row();
    let (id, key) = target.binds();
    let sql = format!("SELECT {COLUMNS} FROM {table} WHERE {row}");
    on_db!(db, p => sqlx::query_as(&sql).bind(id).bind(key).fetch_optional(p).await)
}

/// Applies `changes` to `target` in registry `registry_id`; its attributes after, or `None` when it does
/// not exist.
pub async fn set(db: &Db, registry_id: i64, target: Target<'_>, changes: Changes) -> sqlx::Result<Option<Attributes>> {
    let (table, row) = target.row();
    let (id, key) = target.binds();
    let sql = format!(
        "UPDATE {table} SET write_enabled = COALESCE($3, write_enabled), delete_enabled = COALESCE($4, delete_enabled), \
         read_enabled = COALESCE($5, read_enabled), list_enabled = COALESCE($6, list_enabled) \
         WHERE {row} RETURNING {COLUMNS}"
    );
    // Pulls keep manifests in the cache with what their read locks said.
    on_writer!(db, Touches::Manifests(registry_id), p => sqlx::query_as(&sql)
        .bind(id).bind(key)
        .bind(changes.write_enabled).bind(changes.delete_enabled).bind(changes.read_enabled).bind(changes.list_enabled)
        .fetch_optional(p).await)
}

/// Where a lock that refused a write was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Repository,
    Manifest,
    Tag,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Repository => "repository",
            Level::Manifest => "manifest",
            Level::Tag => "tag",
        }
    }
}

/// A write a lock refused: where the lock is and which attribute (`writeEnabled` or `deleteEnabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub level: Level,
    pub attribute: &'static str,
}

/// The lock that made the database refuse a write, if one did (a trigger's `berth lock: <level> <attribute>`).
pub fn refusal(e: &sqlx::Error) -> Option<Refusal> {
    let message = e.as_database_error()?.message();
    let rest = message.split("berth lock: ").nth(1)?;
    let (level, attribute) = rest.split_once(' ')?;
    let level = match level {
        "repository" => Level::Repository,
        "manifest" => Level::Manifest,
        "tag" => Level::Tag,
        _ => return None,
    };
    let attribute = match attribute.trim() {
        "writeEnabled" => "writeEnabled",
        "deleteEnabled" => "deleteEnabled",
        _ => return None,
    };
    Some(Refusal { level, attribute })
}
