//! The `berth` binary: `berth serve` runs the server; every other subcommand is the management CLI
//! ([`berth::cli`]), a client of a server's REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Berth, a self-hosted container registry.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server (embedded defaults: port 5000, SQLite and blobs under ./data).
    Serve {
        /// A TOML file overriding some of the defaults (see config/berth.toml).
        #[arg(long, env = "BERTH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The management commands, talking to a server's REST API.
    #[command(flatten)]
    Manage(berth::cli::Command),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config = match Cli::parse().command {
        Command::Serve { config } => config,
        Command::Manage(command) => return Ok(berth::cli::run(command).await),
    };
    let config = berth::config::Config::load(config.as_deref())?;
    berth::init_tracing(&config.log.level, config.log.format);
    let listener = tokio::net::TcpListener::bind(config.http.bind).await?;
    tracing::info!(address = %listener.local_addr()?, "berth listening");
    let app = berth::build_app(config).await?;
    berth::serve(listener, app, berth::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
