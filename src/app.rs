//! The shared state every request sees.

use std::ops::Deref;
use std::sync::Arc;

use crate::auth::Auth;
use crate::config::Config;
use crate::errors::OciError;
use crate::limits::Limits;
use crate::metadata::{Db, registries::RegistryRow};
use crate::ops::pulls::PullCounter;
use crate::ops::quota::StorageMeter;
use crate::storage::registry_stores::RegistryStores;
use crate::telemetry::Metrics;
use crate::tenant::{RegistryLimits, Tenant};

pub struct App {
    pub config: Config,
    pub db: Db,
    pub stores: RegistryStores,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Whether pushes fit in their registries' storage quotas.
    pub quotas: StorageMeter,
    /// Pulls counted since they were last written.
    pub pulls: PullCounter,
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

impl App {
    /// What is left to do once the server stopped serving: writing the pulls counted since the last write.
    pub async fn finish(&self) {
        if let Err(e) = self.pulls.flush(&self.db).await {
            tracing::warn!(error = %e, "writing pull counts at shutdown failed");
        }
    }

    /// `row` as a tenant: with its blob store, limits and login server.
    pub fn tenant(&self, row: RegistryRow) -> Result<Tenant, OciError> {
        let blobs = self
            .stores
            .get(&row.name, row.storage_url.as_deref())
            .map_err(OciError::Internal)?;
        Ok(Tenant {
            limits: self.limits_of(&row),
            login_server: self.login_server(&row),
            blobs,
            row,
        })
    }

    /// The garbage collector, with this server's grace period.
    pub fn collector(&self) -> crate::ops::gc::Collector<'_> {
        crate::ops::gc::Collector {
            db: &self.db,
            stores: &self.stores,
            metrics: &self.metrics,
            grace_secs: self.config.gc.grace_secs as i64,
        }
    }

    /// The limits in force for a registry: its overrides, else its SKU's defaults.
    pub fn limits_of(&self, reg: &RegistryRow) -> RegistryLimits {
        let sku = self.config.limits.for_sku(&reg.sku);
        let pick = |over: Option<i64>, default: u32| over.and_then(|n| u32::try_from(n).ok()).unwrap_or(default);
        let sku_storage = (sku.storage_gib > 0).then(|| sku.storage_gib.saturating_mul(1 << 30));
        RegistryLimits {
            pulls: pick(reg.pull_limit, sku.pulls),
            pushes: pick(reg.push_limit, sku.pushes),
            storage_bytes: reg
                .storage_quota_bytes
                .and_then(|n| u64::try_from(n).ok())
                .or(sku_storage),
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
}
