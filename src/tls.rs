//! TLS termination: the rustls server configuration from the PEM files named by `http.tls_cert_file` and
//! `http.tls_key_file`, and the handshake of each connection.
//!
//! Handshakes run in the connection's own task (see [`crate::connections`]), so a slow or silent client
//! never holds up the accept loop; one that has not finished its handshake within [`HANDSHAKE_TIMEOUT`] is
//! dropped.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::HttpConfig;
use crate::connections::Handshake;

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
    // The server speaks HTTP/1.1 only (see `crate::connections`): say so, or an h2 client would try it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS handshake of each connection (see [`crate::connections`]), given up after [`HANDSHAKE_TIMEOUT`].
#[derive(Clone)]
pub struct Tls(TlsAcceptor);

impl Tls {
    pub fn new(config: Arc<ServerConfig>) -> Tls {
        Tls(TlsAcceptor::from(config))
    }
}

impl Handshake for Tls {
    type Io = TlsStream<TcpStream>;

    async fn handshake(&self, tcp: TcpStream) -> io::Result<Self::Io> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.0.accept(tcp)).await {
            Ok(handshake) => handshake,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
        }
    }
}
