//! Tags: names pointing at manifests of a repository.

use super::history::{self, Actor, Place};
use super::locks::Attributes;
use super::{Db, Touches, on_db, on_tx};

/// A tag with the manifest it points at and its locks, for the management API.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TagSummary {
    pub name: String,
    pub manifest_digest: String,
    pub updated_at: i64,
    pub last_pulled_at: Option<i64>,
    pub pull_count: i64,
    #[sqlx(flatten)]
    pub attributes: Attributes,
}

const SUMMARY: &str = "SELECT name, manifest_digest, updated_at, last_pulled_at, pull_count, write_enabled, \
                       delete_enabled, read_enabled, list_enabled FROM tags";

/// Tag `name` of a repository.
pub async fn summary(db: &Db, repository_id: i64, name: &str) -> sqlx::Result<Option<TagSummary>> {
    let sql = format!("{SUMMARY} WHERE repository_id = $1 AND name = $2");
    on_db!(db, p => sqlx::query_as(&sql).bind(repository_id).bind(name).fetch_optional(p).await)
}

/// The tags of a repository in lexical order: the listed ones (see [`list`]), or with `hidden` all.
pub async fn summaries(db: &Db, repository_id: i64, hidden: bool) -> sqlx::Result<Vec<TagSummary>> {
    let condition = if hidden { "TRUE" } else { LISTED };
    let sql = format!("{SUMMARY} WHERE repository_id = $1 AND {condition} ORDER BY name");
    on_db!(db, p => sqlx::query_as(&sql).bind(repository_id).fetch_all(p).await)
}

/// The listed tags of a repository in name order, `limit` of them after the first `offset`.
pub async fn summaries_page(db: &Db, repository_id: i64, offset: i64, limit: i64) -> sqlx::Result<Vec<TagSummary>> {
    let sql = format!("{SUMMARY} WHERE repository_id = $1 AND {LISTED} ORDER BY name LIMIT $2 OFFSET $3");
    on_db!(db, p => sqlx::query_as(&sql).bind(repository_id).bind(limit).bind(offset).fetch_all(p).await)
}

/// How many tags of a repository are listed.
pub async fn count_listed(db: &Db, repository_id: i64) -> sqlx::Result<i64> {
    let sql = format!("SELECT COUNT(*) FROM tags WHERE repository_id = $1 AND {LISTED}");
    on_db!(db, p => sqlx::query_scalar(&sql).bind(repository_id).fetch_one(p).await)
}

/// Whether a tag of repository `$1` is listed: neither the repository's list lock, nor its own, nor that of
/// its manifest is set. The hidden tags are one small set (found through partial indexes; `CROSS JOIN`
/// makes SQLite start from the few hidden manifests, not from every tag), so a listing with this
/// condition still reads the tags' key index alone.
const LISTED: &str = "NOT EXISTS (SELECT 1 FROM repositories WHERE id = $1 AND NOT list_enabled) \
                      AND name NOT IN (SELECT h.name FROM tags h WHERE h.repository_id = $1 AND NOT h.list_enabled \
                      UNION ALL SELECT h.name FROM manifests m CROSS JOIN tags h WHERE m.repository_id = $1 \
                      AND NOT m.list_enabled AND h.repository_id = $1 AND h.manifest_digest = m.digest)";

/// The statement pointing a tag at a manifest (moving it if it pointed elsewhere), with the parameters
/// named for repository id, tag name, manifest digest and time. A `write_once` tag that points elsewhere
/// is not moved: the statement sets its digest to NULL, which the column refuses, failing the transaction
/// (see [`super::is_not_null_violation`]); one pointing at this digest already stays as it is.
pub(super) fn upsert_sql(repository_id: &str, tag: &str, digest: &str, time: &str, write_once: bool) -> String {
    let update = if write_once {
        "manifest_digest = CASE WHEN tags.manifest_digest = excluded.manifest_digest THEN tags.manifest_digest END"
    } else {
        "manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at"
    };
    format!(
        "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) \
         VALUES ({repository_id}, {tag}, {digest}, {time}) \
         ON CONFLICT (repository_id, name) DO UPDATE SET {update}"
    )
}

/// Listed tag names ([`LISTED`]) in lexical order after `last`, at most `limit` of them.
pub async fn list(db: &Db, repository_id: i64, last: Option<&str>, limit: i64) -> sqlx::Result<Vec<String>> {
    super::ordered_names(db, &list_sql(), repository_id, last.unwrap_or(""), limit).await
}

fn list_sql() -> String {
    format!("SELECT name FROM tags WHERE repository_id = $1 AND name > $2 AND {LISTED} ORDER BY name LIMIT $3")
}

/// Removes a tag (not the manifest) of repository `place`, recording it in the tag history; `false` if
/// there was no such tag.
pub async fn delete(db: &Db, place: Place<'_>, actor: Actor<'_>, tag: &str) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM tags WHERE repository_id = $1 AND name = $2";
    let mut tx = db.begin(Touches::Manifests(place.registry_id)).await?;
    history::record_deletions(&mut tx, place, actor, "t.name = $2", None, tag).await?;
    let done = on_tx!(tx, c => sqlx::query(SQL).bind(place.repository_id).bind(tag).execute(c).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(done == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing reads the tags' key index and the few hidden tags, never every tag of the repository:
    /// checked on SQLite's plan for a fresh database, which has no statistics to go by.
    #[tokio::test]
    async fn a_listing_reads_hidden_tags_from_their_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let db = super::super::connect(&url, 1, std::time::Duration::from_secs(5), false)
            .await
            .unwrap();
        let super::super::Pool::Sqlite(readers) = &db.pool else {
            panic!("a SQLite URL gives SQLite pools")
        };
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", list_sql()))
            .bind(1)
            .bind("")
            .bind(100)
            .fetch_all(readers)
            .await
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|(_, _, _, step)| step).collect();
        let plan = plan.join("\n");
        assert!(plan.contains("tags_unlisted"), "{plan}");
        assert!(
            !plan
                .lines()
                .any(|step| step.contains("tags_by_manifest (repository_id=?)")),
            "{plan}"
        );
    }
}
