//! One structured log line and the metrics of every request, recorded when its response body has been
//! sent: request id, registry, repository, operation, status, bytes in and out, duration, principal, source
//! client and user agent. Handlers describe the request by putting a [`RequestInfo`] in the response's
//! extensions; the management API's caller extractor notes the caller in a [`CallerNote`]. Every request
//! runs in a `request` span carrying its id, so whatever is logged while serving it names the request, and
//! the id is answered in `X-Request-Id` (a proxy's own id is kept when it is a short plain token).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::body::Guarded;
use super::extract::header_str;
use crate::app::AppState;
use crate::telemetry::{Metrics, source_client_label, user_agent_label};

/// What the handler knows of a request, for its log line and metrics.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub registry: Option<String>,
    pub repository: Option<String>,
    pub operation: &'static str,
    /// The token subject, `operator` or a principal's appId.
    pub principal: Option<String>,
}

impl RequestInfo {
    /// A request of `operation` on `registry` by `principal`.
    pub fn new(operation: &'static str, registry: &str, principal: &str) -> RequestInfo {
        RequestInfo {
            registry: Some(registry.to_owned()),
            repository: None,
            operation,
            principal: Some(principal.to_owned()),
        }
    }

    /// `response`, described by this info for its log line.
    pub fn attach(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// Who called, as an extractor found it: for the log line of requests whose response carries no
/// [`RequestInfo`] (the management API).
#[derive(Clone, Default)]
pub struct CallerNote(Arc<OnceLock<String>>);

impl CallerNote {
    /// Notes `principal` (`operator` or an identity's subject) on the request whose extensions hold the note.
    pub fn note(extensions: &axum::http::Extensions, principal: String) {
        if let Some(CallerNote(slot)) = extensions.get::<CallerNote>() {
            let _ = slot.set(principal);
        }
    }
}

/// Longest header value copied into a log line.
const MAX_LOGGED_HEADER: usize = 200;
/// The header a request's id is answered in (and taken from, when a proxy set a usable one).
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the one a proxy sent when it is 1 to 64 characters of letters, digits and `._:-`,
/// else a new random one.
fn request_id(headers: &HeaderMap) -> String {
    let usable = |id: &str| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    };
    match header_str(headers, &REQUEST_ID) {
        Some(id) if usable(id) => id.to_owned(),
        // The thread-local generator: no system call per request, unlike a v4 UUID.
        _ => format!("{:032x}", rand::random::<u128>()),
    }
}

pub async fn observe(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client = ClientInfo::of(request.headers());
    let id = request_id(request.headers());
    let caller = CallerNote::default();
    request.extensions_mut().insert(caller.clone());
    let received = Arc::new(AtomicU64::new(0));
    let request = request.map(|body| Guarded::<()>::wrap(body, None, Some(received.clone())));
    let span = tracing::info_span!("request", id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let mut info = response.extensions().get::<RequestInfo>().cloned().unwrap_or_default();
    if info.operation.is_empty() {
        info.operation = operation_of_path(&path);
    }
    if info.principal.is_none() {
        info.principal = caller.0.get().cloned();
    }
    let sent = Arc::new(AtomicU64::new(0));
    let record = Record {
        metrics: app.metrics.clone(),
        id,
        started,
        method: method.to_string(),
        status: response.status().as_u16(),
        info,
        client,
        received,
        sent: sent.clone(),
    };
    response.map(|body| Guarded::wrap(body, Some(record), Some(sent)))
}

/// Operations outside the data plane, by path.
fn operation_of_path(path: &str) -> &'static str {
    match path {
        "/oauth2/token" => "token",
        "/metrics" => "metrics",
        "/healthz" | "/readyz" => "health",
        p if p.starts_with("/api/") => "api",
        p if p.starts_with("/v2") => "v2",
        _ => "other",
    }
}

struct ClientInfo {
    source_client: Option<String>,
    user_agent: Option<String>,
}

impl ClientInfo {
    fn of(headers: &HeaderMap) -> ClientInfo {
        let bounded = |v: &str| v.chars().take(MAX_LOGGED_HEADER).collect::<String>();
        ClientInfo {
            source_client: header_str(headers, &header::HeaderName::from_static("x-meta-source-client")).map(bounded),
            user_agent: header_str(headers, &header::USER_AGENT).map(bounded),
        }
    }
}

/// Logged and counted when dropped: after the last byte, or when the client goes away.
struct Record {
    metrics: Arc<Metrics>,
    id: String,
    started: Instant,
    method: String,
    status: u16,
    info: RequestInfo,
    client: ClientInfo,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

impl Drop for Record {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let (received, sent) = (self.received.load(Ordering::Relaxed), self.sent.load(Ordering::Relaxed));
        let registry = self.info.registry.as_deref().unwrap_or("-");
        let status = self.status.to_string();
        let source_label = source_client_label(self.client.source_client.as_deref());
        let agent_label = user_agent_label(self.client.user_agent.as_deref());
        let m = &self.metrics;
        m.requests
            .with_label_values(&[registry, self.info.operation, &status])
            .inc();
        m.latency
            .with_label_values(&[registry, self.info.operation, &status])
            .observe(elapsed.as_secs_f64());
        m.bytes_received.with_label_values(&[registry]).inc_by(received);
        m.bytes_sent.with_label_values(&[registry]).inc_by(sent);
        m.clients.with_label_values(&[source_label, agent_label]).inc();
        tracing::info!(
            target: "berth::request",
            request_id = %self.id,
            method = %self.method,
            registry,
            repository = self.info.repository.as_deref().unwrap_or("-"),
            operation = self.info.operation,
            status = self.status,
            bytes_in = received,
            bytes_out = sent,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            principal = self.info.principal.as_deref().unwrap_or("-"),
            source_client = self.client.source_client.as_deref().unwrap_or("-"),
            source_client_label = source_label,
            user_agent = self.client.user_agent.as_deref().unwrap_or("-"),
            "request"
        );
    }
}
