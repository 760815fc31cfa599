//! Manifest and index parsing: any bytes, under each accepted Content-Type and none, give a result or a
//! MANIFEST_INVALID-class client error, never a panic; what parses names only valid digests.
#![no_main]

use berth::errors::OciError;
use berth::oci::manifest::{self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kinds = [None, Some(OCI_MANIFEST), Some(OCI_INDEX), Some(DOCKER_MANIFEST), Some(DOCKER_MANIFEST_LIST)];
    let content_type = kinds[data.first().map_or(0, |b| usize::from(*b) % kinds.len())];
    match manifest::parse(content_type, data) {
        Ok(info) => {
            for digest in info.blobs.iter().chain(&info.children).chain(info.subject.iter()) {
                assert_eq!(digest.to_string().parse::<berth::oci::digest::Digest>().ok().as_ref(), Some(digest));
            }
        }
        Err(e) => assert!(OciError::from(e.clone()).code_and_status().1.is_client_error(), "{e:?}"),
    }
});
