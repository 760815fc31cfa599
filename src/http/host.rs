//! Which registry a data-plane or token request is for, from its `Host`: `<name>.<domain>` is registry
//! `<name>`, a name under the domain that is no registry (a typo, a deleted registry) is `NAME_UNKNOWN`,
//! and any host outside the domain is the default registry, if one is configured.

use axum::http::{HeaderMap, header};

use crate::app::App;
use crate::errors::OciError;
use crate::oci::digest::truncate;
use crate::ops::registries::{self, RegistryRow};
use crate::tenant::Tenant;

/// The tenant a request is for, from its `Host` (port stripped, lowercase).
pub async fn tenant(app: &App, headers: &HeaderMap) -> Result<Tenant, OciError> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let host = host.map(strip_port).unwrap_or_default().to_ascii_lowercase();
    let suffix = format!(".{}", app.config.registry.domain.to_ascii_lowercase());
    let row = match host.strip_suffix(&suffix).filter(|name| !name.is_empty()) {
        Some(name) => registries::find(&app.db, name).await.map_err(|e| match e {
            OciError::NotFound(_) => OciError::RegistryUnknown(format!(
                "no registry named {:?} at this server ({host} names no registry)",
                truncate(name)
            )),
            other => other,
        })?,
        None => default_registry(app).await?,
    };
    app.tenant(row)
}

async fn default_registry(app: &App) -> Result<RegistryRow, OciError> {
    let name = &app.config.registry.default_registry;
    let unknown = || OciError::NameUnknown("no registry is served at this host".into());
    if name.is_empty() {
        return Err(unknown());
    }
    registries::find(&app.db, name).await.map_err(|e| match e {
        OciError::NotFound(_) => unknown(),
        other => other,
    })
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
