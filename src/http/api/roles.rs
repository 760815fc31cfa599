//! `/api/role-assignments`: assign Reader, Contributor or Owner on a registry or a repository prefix;
//! list and delete. The operator manages all; an Owner manages its own registry's assignments.

use axum::Json;
use axum::extract::{State, rejection::JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCaller, ApiPath, ApiQuery, json_body, rfc3339};
use crate::app::{App, AppState};
use crate::auth::roles::{Role, Scope};
use crate::errors::OciError;
use crate::ops::principals;
use crate::ops::registries::{self, RegistryRow};
use crate::ops::roles::{self, AssignmentRow};

pub fn assignment_view(a: &AssignmentRow) -> Value {
    json!({
        "id": a.id.to_string(),
        "principalId": a.app_id,
        "principalName": a.principal_name,
        "roleDefinitionName": a.role,
        "scope": Scope::render(&a.registry, &a.repo_prefix),
        "createdOn": rfc3339(a.created_at),
    })
}

/// A validated target of an assignment.
pub struct Target {
    pub registry: RegistryRow,
    pub repo_prefix: String,
    pub role: Role,
}

/// Parses scope and role and finds the registry.
pub async fn resolve(app: &App, scope: &str, role: &str) -> Result<Target, OciError> {
    let scope = Scope::parse(scope).map_err(OciError::Invalid)?;
    let role: Role = role.parse().map_err(OciError::Invalid)?;
    let registry = registries::find(&app.db, &scope.registry).await?;
    Ok(Target {
        registry,
        repo_prefix: scope.repo_prefix,
        role,
    })
}

pub async fn assign(app: &App, principal_id: i64, t: &Target) -> Result<AssignmentRow, OciError> {
    roles::assign(&app.db, principal_id, t.registry.id, &t.repo_prefix, t.role.as_str()).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAssignment {
    assignee: String,
    scope: String,
    role: String,
}

pub async fn create(
    State(app): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    let body: CreateAssignment = json_body(body)?;
    let target = match resolve(&app, &body.scope, &body.role).await {
        Err(OciError::NotFound(_)) if matches!(caller, ApiCaller::Principal(_)) => return Err(OciError::Denied),
        other => other?,
    };
    caller.require_manager(&app, &target.registry).await?;
    let principal = principals::find(&app.db, &body.assignee)
        .await?
        .ok_or_else(|| OciError::NotFound(format!("service principal {:?} not found", body.assignee)))?;
    let row = assign(&app, principal.id, &target).await?;
    Ok((StatusCode::CREATED, Json(assignment_view(&row))).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    scope: Option<String>,
    assignee: Option<String>,
}

/// The operator lists any; a principal must name a scope in a registry it owns. A registry scope lists
/// every assignment in the registry; a repository scope only those on exactly that prefix.
pub async fn list(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, OciError> {
    let scope = q
        .scope
        .as_deref()
        .map(Scope::parse)
        .transpose()
        .map_err(OciError::Invalid)?;
    let registry = match &scope {
        Some(scope) => Some(super::registries::managed(&app, &caller, &scope.registry).await?.id),
        None => {
            caller.require_operator()?;
            None
        }
    };
    let principal = match &q.assignee {
        Some(app_id) => match principals::find(&app.db, app_id).await? {
            Some(p) => Some(p.id),
            None => return Ok(Json(Vec::<Value>::new()).into_response()),
        },
        None => None,
    };
    let rows = roles::list(&app.db, registry, principal).await?;
    let prefix = scope.as_ref().map_or("", |s| s.repo_prefix.as_str());
    let shown: Vec<Value> = rows
        .iter()
        .filter(|a| prefix.is_empty() || a.repo_prefix == prefix)
        .map(assignment_view)
        .collect();
    Ok(Json(shown).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, OciError> {
    let not_found = || OciError::NotFound(format!("role assignment {id:?} not found"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let (principal_id, registry_id) = roles::holder(&app.db, id).await?.ok_or_else(not_found)?;
    let registry = registries::list(&app.db)
        .await?
        .into_iter()
        .find(|r| r.id == registry_id)
        .ok_or_else(not_found)?;
    // A principal that does not manage the registry learns nothing about the assignment, not even that
    // the id exists.
    caller
        .require_manager(&app, &registry)
        .await
        .map_err(|e| match caller {
            ApiCaller::Principal(_) => not_found(),
            ApiCaller::Operator => e,
        })?;
    roles::remove(&app.db, id, principal_id, registry_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
