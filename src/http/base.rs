//! `GET /v2/`: the API version check clients start with; answers 200 only to a valid token, so a client
//! learns here where to log in.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::edge_auth;
use super::observe::RequestInfo;
use crate::app::AppState;
use crate::auth;
use crate::errors::OciError;

pub async fn get(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, OciError> {
    let reg = super::registry(&app, &headers).await?;
    let challenge = edge_auth::challenge(&app, &headers, &reg, Vec::new());
    let caller = auth::access::authorize(
        &app.auth,
        &app.db,
        &reg.row,
        edge_auth::bearer(&headers),
        &[],
        challenge,
    )
    .await?;
    Ok(RequestInfo::new("base", &reg.row.name, &caller.sub).attach(Json(serde_json::json!({})).into_response()))
}
