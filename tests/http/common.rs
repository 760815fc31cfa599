//! The test server (real HTTP on an ephemeral port, SQLite and blobs in a temp dir) and HTTP-only helpers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use berth::config::{Config, TEST_OPERATOR_TOKEN};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: PathBuf,
    /// Password of the default registry's admin user, which the server's helpers log in as.
    pub admin_password: String,
    tokens: Mutex<HashMap<String, String>>,
    _tempdir: Option<DataDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_client(reqwest::Client::new(), tweak).await
    }

    /// Starts a server whose helpers use `client`: with `http.tls_cert_file` set by `tweak` it serves
    /// HTTPS, and `client` must trust its certificate.
    pub async fn start_with_client(client: reqwest::Client, tweak: impl FnOnce(&mut Config)) -> Self {
        let tempdir = DataDir::create();
        let mut server = Self::launch(tempdir.path().to_path_buf(), client, tweak).await;
        server._tempdir = Some(tempdir);
        server
    }

    /// Starts a server on an existing data folder (to restart one).
    pub async fn start_in(dir: PathBuf, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::launch(dir, reqwest::Client::new(), tweak).await
    }

    async fn launch(dir: PathBuf, client: reqwest::Client, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_tests(&dir);
        if let Some(url) = postgres_database_for(&dir).await {
            config.database.url = url;
        }
        tweak(&mut config);
        let tls = berth::tls::from_config(&config.http).unwrap();
        let settings = berth::connections::Settings {
            grace: std::time::Duration::from_secs(5),
            ..berth::connections::Settings::from_config(&config.http)
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (app, _) = berth::build_app(config).await.unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            match tls {
                Some(tls) => berth::serve_tls(listener, tls, app, stop, settings).await,
                None => berth::serve(listener, app, stop, settings).await,
            }
            .unwrap();
        });
        let mut server = TestServer {
            base,
            client,
            dir,
            admin_password: String::new(),
            tokens: Mutex::new(HashMap::new()),
            _tempdir: None,
            stop: Some(tx),
            task: Some(task),
        };
        server.admin_password = server.enable_admin("default").await;
        server
    }

    /// A request to the management API as the operator.
    pub fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&format!("/api{path}")))
            .bearer_auth(TEST_OPERATOR_TOKEN)
    }

    /// The JSON answer of a management API `GET` as the operator.
    pub async fn api_get(&self, path: &str) -> serde_json::Value {
        self.api(Method::GET, path).send().await.unwrap().json().await.unwrap()
    }

    /// Enables a registry's admin user and returns its first password.
    pub async fn enable_admin(&self, registry: &str) -> String {
        let resp = self
            .api(Method::PATCH, &format!("/registries/{registry}"))
            .json(&serde_json::json!({ "adminUserEnabled": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
        let creds = self.api_get(&format!("/registries/{registry}/credentials")).await;
        creds["passwords"][0]["value"].as_str().unwrap().to_string()
    }

    /// An access token response for `scopes` (token-spec syntax), logging in with Basic `user:password`.
    pub async fn token_as(&self, user: &str, password: &str, scopes: &[String]) -> reqwest::Response {
        let mut query: Vec<(&str, &str)> = vec![("service", "default.localhost")];
        query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
        self.client
            .get(self.url("/oauth2/token"))
            .query(&query)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap()
    }

    /// The value of one metric series (`name{labels}` exactly as Prometheus prints it), or 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.api_metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// The whole `/metrics` text.
    pub async fn api_metrics(&self) -> String {
        let resp = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(TEST_OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    /// A request with no credentials.
    pub fn anon(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Stops the server and waits until it has closed, keeping the data folder.
    pub async fn stop(mut self) -> (PathBuf, Option<DataDir>) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        (self.dir.clone(), self._tempdir.take())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request carrying a bearer token of the default registry's admin user for every repository the
    /// path (and a mount's `from`) names.
    pub async fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        let scopes = scopes_for(path);
        let key = scopes.join(" ");
        let cached = self.tokens.lock().unwrap().get(&key).cloned();
        let token = match cached {
            Some(token) => token,
            None => {
                let resp = self.token_as("default", &self.admin_password, &scopes).await;
                assert_eq!(resp.status(), StatusCode::OK);
                let body: serde_json::Value = resp.json().await.unwrap();
                let token = body["token"].as_str().unwrap().to_string();
                self.tokens.lock().unwrap().insert(key, token.clone());
                token
            }
        };
        builder.bearer_auth(token)
    }

    /// Pushes `data` as a blob of `repo` with one monolithic POST; returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let resp = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .await
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        digest
    }

    /// Pushes a manifest under `reference`; returns the response.
    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &str) -> reqwest::Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .await
            .header("content-type", media_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Pushes a config and one layer, then an OCI image manifest tagged `tag`; returns the manifest digest.
    pub async fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> String {
        let body = self.image_manifest(repo, layer, "").await;
        let resp = self.put_manifest(repo, tag, OCI_MANIFEST, &body).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
        sha256(body.as_bytes())
    }

    /// Pushes a config and `layer` and returns an OCI image manifest for them (not pushed), with `extra`
    /// JSON members appended.
    pub async fn image_manifest(&self, repo: &str, layer: &[u8], extra: &str) -> String {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = self.push_blob(repo, config).await;
        let layer_digest = self.push_blob(repo, layer).await;
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]{extra}}}"#,
            config.len(),
            layer.len()
        )
    }
}

/// Runs `sql` (binding `digest`) on the test server's own database, as its process would.
pub async fn execute_on_server_db(server: &TestServer, sql: &str, digest: &str) -> Result<u64, sqlx::Error> {
    use sqlx::Connection;
    match postgres_database_for(&server.dir).await {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(sql)
                .bind(digest)
                .execute(&mut conn)
                .await
                .map(|r| r.rows_affected())
        }
        None => {
            let url = format!("sqlite://{}", server.dir.join("berth.db").display());
            let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
            let mut conn = sqlx::SqliteConnection::connect_with(&opts.foreign_keys(true))
                .await
                .unwrap();
            sqlx::query(sql)
                .bind(digest)
                .execute(&mut conn)
                .await
                .map(|r| r.rows_affected())
        }
    }
}

/// A test's data folder, removed when dropped, and with `TEST_POSTGRES_URL` set, the Postgres database
/// named after it dropped too (test databases would otherwise pile up run after run).
pub struct DataDir(tempfile::TempDir);

impl DataDir {
    pub fn create() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let Some(admin_url) = postgres_admin_url() else {
            return;
        };
        let name = postgres_database_name(self.path());
        // Drop may run inside the test's runtime, which cannot be blocked on: a thread of its own does it.
        let dropped = std::thread::spawn(move || {
            use sqlx::{Connection, Executor};
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map(|_| ())
            })
        })
        .join()
        .unwrap();
        if let Err(e) = dropped {
            eprintln!("dropping a test database: {e}");
        }
    }
}

fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// The test database of a data folder: `berth_test_` and the folder's name in lower-case alphanumerics.
fn postgres_database_name(dir: &std::path::Path) -> String {
    let suffix: String = dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("berth_test_{}", suffix.to_ascii_lowercase())
}

/// With `TEST_POSTGRES_URL` set (a Postgres URL whose user may create databases), every test server runs
/// on Postgres: a database of its own, named after its data folder so a restarted server finds it again.
pub async fn postgres_database_for(dir: &std::path::Path) -> Option<String> {
    use sqlx::{Connection, Executor};
    let admin_url = postgres_admin_url()?;
    let name = postgres_database_name(dir);
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("TEST_POSTGRES_URL reachable");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
    if exists.is_none() {
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    }
    let (base, _db) = admin_url
        .rsplit_once('/')
        .expect("TEST_POSTGRES_URL ends with /<database>");
    Some(format!("{base}/{name}"))
}

/// The scopes a `/v2/` path needs, all actions on its repository (and pull on a mount's source).
pub fn scopes_for(path: &str) -> Vec<String> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let rest = path.trim_start_matches("/v2/").trim_start_matches("/v2");
    if rest == "_catalog" {
        return vec!["registry:catalog:*".into()];
    }
    let Some(repo) = berth::oci::route::parse_v2(rest)
        .ok()
        .and_then(|route| route.repo().cloned())
    else {
        return Vec::new();
    };
    let mut scopes = vec![format!("repository:{repo}:pull,push,delete")];
    if let Some(from) = query.split('&').find_map(|kv| kv.strip_prefix("from=")) {
        scopes.push(format!("repository:{from}:pull"));
    }
    scopes
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Seconds since the Unix epoch, the server's time unit.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The `errors[0].code` of an error response.
pub async fn error_code(resp: reqwest::Response) -> String {
    let body: serde_json::Value = resp.json().await.expect("error body is JSON");
    body["errors"][0]["code"].as_str().expect("errors[0].code").to_string()
}

pub fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header"))
}
