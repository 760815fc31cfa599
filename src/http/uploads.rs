//! Blob uploads: `POST` (start, monolithic, mount), `PATCH` (chunks), `PUT` (commit), `GET` (status),
//! `DELETE` (cancel).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::Authorized;
use super::blobs::{docker_content_digest, with_headers};
use super::extract::{V2Query, content_length, header_str};
use crate::errors::{OciError, upload_range};
use crate::oci::digest::Digest;
use crate::oci::range::{ByteRange, parse_content_range};
use crate::oci::reference::RepoName;
use crate::oci::route::UploadId;
use crate::ops::quota::Adding;
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
    let digest = query.digest.as_deref().map(str::parse::<Digest>).transpose()?;
    let Some(digest) = digest else {
        let warning = admit(cx, Adding::Nothing).await?;
        let session = uploads::start(&cx.app.db, cx.reg, repo, &cx.caller.sub).await?;
        return Ok(with_warning(
            in_progress(StatusCode::ACCEPTED, repo, &session.id, 0),
            warning,
        ));
    };
    let incoming = Incoming::of(headers)?;
    let session = uploads::start(&cx.app.db, cx.reg, repo, &cx.caller.sub).await?;
    finish(cx, repo, session, &digest, incoming, body).await
}

/// What a request body is said to be: its `Content-Range` and its `Content-Length`.
#[derive(Clone, Copy)]
struct Incoming {
    declared: Option<ByteRange>,
    length: Option<u64>,
}

impl Incoming {
    fn of(headers: &HeaderMap) -> Result<Self, OciError> {
        Ok(Incoming {
            declared: header_str(headers, &header::CONTENT_RANGE)
                .map(parse_content_range)
                .transpose()?,
            length: content_length(headers)?,
        })
    }

    /// How many bytes the body brings, when the client said.
    fn length(self) -> Option<u64> {
        self.declared.map(|r| r.len()).or(self.length)
    }
}

/// Whether the registry's storage quota admits `adding`; the warning to show when it nears the quota.
async fn admit(cx: &Authorized<'_>, adding: Adding<'_>) -> Result<Option<String>, OciError> {
    cx.app.quotas.admit(&cx.app.db, cx.reg, adding).await
}

/// `response` with the OCI `Warning` header (code 299) when there is a warning.
fn with_warning(mut response: Response, warning: Option<String>) -> Response {
    if let Some(value) = warning.and_then(|w| HeaderValue::from_str(&format!("299 - \"{w}\"")).ok()) {
        response.headers_mut().insert(header::WARNING, value);
    }
    response
}

/// Streams a request body into the session as its next chunk and returns the session as it now stands.
async fn receive(
    cx: &Authorized<'_>,
    repo: &RepoName,
    session: Session,
    incoming: Incoming,
    body: Body,
) -> Result<Session, OciError> {
    if incoming.declared.is_none() && incoming.length == Some(0) {
        return Ok(session);
    }
    let at = location(repo, &session.id);
    uploads::receive_chunk(
        &cx.app.db,
        cx.reg,
        session,
        &at,
        incoming.declared,
        incoming.length,
        body.into_data_stream(),
    )
    .await
}

/// Receives the upload's last body and commits it as `digest`, within the registry's quota: checked before
/// the body moves when its length is known, else once it is staged. A refusal discards the upload.
async fn finish(
    cx: &Authorized<'_>,
    repo: &RepoName,
    session: Session,
    digest: &Digest,
    incoming: Incoming,
    body: Body,
) -> Result<Response, OciError> {
    let admitted = match incoming.length() {
        Some(length) => Some(admit_blob(cx, &session, digest, session.offset() + length).await?),
        None => None,
    };
    let session = receive(cx, repo, session, incoming, body).await?;
    let warning = match admitted {
        Some(warning) => warning,
        None => admit_blob(cx, &session, digest, session.offset()).await?,
    };
    uploads::commit(&cx.app.db, cx.reg, &session, digest).await?;
    Ok(with_warning(created(repo, digest), warning))
}

/// Whether the quota admits the session's blob `digest` of `size` bytes (its warning, if any); a refusal
/// cancels the session first.
async fn admit_blob(
    cx: &Authorized<'_>,
    session: &Session,
    digest: &Digest,
    size: u64,
) -> Result<Option<String>, OciError> {
    match admit(cx, Adding::Blob(digest, size)).await {
        Ok(warning) => Ok(warning),
        Err(refused) => {
            uploads::cancel(&cx.app.db, cx.reg, session).await?;
            Err(refused)
        }
    }
}

pub async fn patch(
    cx: &Authorized<'_>,
    repo: &RepoName,
    id: &UploadId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let session = uploads::find(&cx.app.db, cx.reg, repo, id, &cx.caller.sub).await?;
    let incoming = Incoming::of(headers)?;
    let staged = session.offset() + incoming.length().unwrap_or(0);
    let warning = admit(cx, Adding::Staged(staged)).await?;
    let session = receive(cx, repo, session, incoming, body).await?;
    Ok(with_warning(
        in_progress(StatusCode::ACCEPTED, repo, id, session.offset()),
        warning,
    ))
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
    finish(cx, repo, session, &digest, Incoming::of(headers)?, body).await
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
