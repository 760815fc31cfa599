//! The configuration loader: any TOML text over the embedded defaults gives a configuration or an error,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = berth::config::Config::from_overrides(Some(text));
});
