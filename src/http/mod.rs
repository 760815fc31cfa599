//! The HTTP edge (the only module that knows axum): the router, its layers, and the one dispatcher all
//! `/v2/` data-plane requests go through.

mod api;
mod blobs;
mod body;
mod edge_auth;
mod extract;
mod host;
mod login_throttle;
mod manifests;
mod observe;
mod operation;
mod ops_endpoints;
mod portal;
mod referrers;
mod request_body;
mod tags;
mod token;
mod uploads;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State, rejection::PathRejection};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;
use crate::auth;
use crate::errors::OciError;
use crate::limits::Direction;
use crate::oci::route::{self, V2Route, parse_v2};
use crate::oci::scope::Access;
use crate::tenant::Tenant;
use body::Guarded;
use extract::V2Query;
use observe::RequestInfo;
use operation::Operation;
pub use token::MAX_FORM_BYTES as TOKEN_FORM_MAX_BYTES;
pub use token::TokenParams;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    // The failed-login throttle, around the routes that check credentials.
    let throttled = || axum::middleware::from_fn_with_state(state.clone(), login_throttle::throttle_failed_logins);
    Router::new()
        .route("/v2/", any(v2_base))
        .route("/v2", any(v2_base))
        .route("/v2/{*rest}", any(v2_dispatch))
        .route(
            "/oauth2/token",
            get(token::get)
                .post(token::post)
                .layer(DefaultBodyLimit::max(token::MAX_FORM_BYTES))
                .layer(throttled()),
        )
        .nest("/api", api::router().layer(throttled()))
        .nest("/portal", portal::router(state.clone()))
        .route("/", get(portal::home))
        .route("/portal/", get(portal::home))
        .route("/metrics", get(ops_endpoints::metrics).layer(throttled()))
        .route("/healthz", get(ops_endpoints::healthz))
        .route("/readyz", get(ops_endpoints::readyz))
        .fallback(|| async { OciError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_body::request_body,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            HeaderValue::from_static("registry/2.0"),
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::observe))
        .with_state(state)
}

/// `/v2/` and `/v2`: the base, through the same dispatcher as every other data-plane request.
async fn v2_base(State(app): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    v2_dispatch(State(app), method, uri, headers, Ok(Path(String::new())), body).await
}

/// Runs a data-plane request and attaches what is known of it for the request log.
async fn v2_dispatch(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    rest: Result<Path<String>, PathRejection>,
    body: Body,
) -> Response {
    let mut info = RequestInfo {
        operation: "v2",
        ..RequestInfo::default()
    };
    let mut response = handle_v2(&app, &mut info, method, &uri, &headers, rest, body)
        .await
        .into_response();
    response.extensions_mut().insert(info);
    response
}

/// Parses the route (400 before anything else) and derives its [`Operation`], picks the registry by
/// `Host`, checks the bearer token (401 with a challenge, or 403), takes a pull or push permit of the
/// registry (429 past the queue timeout; held until the response's last byte), and runs the one handler
/// for the operation. Every endpoint below `/v2/`, the base and the catalog included, comes through here.
async fn handle_v2(
    app: &AppState,
    info: &mut RequestInfo,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    rest: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, OciError> {
    let Path(rest) = rest.map_err(|_| OciError::NameInvalid("the path is not valid UTF-8".into()))?;
    let route = parse_v2(&rest)?;
    let operation = Operation::of(&method, &route);
    info.operation = operation.name();
    info.repository = route.repo().map(ToString::to_string);
    let query = V2Query::parse(uri);
    let reg = match host::tenant(app, headers).await {
        // A host naming no registry is challenged at the base: clients then ask the token endpoint,
        // whose answer says what is wrong (docker shows only the status of `/v2/`).
        Err(OciError::RegistryUnknown(_)) if operation == Operation::Base => {
            let challenge = edge_auth::challenge_without_registry(app, headers);
            return Err(OciError::Unauthorized(Box::new(challenge)));
        }
        found => found?,
    };
    info.registry = Some(reg.row.name.clone());
    let need = operation.needs(&route);
    let mut scope = need.clone();
    if let (V2Route::UploadStart { .. }, Some(from)) = (&route, &query.from) {
        scope.push(Access::repository(from, &["pull"]));
    }
    let challenge = edge_auth::challenge(app, headers, &reg, scope);
    let audience = challenge.service.clone();
    let bearer = edge_auth::bearer(headers);
    let caller = auth::access::authorize(&app.auth, &app.db, &reg.row, bearer, &need, challenge).await?;
    info.principal = Some(caller.sub.clone());
    let permit = match operation.direction() {
        Some(direction) => {
            let limit = if direction == Direction::Pull {
                reg.limits.pulls
            } else {
                reg.limits.pushes
            };
            Some(app.limits.acquire(&reg.row.name, direction, limit).await?)
        }
        None => None,
    };
    let cx = Authorized {
        app,
        reg: &reg,
        caller: &caller,
    };
    let response = match (operation, route) {
        (Operation::Base, _) => Json(serde_json::json!({})).into_response(),
        (Operation::Catalog, _) => tags::catalog(&cx, &query).await?,
        (Operation::BlobGet, V2Route::Blob { repo, digest }) => blobs::get(&cx, &repo, &digest, headers, true).await?,
        (Operation::BlobHead, V2Route::Blob { repo, digest }) => {
            blobs::get(&cx, &repo, &digest, headers, false).await?
        }
        (Operation::BlobDelete, V2Route::Blob { repo, digest }) => blobs::delete(&cx, &repo, &digest).await?,
        (Operation::UploadStart, V2Route::UploadStart { repo }) => {
            uploads::start(&cx, &repo, &query, headers, body).await?
        }
        (Operation::UploadPatch, V2Route::Upload { repo, id }) => {
            uploads::patch(&cx, &repo, &id, headers, body).await?
        }
        (Operation::UploadPut, V2Route::Upload { repo, id }) => {
            uploads::put(&cx, &repo, &id, &query, headers, body).await?
        }
        (Operation::UploadStatus, V2Route::Upload { repo, id }) => uploads::status(&cx, &repo, &id).await?,
        (Operation::UploadCancel, V2Route::Upload { repo, id }) => uploads::cancel(&cx, &repo, &id).await?,
        (Operation::ManifestGet, V2Route::Manifest { repo, reference }) => {
            manifests::get(&cx, &repo, &route::existing(reference)?, headers, true).await?
        }
        (Operation::ManifestHead, V2Route::Manifest { repo, reference }) => {
            manifests::get(&cx, &repo, &route::existing(reference)?, headers, false).await?
        }
        (Operation::ManifestPut, V2Route::Manifest { repo, reference }) => {
            manifests::put(&cx, &repo, &route::for_put(reference)?, headers, body).await?
        }
        (Operation::ManifestDelete, V2Route::Manifest { repo, reference }) => {
            manifests::delete(&cx, &repo, &route::existing(reference)?, headers).await?
        }
        (Operation::TagsList, V2Route::TagsList { repo }) => tags::list(&cx, &repo, &query).await?,
        (Operation::Referrers, V2Route::Referrers { repo, digest }) => {
            referrers::list(&cx, &repo, &digest, &query).await?
        }
        _ => return Err(OciError::Unsupported),
    };
    // The request's body has been read: its token counts as in use until now.
    if let Some(token) = bearer {
        app.auth.keys.used(token, &audience, &caller);
    }
    Ok(match permit {
        Some(permit) => response.map(|body| Guarded::wrap(body, Some(permit), None)),
        None => response,
    })
}

/// An authorized data-plane request: the app, the registry it is for, and the caller's token.
pub struct Authorized<'a> {
    pub app: &'a AppState,
    pub reg: &'a Tenant,
    pub caller: &'a auth::token::Claims,
}

impl Authorized<'_> {
    /// Who makes this request and with which client, for the tag history.
    pub fn actor<'h>(&'h self, headers: &'h HeaderMap) -> crate::ops::history::Actor<'h> {
        actor(&self.caller.sub, headers)
    }
}

/// `who` (a token subject, or the management API's caller) and the client of a request (its
/// `User-Agent`, if it is text), as the tag history records them.
pub fn actor<'a>(who: &'a str, headers: &'a HeaderMap) -> crate::ops::history::Actor<'a> {
    let client = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    crate::ops::history::Actor { who, client }
}
