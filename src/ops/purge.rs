//! Purging what CI leaves behind, as the cloud registry's `acr purge`: the tags a filter
//! (`REPOSITORY_REGEX:TAG_REGEX`) matches that are older than an age, but the newest N, and optionally
//! the untagged manifests left behind. What stays is always expanded: tags sharing a digest are judged
//! together (by their newest push); a manifest pulled within the age (by a tag or by digest) stays, as do
//! locked and write-once tags, a child of an index that stays and a referrer of a manifest that stays.
//! Every deletion goes through the manifest workflow (locks checked in its transaction, recorded in the
//! tag history, restorable); a run stops after its maximum number of deletions. A dry run lists every
//! candidate with the reason it would be deleted or kept.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use regex::Regex;
use serde::Serialize;

use crate::errors::OciError;
use crate::metadata::locks::{self, Target};
use crate::metadata::manifests::ManifestSummary;
use crate::metadata::tags::TagSummary;
use crate::metadata::{self, Db};
use crate::oci::reference::{Reference, RepoName, Tag};
use crate::ops::history::Actor;
use crate::ops::immutability::Rules;
use crate::ops::{manifests, rfc3339};
use crate::tenant::Tenant;

/// `REPOSITORY_REGEX:TAG_REGEX`, each matching a whole name.
#[derive(Debug, Clone)]
pub struct Filter {
    repositories: Regex,
    /// `None`: no tag (a run for untagged manifests alone).
    tags: Option<Regex>,
}

impl Filter {
    /// Every repository and none of its tags: what a run for untagged manifests alone goes through.
    pub fn untagged_everywhere() -> Filter {
        Filter {
            repositories: Regex::new(".*").expect("a valid regex"),
            tags: None,
        }
    }

    fn matches_tag(&self, tag: &str) -> bool {
        self.tags.as_ref().is_some_and(|t| t.is_match(tag))
    }
}

impl FromStr for Filter {
    type Err = String;

    fn from_str(s: &str) -> Result<Filter, String> {
        let (repositories, tags) = s
            .split_once(':')
            .filter(|(r, t)| !r.is_empty() && !t.is_empty())
            .ok_or_else(|| format!("filter {s:?} is not REPOSITORY_REGEX:TAG_REGEX (e.g. 'ci/.*:build-.*')"))?;
        let whole = |pattern: &str| {
            Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("filter {s:?}: {pattern:?} is not a regex: {e}"))
        };
        Ok(Filter {
            repositories: whole(repositories)?,
            tags: Some(whole(tags)?),
        })
    }
}

/// Deletions one run makes at most unless it says otherwise.
pub const DEFAULT_MAX_DELETIONS: usize = 1000;

/// The most deletions one run may be allowed, and the most digests it may keep: bounds of the API.
pub const MAX_COUNT: usize = 1_000_000;

/// Refuses a maximum of deletions or a number to keep beyond [`MAX_COUNT`].
pub fn check_counts(keep: usize, max_deletions: Option<usize>) -> Result<(), OciError> {
    if keep > MAX_COUNT || max_deletions.is_some_and(|m| m > MAX_COUNT) {
        return Err(OciError::Invalid(format!(
            "keep and maxDeletions are at most {MAX_COUNT}"
        )));
    }
    Ok(())
}

/// What to purge.
pub struct Spec {
    pub filters: Vec<Filter>,
    /// Only what was pushed (and not pulled) longer ago than this many seconds; `None`: any age.
    pub older_than_secs: Option<u64>,
    /// The newest digests of each repository's matching tags that stay whatever their age.
    pub keep: usize,
    /// Also the untagged manifests (left behind or found) older than the age.
    pub untagged: bool,
    pub dry_run: bool,
    /// Deletions after which the run stops.
    pub max_deletions: usize,
    /// Tags (repository, tag) an earlier run of the same dry run would have deleted: their manifests count
    /// as untagged if nothing else tags them.
    pub removed_before: HashSet<(String, String)>,
}

/// A one-off run as the API and the portal ask for it, in their words.
pub struct Asked<'a> {
    /// `REPOSITORY_REGEX:TAG_REGEX`, at least one.
    pub filters: &'a [String],
    /// A duration (`30d`, `12h`, `1d6h`); `None`: any age.
    pub ago: Option<&'a str>,
    pub keep: usize,
    pub untagged: bool,
    pub dry_run: bool,
    /// `None`: [`DEFAULT_MAX_DELETIONS`].
    pub max_deletions: Option<usize>,
}

impl Spec {
    /// The run `asked` describes, or why it cannot be made.
    pub fn from_asked(asked: Asked<'_>) -> Result<Spec, OciError> {
        check_counts(asked.keep, asked.max_deletions)?;
        if asked.filters.is_empty() {
            return Err(OciError::Invalid(
                "give at least one filter, REPOSITORY_REGEX:TAG_REGEX".into(),
            ));
        }
        let filters = asked
            .filters
            .iter()
            .map(|f| f.parse::<Filter>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(OciError::Invalid)?;
        let older_than_secs = match asked.ago {
            None => None,
            Some(ago) => Some(
                humantime::parse_duration(ago)
                    .map_err(|e| OciError::Invalid(format!("ago {ago:?} is not a duration like 30d or 12h: {e}")))?
                    .as_secs(),
            ),
        };
        Ok(Spec {
            filters,
            older_than_secs,
            keep: asked.keep,
            untagged: asked.untagged,
            dry_run: asked.dry_run,
            max_deletions: asked.max_deletions.unwrap_or(DEFAULT_MAX_DELETIONS),
            removed_before: HashSet::new(),
        })
    }
}

/// One tag or untagged manifest judged, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub repository: String,
    /// `None` for an untagged manifest.
    pub tag: Option<String>,
    pub digest: String,
    /// `delete` (or, in a dry run, would be deleted) or `keep`.
    pub action: &'static str,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub deleted_tags: usize,
    pub deleted_manifests: usize,
    /// Whether the run stopped at its maximum number of deletions.
    pub stopped: bool,
    pub candidates: Vec<Candidate>,
}

/// Runs `spec` over every repository of `reg` a filter names.
pub async fn run(db: &Db, reg: &Tenant, spec: &Spec, actor: Actor<'_>) -> Result<Report, OciError> {
    let mut run = Run {
        db,
        reg,
        spec,
        actor,
        rules: Rules::of(&reg.row)?,
        cutoff: spec.older_than_secs.map(|secs| metadata::now() - secs as i64),
        report: Report {
            dry_run: spec.dry_run,
            ..Report::default()
        },
    };
    for (repository_id, name) in metadata::repositories::all(db, reg.row.id).await? {
        let filters: Vec<&Filter> = spec.filters.iter().filter(|f| f.repositories.is_match(&name)).collect();
        if filters.is_empty() {
            continue;
        }
        let repo: RepoName = name
            .parse()
            .map_err(|e| OciError::Internal(anyhow::anyhow!("stored repository name {name:?}: {e}")))?;
        run.repository(repository_id, &repo, &filters).await?;
    }
    let report = run.report;
    tracing::info!(
        registry = %reg.row.name,
        dry_run = report.dry_run,
        deleted_tags = report.deleted_tags,
        deleted_manifests = report.deleted_manifests,
        stopped = report.stopped,
        "purge ran"
    );
    Ok(report)
}

struct Run<'a> {
    db: &'a Db,
    reg: &'a Tenant,
    spec: &'a Spec,
    actor: Actor<'a>,
    rules: Rules,
    /// Unix seconds before which a push or pull is old; `None`: every age is old.
    cutoff: Option<i64>,
    report: Report,
}

impl Run<'_> {
    async fn repository(&mut self, repository_id: i64, repo: &RepoName, filters: &[&Filter]) -> Result<(), OciError> {
        let tags = metadata::tags::summaries(self.db, repository_id, true).await?;
        let manifests = metadata::manifests::summaries(self.db, repository_id).await?;
        let manifests: BTreeMap<&str, &ManifestSummary> = manifests.iter().map(|m| (m.digest.as_str(), m)).collect();
        let repo_deletable = locks::get(self.db, Target::Repository(repository_id))
            .await?
            .is_some_and(|a| a.delete_enabled);
        // The matching tags by digest, newest push first.
        let mut groups: BTreeMap<&str, Vec<&TagSummary>> = BTreeMap::new();
        for tag in tags.iter().filter(|t| filters.iter().any(|f| f.matches_tag(&t.name))) {
            groups.entry(tag.manifest_digest.as_str()).or_default().push(tag);
        }
        let mut groups: Vec<(&str, Vec<&TagSummary>)> = groups.into_iter().collect();
        groups.sort_by_key(|(digest, tags)| (std::cmp::Reverse(tags.iter().map(|t| t.updated_at).max()), *digest));
        let mut removed: HashSet<String> = (self.spec.removed_before.iter())
            .filter(|(r, _)| r == repo.as_str())
            .map(|(_, tag)| tag.clone())
            .collect();
        for (rank, (digest, group)) in groups.iter().enumerate() {
            let manifest = manifests.get(digest).copied();
            let kept = self.keeps_tags(repo, rank, group, manifest, repo_deletable);
            for tag in group {
                let reason = match &kept {
                    Some(reason) => Some(reason.clone()),
                    None => self.delete(repo, Reference::Tag(tag_of(&tag.name)?)).await?,
                };
                if reason.is_none() {
                    removed.insert(tag.name.clone());
                }
                self.judged(repo, Some(&tag.name), digest, reason, "pushed");
            }
        }
        if self.spec.untagged {
            self.untagged(repo, &manifests, &removed, repo_deletable).await?;
        }
        Ok(())
    }

    /// Why the tags of one digest stay, if they do.
    fn keeps_tags(
        &self,
        repo: &RepoName,
        rank: usize,
        group: &[&TagSummary],
        manifest: Option<&ManifestSummary>,
        repo_deletable: bool,
    ) -> Option<String> {
        if rank < self.spec.keep {
            return Some(format!("among the {} newest", self.spec.keep));
        }
        let pushed = group.iter().map(|t| t.updated_at).max().unwrap_or(0);
        let pulled = group
            .iter()
            .filter_map(|t| t.last_pulled_at)
            .chain(manifest.and_then(|m| m.last_pulled_at))
            .max();
        if let Some(reason) = self.recent(pushed, pulled) {
            return Some(reason);
        }
        for tag in group {
            let deletable =
                tag.attributes.delete_enabled && manifest.is_none_or(|m| m.attributes.delete_enabled) && repo_deletable;
            let shared = if group.len() > 1 {
                format!(" (shares its digest with tag {})", tag.name)
            } else {
                String::new()
            };
            if !deletable {
                return Some(format!("locked: deleteEnabled is false{shared}"));
            }
            if let Ok(parsed) = tag.name.parse::<Tag>()
                && let Some(rule) = self.rules.covering(repo, &parsed)
            {
                return Some(format!("write-once under tag immutability rule {}{shared}", rule.id));
            }
        }
        None
    }

    /// Why something pushed at `pushed` and last pulled at `pulled` is too recent to go, if it is.
    fn recent(&self, pushed: i64, pulled: Option<i64>) -> Option<String> {
        let cutoff = self.cutoff?;
        if pushed >= cutoff {
            return Some(format!("pushed {}, within the age", rfc3339(pushed)));
        }
        match pulled {
            Some(pulled) if pulled >= cutoff => Some(format!("pulled {}, within the age", rfc3339(pulled))),
            _ => None,
        }
    }

    /// Deletes `reference` (unless a dry run or the run's maximum is reached); why it stays if it does.
    async fn delete(&mut self, repo: &RepoName, reference: Reference) -> Result<Option<String>, OciError> {
        let deleted = self.report.deleted_tags + self.report.deleted_manifests;
        if deleted >= self.spec.max_deletions {
            self.report.stopped = true;
            return Ok(Some(format!(
                "the run's maximum of {} deletions was reached",
                self.spec.max_deletions
            )));
        }
        let is_tag = matches!(reference, Reference::Tag(_));
        if !self.spec.dry_run {
            match manifests::delete(self.db, self.reg, repo, &reference, self.actor).await {
                Ok(()) => {}
                // Locked, or an index that stays names it, since it was judged.
                Err(OciError::Locked(why) | OciError::Conflict(why)) => return Ok(Some(why)),
                Err(OciError::ManifestUnknown(_)) => return Ok(Some("gone meanwhile".into())),
                Err(e) => return Err(e),
            }
        }
        match is_tag {
            true => self.report.deleted_tags += 1,
            false => self.report.deleted_manifests += 1,
        }
        Ok(None)
    }

    fn judged(&mut self, repo: &RepoName, tag: Option<&str>, digest: &str, kept: Option<String>, what: &str) {
        let (action, reason) = match kept {
            Some(reason) => ("keep", reason),
            None => ("delete", self.old(what)),
        };
        self.report.candidates.push(Candidate {
            repository: repo.to_string(),
            tag: tag.map(str::to_owned),
            digest: digest.to_owned(),
            action,
            reason,
        });
    }

    fn old(&self, what: &str) -> String {
        match self.cutoff {
            Some(cutoff) => format!("{what} and last pulled before {}", rfc3339(cutoff)),
            None => "matches the filter".into(),
        }
    }

    /// The untagged manifests (or those whose every tag this run removes) that are old and held by nothing
    /// that stays; again after each pass, as deleting an index frees its children.
    async fn untagged(
        &mut self,
        repo: &RepoName,
        manifests: &BTreeMap<&str, &ManifestSummary>,
        removed_tags: &HashSet<String>,
        repo_deletable: bool,
    ) -> Result<(), OciError> {
        let untagged: Vec<&ManifestSummary> = manifests
            .values()
            .copied()
            .filter(|m| {
                m.tags
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .all(|t| removed_tags.contains(t))
            })
            .collect();
        let mut gone: HashSet<&str> = HashSet::new();
        let mut judged: HashSet<&str> = HashSet::new();
        loop {
            let mut progress = false;
            for m in &untagged {
                if judged.contains(m.digest.as_str()) {
                    continue;
                }
                // A referrer goes with its subject.
                if m.subject.as_deref().is_some_and(|s| gone.contains(s)) {
                    judged.insert(&m.digest);
                    gone.insert(&m.digest);
                    progress = true;
                    continue;
                }
                let held = match (&m.parent_index, &m.subject) {
                    (Some(index), _) if !gone.contains(index.as_str()) => Some(format!("a child of index {index}")),
                    (_, Some(subject)) => Some(format!("a referrer of {subject}")),
                    _ => None,
                };
                // A child is judged once its index is (it may go with this run).
                if held.is_some()
                    && m.parent_index
                        .as_deref()
                        .is_some_and(|i| !judged.contains(i) && untagged.iter().any(|u| u.digest == i))
                {
                    continue;
                }
                let kept = held
                    .or_else(|| self.recent(m.created_at, m.last_pulled_at))
                    .or_else(|| {
                        (!(m.attributes.delete_enabled && repo_deletable))
                            .then(|| "locked: deleteEnabled is false".into())
                    });
                let kept = match kept {
                    Some(reason) => Some(reason),
                    None => self.delete(repo, Reference::Digest(digest_of(&m.digest)?)).await?,
                };
                if kept.is_none() {
                    gone.insert(&m.digest);
                }
                judged.insert(&m.digest);
                progress = true;
                self.judged(repo, None, &m.digest, kept, "untagged, pushed");
            }
            if !progress {
                return Ok(());
            }
        }
    }
}

fn tag_of(name: &str) -> Result<Tag, OciError> {
    name.parse()
        .map_err(|e| OciError::Internal(anyhow::anyhow!("stored tag {name:?}: {e}")))
}

fn digest_of(text: &str) -> Result<crate::oci::digest::Digest, OciError> {
    text.parse()
        .map_err(|e| OciError::Internal(anyhow::anyhow!("stored digest {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_whole_names() {
        let filter: Filter = "ci/.*:build-[0-9]+".parse().unwrap();
        assert!(filter.repositories.is_match("ci/app"));
        assert!(!filter.repositories.is_match("prod/ci/app"));
        assert!(filter.matches_tag("build-12"));
        assert!(!filter.matches_tag("build-12-final"));
        assert!(!Filter::untagged_everywhere().matches_tag("build-12"));
        for bad in ["nocolon", ":tag", "repo:", "repo:(", "[:x"] {
            assert!(bad.parse::<Filter>().is_err(), "{bad}");
        }
    }
}
