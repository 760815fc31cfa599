//! `/api/registries`: create, list, show, update, delete, and the admin account's credentials.

use axum::Json;
use axum::extract::{State, rejection::JsonRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiCaller, ApiPath, json_body, rfc3339};
use crate::app::{App, AppState};
use crate::errors::OciError;
use crate::http::edge_auth::login_server_seen_from;
use crate::ops::registries::{self, RegistryRow, RegistrySpec};
use crate::ops::{gc, usage};

/// How long deleting a registry waits for its store to be emptied before answering.
const STORE_EMPTYING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A registry as the API shows it (the shape of `az acr create`'s output). Its `loginServer` carries the
/// port clients reach this server on (as the API request did) when that is not the scheme's default,
/// since `docker login` needs it.
pub fn view(app: &App, headers: &HeaderMap, reg: &RegistryRow) -> Value {
    // Tag values are strings; a value stored before that was checked is shown as its JSON text.
    let tags: Map<String, Value> = serde_json::from_str::<Map<String, Value>>(&reg.tags)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(_) => (k, v),
            other => (k, Value::String(other.to_string())),
        })
        .collect();
    let limits = app.limits_of(reg);
    let storage = registries::storage_location(reg);
    json!({
        "adminUserEnabled": reg.admin_enabled,
        "creationDate": rfc3339(reg.created_at),
        "id": format!("/registries/{}", reg.name),
        "loginServer": login_server_seen_from(app, headers, reg),
        "name": reg.name,
        "provisioningState": "Succeeded",
        "sku": { "name": reg.sku, "tier": reg.sku },
        "storageAccount": { "name": storage },
        "tags": tags,
        "type": "Berth/registries",
        "limits": { "pulls": limits.pulls, "pushes": limits.pushes, "storageBytes": limits.storage_bytes },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRegistry {
    name: String,
    #[serde(default = "basic")]
    sku: String,
    #[serde(default)]
    admin_user_enabled: bool,
    #[serde(default)]
    tags: Map<String, Value>,
    storage_location: Option<String>,
}

fn basic() -> String {
    "Basic".into()
}

pub async fn create(
    State(app): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    caller.require_operator()?;
    let body: CreateRegistry = json_body(body)?;
    let spec = RegistrySpec {
        name: &body.name,
        sku: &body.sku,
        admin_enabled: body.admin_user_enabled,
        tags: &body.tags,
        storage_url: body.storage_location.as_deref(),
    };
    let reg = registries::create(&app.db, &app.auth, &app.stores, &spec)
        .await?
        .ok_or_else(|| OciError::Conflict(format!("a registry named {:?} exists already", body.name)))?;
    Ok((StatusCode::CREATED, Json(view(&app, &headers, &reg))).into_response())
}

/// Operators see every registry; an Owner principal sees the registries it owns.
pub async fn list(State(app): State<AppState>, caller: ApiCaller, headers: HeaderMap) -> Result<Response, OciError> {
    let mut shown = Vec::new();
    for reg in registries::list(&app.db).await? {
        if caller.require_manager(&app, &reg).await.is_ok() {
            shown.push(view(&app, &headers, &reg));
        }
    }
    Ok(Json(shown).into_response())
}

/// The registry `name`, once `caller` is allowed to manage it.
pub async fn managed(app: &App, caller: &ApiCaller, name: &str) -> Result<RegistryRow, OciError> {
    let reg = caller.registry(app, name).await?;
    caller.require_manager(app, &reg).await?;
    Ok(reg)
}

pub async fn show(
    State(app): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    Ok(Json(view(&app, &headers, &reg)).into_response())
}

/// What the registry uses, shaped as the cloud CLI's `show-usage`: one item per measure with its
/// current value, its limit (`null`: none) and its unit.
pub async fn usage(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let u = usage::of_registry(&app.db, reg.id).await?;
    let item = |name: &str, value: i64, limit: Option<u64>, unit: &str| json!({ "name": name, "currentValue": value, "limit": limit, "unit": unit });
    let value = vec![
        item("Size", u.stored_bytes, app.limits_of(&reg).storage_bytes, "Bytes"),
        item("UnreferencedSize", u.unreferenced_bytes, None, "Bytes"),
        item("Repositories", u.repositories, None, "Count"),
        item("Manifests", u.manifests, None, "Count"),
        item("Tags", u.tags, None, "Count"),
    ];
    Ok(Json(json!({ "value": value })).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRegistry {
    sku: Option<String>,
    admin_user_enabled: Option<bool>,
    tags: Option<Map<String, Value>>,
    pull_limit: Option<u32>,
    push_limit: Option<u32>,
    storage_quota_bytes: Option<u64>,
}

pub async fn update(
    State(app): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let body: UpdateRegistry = json_body(body)?;
    // The SKU, the limits and the quota are what the installation grants a registry: the operator's to
    // change.
    let grants = [
        body.pull_limit.is_some(),
        body.push_limit.is_some(),
        body.storage_quota_bytes.is_some(),
    ];
    if body.sku.is_some() || grants.contains(&true) {
        caller.require_operator().map_err(|_| {
            OciError::Forbidden(
                "only the operator may change a registry's SKU, limits and storage quota; an Owner may change its other settings"
                    .into(),
            )
        })?;
    }
    let changes = registries::Changes {
        sku: body.sku.as_deref(),
        admin_enabled: body.admin_user_enabled,
        tags: body.tags.as_ref(),
        pull_limit: body.pull_limit,
        push_limit: body.push_limit,
        storage_quota: body.storage_quota_bytes,
    };
    let reg = registries::update(&app.db, &reg, &changes).await?;
    Ok(Json(view(&app, &headers, &reg)).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, OciError> {
    caller.require_operator()?;
    let reg = registries::find(&app.db, &name).await?;
    delete_registry(&app, &reg).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes `reg`, then empties its store in a task of its own, which a client hanging up does not stop:
/// a small store is empty by the time this returns, a large one goes on in the background (the collector
/// takes over if this process dies first).
pub async fn delete_registry(app: &AppState, reg: &RegistryRow) -> Result<(), OciError> {
    if let Some(removal) = registries::delete(&app.db, reg).await? {
        let app = app.clone();
        let emptying = tokio::spawn(async move {
            if let Err(e) = gc::empty_store(&app.db, &app.stores, &removal).await {
                tracing::warn!(registry = %removal.name, error = format!("{e:#}"), "emptying a deleted registry's store failed; the collector retries");
            }
        });
        let _ = tokio::time::timeout(STORE_EMPTYING_WAIT, emptying).await;
    }
    Ok(())
}

/// `az acr credential show`'s shape.
fn credentials_view(app: &App, reg: &RegistryRow) -> Result<Value, OciError> {
    registries::require_admin_enabled(reg)?;
    let [p1, p2] = registries::admin_passwords(&app.auth, reg)?;
    Ok(json!({
        "passwords": [{ "name": "password", "value": p1 }, { "name": "password2", "value": p2 }],
        "username": reg.name,
    }))
}

pub async fn credentials(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    Ok(Json(credentials_view(&app, &reg)?).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Renew {
    password_name: String,
}

pub async fn renew(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let slot = registries::password_slot(&json_body::<Renew>(body)?.password_name)?;
    let reg = registries::renew_password(&app.db, &app.auth, &reg, slot).await?;
    Ok(Json(credentials_view(&app, &reg)?).into_response())
}
