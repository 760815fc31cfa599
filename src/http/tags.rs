//! Listings read from metadata: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both in lexical order
//! with `n`/`last` pagination and a `Link` to the next page.

use axum::Json;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Authorized;
use super::blobs::with_headers;
use super::extract::{Page, V2Query};
use crate::auth;
use crate::errors::OciError;
use crate::metadata;
use crate::oci::reference::RepoName;

/// Tags without `n` come whole up to this many; `n` is capped at it too.
const MAX_TAGS: usize = 10_000;
/// Catalog entries per page without `n`, and the cap on `n`.
const CATALOG_PAGE: usize = 1_000;
const MAX_CATALOG: usize = 10_000;
/// Repositories read per query while filtering the catalog by what the caller may pull.
const CATALOG_BATCH: i64 = 1_000;

pub async fn list(cx: &Authorized<'_>, repo: &RepoName, query: &V2Query) -> Result<Response, OciError> {
    let (app, reg) = (cx.app, cx.reg);
    let page = Page::from_query(query, MAX_TAGS, MAX_TAGS)?;
    let repository_id = reg.repository(&app.db, repo).await?;
    let rows = metadata::tags::list(&app.db, repository_id, page.last.as_deref(), page.n as i64 + 1).await?;
    let (tags, link) = page.finish(rows, &format!("/v2/{repo}/tags/list"));
    Ok(listing(json!({ "name": repo.as_str(), "tags": tags }), link))
}

/// The repositories the caller can pull (its token granted `registry:catalog:*`).
pub async fn catalog(cx: &Authorized<'_>, query: &V2Query) -> Result<Response, OciError> {
    let (app, reg, caller) = (cx.app, cx.reg, cx.caller);
    let identity = auth::identity_of(&app.db, &reg.row, &caller.sub, caller.password.as_ref().map(|m| m.slot))
        .await?
        .ok_or(OciError::Denied)?;
    let permissions = auth::Permissions::of(&app.db, &reg.row, &identity).await?;
    let page = Page::from_query(query, CATALOG_PAGE, MAX_CATALOG)?;
    let mut visible = Vec::new();
    let mut after = page.last.clone();
    while visible.len() <= page.n {
        let batch = metadata::repositories::list(&app.db, reg.row.id, after.as_deref(), CATALOG_BATCH).await?;
        let exhausted = batch.len() < CATALOG_BATCH as usize;
        after = batch.last().cloned();
        visible.extend(
            batch
                .into_iter()
                .filter(|repo| permissions.actions_on(repo).contains("pull")),
        );
        if exhausted {
            break;
        }
    }
    visible.truncate(page.n + 1);
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
