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
        /// Log format: text for people, json for log pipelines (overrides log.format).
        #[arg(long, value_enum)]
        log_format: Option<berth::config::LogFormat>,
    },
    /// The management commands, talking to a server's REST API.
    #[command(flatten)]
    Manage(berth::cli::Command),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let (config, log_format) = match Cli::parse().command {
        Command::Serve { config, log_format } => (config, log_format),
        Command::Manage(command) => return Ok(berth::cli::run(command).await),
    };
    berth::restrict_new_files();
    let mut config = berth::config::Config::load(config.as_deref())?;
    config.log.format = log_format.unwrap_or(config.log.format);
    let settings = berth::connections::Settings::from_config(&config.http);
    berth::init_tracing(&config.log.level, config.log.format);
    let tls = berth::tls::from_config(&config.http)?;
    let listener = tokio::net::TcpListener::bind(config.http.bind).await?;
    let app = berth::build_app(config).await?;
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "berth listening");
    match tls {
        Some(tls) => berth::serve_tls(listener, tls, app, berth::shutdown_signal(), settings).await?,
        None => berth::serve(listener, app, berth::shutdown_signal(), settings).await?,
    }
    Ok(ExitCode::SUCCESS)
}
