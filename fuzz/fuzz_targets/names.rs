//! Digests, repository names, tags and references: parsing never panics, and what parses prints back to
//! text that parses to the same value.
#![no_main]

use berth::oci::digest::Digest;
use berth::oci::reference::{Reference, RepoName, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(digest) = text.parse::<Digest>() {
        assert_eq!(digest.to_string().parse::<Digest>().ok().as_ref(), Some(&digest));
    }
    if let Ok(name) = text.parse::<RepoName>() {
        assert_eq!(name.to_string().parse::<RepoName>().ok().as_ref(), Some(&name));
        assert!(!name.as_str().contains(".."));
    }
    if let Ok(tag) = text.parse::<Tag>() {
        assert_eq!(tag.to_string().parse::<Tag>().ok().as_ref(), Some(&tag));
    }
    if let Ok(reference) = text.parse::<Reference>() {
        assert_eq!(reference.to_string().parse::<Reference>().ok().as_ref(), Some(&reference));
    }
});
