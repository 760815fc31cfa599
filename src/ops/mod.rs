//! The domain's workflows over metadata and storage, callable without HTTP: receiving and committing
//! uploads, mounting and reading blobs, storing and deleting manifests, listings, registries and
//! repositories. The HTTP edge reaches metadata and storage only through here.

pub mod blobs;
pub mod gc;
pub mod history;
pub mod immutability;
pub mod listings;
pub mod locks;
pub mod manifests;
pub mod portal_sessions;
pub mod principals;
pub mod pulls;
pub mod purge;
pub mod quota;
pub mod registries;
pub mod repositories;
pub mod retention;
pub mod roles;
pub mod tokens;
pub mod uploads;
pub mod usage;

/// Unix seconds, the time unit metadata stores, as RFC 3339 (for answers and for the reasons workflows give).
pub fn rfc3339(secs: i64) -> String {
    let at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}
