//! What tags pointed at and which manifests were deleted: the tag history (every move, delete and
//! restore, written in the change's own transaction) and the deleted manifests kept to be restored.

use super::batch::Batch;
use super::{Db, Tx, on_db, on_tx, on_writer};

/// Who made a change and from which client (its `User-Agent`).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub who: &'a str,
    pub client: Option<&'a str>,
}

/// One change of a tag.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TagChange {
    pub tag: String,
    /// What it pointed at before; `None`: it did not exist.
    pub old_digest: Option<String>,
    /// What it points at after; `None`: it was deleted.
    pub new_digest: Option<String>,
    pub actor: String,
    pub client: Option<String>,
    pub at: i64,
}

/// Where in a batch or transaction a change happens: the registry, the repository's name and id.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub registry_id: i64,
    pub repository: &'a str,
    pub repository_id: i64,
}

const INSERT: &str =
    "INSERT INTO tag_history (registry_id, repository, tag, old_digest, new_digest, actor, client, at)";

/// The statement recording that tag `tag` (a placeholder) is pointed at `digest` (a placeholder): what it
/// pointed at before, unless it already points there. It reads the tag before the batch changes it, so on
/// SQLite it goes before the statement that moves the tag.
pub(super) fn push_move<'a>(
    batch: &mut Batch<'a>,
    place: Place<'a>,
    actor: Actor<'a>,
    tag: &str,
    digest: &str,
    time: &str,
) {
    let (registry, repository, repository_id) = (
        batch.arg(place.registry_id),
        batch.arg(place.repository),
        batch.arg(place.repository_id),
    );
    let (who, client) = (batch.arg(actor.who), batch.arg(actor.client));
    batch.push(format!(
        "{INSERT} SELECT {registry}, {repository}, {tag}, \
         (SELECT manifest_digest FROM tags WHERE repository_id = {repository_id} AND name = {tag}), \
         {digest}, {who}, {client}, {time} WHERE NOT EXISTS (SELECT 1 FROM tags \
         WHERE repository_id = {repository_id} AND name = {tag} AND manifest_digest = {digest})"
    ));
}

/// In `tx`, before they go: records the deletion of the tags of repository `place` that `which` selects
/// (a condition on `t`), and keeps the manifests `doomed` selects (a condition on `m`) to be restored. Both
/// conditions may use `$1` (the repository's id) and `$2` (`key`).
pub(super) async fn record_deletions(
    tx: &mut Tx,
    place: Place<'_>,
    actor: Actor<'_>,
    which: &str,
    doomed: Option<&str>,
    key: &str,
) -> sqlx::Result<()> {
    let now = super::now();
    let tags = format!(
        "{INSERT} SELECT $3, $4, t.name, t.manifest_digest, NULL, $5, $6, $7 FROM tags t \
         WHERE t.repository_id = $1 AND {which}"
    );
    on_tx!(tx, c => sqlx::query(&tags).bind(place.repository_id).bind(key).bind(place.registry_id)
        .bind(place.repository).bind(actor.who).bind(actor.client).bind(now).execute(c).await.map(|_| ()))?;
    let Some(doomed) = doomed else { return Ok(()) };
    let keep = format!(
        "INSERT INTO deleted_manifests (registry_id, repository, digest, media_type, content, subject_digest, deleted_at) \
         SELECT $3, $4, m.digest, m.media_type, m.content, m.subject_digest, $5 FROM manifests m WHERE m.repository_id = $1 \
         AND {doomed} ON CONFLICT (registry_id, repository, digest) DO UPDATE SET deleted_at = excluded.deleted_at, \
         media_type = excluded.media_type, content = excluded.content, subject_digest = excluded.subject_digest"
    );
    on_tx!(tx, c => sqlx::query(&keep).bind(place.repository_id).bind(key).bind(place.registry_id)
        .bind(place.repository).bind(now).execute(c).await.map(|_| ()))
}

/// The changes of repository `repository` of registry `registry_id` (of one tag, when given), newest first.
pub async fn changes(db: &Db, registry_id: i64, repository: &str, tag: Option<&str>) -> sqlx::Result<Vec<TagChange>> {
    const SQL: &str = "SELECT tag, old_digest, new_digest, actor, client, at FROM tag_history \
                       WHERE registry_id = $1 AND repository = $2 AND ($3 IS NULL OR tag = $3) ORDER BY id DESC";
    on_db!(db, p => sqlx::query_as(SQL).bind(registry_id).bind(repository).bind(tag).fetch_all(p).await)
}

/// A change in some repository of a registry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegistryChange {
    pub repository: String,
    #[sqlx(flatten)]
    pub change: TagChange,
}

/// The latest `limit` changes in a registry (in one repository, when given), newest first.
pub async fn recent(
    db: &Db,
    registry_id: i64,
    repository: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<RegistryChange>> {
    const COLUMNS: &str = "SELECT repository, tag, old_digest, new_digest, actor, client, at FROM tag_history";
    match repository {
        Some(repository) => {
            let sql = format!("{COLUMNS} WHERE registry_id = $1 AND repository = $2 ORDER BY id DESC LIMIT $3");
            on_db!(db, p => sqlx::query_as(&sql).bind(registry_id).bind(repository).bind(limit).fetch_all(p).await)
        }
        None => {
            let sql = format!("{COLUMNS} WHERE registry_id = $1 ORDER BY id DESC LIMIT $2");
            on_db!(db, p => sqlx::query_as(&sql).bind(registry_id).bind(limit).fetch_all(p).await)
        }
    }
}

/// A deleted manifest kept to be restored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeletedManifest {
    pub media_type: String,
    pub content: Vec<u8>,
    pub deleted_at: i64,
}

/// Deleted manifest `digest` of repository `repository`, if it is still kept.
pub async fn deleted_manifest(
    db: &Db,
    registry_id: i64,
    repository: &str,
    digest: &str,
) -> sqlx::Result<Option<DeletedManifest>> {
    const SQL: &str = "SELECT media_type, content, deleted_at FROM deleted_manifests \
                       WHERE registry_id = $1 AND repository = $2 AND digest = $3";
    on_db!(db, p => sqlx::query_as(SQL).bind(registry_id).bind(repository).bind(digest).fetch_optional(p).await)
}

/// The tags deleted with manifest `digest` (their deletion recorded at `deleted_at` or after).
pub async fn tags_deleted_with(
    db: &Db,
    registry_id: i64,
    repository: &str,
    digest: &str,
    deleted_at: i64,
) -> sqlx::Result<Vec<String>> {
    const SQL: &str = "SELECT DISTINCT tag FROM tag_history WHERE registry_id = $1 AND repository = $2 \
                       AND old_digest = $3 AND new_digest IS NULL AND at >= $4 ORDER BY tag";
    on_db!(db, p => sqlx::query_scalar(SQL).bind(registry_id).bind(repository).bind(digest).bind(deleted_at).fetch_all(p).await)
}

/// A deleted referrer of a deleted manifest.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeletedReferrer {
    pub digest: String,
    #[sqlx(flatten)]
    pub manifest: DeletedManifest,
}

/// The referrers of manifest `subject` deleted with it (in the same deletion, at `deleted_at`), by digest.
pub async fn referrers_deleted_with(
    db: &Db,
    registry_id: i64,
    repository: &str,
    subject: &str,
    deleted_at: i64,
) -> sqlx::Result<Vec<DeletedReferrer>> {
    const SQL: &str = "SELECT digest, media_type, content, deleted_at FROM deleted_manifests \
                       WHERE registry_id = $1 AND repository = $2 AND subject_digest = $3 AND deleted_at = $4 \
                       ORDER BY digest";
    on_db!(db, p => sqlx::query_as(SQL).bind(registry_id).bind(repository).bind(subject).bind(deleted_at).fetch_all(p).await)
}

/// Forgets deleted manifest `digest` (restored).
pub async fn forget_deleted(db: &Db, registry_id: i64, repository: &str, digest: &str) -> sqlx::Result<()> {
    const SQL: &str = "DELETE FROM deleted_manifests WHERE registry_id = $1 AND repository = $2 AND digest = $3";
    on_writer!(db, super::Touches::Nothing, p => sqlx::query(SQL).bind(registry_id).bind(repository).bind(digest).execute(p).await.map(|_| ()))
}

/// Drops the deleted manifests kept since before `cutoff`; how many.
pub async fn purge_deleted(db: &Db, cutoff: i64) -> sqlx::Result<u64> {
    const SQL: &str = "DELETE FROM deleted_manifests WHERE deleted_at < $1";
    on_writer!(db, super::Touches::Nothing, p => sqlx::query(SQL).bind(cutoff).execute(p).await.map(|r| r.rows_affected()))
}
