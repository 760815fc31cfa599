//! Configuration: the embedded `config/berth.toml` gives every default, an optional file overrides
//! some options, and `BERTH_*` environment variables override both.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The operator token of [`Config::for_tests`].
pub const TEST_OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// The documented configuration file, compiled in as the defaults.
const EMBEDDED: &str = include_str!("../config/berth.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub database: DatabaseConfig,
    pub registry: RegistryConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub gc: GcConfig,
    pub retention: RetentionConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    pub public_url: String,
    pub shutdown_timeout_secs: u64,
    /// PEM certificate chain to serve HTTPS with; empty: plain HTTP.
    pub tls_cert_file: PathBuf,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: PathBuf,
    /// Time allowed to send a request's headers; also closes a kept-alive connection idle this long.
    pub header_read_timeout_secs: u64,
    /// Most connections open at once (lowered to fit the open-file limit).
    pub max_connections: usize,
    /// Most connections open at once from one source address; 0: no cap.
    pub max_connections_per_ip: usize,
    /// Least rate bodies must move at in either direction, averaged over `body_stall_timeout_secs`.
    pub body_min_bytes_per_sec: u64,
    /// The window of `body_min_bytes_per_sec`; a body that moves nothing for this long fails. 0: off.
    pub body_stall_timeout_secs: u64,
}

impl HttpConfig {
    /// Whether the server terminates TLS itself (a certificate file is configured).
    pub fn serves_tls(&self) -> bool {
        !self.tls_cert_file.as_os_str().is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub upload_max_idle_secs: u64,
    /// `/readyz` reports the data folder unavailable when less than this many MiB are free there.
    pub min_free_mib: u64,
    /// Answer whole-blob GETs with a redirect to a presigned URL where the store can sign one.
    pub redirect: bool,
    /// Sync local blob files and every SQLite commit to disk before a write is acknowledged.
    pub sync_writes: bool,
    /// Where registries created without a storage location keep their blobs: `<this>/<name>`; empty means
    /// `<data_dir>/registries/<name>`.
    pub default_location: String,
    pub s3: S3Config,
    pub azure: AzureConfig,
    pub gcs: GcsConfig,
}

/// Settings of `s3://` locations; empty values are left to the standard `AWS_*` environment.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub allow_http: bool,
}

/// Settings of `azure://` (`az://`) locations; empty values are left to the standard `AZURE_*` environment.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    pub account: String,
    pub access_key: String,
    pub endpoint: String,
    pub allow_http: bool,
}

/// Settings of `gs://` locations; empty values are left to the standard `GOOGLE_*` environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsConfig {
    pub service_account_path: String,
}

/// Shows whether a secret is set, never its value.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("account", &self.account)
            .field("access_key", &redacted(&self.access_key))
            .field("endpoint", &self.endpoint)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub statement_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub default_registry: String,
    pub domain: String,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub secret_key: String,
    pub operator_token: String,
    pub token_ttl_secs: i64,
    /// Clock skew tolerated on an access token's `exp` and `nbf` (nodes' clocks differ).
    pub clock_leeway_secs: u64,
    pub refresh_token_ttl_secs: i64,
    /// How long a web portal sign-in lasts.
    pub portal_session_secs: i64,
    /// Failed logins a minute (also the burst) one source address may make before it gets 429; 0: off.
    pub failed_logins_per_source: u32,
    /// Failed logins a minute one identity may take from sources that have not logged in as it; 0: off.
    pub failed_logins_per_identity: u32,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("secret_key", &redacted(&self.secret_key))
            .field("operator_token", &redacted(&self.operator_token))
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("clock_leeway_secs", &self.clock_leeway_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("portal_session_secs", &self.portal_session_secs)
            .field("failed_logins_per_source", &self.failed_logins_per_source)
            .field("failed_logins_per_identity", &self.failed_logins_per_identity)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub queue_timeout_ms: u64,
    /// Pushes that leave a registry using this percentage of its storage quota or more carry a warning.
    pub storage_warning_percent: u8,
    pub basic: SkuLimits,
    pub standard: SkuLimits,
    pub premium: SkuLimits,
}

/// Default limits of one SKU.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuLimits {
    pub pulls: u32,
    pub pushes: u32,
    /// Storage quota in GiB (blob bytes, each blob once); 0: none.
    pub storage_gib: u64,
}

impl LimitsConfig {
    /// The defaults of SKU `sku` (Basic's for an unknown name).
    pub fn for_sku(&self, sku: &str) -> SkuLimits {
        match sku {
            "Premium" => self.premium,
            "Standard" => self.standard,
            _ => self.basic,
        }
    }
}

/// The garbage collector's grace period and schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    pub grace_secs: u64,
    /// 0: no scheduled collections.
    pub interval_secs: u64,
}

impl GcConfig {
    /// How often a read records that it touched a blob, at most: an eighth of the grace period, so a
    /// blob found present stays at least seven eighths of it.
    pub fn touch_every_secs(&self) -> i64 {
        (self.grace_secs / 8) as i64
    }
}

/// What is recorded to decide what to keep: pulls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds between two writes of the pull counts and last-pulled times counted in memory.
    pub pulls_flush_secs: u64,
    /// Days a deleted manifest is kept to be restored.
    pub deleted_days: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses a boolean environment override (`true`/`false`, `1`/`0`).
fn env_bool(name: &str, value: &str) -> anyhow::Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => anyhow::bail!("{name}={value:?} (true or false)"),
    }
}

/// Parses a numeric environment override.
fn env_number<T: std::str::FromStr>(name: &str, value: &str) -> anyhow::Result<T> {
    value
        .parse()
        .map_err(|_| anyhow::anyhow!("{name}={value:?} is not a non-negative whole number"))
}

impl HttpConfig {
    /// Applies the overrides of the connection layer's timeouts, caps and rates (`BERTH_HEADER_READ_TIMEOUT_SECS`,
    /// `BERTH_MAX_CONNECTIONS`, `BERTH_MAX_CONNECTIONS_PER_IP`, `BERTH_BODY_MIN_BYTES_PER_SEC`,
    /// `BERTH_BODY_STALL_TIMEOUT_SECS`).
    fn apply_env(&mut self, var: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let secs_and_rates: [(&str, &mut u64); 3] = [
            ("BERTH_HEADER_READ_TIMEOUT_SECS", &mut self.header_read_timeout_secs),
            ("BERTH_BODY_MIN_BYTES_PER_SEC", &mut self.body_min_bytes_per_sec),
            ("BERTH_BODY_STALL_TIMEOUT_SECS", &mut self.body_stall_timeout_secs),
        ];
        for (name, target) in secs_and_rates {
            if let Some(v) = var(name) {
                *target = env_number(name, &v)?;
            }
        }
        let caps: [(&str, &mut usize); 2] = [
            ("BERTH_MAX_CONNECTIONS", &mut self.max_connections),
            ("BERTH_MAX_CONNECTIONS_PER_IP", &mut self.max_connections_per_ip),
        ];
        for (name, target) in caps {
            if let Some(v) = var(name) {
                *target = env_number(name, &v)?;
            }
        }
        Ok(())
    }
}

impl StorageConfig {
    /// Applies the `BERTH_STORAGE_REDIRECT`, `BERTH_STORAGE_SYNC_WRITES`, `BERTH_S3_*`, `BERTH_AZURE_*` and `BERTH_GCS_*` overrides.
    fn apply_env(&mut self, var: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let flag = |name: &str, target: &mut bool| -> anyhow::Result<()> {
            if let Some(v) = var(name) {
                *target = env_bool(name, &v)?;
            }
            Ok(())
        };
        flag("BERTH_STORAGE_REDIRECT", &mut self.redirect)?;
        flag("BERTH_STORAGE_SYNC_WRITES", &mut self.sync_writes)?;
        flag("BERTH_S3_ALLOW_HTTP", &mut self.s3.allow_http)?;
        flag("BERTH_AZURE_ALLOW_HTTP", &mut self.azure.allow_http)?;
        let texts: [(&str, &mut String); 9] = [
            ("BERTH_STORAGE_DEFAULT_LOCATION", &mut self.default_location),
            ("BERTH_S3_ENDPOINT", &mut self.s3.endpoint),
            ("BERTH_S3_REGION", &mut self.s3.region),
            ("BERTH_S3_ACCESS_KEY_ID", &mut self.s3.access_key_id),
            ("BERTH_S3_SECRET_ACCESS_KEY", &mut self.s3.secret_access_key),
            ("BERTH_AZURE_ACCOUNT", &mut self.azure.account),
            ("BERTH_AZURE_ACCESS_KEY", &mut self.azure.access_key),
            ("BERTH_AZURE_ENDPOINT", &mut self.azure.endpoint),
            ("BERTH_GCS_SERVICE_ACCOUNT_PATH", &mut self.gcs.service_account_path),
        ];
        for (name, target) in texts {
            if let Some(v) = var(name) {
                *target = v;
            }
        }
        Ok(())
    }
}

impl Config {
    /// The embedded defaults, overridden by `file` (if any), then by the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let text = match file {
            Some(file) => Some(std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?),
            None => None,
        };
        let mut config = Self::from_overrides(text.as_deref())
            .with_context(|| file.map_or_else(String::new, |f| format!("in {}", f.display())))?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// The embedded defaults overridden by the TOML text `overrides` (the environment is not read).
    pub fn from_overrides(overrides: Option<&str>) -> anyhow::Result<Config> {
        let mut merged: toml::Table = toml::from_str(EMBEDDED).context("embedded config")?;
        if let Some(text) = overrides {
            merge(&mut merged, toml::from_str(text).context("parsing the configuration")?);
        }
        let config: Config = merged.try_into().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        // docker keeps a token a minute whatever its lifetime: it must verify that long.
        anyhow::ensure!(
            self.auth.token_ttl_secs >= 1
                && self.auth.clock_leeway_secs <= 3600
                && self
                    .auth
                    .token_ttl_secs
                    .saturating_add(self.auth.clock_leeway_secs as i64)
                    >= 60,
            "auth.token_ttl_secs must be at least 1, auth.clock_leeway_secs at most 3600, and the two \
             together at least 60 (docker uses a token for a minute whatever its lifetime)"
        );
        anyhow::ensure!(
            self.http.header_read_timeout_secs >= 1 && self.http.max_connections >= 1,
            "http.header_read_timeout_secs and http.max_connections must be at least 1"
        );
        anyhow::ensure!(
            (1..=100).contains(&self.limits.storage_warning_percent),
            "limits.storage_warning_percent must be 1 to 100"
        );
        anyhow::ensure!(
            self.retention.pulls_flush_secs >= 1,
            "retention.pulls_flush_secs must be at least 1"
        );
        anyhow::ensure!(
            self.auth.portal_session_secs >= 60,
            "auth.portal_session_secs must be at least 60"
        );
        Ok(())
    }

    /// Applies `BERTH_*` overrides read through `var`.
    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = var("BERTH_HTTP_BIND") {
            self.http.bind = v
                .parse()
                .with_context(|| format!("BERTH_HTTP_BIND={v:?} is not an address:port"))?;
        }
        if let Some(v) = var("BERTH_PUBLIC_URL") {
            self.http.public_url = v;
        }
        if let Some(v) = var("BERTH_SHUTDOWN_TIMEOUT_SECS") {
            self.http.shutdown_timeout_secs = v
                .parse()
                .with_context(|| format!("BERTH_SHUTDOWN_TIMEOUT_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_TLS_CERT_FILE") {
            self.http.tls_cert_file = v.into();
        }
        if let Some(v) = var("BERTH_TLS_KEY_FILE") {
            self.http.tls_key_file = v.into();
        }
        self.http.apply_env(&var)?;
        if let Some(v) = var("BERTH_LIMITS_QUEUE_TIMEOUT_MS") {
            self.limits.queue_timeout_ms = v
                .parse()
                .with_context(|| format!("BERTH_LIMITS_QUEUE_TIMEOUT_MS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_LIMITS_STORAGE_WARNING_PERCENT") {
            self.limits.storage_warning_percent = v
                .parse()
                .with_context(|| format!("BERTH_LIMITS_STORAGE_WARNING_PERCENT={v:?}"))?;
        }
        if let Some(v) = var("BERTH_SECRET_KEY") {
            self.auth.secret_key = v;
        }
        if let Some(v) = var("BERTH_OPERATOR_TOKEN") {
            self.auth.operator_token = v;
        }
        if let Some(v) = var("BERTH_TOKEN_TTL_SECS") {
            self.auth.token_ttl_secs = v.parse().with_context(|| format!("BERTH_TOKEN_TTL_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_CLOCK_LEEWAY_SECS") {
            self.auth.clock_leeway_secs = v.parse().with_context(|| format!("BERTH_CLOCK_LEEWAY_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_REFRESH_TOKEN_TTL_SECS") {
            self.auth.refresh_token_ttl_secs = v
                .parse()
                .with_context(|| format!("BERTH_REFRESH_TOKEN_TTL_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_PORTAL_SESSION_SECS") {
            self.auth.portal_session_secs = v.parse().with_context(|| format!("BERTH_PORTAL_SESSION_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_FAILED_LOGINS_PER_SOURCE") {
            self.auth.failed_logins_per_source = v
                .parse()
                .with_context(|| format!("BERTH_FAILED_LOGINS_PER_SOURCE={v:?}"))?;
        }
        if let Some(v) = var("BERTH_FAILED_LOGINS_PER_IDENTITY") {
            self.auth.failed_logins_per_identity = v
                .parse()
                .with_context(|| format!("BERTH_FAILED_LOGINS_PER_IDENTITY={v:?}"))?;
        }
        if let Some(v) = var("BERTH_UPLOAD_MAX_IDLE_SECS") {
            self.storage.upload_max_idle_secs =
                v.parse().with_context(|| format!("BERTH_UPLOAD_MAX_IDLE_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_STORAGE_MIN_FREE_MIB") {
            self.storage.min_free_mib = v.parse().with_context(|| format!("BERTH_STORAGE_MIN_FREE_MIB={v:?}"))?;
        }
        if let Some(v) = var("BERTH_DATA_DIR") {
            self.storage.data_dir = v.into();
        }
        self.storage.apply_env(&var)?;
        if let Some(v) = var("BERTH_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = var("BERTH_DATABASE_MAX_CONNECTIONS") {
            self.database.max_connections = v
                .parse()
                .with_context(|| format!("BERTH_DATABASE_MAX_CONNECTIONS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_DATABASE_STATEMENT_TIMEOUT_SECS") {
            self.database.statement_timeout_secs = v
                .parse()
                .with_context(|| format!("BERTH_DATABASE_STATEMENT_TIMEOUT_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_DEFAULT_REGISTRY") {
            self.registry.default_registry = v;
        }
        if let Some(v) = var("BERTH_DOMAIN") {
            self.registry.domain = v;
        }
        for (name, target) in [
            ("BERTH_GC_GRACE_SECS", &mut self.gc.grace_secs),
            ("BERTH_GC_INTERVAL_SECS", &mut self.gc.interval_secs),
            ("BERTH_RETENTION_PULLS_FLUSH_SECS", &mut self.retention.pulls_flush_secs),
            ("BERTH_RETENTION_DELETED_DAYS", &mut self.retention.deleted_days),
        ] {
            if let Some(v) = var(name) {
                *target = env_number(name, &v)?;
            }
        }
        if let Some(v) = var("BERTH_LOG_LEVEL") {
            self.log.level = v;
        }
        if let Some(v) = var("BERTH_LOG_FORMAT") {
            self.log.format = toml::Value::String(v.clone())
                .try_into()
                .with_context(|| format!("BERTH_LOG_FORMAT={v:?} (text or json)"))?;
        }
        Ok(())
    }

    /// A configuration for tests: SQLite and blobs under `dir`, an ephemeral port, the operator token
    /// [`TEST_OPERATOR_TOKEN`].
    pub fn for_tests(dir: &Path) -> Config {
        let mut config: Config = toml::from_str(EMBEDDED).expect("embedded config parses");
        config.http.bind = ([127, 0, 0, 1], 0).into();
        config.storage.data_dir = dir.to_path_buf();
        config.log.level = "warn".into();
        config.auth.operator_token = TEST_OPERATOR_TOKEN.into();
        config
    }

    /// The metadata database URL, defaulting to SQLite in the data folder.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.storage.data_dir.join("berth.db").display())
        } else {
            self.database.url.clone()
        }
    }
}

/// Overlays `overrides` on `base`, table by table.
fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => merge(base_table, over_table),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaled_deployment_example_is_a_valid_config() {
        let example = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/scaled-node.toml"));
        let config = Config::load(Some(example)).unwrap();
        assert!(config.database_url().starts_with("postgres://"));
        assert!(config.storage.default_location.starts_with("s3://"));
        assert_eq!(config.registry.default_registry, "");
    }

    #[test]
    fn embedded_defaults_serve_port_5000_with_sqlite_under_data() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.http.bind.port(), 5000);
        assert_eq!(config.database_url(), "sqlite://./data/berth.db");
        assert_eq!(config.registry.default_registry, "default");
        assert_eq!(config.log.format, LogFormat::Text);
    }

    #[test]
    fn a_file_overrides_some_options_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "[http]\nbind = \"127.0.0.1:6000\"\n[log]\nformat = \"json\"\n").unwrap();
        let mut config = Config::load(Some(&file)).unwrap();
        assert_eq!(config.http.bind.port(), 6000);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.storage.data_dir, PathBuf::from("./data"));
        config
            .apply_env(|name| match name {
                "BERTH_HTTP_BIND" => Some("127.0.0.1:7000".into()),
                "BERTH_LOG_FORMAT" => Some("text".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.http.bind.port(), 7000);
        assert_eq!(config.log.format, LogFormat::Text);
        assert!(
            config
                .apply_env(|n| (n == "BERTH_LOG_FORMAT").then(|| "xml".into()))
                .is_err()
        );
        std::fs::write(&file, "[http]\nport = 1\n").unwrap();
        assert!(Config::load(Some(&file)).is_err(), "unknown options are refused");
    }

    #[test]
    fn a_token_must_verify_for_the_minute_docker_keeps_it() {
        let lifetime = |ttl: i64, leeway: u64| {
            Config::from_overrides(Some(&format!(
                "[auth]\ntoken_ttl_secs = {ttl}\nclock_leeway_secs = {leeway}\n"
            )))
        };
        assert!(lifetime(10, 50).is_ok());
        assert!(lifetime(3600, 0).is_ok());
        let short = lifetime(10, 49).unwrap_err().to_string();
        assert!(short.contains("at least 60"), "{short}");
        assert!(lifetime(0, 60).is_err(), "a token must live a second");
        assert!(lifetime(3600, 3601).is_err(), "an hour of skew is the most tolerated");
    }

    #[test]
    fn object_storage_settings_come_from_the_environment_and_secrets_stay_out_of_debug() {
        let mut config = Config::load(None).unwrap();
        assert!(!config.storage.redirect, "redirects are off by default");
        assert!(!config.storage.sync_writes, "syncing every write is off by default");
        config
            .apply_env(|name| match name {
                "BERTH_STORAGE_REDIRECT" => Some("true".into()),
                "BERTH_STORAGE_SYNC_WRITES" => Some("true".into()),
                "BERTH_S3_ENDPOINT" => Some("http://127.0.0.1:9000".into()),
                "BERTH_S3_ALLOW_HTTP" => Some("1".into()),
                "BERTH_S3_SECRET_ACCESS_KEY" => Some("s3-secret-value".into()),
                "BERTH_AZURE_ACCESS_KEY" => Some("azure-secret-value".into()),
                _ => None,
            })
            .unwrap();
        assert!(config.storage.redirect && config.storage.sync_writes && config.storage.s3.allow_http);
        assert_eq!(config.storage.s3.endpoint, "http://127.0.0.1:9000");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3-secret-value") && !shown.contains("azure-secret-value"));
        assert!(
            config
                .apply_env(|n| (n == "BERTH_S3_ALLOW_HTTP").then(|| "maybe".into()))
                .is_err()
        );
    }

    #[test]
    fn tls_is_off_by_default_and_the_environment_names_the_pem_files() {
        let mut config = Config::load(None).unwrap();
        assert!(!config.http.serves_tls());
        config
            .apply_env(|name| match name {
                "BERTH_TLS_CERT_FILE" => Some("/etc/berth/tls.crt".into()),
                "BERTH_TLS_KEY_FILE" => Some("/etc/berth/tls.key".into()),
                _ => None,
            })
            .unwrap();
        assert!(config.http.serves_tls());
        assert_eq!(config.http.tls_cert_file, PathBuf::from("/etc/berth/tls.crt"));
        assert_eq!(config.http.tls_key_file, PathBuf::from("/etc/berth/tls.key"));
    }

    #[test]
    fn connection_timeouts_caps_and_rates_have_defaults_and_environment_overrides() {
        let mut config = Config::load(None).unwrap();
        assert_eq!(config.http.header_read_timeout_secs, 30);
        assert_eq!(config.http.max_connections, 4096);
        assert_eq!(config.http.max_connections_per_ip, 256);
        assert_eq!(config.http.body_min_bytes_per_sec, 4096);
        assert_eq!(config.http.body_stall_timeout_secs, 30);
        config
            .apply_env(|name| match name {
                "BERTH_HEADER_READ_TIMEOUT_SECS" => Some("5".into()),
                "BERTH_MAX_CONNECTIONS" => Some("100".into()),
                "BERTH_MAX_CONNECTIONS_PER_IP" => Some("0".into()),
                "BERTH_BODY_MIN_BYTES_PER_SEC" => Some("1".into()),
                "BERTH_BODY_STALL_TIMEOUT_SECS" => Some("2".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.http.header_read_timeout_secs, 5);
        assert_eq!(config.http.max_connections, 100);
        assert_eq!(config.http.max_connections_per_ip, 0);
        assert_eq!(config.http.body_min_bytes_per_sec, 1);
        assert_eq!(config.http.body_stall_timeout_secs, 2);
        assert!(
            config
                .apply_env(|n| (n == "BERTH_MAX_CONNECTIONS").then(|| "-1".into()))
                .is_err()
        );
    }
}
