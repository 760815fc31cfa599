//! The registries list and creation, a registry's Overview (with its quick start) and its deletion.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytesize::ByteSize;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::session::{Submitted, Viewer};
use super::{Chrome, Place, PortalError, form_error, form_page, see_other};
use crate::app::{App, AppState};
use crate::http::api::registries::delete_registry;
use crate::http::edge_auth::login_server_seen_from;
use crate::ops::portal_sessions::SignedIn;
use crate::ops::registries::{self, RegistrySpec, SKUS};
use crate::ops::{rfc3339, usage};

pub struct Row {
    name: String,
    login_server: String,
    sku: String,
    created: String,
    used: String,
}

/// What the create form held, to show it again beside its error.
#[derive(Deserialize, Default)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    sku: String,
    #[serde(default)]
    admin_user_enabled: bool,
    #[serde(default)]
    storage_location: String,
    #[serde(default)]
    tags: String,
}

#[derive(Template)]
#[template(path = "registries.html", config = "src/http/portal/askama.toml")]
struct ListPage {
    chrome: Chrome,
    registries: Vec<Row>,
    can_create: bool,
    skus: Vec<&'static str>,
    form: CreateForm,
    error: Option<String>,
}

pub async fn list(State(app): State<AppState>, viewer: Viewer, headers: HeaderMap) -> Result<Response, PortalError> {
    render_list(&app, &viewer, &headers, CreateForm::default(), None).await
}

async fn render_list(
    app: &App,
    viewer: &Viewer,
    headers: &HeaderMap,
    form: CreateForm,
    error: Option<String>,
) -> Result<Response, PortalError> {
    let used = usage::bytes_by_registry(&app.db).await?;
    let mut rows = Vec::new();
    for reg in registries::list(&app.db).await? {
        let visible = match &viewer.session.signed_in {
            SignedIn::Operator => true,
            SignedIn::Member { registry, .. } => registry.id == reg.id,
        };
        if !visible {
            continue;
        }
        let bytes = used.iter().find(|(name, ..)| *name == reg.name).map_or(0, |u| u.1);
        rows.push(Row {
            login_server: login_server_seen_from(app, headers, &reg),
            sku: reg.sku.clone(),
            created: rfc3339(reg.created_at),
            used: ByteSize::b(bytes.max(0) as u64).to_string(),
            name: reg.name,
        });
    }
    let can_create = matches!(viewer.session.signed_in, SignedIn::Operator);
    let failed = error.is_some();
    let form = CreateForm {
        sku: if form.sku.is_empty() { SKUS[0].into() } else { form.sku },
        ..form
    };
    let list = ListPage {
        chrome: Chrome::top(&viewer.session),
        registries: rows,
        can_create,
        skus: SKUS.to_vec(),
        form,
        error,
    };
    form_page(&list, failed)
}

/// Resource tags typed one `key=value` a line.
fn parse_tags(text: &str) -> Result<Map<String, Value>, String> {
    let mut tags = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("Resource tag {line:?} is not key=value."))?;
        tags.insert(key.trim().to_owned(), Value::String(value.trim().to_owned()));
    }
    Ok(tags)
}

pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    Submitted { viewer, form }: Submitted<CreateForm>,
) -> Result<Response, PortalError> {
    if !matches!(viewer.session.signed_in, SignedIn::Operator) {
        return Err(PortalError::Forbidden("Only the operator creates registries.".into()));
    }
    let tags = match parse_tags(&form.tags) {
        Ok(tags) => tags,
        Err(message) => return render_list(&app, &viewer, &headers, form, Some(message)).await,
    };
    let name = form.name.trim().to_owned();
    let storage = form.storage_location.trim();
    let sku = if form.sku.is_empty() {
        SKUS[0]
    } else {
        form.sku.as_str()
    };
    let spec = RegistrySpec {
        name: &name,
        sku,
        admin_enabled: form.admin_user_enabled,
        tags: &tags,
        storage_url: (!storage.is_empty()).then_some(storage),
    };
    match registries::create(&app.db, &app.auth, &app.stores, &spec).await {
        Ok(Some(reg)) => Ok(see_other(&format!("/portal/registries/{}", reg.name))),
        Ok(None) => {
            let message = format!("A registry named {name:?} exists already.");
            render_list(&app, &viewer, &headers, form, Some(message)).await
        }
        Err(e) => {
            let message = form_error(e)?;
            render_list(&app, &viewer, &headers, form, Some(message)).await
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html", config = "src/http/portal/askama.toml")]
struct OverviewPage {
    chrome: Chrome,
    name: String,
    login_server: String,
    sku: String,
    created: String,
    admin_enabled: bool,
    pulls: u32,
    pushes: u32,
    used: String,
    quota: String,
    repositories: i64,
    tags: i64,
    storage: String,
    can_delete: bool,
    error: Option<String>,
}

pub async fn overview(
    State(app): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    if !place.manages() {
        return Ok(see_other(&format!(
            "/portal/registries/{}/repositories",
            place.reg.name
        )));
    }
    render_overview(&app, &place, &headers, None).await
}

async fn render_overview(
    app: &App,
    place: &Place,
    headers: &HeaderMap,
    error: Option<String>,
) -> Result<Response, PortalError> {
    let reg = &place.reg;
    let limits = app.limits_of(reg);
    let used = usage::of_registry(&app.db, reg.id).await?;
    let failed = error.is_some();
    let overview = OverviewPage {
        chrome: place.chrome("overview"),
        name: reg.name.clone(),
        login_server: login_server_seen_from(app, headers, reg),
        sku: reg.sku.clone(),
        created: rfc3339(reg.created_at),
        admin_enabled: reg.admin_enabled,
        pulls: limits.pulls,
        pushes: limits.pushes,
        used: ByteSize::b(used.stored_bytes.max(0) as u64).to_string(),
        quota: limits
            .storage_bytes
            .map_or_else(|| "no quota".into(), |q| ByteSize::b(q).to_string()),
        repositories: used.repositories,
        tags: used.tags,
        storage: registries::storage_location(reg),
        can_delete: place.is_operator(),
        error,
    };
    form_page(&overview, failed)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub async fn delete(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
    Submitted { viewer, form }: Submitted<DeleteForm>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    if !place.is_operator() {
        return Err(PortalError::Forbidden("Only the operator deletes registries.".into()));
    }
    if form.confirm != place.reg.name {
        let message = format!("Type {} exactly to confirm the deletion.", place.reg.name);
        return render_overview(&app, &place, &headers, Some(message)).await;
    }
    delete_registry(&app, &place.reg).await?;
    tracing::info!(registry = %place.reg.name, "registry deleted from the portal");
    Ok(see_other("/portal/registries"))
}
