//! `GET /v2/<name>/referrers/<digest>`: the manifests whose `subject` is a digest, as an OCI index.

use axum::body::Body;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::Authorized;
use super::blobs::with_headers;
use super::extract::V2Query;
use crate::errors::OciError;
use crate::oci::digest::Digest;
use crate::oci::manifest::OCI_INDEX;
use crate::oci::reference::RepoName;
use crate::ops::listings;

pub async fn list(
    cx: &Authorized<'_>,
    repo: &RepoName,
    subject: &Digest,
    query: &V2Query,
) -> Result<Response, OciError> {
    let filter = query.artifact_type.as_deref().filter(|t| !t.is_empty());
    let rows = listings::referrers(&cx.app.db, cx.reg, repo, subject, filter).await?;
    let manifests: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut descriptor = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(t) = r.artifact_type {
                descriptor["artifactType"] = json!(t);
            }
            if let Some(a) = r.annotations.and_then(|a| serde_json::from_str::<Value>(&a).ok()) {
                descriptor["annotations"] = a;
            }
            descriptor
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut headers = vec![(header::CONTENT_TYPE, OCI_INDEX.to_string())];
    if filter.is_some() {
        headers.push((HeaderName::from_static("oci-filters-applied"), "artifactType".into()));
    }
    Ok(with_headers(StatusCode::OK, headers, Body::from(index.to_string())))
}
