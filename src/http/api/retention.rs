//! `/api/registries/<name>/retention`: a registry's retention policy, shown (GET), replaced (PUT) and
//! applied now (`POST …/retention/run[?dryRun=true]`, what the background runner does on its schedule), by
//! the operator or an Owner of the registry.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::registries::managed;
use super::{ApiCaller, ApiPath, ApiQuery, json_body};
use crate::app::AppState;
use crate::errors::OciError;
use crate::ops::purge::Report;
use crate::ops::retention::{self, Policy};

pub async fn show(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    Ok(Json(retention::of(&reg)?).into_response())
}

pub async fn update(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let policy: Policy = json_body(body)?;
    retention::set(&app.db, &reg, &policy).await?;
    Ok(Json(policy).into_response())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunOptions {
    #[serde(default)]
    dry_run: bool,
}

pub async fn run(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(options): ApiQuery<RunOptions>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let report = retention::apply(&app.db, &app.tenant(reg)?, options.dry_run).await?;
    let report = report.unwrap_or(Report {
        dry_run: options.dry_run,
        ..Report::default()
    });
    Ok(Json(report).into_response())
}
