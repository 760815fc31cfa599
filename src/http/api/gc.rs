//! `/api/registries/{name}/gc` (run a collection, or see what one would take) and `/api/gc` with
//! `/api/registries/{name}/gc` (GET): what the collections of every registry, or of one, did.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::registries::managed;
use super::{ApiCaller, ApiPath, ApiQuery, rfc3339};
use crate::app::AppState;
use crate::errors::OciError;
use crate::ops::{gc, registries};

/// How long a requested collection waits for one already running (scheduled, or on another node).
const LEASE_WAIT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunQuery {
    #[serde(default)]
    dry_run: bool,
}

/// Collects one registry now, sweeping its store too; with `dryRun=true`, reports what a collection
/// would take and changes nothing.
pub async fn run(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let collector = app.collector();
    if q.dry_run {
        return Ok(Json(collector.dry_run(&reg).await?).into_response());
    }
    let lease = collector.lease_within(LEASE_WAIT).await?;
    let report = collector.collect(&lease, &reg, true).await;
    collector.release(lease).await;
    Ok(Json(report?).into_response())
}

/// What the collections of one registry did.
pub async fn show(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, OciError> {
    let reg = managed(&app, &caller, &name).await?;
    let views = status_views(&app, &[reg.name]).await?;
    Ok(Json(views.into_iter().next().unwrap_or(Value::Null)).into_response())
}

/// What the collections of every registry did (operator only).
pub async fn list(State(app): State<AppState>, caller: ApiCaller) -> Result<Response, OciError> {
    caller.require_operator()?;
    let names: Vec<String> = registries::list(&app.db).await?.into_iter().map(|r| r.name).collect();
    Ok(Json(json!({ "value": status_views(&app, &names).await? })).into_response())
}

/// The status of each registry of `names`: its last collection, totals, and what is queued.
async fn status_views(app: &AppState, names: &[String]) -> Result<Vec<Value>, OciError> {
    let runs = gc::runs(&app.db).await?;
    let queued = gc::queued(&app.db).await?;
    let views = names.iter().map(|name| {
        let run = runs.iter().find(|r| &r.registry == name);
        let (blobs, bytes) = queued
            .iter()
            .find(|(registry, ..)| registry == name)
            .map_or((0, 0), |(_, blobs, bytes)| (*blobs, *bytes));
        json!({
            "registry": name,
            "lastRunStartedAt": run.map(|r| rfc3339(r.started_at)),
            "lastRunFinishedAt": run.map(|r| rfc3339(r.finished_at)),
            "linksRemoved": run.map_or(0, |r| r.links),
            "blobsRemoved": run.map_or(0, |r| r.blobs),
            "bytesReclaimed": run.map_or(0, |r| r.bytes),
            "objectsSwept": run.map_or(0, |r| r.swept_objects),
            "lastSweptAt": run.filter(|r| r.swept_at > 0).map(|r| rfc3339(r.swept_at)),
            "totalBlobsRemoved": run.map_or(0, |r| r.total_blobs),
            "totalBytesReclaimed": run.map_or(0, |r| r.total_bytes),
            "queuedBlobs": blobs,
            "queuedBytes": bytes,
        })
    });
    Ok(views.collect())
}
