//! Blob reads (`GET`/`HEAD`, with `Range`, or a redirect to a presigned URL) and unlinking (`DELETE`).

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Authorized;
use super::extract::header_str;
use crate::errors::OciError;
use crate::oci::digest::Digest;
use crate::oci::range::{RangeRequest, resolve_range};
use crate::oci::reference::RepoName;
use crate::ops::blobs::{self, Content};

/// Streams a blob (or the requested range of it), or redirects a whole-blob GET to a presigned URL of the
/// object store when the registry's store hands one out; `with_body` is false for `HEAD`.
pub async fn get(
    cx: &Authorized<'_>,
    repo: &RepoName,
    digest: &Digest,
    headers: &HeaderMap,
    with_body: bool,
) -> Result<Response, OciError> {
    let blob = blobs::find(&cx.app.db, cx.reg, repo, digest, cx.app.config.gc.touch_every_secs()).await?;
    let size = blob.size();
    let range = resolve_range(header_str(headers, &header::RANGE), size)?;
    let (status, span) = match range {
        RangeRequest::Whole => (StatusCode::OK, None),
        RangeRequest::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
    };
    let length = span.map_or(size, |r| r.len());
    let mut response_headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, length.to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::ETAG, format!("\"{digest}\"")),
        (docker_content_digest(), digest.to_string()),
    ];
    if let Some(r) = span {
        response_headers.push((header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end)));
    }
    if !with_body {
        return Ok(with_headers(status, response_headers, Body::empty()));
    }
    match blob.open(cx.reg, span.map(|r| r.start..r.end + 1)).await? {
        Content::Redirect(location) => {
            let headers = vec![
                (header::LOCATION, location),
                (header::CONTENT_LENGTH, "0".to_string()),
                (docker_content_digest(), digest.to_string()),
            ];
            Ok(with_headers(StatusCode::TEMPORARY_REDIRECT, headers, Body::empty()))
        }
        Content::Stream(stream) => Ok(with_headers(status, response_headers, Body::from_stream(stream))),
    }
}

/// Removes the blob from the repository (other repositories that link it keep it).
pub async fn delete(cx: &Authorized<'_>, repo: &RepoName, digest: &Digest) -> Result<Response, OciError> {
    blobs::unlink(&cx.app.db, cx.reg, repo, digest).await?;
    Ok(with_headers(
        StatusCode::ACCEPTED,
        vec![(header::CONTENT_LENGTH, "0".into())],
        Body::empty(),
    ))
}

pub fn docker_content_digest() -> header::HeaderName {
    header::HeaderName::from_static("docker-content-digest")
}

/// A response with a status, headers (values that cannot be headers are dropped) and a body.
pub fn with_headers(status: StatusCode, headers: Vec<(header::HeaderName, String)>, body: Body) -> Response {
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
