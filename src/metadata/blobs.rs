//! Committed blobs of a registry (size, where the bytes are) and their links to repositories.

use super::batch::Batch;
use super::{Db, Touches, Tx, now, on_db, on_tx, on_writer};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BlobRow {
    pub size: i64,
    pub object_key: String,
    /// The parts below `object_key` as `name:size,...`; `None` when `object_key` is one object.
    pub parts: Option<String>,
}

/// A blob as one repository links it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkedBlob {
    #[sqlx(flatten)]
    pub blob: BlobRow,
    /// When the link was last touched (pushed, mounted, referenced, read).
    pub touched_at: i64,
    /// Whether the repository's read lock lets it be read.
    pub readable: bool,
}

/// The blob `digest` if repository `repository_id` may serve it.
pub async fn linked(db: &Db, repository_id: i64, digest: &str) -> sqlx::Result<Option<LinkedBlob>> {
    const SQL: &str = "SELECT b.size, b.object_key, b.parts, l.touched_at, r.read_enabled AS readable \
                       FROM repository_blobs l JOIN blobs b ON b.registry_id = l.registry_id AND b.digest = l.digest \
                       JOIN repositories r ON r.id = l.repository_id WHERE l.repository_id = $1 AND l.digest = $2";
    on_db!(db, p => sqlx::query_as(SQL).bind(repository_id).bind(digest).fetch_optional(p).await)
}

/// Marks the link of blob `digest` in repository `repository_id` touched now (a read); `false` if the
/// link is gone.
pub async fn touch_link(db: &Db, repository_id: i64, digest: &str) -> sqlx::Result<bool> {
    const SQL: &str = "UPDATE repository_blobs SET touched_at = $3 WHERE repository_id = $1 AND digest = $2";
    let done = on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(repository_id).bind(digest).bind(now()).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// A verified upload to record: its session, and the blob it became.
pub struct Upload<'a> {
    pub id: &'a str,
    pub registry_id: i64,
    pub repository_id: i64,
    pub digest: &'a str,
    pub size: i64,
    pub object_key: &'a str,
    /// The parts below `object_key` as `name:size,...`, if several.
    pub parts: Option<&'a str>,
}

/// What recording an upload found.
pub struct Recorded {
    /// The session still stood at the upload's size and is now ended (otherwise nothing was recorded).
    pub ended: bool,
    /// The blob is new to the registry (otherwise the caller's copy is redundant).
    pub inserted: bool,
}

/// The statement recording a blob, with its parameters named (registry id, digest, size, object key,
/// parts, time), only if condition `only_if` holds when given.
fn insert_sql(values: [&str; 6], only_if: Option<&str>) -> String {
    let [registry, digest, size, key, parts, time] = values;
    format!(
        "INSERT INTO blobs (registry_id, digest, size, object_key, parts, created_at, touched_at) {} \
         ON CONFLICT (registry_id, digest) DO NOTHING",
        source(&[registry, digest, size, key, parts, time, time], only_if)
    )
}

/// The statement marking blob `digest` of registry `registry` touched at `time` (it was pushed again),
/// only if condition `only_if` holds.
fn touch_sql(registry: &str, digest: &str, time: &str, only_if: &str) -> String {
    format!(
        "UPDATE blobs SET touched_at = {time} WHERE registry_id = {registry} AND digest = {digest} \
         AND touched_at < {time} AND {only_if}"
    )
}

/// The statement linking a blob to a repository, or touching the link it has (repository id, registry
/// id, digest, time), only if `only_if` holds.
fn link_sql(values: [&str; 4], only_if: Option<&str>) -> String {
    let [repository, registry, digest, time] = values;
    format!(
        "INSERT INTO repository_blobs (repository_id, registry_id, digest, created_at, touched_at) {} \
         ON CONFLICT (repository_id, digest) DO UPDATE SET touched_at = excluded.touched_at",
        source(&[repository, registry, digest, time, time], only_if)
    )
}

/// The row an `INSERT` takes: `VALUES (…)`, or `SELECT … WHERE only_if`.
fn source(values: &[&str], only_if: Option<&str>) -> String {
    let row = values.join(", ");
    match only_if {
        Some(condition) => format!("SELECT {row} WHERE {condition}"),
        None => format!("VALUES ({row})"),
    }
}

/// In one transaction (one [`Batch`]): ends the upload's session if it still stands at the upload's
/// size and, only then, records the blob unless the registry had it (then touches it) and links it to the
/// repository (or touches the link). The
/// blob and link statements check the session themselves and the session is ended last, so the batch
/// reads the same in any order; each change is marked.
pub async fn record_upload(db: &Db, u: &Upload<'_>) -> sqlx::Result<Recorded> {
    db.caches.sessions.forget(u.id);
    let mut batch = Batch::new(Touches::Nothing);
    let session = batch.arg(u.id);
    let size = batch.arg(u.size);
    let digest = batch.arg(u.digest);
    let time = batch.arg(now());
    let session_stands =
        format!("EXISTS (SELECT 1 FROM upload_sessions WHERE id = {session} AND byte_offset = {size})");
    let registry = batch.arg(u.registry_id);
    let (key, parts, repository) = (batch.arg(u.object_key), batch.arg(u.parts), batch.arg(u.repository_id));
    let blob = [&*registry, &digest, &size, &key, &parts, &time];
    batch.push_marked(insert_sql(blob, Some(&session_stands)), "inserted");
    batch.push(touch_sql(&registry, &digest, &time, &session_stands));
    let link = [&*repository, &registry, &digest, &time];
    batch.push(link_sql(link, Some(&session_stands)));
    batch.push_marked(super::uploads::end_sql(&session, &size), "ended");
    let marks = batch.run(db).await?;
    Ok(Recorded {
        ended: marks.iter().any(|m| m == "ended"),
        inserted: marks.iter().any(|m| m == "inserted"),
    })
}

/// Makes blob `digest` of registry `registry_id` readable through repository `repository_id` (a mount),
/// or touches the link it has.
pub async fn link(tx: &mut Tx, registry_id: i64, repository_id: i64, digest: &str) -> sqlx::Result<()> {
    let sql = link_sql(["$1", "$2", "$3", "$4"], None);
    on_tx!(tx, c => sqlx::query(&sql).bind(repository_id).bind(registry_id).bind(digest).bind(now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes the link of blob `digest` from a repository; `false` if there was none, or the repository is
/// delete-locked (checked in the same statement).
pub async fn unlink(db: &Db, repository_id: i64, digest: &str) -> sqlx::Result<bool> {
    const SQL: &str = "DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2 \
                       AND NOT EXISTS (SELECT 1 FROM repositories WHERE id = $1 AND NOT delete_enabled)";
    let done = on_writer!(db, Touches::Nothing, p => sqlx::query(SQL).bind(repository_id).bind(digest).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Of `digests`, the first that repository `repository_id` cannot serve.
pub async fn first_unlinked(db: &Db, repository_id: i64, digests: &[String]) -> sqlx::Result<Option<String>> {
    const SQL: &str = "SELECT digest FROM repository_blobs WHERE repository_id = $1 AND digest";
    super::first_absent(db, SQL, repository_id, digests).await
}

/// The registry's record of blob `digest`, whichever repositories link it.
pub async fn in_registry(db: &Db, registry_id: i64, digest: &str) -> sqlx::Result<Option<BlobRow>> {
    const SQL: &str = "SELECT size, object_key, parts FROM blobs WHERE registry_id = $1 AND digest = $2";
    on_db!(db, p => sqlx::query_as(SQL).bind(registry_id).bind(digest).fetch_optional(p).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{connect, registries, repositories, uploads};

    /// On a real SQLite file (the HTTP suite runs the same batch on Postgres): each change is reported,
    /// and a moved session is noticed.
    #[tokio::test]
    async fn recording_an_upload_reports_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let db = connect(&url, 4, std::time::Duration::from_secs(5), false)
            .await
            .unwrap();
        let new = registries::NewRegistry {
            name: "reg01",
            sku: "Basic",
            storage_url: None,
            admin_enabled: false,
            tags: "{}",
            admin_password1: b"x",
            admin_password2: b"y",
        };
        let registry_id = registries::create(&db, &new).await.unwrap().unwrap().id;
        let repository_id = repositories::ensure(&db, registry_id, "r").await.unwrap();
        let record = |id: &'static str, size: i64| {
            let db = db.clone();
            async move {
                uploads::create(&db, id, registry_id, repository_id, "me")
                    .await
                    .unwrap();
                let upload = Upload {
                    id,
                    registry_id,
                    repository_id,
                    digest: "sha256:00",
                    size,
                    object_key: "blobs/x",
                    parts: None,
                };
                let recorded = record_upload(&db, &upload).await.unwrap();
                (recorded.ended, recorded.inserted)
            }
        };
        assert_eq!(record("u1", 0).await, (true, true));
        assert_eq!(record("u2", 0).await, (true, false), "the registry had the blob");
        assert_eq!(record("u3", 5).await, (false, false), "the session stands at 0, not 5");
        assert!(linked(&db, repository_id, "sha256:00").await.unwrap().is_some());
        assert!(uploads::find(&db, "u1").await.unwrap().is_none());
        assert!(uploads::find(&db, "u3").await.unwrap().is_some());
    }
}
