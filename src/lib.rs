//! Berth: a self-hosted, multi-tenant container registry speaking the OCI distribution API v1.1.
//!
//! Layers, each depending only on those below it (`layer_rule` checks the imports), from the ground up:
//! `oci` (pure grammar), `config`, `telemetry`, `cli` (a client of the API, sharing nothing) ← `errors` (the
//! spec's error type), `pace` ← `limits`, `storage`, `connections` ← `metadata` (SQL), `tls` ← `auth`,
//! `tenant` (the registry a request is for) ← `ops` (multi-step workflows) ← `app` (the shared state) ←
//! `http` (axum) ← `bootstrap` ← this crate root and `main`.

pub mod app;
pub mod auth;
mod bootstrap;
pub mod cli;
pub mod config;
pub mod connections;
pub mod errors;
pub mod http;
#[cfg(test)]
mod layer_rule;
pub mod limits;
pub mod metadata;
pub mod oci;
pub mod ops;
pub mod pace;
pub mod storage;
pub mod telemetry;
pub mod tenant;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::app::{App, AppState};
use crate::config::{Config, LogFormat};
use crate::storage::registry_stores::RegistryStores;

/// Connects the database (migrating it), loads keys, prepares storage, the operator token and the default
/// registry, and builds the router; the app state comes along for what is left to do at shutdown
/// ([`App::finish`]).
pub async fn build_app(config: Config) -> anyhow::Result<(Router, AppState)> {
    std::fs::create_dir_all(&config.storage.data_dir)?;
    let statement_timeout = Duration::from_secs(config.database.statement_timeout_secs);
    let db = metadata::connect(
        &config.database_url(),
        config.database.max_connections,
        statement_timeout,
        config.storage.sync_writes,
    )
    .await?;
    let keys =
        auth::token::Keys::load_or_create(&db, bootstrap::secret_box(&config)?, config.auth.clock_leeway_secs).await?;
    let auth = auth::Auth {
        keys,
        verifier: auth::password::Verifier::new()?,
        throttle: auth::throttle::LoginThrottle::new(
            config.auth.failed_logins_per_source,
            config.auth.failed_logins_per_identity,
        ),
        token_ttl_secs: config.auth.token_ttl_secs,
        refresh_ttl_secs: config.auth.refresh_token_ttl_secs,
    };
    bootstrap::operator_token(&db, &config).await?;
    let stores = RegistryStores::new(config.storage.clone());
    bootstrap::default_registry(&db, &auth, &stores, &config).await?;
    let metrics = Arc::new(telemetry::Metrics::new()?);
    let limits = limits::Limits::new(Duration::from_millis(config.limits.queue_timeout_ms), metrics.clone());
    let quotas = ops::quota::StorageMeter::new(config.limits.storage_warning_percent);
    let state = AppState(Arc::new(App {
        config,
        db,
        stores,
        auth,
        metrics,
        limits,
        quotas,
        pulls: ops::pulls::PullCounter::default(),
    }));
    tokio::spawn(housekeeping(Arc::downgrade(&state.0)));
    tokio::spawn(collect_garbage(Arc::downgrade(&state.0)));
    tokio::spawn(write_pulls(Arc::downgrade(&state.0)));
    tokio::spawn(empty_idle_log(Arc::downgrade(&state.0)));
    Ok((http::router(state.clone()), state))
}

/// Runs `task` now and then every `period`, for as long as the app lives.
async fn every<F, Fut>(app: std::sync::Weak<App>, period: Duration, task: F)
where
    F: Fn(Arc<App>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(app) = app.upgrade() else { return };
        task(app).await;
    }
}

/// Writes the pulls counted in memory every `retention.pulls_flush_secs`.
async fn write_pulls(app: std::sync::Weak<App>) {
    let Some(period) = app.upgrade().map(|a| a.config.retention.pulls_flush_secs) else {
        return;
    };
    every(app, Duration::from_secs(period), |app| async move {
        if let Err(e) = app.pulls.flush(&app.db).await {
            tracing::warn!(error = %e, "writing pull counts failed; they are kept for the next try");
        }
    })
    .await
}

/// Empties SQLite's write-ahead log once writes have paused, looking every [`IDLE_LOG_LOOK`].
async fn empty_idle_log(app: std::sync::Weak<App>) {
    every(app, IDLE_LOG_LOOK, |app| async move {
        if let Err(e) = app.db.empty_log_if_idle().await {
            tracing::warn!(error = %e, "emptying the idle SQLite write-ahead log failed");
        }
    })
    .await
}

/// How often the writer is looked at for [`empty_idle_log`]: a log is emptied one to two looks after
/// the last write.
const IDLE_LOG_LOOK: Duration = Duration::from_secs(1);

/// Cancels idle upload sessions, deletes expired refresh tokens and drops deleted manifests kept past
/// their retention now and then.
async fn housekeeping(app: std::sync::Weak<App>) {
    let Some(max_idle) = app.upgrade().map(|a| a.config.storage.upload_max_idle_secs) else {
        return;
    };
    let period = Duration::from_secs((max_idle / 2).clamp(1, 3600));
    every(app, period, |app| async move {
        match ops::uploads::purge_stale(&app.db, &app.stores, max_idle).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "cancelled idle upload sessions"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "purging idle upload sessions failed"),
        }
        match metadata::refresh_tokens::purge_expired(&app.db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tokens = n, "deleted expired refresh tokens"),
            Err(e) => tracing::warn!(error = %e, "deleting expired refresh tokens failed"),
        }
        match ops::portal_sessions::purge_expired(&app.db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "deleted expired portal sessions"),
            Err(e) => tracing::warn!(error = %e, "deleting expired portal sessions failed"),
        }
        match ops::history::purge_deleted(&app.db, app.config.retention.deleted_days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                manifests = n,
                "dropped deleted manifests kept past retention.deleted_days"
            ),
            Err(e) => tracing::warn!(error = %e, "dropping deleted manifests failed"),
        }
    })
    .await
}

/// Applies the registries' retention policies, then runs the garbage collector, every `gc.interval_secs`
/// (never when 0), for as long as the app lives.
async fn collect_garbage(app: std::sync::Weak<App>) {
    let Some(interval) = app.upgrade().map(|a| a.config.gc.interval_secs) else {
        return;
    };
    if interval == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(interval));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(app) = app.upgrade() else { return };
        if let Err(e) = apply_retention(&app).await {
            tracing::warn!(error = format!("{e:#}"), "applying retention policies failed");
        }
        if let Err(e) = app.collector().scheduled_pass().await {
            tracing::warn!(error = format!("{e:#}"), "a garbage collection pass failed");
        }
    }
}

/// Applies every registry's retention policy once, under the collector's lease: one runner across nodes.
async fn apply_retention(app: &App) -> Result<(), errors::OciError> {
    let collector = app.collector();
    let Some(lease) = collector.try_lease().await? else {
        return Ok(());
    };
    let applied = async {
        for reg in ops::registries::list(&app.db).await? {
            let name = reg.name.clone();
            match ops::retention::apply(&app.db, &app.tenant(reg)?, false).await {
                Ok(None) => {}
                Ok(Some(report)) => tracing::info!(
                    registry = %name,
                    deleted_tags = report.deleted_tags,
                    deleted_manifests = report.deleted_manifests,
                    stopped = report.stopped,
                    "retention policy applied"
                ),
                Err(e) => {
                    tracing::warn!(registry = %name, error = format!("{e:#}"), "applying a retention policy failed")
                }
            }
            collector.renew(&lease).await?;
        }
        Ok(())
    };
    let result = applied.await;
    collector.release(lease).await;
    result
}

/// Serves `router` over plain HTTP on `listener` until `shutdown` resolves; then stops accepting and gives
/// running requests `settings.grace` to finish before dropping them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    settings: connections::Settings,
) -> anyhow::Result<()> {
    connections::serve(listener, connections::Plain, router, shutdown, settings).await
}

/// [`serve`] over HTTPS: TLS with `tls` (see [`tls::from_config`]) on every connection of `listener`.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    settings: connections::Settings,
) -> anyhow::Result<()> {
    connections::serve(listener, tls::Tls::new(tls), router, shutdown, settings).await
}

/// Makes every file and folder this process creates from now on readable by its owner alone (umask
/// 077): the data folder holds the database with password hashes and the tenants' blobs.
pub fn restrict_new_files() {
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail or touch memory.
    #[cfg(unix)]
    unsafe {
        libc::umask(0o077);
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down: no new connections, finishing running requests");
}

/// Installs the log subscriber: `level` is an EnvFilter directive (RUST_LOG wins when set).
pub fn init_tracing(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| telemetry::LogSink)
        .log_internal_errors(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
