//! Token requests: a form body or query string of any bytes is parsed, and its scopes with it, without a
//! panic; at most MAX_SCOPES resources come out, and each prints back as a scope that parses to itself.
#![no_main]

use berth::oci::scope::{MAX_SCOPES, parse_scopes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scopes: Vec<String> = form_urlencoded::parse(data)
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.into_owned())
        .collect();
    if let Ok(parsed) = parse_scopes(scopes.iter().map(String::as_str)) {
        assert!(parsed.len() <= MAX_SCOPES);
        for access in &parsed {
            if access.actions.is_empty() || access.name.contains(char::is_whitespace) {
                continue;
            }
            let printed = access.to_string();
            assert_eq!(parse_scopes([printed.as_str()]).unwrap(), vec![access.clone()], "{printed}");
        }
    }
});
