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
