//! Registries (tenants): name, SKU, storage location, tags, the admin switch and its sealed passwords.

use super::cache::Lookup;
use super::{Db, Touches, now, on_db, on_writer};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegistryRow {
    pub id: i64,
    pub name: String,
    pub sku: String,
    pub storage_url: Option<String>,
    pub admin_enabled: bool,
    /// JSON object of the registry's key/value tags.
    pub tags: String,
    pub created_at: i64,
    pub admin_password1: Option<Vec<u8>>,
    pub admin_password2: Option<Vec<u8>>,
    /// Overrides of the SKU's concurrency limits.
    pub pull_limit: Option<i64>,
    pub push_limit: Option<i64>,
    /// Override of the SKU's storage quota, in bytes.
    pub storage_quota_bytes: Option<i64>,
    /// Moves each time the admin user is disabled or enabled: admin tokens of an earlier epoch are dead.
    pub admin_epoch: i64,
    /// JSON array of the registry's tag immutability rules.
    pub immutability_rules: String,
    /// JSON object of the registry's retention policy.
    pub retention_policy: String,
}

const COLUMNS: &str = "id, name, sku, storage_url, admin_enabled, tags, created_at, admin_password1, admin_password2, pull_limit, push_limit, storage_quota_bytes, admin_epoch, immutability_rules, retention_policy";

/// A registry to create.
pub struct NewRegistry<'a> {
    pub name: &'a str,
    pub sku: &'a str,
    pub storage_url: Option<&'a str>,
    pub admin_enabled: bool,
    pub tags: &'a str,
    pub admin_password1: &'a [u8],
    pub admin_password2: &'a [u8],
}

/// The registry whose lowercased name is `name_key`.
pub async fn find(db: &Db, name_key: &str) -> sqlx::Result<Option<RegistryRow>> {
    let cache = &db.caches.registries;
    let generation = match cache.lookup(name_key) {
        Lookup::Hit(row) => return Ok(Some(row)),
        Lookup::Miss(generation) => generation,
    };
    let sql = format!("SELECT {COLUMNS} FROM registries WHERE name_key = $1");
    let row: Option<RegistryRow> = on_db!(db, p => sqlx::query_as(&sql).bind(name_key).fetch_optional(p).await)?;
    if let Some(row) = &row {
        cache.keep(generation, name_key.to_owned(), row.clone(), 1024);
    }
    Ok(row)
}

pub async fn list(db: &Db) -> sqlx::Result<Vec<RegistryRow>> {
    let sql = format!("SELECT {COLUMNS} FROM registries ORDER BY name_key");
    on_db!(db, p => sqlx::query_as(&sql).fetch_all(p).await)
}

/// Creates a registry; `None` if one of that name (case-insensitively) exists.
pub async fn create(db: &Db, r: &NewRegistry<'_>) -> sqlx::Result<Option<RegistryRow>> {
    const SQL: &str = "INSERT INTO registries (name, name_key, sku, storage_url, admin_enabled, tags, admin_password1, \
                       admin_password2, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name_key) DO NOTHING";
    let key = r.name.to_ascii_lowercase();
    // A registry not found is never cached: creating one forgets nothing.
    let inserted = on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(r.name).bind(&key).bind(r.sku).bind(r.storage_url)
        .bind(r.admin_enabled).bind(r.tags).bind(r.admin_password1).bind(r.admin_password2).bind(now())
        .execute(p).await.map(|r| r.rows_affected()))?;
    if inserted == 0 {
        return Ok(None);
    }
    find(db, &key).await
}

/// The settings of a registry that can change.
pub struct Settings<'a> {
    pub sku: &'a str,
    pub admin_enabled: bool,
    pub tags: &'a str,
    pub pull_limit: Option<i64>,
    pub push_limit: Option<i64>,
    pub storage_quota_bytes: Option<i64>,
}

/// Changes a registry's settings; switching the admin user off or on moves its epoch, so every admin token
/// issued before is refused.
pub async fn update(db: &Db, id: i64, s: &Settings<'_>) -> sqlx::Result<()> {
    const SQL: &str = "UPDATE registries SET sku = $1, admin_enabled = $2, tags = $3, pull_limit = $4, push_limit = $5, \
                       storage_quota_bytes = $6, \
                       admin_epoch = admin_epoch + CASE WHEN admin_enabled = $2 THEN 0 ELSE 1 END WHERE id = $7";
    on_writer!(db, Touches::Registry(id), p => sqlx::query(SQL).bind(s.sku).bind(s.admin_enabled).bind(s.tags).bind(s.pull_limit)
        .bind(s.push_limit).bind(s.storage_quota_bytes).bind(id).execute(p).await.map(|_| ()))
}

/// Replaces the registry's tag immutability rules (a JSON array) if they are still `expected`; `false`
/// when another change came first.
pub async fn replace_immutability_rules(db: &Db, id: i64, expected: &str, rules: &str) -> sqlx::Result<bool> {
    const SQL: &str = "UPDATE registries SET immutability_rules = $1 WHERE id = $2 AND immutability_rules = $3";
    let done = on_writer!(db, Touches::Registry(id), p => sqlx::query(SQL).bind(rules).bind(id).bind(expected).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Replaces the registry's retention policy (a JSON object).
pub async fn set_retention_policy(db: &Db, id: i64, policy: &str) -> sqlx::Result<()> {
    const SQL: &str = "UPDATE registries SET retention_policy = $1 WHERE id = $2";
    on_writer!(db, Touches::Registry(id), p => sqlx::query(SQL).bind(policy).bind(id).execute(p).await.map(|_| ()))
}

/// Replaces admin password 1 or 2 with a sealed new one.
pub async fn set_admin_password(db: &Db, id: i64, slot: u8, sealed: &[u8]) -> sqlx::Result<()> {
    const SQL1: &str = "UPDATE registries SET admin_password1 = $1 WHERE id = $2";
    const SQL2: &str = "UPDATE registries SET admin_password2 = $1 WHERE id = $2";
    let sql = if slot == 2 { SQL2 } else { SQL1 };
    on_writer!(db, Touches::Registry(id), p => sqlx::query(sql).bind(sealed).bind(id).execute(p).await.map(|_| ()))
}
