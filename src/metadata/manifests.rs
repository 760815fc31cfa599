//! Manifests (bytes as pushed, media type, subject) and what they reference.

use super::batch::Batch;
use super::cache::Lookup;
use super::history::{self, Actor, Place};
use super::locks::Attributes;
use super::{Db, Touches, now, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ManifestRow {
    pub repository_id: i64,
    pub digest: String,
    pub media_type: String,
    pub content: Vec<u8>,
    /// Where a read lock refuses pulling it this way: 'repository', 'manifest' or 'tag'.
    pub read_lock: Option<String>,
}

/// A manifest whose `subject` is some digest, as the referrers API lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReferrerRow {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

/// A manifest to store.
pub struct NewManifest<'a> {
    pub digest: &'a str,
    pub media_type: &'a str,
    pub artifact_type: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub annotations: Option<&'a str>,
    pub content: &'a [u8],
    /// The blobs it names (config, layers); one named twice is recorded once.
    pub blobs: Vec<String>,
    /// The manifests it names (an index's children).
    pub children: Vec<String>,
}

/// What the manifest cache is keyed by: (registry id, repository name, tag or digest); a tag never holds
/// a `:`, a digest always does.
pub type ManifestKey = (i64, String, String);

/// Manifest `digest` of repository `repo` in registry `registry_id` (one query, or none: the pull path).
pub async fn by_digest(db: &Db, registry_id: i64, repo: &str, digest: &str) -> sqlx::Result<Option<ManifestRow>> {
    const SQL: &str = "SELECT r.id AS repository_id, m.digest, m.media_type, m.content, CASE WHEN NOT r.read_enabled \
                       THEN 'repository' WHEN NOT m.read_enabled THEN 'manifest' END AS read_lock FROM repositories r \
                       JOIN manifests m ON m.repository_id = r.id \
                       WHERE r.registry_id = $1 AND r.name = $2 AND m.digest = $3";
    cached(db, SQL, registry_id, repo, digest).await
}

/// The manifest tag `tag` of repository `repo` in registry `registry_id` points at.
pub async fn by_tag(db: &Db, registry_id: i64, repo: &str, tag: &str) -> sqlx::Result<Option<ManifestRow>> {
    const SQL: &str = "SELECT r.id AS repository_id, m.digest, m.media_type, m.content, CASE WHEN NOT r.read_enabled \
                       THEN 'repository' WHEN NOT m.read_enabled THEN 'manifest' WHEN NOT t.read_enabled THEN 'tag' END AS read_lock \
                       FROM repositories r JOIN tags t ON t.repository_id = r.id \
                       JOIN manifests m ON m.repository_id = r.id AND m.digest = t.manifest_digest \
                       WHERE r.registry_id = $1 AND r.name = $2 AND t.name = $3";
    cached(db, SQL, registry_id, repo, tag).await
}

/// Runs `sql` (binding registry id, repository name, reference) through the manifest cache.
async fn cached(
    db: &Db,
    sql: &str,
    registry_id: i64,
    repo: &str,
    reference: &str,
) -> sqlx::Result<Option<ManifestRow>> {
    let cache = &db.caches.manifests;
    let key = (registry_id, repo.to_owned(), reference.to_owned());
    let generation = match cache.lookup(&key) {
        Lookup::Hit(row) => return Ok(Some(row)),
        Lookup::Miss(generation) => generation,
    };
    let row: Option<ManifestRow> =
        on_db!(db, p => sqlx::query_as(sql).bind(registry_id).bind(repo).bind(reference).fetch_optional(p).await)?;
    if let Some(row) = &row {
        let weight = row.content.len() + row.digest.len() + row.media_type.len() + key.1.len() + key.2.len();
        cache.keep(generation, key, row.clone(), weight);
    }
    Ok(row)
}

/// A tag a manifest push points at it, and who pushes (for the tag history).
pub struct TagPut<'a> {
    pub name: &'a str,
    /// Whether an immutability rule covers the tag: it may not move to another manifest.
    pub write_once: bool,
    pub repository: &'a str,
    pub actor: Actor<'a>,
}

/// Stores a manifest in repository `repository_id` of registry `registry_id` with its references and,
/// given one, points `tag` at it, in one transaction (one [`Batch`]); pushing the same bytes again changes
/// nothing. A manifest's references follow from its bytes, so recording them again is harmless.
pub async fn store(
    db: &Db,
    registry_id: i64,
    repository_id: i64,
    m: &NewManifest<'_>,
    tag: Option<TagPut<'_>>,
) -> sqlx::Result<()> {
    // A manifest not found is never cached: only moving a tag changes what the cache may hold.
    let touches = if tag.is_some() {
        Touches::Manifests(registry_id)
    } else {
        Touches::Nothing
    };
    let mut batch = Batch::new(touches);
    let repository = batch.arg(repository_id);
    let digest = batch.arg(m.digest);
    let time = batch.arg(now());
    let insert = format!(
        "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject_digest, annotations, \
         size, content, created_at) VALUES ({repository}, {digest}, {}, {}, {}, {}, {}, {}, {time}) \
         ON CONFLICT (repository_id, digest) DO NOTHING",
        batch.arg(m.media_type),
        batch.arg(m.artifact_type),
        batch.arg(m.subject),
        batch.arg(m.annotations),
        batch.arg(m.content.len() as i64),
        batch.arg(m.content),
    );
    batch.push(insert);
    // A reference holds on to what it names (foreign keys): a link or a child manifest that went since
    // the references were checked fails the whole batch.
    for blobs in m.blobs.chunks(super::DIGESTS_PER_QUERY) {
        let blobs: Vec<String> = blobs.iter().map(|b| batch.arg(b.as_str())).collect();
        let rows: Vec<String> = blobs.iter().map(|b| format!("({repository}, {digest}, {b})")).collect();
        batch.push(format!(
            "INSERT INTO manifest_blobs (repository_id, manifest_digest, blob_digest) VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        ));
        batch.push(format!(
            "UPDATE repository_blobs SET touched_at = {time} WHERE repository_id = {repository} \
             AND digest IN ({}) AND touched_at < {time}",
            blobs.join(", ")
        ));
    }
    for children in m.children.chunks(super::DIGESTS_PER_QUERY) {
        let rows: Vec<String> = children
            .iter()
            .map(|c| format!("({repository}, {digest}, {})", batch.arg(c.as_str())))
            .collect();
        batch.push(format!(
            "INSERT INTO manifest_children (repository_id, manifest_digest, child_digest) VALUES {} \
             ON CONFLICT DO NOTHING",
            rows.join(", ")
        ));
    }
    if let Some(tag) = tag {
        let name = batch.arg(tag.name);
        let place = Place {
            registry_id,
            repository: tag.repository,
            repository_id,
        };
        // The history reads the tag before it moves (see `history::push_move`).
        history::push_move(&mut batch, place, tag.actor, &name, &digest, &time);
        batch.push(super::tags::upsert_sql(
            &repository,
            &name,
            &digest,
            &time,
            tag.write_once,
        ));
    }
    batch.run(db).await?;
    Ok(())
}

/// Of `digests`, the first that is not a manifest of the repository.
pub async fn first_missing(db: &Db, repository_id: i64, digests: &[String]) -> sqlx::Result<Option<String>> {
    const SQL: &str = "SELECT digest FROM manifests WHERE repository_id = $1 AND digest";
    super::first_absent(db, SQL, repository_id, digests).await
}

/// What deleting a manifest did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The manifest went, with its tags and its referrers (recursively: a signature of its SBOM too).
    Deleted,
    /// The repository has no such manifest.
    Absent,
    /// Nothing went: an index outside what the deletion takes (this digest) names one of them as a child.
    ReferencedBy(String),
}

/// `$2` and the manifests of repository `$1` that refer to it, directly or through one another.
const WITH_REFERRERS: &str = "WITH RECURSIVE doomed(digest) AS (SELECT $2 UNION \
                              SELECT m.digest FROM manifests m JOIN doomed d ON m.subject_digest = d.digest \
                              WHERE m.repository_id = $1) SELECT digest FROM doomed";

/// Deletes manifest `digest` of repository `place` with its tags, references and referrers (all kept in
/// the tag history and the deleted manifests, to be restored), unless an index that stays names one of
/// them as a child (the database's key on `manifest_children` refuses it; the index is then looked up to
/// be named).
pub async fn delete(db: &Db, place: Place<'_>, actor: Actor<'_>, digest: &str) -> sqlx::Result<Deletion> {
    let doomed = format!("m.digest IN ({WITH_REFERRERS})");
    let tagged = format!("t.manifest_digest IN ({WITH_REFERRERS})");
    let sql = format!("DELETE FROM manifests WHERE repository_id = $1 AND digest IN ({WITH_REFERRERS})");
    let deleted = async {
        let mut tx = db.begin(Touches::Manifests(place.registry_id)).await?;
        history::record_deletions(&mut tx, place, actor, &tagged, Some(&doomed), digest).await?;
        let deleted = on_tx!(tx, c => sqlx::query(&sql).bind(place.repository_id).bind(digest).execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(deleted)
    };
    match deleted.await {
        Ok(0) => Ok(Deletion::Absent),
        Ok(_) => Ok(Deletion::Deleted),
        Err(e) if super::is_foreign_key_violation(&e) => {
            let parent = format!(
                "SELECT r.manifest_digest FROM manifest_children r WHERE r.repository_id = $1 \
                 AND r.child_digest IN ({WITH_REFERRERS}) AND r.manifest_digest NOT IN ({WITH_REFERRERS}) \
                 ORDER BY r.manifest_digest LIMIT 1"
            );
            let parent: Option<String> = on_db!(db, p => sqlx::query_scalar(&parent).bind(place.repository_id).bind(digest).fetch_optional(p).await)?;
            parent.map(Deletion::ReferencedBy).ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// Manifests of a repository whose subject is `subject`, optionally of one artifact type, by digest.
pub async fn referrers(
    db: &Db,
    repository_id: i64,
    subject: &str,
    artifact_type: Option<&str>,
) -> sqlx::Result<Vec<ReferrerRow>> {
    const SQL: &str = "SELECT digest, media_type, size, artifact_type, annotations FROM manifests \
                       WHERE repository_id = $1 AND subject_digest = $2 AND ($3 IS NULL OR artifact_type = $3) \
                       ORDER BY digest";
    on_db!(db, p => sqlx::query_as(SQL).bind(repository_id).bind(subject).bind(artifact_type).fetch_all(p).await)
}

/// A manifest of a repository with the tags pointing at it and its locks, for listings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ManifestSummary {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    pub created_at: i64,
    /// Comma-separated tag names, or NULL.
    pub tags: Option<String>,
    pub last_pulled_at: Option<i64>,
    pub pull_count: i64,
    /// An index of the repository that names it.
    pub parent_index: Option<String>,
    /// The manifest it refers to (its subject), when the repository has it.
    pub subject: Option<String>,
    #[sqlx(flatten)]
    pub attributes: Attributes,
}

const SUMMARY: &str = "SELECT m.digest, m.media_type, m.size, m.created_at, \
                       (SELECT STRING_AGG(t.name, ',') FROM tags t WHERE t.repository_id = m.repository_id \
                       AND t.manifest_digest = m.digest) AS tags, m.last_pulled_at, m.pull_count, \
                       (SELECT MIN(c.manifest_digest) FROM manifest_children c \
                       WHERE c.repository_id = m.repository_id AND c.child_digest = m.digest) AS parent_index, \
                       (SELECT s.digest FROM manifests s WHERE s.repository_id = m.repository_id \
                       AND s.digest = m.subject_digest) AS subject, \
                       m.write_enabled, m.delete_enabled, m.read_enabled, m.list_enabled FROM manifests m";

/// Every manifest of a repository, newest first, with its tags.
pub async fn summaries(db: &Db, repository_id: i64) -> sqlx::Result<Vec<ManifestSummary>> {
    let sql = format!("{SUMMARY} WHERE m.repository_id = $1 ORDER BY m.created_at DESC, m.digest");
    on_db!(db, p => sqlx::query_as(&sql).bind(repository_id).fetch_all(p).await)
}

/// The newest `limit` manifests of a repository that no tag and no index names.
pub async fn untagged_summaries(db: &Db, repository_id: i64, limit: i64) -> sqlx::Result<Vec<ManifestSummary>> {
    let sql = format!(
        "{SUMMARY} WHERE m.repository_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest) \
         AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.repository_id = m.repository_id \
         AND c.child_digest = m.digest) ORDER BY m.created_at DESC, m.digest LIMIT $2"
    );
    on_db!(db, p => sqlx::query_as(&sql).bind(repository_id).bind(limit).fetch_all(p).await)
}

/// Manifest `digest` of a repository, with its tags.
pub async fn summary(db: &Db, repository_id: i64, digest: &str) -> sqlx::Result<Option<ManifestSummary>> {
    let sql = format!("{SUMMARY} WHERE m.repository_id = $1 AND m.digest = $2");
    on_db!(db, p => sqlx::query_as(&sql).bind(repository_id).bind(digest).fetch_optional(p).await)
}
