//! Tags: names pointing at manifests of a repository.

use super::{Db, Touches, on_writer};

/// The statement pointing a tag at a manifest (moving it if it pointed elsewhere), with the parameters
/// named for repository id, tag name, manifest digest and time.
pub(super) fn upsert_sql(repository_id: &str, tag: &str, digest: &str, time: &str) -> String {
    format!(
        "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) \
         VALUES ({repository_id}, {tag}, {digest}, {time}) \
         ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, \
         updated_at = excluded.updated_at"
    )
}

/// Tag names in lexical order after `last`, at most `limit` of them.
pub async fn list(db: &Db, repository_id: i64, last: Option<&str>, limit: i64) -> sqlx::Result<Vec<String>> {
    const PAGE: &str = "SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3";
    super::ordered_names(db, PAGE, repository_id, last.unwrap_or(""), limit).await
}

/// Removes a tag (not the manifest) of repository `repository_id` in registry `registry_id`; `false` if
/// there was no such tag.
pub async fn delete(db: &Db, registry_id: i64, repository_id: i64, tag: &str) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM tags WHERE repository_id = $1 AND name = $2";
    let done = on_writer!(db, Touches::Manifests(registry_id), p => sqlx::query(SQL).bind(repository_id).bind(tag).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}
