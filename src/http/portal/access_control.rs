//! Access control (IAM): the registry's role assignments; the operator creates a service principal with
//! a role on the registry or a repository prefix (its password shown once), resets its credentials and
//! deletes it; the operator and Owners remove assignments.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::{Submitted, Viewer};
use super::{Chrome, Place, PortalError, form_error, form_page};
use crate::app::{App, AppState};
use crate::auth::roles::{Role, Scope};
use crate::errors::OciError;
use crate::ops::principals::{self, PrincipalRow};
use crate::ops::roles;

pub struct AssignmentRow {
    id: i64,
    principal: String,
    app_id: String,
    role: String,
    scope: String,
}

/// A password shown once, after it was made.
pub struct ShownOnce {
    what: String,
    app_id: String,
    password: String,
}

#[derive(Template)]
#[template(path = "access_control.html", config = "src/http/portal/askama.toml")]
struct AccessControlPage {
    chrome: Chrome,
    name: String,
    assignments: Vec<AssignmentRow>,
    shown_once: Option<ShownOnce>,
    error: Option<String>,
}

pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    render(&app, &place, None, None).await
}

async fn render(
    app: &App,
    place: &Place,
    shown_once: Option<ShownOnce>,
    error: Option<String>,
) -> Result<Response, PortalError> {
    let rows = roles::list(&app.db, Some(place.reg.id), None).await?;
    let assignments = rows
        .into_iter()
        .map(|a| AssignmentRow {
            id: a.id,
            scope: Scope::render(&a.registry, &a.repo_prefix),
            principal: a.principal_name,
            app_id: a.app_id,
            role: a.role,
        })
        .collect();
    let failed = error.is_some();
    form_page(
        &AccessControlPage {
            chrome: place.chrome("access-control"),
            name: place.reg.name.clone(),
            assignments,
            shown_once,
            error,
        },
        failed,
    )
}

#[derive(Deserialize)]
pub struct ChangeForm {
    action: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    assignment: String,
}

pub async fn change(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Submitted { viewer, form }: Submitted<ChangeForm>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    let operator_only = || {
        if place.is_operator() {
            Ok(())
        } else {
            Err(PortalError::Forbidden(
                "Only the operator creates, resets and deletes service principals.".into(),
            ))
        }
    };
    let done = match form.action.as_str() {
        "create" => {
            operator_only()?;
            create(&app, &place, &form).await.map(Some)
        }
        "reset" => {
            operator_only()?;
            reset(&app, &place, &form.app_id).await.map(Some)
        }
        "delete-principal" => {
            operator_only()?;
            delete(&app, &place, &form.app_id).await.map(|()| None)
        }
        "remove" => remove(&app, &place, &form.assignment).await.map(|()| None),
        other => return Err(PortalError::Invalid(format!("Unknown action {other:?}."))),
    };
    match done {
        Ok(shown_once) => render(&app, &place, shown_once, None).await,
        Err(e) => render(&app, &place, None, Some(form_error(e)?)).await,
    }
}

/// A new principal with `form.role` on the registry or the prefix `form.scope`; checks both before
/// creating anything.
async fn create(app: &App, place: &Place, form: &ChangeForm) -> Result<ShownOnce, OciError> {
    let role: Role = form.role.parse().map_err(OciError::Invalid)?;
    let prefix = form.scope.trim().trim_matches('/');
    let scope = Scope::parse(&Scope::render(&place.reg.name, prefix)).map_err(OciError::Invalid)?;
    let display_name = Some(form.display_name.trim().to_owned()).filter(|n| !n.is_empty());
    let (principal, password) = principals::create(&app.db, display_name, None).await?;
    roles::assign(&app.db, principal.id, place.reg.id, &scope.repo_prefix, role.as_str()).await?;
    Ok(ShownOnce {
        what: format!(
            "Service principal {} was created with the {} role",
            principal.display_name,
            role.as_str()
        ),
        app_id: principal.app_id,
        password,
    })
}

/// Principal `app_id`, when it holds a role on this registry (any other is unknown here).
async fn principal_here(app: &App, place: &Place, app_id: &str) -> Result<PrincipalRow, OciError> {
    let unknown = || {
        OciError::NotFound(format!(
            "Service principal {app_id:?} has no role on {}.",
            place.reg.name
        ))
    };
    let principal = principals::find(&app.db, app_id).await?.ok_or_else(unknown)?;
    let holds_role = roles::list(&app.db, Some(place.reg.id), Some(principal.id)).await?;
    if holds_role.is_empty() {
        return Err(unknown());
    }
    Ok(principal)
}

/// A new password for a principal holding a role here; the old ones and its sessions stop working.
async fn reset(app: &App, place: &Place, app_id: &str) -> Result<ShownOnce, OciError> {
    let principal = principal_here(app, place, app_id).await?;
    let password = principals::reset(&app.db, &principal, None).await?;
    Ok(ShownOnce {
        what: format!("The credentials of {} were reset", principal.display_name),
        app_id: principal.app_id,
        password,
    })
}

/// Deletes a principal holding a role here, with its roles in every registry; its tokens and sessions
/// stop working.
async fn delete(app: &App, place: &Place, app_id: &str) -> Result<(), OciError> {
    let principal = principal_here(app, place, app_id).await?;
    principals::delete(&app.db, &principal).await
}

/// Removes role assignment `id` when it is one of this registry's.
async fn remove(app: &App, place: &Place, id: &str) -> Result<(), OciError> {
    let unknown = || OciError::NotFound(format!("Role assignment {id:?} is not on {}.", place.reg.name));
    let id: i64 = id.parse().map_err(|_| unknown())?;
    let (principal_id, registry_id) = roles::holder(&app.db, id).await?.ok_or_else(unknown)?;
    if registry_id != place.reg.id {
        return Err(unknown());
    }
    roles::remove(&app.db, id, principal_id, registry_id).await
}
