//! `Range` and `Content-Range`: any header against any size resolves or is a client error, and a resolved
//! range lies inside the blob (no overflow in the arithmetic).
#![no_main]

use berth::errors::OciError;
use berth::oci::range::{RangeRequest, parse_content_range, resolve_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, &str)| {
    let (size, header) = input;
    match resolve_range(Some(header), size) {
        Ok(RangeRequest::Partial(range)) => {
            assert!(range.start <= range.end && range.end < size, "{range:?} of {size}");
            assert!(range.len() >= 1 && range.len() <= size);
        }
        Ok(_) => {}
        Err(e) => assert!(OciError::from(e.clone()).code_and_status().1.is_client_error(), "{e:?}"),
    }
    if let Ok(range) = parse_content_range(header) {
        assert!(range.start <= range.end);
        let _ = range.len();
    }
});
