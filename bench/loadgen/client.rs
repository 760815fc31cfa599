//! An OCI registry client with the token dance: a request goes out with the token cached for its scope
//! (or none); a `401` with a `Bearer` challenge sends the client to the challenge's realm with Basic
//! credentials for a token of that scope, then the request is repeated with it. A `Basic` challenge is
//! answered with the credentials themselves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

/// How tokens are used once obtained.
#[derive(Clone, Copy, Debug)]
pub enum AuthMode {
    /// One token per scope, fetched on the first challenge and reused for every later request.
    Reuse,
    /// Every `n`th request goes out without a token, gets the challenge and fetches a new one (so with
    /// `n = 1` each request is three round trips: 401, token, retry); the ones between reuse it.
    Dance(u64),
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, PartialEq)]
pub enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

/// Parses `Bearer realm="…",service="…",scope="…"` (values quoted or not, commas inside quotes) or `Basic …`.
pub fn parse_challenge(header: &str) -> Result<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Ok(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        bail!("unsupported challenge {header:?}");
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    let realm = params
        .remove("realm")
        .ok_or_else(|| anyhow!("no realm in challenge {header:?}"))?;
    Ok(Challenge::Bearer {
        realm,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

pub struct Registry {
    http: reqwest::Client,
    pub base: String,
    user: Option<String>,
    password: Option<String>,
    mode: AuthMode,
    tokens: Mutex<HashMap<String, String>>,
    sent: AtomicU64,
    /// Tokens fetched from the token endpoint.
    pub token_fetches: AtomicU64,
    /// 401 challenges received.
    pub challenges: AtomicU64,
}

/// A token-cache entry that means "send Basic credentials".
const BASIC: &str = "\u{0}basic";

impl Registry {
    pub fn new(
        base: &str,
        user: Option<String>,
        password: Option<String>,
        mode: AuthMode,
        pool: usize,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(pool.max(1) * 2)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()?;
        Ok(Registry {
            http,
            base: base.trim_end_matches('/').to_owned(),
            user,
            password,
            mode,
            tokens: Mutex::new(HashMap::new()),
            sent: AtomicU64::new(0),
            token_fetches: AtomicU64::new(0),
            challenges: AtomicU64::new(0),
        })
    }

    /// An absolute URL for a path (`/v2/…`) or a `Location` header (absolute or relative).
    pub fn url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{}", self.base, location)
        }
    }

    fn cached(&self, scope: &str) -> Option<String> {
        self.tokens.lock().ok()?.get(scope).cloned()
    }

    fn remember(&self, scope: &str, token: String) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(scope.to_owned(), token);
        }
    }

    fn authorization(&self, token: &str) -> String {
        if token == BASIC {
            basic_header(
                self.user.as_deref().unwrap_or(""),
                self.password.as_deref().unwrap_or(""),
            )
        } else {
            format!("Bearer {token}")
        }
    }

    /// Sends a request needing `scope` (e.g. `repository:a/b:pull,push`), doing the token dance on a 401.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        let fresh = match self.mode {
            AuthMode::Reuse => false,
            AuthMode::Dance(every) => n.is_multiple_of(every.max(1)),
        };
        let token = if fresh { None } else { self.cached(scope) };
        let response = self
            .once(method.clone(), url, token.as_deref(), headers.clone(), body.clone())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.challenges.fetch_add(1, Ordering::Relaxed);
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("401 without WWW-Authenticate from {method} {url}"))?;
        drop(response);
        let token = match parse_challenge(&header)? {
            Challenge::Basic => BASIC.to_owned(),
            Challenge::Bearer {
                realm,
                service,
                scope: s,
            } => {
                // Ask for what this request needs (a push token also pulls); the challenge's scope otherwise.
                let wanted = if scope.is_empty() {
                    s.unwrap_or_default()
                } else {
                    scope.to_owned()
                };
                self.fetch_token(&realm, service.as_deref(), &wanted).await?
            }
        };
        self.remember(scope, token.clone());
        self.once(method, url, Some(&token), headers, body).await
    }

    async fn once(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let mut request = self.http.request(method.clone(), url).headers(headers);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, self.authorization(token));
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send().await.with_context(|| format!("{method} {url}"))
    }

    /// `GET realm?service=…&scope=…` with Basic credentials (anonymous without them); returns the token.
    pub async fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(("scope", s));
        }
        let mut request = self.http.get(realm).query(&query);
        if let Some(user) = &self.user {
            request = request.basic_auth(user, self.password.as_deref());
        }
        let response = request.send().await.with_context(|| format!("GET {realm}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "token endpoint {realm} answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        let body: serde_json::Value = response.json().await.context("token endpoint: JSON")?;
        self.token_fetches.fetch_add(1, Ordering::Relaxed);
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("token endpoint {realm}: no token in the answer"))
    }

    /// The token endpoint and service a registry names in its challenge to `GET /v2/`, if it has one.
    pub async fn discover(&self) -> Result<Option<(String, Option<String>)>> {
        let response = self
            .once(Method::GET, &self.url("/v2/"), None, HeaderMap::new(), None)
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match parse_challenge(header)? {
            Challenge::Bearer { realm, service, .. } => Ok(Some((realm, service))),
            Challenge::Basic => Ok(None),
        }
    }
}

pub fn basic_header(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Fails with the status and body unless the response has the expected status.
pub async fn expect(response: Response, want: StatusCode, what: &str) -> Result<Response> {
    if response.status() == want {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    bail!(
        "{what}: expected {want}, got {status}: {}",
        body.chars().take(300).collect::<String>()
    )
}

pub fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:5000/oauth2/token",service="default.localhost",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "http://127.0.0.1:5000/oauth2/token".into(),
                service: Some("default.localhost".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        let c = parse_challenge(r#"bearer realm=https://auth/token, scope="registry:catalog:*""#).unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth/token".into(),
                service: None,
                scope: Some("registry:catalog:*".into()),
            }
        );
        assert_eq!(parse_challenge(r#"Basic realm="x""#).unwrap(), Challenge::Basic);
        assert!(parse_challenge("Bearer service=x").is_err());
        assert!(parse_challenge("Negotiate").is_err());
    }
}
