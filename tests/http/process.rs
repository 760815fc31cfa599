//! A real `berth serve --log-format json` child process for tests: started with BERTH_* environment,
//! its JSON log lines collected, its address read from the "berth listening" line.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const OPERATOR: &str = "serve-test-operator-token";

/// A `berth serve --log-format json` child process and the log lines it printed.
pub struct Served {
    pub child: Child,
    pub base: String,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Served {
    pub async fn start() -> Served {
        Self::start_with(&[]).await
    }

    /// Starts with extra environment (e.g. a shared database URL and secret key).
    pub async fn start_with(env: &[(&str, &str)]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .args(["serve", "--log-format", "json"])
            .env("BERTH_HTTP_BIND", "127.0.0.1:0")
            .env("BERTH_DATA_DIR", dir.path())
            .env("BERTH_OPERATOR_TOKEN", OPERATOR)
            .env("BERTH_LOG_LEVEL", "info")
            .env("BERTH_SHUTDOWN_TIMEOUT_SECS", "20")
            .env_remove("RUST_LOG")
            .env_remove("BERTH_DATABASE_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
        let collected = lines.clone();
        tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(json) = serde_json::from_str::<Value>(&line)
                    && json["fields"]["message"] == "berth listening"
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(json["fields"]["address"].as_str().unwrap().to_string());
                }
                collected.lock().unwrap().push(line);
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .expect("berth serve started")
            .unwrap();
        Served {
            child,
            base: format!("http://{addr}"),
            lines,
            client: reqwest::Client::new(),
            dir,
        }
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Enables the default registry's admin user and returns its first password.
    pub async fn admin_password(&self) -> String {
        let api = |m: Method, p: &str| self.req(m, &format!("/api{p}")).bearer_auth(OPERATOR);
        let enabled = api(Method::PATCH, "/registries/default")
            .json(&serde_json::json!({ "adminUserEnabled": true }))
            .send()
            .await
            .unwrap();
        assert!(enabled.status().is_success());
        let creds: Value = api(Method::GET, "/registries/default/credentials")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        creds["passwords"][0]["value"].as_str().unwrap().to_string()
    }

    /// A token of the default registry's admin user for `scope`, from this node.
    pub async fn token(&self, password: &str, scope: &str) -> String {
        let token: Value = self
            .req(Method::GET, &format!("/oauth2/token?scope={scope}"))
            .basic_auth("default", Some(password))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["token"].as_str().unwrap().to_string()
    }

    /// The admin token of the default registry for `scope`.
    pub async fn admin_token(&self, scope: &str) -> String {
        let password = self.admin_password().await;
        self.token(&password, scope).await
    }

    /// The JSON request-log lines printed so far.
    pub fn request_logs(&self) -> Vec<Value> {
        self.json_lines(|j| j["fields"]["message"] == "request")
    }

    /// The JSON log lines printed so far for which `pick` holds.
    fn json_lines(&self, pick: impl Fn(&Value) -> bool) -> Vec<Value> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|j| pick(j))
            .collect()
    }

    /// The JSON log lines for which `pick` holds, waiting up to 2.5 s for the first to be written.
    pub async fn logged(&self, pick: impl Fn(&Value) -> bool) -> Vec<Value> {
        for _ in 0..50 {
            let lines = self.json_lines(&pick);
            if !lines.is_empty() {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Vec::new()
    }

    pub async fn metrics(&self) -> String {
        self.req(Method::GET, "/metrics")
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}
