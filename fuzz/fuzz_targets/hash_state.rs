//! Saved upload hash states come back from the database: any bytes restore to a hasher or to nothing,
//! and a restored hasher keeps hashing without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|saved: &[u8]| {
    if let Some(mut hasher) = berth::oci::digest::Hasher::restore(saved) {
        hasher.update(saved);
        let _ = hasher.finish();
    }
});
