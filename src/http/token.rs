//! `/oauth2/token`: the token endpoint docker, containerd and skopeo log in at. `GET` with Basic auth
//! (docker; `offline_token=true` adds a refresh token), `POST` with `grant_type=password` (containerd) or
//! `grant_type=refresh_token` (docker after login). The registry is chosen by `Host`, like `/v2/`.

use axum::Json;
use axum::extract::rejection::RawFormRejection;
use axum::extract::{RawForm, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::edge_auth;
use super::observe::RequestInfo;
use crate::app::AppState;
use crate::auth::{self, Identity};
use crate::errors::OciError;
use crate::oci::scope::{Access, parse_scopes};
use crate::ops::tokens::{self, Issued};
use crate::tenant::Tenant;

/// Parameters of either form of the request (query string or form body).
#[derive(Default)]
pub struct TokenParams {
    scopes: Vec<String>,
    offline: bool,
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

impl TokenParams {
    /// The parameters of a query string or form body; unknown ones are ignored.
    pub fn parse(encoded: &[u8]) -> TokenParams {
        let mut params = TokenParams::default();
        for (key, value) in form_urlencoded::parse(encoded) {
            let value = value.into_owned();
            match key.as_ref() {
                "scope" => params.scopes.push(value),
                "offline_token" => params.offline |= value == "true",
                "access_type" => params.offline |= value == "offline",
                "grant_type" => params.grant_type = Some(value),
                "username" => params.username = Some(value),
                "password" => params.password = Some(value),
                "refresh_token" => params.refresh_token = Some(value),
                _ => {}
            }
        }
        params
    }

    /// The accesses asked for; more than the cap is a client error.
    pub fn requested(&self) -> Result<Vec<Access>, OciError> {
        parse_scopes(self.scopes.iter().map(String::as_str)).map_err(|e| OciError::Invalid(e.to_string()))
    }
}

fn bad_credentials() -> OciError {
    OciError::BadCredentials("incorrect username or password".into())
}

pub async fn get(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> Result<Response, OciError> {
    let reg = super::host::tenant(&app, &headers).await?;
    let params = TokenParams::parse(uri.query().unwrap_or("").as_bytes());
    let requested = params.requested()?;
    let (username, password) = edge_auth::basic(&headers).ok_or_else(|| {
        OciError::BadCredentials(
            "authentication required: log in with a username and password (no anonymous access)".into(),
        )
    })?;
    let identity = auth::authenticate(&app.auth, &app.db, &reg.row, &username, &password)
        .await?
        .ok_or_else(bad_credentials)?;
    let issued = issue(&app, &reg, &identity, &requested).await?;
    let refresh = if params.offline {
        Some(tokens::new_refresh_token(&app.auth, &app.db, &reg, &identity).await?)
    } else {
        None
    };
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": app.auth.token_ttl_secs,
        "issued_at": super::api::rfc3339(issued.issued_at),
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    Ok(RequestInfo::new("token", &reg.row.name, &identity.subject()).attach(Json(body).into_response()))
}

/// The largest form body `POST /oauth2/token` reads: far above what any client sends (credentials and
/// at most [`crate::oci::scope::MAX_SCOPES`] scopes).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

pub async fn post(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<RawForm, RawFormRejection>,
) -> Result<Response, OciError> {
    let RawForm(form) = form.map_err(|e| match e {
        RawFormRejection::BytesRejection(_) => OciError::Invalid(format!(
            "the token request form is larger than {MAX_FORM_BYTES} bytes or unreadable"
        )),
        other => OciError::Invalid(other.body_text()),
    })?;
    let reg = super::host::tenant(&app, &headers).await?;
    let params = TokenParams::parse(&form);
    let requested = params.requested()?;
    let (identity, refresh) = match params.grant_type.as_deref() {
        Some("password") => {
            let (Some(username), Some(password)) = (&params.username, &params.password) else {
                return Err(OciError::Invalid(
                    "grant_type=password needs username and password".into(),
                ));
            };
            let identity = auth::authenticate(&app.auth, &app.db, &reg.row, username, password)
                .await?
                .ok_or_else(bad_credentials)?;
            let refresh = if params.offline {
                Some(tokens::new_refresh_token(&app.auth, &app.db, &reg, &identity).await?)
            } else {
                None
            };
            (identity, refresh)
        }
        Some("refresh_token") => {
            let token = params
                .refresh_token
                .as_deref()
                .ok_or_else(|| OciError::Invalid("refresh_token is missing".into()))?;
            (tokens::identity_of_refresh_token(&app.db, &reg, token).await?, None)
        }
        _ => return Err(OciError::Invalid("grant_type must be password or refresh_token".into())),
    };
    let issued = issue(&app, &reg, &identity, &requested).await?;
    let mut body = json!({
        "access_token": issued.token,
        "expires_in": app.auth.token_ttl_secs,
        "issued_at": super::api::rfc3339(issued.issued_at),
        "scope": issued.scope,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    Ok(RequestInfo::new("token", &reg.row.name, &identity.subject()).attach(Json(body).into_response()))
}

/// Issues an access token and counts it.
async fn issue(app: &AppState, reg: &Tenant, identity: &Identity, requested: &[Access]) -> Result<Issued, OciError> {
    let issued = tokens::issue(&app.auth, &app.db, reg, identity, requested).await?;
    app.metrics.tokens_issued.with_label_values(&[&reg.row.name]).inc();
    Ok(issued)
}
