//! Several stateless `berth serve` nodes sharing one Postgres database, one blob folder and, when an S3
//! server is at hand (`TEST_S3_ENDPOINT`), one S3 bucket: an upload moves between nodes, a token of one node
//! is good at the other, changes are seen at once, and a node killed in the middle of uploads loses no
//! committed data. These need Postgres (`TEST_POSTGRES_URL`, set by CI's Postgres pass); on SQLite alone
//! they say so and return.

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{DataDir, bytes, postgres_database_for, sha256};
use crate::process::{OPERATOR, Served};

/// Two nodes on one fresh Postgres database, one blob folder and one secret key; `None` without Postgres.
async fn two_nodes() -> Option<(Served, Served, DataDir)> {
    two_nodes_with(&[]).await
}

/// [`two_nodes`] with more environment.
async fn two_nodes_with(extra: &[(&str, &str)]) -> Option<(Served, Served, DataDir)> {
    let shared = DataDir::create();
    let Some(database) = postgres_database_for(shared.path()).await else {
        eprintln!("multi-node tests need TEST_POSTGRES_URL (CI's Postgres pass sets it); not run on SQLite");
        return None;
    };
    let key = berth::auth::secrets::SecretBox::generate_key();
    let data = shared.path().to_str().unwrap().to_string();
    let mut env = vec![
        ("BERTH_DATABASE_URL", database),
        ("BERTH_SECRET_KEY", key),
        ("BERTH_DATA_DIR", data),
    ];
    if let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") {
        env.extend([
            ("BERTH_S3_ENDPOINT", endpoint),
            ("BERTH_S3_REGION", "us-east-1".to_string()),
            ("BERTH_S3_ACCESS_KEY_ID", "test".to_string()),
            ("BERTH_S3_SECRET_ACCESS_KEY", "test".to_string()),
            ("BERTH_S3_ALLOW_HTTP", "true".to_string()),
        ]);
    }
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend(extra);
    let first = Served::start_with(&env).await;
    let second = Served::start_with(&env).await;
    Some((first, second, shared))
}

/// A registry whose blobs are in the S3 bucket of `TEST_S3_BUCKET`, made through `node`; returns its admin
/// password, or `None` without an S3 server.
async fn s3_registry(node: &Served) -> Option<String> {
    std::env::var("TEST_S3_ENDPOINT").ok()?;
    let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "berth-test".into());
    let location = format!("s3://{bucket}/nodes-{}", uuid::Uuid::new_v4().simple());
    let api = |method: Method, path: &str| node.req(method, &format!("/api{path}")).bearer_auth(OPERATOR);
    let created = api(Method::POST, "/registries")
        .json(&json!({ "name": "nodess3", "adminUserEnabled": true, "storageLocation": location }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "{}",
        created.text().await.unwrap()
    );
    let creds: Value = api(Method::GET, "/registries/nodess3/credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Some(creds["passwords"][0]["value"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_on_s3_moves_between_nodes() {
    let Some((one, two, _shared)) = two_nodes().await else {
        return;
    };
    let Some(password) = s3_registry(&one).await else {
        eprintln!("no S3 server (TEST_S3_ENDPOINT): the shared-folder tests cover the nodes");
        return;
    };
    let token: Value = one
        .req(Method::GET, "/oauth2/token?scope=repository:s3/app:pull,push")
        .header("host", "nodess3.localhost")
        .basic_auth("nodess3", Some(password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let on = |node: &Served, method: Method, path: &str| {
        node.req(method, path)
            .header("host", "nodess3.localhost")
            .bearer_auth(&token)
    };
    let data = bytes(250_000, 7);
    let started = on(&one, Method::POST, "/v2/s3/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let first = on(&one, Method::PATCH, &location)
        .header("content-range", "0-99999")
        .body(data[..100_000].to_vec());
    assert_eq!(first.send().await.unwrap().status(), StatusCode::ACCEPTED);
    let second = on(&two, Method::PATCH, &location)
        .header("content-range", "100000-249999")
        .body(data[100_000..].to_vec());
    assert_eq!(second.send().await.unwrap().status(), StatusCode::ACCEPTED);
    let digest = sha256(&data);
    let done = on(&two, Method::PUT, &format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::CREATED);
    let pulled = on(&one, Method::GET, &format!("/v2/s3/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        pulled.bytes().await.unwrap().as_ref(),
        data.as_slice(),
        "both nodes read the same S3 objects"
    );
}

async fn patch(node: &Served, location: &str, token: &str, start: usize, chunk: &[u8]) -> reqwest::Response {
    node.req(Method::PATCH, location)
        .bearer_auth(token)
        .header("content-range", format!("{start}-{}", start + chunk.len() - 1))
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_started_on_one_node_finishes_on_the_other_with_its_token() {
    let Some((one, two, _shared)) = two_nodes().await else {
        return;
    };
    let password = one.admin_password().await;
    let token = one.token(&password, "repository:nodes/app:pull,push").await;
    let data = bytes(300_001, 1);
    let started = one
        .req(Method::POST, "/v2/nodes/app/blobs/uploads/")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        patch(&one, &location, &token, 0, &data[..100_003]).await.status(),
        StatusCode::ACCEPTED
    );
    let status = two
        .req(Method::GET, &location)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.status(),
        StatusCode::NO_CONTENT,
        "node 2 accepts node 1's token and knows the upload"
    );
    assert_eq!(status.headers()["range"], "0-100002");
    assert_eq!(
        patch(&two, &location, &token, 100_003, &data[100_003..]).await.status(),
        StatusCode::ACCEPTED
    );
    let digest = sha256(&data);
    let done = two
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::CREATED);
    let pulled = one
        .req(Method::GET, &format!("/v2/nodes/app/blobs/{digest}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_or_a_password_changed_on_one_node_is_seen_by_the_other_at_once() {
    let Some((one, two, _shared)) = two_nodes().await else {
        return;
    };
    let api =
        |node: &Served, method: Method, path: &str| node.req(method, &format!("/api{path}")).bearer_auth(OPERATOR);
    let created = api(&one, Method::POST, "/registries")
        .json(&json!({ "name": "nodereg1", "adminUserEnabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let seen = api(&two, Method::GET, "/registries/nodereg1").send().await.unwrap();
    assert_eq!(seen.status(), StatusCode::OK, "node 2 knows the registry node 1 made");
    let creds: Value = api(&two, Method::GET, "/registries/nodereg1/credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old = creds["passwords"][0]["value"].as_str().unwrap().to_string();
    let login = |node: &Served, password: String| {
        let request = node
            .req(Method::GET, "/oauth2/token")
            .header("host", "nodereg1.localhost")
            .basic_auth("nodereg1", Some(password));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(login(&two, old.clone()).await, StatusCode::OK);
    let renewed: Value = api(&one, Method::POST, "/registries/nodereg1/credentials/renew")
        .json(&json!({ "passwordName": "password" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        login(&two, old).await,
        StatusCode::UNAUTHORIZED,
        "node 2 refuses the renewed password at once"
    );
    assert_eq!(
        login(&two, renewed["passwords"][0]["value"].as_str().unwrap().to_string()).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_in_the_middle_of_uploads_loses_no_committed_data() {
    let Some((mut one, two, _shared)) = two_nodes().await else {
        return;
    };
    let password = one.admin_password().await;
    let token = one.token(&password, "repository:crash/app:pull,push").await;
    let mut committed = Vec::new();
    for seed in 0..3u8 {
        let data = bytes(200_000 + usize::from(seed), seed);
        let digest = sha256(&data);
        let resp = one
            .req(Method::POST, &format!("/v2/crash/app/blobs/uploads/?digest={digest}"))
            .bearer_auth(&token)
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        committed.push((digest, data));
    }
    // An upload with one chunk recorded and a second chunk half sent when node 1 dies.
    let unfinished = bytes(400_000, 9);
    let started = one
        .req(Method::POST, "/v2/crash/app/blobs/uploads/")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        patch(&one, &location, &token, 0, &unfinished[..150_000]).await.status(),
        StatusCode::ACCEPTED
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let half = one
        .req(Method::PATCH, &location)
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )));
    let in_flight = tokio::spawn(async move { half.send().await });
    tx.send(Ok(Bytes::copy_from_slice(&unfinished[150_000..250_000])))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    one.child.start_kill().unwrap();
    one.child.wait().await.unwrap();
    drop(tx);
    // The half-sent chunk dies with node 1, whatever the client makes of it.
    let _ = in_flight.await;

    for (digest, data) in &committed {
        let resp = two
            .req(Method::GET, &format!("/v2/crash/app/blobs/{digest}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.bytes().await.unwrap().as_ref(),
            data.as_slice(),
            "committed blobs are intact"
        );
    }
    let full = sha256(&unfinished);
    let absent = two
        .req(Method::HEAD, &format!("/v2/crash/app/blobs/{full}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        absent.status(),
        StatusCode::NOT_FOUND,
        "an unfinished upload is no blob"
    );
    let status = two
        .req(Method::GET, &location)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(status.headers()["range"], "0-149999", "only the recorded chunk counts");
    assert_eq!(
        patch(&two, &location, &token, 150_000, &unfinished[150_000..])
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let done = two
        .req(Method::PUT, &format!("{location}?digest={full}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        StatusCode::CREATED,
        "node 2 finishes the upload node 1 started"
    );
    let pulled = two
        .req(Method::GET, &format!("/v2/crash/app/blobs/{full}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&pulled.bytes().await.unwrap()), full);
}

/// Runs `sql` on the Postgres server as the test administrator.
async fn admin_sql(sql: &str) {
    use sqlx::{Connection, Executor};
    let url = std::env::var("TEST_POSTGRES_URL").unwrap();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    admin.execute(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_is_503_unavailable_and_coming_back_heals() {
    let Some((one, _two, shared)) = two_nodes().await else {
        return;
    };
    let password = one.admin_password().await;
    let token = one.token(&password, "repository:db/app:pull,push").await;
    let database = postgres_database_for(shared.path()).await.unwrap();
    let name = database.rsplit('/').next().unwrap().to_string();
    admin_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;

    for (method, path) in [
        (Method::GET, "/v2/db/app/tags/list"),
        (Method::POST, "/v2/db/app/blobs/uploads/"),
    ] {
        let resp = one.req(method.clone(), path).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    }
    let login = one
        .req(Method::GET, "/oauth2/token")
        .basic_auth("default", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = one.req(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        one.req(Method::GET, "/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );

    admin_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let started = one
        .req(Method::POST, "/v2/db/app/blobs/uploads/")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        started.status(),
        StatusCode::ACCEPTED,
        "the pool reconnects once the database is back"
    );
}

/// Both nodes run the collector every second; each pass takes the lease, so every unreferenced blob is
/// collected once, by one node or the other, and the bytes are gone from the shared folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_take_turns_collecting_and_collect_each_blob_once() {
    let gc = [("BERTH_GC_GRACE_SECS", "2"), ("BERTH_GC_INTERVAL_SECS", "1")];
    let Some((one, two, shared)) = two_nodes_with(&gc).await else {
        return;
    };
    let password = one.admin_password().await;
    let token = one.token(&password, "repository:gc/app:pull,push").await;
    let mut digests = Vec::new();
    for n in 0..40 {
        let data = bytes(10_000, n);
        let digest = sha256(&data);
        let resp = one
            .req(Method::POST, &format!("/v2/gc/app/blobs/uploads/?digest={digest}"))
            .bearer_auth(&token)
            .body(data)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        digests.push(digest);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status: Value = two
            .req(Method::GET, "/api/registries/default/gc")
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["totalBlobsRemoved"] == 40 && status["queuedBlobs"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "collected within 30 s: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let collected = |node: &Served| -> i64 {
        node.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|j| j["fields"]["message"] == "collected garbage")
            .map(|j| j["fields"]["blobs"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(collected(&one) + collected(&two), 40, "each blob collected once");
    let left = crate::gc::files_below(&shared.path().join("registries/default"));
    assert!(left.is_empty(), "the bytes are gone: {left:?}");
    let head = two
        .req(Method::HEAD, &format!("/v2/gc/app/blobs/{}", digests[0]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
}
