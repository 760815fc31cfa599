//! Pull counts and last-pulled times of manifests and tags, added in batches.

use super::batch::Batch;
use super::{Db, Touches};

/// Pulls of one manifest (by digest) or tag (by name) of a repository since the last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub repository_id: i64,
    /// The manifest's digest or the tag's name.
    pub key: String,
    pub count: i64,
    /// The last of them, in unix seconds.
    pub last: i64,
}

/// Rows one statement updates.
const ROWS_PER_STATEMENT: usize = 500;

/// Adds `manifests` and `tags` to the counts of their rows and moves their last-pulled times forward, in
/// one transaction; rows deleted meanwhile are skipped.
pub async fn add(db: &Db, manifests: &[Tally], tags: &[Tally]) -> sqlx::Result<()> {
    let mut batch = Batch::new(Touches::Nothing);
    for (table, key, tallies) in [("manifests", "digest", manifests), ("tags", "name", tags)] {
        for rows in tallies.chunks(ROWS_PER_STATEMENT) {
            let values: Vec<String> = rows
                .iter()
                .map(|t| {
                    format!(
                        "(CAST({} AS BIGINT), CAST({} AS TEXT), CAST({} AS BIGINT), CAST({} AS BIGINT))",
                        batch.arg(t.repository_id),
                        batch.arg(t.key.as_str()),
                        batch.arg(t.count),
                        batch.arg(t.last)
                    )
                })
                .collect();
            // VALUES names its columns column1… on both databases.
            batch.push(format!(
                "UPDATE {table} SET pull_count = pull_count + v.column3, last_pulled_at = CASE \
                 WHEN last_pulled_at IS NULL OR last_pulled_at < v.column4 THEN v.column4 ELSE last_pulled_at END \
                 FROM (VALUES {}) AS v WHERE {table}.repository_id = v.column1 AND {table}.{key} = v.column2",
                values.join(", ")
            ));
        }
    }
    batch.run(db).await.map(|_| ())
}
