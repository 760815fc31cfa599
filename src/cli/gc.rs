//! `berth gc run|status` over `/api/registries/<name>/gc` and `/api/gc`: collect a registry's garbage now
//! (or see what a collection would take), and what the collections did.

use clap::Subcommand;

use super::Run;
use super::client::Client;
use super::error::CliError;
use super::output::{Answer, Column, col};

const REPORT: &[Column] = &[
    col("REGISTRY", "registry"),
    col("DRY RUN", "dryRun"),
    col("LINKS REMOVED", "linksRemoved"),
    col("BLOBS REMOVED", "blobsRemoved"),
    col("BYTES RECLAIMED", "bytesReclaimed"),
    col("OBJECTS SWEPT", "objectsSwept"),
];

const STATUS: &[Column] = &[
    col("REGISTRY", "registry"),
    col("LAST RUN", "lastRunFinishedAt"),
    col("BLOBS REMOVED", "blobsRemoved"),
    col("BYTES RECLAIMED", "bytesReclaimed"),
    col("OBJECTS SWEPT", "objectsSwept"),
    col("TOTAL BYTES RECLAIMED", "totalBytesReclaimed"),
    col("QUEUED BLOBS", "queuedBlobs"),
    col("QUEUED BYTES", "queuedBytes"),
];

#[derive(Subcommand)]
pub enum Command {
    /// Collect a registry's garbage now: blobs no manifest references and links of blobs never
    /// referenced, untouched for the server's grace period; also sweeps its store for objects the
    /// database does not know.
    Run {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Only report what a collection would take.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what the collections did: the last run of each registry, totals, and what is queued for
    /// deletion.
    Status {
        /// Only this registry (default: every registry; operator only).
        #[arg(short, long)]
        name: Option<String>,
    },
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let (value, columns) = match self {
            Command::Run { name, dry_run } => {
                let query: &[(&str, &str)] = if dry_run { &[("dryRun", "true")] } else { &[] };
                (client.act(&["registries", &name, "gc"], query).await?, REPORT)
            }
            Command::Status { name: Some(name) } => (client.get(&["registries", &name, "gc"], &[]).await?, STATUS),
            Command::Status { name: None } => (client.get(&["gc"], &[]).await?, STATUS),
        };
        Ok(Answer { value, columns })
    }
}
