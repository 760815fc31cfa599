//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both in lexical order with `n`/`last` pagination
//! and a `Link` to the next page.

use axum::Json;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Authorized;
use super::blobs::with_headers;
use super::extract::{Page, V2Query};
use crate::errors::OciError;
use crate::oci::reference::RepoName;
use crate::ops::listings;

/// Tags without `n` come whole up to this many; `n` is capped at it too.
const MAX_TAGS: usize = 10_000;
/// Catalog entries per page without `n`, and the cap on `n`.
const CATALOG_PAGE: usize = 1_000;
const MAX_CATALOG: usize = 10_000;

pub async fn list(cx: &Authorized<'_>, repo: &RepoName, query: &V2Query) -> Result<Response, OciError> {
    let page = Page::from_query(query, MAX_TAGS, MAX_TAGS)?;
    let rows = listings::tags(&cx.app.db, cx.reg, repo, page.last.as_deref(), page.n + 1).await?;
    let (tags, link) = page.finish(rows, &format!("/v2/{repo}/tags/list"));
    Ok(listing(json!({ "name": repo.as_str(), "tags": tags }), link))
}

/// The repositories the caller can pull (its token granted `registry:catalog:*`).
pub async fn catalog(cx: &Authorized<'_>, query: &V2Query) -> Result<Response, OciError> {
    let page = Page::from_query(query, CATALOG_PAGE, MAX_CATALOG)?;
    let visible = listings::catalog(&cx.app.db, cx.reg, cx.caller, page.last.as_deref(), page.n + 1).await?;
    let (repositories, link) = page.finish(visible, "/v2/_catalog");
    Ok(listing(json!({ "repositories": repositories }), link))
}

fn listing(body: serde_json::Value, link: Option<String>) -> Response {
    match link {
        Some(link) => with_headers(
            StatusCode::OK,
            vec![(header::LINK, link), (header::CONTENT_TYPE, "application/json".into())],
            Body::from(body.to_string()),
        ),
        None => Json(body).into_response(),
    }
}
