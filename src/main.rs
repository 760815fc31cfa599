use std::path::PathBuf;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve { config } = Cli::parse().command;
    let config = berth::config::Config::load(config.as_deref())?;
    berth::init_tracing(&config.log.level, config.log.format);
    let listener = tokio::net::TcpListener::bind(config.http.bind).await?;
    tracing::info!(address = %listener.local_addr()?, "berth listening");
    let app = berth::build_app(config).await?;
    berth::serve(listener, app, berth::shutdown_signal()).await
}
