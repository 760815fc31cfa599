//! Black-box tests of the HTTP API: a real server on an ephemeral port, real HTTP, real SQLite and files.
#![expect(clippy::unwrap_used, reason = "tests fail loudly on any unexpected error")]

mod api;
mod auth;
mod blobs;
mod cli;
mod common;
mod connections;
mod gc;
mod gc_crash;
mod gc_soak;
mod history;
mod hostile;
mod immutability;
mod limits;
mod listings;
mod locks;
mod manifests;
mod names;
mod nodes;
mod object_storage;
mod portal;
mod process;
mod pulls;
mod purge;
mod quota;
mod retention;
mod serve;
mod skopeo;
mod slow_clients;
mod tls;
mod uploads;
mod usage;
