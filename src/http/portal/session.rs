//! Signing in and out of the portal, the session cookie, and the checks every change goes through: a
//! live session, a same-origin request, and the session's form token.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Chrome, PortalError, see_other};
use crate::app::{App, AppState};
use crate::ops::portal_sessions::{self, Opened, Session};

/// The session cookie's name.
const COOKIE: &str = "berth_portal";
/// The largest form the portal reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The signed-in viewer of a page: a live session whose credentials still stand.
pub struct Viewer {
    pub session: Session,
    cookie: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, PortalError> {
        let cookie = cookie_value(&parts.headers).ok_or(PortalError::SignIn)?;
        let session = portal_sessions::find(&app.db, &cookie)
            .await?
            .ok_or(PortalError::SignIn)?;
        Ok(Viewer { session, cookie })
    }
}

/// The session cookie's value, if the request carries one.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A form posted by the signed-in viewer from one of the portal's own pages: refused unless it comes
/// from this origin and carries the session's form token (`csrf`).
pub struct Submitted<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Submitted<T> {
    type Rejection = PortalError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, PortalError> {
        let (mut parts, body) = request.into_parts();
        refuse_cross_site(&parts.headers)?;
        let viewer = Viewer::from_request_parts(&mut parts, app).await?;
        let bytes = read_form(body).await?;
        let offered = form_urlencoded::parse(&bytes)
            .find(|(key, _)| key == "csrf")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default();
        if !viewer.session.csrf_matches(&offered) {
            return Err(PortalError::Forbidden(
                "The form's security token is missing or stale: reload the page and submit it again.".into(),
            ));
        }
        Ok(Submitted {
            viewer,
            form: parse_form(&bytes)?,
        })
    }
}

async fn read_form(body: axum::body::Body) -> Result<Bytes, PortalError> {
    axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| PortalError::Invalid(format!("A form is at most {MAX_FORM_BYTES} bytes.")))
}

fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PortalError> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| PortalError::Invalid(format!("The form could not be read: {e}.")))
}

/// A browser names where a request comes from (`Sec-Fetch-Site`, `Origin`); one from another site is
/// refused before anything else (the cookie's SameSite=Strict already keeps it signed out).
fn refuse_cross_site(headers: &HeaderMap) -> Result<(), PortalError> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let cross_site = matches!(fetch_site, Some("cross-site" | "same-site"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let foreign_origin = match (origin, host) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => origin.split_once("://").is_none_or(|(_, rest)| rest != host),
        _ => false,
    };
    if cross_site || foreign_origin {
        return Err(PortalError::Forbidden(
            "Changes are made from the portal's own pages only.".into(),
        ));
    }
    Ok(())
}

#[derive(Template)]
#[template(path = "sign_in.html", config = "src/http/portal/askama.toml")]
struct SignInPage {
    chrome: Chrome,
    error: Option<String>,
}

pub async fn sign_in_page() -> Result<Response, PortalError> {
    super::page(&SignInPage {
        chrome: Chrome::anonymous(),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    kind: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    registry: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Opens a session and sets its cookie; a failed sign-in answers 401 (which the failed-login throttle
/// counts) with the form and a message that does not say which part was wrong.
pub async fn sign_in(State(app): State<AppState>, request: Request) -> Result<Response, PortalError> {
    let (parts, body) = request.into_parts();
    refuse_cross_site(&parts.headers)?;
    let bytes = read_form(body).await?;
    let form: SignInForm = parse_form(&bytes)?;
    let ttl = app.config.auth.portal_session_secs;
    let opened = match form.kind.as_str() {
        "operator" => portal_sessions::sign_in_operator(&app.db, ttl, form.token.trim()).await?,
        _ => {
            let (registry, username) = (form.registry.trim(), form.username.trim());
            portal_sessions::sign_in_member(&app.auth, &app.db, ttl, registry, username, &form.password).await?
        }
    };
    let Some(Opened { cookie, session }) = opened else {
        let error = match form.kind.as_str() {
            "operator" => "That is not an operator token of this installation.",
            _ => "The registry, username or password is wrong, or that principal has no role on the registry.",
        };
        let page = super::page(&SignInPage {
            chrome: Chrome::anonymous(),
            error: Some(error.into()),
        })?;
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    tracing::info!(who = %session.signed_in.display(), "portal sign-in");
    let landing = match &session.signed_in {
        portal_sessions::SignedIn::Operator => "/portal/registries".to_string(),
        portal_sessions::SignedIn::Member { registry, .. } => {
            format!("/portal/registries/{}/repositories", registry.name)
        }
    };
    let mut response = see_other(&landing);
    let cookie = session_cookie(&app, &cookie, ttl);
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie.parse().map_err(|_| PortalError::Invalid("bad cookie".into()))?,
    );
    Ok(response)
}

/// The cookie: HttpOnly, SameSite=Strict, for the portal's paths, Secure when the server speaks TLS.
fn session_cookie(app: &App, value: &str, max_age: i64) -> String {
    let secure = if app.config.http.serves_tls() { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/portal; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

#[derive(Deserialize)]
pub struct NoFields {}

/// Ends the session: its row is deleted, so the cookie no longer opens anything, and the cookie cleared.
pub async fn sign_out(State(app): State<AppState>, submitted: Submitted<NoFields>) -> Result<Response, PortalError> {
    portal_sessions::sign_out(&app.db, &submitted.viewer.cookie).await?;
    let mut response = see_other("/portal/sign-in");
    let cleared = session_cookie(&app, "", 0);
    response.headers_mut().insert(
        header::SET_COOKIE,
        cleared.parse().map_err(|_| PortalError::Invalid("bad cookie".into()))?,
    );
    Ok(response)
}
