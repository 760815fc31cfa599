//! The HTTP edge (the only module that knows axum): the router, its layers, and the one dispatcher all
//! `/v2/` data-plane requests go through.

mod api;
mod base;
mod blobs;
mod body;
mod edge_auth;
mod extract;
mod login_throttle;
mod manifests;
mod observe;
mod ops_endpoints;
mod referrers;
mod request_body;
mod tags;
mod token;
mod uploads;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State, rejection::PathRejection};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::{AppState, RegistryCtx};
use crate::auth;
use crate::errors::OciError;
use crate::limits::Direction;
use crate::oci::route::{self, V2Route, parse_v2};
use crate::oci::scope::Access;
use body::Guarded;
use extract::V2Query;
use observe::RequestInfo;
pub use token::MAX_FORM_BYTES as TOKEN_FORM_MAX_BYTES;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    // The failed-login throttle, around the routes that check credentials.
    let throttled = || axum::middleware::from_fn_with_state(state.clone(), login_throttle::throttle_failed_logins);
    Router::new()
        .route("/v2/", get(base::get))
        .route("/v2", get(base::get))
        .route("/v2/_catalog", get(tags::catalog))
        .route("/v2/{*rest}", any(v2_dispatch))
        .route(
            "/oauth2/token",
            get(token::get)
                .post(token::post)
                .layer(DefaultBodyLimit::max(token::MAX_FORM_BYTES))
                .layer(throttled()),
        )
        .nest("/api", api::router().layer(throttled()))
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

/// Parses the route (400 before anything else), picks the registry by `Host`, checks the bearer token
/// (401 with a challenge, or 403), takes a pull or push permit of the registry (429 past the queue
/// timeout; held until the response's last byte), and runs the one handler for (method, route). No
/// endpoint below `/v2/` can skip the check: this is the only way in.
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
    info.operation = operation(&method, &route);
    info.repository = Some(route.repo().to_string());
    let query = V2Query::parse(uri);
    let reg = registry(app, headers).await?;
    info.registry = Some(reg.row.name.clone());
    let need = auth::access::required(&route, method.as_str());
    let mut scope = vec![need.clone()];
    if let (V2Route::UploadStart { .. }, Some(from)) = (&route, &query.from) {
        scope.push(Access::repository(from, &["pull"]));
    }
    let challenge = edge_auth::challenge(app, headers, &reg, scope);
    let bearer = edge_auth::bearer(headers);
    let caller = auth::access::authorize(&app.auth, &app.db, &reg.row, bearer, &[need], challenge).await?;
    info.principal = Some(caller.sub.clone());
    let permit = match direction(&method, &route) {
        Some(direction) => {
            let limits = app.limits_of(&reg.row);
            let limit = if direction == Direction::Pull {
                limits.pulls
            } else {
                limits.pushes
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
    let response = match (method, route) {
        (Method::GET, V2Route::Blob { repo, digest }) => blobs::get(app, &reg, &repo, &digest, headers, true).await?,
        (Method::HEAD, V2Route::Blob { repo, digest }) => blobs::get(app, &reg, &repo, &digest, headers, false).await?,
        (Method::DELETE, V2Route::Blob { repo, digest }) => blobs::delete(app, &reg, &repo, &digest).await?,
        (Method::POST, V2Route::UploadStart { repo }) => uploads::start(&cx, &repo, &query, headers, body).await?,
        (Method::PATCH, V2Route::Upload { repo, id }) => uploads::patch(&cx, &repo, &id, headers, body).await?,
        (Method::PUT, V2Route::Upload { repo, id }) => uploads::put(&cx, &repo, &id, &query, headers, body).await?,
        (Method::GET, V2Route::Upload { repo, id }) => uploads::status(&cx, &repo, &id).await?,
        (Method::DELETE, V2Route::Upload { repo, id }) => uploads::cancel(&cx, &repo, &id).await?,
        (Method::GET, V2Route::Manifest { repo, reference }) => {
            manifests::get(app, &reg, &repo, &route::existing(reference)?, headers, true).await?
        }
        (Method::HEAD, V2Route::Manifest { repo, reference }) => {
            manifests::get(app, &reg, &repo, &route::existing(reference)?, headers, false).await?
        }
        (Method::PUT, V2Route::Manifest { repo, reference }) => {
            manifests::put(app, &reg, &repo, &route::for_put(reference)?, headers, body).await?
        }
        (Method::DELETE, V2Route::Manifest { repo, reference }) => {
            manifests::delete(app, &reg, &repo, &route::existing(reference)?).await?
        }
        (Method::GET, V2Route::TagsList { repo }) => tags::list(app, &reg, &repo, &query).await?,
        (Method::GET, V2Route::Referrers { repo, digest }) => {
            referrers::list(app, &reg, &repo, &digest, &query).await?
        }
        _ => return Err(OciError::Unsupported),
    };
    Ok(match permit {
        Some(permit) => response.map(|body| Guarded::wrap(body, Some(permit), None)),
        None => response,
    })
}

/// The operation name of a data-plane request, for logs and metrics.
fn operation(method: &Method, route: &V2Route) -> &'static str {
    match (method.as_str(), route) {
        ("GET", V2Route::Blob { .. }) => "blob_get",
        ("HEAD", V2Route::Blob { .. }) => "blob_head",
        ("DELETE", V2Route::Blob { .. }) => "blob_delete",
        ("POST", V2Route::UploadStart { .. }) => "upload_start",
        ("PATCH", V2Route::Upload { .. }) => "upload_patch",
        ("PUT", V2Route::Upload { .. }) => "upload_put",
        ("GET", V2Route::Upload { .. }) => "upload_status",
        ("DELETE", V2Route::Upload { .. }) => "upload_cancel",
        ("GET", V2Route::Manifest { .. }) => "manifest_get",
        ("HEAD", V2Route::Manifest { .. }) => "manifest_head",
        ("PUT", V2Route::Manifest { .. }) => "manifest_put",
        ("DELETE", V2Route::Manifest { .. }) => "manifest_delete",
        ("GET", V2Route::TagsList { .. }) => "tags_list",
        ("GET", V2Route::Referrers { .. }) => "referrers",
        _ => "unsupported",
    }
}

/// Which limit a request counts against: pulls are GET/HEAD of blobs and manifests; pushes are upload
/// POST/PATCH/PUT and manifest PUT. Everything else is not limited.
fn direction(method: &Method, route: &V2Route) -> Option<Direction> {
    match (method.as_str(), route) {
        ("GET" | "HEAD", V2Route::Blob { .. } | V2Route::Manifest { .. }) => Some(Direction::Pull),
        ("POST", V2Route::UploadStart { .. }) | ("PATCH" | "PUT", V2Route::Upload { .. }) => Some(Direction::Push),
        ("PUT", V2Route::Manifest { .. }) => Some(Direction::Push),
        _ => None,
    }
}

/// An authorized data-plane request: the app, the registry it is for, and the caller's token.
pub struct Authorized<'a> {
    pub app: &'a AppState,
    pub reg: &'a RegistryCtx,
    pub caller: &'a auth::token::Claims,
}

/// The registry a request is for, from its `Host`.
async fn registry(app: &AppState, headers: &HeaderMap) -> Result<RegistryCtx, OciError> {
    app.registry_for_host(headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .await
}
