//! Registries (tenants): name, SKU, storage location, admin switch.

use super::{Db, now, on_db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegistryRow {
    pub id: i64,
    pub name: String,
    pub sku: String,
    pub storage_url: Option<String>,
    pub admin_enabled: bool,
    pub tags: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, name, sku, storage_url, admin_enabled, tags, created_at";

/// The registry whose lowercased name is `name_key`.
pub async fn find(db: &Db, name_key: &str) -> sqlx::Result<Option<RegistryRow>> {
    let sql = format!("SELECT {COLUMNS} FROM registries WHERE name_key = $1");
    on_db!(db, p => sqlx::query_as(&sql).bind(name_key).fetch_optional(p).await)
}

/// Creates registry `name` unless one of that name exists; returns the row either way.
pub async fn ensure(db: &Db, name: &str, sku: &str) -> sqlx::Result<RegistryRow> {
    const SQL: &str = "INSERT INTO registries (name, name_key, sku, created_at) VALUES ($1, $2, $3, $4) \
                       ON CONFLICT (name_key) DO NOTHING";
    let key = name.to_ascii_lowercase();
    on_db!(db, p => sqlx::query(SQL).bind(name).bind(&key).bind(sku).bind(now()).execute(p).await.map(|r| r.rows_affected()))?;
    find(db, &key).await?.ok_or(sqlx::Error::RowNotFound)
}
