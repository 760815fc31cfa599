//! What a garbage collection of one registry takes from the metadata: links of blobs no manifest
//! references and untouched since a cutoff, then blobs no repository links and untouched since it, whose
//! objects go into the durable queue (`gc_queue`) in the same transaction. Also what a collection would
//! take (a dry run), and which of the objects a store holds the metadata knows (for the sweep).
//!
//! The database makes a collection exclusive with the pushes it could race: on SQLite it runs on the one
//! writer; on Postgres the foreign keys (link → blob, manifest reference → link) lock the rows they point
//! at, so a reference committed first makes the collection's commit fail (it is retried at the next run)
//! and a collection committed first makes the reference's insert fail (the push is told the blob is
//! unknown, which it now is).

use super::{Db, Touches, Tx, on_db, on_tx};

/// Rows a collection deletes per statement, so that it never holds the writer long.
const PER_STATEMENT: i64 = 500;

/// What one collection took (or, dry, would take).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Repository links removed.
    pub links: i64,
    /// Blobs removed from the registry.
    pub blobs: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// In one transaction: removes registry `registry_id`'s links untouched since `cutoff` that no manifest
/// references, then its blobs untouched since `cutoff` that no repository links, queueing their objects
/// for deletion.
pub async fn collect(db: &Db, registry_id: i64, cutoff: i64) -> sqlx::Result<Collected> {
    let mut tx = db.begin(Touches::Nothing).await?;
    let mut collected = Collected::default();
    loop {
        let links = delete_stale_links(&mut tx, registry_id, cutoff).await?;
        collected.links += links;
        if links < PER_STATEMENT {
            break;
        }
    }
    loop {
        let gone = delete_stale_blobs(&mut tx, registry_id, cutoff).await?;
        collected.blobs += gone.len() as i64;
        collected.bytes += gone.iter().map(|b| b.size).sum::<i64>();
        queue(&mut tx, registry_id, &gone).await?;
        if (gone.len() as i64) < PER_STATEMENT {
            break;
        }
    }
    tx.commit().await?;
    Ok(collected)
}

/// The staleness and the absence of references are conditions on the deleted row itself, not only in the
/// subquery picking the batch: Postgres re-checks those on a row another transaction changed meanwhile
/// (a read's touch), so a link touched as this statement ran is kept.
async fn delete_stale_links(tx: &mut Tx, registry_id: i64, cutoff: i64) -> sqlx::Result<i64> {
    let sql = format!(
        "DELETE FROM repository_blobs AS l WHERE {STALE_LINK} AND (l.repository_id, l.digest) IN \
         (SELECT l.repository_id, l.digest FROM repository_blobs l WHERE {STALE_LINK} LIMIT $3)"
    );
    let done = on_tx!(tx, c => sqlx::query(&sql).bind(registry_id).bind(cutoff).bind(PER_STATEMENT).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done as i64)
}

/// Whether link `l` of registry `$1` is untouched since `$2` and unreferenced.
const STALE_LINK: &str = "l.registry_id = $1 AND l.touched_at < $2 AND NOT EXISTS (SELECT 1 FROM manifest_blobs f \
                          WHERE f.repository_id = l.repository_id AND f.blob_digest = l.digest)";

/// Whether blob `b` of registry `$1` is untouched since `$2` and linked nowhere.
const STALE_BLOB: &str = "b.registry_id = $1 AND b.touched_at < $2 AND NOT EXISTS \
                          (SELECT 1 FROM repository_blobs l WHERE l.registry_id = b.registry_id AND l.digest = b.digest)";

/// A collected blob's objects, as queued.
#[derive(Debug, sqlx::FromRow)]
struct GoneBlob {
    object_key: String,
    parts: Option<String>,
    size: i64,
}

/// Like [`delete_stale_links`], the conditions are on the deleted row too (a commit of the same digest
/// touches it).
async fn delete_stale_blobs(tx: &mut Tx, registry_id: i64, cutoff: i64) -> sqlx::Result<Vec<GoneBlob>> {
    let sql = format!(
        "DELETE FROM blobs AS b WHERE {STALE_BLOB} AND b.digest IN \
         (SELECT b.digest FROM blobs b WHERE {STALE_BLOB} LIMIT $3) RETURNING object_key, parts, size"
    );
    on_tx!(tx, c => sqlx::query_as(&sql).bind(registry_id).bind(cutoff).bind(PER_STATEMENT).fetch_all(c).await)
}

async fn queue(tx: &mut Tx, registry_id: i64, gone: &[GoneBlob]) -> sqlx::Result<()> {
    if gone.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..gone.len())
        .map(|i| format!("($1, $2, ${}, ${}, ${})", 3 * i + 3, 3 * i + 4, 3 * i + 5))
        .collect();
    let sql = format!(
        "INSERT INTO gc_queue (registry_id, queued_at, object_key, parts, size) VALUES {}",
        rows.join(", ")
    );
    on_tx!(tx, c => {
        let mut query = sqlx::query(&sql).bind(registry_id).bind(super::now());
        for blob in gone {
            query = query.bind(&blob.object_key).bind(&blob.parts).bind(blob.size);
        }
        query.execute(c).await.map(|_| ())
    })
}

/// What [`collect`] would take now, without taking it.
pub async fn collectable(db: &Db, registry_id: i64, cutoff: i64) -> sqlx::Result<Collected> {
    let sql = format!(
        "SELECT \
         (SELECT COUNT(*) FROM repository_blobs l WHERE {STALE_LINK}) AS links, \
         (SELECT COUNT(*) FROM blobs b WHERE {BLOB_COLLECTABLE}) AS blobs, \
         (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b WHERE {BLOB_COLLECTABLE}) AS bytes"
    );
    let (links, blobs, bytes) =
        on_db!(db, p => sqlx::query_as(&sql).bind(registry_id).bind(cutoff).fetch_one(p).await)?;
    Ok(Collected { links, blobs, bytes })
}

/// Whether blob `b` of registry `$1` would go in a collection with cutoff `$2`: it is stale, and every
/// link it has is stale and unreferenced.
const BLOB_COLLECTABLE: &str = "b.registry_id = $1 AND b.touched_at < $2 AND NOT EXISTS \
     (SELECT 1 FROM repository_blobs l WHERE l.registry_id = b.registry_id AND l.digest = b.digest \
      AND (l.touched_at >= $2 OR EXISTS (SELECT 1 FROM manifest_blobs f \
           WHERE f.repository_id = l.repository_id AND f.blob_digest = l.digest)))";

/// Of `names` (object keys, folders of parts, upload ids), those registry `registry_id`'s metadata holds
/// on to: object keys of its blobs and ids of its open upload sessions (a commit's objects are named after
/// its upload until it is recorded, then the blob's key names them). One statement: one snapshot.
pub async fn kept(db: &Db, registry_id: i64, names: &[&str]) -> sqlx::Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 2)).collect();
    let list = list.join(", ");
    let sql = format!(
        "SELECT object_key FROM blobs WHERE registry_id = $1 AND object_key IN ({list}) \
         UNION ALL SELECT id FROM upload_sessions WHERE registry_id = $1 AND id IN ({list})"
    );
    on_db!(db, p => {
        let mut query = sqlx::query_scalar(&sql).bind(registry_id);
        for name in names {
            query = query.bind(*name);
        }
        query.fetch_all(p).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::connect;

    /// The statements run on SQLite as written (the HTTP suite runs them on both databases).
    #[tokio::test]
    async fn an_empty_registry_collects_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let db = connect(&url, 4, std::time::Duration::from_secs(5), false)
            .await
            .unwrap();
        assert_eq!(
            collect(&db, 1, super::super::now()).await.unwrap(),
            Collected::default()
        );
        assert_eq!(collectable(&db, 1, 0).await.unwrap(), Collected::default());
    }
}
