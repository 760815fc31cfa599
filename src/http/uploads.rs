//! Blob uploads: `POST` (start, monolithic, mount), `PATCH` (chunks), `PUT` (commit), `GET` (status),
//! `DELETE` (cancel).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::Response;

use super::Authorized;
use super::blobs::{docker_content_digest, with_headers};
use super::extract::{V2Query, content_length, header_str};
use crate::errors::{OciError, upload_range};
use crate::oci::digest::Digest;
use crate::oci::range::parse_content_range;
use crate::oci::reference::RepoName;
use crate::oci::route::UploadId;
use crate::ops::uploads::{self, Session};

fn upload_uuid() -> HeaderName {
    HeaderName::from_static("docker-upload-uuid")
}

fn location(repo: &RepoName, id: &UploadId) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

/// 202 with where the upload stands.
fn in_progress(status: StatusCode, repo: &RepoName, id: &UploadId, offset: u64) -> Response {
    with_headers(
        status,
        vec![
            (header::LOCATION, location(repo, id)),
            (header::RANGE, upload_range(offset)),
            (upload_uuid(), id.to_string()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

/// 201 for a blob now in the repository.
fn created(repo: &RepoName, digest: &Digest) -> Response {
    with_headers(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{repo}/blobs/{digest}")),
            (docker_content_digest(), digest.to_string()),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

fn required_digest(query: &V2Query) -> Result<Digest, OciError> {
    query
        .digest
        .as_deref()
        .ok_or_else(|| OciError::DigestInvalid("the digest query parameter is required".into()))?
        .parse()
        .map_err(OciError::from)
}

pub async fn start(
    cx: &Authorized<'_>,
    repo: &RepoName,
    query: &V2Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    if let Some(mount) = &query.mount {
        let digest: Digest = mount.parse()?;
        let from = query.from.as_deref().and_then(|f| f.parse::<RepoName>().ok());
        // A mount needs pull on the source; without it the client just uploads, learning nothing.
        if let Some(from) = from.filter(|from| cx.caller.allows("repository", from.as_str(), "pull"))
            && uploads::mount(&cx.app.db, cx.reg, repo, &from, &digest).await?
        {
            return Ok(created(repo, &digest));
        }
    }
    let session = uploads::start(&cx.app.db, cx.reg, repo, &cx.caller.sub).await?;
    let Some(digest) = query.digest.as_deref() else {
        return Ok(in_progress(StatusCode::ACCEPTED, repo, &session.id, 0));
    };
    let digest: Digest = match digest.parse() {
        Ok(d) => d,
        Err(e) => {
            uploads::cancel(&cx.app.db, cx.reg, &session).await?;
            return Err(e.into());
        }
    };
    let session = receive(cx, repo, session, headers, body).await?;
    uploads::commit(&cx.app.db, cx.reg, &session, &digest).await?;
    Ok(created(repo, &digest))
}

/// Streams a request body into the session as its next chunk and returns the session as it now stands.
async fn receive(
    cx: &Authorized<'_>,
    repo: &RepoName,
    session: Session,
    headers: &HeaderMap,
    body: Body,
) -> Result<Session, OciError> {
    let declared = header_str(headers, &header::CONTENT_RANGE)
        .map(parse_content_range)
        .transpose()?;
    let length = content_length(headers)?;
    if declared.is_none() && length == Some(0) {
        return Ok(session);
    }
    let at = location(repo, &session.id);
    uploads::receive_chunk(
        &cx.app.db,
        cx.reg,
        session,
        &at,
        declared,
        length,
        body.into_data_stream(),
    )
    .await
}

pub async fn patch(
    cx: &Authorized<'_>,
    repo: &RepoName,
    id: &UploadId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let session = uploads::find(&cx.app.db, cx.reg, repo, id, &cx.caller.sub).await?;
    let session = receive(cx, repo, session, headers, body).await?;
    Ok(in_progress(StatusCode::ACCEPTED, repo, id, session.offset()))
}

pub async fn put(
    cx: &Authorized<'_>,
    repo: &RepoName,
    id: &UploadId,
    query: &V2Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let session = uploads::find(&cx.app.db, cx.reg, repo, id, &cx.caller.sub).await?;
    let digest = required_digest(query)?;
    let session = receive(cx, repo, session, headers, body).await?;
    uploads::commit(&cx.app.db, cx.reg, &session, &digest).await?;
    Ok(created(repo, &digest))
}

pub async fn status(cx: &Authorized<'_>, repo: &RepoName, id: &UploadId) -> Result<Response, OciError> {
    let session = uploads::find(&cx.app.db, cx.reg, repo, id, &cx.caller.sub).await?;
    Ok(in_progress(StatusCode::NO_CONTENT, repo, id, session.offset()))
}

pub async fn cancel(cx: &Authorized<'_>, repo: &RepoName, id: &UploadId) -> Result<Response, OciError> {
    let session = uploads::find(&cx.app.db, cx.reg, repo, id, &cx.caller.sub).await?;
    uploads::cancel(&cx.app.db, cx.reg, &session).await?;
    Ok(with_headers(StatusCode::NO_CONTENT, vec![], Body::empty()))
}
