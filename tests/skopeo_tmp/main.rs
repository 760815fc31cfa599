// TEMPORARY harness (helper agent) to compile tests/http/skopeo.rs without touching tests/http/main.rs.
#![allow(dead_code)]
#[path = "../http/common.rs"]
mod common;
#[path = "../http/skopeo.rs"]
mod skopeo;
