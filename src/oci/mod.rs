//! Pure OCI grammar and documents: digests, names, tags, routes, ranges, manifests and scopes.
//! Nothing here does I/O or knows about HTTP frameworks, storage or SQL; everything is table-tested.

pub mod digest;
pub mod manifest;
pub mod range;
pub mod reference;
pub mod route;
pub mod scope;
