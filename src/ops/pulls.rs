//! Pull counts and last-pulled times of manifests and tags. A pull (a manifest GET) is counted in memory;
//! [`PullCounter::flush`] writes what was counted in one batch, every `retention.pulls_flush_secs` and at
//! shutdown, so a pull never waits on a write and a hot tag costs one row update per flush.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::errors::OciError;
use crate::metadata::pulls::Tally;
use crate::metadata::{self, Db};

/// What was pulled: a manifest (repository id, digest) or a tag (repository id, name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pulled {
    Manifest(i64, String),
    Tag(i64, String),
}

/// Pulls counted since the last flush.
#[derive(Default)]
pub struct PullCounter {
    pending: Mutex<HashMap<Pulled, (i64, i64)>>,
}

impl PullCounter {
    /// Counts a pull of manifest `digest` of repository `repository_id`, through `tag` when pulled by tag.
    pub fn record(&self, repository_id: i64, digest: &str, tag: Option<&str>) {
        let now = metadata::now();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut count = |pulled: Pulled| {
            let (count, last) = pending.entry(pulled).or_insert((0, now));
            *count += 1;
            *last = now;
        };
        count(Pulled::Manifest(repository_id, digest.to_owned()));
        if let Some(tag) = tag {
            count(Pulled::Tag(repository_id, tag.to_owned()));
        }
    }

    /// Writes the pulls counted so far. On failure they are counted again, to be written next time.
    pub async fn flush(&self, db: &Db) -> Result<(), OciError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(());
        }
        let (mut manifests, mut tags) = (Vec::new(), Vec::new());
        for (pulled, &(count, last)) in &taken {
            let (list, repository_id, key) = match pulled {
                Pulled::Manifest(id, digest) => (&mut manifests, *id, digest),
                Pulled::Tag(id, name) => (&mut tags, *id, name),
            };
            list.push(Tally {
                repository_id,
                key: key.clone(),
                count,
                last,
            });
        }
        if let Err(e) = metadata::pulls::add(db, &manifests, &tags).await {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (pulled, (count, last)) in taken {
                let entry = pending.entry(pulled).or_insert((0, last));
                entry.0 += count;
                entry.1 = entry.1.max(last);
            }
            return Err(e.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_by_tag_count_for_the_tag_and_its_manifest() {
        let counter = PullCounter::default();
        counter.record(1, "sha256:a", Some("v1"));
        counter.record(1, "sha256:a", None);
        counter.record(2, "sha256:a", Some("v1"));
        let pending = counter.pending.lock().unwrap();
        assert_eq!(pending[&Pulled::Manifest(1, "sha256:a".into())].0, 2);
        assert_eq!(pending[&Pulled::Tag(1, "v1".into())].0, 1);
        assert_eq!(pending[&Pulled::Tag(2, "v1".into())].0, 1);
        assert_eq!(pending.len(), 4);
    }
}
