//! Token requests: a form body or query string of any bytes is parsed as the token endpoint parses it, and
//! its scopes with it, without a panic; at most MAX_SCOPES resources come out, more is a client error, and
//! each resource prints back as a scope that parses to itself.
#![no_main]

use berth::http::TokenParams;
use berth::oci::scope::{MAX_SCOPES, parse_scopes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match TokenParams::parse(data).requested() {
        Ok(parsed) => {
            assert!(parsed.len() <= MAX_SCOPES);
            for access in &parsed {
                if access.actions.is_empty() || access.name.contains(char::is_whitespace) {
                    continue;
                }
                let printed = access.to_string();
                assert_eq!(parse_scopes([printed.as_str()]).unwrap(), vec![access.clone()], "{printed}");
            }
        }
        Err(refused) => assert_eq!(refused.code_and_status().1.as_u16(), 400, "{refused}"),
    }
});
