//! Registry lifecycle and the admin account: create (with generated admin passwords), update, delete
//! (content and credentials), show and renew passwords.

use crate::auth::Auth;
use crate::auth::secrets::random_password;
use crate::errors::OciError;
use crate::metadata::{self, Db, registries::NewRegistry};
use crate::ops::gc::{REMOVAL_CLAIM_SECS, StoreRemoval};
use crate::storage::registry_stores::RegistryStores;

pub use crate::metadata::registries::RegistryRow;

/// The SKUs a registry can have.
pub const SKUS: [&str; 3] = ["Basic", "Standard", "Premium"];

/// Checks a registry name: letters and digits, 5 to 50 of them.
pub fn validate_name(name: &str) -> Result<(), OciError> {
    let ok = (5..=50).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(OciError::Invalid(format!(
            "registry name {name:?} must be 5 to 50 letters and digits"
        )))
    }
}

/// The SKU spelled canonically, or an error naming the choices.
pub fn canonical_sku(sku: &str) -> Result<&'static str, OciError> {
    SKUS.into_iter()
        .find(|s| s.eq_ignore_ascii_case(sku))
        .ok_or_else(|| OciError::Invalid(format!("unknown SKU {sku:?}: use Basic, Standard or Premium")))
}

/// Checks a registry's tags: key/value labels, so every value must be a string.
pub fn validate_tags(tags: &serde_json::Map<String, serde_json::Value>) -> Result<(), OciError> {
    if tags.len() > MAX_TAGS {
        return Err(OciError::Invalid(format!(
            "{} tags: a registry has at most {MAX_TAGS}",
            tags.len()
        )));
    }
    for (key, value) in tags {
        let Some(value) = value.as_str() else {
            return Err(OciError::Invalid(format!(
                "tag {key:?} has the value {value}: tag values must be strings"
            )));
        };
        if key.chars().count() > MAX_TAG_NAME || value.chars().count() > MAX_TAG_VALUE {
            return Err(OciError::Invalid(format!(
                "tag names have at most {MAX_TAG_NAME} characters and values at most {MAX_TAG_VALUE}"
            )));
        }
    }
    Ok(())
}

/// Bounds of a registry's resource tags (those of the cloud the model comes from).
const MAX_TAGS: usize = 50;
const MAX_TAG_NAME: usize = 512;
const MAX_TAG_VALUE: usize = 256;

/// What to create.
pub struct RegistrySpec<'a> {
    pub name: &'a str,
    pub sku: &'a str,
    pub admin_enabled: bool,
    pub tags: &'a serde_json::Map<String, serde_json::Value>,
    pub storage_url: Option<&'a str>,
}

/// Creates a registry with two fresh admin passwords; `None` if the name is taken.
/// A storage location must open (known scheme, usable settings) before the registry exists.
pub async fn create(
    db: &Db,
    auth: &Auth,
    stores: &RegistryStores,
    spec: &RegistrySpec<'_>,
) -> Result<Option<RegistryRow>, OciError> {
    validate_name(spec.name)?;
    let sku = canonical_sku(spec.sku)?;
    validate_tags(spec.tags)?;
    let location = stores.location_for(spec.name, spec.storage_url);
    let emptying = metadata::store_removals::pending(db).await?;
    if let Some(old) = emptying.iter().find(|old| {
        stores.share_objects(
            (spec.name, location.as_deref()),
            (&old.name, old.storage_url.as_deref()),
        )
    }) {
        return Err(OciError::Conflict(format!(
            "the store of deleted registry {:?} at this location is still being emptied; try again in a minute",
            old.name
        )));
    }
    if let Some(url) = &location {
        stores
            .get(spec.name, Some(url))
            .map_err(|e| OciError::Invalid(format!("storage location {url:?}: {e:#}")))?;
        let others: Vec<String> = metadata::registries::list(db)
            .await?
            .into_iter()
            .filter_map(|r| r.storage_url)
            .collect();
        if let Some(why) = stores.refuse_location(spec.name, url, &others).await {
            return Err(OciError::Conflict(why));
        }
    }
    let tags = serde_json::Value::Object(spec.tags.clone()).to_string();
    let (p1, p2) = (
        auth.secrets().seal(random_password().as_bytes()),
        auth.secrets().seal(random_password().as_bytes()),
    );
    let new = NewRegistry {
        name: spec.name,
        sku,
        storage_url: location.as_deref(),
        admin_enabled: spec.admin_enabled,
        tags: &tags,
        admin_password1: &p1,
        admin_password2: &p2,
    };
    Ok(metadata::registries::create(db, &new).await?)
}

/// The registry named `name` (case-insensitively).
pub async fn find(db: &Db, name: &str) -> Result<RegistryRow, OciError> {
    metadata::registries::find(db, &name.to_ascii_lowercase())
        .await?
        .ok_or_else(|| OciError::NotFound(format!("registry {name:?} not found")))
}

/// Every registry.
pub async fn list(db: &Db) -> Result<Vec<RegistryRow>, OciError> {
    Ok(metadata::registries::list(db).await?)
}

/// What to change of a registry; `None` keeps the current value. A limit or quota of 0 returns to the SKU
/// default.
#[derive(Default)]
pub struct Changes<'a> {
    pub sku: Option<&'a str>,
    pub admin_enabled: Option<bool>,
    pub tags: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub pull_limit: Option<u32>,
    pub push_limit: Option<u32>,
    /// Bytes.
    pub storage_quota: Option<u64>,
}

/// Applies `changes`; disabling the admin user revokes its refresh tokens at once.
pub async fn update(db: &Db, reg: &RegistryRow, changes: &Changes<'_>) -> Result<RegistryRow, OciError> {
    let sku = canonical_sku(changes.sku.unwrap_or(&reg.sku))?;
    let admin_enabled = changes.admin_enabled.unwrap_or(reg.admin_enabled);
    changes.tags.map(validate_tags).transpose()?;
    let tags = changes.tags.map_or_else(
        || reg.tags.clone(),
        |t| serde_json::Value::Object(t.clone()).to_string(),
    );
    let limit = |change: Option<u32>, current: Option<i64>| match change {
        Some(0) => None,
        Some(n) => Some(i64::from(n)),
        None => current,
    };
    let settings = metadata::registries::Settings {
        sku,
        admin_enabled,
        tags: &tags,
        pull_limit: limit(changes.pull_limit, reg.pull_limit),
        push_limit: limit(changes.push_limit, reg.push_limit),
        storage_quota_bytes: match changes.storage_quota {
            Some(0) => None,
            Some(bytes) => {
                Some(i64::try_from(bytes).map_err(|_| OciError::Invalid("the storage quota is too large".into()))?)
            }
            None => reg.storage_quota_bytes,
        },
    };
    metadata::registries::update(db, reg.id, &settings).await?;
    if !admin_enabled {
        metadata::refresh_tokens::revoke_subject(db, reg.id, crate::auth::ADMIN_SUBJECT).await?;
    }
    find(db, &reg.name).await
}

/// Deletes a registry's metadata (repositories, manifests, tags, role assignments, tokens) and records
/// its store as one to empty, claimed by the caller, who empties it next ([`crate::ops::gc::empty_store`]);
/// `None` if it was deleted meanwhile.
pub async fn delete(db: &Db, reg: &RegistryRow) -> Result<Option<StoreRemoval>, OciError> {
    let storage_url = reg.storage_url.as_deref();
    Ok(metadata::store_removals::delete_registry(db, reg.id, &reg.name, storage_url, REMOVAL_CLAIM_SECS).await?)
}

/// The admin user's two passwords, in clear, for an Owner or operator to show.
pub fn admin_passwords(auth: &Auth, reg: &RegistryRow) -> Result<[String; 2], OciError> {
    let open = |sealed: &Option<Vec<u8>>| -> Result<String, OciError> {
        let sealed = sealed
            .as_deref()
            .ok_or_else(|| OciError::Internal(anyhow::anyhow!("admin password missing")))?;
        let plain = auth.secrets().open(sealed).map_err(OciError::Internal)?;
        String::from_utf8(plain).map_err(|e| OciError::Internal(e.into()))
    };
    Ok([open(&reg.admin_password1)?, open(&reg.admin_password2)?])
}

/// Where the registry's blobs live, as shown: its own storage location, or its folder of the local store.
pub fn storage_location(reg: &RegistryRow) -> String {
    reg.storage_url
        .clone()
        .unwrap_or_else(|| format!("local:registries/{}", reg.name.to_ascii_lowercase()))
}

/// The slot (1 or 2) of the admin password named `name` (`password` or `password2`).
pub fn password_slot(name: &str) -> Result<u8, OciError> {
    match name {
        "password" => Ok(1),
        "password2" => Ok(2),
        other => Err(OciError::Invalid(format!(
            "passwordName {other:?} must be password or password2"
        ))),
    }
}

/// `Conflict` (saying how to enable it) unless the admin user of `reg` is enabled: its credentials are
/// neither shown nor renewed while it is off.
pub fn require_admin_enabled(reg: &RegistryRow) -> Result<(), OciError> {
    if reg.admin_enabled {
        return Ok(());
    }
    Err(OciError::Conflict(format!(
        "the admin user of {} is disabled; enable it first (berth registry update -n {} --admin-enabled true)",
        reg.name, reg.name
    )))
}

/// Replaces admin password 1 or 2 of an enabled admin user and revokes what was obtained with it: its
/// refresh tokens now, its access tokens as they are next used (their password fingerprint no longer
/// matches). Clients logged in with the other password keep working.
pub async fn renew_password(db: &Db, auth: &Auth, reg: &RegistryRow, slot: u8) -> Result<RegistryRow, OciError> {
    require_admin_enabled(reg)?;
    let sealed = auth.secrets().seal(random_password().as_bytes());
    metadata::registries::set_admin_password(db, reg.id, slot, &sealed).await?;
    metadata::refresh_tokens::revoke_password(db, reg.id, crate::auth::ADMIN_SUBJECT, slot).await?;
    find(db, &reg.name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_5_to_50_letters_and_digits() {
        for ok in ["myreg", "MyRegistry01", &"a".repeat(50)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["abcd", "my-reg", "my.registry", "", &"a".repeat(51), "regístry"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(canonical_sku("premium").unwrap(), "Premium");
        assert!(canonical_sku("Gold").is_err());
    }

    #[test]
    fn tags_are_bounded_strings() {
        let tags = |v: serde_json::Value| v.as_object().cloned().unwrap();
        assert!(validate_tags(&tags(serde_json::json!({}))).is_ok());
        assert!(validate_tags(&tags(serde_json::json!({ "team": "web", "": "" }))).is_ok());
        let many: serde_json::Map<_, _> = (0..51).map(|i| (format!("k{i}"), serde_json::json!("v"))).collect();
        assert!(validate_tags(&many).is_err(), "51 tags");
        for bad in [
            serde_json::json!({ "k": "v".repeat(257) }),
            serde_json::json!({ "k".repeat(513): "v" }),
            serde_json::json!({ "team": 1 }),
            serde_json::json!({ "team": null }),
            serde_json::json!({ "a": "b", "team": { "x": "y" } }),
            serde_json::json!({ "team": ["web"] }),
        ] {
            assert!(validate_tags(&tags(bad.clone())).is_err(), "{bad}");
        }
    }
}
