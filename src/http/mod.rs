//! The HTTP edge (the only module that knows axum): the router, its layers, and the one dispatcher all
//! `/v2/` data-plane requests go through.

mod api;
mod base;
mod blobs;
mod edge_auth;
mod extract;
mod manifests;
mod referrers;
mod tags;
mod token;
mod uploads;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State, rejection::PathRejection};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::app::{AppState, RegistryCtx};
use crate::auth;
use crate::errors::OciError;
use crate::oci::route::{V2Route, parse_v2};
use crate::oci::scope::Access;
use extract::V2Query;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2/", get(base::get))
        .route("/v2", get(base::get))
        .route("/v2/_catalog", get(tags::catalog))
        .route("/v2/{*rest}", any(v2_dispatch))
        .route("/oauth2/token", get(token::get).post(token::post))
        .nest("/api", api::router())
        .fallback(|| async { OciError::NameInvalid("no such endpoint".into()) })
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            HeaderValue::from_static("registry/2.0"),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Parses the route (400 before anything else), picks the registry by `Host`, checks the bearer token
/// (401 with a challenge, or 403), and runs the one handler for (method, route). No endpoint below `/v2/`
/// can skip the check: this is the only way in.
async fn v2_dispatch(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    rest: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, OciError> {
    let Path(rest) = rest.map_err(|_| OciError::NameInvalid("the path is not valid UTF-8".into()))?;
    let route = parse_v2(&rest)?;
    let query = V2Query::parse(&uri);
    let reg = registry(&app, &headers).await?;
    let need = auth::access::required(&route, method.as_str());
    let mut scope = vec![need.clone()];
    if let (V2Route::UploadStart { .. }, Some(from)) = (&route, &query.from) {
        scope.push(Access::repository(from, &["pull"]));
    }
    let challenge = edge_auth::challenge(&app, &headers, &reg, scope);
    let caller = auth::access::authorize(
        &app.auth,
        &app.db,
        &reg.row,
        edge_auth::bearer(&headers),
        &[need],
        challenge,
    )
    .await?;
    let cx = Authorized {
        app: &app,
        reg: &reg,
        caller: &caller,
    };
    let response = match (method, route) {
        (Method::GET, V2Route::Blob { repo, digest }) => blobs::get(&app, &reg, &repo, &digest, &headers, true).await?,
        (Method::HEAD, V2Route::Blob { repo, digest }) => {
            blobs::get(&app, &reg, &repo, &digest, &headers, false).await?
        }
        (Method::DELETE, V2Route::Blob { repo, digest }) => blobs::delete(&app, &reg, &repo, &digest).await?,
        (Method::POST, V2Route::UploadStart { repo }) => uploads::start(&cx, &repo, &query, &headers, body).await?,
        (Method::PATCH, V2Route::Upload { repo, id }) => uploads::patch(&cx, &repo, &id, &headers, body).await?,
        (Method::PUT, V2Route::Upload { repo, id }) => uploads::put(&cx, &repo, &id, &query, &headers, body).await?,
        (Method::GET, V2Route::Upload { repo, id }) => uploads::status(&cx, &repo, &id).await?,
        (Method::DELETE, V2Route::Upload { repo, id }) => uploads::cancel(&cx, &repo, &id).await?,
        (Method::GET, V2Route::Manifest { repo, reference }) => {
            manifests::get(&app, &reg, &repo, &reference, &headers, true).await?
        }
        (Method::HEAD, V2Route::Manifest { repo, reference }) => {
            manifests::get(&app, &reg, &repo, &reference, &headers, false).await?
        }
        (Method::PUT, V2Route::Manifest { repo, reference }) => {
            manifests::put(&app, &reg, &repo, &reference, &headers, body).await?
        }
        (Method::DELETE, V2Route::Manifest { repo, reference }) => {
            manifests::delete(&app, &reg, &repo, &reference).await?
        }
        (Method::GET, V2Route::TagsList { repo }) => tags::list(&app, &reg, &repo, &query).await?,
        (Method::GET, V2Route::Referrers { repo, digest }) => {
            referrers::list(&app, &reg, &repo, &digest, &query).await?
        }
        _ => return Err(OciError::Unsupported),
    };
    Ok(response.into_response())
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
