//! Minimum transfer rates: a peer that makes a transfer wait must move at least [`MinRate::bytes_per_sec`],
//! averaged over each [`MinRate::window`] of waiting, or the transfer fails. Two wrappers apply it: [`Paced`]
//! to a request body (the handler waits on the client's bytes) and [`PacedIo`] to a connection's writes
//! (the server waits on the client to read its response). Only time spent waiting on the peer counts: a
//! handler busy elsewhere or a kept-alive connection between requests is not held against it. While a
//! write waits, what the client takes from the kernel's send queue ([`SendQueue`]) counts as moved, so a
//! large queue does not make a slow but steady reader look stalled.
//!
//! When a transfer fails, whatever it held is dropped with it: a failed body read ends the handler (and its
//! concurrency permit), a failed write ends the connection (and the response body with its permit).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::HttpConfig;

/// The least a peer must move while a transfer waits on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub bytes_per_sec: u64,
    pub window: Duration,
}

impl MinRate {
    /// `http.body_min_bytes_per_sec` over `http.body_stall_timeout_secs`; `None` when the timeout is 0 (off).
    pub fn from_config(http: &HttpConfig) -> Option<MinRate> {
        (http.body_stall_timeout_secs > 0).then(|| MinRate {
            bytes_per_sec: http.body_min_bytes_per_sec,
            window: Duration::from_secs(http.body_stall_timeout_secs),
        })
    }

    /// Bytes a window of waiting must see.
    fn quota(self) -> u64 {
        self.bytes_per_sec.saturating_mul(self.window.as_secs())
    }
}

/// The bookkeeping of one transfer: bytes moved and time waited in the current window, and a timer that
/// wakes the waiting task when the window would end.
struct Pace {
    rate: MinRate,
    moved: u64,
    waited: Duration,
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Pace {
    fn new(rate: MinRate) -> Pace {
        Pace {
            rate,
            moved: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
        }
    }

    /// The peer moved `n` bytes: the wait (if any) is over.
    fn moved(&mut self, n: usize) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
        self.moved = self.moved.saturating_add(n as u64);
    }

    /// The transfer waits on the peer: `Ready` when a whole window of waiting has passed with fewer bytes
    /// than the quota (fail the transfer), else `Pending` with the task woken when the window ends.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let now = Instant::now();
            let since = *self.waiting_since.get_or_insert(now);
            let waited = self.waited + now.saturating_duration_since(since);
            if waited >= self.rate.window {
                if self.moved < self.rate.quota() {
                    return Poll::Ready(());
                }
                // The peer kept up: a new window starts now.
                self.moved = 0;
                self.waited = Duration::ZERO;
                self.waiting_since = Some(now);
                continue;
            }
            // Waiting time grows no faster than the clock, so an armed timer fires at or before the end of
            // the window; only an elapsed one needs to be moved.
            let end = now + (self.rate.window - waited);
            let timer = match &mut self.timer {
                Some(timer) => {
                    if timer.is_elapsed() {
                        timer.as_mut().reset(end);
                    }
                    timer
                }
                None => self.timer.insert(Box::pin(tokio::time::sleep_until(end))),
            };
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// A request body that fails when the client sends it too slowly (see the module doc).
pub struct Paced<B> {
    inner: B,
    pace: Pace,
}

impl<B> Paced<B> {
    pub fn new(inner: B, rate: MinRate) -> Paced<B> {
        Paced {
            inner,
            pace: Pace::new(rate),
        }
    }
}

impl<B> http_body::Body for Paced<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.pace.moved(frame.data_ref().map_or(0, Bytes::len));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.pace.poll_stalled(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(too_slow("sending the request body")))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's socket, asked how many written bytes the kernel has not sent yet.
#[derive(Debug, Clone, Copy)]
pub struct SendQueue(pub std::os::fd::RawFd);

impl SendQueue {
    /// Unsent bytes (`SIOCOUTQNSD`); `None` where the platform does not tell.
    fn unsent(self) -> Option<u64> {
        #[cfg(target_os = "linux")]
        {
            let mut unsent: libc::c_int = 0;
            // SAFETY: SIOCOUTQNSD writes one int through the pointer. The descriptor belongs to the
            // connection whose stream the `PacedIo` owns, so it is open whenever this is called.
            let rc = unsafe { libc::ioctl(self.0, libc::SIOCOUTQNSD as _, &mut unsent) };
            (rc == 0).then(|| u64::try_from(unsent).unwrap_or(0))
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}

/// A connection whose writes fail when the client reads too slowly (see the module doc); `None` paces
/// nothing.
pub struct PacedIo<T> {
    inner: T,
    pace: Option<Pace>,
    queue: Option<SendQueue>,
    /// The send queue's unsent bytes when a write last waited.
    unsent_when_waiting: Option<u64>,
}

impl<T> PacedIo<T> {
    pub fn new(inner: T, rate: Option<MinRate>, queue: Option<SendQueue>) -> PacedIo<T> {
        PacedIo {
            inner,
            pace: rate.map(Pace::new),
            queue,
            unsent_when_waiting: None,
        }
    }

    /// What a write that returned `polled` returns: progress is recorded, a wait checked.
    fn paced<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
        moved: impl Fn(&R) -> usize,
    ) -> Poll<io::Result<R>> {
        let Some(pace) = &mut self.pace else { return polled };
        match polled {
            Poll::Ready(Ok(r)) => {
                pace.moved(moved(&r));
                self.unsent_when_waiting = None;
                Poll::Ready(Ok(r))
            }
            Poll::Pending => {
                if let Some(unsent) = self.queue.and_then(SendQueue::unsent) {
                    if let Some(before) = self.unsent_when_waiting
                        && unsent < before
                    {
                        pace.moved(usize::try_from(before - unsent).unwrap_or(usize::MAX));
                    }
                    self.unsent_when_waiting = Some(unsent);
                }
                match pace.poll_stalled(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        too_slow("reading the response"),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            failed => failed,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PacedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PacedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.paced(cx, polled, |n| *n)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.paced(cx, polled, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.paced(cx, polled, |()| 0)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn too_slow(doing: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("the client was too slow {doing} (below http.body_min_bytes_per_sec)").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::future::poll_fn;

    const RATE: MinRate = MinRate {
        bytes_per_sec: 100,
        window: Duration::from_secs(10),
    };

    #[tokio::test(start_paused = true)]
    async fn a_window_of_waiting_below_the_quota_fails_and_one_above_starts_the_next() {
        let mut pace = Pace::new(RATE);
        let start = Instant::now();
        let stalled = tokio::time::timeout(Duration::from_secs(60), poll_fn(|cx| pace.poll_stalled(cx))).await;
        assert!(
            stalled.is_ok(),
            "a peer that moves nothing fails once the window has passed"
        );
        assert_eq!(start.elapsed().as_secs(), 10);

        let mut pace = Pace::new(RATE);
        for _ in 0..5 {
            // 2 s of waiting, then 300 bytes: 1,500 bytes per 10 s of waiting, above the quota of 1,000.
            let waited = tokio::time::timeout(Duration::from_secs(2), poll_fn(|cx| pace.poll_stalled(cx))).await;
            assert!(waited.is_err(), "still within the window");
            pace.moved(300);
        }
        let waited = tokio::time::timeout(Duration::from_secs(9), poll_fn(|cx| pace.poll_stalled(cx))).await;
        assert!(
            waited.is_err(),
            "the window that ended was above the quota: a new one started"
        );
        let stalled = tokio::time::timeout(Duration::from_secs(2), poll_fn(|cx| pace.poll_stalled(cx))).await;
        assert!(stalled.is_ok(), "then nothing for a whole window fails");
    }

    /// Waits on `pace` for five minutes of a peer that moves `bytes` every `every`; whether it stalled.
    async fn stalls(pace: &mut Pace, bytes: usize, every: Duration) -> bool {
        let end = Instant::now() + Duration::from_secs(300);
        while Instant::now() < end {
            if tokio::time::timeout(every, poll_fn(|cx| pace.poll_stalled(cx)))
                .await
                .is_ok()
            {
                return true;
            }
            pace.moved(bytes);
        }
        false
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_rate_passes_a_slow_real_link_and_fails_a_trickle() {
        let config = Config::from_overrides(None).unwrap();
        let rate = MinRate::from_config(&config.http).unwrap();
        assert_eq!(
            rate,
            MinRate {
                bytes_per_sec: 4096,
                window: Duration::from_secs(30)
            }
        );
        // 64 kbit/s (a poor mobile link), in 1 KiB pieces: five minutes without a stall.
        assert!(!stalls(&mut Pace::new(rate), 1024, Duration::from_millis(125)).await);
        // curl --limit-rate 1K: cut within the first window.
        let start = Instant::now();
        assert!(stalls(&mut Pace::new(rate), 1024, Duration::from_secs(1)).await);
        assert!(start.elapsed() <= Duration::from_secs(31), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn time_not_spent_waiting_on_the_peer_does_not_count() {
        let mut pace = Pace::new(RATE);
        let waited = tokio::time::timeout(Duration::from_secs(9), poll_fn(|cx| pace.poll_stalled(cx))).await;
        assert!(waited.is_err());
        pace.moved(1);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let waited = tokio::time::timeout(Duration::from_millis(900), poll_fn(|cx| pace.poll_stalled(cx))).await;
        assert!(
            waited.is_err(),
            "an hour of the handler being busy elsewhere is not waiting"
        );
        let stalled = tokio::time::timeout(Duration::from_millis(200), poll_fn(|cx| pace.poll_stalled(cx))).await;
        assert!(stalled.is_ok());
    }
}
