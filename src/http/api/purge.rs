//! `POST /api/registries/<name>/purge`: deletes the tags a filter matches that are older than an age,
//! keeping the newest, and optionally the untagged manifests left behind (`acr purge`); the operator or an
//! Owner of the registry. A dry run answers what it would delete and keep, and why.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::registries::managed;
use super::{ApiCaller, ApiPath, json_body};
use crate::app::AppState;
use crate::errors::OciError;
use crate::http::actor;
use crate::ops::purge::{self, Asked, Spec};

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PurgeRequest {
    filters: Vec<String>,
    /// A duration (`30d`, `12h`, `1d6h`); absent or null: any age.
    ago: Option<String>,
    #[serde(default)]
    keep: usize,
    #[serde(default)]
    untagged: bool,
    #[serde(default)]
    dry_run: bool,
    max_deletions: Option<usize>,
}

pub async fn run(
    State(app): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let request: PurgeRequest = json_body(body)?;
    let spec = Spec::from_asked(Asked {
        filters: &request.filters,
        ago: request.ago.as_deref(),
        keep: request.keep,
        untagged: request.untagged,
        dry_run: request.dry_run,
        max_deletions: request.max_deletions,
    })?;
    let who = caller.principal();
    let actor = actor(&who, &headers);
    let report = purge::run(&app.db, &app.tenant(reg)?, &spec, actor).await?;
    Ok(Json(report).into_response())
}
