//! `berth-bench`: a load generator that speaks the OCI distribution API to any registry URL, doing the
//! token dance when the registry asks for it (a `401` with a `Bearer` challenge), and prints one JSON
//! line per measured row. `berth-bench table` turns the lines of several runs into the comparison table
//! `bench/compare.sh` prints.

mod client;
mod report;
mod token_server;
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
    /// Serves `/token` for a registry that delegates auth (Distribution's `auth.token`): ES256 JWTs
    /// granting whatever scope is asked, with the certificate in `x5c`.
    TokenServer {
        /// Address to listen on, e.g. 127.0.0.1:5001
        #[arg(long)]
        bind: String,
        /// PKCS#8 PEM P-256 private key.
        #[arg(long)]
        key: String,
        /// PEM certificate of the key (the registry's `rootcertbundle`).
        #[arg(long)]
        cert: String,
        /// `iss` of the tokens (the registry's `issuer`).
        #[arg(long, default_value = "berth-bench")]
        issuer: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
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
    /// Seconds for the time-boxed row (head-get; every other row is a fixed amount of work).
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
    /// head-get: the registry checks tokens (labels the row as the with-token-auth one; without it the
    /// row is the no-auth one, which Berth, having no anonymous access, runs with one token reused).
    #[arg(long)]
    pub token_auth_row: bool,
    /// catalog: create the repositories first (once per server).
    #[arg(long)]
    pub setup: bool,
    /// Override the count of blobs / manifests / images / repositories / tokens.
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
        Command::TokenServer {
            bind,
            key,
            cert,
            issuer,
            user,
            password,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(token_server::serve(&bind, &key, &cert, &issuer, &user, &password))
        }
    }
}
