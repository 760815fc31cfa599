//! Reading credentials off requests and building the challenge's realm from how the client reached us.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::app::App;
use crate::errors::Challenge;
use crate::oci::scope::Access;
use crate::ops::registries::RegistryRow;
use crate::tenant::Tenant;

use super::extract::header_str;

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, &header::AUTHORIZATION)?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Basic credentials `(username, password)`; an empty Basic header (`Og==`) counts as none.
pub fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = header_str(headers, &header::AUTHORIZATION)?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (!user.is_empty() && !password.is_empty()).then(|| (user.to_owned(), password.to_owned()))
}

/// The `scheme://host` clients use to reach this server: the configured public URL, else what a proxy
/// says (`X-Forwarded-Proto`, `X-Forwarded-Host`), else the request's own `Host` with https when this
/// server terminates TLS itself, http otherwise.
pub fn public_base(app: &App, headers: &HeaderMap) -> String {
    let configured = app.config.http.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let first = |name: &str| {
        header_str(headers, &header::HeaderName::from_bytes(name.as_bytes()).ok()?)
            .map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
    };
    let scheme = first("x-forwarded-proto")
        .filter(|p| p == "https" || p == "http")
        .unwrap_or_else(|| if app.config.http.serves_tls() { "https" } else { "http" }.into());
    let host = first("x-forwarded-host")
        .filter(|h| is_host(h))
        .or_else(|| {
            header_str(headers, &header::HOST)
                .filter(|h| is_host(h))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}")
}

/// The port of [`public_base`] when it names one (a scheme's default port is left out of `Host`).
pub fn public_port(app: &App, headers: &HeaderMap) -> Option<u16> {
    let base = public_base(app, headers);
    let authority = base.split_once("://").map_or(base.as_str(), |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or(authority);
    let after_host = authority.rsplit_once(']').map_or(authority, |(_, rest)| rest);
    let port: u16 = after_host.rsplit_once(':')?.1.parse().ok()?;
    let default = if base.starts_with("https://") { 443 } else { 80 };
    (port != default).then_some(port)
}

/// The login server of `reg` as a client that reached this server with `headers` must name it: with the
/// port it used when that is not the scheme's default, since `docker login` needs it.
pub fn login_server_seen_from(app: &App, headers: &HeaderMap, reg: &RegistryRow) -> String {
    match public_port(app, headers) {
        Some(port) => format!("{}:{port}", app.login_server(reg)),
        None => app.login_server(reg),
    }
}

/// Whether a `Host` or `X-Forwarded-Host` value looks like `name[:port]` or `[v6]:port`; anything else
/// (quotes, spaces, slashes) never reaches a challenge's realm.
fn is_host(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
}

/// The challenge for a host that names no registry: the service is the host itself, and the token
/// endpoint there explains.
pub fn challenge_without_registry(app: &App, headers: &HeaderMap) -> Challenge {
    let host = header_str(headers, &header::HOST)
        .filter(|h| is_host(h))
        .unwrap_or("localhost");
    Challenge {
        realm: format!("{}/oauth2/token", public_base(app, headers)),
        service: host
            .rsplit_once(':')
            .map_or(host, |(name, _)| name)
            .to_ascii_lowercase(),
        scope: Vec::new(),
        insufficient: false,
        invalid_token: false,
    }
}

/// The challenge for a request to `reg` that needs `scope`.
pub fn challenge(app: &App, headers: &HeaderMap, reg: &Tenant, scope: Vec<Access>) -> Challenge {
    Challenge {
        realm: format!("{}/oauth2/token", public_base(app, headers)),
        service: reg.login_server.clone(),
        scope,
        insufficient: false,
        invalid_token: false,
    }
}
