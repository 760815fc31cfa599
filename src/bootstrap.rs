//! First-start setup: the installation's secret key, the operator token and the default registry.

use std::io::Write;
use std::path::Path;

use crate::auth::Auth;
use crate::auth::secrets::{SecretBox, random_password, token_hash};
use crate::config::Config;
use crate::metadata::{self, Db};
use crate::ops::registries::{self, RegistrySpec};
use crate::storage::registry_stores::RegistryStores;

/// The key sealing secrets at rest: from config/env, else `<data_dir>/secret.key`, made on first start.
pub fn secret_box(config: &Config) -> anyhow::Result<SecretBox> {
    if !config.auth.secret_key.is_empty() {
        return SecretBox::from_base64(&config.auth.secret_key);
    }
    let path = config.storage.data_dir.join("secret.key");
    if !path.exists() {
        write_private(&path, &SecretBox::generate_key())?;
        tracing::warn!(path = %path.display(), "generated a secret key; set auth.secret_key (BERTH_SECRET_KEY) in production");
    }
    SecretBox::from_base64(&std::fs::read_to_string(&path)?)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())?;
    Ok(())
}

/// The shortest operator token accepted from the configuration.
const OPERATOR_TOKEN_MIN_CHARS: usize = 24;
/// The fewest distinct characters it must use (refuses `aaaa…` and the like).
const OPERATOR_TOKEN_MIN_DISTINCT: usize = 8;

/// Makes the configured operator token the only one (a token configured before, or the one generated on
/// first start, stops working), or, when none is configured and none exists yet, makes one and prints it
/// once on standard error (never into the log). A weak configured token stops the start.
pub async fn operator_token(db: &Db, config: &Config) -> anyhow::Result<()> {
    let configured = &config.auth.operator_token;
    if !configured.is_empty() {
        check_strength(configured)?;
        metadata::operators::replace_all(db, &token_hash(configured)).await?;
        return Ok(());
    }
    if metadata::operators::any(db).await? {
        return Ok(());
    }
    let token = random_password();
    metadata::operators::insert(db, &token_hash(&token)).await?;
    // Not `eprintln!`: it panics when standard error cannot be written.
    let _ = writeln!(
        std::io::stderr(),
        "\nBerth operator token (shown once; keep it safe, use it as BERTH_TOKEN for the CLI):\n\n    {token}\n"
    );
    Ok(())
}

fn check_strength(token: &str) -> anyhow::Result<()> {
    let distinct = token.chars().collect::<std::collections::HashSet<_>>().len();
    anyhow::ensure!(
        token.chars().count() >= OPERATOR_TOKEN_MIN_CHARS && distinct >= OPERATOR_TOKEN_MIN_DISTINCT,
        "auth.operator_token (BERTH_OPERATOR_TOKEN) is too weak: use at least {OPERATOR_TOKEN_MIN_CHARS} characters, \
         at least {OPERATOR_TOKEN_MIN_DISTINCT} of them different (for example `openssl rand -hex 32`)"
    );
    Ok(())
}

/// Creates the configured default registry if it does not exist (its admin user disabled).
pub async fn default_registry(db: &Db, auth: &Auth, stores: &RegistryStores, config: &Config) -> anyhow::Result<()> {
    let name = &config.registry.default_registry;
    if name.is_empty()
        || metadata::registries::find(db, &name.to_ascii_lowercase())
            .await?
            .is_some()
    {
        return Ok(());
    }
    let spec = RegistrySpec {
        name,
        sku: "Basic",
        admin_enabled: false,
        tags: &serde_json::Map::new(),
        storage_url: None,
    };
    registries::create(db, auth, stores, &spec)
        .await
        .map_err(|e| anyhow::anyhow!("creating default registry {name:?}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn weak_operator_tokens_are_refused() {
        for weak in ["a", "short-token", &"a".repeat(64), "abababababababababababab"] {
            assert!(super::check_strength(weak).is_err(), "{weak}");
        }
        assert!(super::check_strength("0f3a9c1e7b5d2846a0c9e1f7b3d5a2c8").is_ok());
    }
}
