//! A minimal token server for registries that delegate authentication (CNCF Distribution's `auth.token`):
//! `GET /token?service=…&scope=…` with Basic credentials answers an ES256 JWT granting every scope asked
//! for, with the signing certificate in the `x5c` header, which Distribution checks against its
//! `rootcertbundle`. It exists so the benchmark can run Distribution with token auth, as Berth always is.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// How long a token is valid.
const TOKEN_SECONDS: u64 = 300;

struct Issuer {
    key: EncodingKey,
    /// The signing certificate, base64 DER, for the `x5c` header.
    certificate: String,
    issuer: String,
    /// The expected `Authorization: Basic …` value.
    basic: String,
}

/// Serves tokens on `bind` until killed. `key` is a PKCS#8 PEM P-256 key, `cert` its PEM certificate.
pub async fn serve(bind: &str, key: &str, cert: &str, issuer: &str, user: &str, password: &str) -> Result<()> {
    let key_pem = std::fs::read(key).with_context(|| format!("reading {key}"))?;
    let cert_pem = std::fs::read_to_string(cert).with_context(|| format!("reading {cert}"))?;
    let state = Arc::new(Issuer {
        key: EncodingKey::from_ec_pem(&key_pem).context("the key must be a PKCS#8 PEM P-256 key")?,
        certificate: pem_body(&cert_pem)?,
        issuer: issuer.to_owned(),
        basic: format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
    });
    let app = axum::Router::new().route("/token", get(token)).with_state(state);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The base64 body of the first PEM block, which is the DER `x5c` carries.
fn pem_body(pem: &str) -> Result<String> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        bail!("no PEM certificate found");
    }
    Ok(body)
}

async fn token(State(issuer): State<Arc<Issuer>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == issuer.basic.as_bytes());
    if !authorized {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    let (mut service, mut access) = (String::new(), Vec::new());
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "service" => service = value.into_owned(),
            "scope" => access.extend(parse_scope(&value)),
            _ => {}
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "iss": issuer.issuer, "sub": "bench", "aud": service, "iat": now, "nbf": now - 5,
        "exp": now + TOKEN_SECONDS, "jti": uuid::Uuid::new_v4().to_string(), "access": access,
    });
    let mut header = Header::new(Algorithm::ES256);
    header.x5c = Some(vec![issuer.certificate.clone()]);
    match jsonwebtoken::encode(&header, &claims, &issuer.key) {
        Ok(token) => axum::Json(json!({"token": token, "expires_in": TOKEN_SECONDS})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `type:name:action,action` → one access entry (the name may hold colons: a port in a host).
fn parse_scope(scope: &str) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    Some(json!({"type": kind, "name": name, "actions": actions}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_pem_bodies() {
        assert_eq!(
            parse_scope("repository:a/b:pull,push"),
            Some(json!({"type": "repository", "name": "a/b", "actions": ["pull", "push"]}))
        );
        assert_eq!(
            parse_scope("registry:catalog:*"),
            Some(json!({"type": "registry", "name": "catalog", "actions": ["*"]}))
        );
        assert_eq!(parse_scope("nonsense"), None);
        let pem = "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_body(pem).unwrap(), "QUJDREVG");
        assert!(pem_body("garbage").is_err());
    }
}
