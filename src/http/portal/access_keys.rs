//! A registry's Access keys: the admin user switch, its username and two passwords (hidden until shown,
//! with copy buttons), and regenerating each password.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::session::{Submitted, Viewer};
use super::{Chrome, Place, PortalError, form_error, form_page, see_other};
use crate::app::{App, AppState};
use crate::http::edge_auth::login_server_seen_from;
use crate::ops::registries;

pub struct Password {
    name: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "access_keys.html", config = "src/http/portal/askama.toml")]
struct AccessKeysPage {
    chrome: Chrome,
    name: String,
    login_server: String,
    admin_enabled: bool,
    passwords: Vec<Password>,
    error: Option<String>,
    notice: Option<String>,
}

pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    render(&app, &place, &headers, None, None)
}

fn render(
    app: &App,
    place: &Place,
    headers: &HeaderMap,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, PortalError> {
    let reg = &place.reg;
    let passwords = if reg.admin_enabled {
        let [first, second] = registries::admin_passwords(&app.auth, reg)?;
        vec![
            Password {
                name: "password",
                value: first,
            },
            Password {
                name: "password2",
                value: second,
            },
        ]
    } else {
        Vec::new()
    };
    let failed = error.is_some();
    let keys = AccessKeysPage {
        chrome: place.chrome("access-keys"),
        name: reg.name.clone(),
        login_server: login_server_seen_from(app, headers, reg),
        admin_enabled: reg.admin_enabled,
        passwords,
        error,
        notice,
    };
    form_page(&keys, failed)
}

#[derive(Deserialize)]
pub struct AdminUserForm {
    enabled: bool,
}

/// Enables or disables the admin user (disabling revokes what it was signed in with, this portal
/// session too when it is the admin user's).
pub async fn admin_user(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Submitted { viewer, form }: Submitted<AdminUserForm>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    let changes = registries::Changes {
        sku: None,
        admin_enabled: Some(form.enabled),
        tags: None,
        pull_limit: None,
        push_limit: None,
        storage_quota: None,
    };
    registries::update(&app.db, &place.reg, &changes).await?;
    Ok(see_other(&format!("/portal/registries/{}/access-keys", place.reg.name)))
}

#[derive(Deserialize)]
pub struct RegenerateForm {
    password_name: String,
}

/// Replaces one admin password; clients and sessions that used it stop working, the other keeps them.
pub async fn regenerate(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Submitted { viewer, form }: Submitted<RegenerateForm>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    let renewed = async {
        let slot = registries::password_slot(&form.password_name)?;
        registries::renew_password(&app.db, &app.auth, &place.reg, slot).await
    };
    match renewed.await {
        Ok(reg) => {
            let place = Place { reg, ..place };
            let notice = format!("{} was regenerated.", form.password_name);
            render(&app, &place, &headers, None, Some(notice))
        }
        Err(e) => render(&app, &place, &headers, Some(form_error(e)?), None),
    }
}
