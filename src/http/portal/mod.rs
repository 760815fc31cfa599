//! The web portal under `/portal`: server-rendered pages (askama templates checked at compile time) for
//! the registries, their access keys, repositories and tags, access control, tag immutability, retention
//! and activity. Every page calls the same `ops` workflows as the management API. Pages carry a
//! Content-Security-Policy allowing no inline script; the one stylesheet and script are embedded.

mod access_control;
mod access_keys;
mod governance;
mod history;
mod registries;
mod repositories;
mod session;

use askama::Template;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::{App, AppState};
use crate::auth::Permissions;
use crate::errors::OciError;
use crate::ops::portal_sessions::{Session, SignedIn};
use crate::ops::registries::RegistryRow;
pub use session::Viewer;

/// What a page may load and where its forms may go: its own origin only, and no inline script or style.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The portal's routes. The sign-in goes through the failed-login throttle, as the token endpoint does.
pub fn router(state: AppState) -> Router<AppState> {
    let throttled = axum::middleware::from_fn_with_state(state, super::login_throttle::throttle_failed_logins);
    let pages = Router::new()
        .route("/", get(home))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in).layer(throttled),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/registries", get(registries::list).post(registries::create))
        .route("/registries/{name}", get(registries::overview))
        .route("/registries/{name}/delete", post(registries::delete))
        .route("/registries/{name}/access-keys", get(access_keys::show))
        .route(
            "/registries/{name}/access-keys/admin-user",
            post(access_keys::admin_user),
        )
        .route(
            "/registries/{name}/access-keys/regenerate",
            post(access_keys::regenerate),
        )
        .route("/registries/{name}/repositories", get(repositories::list))
        .route(
            "/registries/{name}/repositories/{*repo}",
            get(repositories::show).post(repositories::change),
        )
        .route(
            "/registries/{name}/access-control",
            get(access_control::show).post(access_control::change),
        )
        .route(
            "/registries/{name}/immutability",
            get(governance::immutability).post(governance::change_immutability),
        )
        .route(
            "/registries/{name}/retention",
            get(governance::retention).post(governance::change_retention),
        )
        .route(
            "/registries/{name}/activity",
            get(history::activity).post(history::restore),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .merge(pages)
        .route("/assets/portal.css", get(stylesheet))
        .route("/assets/portal.js", get(script))
        .fallback(|| async { PortalError::NotFound("There is no such page.".into()) })
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
}

/// `/`, `/portal` and `/portal/`: the registries (or the sign-in, for nobody signed in).
pub async fn home() -> Redirect {
    Redirect::to("/portal/registries")
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/portal.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("assets/portal.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "public, max-age=300"),
    ];
    (headers, body).into_response()
}

/// What every page's frame shows: who is signed in, the form token, and the registry's menu.
pub struct Chrome {
    pub who: Option<String>,
    pub csrf: String,
    pub operator: bool,
    /// The registry whose menu is shown, and the page of it that is open.
    pub registry: Option<String>,
    pub blade: &'static str,
    pub manager: bool,
}

impl Chrome {
    /// The frame of a page outside any registry.
    fn top(session: &Session) -> Chrome {
        Chrome {
            who: Some(session.signed_in.display()),
            csrf: session.csrf_token.clone(),
            operator: matches!(session.signed_in, SignedIn::Operator),
            registry: None,
            blade: "",
            manager: false,
        }
    }

    /// The frame of nobody signed in.
    fn anonymous() -> Chrome {
        Chrome {
            who: None,
            csrf: String::new(),
            operator: false,
            registry: None,
            blade: "",
            manager: false,
        }
    }
}

/// A registry as the signed-in viewer may see it, with what they may do there.
pub struct Place {
    pub reg: RegistryRow,
    /// `None`: the operator, who may do everything.
    pub permissions: Option<Permissions>,
    session: Session,
}

impl Place {
    /// Registry `name`, if the viewer may see it: the operator sees every registry; a member sees its own
    /// alone, and any other name is "not found" whether it exists or not.
    pub async fn of(app: &App, viewer: &Viewer, name: &str) -> Result<Place, PortalError> {
        let session = viewer.session.clone();
        let not_found = || PortalError::NotFound(format!("There is no registry named {name:?} you can see."));
        let (reg, permissions) = match &session.signed_in {
            SignedIn::Operator => (
                crate::ops::registries::find(&app.db, name)
                    .await
                    .map_err(|_| not_found())?,
                None,
            ),
            SignedIn::Member { registry, identity } => {
                if !registry.name.eq_ignore_ascii_case(name) {
                    return Err(not_found());
                }
                let permissions = Permissions::of(&app.db, registry, identity).await?;
                ((**registry).clone(), Some(permissions))
            }
        };
        Ok(Place {
            reg,
            permissions,
            session,
        })
    }

    /// Whether the viewer manages the registry: the operator, an Owner, and in the portal the admin user
    /// too (its credentials are the registry's own; the management API takes principals only).
    pub fn manages(&self) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| matches!(p, Permissions::Everything) || p.manages())
    }

    /// Whether the viewer may `action` (pull, push, delete) on repository `repo`.
    pub fn may(&self, repo: &str, action: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.actions_on(repo).contains(action))
    }

    /// Whether the viewer may push to some repository of the registry (and so restore there).
    pub fn pushes_somewhere(&self) -> bool {
        self.permissions.as_ref().is_none_or(|p| p.allows_somewhere("push"))
    }

    pub fn is_operator(&self) -> bool {
        self.permissions.is_none()
    }

    /// Refuses a page or change that takes managing the registry.
    pub fn require_manager(&self) -> Result<(), PortalError> {
        if self.manages() {
            return Ok(());
        }
        Err(PortalError::Forbidden(format!(
            "This takes the Owner role on registry {}; you may browse its repositories.",
            self.reg.name
        )))
    }

    /// The frame of one of this registry's pages.
    pub fn chrome(&self, blade: &'static str) -> Chrome {
        Chrome {
            registry: Some(self.reg.name.clone()),
            blade,
            manager: self.manages(),
            ..Chrome::top(&self.session)
        }
    }

    /// Who the history records for a change made here.
    pub fn actor_name(&self) -> String {
        match &self.session.signed_in {
            SignedIn::Operator => "operator".into(),
            SignedIn::Member { identity, .. } => identity.subject(),
        }
    }
}

/// Renders a template into a page (a template that fails to render is a bug: 500).
pub fn page(template: &impl Template) -> Result<Response, PortalError> {
    let html = template
        .render()
        .map_err(|e| PortalError::Internal(OciError::Internal(e.into())))?;
    Ok(Html(html).into_response())
}

/// Renders a page that may show a form's error: 400 when it does (the change was refused), else 200.
pub fn form_page(template: &impl Template, failed: bool) -> Result<Response, PortalError> {
    let status = if failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, page(template)?).into_response())
}

/// Goes to `to` after a change (post, redirect, get).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A page that cannot be shown.
#[derive(Debug)]
pub enum PortalError {
    NotFound(String),
    Forbidden(String),
    Invalid(String),
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    Internal(OciError),
}

impl From<OciError> for PortalError {
    fn from(e: OciError) -> Self {
        let message = e.to_string();
        match e.code_and_status().1 {
            StatusCode::NOT_FOUND => PortalError::NotFound(message),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => PortalError::Forbidden(message),
            status if status.is_client_error() => PortalError::Invalid(message),
            _ => PortalError::Internal(e),
        }
    }
}

/// A failed change's message, to show beside the form that made it; `Err` for what is not the user's.
pub fn form_error(e: OciError) -> Result<String, PortalError> {
    match PortalError::from(e) {
        PortalError::Internal(e) => Err(PortalError::Internal(e)),
        PortalError::NotFound(m) | PortalError::Forbidden(m) | PortalError::Invalid(m) => Ok(m),
        PortalError::SignIn => Err(PortalError::SignIn),
    }
}

#[derive(Template)]
#[template(path = "error.html", config = "src/http/portal/askama.toml")]
struct ErrorPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            PortalError::SignIn => return see_other("/portal/sign-in"),
            PortalError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            PortalError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            PortalError::Invalid(m) => (StatusCode::BAD_REQUEST, "Not done", m),
            PortalError::Internal(e) => {
                tracing::error!(error = %e, "a portal page failed");
                let message = "Something went wrong on the server; the log says what.".to_string();
                (StatusCode::INTERNAL_SERVER_ERROR, "Server error", message)
            }
        };
        let body = ErrorPage {
            chrome: Chrome::anonymous(),
            heading,
            message,
        }
        .render()
        .unwrap_or_else(|_| heading.to_string());
        (status, Html(body)).into_response()
    }
}
