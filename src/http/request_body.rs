//! The request body at the edge, before any handler sees it and after the handler has answered. It is
//! paced (a client sending it below `http.body_min_bytes_per_sec` fails the request, see [`crate::pace`]),
//! and a handler that answered without reading it to its end (a 401 challenge, a 404, a 416) never leaves
//! the connection dying under a client that reuses it: a small remainder (a known length up to
//! [`MAX_DRAINED`]) is read and discarded after the answer, so the connection stays usable; any other
//! answer says `Connection: close`. Requests without a body pass straight through.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::app::AppState;
use crate::pace::{MinRate, Paced};

/// The largest unread remainder discarded to keep a connection open.
pub const MAX_DRAINED: u64 = 64 * 1024;

/// How long the client gets to send that remainder after the answer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn request_body(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let rate = MinRate::from_config(&app.config.http);
    let remainder = Arc::new(Mutex::new(Remainder::Unread(Body::empty())));
    let request = request.map(|body| {
        let body = match rate {
            Some(rate) => Body::new(Paced::new(body, rate)),
            None => body,
        };
        *lock(&remainder) = Remainder::Unread(body);
        Body::new(Shared(remainder.clone()))
    });
    let mut response = next.run(request).await;
    let rest = std::mem::replace(&mut *lock(&remainder), Remainder::Read);
    match rest {
        Remainder::Read => {}
        Remainder::Unread(rest) if rest.is_end_stream() => {}
        // Reading it would solicit a body nobody wants (the 100 Continue); the client may not send it.
        Remainder::Unread(_) if expects_continue => close(&mut response),
        Remainder::Unread(rest) if rest.size_hint().upper().is_some_and(|n| n <= MAX_DRAINED) => {
            tokio::spawn(drain(rest));
        }
        Remainder::Unread(_) | Remainder::Failed => close(&mut response),
    }
    response
}

fn close(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Reads and discards `rest`, for at most [`DRAIN_TIMEOUT`]: dropping it unread would close the connection.
async fn drain(rest: Body) {
    let mut rest = rest.into_data_stream();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async { while let Some(Ok(_)) = rest.next().await {} }).await;
}

/// What is left of a request body: the handler shares it with the middleware, which takes back what the
/// handler left (it may have dropped its end).
enum Remainder {
    Unread(Body),
    Read,
    Failed,
}

fn lock(remainder: &Mutex<Remainder>) -> std::sync::MutexGuard<'_, Remainder> {
    remainder.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handler's end of the body.
struct Shared(Arc<Mutex<Remainder>>);

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut remainder = lock(&self.0);
        let Remainder::Unread(body) = &mut *remainder else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => *remainder = Remainder::Read,
            Poll::Ready(Some(Err(_))) => *remainder = Remainder::Failed,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &*lock(&self.0) {
            Remainder::Unread(body) => body.is_end_stream(),
            Remainder::Read | Remainder::Failed => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &*lock(&self.0) {
            Remainder::Unread(body) => body.size_hint(),
            Remainder::Read | Remainder::Failed => SizeHint::with_exact(0),
        }
    }
}
