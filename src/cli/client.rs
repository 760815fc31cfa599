//! The HTTP client of the management API: builds `/api/...` URLs from path segments (each one
//! percent-encoded), authenticates every request, and maps the answer to JSON or to a [`CliError`].

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use super::error::CliError;
use super::globals::{Credentials, Globals, Login};

/// How long to wait for a TCP (and TLS) connection before calling the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one Berth server, acting as one identity.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
}

impl Client {
    pub fn new(globals: &Globals, login: Option<&Login>) -> Result<Client, CliError> {
        let credentials = Credentials::from_options(globals, login)?;
        let base = Url::parse(&globals.server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--server {:?} is not an http:// or https:// URL (e.g. http://localhost:5000)",
                    globals.server
                ))
            })?;
        if base.path() != "/" || base.query().is_some() {
            let mut root = base.clone();
            root.set_path("");
            root.set_query(None);
            return Err(CliError::Usage(format!(
                "--server {:?} has a path: give the server's base URL, e.g. {}",
                globals.server,
                root.as_str().trim_end_matches('/')
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| CliError::Usage(format!("cannot set up the HTTP client: {}", root_cause(&e))))?;
        Ok(Client {
            http,
            base,
            credentials,
        })
    }

    /// GET `/api/<path>` with query parameters.
    pub async fn get(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Value, CliError> {
        self.call(self.request(Method::GET, path).query(query)).await
    }

    /// POST `/api/<path>` with a JSON object body; its `null` members (options not given) are left out.
    pub async fn post(&self, path: &[&str], body: &Value) -> Result<Value, CliError> {
        self.call(self.request(Method::POST, path).json(&without_nulls(body)))
            .await
    }

    /// POST `/api/<path>` with query parameters and no body (an action).
    pub async fn act(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Value, CliError> {
        self.call(self.request(Method::POST, path).query(query)).await
    }

    /// PUT `/api/<path>` with a JSON body that replaces the resource (its `null` members mean "none").
    pub async fn put(&self, path: &[&str], body: &Value) -> Result<Value, CliError> {
        self.call(self.request(Method::PUT, path).json(body)).await
    }

    /// PATCH `/api/<path>` like [`Client::post`].
    pub async fn patch(&self, path: &[&str], body: &Value) -> Result<Value, CliError> {
        self.call(self.request(Method::PATCH, path).json(&without_nulls(body)))
            .await
    }

    /// DELETE `/api/<path>`; the answer is `null` (204).
    pub async fn delete(&self, path: &[&str]) -> Result<Value, CliError> {
        self.call(self.request(Method::DELETE, path)).await
    }

    fn request(&self, method: Method, path: &[&str]) -> RequestBuilder {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("api").extend(path);
        }
        let builder = self.http.request(method, url);
        match &self.credentials {
            Credentials::Operator { token } => builder.bearer_auth(token),
            Credentials::Principal { app_id, password } => builder.basic_auth(app_id, Some(password)),
        }
    }

    async fn call(&self, request: RequestBuilder) -> Result<Value, CliError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let path = response.url().path().to_string();
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(self.refusal(status, &path, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| self.protocol(format!("HTTP {status} for {path} is not JSON")))
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        CliError::Unreachable {
            server: self.server(),
            cause: root_cause(e),
        }
    }

    fn protocol(&self, what: String) -> CliError {
        CliError::Protocol {
            server: self.server(),
            what,
        }
    }

    /// The server's URL for messages, without a trailing slash.
    fn server(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// The API's error envelope as a [`CliError::Api`], or a protocol error for any other body.
    fn refusal(&self, status: StatusCode, path: &str, text: &str) -> CliError {
        #[derive(Deserialize)]
        struct Envelope {
            errors: Vec<ApiError>,
        }
        #[derive(Deserialize)]
        struct ApiError {
            code: String,
            message: String,
            #[serde(default)]
            detail: Value,
        }
        let first = serde_json::from_str::<Envelope>(text)
            .ok()
            .and_then(|e| e.errors.into_iter().next());
        match first {
            Some(e) => CliError::Api {
                status: status.as_u16(),
                code: e.code,
                message: with_detail(e.message, e.detail),
                hint: self.hint(status).to_string(),
            },
            None => self.protocol(format!("HTTP {status} for {path}{}", excerpt(text))),
        }
    }

    /// What to check after a 401 or 403, depending on who we called as.
    fn hint(&self, status: StatusCode) -> &'static str {
        match (status, &self.credentials) {
            (StatusCode::UNAUTHORIZED, Credentials::Operator { .. }) => "; check --token or BERTH_TOKEN",
            (StatusCode::UNAUTHORIZED, Credentials::Principal { .. }) => {
                "; check --username and --password (BERTH_USERNAME, BERTH_PASSWORD)"
            }
            (StatusCode::FORBIDDEN, Credentials::Principal { .. }) => {
                "; a service principal lists, reads and deletes repositories as its roles allow and manages only \
                 registries it is Owner of (creating or deleting registries and service principals takes the \
                 operator token)"
            }
            _ => "",
        }
    }
}

/// An object without its `null` members: the API's optional fields are omitted, never null.
fn without_nulls(body: &Value) -> Value {
    match body {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The message, followed by the envelope's `detail` when that says more than the message already does.
fn with_detail(message: String, detail: Value) -> String {
    match detail {
        Value::Null => message,
        Value::String(d) if d.is_empty() || message.contains(&d) => message,
        Value::String(d) => format!("{message}: {d}"),
        other => format!("{message}: {other}"),
    }
}

/// The start of a non-API body, on one line, to help tell what answered.
fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return String::new();
    }
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!(": {}…", &line[..cut]),
        None => format!(": {line}"),
    }
}

/// The innermost cause of an error ("Connection refused (os error 111)"), which says what went wrong.
pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_not_given_are_left_out_of_bodies() {
        let body = json!({ "name": "reg", "sku": null, "tags": {} });
        assert_eq!(without_nulls(&body), json!({ "name": "reg", "tags": {} }));
    }

    #[test]
    fn detail_is_added_when_it_says_more() {
        assert_eq!(with_detail("bad".into(), Value::Null), "bad");
        assert_eq!(with_detail("bad".into(), json!("bad")), "bad");
        assert_eq!(with_detail("denied: why".into(), json!("why")), "denied: why");
        assert_eq!(with_detail("bad".into(), json!("why")), "bad: why");
        assert_eq!(with_detail("bad".into(), json!({ "size": 3 })), r#"bad: {"size":3}"#);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt(""), "");
        assert_eq!(excerpt("<h1>Not\n Found</h1>\n"), ": <h1>Not Found</h1>");
        assert_eq!(excerpt(&"x".repeat(500)).chars().count(), 2 + 200 + 1);
    }
}
