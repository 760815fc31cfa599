//! Registries' stored retention policies: untagged manifests older than some days (the cloud registry's
//! "retention policy for untagged manifests") and keep rules for tags (a filter, an age, the newest to
//! keep). They are applied as purges (same reachability, locks, immutability, history and restore) by
//! the background runner, on the collector's schedule and under its lease, at most `maxDeletions` a run.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::errors::OciError;
use crate::metadata::registries::RegistryRow;
use crate::metadata::{self, Db};
use crate::ops::history::Actor;
use crate::ops::purge::{self, Filter, Spec};
use crate::tenant::Tenant;

/// Rules one policy may have.
const MAX_RULES: usize = 20;

/// A registry's retention policy; the empty one deletes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Untagged manifests pushed and last pulled longer ago than this many days go; `None`: they stay.
    #[serde(default)]
    pub untagged_days: Option<u32>,
    /// Tags to delete once old, each rule keeping its newest.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Deletions after which a run stops.
    #[serde(default)]
    pub max_deletions: Option<usize>,
}

/// Tags a filter matches go once pushed and last pulled longer ago than `days`, but the newest `keep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// REPOSITORY_REGEX:TAG_REGEX.
    pub filter: String,
    pub days: u32,
    #[serde(default)]
    pub keep: usize,
}

impl Policy {
    fn is_empty(&self) -> bool {
        self.untagged_days.is_none() && self.rules.is_empty()
    }
}

/// The policy of `reg`.
pub fn of(reg: &RegistryRow) -> Result<Policy, OciError> {
    serde_json::from_str(&reg.retention_policy)
        .map_err(|e| OciError::Internal(anyhow::anyhow!("stored retention policy of {}: {e}", reg.name)))
}

/// Replaces the policy of `reg` after checking it.
pub async fn set(db: &Db, reg: &RegistryRow, policy: &Policy) -> Result<(), OciError> {
    if policy.rules.len() > MAX_RULES {
        return Err(OciError::Invalid(format!("a policy has at most {MAX_RULES} rules")));
    }
    purge::check_counts(0, policy.max_deletions)?;
    for rule in &policy.rules {
        rule.filter.parse::<Filter>().map_err(OciError::Invalid)?;
        purge::check_counts(rule.keep, None)?;
    }
    let json = serde_json::to_string(policy).map_err(|e| OciError::Internal(e.into()))?;
    metadata::registries::set_retention_policy(db, reg.id, &json).await?;
    tracing::info!(registry = %reg.name, policy = %json, "retention policy changed");
    Ok(())
}

/// Applies the policy of `reg` once: each rule, then the untagged manifests; `None` when it has none.
pub async fn apply(db: &Db, reg: &Tenant, dry_run: bool) -> Result<Option<purge::Report>, OciError> {
    let policy = of(&reg.row)?;
    if policy.is_empty() {
        return Ok(None);
    }
    let actor = Actor {
        who: "retention",
        client: None,
    };
    let mut budget = policy.max_deletions.unwrap_or(purge::DEFAULT_MAX_DELETIONS);
    let mut total = purge::Report {
        dry_run,
        ..purge::Report::default()
    };
    // Each rule's tags, then the untagged manifests (those the rules left behind included).
    let mut runs: Vec<(Filter, u32, usize, bool)> = Vec::new();
    for rule in &policy.rules {
        let filter = rule.filter.parse::<Filter>().map_err(OciError::Invalid)?;
        runs.push((filter, rule.days, rule.keep, false));
    }
    if let Some(days) = policy.untagged_days {
        runs.push((Filter::untagged_everywhere(), days, 0, true));
    }
    for (filter, days, keep, untagged) in runs {
        let spec = Spec {
            filters: vec![filter],
            older_than_secs: Some(u64::from(days) * 86_400),
            keep,
            untagged,
            dry_run,
            max_deletions: budget,
            removed_before: deleted_tags(&total),
        };
        let report = purge::run(db, reg, &spec, actor).await?;
        budget = budget.saturating_sub(report.deleted_tags + report.deleted_manifests);
        total.deleted_tags += report.deleted_tags;
        total.deleted_manifests += report.deleted_manifests;
        total.stopped |= report.stopped;
        total.candidates.extend(report.candidates);
        if report.stopped {
            break;
        }
    }
    Ok(Some(total))
}

/// The tags `report` deleted (or, dry, would delete), as (repository, tag).
fn deleted_tags(report: &purge::Report) -> HashSet<(String, String)> {
    let deleted = report.candidates.iter().filter(|c| c.action == "delete");
    deleted
        .filter_map(|c| Some((c.repository.clone(), c.tag.clone()?)))
        .collect()
}
