//! Operations endpoints: `/metrics` (Prometheus, operator token required: it names tenants), `/healthz`
//! (the process answers) and `/readyz` (the database and the data folder are reachable, and the data
//! folder has room).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api::ApiCaller;
use crate::app::AppState;
use crate::errors::OciError;
use crate::ops::{gc, uploads, usage};

pub async fn metrics(State(app): State<AppState>, caller: ApiCaller) -> Result<Response, OciError> {
    caller.require_operator()?;
    app.metrics.upload_sessions.reset();
    for (registry, count) in uploads::count_by_registry(&app.db).await? {
        app.metrics.upload_sessions.with_label_values(&[&registry]).set(count);
    }
    app.metrics.stored_bytes.reset();
    app.metrics.unreferenced_bytes.reset();
    for (registry, stored, unreferenced) in usage::bytes_by_registry(&app.db).await? {
        app.metrics.stored_bytes.with_label_values(&[&registry]).set(stored);
        app.metrics
            .unreferenced_bytes
            .with_label_values(&[&registry])
            .set(unreferenced);
    }
    app.metrics.gc_queued_bytes.reset();
    for (registry, _, bytes) in gc::queued(&app.db).await? {
        app.metrics.gc_queued_bytes.with_label_values(&[&registry]).set(bytes);
    }
    let text = app.metrics.render().map_err(OciError::Internal)?;
    Ok(([("content-type", "text/plain; version=0.0.4")], text).into_response())
}

pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub async fn readyz(State(app): State<AppState>) -> Response {
    let database = app.db.ping().await.map_err(|e| e.to_string());
    let storage = app.stores.probe().await.map_err(|e| e.to_string());
    let ready = database.is_ok() && storage.is_ok();
    if !ready {
        tracing::warn!(database = ?database.as_ref().err(), storage = ?storage.as_ref().err(), "not ready");
    }
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": database.err().unwrap_or_else(|| "ok".into()),
        "storage": storage.err().unwrap_or_else(|| "ok".into()),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
