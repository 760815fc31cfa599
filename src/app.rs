//! The shared state every request sees.

use std::ops::Deref;
use std::sync::Arc;

use crate::auth::Auth;
use crate::config::Config;
use crate::errors::OciError;
use crate::limits::Limits;
use crate::metadata::{self, Db, registries::RegistryRow};
use crate::storage::BlobStore;
use crate::storage::registry_stores::RegistryStores;
use crate::telemetry::Metrics;

pub struct App {
    pub config: Config,
    pub db: Db,
    pub stores: RegistryStores,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
}

/// Cheap to clone; derefs to [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The registry a request is for, and its blob store.
#[derive(Clone)]
pub struct RegistryCtx {
    pub row: RegistryRow,
    pub blobs: BlobStore,
}

impl App {
    /// Picks the registry of a request from its `Host` (port stripped, lowercase): `<name>.<domain>` is
    /// registry `<name>`, and a name under the domain that is no registry (a typo, a deleted registry)
    /// is `NAME_UNKNOWN`; any host outside the domain is the default registry, if one is configured.
    pub async fn registry_for_host(&self, host: Option<&str>) -> Result<RegistryCtx, OciError> {
        let host = host.map(strip_port).unwrap_or_default().to_ascii_lowercase();
        let suffix = format!(".{}", self.config.registry.domain.to_ascii_lowercase());
        let row = match host.strip_suffix(&suffix).filter(|name| !name.is_empty()) {
            Some(name) => metadata::registries::find(&self.db, name).await?.ok_or_else(|| {
                OciError::RegistryUnknown(format!(
                    "no registry named {:?} at this server ({host} names no registry)",
                    crate::oci::digest::truncate(name)
                ))
            })?,
            None => self.default_registry().await?,
        };
        let blobs = self
            .stores
            .get(&row.name, row.storage_url.as_deref())
            .map_err(OciError::Internal)?;
        Ok(RegistryCtx { row, blobs })
    }

    /// The concurrency limits in force for a registry: its overrides, else its SKU's defaults.
    pub fn limits_of(&self, reg: &RegistryRow) -> crate::config::SkuLimits {
        let sku = self.config.limits.for_sku(&reg.sku);
        let pick = |over: Option<i64>, default: u32| over.and_then(|n| u32::try_from(n).ok()).unwrap_or(default);
        crate::config::SkuLimits {
            pulls: pick(reg.pull_limit, sku.pulls),
            pushes: pick(reg.push_limit, sku.pushes),
        }
    }

    /// `<name lowercased>.<domain>`: the registry's login server, and the audience of its tokens.
    pub fn login_server(&self, reg: &RegistryRow) -> String {
        format!(
            "{}.{}",
            reg.name.to_ascii_lowercase(),
            self.config.registry.domain.to_ascii_lowercase()
        )
    }

    async fn default_registry(&self) -> Result<RegistryRow, OciError> {
        let name = &self.config.registry.default_registry;
        let unknown = || OciError::NameUnknown("no registry is served at this host".into());
        if name.is_empty() {
            return Err(unknown());
        }
        metadata::registries::find(&self.db, &name.to_ascii_lowercase())
            .await?
            .ok_or_else(unknown)
    }
}

/// `host:port` or `[v6]:port` → host.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_stripped_from_hosts() {
        for (host, want) in [
            ("a.localhost:5000", "a.localhost"),
            ("a.b", "a.b"),
            ("[::1]:5000", "::1"),
            ("[::1]", "::1"),
        ] {
            assert_eq!(super::strip_port(host), want);
        }
    }
}
