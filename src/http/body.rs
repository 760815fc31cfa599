//! A body wrapper that counts the bytes going through it and holds a guard (a concurrency permit, a
//! request's log record) until the last byte has passed or the body is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

pub struct Guarded<G> {
    inner: Body,
    guard: Option<G>,
    counted: Option<Arc<AtomicU64>>,
}

impl<G: Send + Unpin + 'static> Guarded<G> {
    /// Wraps `inner`, dropping `guard` at its end and adding the bytes seen to `counted`.
    pub fn wrap(inner: Body, guard: Option<G>, counted: Option<Arc<AtomicU64>>) -> Body {
        Body::new(Guarded { inner, guard, counted })
    }
}

impl<G: Send + Unpin + 'static> http_body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(counted)) = (frame.data_ref(), &self.counted) {
                    counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(None | Some(Err(_))) => {
                self.guard.take();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
