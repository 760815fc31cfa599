//! Token signing keys: the private half sealed with the installation key, the public half in the clear.

use super::{Db, Touches, now, on_db, on_writer};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
}

pub async fn newest(db: &Db) -> sqlx::Result<Option<SigningKeyRow>> {
    const SQL: &str = "SELECT kid, private_key, public_key FROM signing_keys ORDER BY created_at DESC, kid LIMIT 1";
    on_db!(db, p => sqlx::query_as(SQL).fetch_optional(p).await)
}

pub async fn insert(db: &Db, kid: &str, sealed_private: &[u8], public: &[u8]) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)";
    on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(kid).bind(sealed_private).bind(public).bind(now()).execute(p).await.map(|_| ()))
}

pub async fn public_key(db: &Db, kid: &str) -> sqlx::Result<Option<Vec<u8>>> {
    const SQL: &str = "SELECT public_key FROM signing_keys WHERE kid = $1";
    on_db!(db, p => sqlx::query_scalar(SQL).bind(kid).fetch_optional(p).await)
}
