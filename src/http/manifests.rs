//! Manifests by tag or digest: `GET`/`HEAD` (with `Accept` negotiation), `PUT`, `DELETE`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::Response;

use super::Authorized;
use super::blobs::{docker_content_digest, with_headers};
use super::extract::header_str;
use crate::errors::OciError;
use crate::oci::manifest::{MAX_MANIFEST_BYTES, is_manifest_type};
use crate::oci::reference::{Reference, RepoName};
use crate::ops::manifests;

pub async fn get(
    cx: &Authorized<'_>,
    repo: &RepoName,
    reference: &Reference,
    headers: &HeaderMap,
    with_body: bool,
) -> Result<Response, OciError> {
    let (app, reg) = (cx.app, cx.reg);
    let row = manifests::get(&app.db, reg, repo, reference).await?;
    if !accepts(headers, &row.media_type) {
        return Err(OciError::ManifestUnknown(format!(
            "manifest {reference} is a {}, which the request does not accept",
            row.media_type
        )));
    }
    if with_body {
        let tag = match reference {
            Reference::Tag(tag) => Some(tag.as_str()),
            Reference::Digest(_) => None,
        };
        app.pulls.record(row.repository_id, &row.digest, tag);
    }
    let response_headers = vec![
        (header::CONTENT_TYPE, row.media_type),
        (header::CONTENT_LENGTH, row.content.len().to_string()),
        (header::ETAG, format!("\"{}\"", row.digest)),
        (docker_content_digest(), row.digest),
    ];
    let body = if with_body {
        Body::from(row.content)
    } else {
        Body::empty()
    };
    Ok(with_headers(StatusCode::OK, response_headers, body))
}

/// Whether the `Accept` headers allow `media_type`: the type itself or a wildcard. Items that name no
/// manifest type (`application/json`, `text/html`) are ignored, so a request that names none of those
/// (or sends no `Accept`) takes whatever the manifest is.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut understood = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.split(';').next().unwrap_or("").trim())
        .filter(|item| is_manifest_type(item) || matches!(*item, "*/*" | "application/*"))
        .peekable();
    if understood.peek().is_none() {
        return true;
    }
    understood.any(|item| item == media_type || item == "*/*" || item == "application/*")
}

pub async fn put(
    cx: &Authorized<'_>,
    repo: &RepoName,
    reference: &Reference,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let (app, reg) = (cx.app, cx.reg);
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST_BYTES).await.map_err(|e| {
        match e.into_inner().downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => OciError::ManifestTooLarge(MAX_MANIFEST_BYTES),
            // The body stopped coming (containerd 1.6 sends none when it retries a manifest after a 401).
            Err(cause) => OciError::ManifestInvalid(format!("the manifest did not arrive whole: {cause}")),
        }
    })?;
    let content_type = header_str(headers, &header::CONTENT_TYPE).map(|ct| ct.split(';').next().unwrap_or("").trim());
    let actor = cx.actor(headers);
    let stored = manifests::put(&app.db, reg, repo, reference, content_type, &bytes, actor).await?;
    let mut response_headers = vec![
        (header::LOCATION, format!("/v2/{repo}/manifests/{}", stored.digest)),
        (docker_content_digest(), stored.digest.to_string()),
        (header::CONTENT_LENGTH, "0".into()),
    ];
    if let Some(subject) = stored.subject {
        response_headers.push((HeaderName::from_static("oci-subject"), subject.to_string()));
    }
    Ok(with_headers(StatusCode::CREATED, response_headers, Body::empty()))
}

pub async fn delete(
    cx: &Authorized<'_>,
    repo: &RepoName,
    reference: &Reference,
    headers: &HeaderMap,
) -> Result<Response, OciError> {
    let (app, reg) = (cx.app, cx.reg);
    manifests::delete(&app.db, reg, repo, reference, cx.actor(headers)).await?;
    Ok(with_headers(
        StatusCode::ACCEPTED,
        vec![(header::CONTENT_LENGTH, "0".into())],
        Body::empty(),
    ))
}
