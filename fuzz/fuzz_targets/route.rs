//! The `/v2/` route parser: any path gives a route or a client error; a route's repository, if it has
//! one, is a valid name that never climbs out of its folder.
#![no_main]

use berth::errors::OciError;
use berth::oci::route::parse_v2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|rest: &str| {
    match parse_v2(rest) {
        Ok(route) => {
            if let Some(repo) = route.repo() {
                let repo = repo.as_str();
                assert!(!repo.is_empty() && !repo.contains("..") && !repo.starts_with('/'), "{repo}");
            }
        }
        Err(e) => assert!(OciError::from(e.clone()).code_and_status().1.is_client_error(), "{e:?}"),
    }
});
