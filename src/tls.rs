//! TLS termination: the rustls server configuration from the PEM files named by `http.tls_cert_file` and
//! `http.tls_key_file`, and a listener handing axum connections whose handshake is done.
//!
//! Handshakes run in tasks of their own, so a slow or silent client never holds up the accept loop; one
//! that has not finished its handshake within [`HANDSHAKE_TIMEOUT`] is dropped.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::HttpConfig;

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS configuration `http` asks for: `None` when it names no certificate (plain HTTP).
pub fn from_config(http: &HttpConfig) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    match (
        http.tls_cert_file.as_os_str().is_empty(),
        http.tls_key_file.as_os_str().is_empty(),
    ) {
        (true, true) => Ok(None),
        (false, false) => load(&http.tls_cert_file, &http.tls_key_file).map(Some),
        _ => anyhow::bail!(
            "http.tls_cert_file and http.tls_key_file (BERTH_TLS_CERT_FILE, BERTH_TLS_KEY_FILE) go together: \
             set both or neither"
        ),
    }
}

/// A server configuration presenting the PEM certificate chain in `cert_file` (the server's certificate
/// first, then any intermediates) with the PEM private key (PKCS#8, PKCS#1 or SEC1) in `key_file`.
pub fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let cert_pem = std::fs::read(cert_file)
        .with_context(|| format!("reading the TLS certificate file {}", cert_file.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("TLS certificate file {} is not valid PEM", cert_file.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "TLS certificate file {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)",
        cert_file.display()
    );
    let key_pem =
        std::fs::read(key_file).with_context(|| format!("reading the TLS private key file {}", key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => anyhow::anyhow!(
            "TLS private key file {} holds no private key (expected PEM \"BEGIN PRIVATE KEY\", \
             \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\")",
            key_file.display()
        ),
        e => anyhow::anyhow!("TLS private key file {} is not valid PEM: {e}", key_file.display()),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "TLS private key {} does not fit the certificate {}",
                key_file.display(),
                cert_file.display()
            )
        })?;
    // The server speaks HTTP/1.1 only (axum's http2 feature is off): say so, or an h2 client would try it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections and yields them once their TLS handshake has succeeded. Dropping it (as
/// axum's graceful shutdown does) stops accepting.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `tcp`; must be called inside a tokio runtime.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(TlsListener { local_addr, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends once this receiver is gone, so this is never reached.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Accepts connections until the listener is dropped, handshaking each in a task of its own.
async fn accept_loop(tcp: TcpListener, acceptor: TlsAcceptor, ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            () = ready.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait a little for connections to close.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
