//! Request parsing shared by the handlers: query parameters, headers, pagination and `Link`.

use axum::http::{HeaderMap, HeaderName, Uri, header};

use crate::errors::OciError;

/// The query parameters any data-plane endpoint may take (the first of repeated ones counts).
#[derive(Debug, Default)]
pub struct V2Query {
    pub digest: Option<String>,
    pub mount: Option<String>,
    pub from: Option<String>,
    pub n: Option<String>,
    pub last: Option<String>,
    pub artifact_type: Option<String>,
}

impl V2Query {
    pub fn parse(uri: &Uri) -> V2Query {
        let mut query = V2Query::default();
        for (key, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            let slot = match key.as_ref() {
                "digest" => &mut query.digest,
                "mount" => &mut query.mount,
                "from" => &mut query.from,
                "n" => &mut query.n,
                "last" => &mut query.last,
                "artifactType" => &mut query.artifact_type,
                _ => continue,
            };
            slot.get_or_insert_with(|| value.into_owned());
        }
        query
    }
}

/// A header as text, if present and printable.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request's `Content-Length`, if it sent one.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, OciError> {
    header_str(headers, &header::CONTENT_LENGTH)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| OciError::SizeInvalid("invalid Content-Length".into()))
        })
        .transpose()
}

/// `n` and `last` of a listing.
pub struct Page {
    pub n: usize,
    pub last: Option<String>,
}

impl Page {
    /// Reads `n` (default `default_n`, at most `max_n`) and `last` from the query.
    pub fn from_query(query: &V2Query, default_n: usize, max_n: usize) -> Result<Page, OciError> {
        let n = match &query.n {
            None => default_n,
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| OciError::PaginationInvalid(format!("n={n:?} is not a count")))?
                .min(max_n),
        };
        Ok(Page {
            n,
            last: query.last.clone(),
        })
    }

    /// Trims a listing fetched with `n + 1` rows to `n`, and gives the RFC 5988 `Link` to the next page
    /// when there is more.
    pub fn finish(&self, mut items: Vec<String>, path: &str) -> (Vec<String>, Option<String>) {
        if items.len() <= self.n {
            return (items, None);
        }
        items.truncate(self.n);
        let link = items
            .last()
            .map(|last| format!("<{path}?n={}&last={}>; rel=\"next\"", self.n, encode_query(last)));
        (items, link)
    }
}

/// Percent-encodes the characters that cannot stand in a query value.
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
