//! `berth purge` over `POST /api/registries/<name>/purge` (`acr purge`): deletes the tags a filter matches
//! that are older than an age, keeping the newest, and optionally the untagged manifests left behind; a
//! dry run lists every candidate with the reason it would be deleted or kept.

use clap::Args;
use serde_json::json;

use super::Run;
use super::client::Client;
use super::error::CliError;
use super::globals::{Globals, Login};
use super::output::{Answer, Column, Format, col};

const CANDIDATES: &[Column] = &[
    col("REPOSITORY", "repository"),
    col("TAG", "tag"),
    col("DIGEST", "digest"),
    col("ACTION", "action"),
    col("REASON", "reason"),
];

/// The command with the global options.
#[derive(Args)]
pub struct Purge {
    #[command(flatten)]
    pub args: PurgeArgs,
    #[command(flatten)]
    pub globals: Globals,
    #[command(flatten)]
    pub login: Login,
}

#[derive(Args)]
pub struct PurgeArgs {
    /// Registry name.
    #[arg(short, long)]
    pub name: String,
    /// REPOSITORY_REGEX:TAG_REGEX, each matching a whole name (e.g. 'ci/.*:build-.*'); repeatable.
    #[arg(long = "filter", value_name = "REPOSITORY_REGEX:TAG_REGEX", required = true)]
    pub filters: Vec<String>,
    /// Only what was pushed and last pulled longer ago than this (e.g. 30d, 12h, 1d6h); default: any age.
    #[arg(long, value_name = "DURATION")]
    pub ago: Option<String>,
    /// Keep the newest N digests of each repository's matching tags whatever their age.
    #[arg(long, default_value_t = 0)]
    pub keep: usize,
    /// Also delete the untagged manifests older than --ago (left behind by the purge or found).
    #[arg(long)]
    pub untagged: bool,
    /// Only list what would be deleted and kept, and why.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop after this many deletions.
    #[arg(long, default_value_t = 1000)]
    pub max_deletions: usize,
    /// Whether the answer is printed as a table: then the candidates are its rows.
    #[arg(skip)]
    pub table: bool,
}

impl PurgeArgs {
    pub fn printed_as(self, format: Format) -> Self {
        PurgeArgs {
            table: matches!(format, Format::Table),
            ..self
        }
    }
}

impl Run for PurgeArgs {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let body = json!({
            "filters": self.filters,
            "ago": self.ago,
            "keep": self.keep,
            "untagged": self.untagged,
            "dryRun": self.dry_run,
            "maxDeletions": self.max_deletions,
        });
        let mut report = client.post(&["registries", &self.name, "purge"], &body).await?;
        // A table lists the candidates; JSON gives the whole report, with the counts.
        let value = match self.table {
            true => report["candidates"].take(),
            false => report,
        };
        Ok(Answer {
            value,
            columns: CANDIDATES,
        })
    }
}
