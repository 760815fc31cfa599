//! Multi-step workflows over metadata and storage, callable without HTTP: receiving and committing
//! uploads, mounting blobs, storing and deleting manifests.

pub mod manifests;
pub mod registries;
pub mod uploads;
