//! Pure OCI grammar and documents: digests, names, tags, routes, ranges, manifests and scopes.
//! Nothing here does I/O or knows about HTTP frameworks, storage or SQL, and nothing here imports the rest
//! of the crate (`.ci/run` checks it): refusals are [`GrammarError`]s. Everything is table-tested.

pub mod digest;
mod error;
pub mod manifest;
pub mod range;
pub mod reference;
pub mod route;
pub mod scope;

pub use error::GrammarError;
