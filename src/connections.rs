//! The connection layer: owns the listening socket and every connection accepted on it. It caps how many
//! connections are open (in all, below the open-file limit, and per source address), runs each
//! connection's handshake (TLS, see [`crate::tls`]) in that connection's own task, and serves HTTP/1.1 on
//! it with hyper: a header-read timeout that also closes kept-alive connections idle between requests,
//! writes paced by [`crate::pace`], and a graceful shutdown. HTTP/2 is not served: a prior-knowledge (h2c)
//! preface is refused like any other malformed request, and TLS offers only `http/1.1`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::config::HttpConfig;
use crate::pace::{MinRate, PacedIo, SendQueue};

/// Descriptors kept out of the connection budget: the database pool, log files, the listener.
const RESERVED_FILES: u64 = 256;

/// Unsent response bytes the kernel holds per connection before a write waits (`TCP_NOTSENT_LOWAT`): a
/// write then waits on the client's reading, not on a multi-megabyte send buffer. Smaller costs fast
/// pulls: at 128 KiB, pulls of 256 MiB blobs over loopback ran about 10% slower than without it (more
/// wake-ups per byte); at 1 MiB they match. The pacing counts what drains from this queue while a write
/// waits, so its size does not decide how slow a reader may be.
const NOTSENT_LOWAT: u32 = 1024 * 1024;

/// How the connection layer behaves; from [`HttpConfig`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// After the shutdown signal, how long running requests may take before their connections are dropped.
    pub grace: Duration,
    /// How long a client may take to send a request's headers, counted on a kept-alive connection from the
    /// end of the previous response.
    pub header_read_timeout: Duration,
    /// Most connections open at once (further ones wait in the listen queue); lowered below the open-file
    /// limit at start.
    pub max_connections: usize,
    /// Most connections open at once from one source address; 0: no such cap.
    pub max_connections_per_ip: usize,
    /// The rate clients must read responses at.
    pub write_pace: Option<MinRate>,
}

impl Settings {
    pub fn from_config(http: &HttpConfig) -> Settings {
        Settings {
            grace: Duration::from_secs(http.shutdown_timeout_secs),
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            max_connections: http.max_connections,
            max_connections_per_ip: http.max_connections_per_ip,
            write_pace: MinRate::from_config(http),
        }
    }
}

/// What turns an accepted TCP connection into the stream HTTP is spoken on (a TLS handshake, or nothing).
pub trait Handshake: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// Plain HTTP: the TCP stream as it is.
#[derive(Clone)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;

    async fn handshake(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Serves `router` on the connections of `listener` until `shutdown` resolves; then stops accepting and
/// gives running requests `settings.grace` to finish before dropping them.
pub async fn serve(
    listener: TcpListener,
    handshake: impl Handshake,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    settings: Settings,
) -> anyhow::Result<()> {
    let budget = connection_budget(settings.max_connections, raise_open_file_limit());
    tracing::info!(
        max_connections = budget,
        max_connections_per_ip = settings.max_connections_per_ip,
        "connection caps"
    );
    let open = Arc::new(Semaphore::new(budget));
    let per_ip = Arc::new(PerIp {
        max: settings.max_connections_per_ip,
        open: Mutex::new(HashMap::new()),
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &open) => accepted,
        };
        let (tcp, peer, slot) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait a little for connections to close.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(ip_slot) = per_ip.enter(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many from this address");
            continue;
        };
        let connection = Connection {
            http: http.clone(),
            router: router.clone(),
            handshake: handshake.clone(),
            watcher: graceful.watcher(),
            write_pace: settings.write_pace,
            _slots: (slot, ip_slot),
        };
        tokio::spawn(connection.run(tcp, peer));
    }
    drop(listener);
    if tokio::time::timeout(settings.grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_secs = settings.grace.as_secs(),
            "requests still running after the shutdown grace period; closing"
        );
    }
    Ok(())
}

/// Waits for room under the connection cap, then for a connection.
async fn accept(
    listener: &TcpListener,
    open: &Arc<Semaphore>,
) -> io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = open
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| io::Error::other("connection cap closed"))?;
    let (tcp, peer) = listener.accept().await?;
    Ok((tcp, peer, slot))
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection and the slots it holds under the caps until it ends.
struct Connection<H> {
    http: http1::Builder,
    router: Router,
    handshake: H,
    watcher: Watcher,
    write_pace: Option<MinRate>,
    _slots: (OwnedSemaphorePermit, IpSlot),
}

impl<H: Handshake> Connection<H> {
    async fn run(self, tcp: TcpStream, peer: SocketAddr) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
            tracing::debug!(%peer, error = %e, "could not set TCP_NOTSENT_LOWAT");
        }
        let queue = SendQueue(tcp.as_raw_fd());
        let io = match self.handshake.handshake(tcp).await {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "handshake failed");
                return;
            }
        };
        let io = TokioIo::new(PacedIo::new(io, self.write_pace, Some(queue)));
        // Requests carry their peer's address, as axum's `ConnectInfo` (the login throttle keys on it).
        let router = self.router.map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let served = self
            .watcher
            .watch(self.http.serve_connection(io, TowerToHyperService::new(router)));
        if let Err(e) = served.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// Open connections by source address.
struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place under its address's cap, given back when dropped.
struct IpSlot(Option<(Arc<PerIp>, IpAddr)>);

impl PerIp {
    /// A slot for one more connection from `ip`, or `None` when it already has the most allowed.
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        if self.max == 0 {
            return Some(IpSlot(None));
        }
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot(Some((self.clone(), ip))))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some((per_ip, ip)) = self.0.take() else { return };
        let mut open = per_ip.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// How many connections may be open: `configured`, lowered to fit under an open-file limit of
/// `file_limit`. A connection may need more than its socket (a blob file, a connection to object storage),
/// so it gets two descriptors of what is left after [`RESERVED_FILES`].
fn connection_budget(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else {
        return configured.max(1);
    };
    let fits = usize::try_from(limit.saturating_sub(RESERVED_FILES) / 2).unwrap_or(usize::MAX);
    configured.min(fits).max(1)
}

/// Raises the soft limit on open files to the hard limit; returns the soft limit now in force.
#[cfg(unix)]
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::warn!(
                soft = limit.rlim_cur,
                hard = limit.rlim_max,
                "could not raise the open-file limit"
            );
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_budget_stays_under_the_open_file_limit() {
        assert_eq!(connection_budget(4096, Some(1024)), 384, "the common soft limit");
        assert_eq!(connection_budget(4096, Some(1_048_576)), 4096);
        assert_eq!(connection_budget(4096, Some(u64::MAX)), 4096, "RLIM_INFINITY");
        assert_eq!(connection_budget(4096, Some(100)), 1, "never zero");
        assert_eq!(connection_budget(4096, None), 4096);
    }

    #[test]
    fn each_address_has_its_own_cap_and_a_closed_connection_frees_its_slot() {
        let per_ip = Arc::new(PerIp {
            max: 2,
            open: Mutex::new(HashMap::new()),
        });
        let a: IpAddr = [127, 0, 0, 2].into();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let first = per_ip.enter(a).unwrap();
        let _second = per_ip.enter(mapped).unwrap();
        assert!(per_ip.enter(a).is_none(), "an IPv4-mapped address is the same source");
        assert!(per_ip.enter([127, 0, 0, 1].into()).is_some());
        drop(first);
        assert!(per_ip.enter(a).is_some());
        let unlimited = Arc::new(PerIp {
            max: 0,
            open: Mutex::new(HashMap::new()),
        });
        let held: Vec<_> = (0..1000).map(|_| unlimited.enter(a).unwrap()).collect();
        assert_eq!(held.len(), 1000);
    }
}
