//! The `berth` binary: `berth serve` runs the server; every other subcommand is the management CLI
//! ([`berth::cli`]), a client of a server's REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: faster under many threads (tokio's workers and the blocking pool
/// that does file I/O), and, with the settings of [`release_freed_memory_at_once`] and the `no_thp`
/// build, a lower peak RSS than glibc's per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, the same in its v2 and v3): how many milliseconds it
/// waits before giving freed memory back to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS at once instead of 10 ms later: blob traffic frees large buffers at a
/// high rate, and the delay let them pile up (`bench/compare.sh` measured a peak RSS of 130 MiB with it,
/// about 90 without).
fn release_freed_memory_at_once() {
    // SAFETY: sets one of mimalloc's options, a plain integer it reads when it next purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

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
    release_freed_memory_at_once();
    berth::restrict_new_files();
    let mut config = berth::config::Config::load(config.as_deref())?;
    config.log.format = log_format.unwrap_or(config.log.format);
    let settings = berth::connections::Settings::from_config(&config.http);
    berth::init_tracing(&config.log.level, config.log.format);
    let tls = berth::tls::from_config(&config.http)?;
    let listener = tokio::net::TcpListener::bind(config.http.bind).await?;
    let (router, app) = berth::build_app(config).await?;
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "berth listening");
    match tls {
        Some(tls) => berth::serve_tls(listener, tls, router, berth::shutdown_signal(), settings).await?,
        None => berth::serve(listener, router, berth::shutdown_signal(), settings).await?,
    }
    app.finish().await;
    Ok(ExitCode::SUCCESS)
}
