//! `berth-bench`: a load generator that speaks the OCI distribution API to any registry URL, doing the
//! token dance when the registry asks for it (a `401` with a `Bearer` challenge), and prints one JSON
//! line per measured row. `berth-bench table` turns the lines of several runs into the comparison table
//! `bench/compare.sh` prints.

mod client;
mod report;
mod workloads;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth-bench", about = "OCI registry load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one workload against a registry and prints a JSON line per measured row.
    Run(RunArgs),
    /// Reads JSON lines (of `run`, with `server` and `round` added) and prints medians and ratios.
    Table {
        /// The file of result lines.
        #[arg(long)]
        input: PathBuf,
        /// The server the ratio's numerator is (the other is the denominator).
        #[arg(long, default_value = "berth")]
        numerator: String,
        /// The ratio's denominator.
        #[arg(long, default_value = "distribution")]
        denominator: String,
    },
}

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Base URL of the registry, e.g. http://127.0.0.1:5000
    #[arg(long)]
    pub registry: String,
    /// Username for the token endpoint (or Basic auth); none for an open registry.
    #[arg(long)]
    pub user: Option<String>,
    /// Password for the token endpoint (or Basic auth).
    #[arg(long)]
    pub password: Option<String>,
    /// blobs | big | chunked | manifests | head-get | catalog | images | tokens
    #[arg(long)]
    pub workload: String,
    /// Requests (or whole operations) in flight; each workload has its default.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Seconds for the time-boxed rows (head-get, listings, catalog, tokens); each workload has its default.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Smaller counts and sizes and shorter durations.
    #[arg(long)]
    pub quick: bool,
    /// Repository prefix, so several runs against one server do not collide.
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Seed of the generated blob contents (different seeds give different digests).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// head-get: do the whole token dance (unauthenticated request, challenge, token, retry) every N
    /// requests instead of reusing one token.
    #[arg(long)]
    pub dance_every: Option<u64>,
    /// catalog: create the repositories first (once per server).
    #[arg(long)]
    pub setup: bool,
    /// Override the count of blobs / manifests / images / repositories.
    #[arg(long)]
    pub count: Option<usize>,
    /// Override the blob size in MiB (blobs, big, chunked, images' layers).
    #[arg(long)]
    pub size_mib: Option<usize>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(workloads::run(args))
        }
        Command::Table {
            input,
            numerator,
            denominator,
        } => report::table(&input, &numerator, &denominator),
    }
}
