//! A hostile client's probes (issue 12), kept as regression tests: tokens of a deleted registry, revoked
//! identities, oversized token requests, case-variant manifest keys, an Owner raising its own limits,
//! injected challenge parameters, and references that name nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::principal;
use crate::common::{OCI_MANIFEST, TestServer, error_code, header};

/// A token from `host`'s token endpoint for `scope`, logging in as `user`.
async fn token_at(server: &TestServer, host: &str, user: &str, password: &str, scope: &str) -> String {
    let resp = server
        .anon(Method::GET, &format!("/oauth2/token?scope={scope}"))
        .header("host", host)
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// The status of `GET /v2/<repo>/tags/list` at `host` with `token`.
async fn tags_status(server: &TestServer, host: &str, repo: &str, token: &str) -> StatusCode {
    server
        .anon(Method::GET, &format!("/v2/{repo}/tags/list"))
        .header("host", host)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn create_registry(server: &TestServer, name: &str) -> String {
    let resp = server
        .api(Method::POST, "/registries")
        .json(&json!({ "name": name, "sku": "Basic", "adminUserEnabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    let creds = server.api_get(&format!("/registries/{name}/credentials")).await;
    creds["passwords"][0]["value"].as_str().unwrap().to_string()
}

async fn patch_registry(server: &TestServer, name: &str, body: Value) {
    let resp = server
        .api(Method::PATCH, &format!("/registries/{name}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn tokens_die_with_their_registry_even_when_one_of_the_same_name_replaces_it() {
    let server = TestServer::start().await;
    let host = "phoenix01.localhost";
    let old_password = create_registry(&server, "phoenix01").await;
    let (app_id, sp_password) = principal(&server, "/registries/phoenix01", "Contributor").await;
    let scope = "repository:app:pull,push,delete";
    let admin_token = token_at(&server, host, "phoenix01", &old_password, scope).await;
    let sp_token = token_at(&server, host, &app_id, &sp_password, scope).await;
    assert_eq!(
        tags_status(&server, host, "app", &admin_token).await,
        StatusCode::NOT_FOUND
    );

    let deleted = server
        .api(Method::DELETE, "/registries/phoenix01")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    create_registry(&server, "phoenix01").await;
    let assign = server
        .api(Method::POST, "/role-assignments")
        .json(&json!({ "assignee": app_id, "scope": "/registries/phoenix01", "role": "Contributor" }))
        .send()
        .await
        .unwrap();
    assert!(assign.status().is_success(), "{}", assign.text().await.unwrap());

    for token in [&admin_token, &sp_token] {
        assert_eq!(tags_status(&server, host, "app", token).await, StatusCode::UNAUTHORIZED);
        let push = server
            .anon(Method::POST, "/v2/app/blobs/uploads/")
            .header("host", host)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(push.status(), StatusCode::UNAUTHORIZED);
        assert!(header(&push, "www-authenticate").contains("invalid_token"));
    }
    let fresh = token_at(&server, host, &app_id, &sp_password, scope).await;
    assert_eq!(tags_status(&server, host, "app", &fresh).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revoking_an_identity_stops_its_access_tokens_at_once() {
    let server = TestServer::start().await;
    let host = "default.localhost";
    let scope = "repository:app:pull";
    server.push_image("app", "v1", b"layer").await;

    // The admin user: disabled then re-enabled, its old tokens stay dead.
    let admin_token = token_at(&server, host, "default", &server.admin_password, scope).await;
    assert_eq!(tags_status(&server, host, "app", &admin_token).await, StatusCode::OK);
    patch_registry(&server, "default", json!({ "adminUserEnabled": false })).await;
    patch_registry(&server, "default", json!({ "adminUserEnabled": true })).await;
    assert_eq!(
        tags_status(&server, host, "app", &admin_token).await,
        StatusCode::UNAUTHORIZED
    );
    let again = token_at(&server, host, "default", &server.admin_password, scope).await;
    assert_eq!(tags_status(&server, host, "app", &again).await, StatusCode::OK);

    // A principal: credentials reset.
    let (app_id, password) = principal(&server, "/registries/default", "Reader").await;
    let token = token_at(&server, host, &app_id, &password, scope).await;
    assert_eq!(tags_status(&server, host, "app", &token).await, StatusCode::OK);
    let reset = server
        .api(Method::POST, &format!("/service-principals/{app_id}/reset-credentials"))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    let new_password = reset.json::<Value>().await.unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        tags_status(&server, host, "app", &token).await,
        StatusCode::UNAUTHORIZED
    );

    // Its role removed.
    let token = token_at(&server, host, &app_id, &new_password, scope).await;
    assert_eq!(tags_status(&server, host, "app", &token).await, StatusCode::OK);
    let assignments = server.api_get(&format!("/role-assignments?assignee={app_id}")).await;
    let id = assignments[0]["id"].as_str().unwrap();
    let removed = server
        .api(Method::DELETE, &format!("/role-assignments/{id}"))
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success());
    assert_eq!(
        tags_status(&server, host, "app", &token).await,
        StatusCode::UNAUTHORIZED
    );

    // Deleted.
    let (app_id, password) = principal(&server, "/registries/default", "Reader").await;
    let token = token_at(&server, host, &app_id, &password, scope).await;
    assert_eq!(tags_status(&server, host, "app", &token).await, StatusCode::OK);
    let deleted = server
        .api(Method::DELETE, &format!("/service-principals/{app_id}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    assert_eq!(
        tags_status(&server, host, "app", &token).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn token_requests_with_too_many_scopes_or_too_big_a_form_are_refused() {
    let server = TestServer::start().await;
    let many: Vec<String> = (0..berth::oci::scope::MAX_SCOPES + 1)
        .map(|i| format!("repository:r{i}:pull"))
        .collect();
    let resp = server.token_as("default", &server.admin_password, &many).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("too many scopes"));
    let resp = server
        .token_as(
            "default",
            &server.admin_password,
            &many[..berth::oci::scope::MAX_SCOPES],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "the cap itself is allowed");

    let post = |form: String| {
        server
            .anon(Method::POST, "/oauth2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    let login = format!(
        "grant_type=password&username=default&password={}",
        server.admin_password
    );
    let resp = post(format!("{login}&scope={}", many.join("+"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let padded = format!("{login}&pad={}", "x".repeat(berth::http::TOKEN_FORM_MAX_BYTES));
    let resp = post(padded).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, "INVALID");
    assert_eq!(post(login).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn manifests_with_keys_differing_only_in_case_are_refused() {
    let server = TestServer::start().await;
    let missing = format!("sha256:{}", "c".repeat(64));
    let extra = format!(
        r#","Layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{missing}","size":1}}]"#
    );
    let body = server.image_manifest("app", b"layer", &extra).await;
    let resp = server.put_manifest("app", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, "MANIFEST_INVALID");

    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"Manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{missing}","size":5}}]}}"#
    );
    let resp = server
        .put_manifest("app", "v2", "application/vnd.oci.image.index.v1+json", &index)
        .await;
    assert_eq!(error_code(resp).await, "MANIFEST_INVALID");
}

#[tokio::test]
async fn an_owner_changes_its_registry_but_not_its_sku_limits_or_quota() {
    let server = TestServer::start().await;
    let (app_id, password) = principal(&server, "/registries/default", "Owner").await;
    let patch = |body: Value| {
        server
            .anon(Method::PATCH, "/api/registries/default")
            .basic_auth(&app_id, Some(&password))
            .json(&body)
            .send()
    };
    for body in [
        json!({ "sku": "Premium" }),
        json!({ "pullLimit": 1000 }),
        json!({ "pushLimit": 1000 }),
        json!({ "storageQuotaBytes": 1u64 << 40 }),
    ] {
        let resp = patch(body.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{body}");
        assert!(resp.text().await.unwrap().contains("only the operator"));
    }
    let shown = server.api_get("/registries/default").await;
    assert_eq!(shown["sku"]["name"], "Basic");
    assert_eq!(shown["limits"]["pulls"], 10);
    assert_eq!(shown["limits"]["storageBytes"], 10u64 << 30);
    let resp = patch(json!({ "tags": { "team": "web" } })).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "an Owner still changes the rest");
}

#[tokio::test]
async fn a_host_header_cannot_inject_challenge_parameters() {
    let server = TestServer::start().await;
    for (name, value) in [
        ("x-forwarded-host", r#"evil",error="x"#),
        ("host", r#"evil",scope="registry:catalog:*"#),
    ] {
        let resp = server
            .anon(Method::GET, "/v2/")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = header(&resp, "www-authenticate").to_string();
        assert!(!challenge.contains("evil"), "{name}: {challenge}");
        assert_eq!(challenge.matches('"').count(), 4, "{challenge}");
    }
}

#[tokio::test]
async fn reading_or_deleting_a_reference_that_is_none_is_manifest_unknown() {
    let server = TestServer::start().await;
    server.push_image("app", "v1", b"layer").await;
    for method in [Method::GET, Method::DELETE] {
        let resp = server
            .req(method.clone(), "/v2/app/manifests/.INVALID")
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method}");
        assert_eq!(error_code(resp).await, "MANIFEST_UNKNOWN");
    }
    let head = server
        .req(Method::HEAD, "/v2/app/manifests/-x")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let anonymous = server
        .anon(Method::GET, "/v2/app/manifests/.INVALID")
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::UNAUTHORIZED,
        "authorization comes first"
    );
    let put = server.put_manifest("app", ".INVALID", OCI_MANIFEST, "{}").await;
    assert_eq!(put.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(put).await, "MANIFEST_INVALID");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn thousands_of_heavy_tokens_used_once_keep_memory_bounded() {
    let served = crate::process::Served::start().await;
    let password = served.admin_password().await;
    let pid = served.child.id().unwrap();
    let served = &served;
    let long: &str = &"n".repeat(200);
    let form = |round: usize| {
        let scopes: Vec<String> = (0..berth::oci::scope::MAX_SCOPES)
            .map(|i| format!("repository:{round}-{i}-{long}:pull"))
            .collect();
        format!(
            "grant_type=password&username=default&password={password}&scope={}",
            scopes.join("+")
        )
    };
    // Issues a token as heavy as a request may make it, and uses it once (its verification is cached).
    let use_once = |round: usize| {
        let body = form(round);
        async move {
            let token: Value = served
                .req(Method::POST, "/oauth2/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let token = token["access_token"].as_str().unwrap().to_string();
            assert!(token.len() > 20_000, "the token is heavy");
            let resp = served
                .req(Method::GET, &format!("/v2/{round}-0-{long}/tags/list"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        }
    };
    let use_once = &use_once;
    let run = |rounds: std::ops::Range<usize>| async move {
        use futures::StreamExt;
        futures::stream::iter(rounds.map(use_once))
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
    };
    run(0..300).await;
    let warm = rss_kib(pid);
    run(300..3300).await;
    let grown_mib = rss_kib(pid).saturating_sub(warm) / 1024;
    // Unbounded, 3,000 such entries hold about 190 MiB; the cache keeps at most 16 MiB of them.
    assert!(grown_mib < 64, "resident memory grew by {grown_mib} MiB");
}

#[tokio::test]
async fn configuring_an_operator_token_retires_the_others_and_weak_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (first, second) = ("first-operator-token-0123456789", "second-operator-token-9876543210");
    let registries_status = |served: &crate::process::Served, token: &str| {
        let request = served.req(Method::GET, "/api/registries").bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    // First start without one: a token is generated, printed once, and works.
    let generated = generated_operator_token(data).await;
    let mut served =
        crate::process::Served::start_with(&[("BERTH_DATA_DIR", data), ("BERTH_OPERATOR_TOKEN", first)]).await;
    assert_eq!(registries_status(&served, first).await, StatusCode::OK);
    assert_eq!(
        registries_status(&served, &generated).await,
        StatusCode::UNAUTHORIZED,
        "a configured token retires the generated one"
    );
    served.child.kill().await.unwrap();

    let mut served =
        crate::process::Served::start_with(&[("BERTH_DATA_DIR", data), ("BERTH_OPERATOR_TOKEN", second)]).await;
    assert_eq!(registries_status(&served, second).await, StatusCode::OK);
    assert_eq!(registries_status(&served, first).await, StatusCode::UNAUTHORIZED);
    served.child.kill().await.unwrap();

    let weak = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .env("BERTH_HTTP_BIND", "127.0.0.1:0")
        .env("BERTH_DATA_DIR", data)
        .env("BERTH_OPERATOR_TOKEN", "x")
        .output()
        .await
        .unwrap();
    assert!(!weak.status.success());
    let said = String::from_utf8_lossy(&weak.stderr);
    assert!(said.contains("too weak"), "{said}");
}

/// Starts `berth serve` on `data` without an operator token, reads the one it generates from its standard
/// error, checks it opens the management API, and stops the server.
async fn generated_operator_token(data: &str) -> String {
    use tokio::io::AsyncBufReadExt;
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .env("BERTH_HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("BERTH_DATA_DIR", data)
        .env_remove("BERTH_OPERATOR_TOKEN")
        .env_remove("BERTH_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut announced = false;
    let token = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the generated token is printed");
        match line.trim() {
            "" => {}
            text if text.starts_with("Berth operator token") => announced = true,
            text if announced => break text.to_owned(),
            _ => {}
        }
    };
    let client = reqwest::Client::new();
    let registries = format!("http://127.0.0.1:{port}/api/registries");
    let answer = first_answer(|| client.get(&registries).bearer_auth(&token)).await;
    assert_eq!(
        answer.map(|resp| resp.status()),
        Some(StatusCode::OK),
        "the generated token works"
    );
    child.kill().await.unwrap();
    token
}

/// A port of the loopback interface that was free a moment ago, for a `berth serve` child to bind.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends what `request` builds until a starting server answers (at most 30 s); `None` if it never did.
async fn first_answer(request: impl Fn() -> reqwest::RequestBuilder) -> Option<reqwest::Response> {
    for _ in 0..300 {
        if let Ok(resp) = request().send().await {
            return Some(resp);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn a_log_that_cannot_be_written_takes_no_request_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let full = || std::process::Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .env("BERTH_HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("BERTH_DATA_DIR", dir.path())
        .env("BERTH_OPERATOR_TOKEN", crate::process::OPERATOR)
        .env("BERTH_LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(full())
        .stderr(full())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let healthz = format!("{base}/healthz");
    let up = first_answer(|| client.get(&healthz)).await.is_some();
    assert!(up, "berth serve answers with its log on a full disk");
    for _ in 0..20 {
        let resp = client.get(format!("{base}/v2/")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .bearer_auth(crate::process::OPERATOR)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("berth_log_write_failures "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped >= 20.0, "{dropped} log lines counted as dropped");
    assert!(child.try_wait().unwrap().is_none(), "still running");
}

#[tokio::test]
async fn files_under_the_data_folder_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let served = crate::process::Served::start().await;
    let token = served.admin_token("repository:app:pull,push").await;
    let data = b"private layer";
    let digest = crate::common::sha256(data);
    let resp = served
        .req(Method::POST, &format!("/v2/app/blobs/uploads/?digest={digest}"))
        .bearer_auth(&token)
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let mut pending = vec![served.dir.path().to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "{} is open to others",
                entry.path().display()
            );
            seen += 1;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    assert!(
        seen > 5,
        "the database, the key and the blob were checked ({seen} entries)"
    );
}

#[tokio::test]
async fn expired_refresh_tokens_are_deleted() {
    use sqlx::Connection;
    if std::env::var("TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        return; // the rows are counted in the SQLite file; the purge is one statement on both
    }
    let server = TestServer::start_with(|c| {
        c.auth.refresh_token_ttl_secs = 1;
        c.storage.upload_max_idle_secs = 2; // housekeeping runs every second
    })
    .await;
    let resp = server
        .anon(Method::GET, "/oauth2/token?offline_token=true")
        .basic_auth("default", Some(&server.admin_password))
        .send()
        .await
        .unwrap();
    assert!(resp.json::<Value>().await.unwrap()["refresh_token"].is_string());
    let url = format!("sqlite://{}?mode=ro", server.dir.join("berth.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut left = -1;
    for _ in 0..100 {
        left = sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the expired refresh token is gone");
}

#[tokio::test]
async fn a_sqlite_file_deleted_under_the_server_fails_readiness_and_refuses_writes() {
    if std::env::var("TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        return; // a Postgres database is not a file of ours
    }
    let server = TestServer::start().await;
    server.push_blob("app", b"before").await;
    assert_eq!(
        server.anon(Method::GET, "/readyz").send().await.unwrap().status(),
        StatusCode::OK
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(server.dir.join(format!("berth.db{suffix}")));
    }
    let ready = server.anon(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let digest = crate::common::sha256(b"after");
    let push = server
        .req(Method::POST, &format!("/v2/app/blobs/uploads/?digest={digest}"))
        .await
        .body(b"after".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        push.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the write is refused, not acknowledged"
    );
}

#[tokio::test]
async fn readiness_fails_when_the_data_folder_runs_out_of_space() {
    let server = TestServer::start().await;
    assert_eq!(
        server.anon(Method::GET, "/readyz").send().await.unwrap().status(),
        StatusCode::OK
    );
    // A floor above any disk's size: the data folder is "full" by the same measure a full disk is.
    let full = TestServer::start_with(|c| c.storage.min_free_mib = 1 << 40).await;
    let resp = full.anon(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    let storage = body["storage"].as_str().unwrap();
    assert!(storage.contains("MiB free in the data folder"), "{body}");
}

/// A tmpfs mounted over a folder for as long as it lives (lazily unmounted when dropped).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `1m`) over `dir`; `None` when this process may not mount (not root).
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        mounted.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let resized = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(resized.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_store_answers_507_and_the_upload_resumes_once_there_is_room() {
    let server = TestServer::start().await;
    // Needs root (CI runs as root); elsewhere there is no disk to fill without filling the real one.
    let Some(store) = Tmpfs::mount(&server.dir.join("registries/default"), "1m") else {
        assert_ne!(effective_uid(), 0, "root could not mount a tmpfs");
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let (first, second) = (crate::common::bytes(512 * 1024, 1), crate::common::bytes(768 * 1024, 2));
    let started = server
        .req(Method::POST, "/v2/full/app/blobs/uploads/")
        .await
        .send()
        .await
        .unwrap();
    let location = header(&started, "location").to_owned();
    let patch = |chunk: Vec<u8>| {
        let location = location.clone();
        let server = &server;
        async move {
            server
                .req(Method::PATCH, &location)
                .await
                .body(chunk)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(patch(first.clone()).await.status(), StatusCode::ACCEPTED);
    let full = patch(second.clone()).await;
    assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body: Value = full.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("storage is full"),
        "{body}"
    );
    let status = server.req(Method::GET, &location).await.send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), "0-524287", "what was received before stays");

    store.resize("4m");
    assert_eq!(patch(second.clone()).await.status(), StatusCode::ACCEPTED);
    let whole = [first, second].concat();
    let digest = crate::common::sha256(&whole);
    let committed = server
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(committed.status(), StatusCode::CREATED);
    let pulled = server
        .req(Method::GET, &format!("/v2/full/app/blobs/{digest}"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), whole.as_slice());
}

/// This process's effective user id.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A client whose connections come from `source` (an address of the loopback network).
fn client_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(source))
        .build()
        .unwrap()
}

async fn admin_login(server: &TestServer, client: &reqwest::Client, password: &str) -> reqwest::Response {
    client
        .get(server.url("/oauth2/token?service=default.localhost"))
        .basic_auth("default", Some(password))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_source_that_keeps_failing_logins_is_throttled_and_others_are_not() {
    let server = TestServer::start_with(|c| {
        c.auth.failed_logins_per_source = 5;
        c.auth.failed_logins_per_identity = 0;
    })
    .await;
    let guesser = client_from([127, 0, 0, 2]);
    for _ in 0..5 {
        let resp = admin_login(&server, &guesser, "wrong-password").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = admin_login(&server, &guesser, &server.admin_password).await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    // Operator-token guesses and management API logins from that source wait too.
    let api = guesser
        .get(server.url("/api/registries"))
        .bearer_auth(berth::config::TEST_OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);

    let other = client_from([127, 0, 0, 3]);
    assert_eq!(
        admin_login(&server, &other, &server.admin_password).await.status(),
        StatusCode::OK
    );
    for _ in 0..5 {
        let resp = other
            .get(server.url("/api/registries"))
            .bearer_auth("a-guessed-operator-token")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let api = other
        .get(server.url("/api/registries"))
        .bearer_auth(berth::config::TEST_OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "operator-token guesses spend the budget"
    );
    // A request without credentials (a client's first, anonymous try) spends nothing.
    let fresh = client_from([127, 0, 0, 4]);
    for _ in 0..10 {
        let resp = fresh
            .get(server.url("/oauth2/token?service=default.localhost"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        admin_login(&server, &fresh, &server.admin_password).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn guessing_an_identity_s_password_does_not_lock_out_the_machines_that_use_it() {
    let server = TestServer::start_with(|c| {
        c.auth.failed_logins_per_source = 0;
        c.auth.failed_logins_per_identity = 3;
    })
    .await;
    let ci = client_from([127, 0, 0, 5]);
    assert_eq!(
        admin_login(&server, &ci, &server.admin_password).await.status(),
        StatusCode::OK
    );
    for source in 6..9 {
        let resp = admin_login(&server, &client_from([127, 0, 0, source]), "wrong-password").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let unknown = admin_login(&server, &client_from([127, 0, 0, 9]), &server.admin_password).await;
    assert_eq!(unknown.status(), StatusCode::TOO_MANY_REQUESTS, "a new source waits");
    assert_eq!(
        admin_login(&server, &ci, &server.admin_password).await.status(),
        StatusCode::OK,
        "the source that logged in before still does"
    );
    // Unknown appIds are budgeted like known ones (no enumeration through the throttle).
    for _ in 0..3 {
        let resp = client_from([127, 0, 0, 10])
            .get(server.url("/oauth2/token?service=default.localhost"))
            .basic_auth("00000000-0000-0000-0000-000000000000", Some("guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = client_from([127, 0, 0, 10])
        .get(server.url("/oauth2/token?service=default.localhost"))
        .basic_auth("00000000-0000-0000-0000-000000000000", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}
