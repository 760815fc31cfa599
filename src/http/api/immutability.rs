//! `/api/registries/<name>/immutability-rules`: a registry's tag immutability rules, listed, created and
//! deleted (`/<id>`) by the operator or an Owner of the registry.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::registries::managed;
use super::{ApiCaller, ApiPath, json_body};
use crate::app::AppState;
use crate::errors::OciError;
use crate::ops::immutability;

pub async fn list(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    Ok(Json(immutability::list(&reg)?).into_response())
}

pub async fn create(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let rule = immutability::create(&app.db, &reg, json_body(body)?).await?;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((name, id)): ApiPath<(String, u32)>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    immutability::delete(&app.db, &reg, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
