//! Byte ranges: the `Range` header of blob reads and the `Content-Range` header of upload chunks.

use super::GrammarError;

/// An inclusive byte range resolved against a blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

impl ByteRange {
    /// The number of bytes in the range (never zero: the end is inclusive).
    #[expect(
        clippy::len_without_is_empty,
        reason = "an inclusive range always holds at least one byte"
    )]
    pub fn len(&self) -> u64 {
        (self.end - self.start).saturating_add(1)
    }
}

/// What a `Range` request header asks of a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable single range (absent, multi-range or another unit): serve the whole blob.
    Whole,
    Partial(ByteRange),
}

/// Resolves a `Range: bytes=…` header against `size`. Unsatisfiable ranges are 416; syntax this server
/// does not serve (several ranges, another unit) falls back to the whole content, as RFC 9110 allows.
pub fn resolve_range(header: Option<&str>, size: u64) -> Result<RangeRequest, GrammarError> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(RangeRequest::Whole);
    };
    if spec.contains(',') {
        return Ok(RangeRequest::Whole);
    }
    let unsatisfiable = || GrammarError::RangeNotSatisfiable { size };
    let (first, last) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.is_empty(), last.is_empty()) {
        (true, false) => {
            let suffix: u64 = last.parse().map_err(|_| unsatisfiable())?;
            if suffix == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            ByteRange {
                start: size.saturating_sub(suffix),
                end: size - 1,
            }
        }
        (false, _) => {
            let start: u64 = first.parse().map_err(|_| unsatisfiable())?;
            let end = if last.is_empty() {
                u64::MAX
            } else {
                last.parse().map_err(|_| unsatisfiable())?
            };
            if start >= size || end < start {
                return Err(unsatisfiable());
            }
            ByteRange {
                start,
                end: end.min(size - 1),
            }
        }
        (true, true) => return Err(unsatisfiable()),
    };
    Ok(RangeRequest::Partial(range))
}

/// Parses an upload chunk's `Content-Range` (`<start>-<end>`, inclusive; a `bytes ` or `bytes=` prefix and a
/// `/<total>` suffix are tolerated since clients send them).
pub fn parse_content_range(header: &str) -> Result<ByteRange, GrammarError> {
    let invalid = || GrammarError::ContentRange(format!("invalid Content-Range {:?}", super::digest::truncate(header)));
    let spec = header.trim();
    let spec = spec
        .strip_prefix("bytes=")
        .or_else(|| spec.strip_prefix("bytes "))
        .unwrap_or(spec);
    let spec = spec.split_once('/').map_or(spec, |(range, _total)| range);
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let end: u64 = end.trim().parse().map_err(|_| invalid())?;
    if end < start {
        return Err(invalid());
    }
    Ok(ByteRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start, end })
    }

    #[test]
    fn range_requests_resolve_against_the_size() {
        let table = [
            (None, Ok(RangeRequest::Whole)),
            (Some("bytes=0-0"), Ok(partial(0, 0))),
            (Some("bytes=0-9"), Ok(partial(0, 9))),
            (Some("bytes=5-"), Ok(partial(5, 9))),
            (Some("bytes=-3"), Ok(partial(7, 9))),
            (Some("bytes=-30"), Ok(partial(0, 9))),
            (Some("bytes=2-100"), Ok(partial(2, 9))),
            (Some("bytes=0-1,4-5"), Ok(RangeRequest::Whole)),
            (Some("items=0-1"), Ok(RangeRequest::Whole)),
            (Some("bytes=10-"), Err("RangeNotSatisfiable")),
            (Some("bytes=5-2"), Err("RangeNotSatisfiable")),
            (Some("bytes=-0"), Err("RangeNotSatisfiable")),
            (Some("bytes=x-1"), Err("RangeNotSatisfiable")),
            (Some("bytes=-"), Err("RangeNotSatisfiable")),
        ];
        for (header, want) in table {
            let got = resolve_range(header, 10).map_err(|e| e.kind());
            assert_eq!(got, want, "{header:?}");
        }
        assert!(resolve_range(Some("bytes=0-"), 0).is_err());
    }

    #[test]
    fn content_ranges_of_chunks() {
        assert_eq!(parse_content_range("0-99").unwrap(), ByteRange { start: 0, end: 99 });
        assert_eq!(
            parse_content_range("bytes 100-199/*").unwrap(),
            ByteRange { start: 100, end: 199 }
        );
        assert_eq!(parse_content_range("bytes=5-5").unwrap().len(), 1);
        let whole = parse_content_range(&format!("0-{}", u64::MAX)).unwrap();
        assert_eq!(whole.len(), u64::MAX, "no overflow at the top of the range");
        for bad in ["", "5", "a-b", "9-3", "-3"] {
            assert!(parse_content_range(bad).is_err(), "{bad:?}");
        }
    }
}
