//! Configuration: the embedded `config/berth.toml` gives every default, an optional file overrides
//! some options, and `BERTH_*` environment variables override both.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The operator token of [`Config::for_tests`].
pub const TEST_OPERATOR_TOKEN: &str = "test-operator-token";

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
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
    pub refresh_token_ttl_secs: i64,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AuthConfig")
            .field("secret_key", &redacted(&self.secret_key))
            .field("operator_token", &redacted(&self.operator_token))
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub queue_timeout_ms: u64,
    pub basic: SkuLimits,
    pub standard: SkuLimits,
    pub premium: SkuLimits,
}

/// Default concurrency limits of one SKU.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuLimits {
    pub pulls: u32,
    pub pushes: u32,
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

impl Config {
    /// The embedded defaults, overridden by `file` (if any), then by the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut merged: toml::Table = toml::from_str(EMBEDDED).context("embedded config")?;
        if let Some(file) = file {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let overrides: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
            merge(&mut merged, overrides);
        }
        let mut config: Config = merged.try_into().context("invalid configuration")?;
        config.apply_env(|name| std::env::var(name).ok())?;
        anyhow::ensure!(
            config.auth.token_ttl_secs >= 60,
            "auth.token_ttl_secs must be at least 60"
        );
        Ok(config)
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
        if let Some(v) = var("BERTH_LIMITS_QUEUE_TIMEOUT_MS") {
            self.limits.queue_timeout_ms = v
                .parse()
                .with_context(|| format!("BERTH_LIMITS_QUEUE_TIMEOUT_MS={v:?}"))?;
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
        if let Some(v) = var("BERTH_REFRESH_TOKEN_TTL_SECS") {
            self.auth.refresh_token_ttl_secs = v
                .parse()
                .with_context(|| format!("BERTH_REFRESH_TOKEN_TTL_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_UPLOAD_MAX_IDLE_SECS") {
            self.storage.upload_max_idle_secs =
                v.parse().with_context(|| format!("BERTH_UPLOAD_MAX_IDLE_SECS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_DATA_DIR") {
            self.storage.data_dir = v.into();
        }
        if let Some(v) = var("BERTH_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = var("BERTH_DATABASE_MAX_CONNECTIONS") {
            self.database.max_connections = v
                .parse()
                .with_context(|| format!("BERTH_DATABASE_MAX_CONNECTIONS={v:?}"))?;
        }
        if let Some(v) = var("BERTH_DEFAULT_REGISTRY") {
            self.registry.default_registry = v;
        }
        if let Some(v) = var("BERTH_DOMAIN") {
            self.registry.domain = v;
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
}
