//! Token auth as docker and containerd do it: challenges, the token endpoint (GET and POST, refresh
//! tokens and their revocation), the role matrix, repository-prefix roles, registry isolation and
//! refused tokens.

use berth::config::TEST_OPERATOR_TOKEN;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{OCI_MANIFEST, TestServer, error_code, header, sha256};

/// Creates a service principal with `role` on `scope` and returns (appId, password).
pub async fn principal(server: &TestServer, scope: &str, role: &str) -> (String, String) {
    let resp = server
        .api(Method::POST, "/service-principals/create-for-rbac")
        .json(&json!({ "scopes": [scope], "role": role }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    (
        body["appId"].as_str().unwrap().into(),
        body["password"].as_str().unwrap().into(),
    )
}

/// The token for `scopes` as `user`, or the status the token endpoint refused with.
async fn token(server: &TestServer, user: &str, password: &str, scopes: &[&str]) -> Result<String, StatusCode> {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let resp = server.token_as(user, password, &scopes).await;
    if resp.status() != StatusCode::OK {
        return Err(resp.status());
    }
    let body: Value = resp.json().await.unwrap();
    Ok(body["token"].as_str().unwrap().to_string())
}

/// Sends a data-plane request the way a client does: token for the needed scope first, then the call.
async fn as_user(
    server: &TestServer,
    creds: Option<(&str, &str)>,
    method: Method,
    path: &str,
    scopes: &[&str],
    body: Option<(&str, Vec<u8>)>,
) -> reqwest::Response {
    let mut builder = server.anon(method, path);
    if let Some((user, password)) = creds
        && let Ok(token) = token(server, user, password, scopes).await
    {
        builder = builder.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        builder = builder.header("content-type", content_type).body(bytes);
    }
    builder.send().await.unwrap()
}

#[tokio::test]
async fn unauthenticated_requests_get_a_bearer_challenge() {
    let server = TestServer::start().await;
    let host = server.base.trim_start_matches("http://").to_string();
    let base = server.anon(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(base.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&base, "www-authenticate"),
        format!(r#"Bearer realm="http://{host}/oauth2/token",service="default.localhost""#)
    );
    assert_eq!(error_code(base).await, "UNAUTHORIZED");
    let pull = server
        .anon(Method::GET, "/v2/team/app/manifests/latest")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&pull, "www-authenticate"),
        format!(
            r#"Bearer realm="http://{host}/oauth2/token",service="default.localhost",scope="repository:team/app:pull""#
        )
    );
    let push = server
        .anon(
            Method::POST,
            "/v2/team/app/blobs/uploads/?mount=sha256:x&from=other/repo",
        )
        .send()
        .await
        .unwrap();
    assert!(
        header(&push, "www-authenticate").contains(r#"scope="repository:team/app:push repository:other/repo:pull""#)
    );
    let catalog = server.anon(Method::GET, "/v2/_catalog").send().await.unwrap();
    assert!(header(&catalog, "www-authenticate").ends_with(r#"scope="registry:catalog:*""#));
    let proxied = server
        .anon(Method::GET, "/v2/")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "registry.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        header(&proxied, "www-authenticate").starts_with(r#"Bearer realm="https://registry.example.com/oauth2/token""#)
    );
    let garbage = server
        .anon(Method::GET, "/v2/")
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&garbage, "www-authenticate").contains(r#"error="invalid_token""#));
    let operator = server
        .anon(Method::GET, "/v2/")
        .bearer_auth(TEST_OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        operator.status(),
        StatusCode::UNAUTHORIZED,
        "the operator token is no data-plane token"
    );
}

/// A login server name under the domain that names no registry is not served by the default registry:
/// `/v2/` still challenges (clients go on to log in), and the token endpoint says what is wrong.
#[tokio::test]
async fn a_host_under_the_domain_that_names_no_registry_is_not_the_default_registry() {
    let server = TestServer::start().await;
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let base = server
        .anon(Method::GET, "/v2/")
        .header("host", format!("typo.localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(base.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&base, "www-authenticate"),
        format!(r#"Bearer realm="http://typo.localhost:{port}/oauth2/token",service="typo.localhost""#)
    );
    let login = server
        .anon(Method::GET, "/oauth2/token?service=typo.localhost")
        .header("host", format!("typo.localhost:{port}"))
        .basic_auth("default", Some(&server.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::NOT_FOUND);
    let body: Value = login.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("no registry named \"typo\""),
        "{body}"
    );
    // A pull with a valid token of the default registry finds nothing there either.
    let token = token(&server, "default", &server.admin_password, &["repository:a/b:pull"])
        .await
        .unwrap();
    let pull = server
        .anon(Method::GET, "/v2/a/b/tags/list")
        .header("host", format!("typo.localhost:{port}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), StatusCode::NOT_FOUND);
    // Hosts outside the domain still reach the default registry.
    let outside = server
        .anon(Method::GET, "/v2/")
        .header("host", "localhost:5000")
        .send()
        .await
        .unwrap();
    assert!(header(&outside, "www-authenticate").ends_with(r#"service="default.localhost""#));
}

#[tokio::test]
async fn the_token_endpoint_answers_docker_login_and_containerd() {
    let server = TestServer::start().await;
    let password = server.admin_password.clone();
    // docker login: GET without scope.
    let login = server
        .client
        .get(server.url("/oauth2/token?service=default.localhost&offline_token=true&client_id=docker"))
        .basic_auth("default", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let body: Value = login.json().await.unwrap();
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_i64().unwrap() >= 60);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let refresh = body["refresh_token"]
        .as_str()
        .expect("offline_token gives a refresh token")
        .to_string();

    for (user, pass) in [("default", "wrong"), ("nobody", password.as_str()), ("", "")] {
        let bad = server
            .client
            .get(server.url("/oauth2/token"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED, "{user}");
    }
    let empty_basic = server
        .client
        .get(server.url("/oauth2/token"))
        .header("authorization", "Basic Og==")
        .send()
        .await
        .unwrap();
    assert_eq!(empty_basic.status(), StatusCode::UNAUTHORIZED);
    let anonymous = server
        .client
        .get(server.url("/oauth2/token?scope=repository:a:pull"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Scopes as repeated parameters and space-separated in one.
    let resp = server
        .client
        .get(server.url("/oauth2/token?scope=repository:a:pull&scope=repository:b:push%20repository:c:pull"))
        .basic_auth("default", Some(&password))
        .send()
        .await
        .unwrap();
    let token: Value = resp.json().await.unwrap();
    let claims = decode_claims(token["token"].as_str().unwrap());
    assert_eq!(claims["access"].as_array().unwrap().len(), 3);
    assert_eq!(claims["aud"], "default.localhost");
    assert_eq!(claims["sub"], "admin");
    for claim in ["iss", "exp", "nbf", "iat", "jti"] {
        assert!(!claims[claim].is_null(), "{claim}");
    }

    // containerd: POST password grant; docker after login: POST refresh_token grant.
    let form = [
        ("grant_type", "password"),
        ("username", "default"),
        ("password", password.as_str()),
        ("service", "default.localhost"),
        ("scope", "repository:a:pull,push"),
        ("client_id", "containerd"),
    ];
    let resp = post_token(&server, &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "repository:a:pull,push");
    assert!(body["access_token"].is_string());
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("service", "default.localhost"),
        ("scope", "repository:a:pull"),
    ];
    let resp = post_token(&server, &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "repository:a:pull");
    let bad_grant = post_token(&server, &[("grant_type", "refresh_token"), ("refresh_token", "forged")]).await;
    assert_eq!(bad_grant.status(), StatusCode::UNAUTHORIZED);
    let bad_password = post_token(
        &server,
        &[
            ("grant_type", "password"),
            ("username", "default"),
            ("password", "nope"),
        ],
    )
    .await;
    assert_eq!(bad_password.status(), StatusCode::UNAUTHORIZED);
    let unknown_grant = post_token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(unknown_grant.status(), StatusCode::BAD_REQUEST);
}

/// `POST /oauth2/token` with a form, as containerd and docker (refresh) do.
async fn post_token(server: &TestServer, form: &[(&str, &str)]) -> reqwest::Response {
    server
        .client
        .post(server.url("/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The JSON claims of a JWT (unverified: the tests only read what the server signed).
pub fn decode_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Nobody,
    Reader,
    Contributor,
    Owner,
    Admin,
    DisabledAdmin,
    Operator,
}

#[tokio::test]
async fn each_identity_gets_exactly_its_rights() {
    let server = TestServer::start().await;
    server.push_image("apps/web", "v1", b"matrix layer").await;
    let secret_blob = server.push_blob("secret/vault", b"not for everyone").await;

    let reader = principal(&server, "/registries/default", "Reader").await;
    let contributor = principal(&server, "/registries/default/repositories/apps", "Contributor").await;
    let owner = principal(&server, "/registries/default", "Owner").await;
    let outsider = principal(&server, "/registries/default/repositories/elsewhere", "Reader").await;
    let disabled = TestServer::start().await;
    let disabled_password = disabled.admin_password.clone();
    disabled
        .api(Method::PATCH, "/registries/default")
        .json(&json!({ "adminUserEnabled": false }))
        .send()
        .await
        .unwrap();

    let rows = [
        (Who::Nobody, [401, 401, 401, 401, 401, 401, 401]),
        (Who::Reader, [200, 403, 403, 200, 403, 403, 403]),
        (Who::Contributor, [200, 201, 202, 200, 202, 403, 403]),
        (Who::Owner, [200, 201, 202, 200, 201, 200, 201]),
        (Who::Admin, [200, 201, 202, 200, 201, 401, 401]),
        (Who::DisabledAdmin, [401, 401, 401, 401, 401, 401, 401]),
        (Who::Operator, [401, 401, 401, 401, 401, 200, 201]),
    ];
    let admin_password = server.admin_password.clone();
    for (round, (who, expected)) in rows.into_iter().enumerate() {
        let target = if matches!(who, Who::DisabledAdmin) {
            &disabled
        } else {
            &server
        };
        let creds: Option<(String, String)> = match who {
            Who::Nobody | Who::Operator => None,
            Who::Reader => Some(reader.clone()),
            Who::Contributor => Some(contributor.clone()),
            Who::Owner => Some(owner.clone()),
            Who::Admin => Some(("default".into(), admin_password.clone())),
            Who::DisabledAdmin => Some(("default".into(), disabled_password.clone())),
        };
        let creds_ref = creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        let mut got = Vec::new();

        let pull = as_user(
            target,
            creds_ref,
            Method::GET,
            "/v2/apps/web/manifests/v1",
            &["repository:apps/web:pull"],
            None,
        )
        .await;
        got.push(pull.status().as_u16());
        let layer = format!("layer for round {round}");
        let digest = sha256(layer.as_bytes());
        let push = as_user(
            target,
            creds_ref,
            Method::POST,
            &format!("/v2/apps/web/blobs/uploads/?digest={digest}"),
            &["repository:apps/web:push,pull"],
            Some(("application/octet-stream", layer.into_bytes())),
        )
        .await;
        got.push(push.status().as_u16());
        let tag = format!("del{round}");
        let body = server
            .req(Method::GET, "/v2/apps/web/manifests/v1")
            .await
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            server
                .put_manifest("apps/web", &tag, OCI_MANIFEST, &body)
                .await
                .status(),
            StatusCode::CREATED
        );
        let delete = as_user(
            target,
            creds_ref,
            Method::DELETE,
            &format!("/v2/apps/web/manifests/{tag}"),
            &["repository:apps/web:delete"],
            None,
        )
        .await;
        got.push(delete.status().as_u16());
        let catalog = as_user(
            target,
            creds_ref,
            Method::GET,
            "/v2/_catalog",
            &["registry:catalog:*"],
            None,
        )
        .await;
        got.push(catalog.status().as_u16());
        let mount = as_user(
            target,
            creds_ref,
            Method::POST,
            &format!("/v2/apps/web/blobs/uploads/?mount={secret_blob}&from=secret/vault"),
            &["repository:apps/web:push,pull", "repository:secret/vault:pull"],
            None,
        )
        .await;
        got.push(mount.status().as_u16());

        let mut manage = target.client.get(target.url("/api/registries/default/credentials"));
        let mut assign = target.client.post(target.url("/api/role-assignments")).json(
            &json!({ "assignee": outsider.0, "scope": "/registries/default/repositories/elsewhere", "role": "Reader" }),
        );
        match (&who, &creds) {
            (Who::Operator, _) => {
                manage = manage.bearer_auth(TEST_OPERATOR_TOKEN);
                assign = assign.bearer_auth(TEST_OPERATOR_TOKEN);
            }
            (_, Some((user, password))) => {
                manage = manage.basic_auth(user, Some(password));
                assign = assign.basic_auth(user, Some(password));
            }
            _ => {}
        }
        got.push(manage.send().await.unwrap().status().as_u16());
        got.push(assign.send().await.unwrap().status().as_u16());
        assert_eq!(
            got, expected,
            "{who:?}: pull, push, delete, catalog, mount from unreadable, manage credentials, assign roles"
        );
    }
}

#[tokio::test]
async fn the_catalog_shows_only_what_the_caller_can_pull() {
    let server = TestServer::start().await;
    for repo in [
        "aspnetcore",
        "warrantydept/dotnet-build",
        "warrantydept/customersubmissions/web",
        "warrantydeptx",
    ] {
        server.push_blob(repo, repo.as_bytes()).await;
    }
    let (id, password) = principal(&server, "/registries/default/repositories/warrantydept", "Reader").await;
    let resp = as_user(
        &server,
        Some((&id, &password)),
        Method::GET,
        "/v2/_catalog",
        &["registry:catalog:*"],
        None,
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["repositories"],
        json!(["warrantydept/customersubmissions/web", "warrantydept/dotnet-build"])
    );
}

#[tokio::test]
async fn a_reader_on_a_prefix_pulls_below_it_and_nothing_else() {
    let server = TestServer::start().await;
    server.push_image("warrantydept/dotnet-build", "v1", b"a").await;
    server.push_image("aspnetcore", "v1", b"b").await;
    let (id, password) = principal(&server, "/registries/default/repositories/warrantydept", "Reader").await;
    let creds = Some((id.as_str(), password.as_str()));
    let ok = as_user(
        &server,
        creds,
        Method::GET,
        "/v2/warrantydept/dotnet-build/manifests/v1",
        &["repository:warrantydept/dotnet-build:pull"],
        None,
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let denied = as_user(
        &server,
        creds,
        Method::GET,
        "/v2/aspnetcore/manifests/v1",
        &["repository:aspnetcore:pull"],
        None,
    )
    .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert!(
        header(&denied, "www-authenticate")
            .ends_with(r#"scope="repository:aspnetcore:pull",error="insufficient_scope""#),
        "a final denial names what is missing"
    );
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert_eq!(
        body["errors"][0]["detail"],
        json!([{ "Type": "repository", "Name": "aspnetcore", "Action": "pull" }])
    );
    assert_eq!(
        body["errors"][0]["message"],
        format!(
            "requested access to the resource is denied: pull on repository aspnetcore refused: service \
             principal {id} has Reader on repositories warrantydept/*"
        ),
        "the message says what was refused and which role the caller holds"
    );
    let push = as_user(
        &server,
        creds,
        Method::POST,
        "/v2/warrantydept/dotnet-build/blobs/uploads/",
        &["repository:warrantydept/dotnet-build:push"],
        None,
    )
    .await;
    assert_eq!(push.status(), StatusCode::FORBIDDEN);
    let body: Value = push.json().await.unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("push on repository warrantydept/dotnet-build refused"),
        "{message}"
    );
    // Nothing tells a caller whether a repository it cannot see exists.
    let ghost = as_user(
        &server,
        creds,
        Method::GET,
        "/v2/no-such-repo/manifests/v1",
        &["repository:no-such-repo:pull"],
        None,
    )
    .await;
    let ghost: Value = ghost.json().await.unwrap();
    assert_eq!(
        ghost["errors"][0]["message"],
        body["errors"][0]["message"].as_str().unwrap().replace(
            "push on repository warrantydept/dotnet-build",
            "pull on repository no-such-repo"
        )
    );
}

#[tokio::test]
async fn a_token_without_the_action_it_could_get_is_told_insufficient_scope() {
    let server = TestServer::start().await;
    server.push_image("repo", "v1", b"x").await;
    let pull_only = token(&server, "default", &server.admin_password, &["repository:repo:pull"])
        .await
        .unwrap();
    let resp = server
        .anon(Method::POST, "/v2/repo/blobs/uploads/")
        .bearer_auth(&pull_only)
        .send()
        .await
        .unwrap();
    // RFC 6750's answer, 403 with the challenge, on which a client that reuses its token fetches another.
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(header(&resp, "www-authenticate").contains(r#"scope="repository:repo:push",error="insufficient_scope""#));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["message"],
        "requested access to the resource is denied: the token does not grant push on repository repo: fetch a \
         token for the scope in WWW-Authenticate"
    );
    let other_repo = server
        .anon(Method::GET, "/v2/other/manifests/v1")
        .bearer_auth(&pull_only)
        .send()
        .await
        .unwrap();
    assert_eq!(other_repo.status(), StatusCode::FORBIDDEN);
    assert!(header(&other_repo, "www-authenticate").contains(r#"scope="repository:other:pull""#));
}

#[tokio::test]
async fn credentials_and_tokens_of_one_registry_never_reach_another() {
    let server = TestServer::start().await;
    for name in ["regalpha", "regbeta"] {
        let resp = server
            .api(Method::POST, "/registries")
            .json(&json!({ "name": name, "adminUserEnabled": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let creds = |name: &'static str| {
        let server = &server;
        async move {
            let body: Value = server.api_get(&format!("/registries/{name}/credentials")).await;
            body["passwords"][0]["value"].as_str().unwrap().to_string()
        }
    };
    let alpha_password = creds("regalpha").await;
    let on = |host: &'static str, method: Method, path: &str| server.anon(method, path).header("host", host);

    // regalpha's admin pushes to regalpha.
    let token_resp = on(
        "regalpha.localhost",
        Method::GET,
        "/oauth2/token?scope=repository:shared/app:pull,push&scope=registry:catalog:*",
    )
    .basic_auth("regalpha", Some(&alpha_password))
    .send()
    .await
    .unwrap();
    let alpha_token = token_resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(decode_claims(&alpha_token)["aud"], "regalpha.localhost");
    let digest = sha256(b"alpha data");
    let pushed = on(
        "regalpha.localhost",
        Method::POST,
        &format!("/v2/shared/app/blobs/uploads/?digest={digest}"),
    )
    .bearer_auth(&alpha_token)
    .body("alpha data")
    .send()
    .await
    .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED);

    // regalpha's password does not log in to regbeta, and regalpha's token is refused there.
    let cross_login = on("regbeta.localhost", Method::GET, "/oauth2/token")
        .basic_auth("regalpha", Some(&alpha_password))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_login.status(), StatusCode::UNAUTHORIZED);
    for (method, path) in [
        (Method::GET, format!("/v2/shared/app/blobs/{digest}")),
        (Method::GET, "/v2/_catalog".to_string()),
        (Method::POST, "/v2/shared/app/blobs/uploads/".to_string()),
    ] {
        let resp = on("regbeta.localhost", method, &path)
            .bearer_auth(&alpha_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // A principal with a role on regalpha only gets nothing on regbeta.
    let (id, password) = principal(&server, "/registries/regalpha", "Contributor").await;
    let refused = on(
        "regbeta.localhost",
        Method::GET,
        "/oauth2/token?scope=repository:shared/app:pull",
    )
    .basic_auth(&id, Some(&password))
    .send()
    .await
    .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "no role there: the login itself is refused"
    );
    let body: Value = refused.json().await.unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("has no role on registry regbeta"), "{message}");
    let alpha_token = on(
        "regalpha.localhost",
        Method::GET,
        "/oauth2/token?scope=repository:shared/app:pull",
    )
    .basic_auth(&id, Some(&password))
    .send()
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    let denied = on(
        "regbeta.localhost",
        Method::GET,
        &format!("/v2/shared/app/blobs/{digest}"),
    )
    .bearer_auth(alpha_token["token"].as_str().unwrap())
    .send()
    .await
    .unwrap();
    assert_eq!(
        denied.status(),
        StatusCode::UNAUTHORIZED,
        "regalpha's token is no good at regbeta"
    );
    // And regalpha's blob is not in regbeta even with regbeta's own admin.
    let beta_password = creds("regbeta").await;
    let beta_admin = on(
        "regbeta.localhost",
        Method::GET,
        "/oauth2/token?scope=repository:shared/app:pull",
    )
    .basic_auth("regbeta", Some(&beta_password))
    .send()
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    let missing = on(
        "regbeta.localhost",
        Method::GET,
        &format!("/v2/shared/app/blobs/{digest}"),
    )
    .bearer_auth(beta_admin["token"].as_str().unwrap())
    .send()
    .await
    .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// Signs arbitrary claims with the server's own key, read from its data folder the way an attacker with
/// the key would; and with a key of another server.
mod forged {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use sqlx::Connection;

    async fn server_key(server: &TestServer) -> (String, EncodingKey) {
        let secret = std::fs::read_to_string(server.dir.join("secret.key")).unwrap();
        let sealer = berth::auth::secrets::SecretBox::from_base64(&secret).unwrap();
        let url = format!("sqlite://{}", server.dir.join("berth.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let (kid, sealed): (String, Vec<u8>) = sqlx::query_as("SELECT kid, private_key FROM signing_keys")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        (kid, EncodingKey::from_ec_der(&sealer.open(&sealed).unwrap()))
    }

    fn sign(kid: &str, key: &EncodingKey, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_string());
        encode(&header, claims, key).unwrap()
    }

    #[tokio::test]
    async fn forged_foreign_expired_misdirected_and_shapeless_tokens_are_refused() {
        if std::env::var("TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
            return; // the key is read from the SQLite file; the Postgres run covers the rest of auth
        }
        let server = TestServer::start().await;
        server.push_blob("r", b"payload").await;
        let path = format!("/v2/r/blobs/{}", sha256(b"payload"));
        let (kid, key) = server_key(&server).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = |aud: &str, exp: i64, access: Option<Value>| {
            // The default registry is row 1; enabling its admin user at start moved the admin epoch to 1.
            let mut c = json!({ "iss": "berth", "sub": "admin", "aud": aud, "exp": exp, "nbf": now - 10, "iat": now - 10, "jti": "t", "rid": 1, "epoch": 1 });
            if let Some(a) = access {
                c["access"] = a;
            }
            c
        };
        let pull = json!([{ "type": "repository", "name": "r", "actions": ["pull"] }]);
        let good = sign(&kid, &key, &claims("default.localhost", now + 300, Some(pull.clone())));
        let check = |token: String, want: StatusCode, what: &'static str| {
            let server = &server;
            let path = path.clone();
            async move {
                let resp = server.anon(Method::GET, &path).bearer_auth(token).send().await.unwrap();
                assert_eq!(resp.status(), want, "{what}");
            }
        };
        check(good.clone(), StatusCode::OK, "a token signed with the server's key").await;
        let mut tampered = good.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        check(tampered, StatusCode::UNAUTHORIZED, "a forged signature").await;
        let (payload_swap, _) = good.rsplit_once('.').unwrap();
        let other_payload = sign(
            &kid,
            &key,
            &claims(
                "default.localhost",
                now + 300,
                Some(json!([{ "type": "repository", "name": "r", "actions": ["pull", "push", "delete"] }])),
            ),
        );
        let spliced = format!(
            "{}.{}.{}",
            payload_swap.split('.').next().unwrap(),
            other_payload.split('.').nth(1).unwrap(),
            good.rsplit('.').next().unwrap()
        );
        check(
            spliced,
            StatusCode::UNAUTHORIZED,
            "a payload spliced under another signature",
        )
        .await;
        check(
            sign(&kid, &key, &claims("other.localhost", now + 300, Some(pull.clone()))),
            StatusCode::UNAUTHORIZED,
            "another audience",
        )
        .await;
        check(
            sign(&kid, &key, &claims("default.localhost", now - 120, Some(pull.clone()))),
            StatusCode::UNAUTHORIZED,
            "an expired token",
        )
        .await;
        check(
            sign(&kid, &key, &claims("default.localhost", now + 300, None)),
            StatusCode::UNAUTHORIZED,
            "no access claim",
        )
        .await;

        let other = TestServer::start().await;
        let (other_kid, other_key) = server_key(&other).await;
        check(
            sign(
                &other_kid,
                &other_key,
                &claims("default.localhost", now + 300, Some(pull.clone())),
            ),
            StatusCode::UNAUTHORIZED,
            "another server's key",
        )
        .await;
        check(
            sign(&kid, &other_key, &claims("default.localhost", now + 300, Some(pull))),
            StatusCode::UNAUTHORIZED,
            "another key under this kid",
        )
        .await;
    }
}

/// A refresh token dies with the credential or the right it came from.
#[tokio::test]
async fn refresh_tokens_are_revoked_by_credential_and_role_changes() {
    let server = TestServer::start().await;
    let refresh_of = |user: String, password: String| {
        let server = &server;
        async move {
            let resp = server
                .client
                .get(server.url("/oauth2/token?offline_token=true"))
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.json::<Value>().await.unwrap()["refresh_token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let refresh_works = |token: String| {
        let server = &server;
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("scope", "repository:a:pull"),
            ];
            post_token(server, &form).await.status() == StatusCode::OK
        }
    };

    let access_of = |password: String| {
        let server = &server;
        async move {
            let body: Value = server.token_as("default", &password, &[]).await.json().await.unwrap();
            body["token"].as_str().unwrap().to_string()
        }
    };
    let access_works = |token: String| {
        let server = &server;
        async move {
            let resp = server
                .anon(Method::GET, "/v2/")
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            resp.status() == StatusCode::OK
        }
    };
    let renew = |name: &'static str| {
        let server = &server;
        async move {
            let resp = server
                .api(Method::POST, "/registries/default/credentials/renew")
                .json(&json!({ "passwordName": name }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let creds: Value = resp.json().await.unwrap();
            creds["passwords"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };

    // Renewing one admin password revokes what it gave out (refresh and access tokens) and nothing that
    // the other one did, so clients rotate without being logged out; disabling the admin revokes all.
    let creds: Value = server.api_get("/registries/default/credentials").await;
    let password2 = creds["passwords"][1]["value"].as_str().unwrap().to_string();
    let (refresh1, access1) = (
        refresh_of("default".into(), server.admin_password.clone()).await,
        access_of(server.admin_password.clone()).await,
    );
    let (refresh2, access2) = (
        refresh_of("default".into(), password2.clone()).await,
        access_of(password2).await,
    );
    for token in [&refresh1, &refresh2] {
        assert!(refresh_works(token.clone()).await);
    }
    let renewed = renew("password2").await;
    assert_eq!(renewed[0], server.admin_password, "password 1 is untouched");
    assert!(!refresh_works(refresh2.clone()).await, "password 2's refresh token");
    assert!(!access_works(access2.clone()).await, "password 2's access token");
    assert!(
        refresh_works(refresh1.clone()).await,
        "password 1's refresh token lives on"
    );
    assert!(
        access_works(access1.clone()).await,
        "password 1's access token lives on"
    );
    let (refresh2, access2) = (
        refresh_of("default".into(), renewed[1].clone()).await,
        access_of(renewed[1].clone()).await,
    );
    let renewed = renew("password").await;
    assert!(
        !refresh_works(refresh1).await,
        "password 1's refresh token, once it is renewed"
    );
    assert!(
        !access_works(access1).await,
        "password 1's access token, once it is renewed"
    );
    assert!(
        refresh_works(refresh2).await && access_works(access2).await,
        "password 2's new ones"
    );

    let admin_refresh = refresh_of("default".into(), renewed[0].clone()).await;
    let access = access_of(renewed[0].clone()).await;
    assert!(access_works(access.clone()).await);
    server
        .api(Method::PATCH, "/registries/default")
        .json(&json!({ "adminUserEnabled": false }))
        .send()
        .await
        .unwrap();
    assert!(!refresh_works(admin_refresh).await, "disabled admin");
    let dead = server
        .anon(Method::GET, "/v2/")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dead.status(),
        StatusCode::UNAUTHORIZED,
        "an admin access token dies with the admin user"
    );

    // A principal's: reset credentials, losing its last role, deletion.
    let (id, password) = principal(&server, "/registries/default", "Reader").await;
    let sp_refresh = refresh_of(id.clone(), password.clone()).await;
    assert!(refresh_works(sp_refresh.clone()).await);
    let reset: Value = server
        .api(Method::POST, &format!("/service-principals/{id}/reset-credentials"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!refresh_works(sp_refresh).await, "reset credentials");
    let old_login = server
        .client
        .get(server.url("/oauth2/token"))
        .basic_auth(&id, Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(
        old_login.status(),
        StatusCode::UNAUTHORIZED,
        "the old password is revoked"
    );
    let new_password = reset["password"].as_str().unwrap().to_string();
    let sp_refresh = refresh_of(id.clone(), new_password.clone()).await;
    let assignments: Value = server.api_get(&format!("/role-assignments?assignee={id}")).await;
    let assignment = assignments[0]["id"].as_str().unwrap();
    assert_eq!(
        server
            .api(Method::DELETE, &format!("/role-assignments/{assignment}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(!refresh_works(sp_refresh).await, "last role removed");
    server
        .api(Method::POST, "/role-assignments")
        .json(&json!({ "assignee": id, "scope": "/registries/default", "role": "Reader" }))
        .send()
        .await
        .unwrap();
    let sp_refresh = refresh_of(id.clone(), new_password).await;
    assert!(refresh_works(sp_refresh.clone()).await);
    assert_eq!(
        server
            .api(Method::DELETE, &format!("/service-principals/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(!refresh_works(sp_refresh).await, "deleted principal");
}

#[tokio::test]
async fn an_upload_outlives_its_token_but_belongs_to_its_principal() {
    let server = TestServer::start().await;
    let scope = ["repository:long/push:pull,push"];
    let first = token(&server, "default", &server.admin_password, &scope).await.unwrap();
    let started = server
        .anon(Method::POST, "/v2/long/push/blobs/uploads/")
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    let location = header(&started, "location").to_string();
    server
        .anon(Method::PATCH, &location)
        .bearer_auth(&first)
        .body("part one, ")
        .send()
        .await
        .unwrap();

    let (id, password) = principal(&server, "/registries/default", "Contributor").await;
    let stranger = token(&server, &id, &password, &scope).await.unwrap();
    let hijack = server
        .anon(Method::PATCH, &location)
        .bearer_auth(&stranger)
        .body("evil")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(hijack).await, "BLOB_UPLOAD_UNKNOWN");

    let second = token(&server, "default", &server.admin_password, &scope).await.unwrap();
    assert_ne!(first, second);
    let digest = sha256(b"part one, part two");
    let done = server
        .anon(Method::PUT, &format!("{location}?digest={digest}"))
        .bearer_auth(&second)
        .body("part two")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_wildcard_scope_grants_only_what_the_roles_allow() {
    let server = TestServer::start().await;
    server.push_image("apps/web", "v1", b"wild").await;
    let (id, password) = principal(&server, "/registries/default", "Reader").await;
    let wild = token(&server, &id, &password, &["repository:apps/web:*"])
        .await
        .unwrap();
    assert_eq!(
        decode_claims(&wild)["access"],
        json!([{ "type": "repository", "name": "apps/web", "actions": ["pull"] }])
    );
    let pull = server
        .anon(Method::GET, "/v2/apps/web/manifests/v1")
        .bearer_auth(&wild)
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), StatusCode::OK);
    let push = server
        .anon(Method::POST, "/v2/apps/web/blobs/uploads/")
        .bearer_auth(&wild)
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), StatusCode::FORBIDDEN);
    let delete = server
        .anon(Method::DELETE, "/v2/apps/web/manifests/v1")
        .bearer_auth(&wild)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
}
