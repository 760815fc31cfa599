//! The management API: registries, admin credentials, service principals, role assignments, the
//! OpenAPI document, refusals, and secrets at rest.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::principal;
use crate::common::{TestServer, error_code};

async fn create_registry(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .api(Method::POST, "/registries")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_registry_is_created_in_the_shape_of_az_acr_create() {
    let server = TestServer::start().await;
    let resp = create_registry(
        &server,
        json!({ "name": "myRegistry1", "sku": "standard", "tags": { "team": "warranty" } }),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let reg: Value = resp.json().await.unwrap();
    assert_eq!(reg["name"], "myRegistry1");
    let port = server.base.rsplit_once(':').unwrap().1;
    assert_eq!(
        reg["loginServer"],
        format!("myregistry1.localhost:{port}"),
        "the port the API was reached on, which docker login needs"
    );
    let proxied: Value = server
        .api(Method::GET, "/registries/myRegistry1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "registry.example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        proxied["loginServer"], "myregistry1.localhost",
        "behind a proxy on the default port"
    );
    assert_eq!(reg["id"], "/registries/myRegistry1");
    assert_eq!(reg["adminUserEnabled"], false);
    assert_eq!(reg["provisioningState"], "Succeeded");
    assert_eq!(reg["sku"], json!({ "name": "Standard", "tier": "Standard" }));
    assert_eq!(reg["tags"], json!({ "team": "warranty" }));
    assert!(reg["storageAccount"]["name"].is_string());
    assert!(reg["creationDate"].as_str().unwrap().ends_with('Z'));

    let listed: Value = server.api_get("/registries").await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "myRegistry1"]);
    let shown: Value = server.api_get("/registries/MYREGISTRY1").await;
    assert_eq!(shown, reg);

    let updated: Value = server
        .api(Method::PATCH, "/registries/myRegistry1")
        .json(&json!({ "sku": "Premium", "tags": {} }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["sku"]["name"], "Premium");
    assert_eq!(updated["tags"], json!({}));
    assert_eq!(updated["adminUserEnabled"], false);
}

#[tokio::test]
async fn bad_registry_requests_get_clear_errors() {
    let server = TestServer::start().await;
    for path in ["/api/nope", "/api/registries/taken01/nope", "/nothing"] {
        let resp = server.anon(Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(resp).await, "NOT_FOUND", "{path}");
    }
    create_registry(&server, json!({ "name": "taken01" })).await;
    let cases = [
        (json!({ "name": "abcd" }), 400, "INVALID"),
        (json!({ "name": "has-dash" }), 400, "INVALID"),
        (json!({ "name": "a".repeat(51) }), 400, "INVALID"),
        (json!({ "name": "okname", "sku": "Gold" }), 400, "INVALID"),
        (json!({ "name": "okname", "color": "blue" }), 400, "INVALID"),
        (
            json!({ "name": "okname", "storageLocation": "ftp://somewhere" }),
            400,
            "INVALID",
        ),
        (json!({ "name": "okname", "storageLocation": "s3://" }), 400, "INVALID"),
        (json!({ "sku": "Basic" }), 400, "INVALID"),
        (json!({ "name": "TAKEN01" }), 409, "CONFLICT"),
    ];
    for (body, status, code) in cases {
        let resp = create_registry(&server, body.clone()).await;
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["errors"][0]["code"], code, "{body}");
        assert!(!err["errors"][0]["message"].as_str().unwrap().is_empty());
    }
    let not_json = server
        .api(Method::POST, "/registries")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let unknown = server.api(Method::GET, "/registries/nosuchreg").send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown).await, "NOT_FOUND");

    let anonymous = server.anon(Method::GET, "/api/registries").send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = server
        .anon(Method::GET, "/api/registries")
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (id, password) = principal(&server, "/registries/default", "Reader").await;
    let reader = server
        .anon(Method::GET, "/api/registries/default/credentials")
        .basic_auth(&id, Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(reader.status(), StatusCode::FORBIDDEN);
    let reader_create = server
        .anon(Method::POST, "/api/registries")
        .basic_auth(&id, Some(&password))
        .json(&json!({ "name": "sneaky1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reader_create.status(), StatusCode::FORBIDDEN);
    let hidden = server
        .anon(Method::GET, "/api/registries/nosuchreg")
        .basic_auth(&id, Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(
        hidden.status(),
        StatusCode::FORBIDDEN,
        "a principal does not learn which registries exist"
    );
}

#[tokio::test]
async fn admin_passwords_are_shown_and_renewed_one_at_a_time() {
    let server = TestServer::start().await;
    create_registry(&server, json!({ "name": "creds01" })).await;
    let disabled = server
        .api(Method::GET, "/registries/creds01/credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::CONFLICT);
    assert!(disabled.text().await.unwrap().contains("--admin-enabled true"));

    server
        .api(Method::PATCH, "/registries/creds01")
        .json(&json!({ "adminUserEnabled": true }))
        .send()
        .await
        .unwrap();
    let before: Value = server.api_get("/registries/creds01/credentials").await;
    assert_eq!(before["username"], "creds01");
    assert_eq!(before["passwords"][0]["name"], "password");
    assert_eq!(before["passwords"][1]["name"], "password2");
    let (p1, p2) = (
        before["passwords"][0]["value"].clone(),
        before["passwords"][1]["value"].clone(),
    );
    assert_ne!(p1, p2);

    let login = |password: Value| {
        let server = &server;
        async move {
            server
                .anon(Method::GET, "/oauth2/token")
                .header("host", "creds01.localhost")
                .basic_auth("creds01", Some(password.as_str().unwrap()))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(login(p1.clone()).await, StatusCode::OK);
    assert_eq!(login(p2.clone()).await, StatusCode::OK);

    let after: Value = server
        .api(Method::POST, "/registries/creds01/credentials/renew")
        .json(&json!({ "passwordName": "password" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(after["passwords"][0]["value"], p1);
    assert_eq!(after["passwords"][1]["value"], p2);
    assert_eq!(
        login(p1).await,
        StatusCode::UNAUTHORIZED,
        "the renewed password stops working at once"
    );
    assert_eq!(login(after["passwords"][0]["value"].clone()).await, StatusCode::OK);
    assert_eq!(login(p2.clone()).await, StatusCode::OK);
    let bad = server
        .api(Method::POST, "/registries/creds01/credentials/renew")
        .json(&json!({ "passwordName": "password3" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    server
        .api(Method::PATCH, "/registries/creds01")
        .json(&json!({ "adminUserEnabled": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login(p2).await,
        StatusCode::UNAUTHORIZED,
        "disabling takes effect at once"
    );
}

#[tokio::test]
async fn deleting_a_registry_removes_its_content_and_credentials() {
    let server = TestServer::start().await;
    create_registry(&server, json!({ "name": "doomed01", "adminUserEnabled": true })).await;
    let creds: Value = server.api_get("/registries/doomed01/credentials").await;
    let password = creds["passwords"][0]["value"].as_str().unwrap().to_string();
    let token: Value = server
        .anon(Method::GET, "/oauth2/token?scope=repository:app:push,pull")
        .header("host", "doomed01.localhost")
        .basic_auth("doomed01", Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let digest = crate::common::sha256(b"doomed bytes");
    let pushed = server
        .anon(Method::POST, &format!("/v2/app/blobs/uploads/?digest={digest}"))
        .header("host", "doomed01.localhost")
        .bearer_auth(token["token"].as_str().unwrap())
        .body("doomed bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED);
    let folder = server.dir.join("registries/doomed01");
    assert!(folder.exists());
    let (id, _) = principal(&server, "/registries/doomed01", "Reader").await;

    assert_eq!(
        server
            .api(Method::DELETE, "/registries/doomed01")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(!folder.exists(), "blobs are removed");
    assert_eq!(
        server
            .api(Method::GET, "/registries/doomed01")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let assignments: Value = server.api_get(&format!("/role-assignments?assignee={id}")).await;
    assert_eq!(assignments, json!([]), "role assignments go with it");
    let login = server
        .anon(Method::GET, "/oauth2/token")
        .header("host", "doomed01.localhost")
        .basic_auth("doomed01", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        StatusCode::NOT_FOUND,
        "its login server names no registry now"
    );
    let body: Value = login.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no registry named \"doomed01\""),
        "{body}"
    );

    let again = create_registry(&server, json!({ "name": "doomed01", "adminUserEnabled": true })).await;
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "the name is free again, with nothing of the old one"
    );
    let fresh: Value = server.api_get("/registries/doomed01/repositories").await;
    assert_eq!(fresh, json!([]));
}

#[tokio::test]
async fn service_principals_are_created_reset_listed_and_deleted() {
    let server = TestServer::start().await;
    let short = server
        .api(Method::POST, "/service-principals")
        .json(&json!({ "password": "short" }))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let chosen = server
        .api(Method::POST, "/service-principals")
        .json(&json!({ "name": "ci", "password": "a-long-enough-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::CREATED);
    let chosen: Value = chosen.json().await.unwrap();
    assert_eq!(chosen["password"], "a-long-enough-password");
    assert_eq!(chosen["displayName"], "ci");
    let app_id = chosen["appId"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&app_id).is_ok());

    let listed: Value = server.api_get("/service-principals").await;
    assert_eq!(listed[0]["appId"], app_id.as_str());
    assert!(
        listed[0].get("password").is_none(),
        "a password is shown once, never listed"
    );

    let before = server.api_get("/service-principals").await.as_array().unwrap().len();
    for body in [
        json!({ "scopes": ["/registries/nosuchreg"], "role": "Reader" }),
        json!({ "scopes": ["not-a-scope"], "role": "Reader" }),
        json!({ "scopes": ["/registries/default"], "role": "Admin" }),
        json!({ "scopes": [], "role": "Reader" }),
    ] {
        let resp = server
            .api(Method::POST, "/service-principals/create-for-rbac")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{body}");
    }
    let after = server.api_get("/service-principals").await.as_array().unwrap().len();
    assert_eq!(before, after, "a refused create-for-rbac creates nothing");

    let rbac: Value = server
        .api(Method::POST, "/service-principals/create-for-rbac")
        .json(&json!({ "scopes": ["/registries/default/repositories/warrantydept"], "role": "contributor" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rbac["roleAssignments"][0]["roleDefinitionName"], "Contributor");
    assert_eq!(
        rbac["roleAssignments"][0]["scope"],
        "/registries/default/repositories/warrantydept"
    );
    let listed: Value = server.api_get("/role-assignments?scope=/registries/default").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let reset: Value = server
        .api(Method::POST, &format!("/service-principals/{app_id}/reset-credentials"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(reset["password"], "a-long-enough-password");
    assert_eq!(
        server
            .api(Method::DELETE, &format!("/service-principals/{app_id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server
            .api(Method::GET, &format!("/service-principals/{app_id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_owner_manages_its_registry_and_no_other() {
    let server = TestServer::start().await;
    create_registry(&server, json!({ "name": "owned01" })).await;
    create_registry(&server, json!({ "name": "foreign01" })).await;
    let (owner, password) = principal(&server, "/registries/owned01", "Owner").await;
    let (other, _) = principal(&server, "/registries/foreign01", "Reader").await;
    let as_owner = |method: Method, path: &str| {
        server
            .anon(method, &format!("/api{path}"))
            .basic_auth(&owner, Some(&password))
    };

    let listed: Value = as_owner(Method::GET, "/registries")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "owned01");
    let enable = as_owner(Method::PATCH, "/registries/owned01")
        .json(&json!({ "adminUserEnabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(enable.status(), StatusCode::OK);
    assert_eq!(
        as_owner(Method::GET, "/registries/owned01/credentials")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let assign = as_owner(Method::POST, "/role-assignments")
        .json(&json!({ "assignee": other, "scope": "/registries/owned01", "role": "Reader" }))
        .send()
        .await
        .unwrap();
    assert_eq!(assign.status(), StatusCode::CREATED);

    for (method, path, body) in [
        (Method::GET, "/registries/foreign01/credentials", None),
        (
            Method::PATCH,
            "/registries/foreign01",
            Some(json!({ "adminUserEnabled": true })),
        ),
        (
            Method::POST,
            "/role-assignments",
            Some(json!({ "assignee": owner, "scope": "/registries/foreign01", "role": "Owner" })),
        ),
        (Method::DELETE, "/registries/owned01", None),
        (Method::GET, "/service-principals", None),
        (Method::GET, "/role-assignments", None),
    ] {
        let mut request = as_owner(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }

    // An assignment in another registry answers like one that does not exist.
    let (foreign, _) = principal(&server, "/registries/foreign01", "Reader").await;
    let assignments = server.api_get(&format!("/role-assignments?assignee={foreign}")).await;
    let foreign_id = assignments[0]["id"].as_str().unwrap().to_string();
    for id in [foreign_id.as_str(), "999999"] {
        let resp = as_owner(Method::DELETE, &format!("/role-assignments/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{id}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["message"],
            format!("role assignment {id:?} not found")
        );
    }
    let still: Value = server.api_get(&format!("/role-assignments?assignee={foreign}")).await;
    assert_eq!(
        still.as_array().unwrap().len(),
        1,
        "the foreign assignment is untouched"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let server = TestServer::start().await;
    let resp = server.anon(Method::GET, "/api/openapi.json").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/registries",
        "/registries/{name}/credentials/renew",
        "/service-principals/create-for-rbac",
        "/role-assignments/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

/// Admin passwords are sealed and principal passwords hashed: neither appears in the database file.
#[tokio::test]
async fn secrets_are_not_stored_in_plain_text() {
    if std::env::var("TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        return; // reads the SQLite file
    }
    let server = TestServer::start().await;
    let (_, sp_password) = principal(&server, "/registries/default", "Reader").await;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&server.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("berth.db") {
            files.push(std::fs::read(path).unwrap());
        }
    }
    assert!(!files.is_empty());
    for secret in [
        server.admin_password.as_str(),
        sp_password.as_str(),
        berth::config::TEST_OPERATOR_TOKEN,
    ] {
        assert!(
            files
                .iter()
                .all(|f| !f.windows(secret.len()).any(|w| w == secret.as_bytes())),
            "a secret in plain text"
        );
    }
}

#[tokio::test]
async fn repositories_are_listed_and_removed_through_the_api_whatever_their_names() {
    let server = TestServer::start().await;
    server.push_image("team/tags/web", "v1", b"a").await;
    server.push_image("team/manifests", "v2", b"b").await;
    let tags: Value = server
        .api_get("/registries/default/repositories/team/tags/web/_tags")
        .await;
    assert_eq!(tags, json!(["v1"]));
    let manifests: Value = server
        .api(
            Method::GET,
            "/registries/default/repositories/team/manifests/_manifests",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifests[0]["tags"], json!(["v2"]));
    assert!(manifests[0]["digest"].as_str().unwrap().starts_with("sha256:"));
    let untag = server
        .api(
            Method::DELETE,
            "/registries/default/repositories/team/manifests/_tags/v2",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(untag.status(), StatusCode::NO_CONTENT);
    let deleted = server
        .api(Method::DELETE, "/registries/default/repositories/team/tags/web")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let left: Value = server.api_get("/registries/default/repositories").await;
    assert_eq!(left, json!(["team/manifests"]));
    let pulled = server
        .req(Method::GET, "/v2/team/tags/web/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(
        pulled.status(),
        StatusCode::NOT_FOUND,
        "a deleted repository serves nothing"
    );
}

#[tokio::test]
async fn role_assignments_are_listed_by_registry_or_exact_repository_scope() {
    let server = TestServer::start().await;
    principal(&server, "/registries/default", "Reader").await;
    principal(&server, "/registries/default/repositories/warrantydept", "Contributor").await;
    principal(&server, "/registries/default/repositories/other", "Reader").await;
    let list = |scope: &'static str| {
        let server = &server;
        async move {
            let rows: Value = server.api_get(&format!("/role-assignments?scope={scope}")).await;
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| r["scope"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("/registries/default").await.len(), 3);
    assert_eq!(
        list("/registries/default/repositories/warrantydept").await,
        ["/registries/default/repositories/warrantydept"]
    );
}

/// Deleting a registry deletes everything at its storage location, so a new registry's location must be
/// empty, its own, and outside the data folder; what lies beside it survives the registry's deletion.
#[tokio::test]
async fn a_storage_location_must_be_empty_its_own_and_outside_the_data_folder() {
    let server = TestServer::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = outside.path().display().to_string();
    std::fs::write(outside.path().join("precious.txt"), b"not berth's").unwrap();
    let refused = |location: String, why: &'static str| {
        let server = &server;
        async move {
            let resp = create_registry(server, json!({ "name": "placed01", "storageLocation": location })).await;
            assert_eq!(resp.status(), StatusCode::CONFLICT, "{location}");
            let body: Value = resp.json().await.unwrap();
            let message = body["errors"][0]["message"].as_str().unwrap().to_string();
            assert!(message.contains(why), "{location}: {message}");
        }
    };
    refused(format!("file://{root}"), "is not empty").await;
    refused("file:///".into(), "overlaps the data folder").await;
    refused(format!("file://{}", server.dir.display()), "overlaps the data folder").await;
    refused(
        format!("file://{}/registries/other", server.dir.display()),
        "overlaps the data folder",
    )
    .await;

    let own = format!("file://{root}/placed");
    let created = create_registry(&server, json!({ "name": "placed01", "storageLocation": own })).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    for (location, why) in [
        (own.clone(), "another registry's"),
        (format!("{own}/inner"), "another registry's"),
    ] {
        let resp = create_registry(&server, json!({ "name": "placed02", "storageLocation": location })).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        let body: Value = resp.json().await.unwrap();
        assert!(body["errors"][0]["message"].as_str().unwrap().contains(why), "{body}");
    }
    let memory = create_registry(&server, json!({ "name": "memory01", "storageLocation": "memory://" })).await;
    assert_eq!(memory.status(), StatusCode::CREATED);
    let memory = create_registry(&server, json!({ "name": "memory02", "storageLocation": "memory://" })).await;
    assert_eq!(
        memory.status(),
        StatusCode::CREATED,
        "every registry has a memory store of its own"
    );

    let deleted = server.api(Method::DELETE, "/registries/placed01").send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        std::fs::read(outside.path().join("precious.txt")).unwrap(),
        b"not berth's",
        "what lies beside a deleted registry's location survives"
    );
}
