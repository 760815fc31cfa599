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
use crate::auth::secrets::{random_secret, token_hash};
use crate::auth::token::{Claims, ISSUER};
use crate::auth::{self, Identity, Permissions};
use crate::errors::OciError;
use crate::metadata::{self, now, refresh_tokens::RefreshRow};
use crate::oci::scope::{Access, parse_scopes};
use crate::tenant::Tenant;

/// Parameters of either form of the request (query string or form body).
#[derive(Default)]
struct TokenParams {
    scopes: Vec<String>,
    offline: bool,
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

impl TokenParams {
    fn parse(encoded: &[u8]) -> TokenParams {
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
    fn requested(&self) -> Result<Vec<Access>, OciError> {
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
        Some(new_refresh_token(&app, &reg, &identity).await?)
    } else {
        None
    };
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": app.auth.token_ttl_secs,
        "issued_at": issued.issued_at,
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
                Some(new_refresh_token(&app, &reg, &identity).await?)
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
            (identity_of_refresh_token(&app, &reg, token).await?, None)
        }
        _ => return Err(OciError::Invalid("grant_type must be password or refresh_token".into())),
    };
    let issued = issue(&app, &reg, &identity, &requested).await?;
    let mut body = json!({
        "access_token": issued.token,
        "expires_in": app.auth.token_ttl_secs,
        "issued_at": issued.issued_at,
        "scope": issued.scope,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    Ok(RequestInfo::new("token", &reg.row.name, &identity.subject()).attach(Json(body).into_response()))
}

struct Issued {
    token: String,
    issued_at: String,
    scope: String,
}

/// Signs an access token granting what was asked for, as far as the identity's rights reach.
async fn issue(app: &AppState, reg: &Tenant, identity: &Identity, requested: &[Access]) -> Result<Issued, OciError> {
    let permissions = Permissions::of(&app.db, &reg.row, identity).await?;
    if !permissions.any() {
        let who = match identity {
            Identity::Principal { app_id, .. } => format!("service principal {app_id}"),
            Identity::Admin { .. } => "the admin user".to_owned(),
        };
        return Err(OciError::Forbidden(format!(
            "{who} has no role on registry {}: an Owner or the operator must assign one before it can log in",
            reg.row.name
        )));
    }
    let access: Vec<Access> = permissions.grant(requested);
    let iat = now();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: identity.subject(),
        aud: reg.login_server.clone(),
        exp: iat + app.auth.token_ttl_secs,
        nbf: iat,
        iat,
        jti: random_secret(16),
        access,
        rid: reg.row.id,
        epoch: identity.epoch(&reg.row),
        password: identity.password_mark(&reg.row),
    };
    let token = app.auth.keys.sign(&claims).map_err(OciError::Internal)?;
    app.metrics.tokens_issued.with_label_values(&[&reg.row.name]).inc();
    let scope = claims
        .access
        .iter()
        .map(Access::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let issued_at = super::api::rfc3339(iat);
    Ok(Issued {
        token,
        issued_at,
        scope,
    })
}

async fn new_refresh_token(app: &AppState, reg: &Tenant, identity: &Identity) -> Result<String, OciError> {
    let token = random_secret(32);
    let row = RefreshRow {
        registry_id: reg.row.id,
        subject: identity.subject(),
        principal_id: identity.principal_id(),
        password_slot: identity.admin_password().map(i64::from),
        expires_at: now() + app.auth.refresh_ttl_secs,
    };
    metadata::refresh_tokens::insert(&app.db, &token_hash(&token), &row).await?;
    Ok(token)
}

/// The identity behind a refresh token, if the token is live, of this registry, and its identity may
/// still log in here.
async fn identity_of_refresh_token(app: &AppState, reg: &Tenant, token: &str) -> Result<Identity, OciError> {
    let row = metadata::refresh_tokens::find(&app.db, &token_hash(token)).await?;
    let row = row
        .filter(|r| r.registry_id == reg.row.id)
        .ok_or_else(|| OciError::BadCredentials("invalid or revoked refresh token".into()))?;
    let admin_password = row.password_slot.and_then(|slot| u8::try_from(slot).ok());
    auth::identity_of(&app.db, &reg.row, &row.subject, admin_password)
        .await?
        .ok_or_else(|| OciError::BadCredentials("invalid or revoked refresh token".into()))
}
