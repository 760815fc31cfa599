//! The per-source half of the failed-login throttle, around every endpoint that checks credentials
//! (`/oauth2/token`, `/api`, `/metrics`, the portal's sign-in): a source that spent its budget gets 429
//! before any check runs, and a 401 to a request that offered credentials spends one failure. The
//! per-identity half runs where identities are checked (`auth::authenticate*`), with the source made known
//! to it here.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::throttle;
use crate::errors::OciError;

pub async fn throttle_failed_logins(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(source) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
    else {
        return next.run(request).await;
    };
    let limiter = &app.auth.throttle;
    if let Some(retry_after_secs) = limiter.source_wait(source) {
        return OciError::TooManyRequests {
            retry_after_secs,
            reason: "too many failed logins from this address".into(),
        }
        .into_response();
    }
    // A token POST always carries a grant; elsewhere credentials come in the Authorization header.
    let offered_credentials = request.method() == Method::POST || request.headers().contains_key(header::AUTHORIZATION);
    let response = throttle::from_source(source, next.run(request)).await;
    if offered_credentials && response.status() == StatusCode::UNAUTHORIZED {
        limiter.source_failed(source);
    }
    response
}
