//! The management REST API under `/api`: registries, admin credentials, repositories and their locks, tag
//! immutability rules, service principals and role assignments. Callers are the operator (bearer operator
//! token) or, for one registry's settings, credentials and roles, a service principal that is Owner of it
//! (Basic appId:password).

mod gc;
mod immutability;
mod principals;
mod purge;
pub(super) mod registries;
mod repositories;
mod retention;
mod roles;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::edge_auth;
use super::observe::CallerNote;
use crate::app::{App, AppState};
use crate::auth::{self, Identity, Permissions};
use crate::errors::OciError;
use crate::ops::registries::RegistryRow;

/// The OpenAPI document describing this API.
const OPENAPI: &str = include_str!("openapi.json");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .route("/registries", get(registries::list).post(registries::create))
        .route(
            "/registries/{name}",
            get(registries::show)
                .patch(registries::update)
                .delete(registries::delete),
        )
        .route("/registries/{name}/credentials", get(registries::credentials))
        .route("/registries/{name}/usage", get(registries::usage))
        .route("/registries/{name}/gc", get(gc::show).post(gc::run))
        .route("/gc", get(gc::list))
        .route("/registries/{name}/credentials/renew", post(registries::renew))
        .route(
            "/registries/{name}/immutability-rules",
            get(immutability::list).post(immutability::create),
        )
        .route(
            "/registries/{name}/immutability-rules/{id}",
            axum::routing::delete(immutability::delete),
        )
        .route("/registries/{name}/purge", post(purge::run))
        .route(
            "/registries/{name}/retention",
            get(retention::show).put(retention::update),
        )
        .route("/registries/{name}/retention/run", post(retention::run))
        .route("/registries/{name}/repositories", get(repositories::list))
        .route(
            "/registries/{name}/repositories/{*rest}",
            get(repositories::get)
                .patch(repositories::update)
                .post(repositories::restore)
                .delete(repositories::delete),
        )
        .route("/service-principals", get(principals::list).post(principals::create))
        .route("/service-principals/create-for-rbac", post(principals::create_for_rbac))
        .route(
            "/service-principals/{app_id}",
            get(principals::show).delete(principals::delete),
        )
        .route(
            "/service-principals/{app_id}/reset-credentials",
            post(principals::reset),
        )
        .route("/role-assignments", get(roles::list).post(roles::create))
        .route("/role-assignments/{id}", axum::routing::delete(roles::delete))
}

/// Who is calling the management API.
pub enum ApiCaller {
    Operator,
    Principal(Identity),
}

/// The caller, authenticated before the handler runs and noted for the request's log line.
impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = OciError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, OciError> {
        let caller = ApiCaller::authenticate(app, &parts.headers).await?;
        CallerNote::note(&parts.extensions, caller.principal());
        Ok(caller)
    }
}

impl ApiCaller {
    /// Reads and checks the caller's credentials.
    async fn authenticate(app: &App, headers: &HeaderMap) -> Result<ApiCaller, OciError> {
        if let Some(token) = edge_auth::bearer(headers) {
            return if auth::is_operator_token(&app.db, token).await? {
                Ok(ApiCaller::Operator)
            } else {
                Err(OciError::BadCredentials("invalid operator token".into()))
            };
        }
        let (app_id, password) = edge_auth::basic(headers).ok_or_else(|| {
            OciError::BadCredentials(
                "send an operator token (Bearer) or a service principal's appId and password (Basic)".into(),
            )
        })?;
        auth::authenticate_principal(&app.auth, &app.db, &app_id, &password)
            .await?
            .map(ApiCaller::Principal)
            .ok_or_else(|| OciError::BadCredentials("incorrect appId or password".into()))
    }

    /// Who this is in the request log: `operator`, or the principal's subject.
    pub fn principal(&self) -> String {
        match self {
            ApiCaller::Operator => "operator".into(),
            ApiCaller::Principal(identity) => identity.subject(),
        }
    }

    /// Installation-wide operations are the operator's alone.
    pub fn require_operator(&self) -> Result<(), OciError> {
        match self {
            ApiCaller::Operator => Ok(()),
            ApiCaller::Principal(_) => Err(OciError::Denied),
        }
    }

    /// The registry `name` as this caller may learn of it: only the operator learns whether a registry
    /// exists; a principal is refused alike whether it does or not.
    pub async fn registry(&self, app: &App, name: &str) -> Result<RegistryRow, OciError> {
        let found = crate::ops::registries::find(&app.db, name).await;
        match self {
            ApiCaller::Operator => found,
            ApiCaller::Principal(_) => found.map_err(|_| OciError::Denied),
        }
    }

    /// Managing one registry takes the operator or an Owner of the registry.
    pub async fn require_manager(&self, app: &App, reg: &RegistryRow) -> Result<(), OciError> {
        match self {
            ApiCaller::Operator => Ok(()),
            ApiCaller::Principal(identity) => {
                if Permissions::of(&app.db, reg, identity).await?.manages() {
                    Ok(())
                } else {
                    Err(OciError::Denied)
                }
            }
        }
    }
}

/// A JSON body, with a clear 400 when it is not what the endpoint takes. The body must be an object:
/// serde would otherwise read an array as the struct's fields in order.
pub fn json_body<T: DeserializeOwned>(body: Result<axum::Json<Value>, JsonRejection>) -> Result<T, OciError> {
    let axum::Json(value) = body.map_err(|e| OciError::Invalid(e.body_text()))?;
    if !value.is_object() {
        return Err(OciError::Invalid("the request body must be a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| OciError::Invalid(format!("invalid request body: {e}")))
}

/// The path parameters, with a rejection (a segment that is not UTF-8 once decoded) answered in the
/// API's JSON error format rather than axum's plain text.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = OciError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, OciError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| OciError::Invalid(e.body_text()))
    }
}

/// The query string, with a rejection (a parameter given twice) answered in the API's JSON error format.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = OciError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, OciError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| OciError::Invalid(e.body_text()))
    }
}

pub use crate::ops::rfc3339;
