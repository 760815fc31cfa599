//! `GET /v2/`: the API version check clients start with.

use axum::Json;
use axum::response::IntoResponse;

pub async fn get() -> impl IntoResponse {
    Json(serde_json::json!({}))
}
