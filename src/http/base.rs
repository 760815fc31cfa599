//! `GET /v2/`: the API version check clients start with; answers 200 only to a valid token, so a client
//! learns here where to log in. A login server name that names no registry is challenged too: clients
//! then ask the token endpoint, whose answer says what is wrong (docker shows only the status of `/v2/`).

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
    let reg = match super::registry(&app, &headers).await {
        Err(OciError::RegistryUnknown(_)) => {
            let challenge = edge_auth::challenge_without_registry(&app, &headers);
            return Err(OciError::Unauthorized(Box::new(challenge)));
        }
        found => found?,
    };
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
