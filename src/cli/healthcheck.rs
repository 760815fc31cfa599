//! `berth healthcheck`: asks a server's `GET /healthz` and succeeds only on 200. It is the container image's
//! HEALTHCHECK, so it takes no credentials (`/healthz` needs none) and ignores proxy settings, and without
//! `--url` it probes the server `berth serve` would run with the same environment: the port of
//! `BERTH_HTTP_BIND` (else 5000) on this host, over HTTPS when `BERTH_TLS_CERT_FILE` is set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::client::root_cause;
use super::error::CliError;

/// The port `berth serve` listens on when `BERTH_HTTP_BIND` does not say.
const DEFAULT_PORT: u16 = 5000;

/// How long the whole request may take; below Docker's health check timeout, so a slow server is reported
/// by this message rather than by Docker killing the probe.
const TIMEOUT: Duration = Duration::from_secs(3);

/// `berth healthcheck [--url URL]`.
#[derive(clap::Args)]
pub struct Args {
    /// URL to probe; a base URL without a path probes its /healthz [default: http://127.0.0.1:5000/healthz,
    /// or the address and port of BERTH_HTTP_BIND on this host, https:// when BERTH_TLS_CERT_FILE is set].
    #[arg(long)]
    url: Option<String>,
}

/// Probes the server: prints one line on stdout when it answers 200; any other answer or no answer is an
/// error.
pub async fn run(args: Args) -> Result<(), CliError> {
    let env = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (url, derived) = match args.url {
        Some(url) => (url, false),
        None => (
            default_url(env("BERTH_HTTP_BIND").as_deref(), env("BERTH_TLS_CERT_FILE").is_some()),
            true,
        ),
    };
    // The derived URL names a loopback (or bind) address the certificate need not cover; the probe sends
    // nothing secret and only wants to know that the server answers, so it does not verify the certificate.
    let (url, status) = probe(&url, !derived).await?;
    println!("healthy: {url} answered {status}");
    Ok(())
}

/// The `/healthz` URL of a server bound to `bind` (`BERTH_HTTP_BIND`), reached on this host: an unspecified
/// address (0.0.0.0, [::]) is probed on the loopback address of its family.
fn default_url(bind: Option<&str>, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let addr = bind
        .and_then(|b| b.trim().parse::<SocketAddr>().ok())
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)));
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("{scheme}://{}/healthz", SocketAddr::new(ip, addr.port()))
}

/// GET `url` (its `/healthz` when it has no path); the URL probed and the status when that is 200.
/// `verify_certs: false` accepts any server certificate.
async fn probe(url: &str, verify_certs: bool) -> Result<(reqwest::Url, reqwest::StatusCode), CliError> {
    let mut parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| CliError::Usage(format!("--url {url:?} is not an http:// or https:// URL")))?;
    if parsed.path() == "/" {
        parsed.set_path("/healthz");
    }
    let url = parsed.as_str().to_owned();
    let http = reqwest::Client::builder()
        .user_agent(concat!("berth-healthcheck/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .timeout(TIMEOUT)
        .danger_accept_invalid_certs(!verify_certs)
        .build()
        .map_err(|e| CliError::Usage(format!("cannot set up the HTTP client: {}", root_cause(&e))))?;
    let response = http
        .get(parsed.clone())
        .send()
        .await
        .map_err(|e| CliError::Unreachable {
            server: url.clone(),
            cause: root_cause(&e),
        })?;
    match response.status() {
        status if status == reqwest::StatusCode::OK => Ok((parsed, status)),
        status => Err(CliError::Protocol {
            server: url,
            what: format!("HTTP {status}, expected 200 OK"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    const DEFAULT_URL: &str = "http://127.0.0.1:5000/healthz";

    #[test]
    fn the_default_url_follows_the_bind_address() {
        assert_eq!(default_url(None, false), DEFAULT_URL);
        assert_eq!(default_url(Some("0.0.0.0:5000"), false), DEFAULT_URL);
        assert_eq!(
            default_url(Some("0.0.0.0:8080"), false),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(default_url(Some("[::]:8080"), false), "http://[::1]:8080/healthz");
        assert_eq!(
            default_url(Some("10.1.2.3:7000"), false),
            "http://10.1.2.3:7000/healthz"
        );
        assert_eq!(default_url(Some("not an address"), false), DEFAULT_URL);
        assert_eq!(default_url(None, true), "https://127.0.0.1:5000/healthz");
        assert_eq!(
            default_url(Some("0.0.0.0:8443"), true),
            "https://127.0.0.1:8443/healthz"
        );
    }

    #[tokio::test]
    async fn only_200_is_healthy() {
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        assert_eq!(
            probe(&format!("http://{addr}/healthz"), true).await.unwrap().1,
            StatusCode::OK
        );
        for base in [format!("http://{addr}"), format!("http://{addr}/")] {
            let (probed, status) = probe(&base, true).await.unwrap();
            assert_eq!((probed.path(), status), ("/healthz", StatusCode::OK), "{base}");
        }
        let down = probe(&format!("http://{addr}/down"), true)
            .await
            .unwrap_err()
            .to_string();
        assert!(down.contains("HTTP 503 Service Unavailable, expected 200 OK"), "{down}");
        let missing = probe(&format!("http://{addr}/nowhere"), true)
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("HTTP 404 Not Found"), "{missing}");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let refused = probe(&format!("http://{closed_addr}/healthz"), true)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.starts_with("cannot reach the Berth server at"), "{refused}");
        let bad = probe("localhost:5000", true).await.unwrap_err().to_string();
        assert!(bad.contains("is not an http:// or https:// URL"), "{bad}");
    }
}
