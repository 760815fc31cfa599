//! `/api/service-principals`: create (with a generated or given password), create-for-rbac (principal and
//! role assignment in one call), reset-credentials, list, show, delete. Operator only.

use axum::Json;
use axum::extract::{State, rejection::JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::roles::{assign, assignment_view};
use super::{ApiCaller, ApiPath, json_body, rfc3339};
use crate::app::{App, AppState};
use crate::errors::OciError;
use crate::ops::principals::{self, PrincipalRow};

fn view(p: &PrincipalRow) -> Value {
    json!({ "appId": p.app_id, "displayName": p.display_name, "createdAt": rfc3339(p.created_at) })
}

/// The principal with its password, shown once (like `az ad sp create-for-rbac`).
fn with_password(p: &PrincipalRow, password: &str) -> Value {
    json!({ "appId": p.app_id, "displayName": p.display_name, "name": p.app_id, "password": password })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePrincipal {
    name: Option<String>,
    password: Option<String>,
}

pub async fn create(
    State(app): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    caller.require_operator()?;
    let body: CreatePrincipal = json_body(body)?;
    let (row, password) = principals::create(&app.db, body.name, body.password).await?;
    Ok((StatusCode::CREATED, Json(with_password(&row, &password))).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateForRbac {
    name: Option<String>,
    password: Option<String>,
    scopes: Vec<String>,
    #[serde(default = "contributor")]
    role: String,
}

fn contributor() -> String {
    "Contributor".into()
}

/// A principal and its role on each scope, in one call; nothing is created when any scope is invalid.
pub async fn create_for_rbac(
    State(app): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    caller.require_operator()?;
    let body: CreateForRbac = json_body(body)?;
    if body.scopes.is_empty() {
        return Err(OciError::Invalid(
            "scopes must name at least one registry or repository prefix".into(),
        ));
    }
    let mut targets = Vec::new();
    for scope in &body.scopes {
        targets.push(super::roles::resolve(&app, scope, &body.role).await?);
    }
    let (row, password) = principals::create(&app.db, body.name, body.password).await?;
    let mut assignments = Vec::new();
    for target in &targets {
        assignments.push(assignment_view(&assign(&app, row.id, target).await?));
    }
    let mut out = with_password(&row, &password);
    out["roleAssignments"] = json!(assignments);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

pub async fn list(State(app): State<AppState>, caller: ApiCaller) -> Result<Response, OciError> {
    caller.require_operator()?;
    let rows = principals::list(&app.db).await?;
    Ok(Json(rows.iter().map(view).collect::<Vec<_>>()).into_response())
}

async fn find(app: &App, app_id: &str) -> Result<PrincipalRow, OciError> {
    principals::find(&app.db, app_id)
        .await?
        .ok_or_else(|| OciError::NotFound(format!("service principal {app_id:?} not found")))
}

pub async fn show(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(app_id): ApiPath<String>,
) -> Result<Response, OciError> {
    caller.require_operator()?;
    Ok(Json(view(&find(&app, &app_id).await?)).into_response())
}

/// The optional body of reset-credentials: the new password, when the caller chooses it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetCredentials {
    password: Option<String>,
}

/// Issues a new password and revokes the old ones and every refresh token of the principal.
pub async fn reset(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(app_id): ApiPath<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    caller.require_operator()?;
    let given = match body {
        Err(JsonRejection::MissingJsonContentType(_)) => None,
        body => json_body::<ResetCredentials>(body)?.password,
    };
    let row = find(&app, &app_id).await?;
    let password = principals::reset(&app.db, &row, given).await?;
    Ok(Json(with_password(&row, &password)).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(app_id): ApiPath<String>,
) -> Result<Response, OciError> {
    caller.require_operator()?;
    let row = find(&app, &app_id).await?;
    principals::delete(&app.db, &row).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
