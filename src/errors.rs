//! The one error type of the data plane: every failure becomes an OCI error code, an HTTP status and the
//! spec's JSON envelope `{"errors":[{"code","message","detail"}]}`. Code and status are decided together,
//! in one table (`OciError::code_and_status`), never apart. It depends on the grammar alone: each
//! module whose failures reach clients (storage, metadata, auth) maps its own error type here.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oci::GrammarError;
use crate::oci::scope::Access;

/// An error answered in the distribution spec's format.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("blob unknown to registry")]
    BlobUnknown,
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    #[error("provided digest did not match uploaded content")]
    DigestInvalid(String),
    #[error("manifest references a blob unknown to the repository: {0}")]
    ManifestBlobUnknown(String),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest is larger than the {0} byte limit")]
    ManifestTooLarge(usize),
    #[error("manifest unknown")]
    ManifestUnknown(String),
    #[error("invalid repository name")]
    NameInvalid(String),
    #[error("repository name not known to registry")]
    NameUnknown(String),
    /// A login server name under the registry domain that names no registry.
    #[error("{0}")]
    RegistryUnknown(String),
    #[error("provided length did not match content length")]
    SizeInvalid(String),
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// A chunk that does not start where the upload stands; answered with the upload's current `Range`.
    #[error("chunk out of order")]
    UploadRangeInvalid { location: String, offset: u64 },
    #[error("invalid pagination parameter: {0}")]
    PaginationInvalid(String),
    /// No usable credentials: 401 with a `WWW-Authenticate` challenge.
    #[error("authentication required")]
    Unauthorized(Box<Challenge>),
    /// Bad credentials at the token or management endpoints: 401 without a bearer challenge.
    #[error("{0}")]
    BadCredentials(String),
    #[error("requested access to the resource is denied")]
    Denied,
    /// Denied, with the reason the caller is told.
    #[error("requested access to the resource is denied: {0}")]
    Forbidden(String),
    /// A data-plane request its token does not allow: the challenge names the access with
    /// `error="insufficient_scope"`, the detail lists it (docker retries a bare DENIED without detail), and
    /// the message says why: the caller's roles never allow it, or a new token would.
    #[error("requested access to the resource is denied: {1}")]
    AccessDenied(Box<Challenge>, String),
    #[error("the operation is unsupported")]
    Unsupported,
    /// A limit was reached; `reason` names it (docker shows it once it stops retrying).
    #[error("too many requests: {reason}")]
    TooManyRequests { retry_after_secs: u64, reason: String },
    /// Management API: a request that is not valid (a field's value, a missing field).
    #[error("{0}")]
    Invalid(String),
    /// Management API: the thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Management API: the thing to create exists already, or the state forbids the change.
    #[error("{0}")]
    Conflict(String),
    #[error("service unavailable")]
    Unavailable(String),
    /// A push that would take its registry past its storage quota. Answered as DENIED (docker does not
    /// retry it, and shows the message) with 413, not an authorization-looking 403.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A write or read a lock (a repository's, manifest's or tag's changeable attributes) refuses; the
    /// message names the lock.
    #[error("{0}")]
    Locked(String),
    /// The store has no room left (a full disk or quota): the client may retry later, nothing was lost.
    #[error("insufficient storage: the registry's storage is full")]
    InsufficientStorage,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl OciError {
    /// The spec's error code and the HTTP status that goes with it.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        use OciError::*;
        match self {
            BlobUnknown => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
            BlobUploadInvalid(_) => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST),
            BlobUploadUnknown => ("BLOB_UPLOAD_UNKNOWN", StatusCode::NOT_FOUND),
            DigestInvalid(_) => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
            ManifestBlobUnknown(_) => ("MANIFEST_BLOB_UNKNOWN", StatusCode::NOT_FOUND),
            ManifestInvalid(_) => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
            ManifestTooLarge(_) => ("MANIFEST_INVALID", StatusCode::PAYLOAD_TOO_LARGE),
            ManifestUnknown(_) => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
            NameInvalid(_) => ("NAME_INVALID", StatusCode::BAD_REQUEST),
            NameUnknown(_) | RegistryUnknown(_) => ("NAME_UNKNOWN", StatusCode::NOT_FOUND),
            SizeInvalid(_) => ("SIZE_INVALID", StatusCode::BAD_REQUEST),
            RangeNotSatisfiable { .. } => ("BLOB_UNKNOWN", StatusCode::RANGE_NOT_SATISFIABLE),
            UploadRangeInvalid { .. } => ("BLOB_UPLOAD_INVALID", StatusCode::RANGE_NOT_SATISFIABLE),
            PaginationInvalid(_) => ("PAGINATION_NUMBER_INVALID", StatusCode::BAD_REQUEST),
            Unauthorized(_) | BadCredentials(_) => ("UNAUTHORIZED", StatusCode::UNAUTHORIZED),
            Denied | Forbidden(_) | AccessDenied(..) | Locked(_) => ("DENIED", StatusCode::FORBIDDEN),
            Unsupported => ("UNSUPPORTED", StatusCode::METHOD_NOT_ALLOWED),
            TooManyRequests { .. } => ("TOOMANYREQUESTS", StatusCode::TOO_MANY_REQUESTS),
            Invalid(_) => ("INVALID", StatusCode::BAD_REQUEST),
            NotFound(_) => ("NOT_FOUND", StatusCode::NOT_FOUND),
            Conflict(_) => ("CONFLICT", StatusCode::CONFLICT),
            Unavailable(_) => ("UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE),
            QuotaExceeded(_) => ("DENIED", StatusCode::PAYLOAD_TOO_LARGE),
            InsufficientStorage => ("UNAVAILABLE", StatusCode::INSUFFICIENT_STORAGE),
            Internal(_) => ("UNKNOWN", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The `detail` member: what exactly was wrong, for the client to show. Internal causes stay in the log.
    fn detail(&self) -> serde_json::Value {
        use OciError::*;
        match self {
            BlobUploadInvalid(d)
            | DigestInvalid(d)
            | ManifestBlobUnknown(d)
            | ManifestInvalid(d)
            | ManifestUnknown(d)
            | NameInvalid(d)
            | NameUnknown(d)
            | SizeInvalid(d)
            | PaginationInvalid(d)
            | Forbidden(d)
            | Locked(d)
            | Unavailable(d) => json!(d),
            RangeNotSatisfiable { size } => json!({ "size": size }),
            AccessDenied(challenge, _) => challenge
                .scope
                .iter()
                .flat_map(|a| {
                    a.actions
                        .iter()
                        .map(|action| json!({ "Type": a.kind, "Name": a.name, "Action": action }))
                })
                .collect(),
            UploadRangeInvalid { offset, .. } => json!({ "offset": offset }),
            ManifestTooLarge(limit) => json!({ "limit": limit }),
            _ => serde_json::Value::Null,
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        match self {
            OciError::RangeNotSatisfiable { size } => {
                insert(&mut headers, header::CONTENT_RANGE, format!("bytes */{size}"));
            }
            OciError::UploadRangeInvalid { location, offset } => {
                insert(&mut headers, header::LOCATION, location.clone());
                insert(&mut headers, header::RANGE, upload_range(*offset));
            }
            OciError::Unauthorized(challenge) | OciError::AccessDenied(challenge, _) => {
                insert(&mut headers, header::WWW_AUTHENTICATE, challenge.header_value());
            }
            OciError::BadCredentials(_) => {
                insert(
                    &mut headers,
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"berth\"".to_string(),
                );
            }
            OciError::TooManyRequests { retry_after_secs, .. } => {
                insert(&mut headers, header::RETRY_AFTER, retry_after_secs.to_string());
            }
            _ => {}
        }
        headers
    }
}

/// The `Range` header value of an upload that has received `offset` bytes (`0-0` when empty, as Distribution).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        if let OciError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let body = json!({ "errors": [{ "code": code, "message": self.to_string(), "detail": self.detail() }] });
        (status, self.headers(), axum::Json(body)).into_response()
    }
}

impl From<GrammarError> for OciError {
    /// The spec's code for each refusal of the grammar.
    fn from(e: GrammarError) -> Self {
        match e {
            GrammarError::Digest(m) => OciError::DigestInvalid(m),
            GrammarError::Name(m) => OciError::NameInvalid(m),
            GrammarError::Manifest(m) => OciError::ManifestInvalid(m),
            GrammarError::ManifestTooLarge(limit) => OciError::ManifestTooLarge(limit),
            GrammarError::NoSuchManifest(m) => OciError::ManifestUnknown(m),
            GrammarError::NoSuchUpload => OciError::BlobUploadUnknown,
            GrammarError::RangeNotSatisfiable { size } => OciError::RangeNotSatisfiable { size },
            GrammarError::ContentRange(m) => OciError::BlobUploadInvalid(m),
        }
    }
}

/// Where and how to get a token: the parts of a `WWW-Authenticate: Bearer` challenge.
#[derive(Debug)]
pub struct Challenge {
    pub realm: String,
    pub service: String,
    /// Scopes to ask for (absent for `/v2/`).
    pub scope: Vec<Access>,
    pub insufficient: bool,
    pub invalid_token: bool,
}

impl Challenge {
    pub fn header_value(&self) -> String {
        let mut value = format!("Bearer realm={},service={}", quoted(&self.realm), quoted(&self.service));
        if !self.scope.is_empty() {
            let scopes: Vec<String> = self.scope.iter().map(Access::to_string).collect();
            value.push_str(&format!(",scope={}", quoted(&scopes.join(" "))));
        }
        if self.insufficient {
            value.push_str(",error=\"insufficient_scope\"");
        } else if self.invalid_token {
            value.push_str(",error=\"invalid_token\"");
        }
        value
    }
}

/// `text` as an HTTP quoted-string: quotes and backslashes escaped, so no value can end its parameter
/// early and add another.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_follow_the_spec_table() {
        let table: &[(OciError, &str, u16)] = &[
            (OciError::BlobUnknown, "BLOB_UNKNOWN", 404),
            (OciError::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404),
            (OciError::DigestInvalid("x".into()), "DIGEST_INVALID", 400),
            (OciError::ManifestBlobUnknown("x".into()), "MANIFEST_BLOB_UNKNOWN", 404),
            (OciError::ManifestInvalid("x".into()), "MANIFEST_INVALID", 400),
            (OciError::ManifestUnknown("x".into()), "MANIFEST_UNKNOWN", 404),
            (OciError::NameInvalid("x".into()), "NAME_INVALID", 400),
            (OciError::NameUnknown("x".into()), "NAME_UNKNOWN", 404),
            (OciError::RegistryUnknown("x".into()), "NAME_UNKNOWN", 404),
            (OciError::SizeInvalid("x".into()), "SIZE_INVALID", 400),
            (OciError::BadCredentials("x".into()), "UNAUTHORIZED", 401),
            (OciError::Denied, "DENIED", 403),
            (OciError::Forbidden("x".into()), "DENIED", 403),
            (OciError::InsufficientStorage, "UNAVAILABLE", 507),
            (OciError::QuotaExceeded("x".into()), "DENIED", 413),
            (OciError::Unsupported, "UNSUPPORTED", 405),
            (
                OciError::TooManyRequests {
                    retry_after_secs: 1,
                    reason: "x".into(),
                },
                "TOOMANYREQUESTS",
                429,
            ),
        ];
        for (error, code, status) in table {
            assert_eq!(
                error.code_and_status(),
                (*code, StatusCode::from_u16(*status).unwrap()),
                "{error:?}"
            );
        }
    }

    #[test]
    fn every_refusal_of_the_grammar_is_the_client_s_with_its_spec_code() {
        let table = [
            (GrammarError::Digest("x".into()), "DIGEST_INVALID", 400),
            (GrammarError::Name("x".into()), "NAME_INVALID", 400),
            (GrammarError::Manifest("x".into()), "MANIFEST_INVALID", 400),
            (GrammarError::ManifestTooLarge(1), "MANIFEST_INVALID", 413),
            (GrammarError::NoSuchManifest("x".into()), "MANIFEST_UNKNOWN", 404),
            (GrammarError::NoSuchUpload, "BLOB_UPLOAD_UNKNOWN", 404),
            (GrammarError::RangeNotSatisfiable { size: 1 }, "BLOB_UNKNOWN", 416),
            (GrammarError::ContentRange("x".into()), "BLOB_UPLOAD_INVALID", 400),
        ];
        for (refusal, code, status) in table {
            let message = refusal.to_string();
            let error = OciError::from(refusal);
            assert_eq!(error.code_and_status(), (code, StatusCode::from_u16(status).unwrap()));
            assert!(
                error.to_string().contains(&message) || error.detail().to_string().contains(&message),
                "{error:?} keeps the grammar's message {message:?}"
            );
        }
    }

    #[test]
    fn upload_range_of_an_empty_upload_is_zero_zero() {
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(1), "0-0");
        assert_eq!(upload_range(100), "0-99");
    }

    #[test]
    fn challenges_are_quoted_and_carry_scope_and_error() {
        let challenge = Challenge {
            realm: "https://r.example/oauth2/token".into(),
            service: "r.example".into(),
            scope: vec![Access::repository("a/b", &["pull", "push"])],
            insufficient: true,
            invalid_token: false,
        };
        assert_eq!(
            challenge.header_value(),
            r#"Bearer realm="https://r.example/oauth2/token",service="r.example",scope="repository:a/b:pull,push",error="insufficient_scope""#
        );
        let base = Challenge {
            scope: vec![],
            insufficient: false,
            ..challenge
        };
        assert_eq!(
            base.header_value(),
            r#"Bearer realm="https://r.example/oauth2/token",service="r.example""#
        );
        let injected = Challenge {
            realm: r#"http://x",error="evil\/oauth2/token"#.into(),
            ..base
        };
        assert_eq!(
            injected.header_value(),
            r#"Bearer realm="http://x\",error=\"evil\\/oauth2/token",service="r.example""#
        );
    }
}
