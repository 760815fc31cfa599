//! `berth retention show|update|add-rule|remove-rule|run` over `/api/registries/<name>/retention`: a
//! registry's stored retention policy (as `az acr config retention` for untagged manifests, with keep
//! rules for tags), applied by the server on the collector's schedule, or now with `run`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::Run;
use super::client::Client;
use super::error::CliError;
use super::output::{Answer, Column, col};

const POLICY: &[Column] = &[
    col("UNTAGGED DAYS", "untaggedDays"),
    col("MAX DELETIONS", "maxDeletions"),
    col("RULES", "rules"),
];

const REPORT: &[Column] = &[
    col("DRY RUN", "dryRun"),
    col("DELETED TAGS", "deletedTags"),
    col("DELETED MANIFESTS", "deletedManifests"),
    col("STOPPED", "stopped"),
];

#[derive(Subcommand)]
pub enum Command {
    /// Show a registry's retention policy.
    Show {
        /// Registry name.
        #[arg(short, long)]
        name: String,
    },
    /// Set how many days untagged manifests are kept (0: forever), and the most deletions one run makes.
    Update {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Untagged manifests pushed and last pulled longer ago go; 0 keeps them.
        #[arg(long, value_name = "DAYS")]
        untagged_days: Option<u32>,
        /// Stop a run after this many deletions (default 1000).
        #[arg(long)]
        max_deletions: Option<usize>,
    },
    /// Add a keep rule: the tags FILTER matches go once pushed and last pulled DAYS ago, but the newest KEEP.
    AddRule {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// REPOSITORY_REGEX:TAG_REGEX, each matching a whole name.
        #[arg(long)]
        filter: String,
        #[arg(long)]
        days: u32,
        #[arg(long, default_value_t = 0)]
        keep: usize,
    },
    /// Remove the keep rules of a filter.
    RemoveRule {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        filter: String,
    },
    /// Apply the policy now (or, with --dry-run, list what it would delete and keep, and why).
    Run {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        dry_run: bool,
    },
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let (value, columns) = match self {
            Command::Show { name } => (client.get(&path(&name), &[]).await?, POLICY),
            Command::Update {
                name,
                untagged_days,
                max_deletions,
            } => {
                let mut policy = client.get(&path(&name), &[]).await?;
                if let Some(days) = untagged_days {
                    policy["untaggedDays"] = if days == 0 { Value::Null } else { json!(days) };
                }
                if let Some(max) = max_deletions {
                    policy["maxDeletions"] = json!(max);
                }
                (client.put(&path(&name), &policy).await?, POLICY)
            }
            Command::AddRule {
                name,
                filter,
                days,
                keep,
            } => {
                let mut policy = client.get(&path(&name), &[]).await?;
                let rule = json!({ "filter": filter, "days": days, "keep": keep });
                match policy["rules"].as_array_mut() {
                    Some(rules) => rules.push(rule),
                    None => policy["rules"] = json!([rule]),
                }
                (client.put(&path(&name), &policy).await?, POLICY)
            }
            Command::RemoveRule { name, filter } => {
                let mut policy = client.get(&path(&name), &[]).await?;
                let before = policy["rules"].as_array().map_or(0, Vec::len);
                if let Some(rules) = policy["rules"].as_array_mut() {
                    rules.retain(|r| r["filter"] != filter.as_str());
                }
                if policy["rules"].as_array().map_or(0, Vec::len) == before {
                    return Err(CliError::Usage(format!(
                        "registry {name} has no rule with filter {filter:?}"
                    )));
                }
                (client.put(&path(&name), &policy).await?, POLICY)
            }
            Command::Run { name, dry_run } => {
                let query: &[(&str, &str)] = if dry_run { &[("dryRun", "true")] } else { &[] };
                let run = ["registries", name.as_str(), "retention", "run"];
                (client.act(&run, query).await?, REPORT)
            }
        };
        Ok(Answer { value, columns })
    }
}

fn path(name: &str) -> [&str; 3] {
    ["registries", name, "retention"]
}
