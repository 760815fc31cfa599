//! The web portal in a real browser (Debian's chromium, driven through chromedriver with fantoccini), and
//! its security properties over plain HTTP. The browser walk follows the seed's flows: sign in as the
//! operator, create a registry, enable its admin user, read and regenerate a password (skopeo login works
//! with the new one and fails with the old), push with skopeo and find the image under Repositories,
//! delete a tag, create a Reader principal and see its password once, restore the tag from the activity
//! log, sign out, sign in as the registry's Owner and find no other registry anywhere. Screenshots of the main pages land in
//! `target/portal-screenshots/` (the README shows copies from `tests/screenshots/`).
//!
//! chromium and chromium-driver must be installed (`apt-get install chromium chromium-driver`); without
//! them these tests fail, they never skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use berth::config::TEST_OPERATOR_TOKEN;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{OCI_INDEX, TestServer};
use crate::skopeo::{Layout, Setup};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A headless chromium behind its own chromedriver, both gone when this is dropped.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        // reqwest and fantoccini both bring rustls; the process picks ring, as the server does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver is not installed (apt-get install chromium chromium-driver): {e}")
            });
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .unwrap()
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        _driver: driver,
                        _profile: profile,
                    };
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a chromium session: {last_error}");
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element,
            Err(e) => panic!("no {selector} on {}: {e}", self.url().await),
        }
    }

    async fn text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.unwrap()
    }

    async fn value(&self, selector: &str) -> String {
        self.css(selector)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    async fn fill(&self, selector: &str, text: &str) {
        let field = self.css(selector).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks what changes the page in place (a script's button).
    async fn click(&self, selector: &str) {
        self.css(selector).await.click().await.unwrap();
    }

    /// Clicks a link or a form's button and waits for the page it leads to.
    async fn follow(&self, selector: &str) {
        let element = self.css(selector).await;
        self.navigating(element).await;
    }

    async fn click_link(&self, text: &str) {
        match self.client.find(Locator::LinkText(text)).await {
            Ok(link) => self.navigating(link).await,
            Err(e) => panic!("no link {text:?} on {}: {e}", self.url().await),
        }
    }

    /// Marks the current document, clicks `element`, and waits until another document has loaded.
    async fn navigating(&self, element: fantoccini::elements::Element) {
        self.client
            .execute("window.berthOldPage = true;", vec![])
            .await
            .unwrap();
        element.click().await.unwrap();
        let check = "return window.berthOldPage !== true && document.readyState === 'complete';";
        for _ in 0..200 {
            if self.client.execute(check, vec![]).await.ok() == Some(json!(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no new page after a click on {}", self.url().await);
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/portal-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Sends a POST from the page's own origin with `fields`, as a forged form would (no CSRF token
    /// unless given); returns the status.
    async fn post_from_page(&self, path: &str, fields: Value) -> u64 {
        let script = r#"
            const [path, fields, done] = arguments;
            fetch(path, { method: "POST", body: new URLSearchParams(fields), credentials: "same-origin" })
                .then((r) => done(r.status), (e) => done(String(e)));
        "#;
        let status = self
            .client
            .execute_async(script, vec![json!(path), fields])
            .await
            .unwrap();
        status.as_u64().unwrap_or_else(|| panic!("the POST failed: {status}"))
    }
}

/// Signs `browser` in with the registry form.
async fn sign_in_to_registry(browser: &Browser, base: &str, registry: &str, username: &str, password: &str) {
    browser.goto(&format!("{base}/portal/sign-in")).await;
    browser.fill("#registry-name", registry).await;
    browser.fill("#registry-username", username).await;
    browser.fill("#registry-password", password).await;
    browser.follow("#registry-sign-in button[type=submit]").await;
}

/// An OCI layout with one small image tagged `v1`.
fn image_layout(dir: PathBuf, seed: u8) -> PathBuf {
    let layout = Layout::new(dir.clone());
    let manifest = layout.image("linux", "amd64", seed);
    layout.tag("v1", OCI_MANIFEST, &manifest);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flows_work_in_a_real_browser() {
    let server = TestServer::start().await;
    let base = server.base.clone();
    let port = base.rsplit_once(':').unwrap().1.to_string();
    let browser = Browser::start().await;

    // Not signed in: every page leads to the sign-in form.
    browser.goto(&format!("{base}/")).await;
    assert!(
        browser.url().await.ends_with("/portal/sign-in"),
        "{}",
        browser.url().await
    );
    browser.screenshot("sign-in").await;
    browser.fill("#operator-token", "not-the-token").await;
    browser.follow("#operator-sign-in button[type=submit]").await;
    assert!(browser.text("#sign-in-error").await.contains("not an operator token"));
    browser.fill("#operator-token", TEST_OPERATOR_TOKEN).await;
    browser.follow("#operator-sign-in button[type=submit]").await;
    assert!(
        browser.url().await.ends_with("/portal/registries"),
        "{}: {}",
        browser.url().await,
        browser.source().await
    );
    assert!(browser.text("#registries").await.contains("default"));

    // Create a registry: the name rule is checked as it is typed, and on submit.
    browser.fill("#new-name", "ab").await;
    assert_eq!(browser.text("#new-name-hint").await, "5 to 50 letters and digits");
    browser.fill("#new-name", "walkreg").await;
    assert_eq!(browser.text("#new-name-hint").await, "");
    browser.css("#new-sku").await.select_by_value("Standard").await.unwrap();
    browser.fill("#new-tags", "team=web").await;
    browser.screenshot("registries").await;
    browser.follow("#create-registry button[type=submit]").await;
    assert!(browser.url().await.ends_with("/portal/registries/walkreg"));
    let login_server = format!("walkreg.localhost:{port}");
    assert_eq!(browser.text("#login-server").await, login_server);
    assert!(
        browser
            .text("#quick-start")
            .await
            .contains(&format!("docker push {login_server}/hello-world:v1"))
    );
    browser.screenshot("overview").await;
    browser.goto(&format!("{base}/portal/registries")).await;
    browser.fill("#new-name", "walkreg").await;
    browser.follow("#create-registry button[type=submit]").await;
    assert!(browser.text("#create-error").await.contains("exists already"));

    // Access keys: enable the admin user, read a password, regenerate it.
    browser.goto(&format!("{base}/portal/registries/walkreg")).await;
    browser.click_link("Access keys").await;
    assert_eq!(browser.text("#admin-state").await, "Disabled");
    browser.follow("#toggle-admin").await;
    assert_eq!(browser.text("#admin-state").await, "Enabled");
    assert_eq!(
        browser.css("#password").await.attr("type").await.unwrap().as_deref(),
        Some("password")
    );
    browser.click("[data-reveal=password]").await;
    assert_eq!(
        browser.css("#password").await.prop("type").await.unwrap().as_deref(),
        Some("text")
    );
    browser.screenshot("access-keys").await;
    let old_password = browser.value("#password").await;
    let second_password = browser.value("#password2").await;
    assert_eq!(old_password.len(), 32);
    browser.follow("#regenerate-password").await;
    let new_password = browser.value("#password").await;
    assert_ne!(new_password, old_password);
    assert_eq!(
        browser.value("#password2").await,
        second_password,
        "the other password stays"
    );

    // What docker login does (the base's challenge, then the token endpoint with Basic): skopeo login.
    let skopeo = Setup::for_registry(server, "walkreg");
    let login = |password: String| {
        let skopeo = &skopeo;
        async move {
            let host = skopeo.host.clone();
            skopeo
                .skopeo_result(&["login", "--tls-verify=false", "-u", "walkreg", "-p", &password, &host])
                .await
        }
    };
    login(new_password.clone()).await.unwrap();
    let refused = login(old_password).await.unwrap_err();
    assert!(refused.contains("invalid username/password"), "{refused}");

    // Push an image with skopeo and find it under Repositories with its tags.
    skopeo.login("walkreg", &new_password);
    let layout = image_layout(skopeo.path("layout"), 7);
    let pushed_digest = crate::skopeo::tagged_digest(&layout, "v1");
    for tag in ["v1", "v2"] {
        skopeo.push_as(None, &layout, "v1", "hello/app", tag).await.unwrap();
    }
    browser.click_link("Repositories").await;
    browser.fill("#search", "hello").await;
    browser.follow("form[role=search] button").await;
    browser.click_link("hello/app").await;
    let tags = browser.text("#tags").await;
    assert!(
        tags.contains("v1") && tags.contains("v2") && tags.contains(&pushed_digest),
        "{tags}"
    );
    assert!(tags.contains(OCI_MANIFEST), "{tags}");
    assert_eq!(
        browser.value("#pull-command").await,
        format!("docker pull {login_server}/hello/app:v1")
    );
    browser.screenshot("repository").await;

    // Delete a tag, after a confirmation.
    browser.follow("#tag-v1 a.delete-tag").await;
    assert!(browser.text("#confirm-delete h2").await.contains("hello/app:v1"));
    browser.follow("#confirm-delete-button").await;
    assert!(browser.source().await.contains("Deleted v1."));
    let v1_rows = browser.client.find_all(Locator::Css("#tag-v1")).await.unwrap();
    assert!(v1_rows.is_empty(), "v1 is gone from the tags");
    assert!(browser.text("#tag-v2").await.contains(&pushed_digest));
    let history = browser.text(".history").await;
    assert!(
        history.contains("operator"),
        "the delete is in the tag history: {history}"
    );
    let skopeo_err = skopeo
        .skopeo_result(&["inspect", "--tls-verify=false", &skopeo.docker_ref("hello/app", "v1")])
        .await
        .unwrap_err();
    assert!(skopeo_err.contains("manifest unknown"), "{skopeo_err}");

    // Access control: a Reader principal, its password shown once.
    browser.click_link("Access control (IAM)").await;
    browser.fill("#sp-name", "ci-reader").await;
    browser.css("#sp-role").await.select_by_value("Reader").await.unwrap();
    browser.follow("#create-principal button[type=submit]").await;
    let reader_app_id = browser.value("#new-app-id").await;
    let reader_password = browser.value("#new-password").await;
    assert_eq!(reader_password.len(), 32);
    assert!(browser.text("#assignments").await.contains("Reader"));
    browser.screenshot("access-control").await;
    browser.click_link("Access control (IAM)").await;
    assert!(
        !browser.source().await.contains(&reader_password),
        "the password is shown once"
    );

    // The other pages of the registry render.
    for (link, shot) in [
        ("Tag immutability", "immutability"),
        ("Retention", "retention"),
        ("Activity log", "activity"),
    ] {
        browser.click_link(link).await;
        browser.screenshot(shot).await;
    }
    assert!(browser.text(".history").await.contains("hello/app"));

    // The deleted tag comes back from the activity log, and pulls again.
    browser
        .follow("form.restore-tag button[aria-label^='Restore hello/app:v1 to']")
        .await;
    let notice = browser.text("p.notice").await;
    assert!(
        notice.contains(&format!("Restored {pushed_digest} in hello/app, with tags v1.")),
        "{notice}"
    );
    skopeo
        .skopeo_result(&["inspect", "--tls-verify=false", &skopeo.docker_ref("hello/app", "v1")])
        .await
        .unwrap();

    // A forged POST (no form token) from the page's own origin is refused; with the token it works.
    let csrf = browser.value("input[name=csrf]").await;
    let admin_path = "/portal/registries/walkreg/access-keys/admin-user";
    assert_eq!(
        browser.post_from_page(admin_path, json!({"enabled": "false"})).await,
        403
    );
    let still_enabled = skopeo.server.api_get("/registries/walkreg").await;
    assert_eq!(still_enabled["adminUserEnabled"], true);
    let with_token = json!({"enabled": "true", "csrf": csrf});
    assert_eq!(browser.post_from_page(admin_path, with_token).await, 200);

    // A phone-width screen: the menu stacks above the page.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{base}/portal/registries/walkreg")).await;
    browser.screenshot("overview-phone").await;
    browser.client.set_window_size(1280, 900).await.unwrap();

    // Sign out: the session ends on the server, not only in the browser.
    let cookie = browser.client.get_named_cookie("berth_portal").await.unwrap();
    let cookie = format!("berth_portal={}", cookie.value());
    assert_eq!(
        status_of(&skopeo.server, &cookie, "/portal/registries").await,
        StatusCode::OK
    );
    browser.follow("header form button").await;
    assert!(browser.url().await.ends_with("/portal/sign-in"));
    assert_eq!(
        status_of(&skopeo.server, &cookie, "/portal/registries").await,
        StatusCode::SEE_OTHER
    );
    browser.goto(&format!("{base}/portal/registries/walkreg")).await;
    assert!(browser.url().await.ends_with("/portal/sign-in"));

    // An Owner of walkreg sees walkreg alone, in no page or URL another registry.
    let owner = skopeo
        .server
        .api(Method::POST, "/service-principals/create-for-rbac")
        .json(&json!({"name": "walk-owner", "scopes": ["/registries/walkreg"], "role": "Owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), StatusCode::CREATED);
    let owner: Value = owner.json().await.unwrap();
    let other = skopeo
        .server
        .api(Method::POST, "/registries")
        .json(&json!({"name": "otherreg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::CREATED);
    sign_in_to_registry(
        &browser,
        &base,
        "walkreg",
        owner["appId"].as_str().unwrap(),
        owner["password"].as_str().unwrap(),
    )
    .await;
    browser.goto(&format!("{base}/portal/registries")).await;
    let listed = browser.text("#registries").await;
    assert!(listed.contains("walkreg") && !listed.contains("otherreg") && !listed.contains("default"));
    for page in ["", "/access-keys", "/repositories", "/access-control", "/activity"] {
        browser.goto(&format!("{base}/portal/registries/walkreg{page}")).await;
        assert!(
            !browser.source().await.contains("otherreg"),
            "walkreg{page} names otherreg"
        );
        browser.goto(&format!("{base}/portal/registries/otherreg{page}")).await;
        assert!(
            browser.source().await.contains("Not found"),
            "otherreg{page} is shown to walkreg's Owner"
        );
    }

    // The Reader signs in to the repositories, read-only.
    sign_in_to_registry(&browser, &base, "walkreg", &reader_app_id, &reader_password).await;
    assert!(browser.url().await.ends_with("/portal/registries/walkreg/repositories"));
    browser.click_link("hello/app").await;
    assert!(
        !browser.source().await.contains("Delete tag…"),
        "a Reader deletes nothing"
    );
    browser.click_link("Activity log").await;
    assert!(!browser.source().await.contains("Restore"), "a Reader restores nothing");
    browser
        .goto(&format!("{base}/portal/registries/walkreg/access-keys"))
        .await;
    assert!(browser.source().await.contains("Not allowed"));
    let _ = browser.client.close().await;
}

/// Signs in over plain HTTP; returns the session cookie (`name=value`) and the response.
async fn sign_in(server: &TestServer, fields: &[(&str, &str)]) -> (Option<String>, reqwest::Response) {
    let response = no_redirects()
        .post(server.url("/portal/sign-in"))
        .form(fields)
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (cookie, response)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn status_of(server: &TestServer, cookie: &str, path: &str) -> StatusCode {
    let response = no_redirects()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await;
    response.unwrap().status()
}

#[tokio::test]
async fn the_session_cookie_and_pages_carry_the_security_headers() {
    let server = TestServer::start().await;
    let (cookie, response) = sign_in(&server, &[("kind", "operator"), ("token", TEST_OPERATOR_TOKEN)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Max-Age=28800"] {
        assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: no Secure attribute");
    let page = no_redirects()
        .get(server.url("/portal/registries"))
        .header("cookie", cookie.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
}

#[tokio::test]
async fn a_session_ends_when_the_credentials_behind_it_change() {
    let server = TestServer::start().await;
    let registry = &[
        ("kind", "registry"),
        ("registry", "default"),
        ("username", "default"),
        ("password", server.admin_password.as_str()),
    ];
    let (admin, response) = sign_in(&server, registry).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let admin = admin.unwrap();
    assert_eq!(
        status_of(&server, &admin, "/portal/registries/default/access-keys").await,
        StatusCode::OK
    );
    let renewed = server
        .api(Method::POST, "/registries/default/credentials/renew")
        .json(&json!({"passwordName": "password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), StatusCode::OK);
    assert_eq!(
        status_of(&server, &admin, "/portal/registries/default/access-keys").await,
        StatusCode::SEE_OTHER,
        "a regenerated password ends the sessions opened with it"
    );

    let principal = principal_on(&server, "Owner", "default").await;
    let app_id = principal["appId"].as_str().unwrap();
    let owner = member_cookie(&server, &principal).await;
    assert_eq!(
        status_of(&server, &owner, "/portal/registries/default").await,
        StatusCode::OK
    );
    let reset = server
        .api(Method::POST, &format!("/service-principals/{app_id}/reset-credentials"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(
        status_of(&server, &owner, "/portal/registries/default").await,
        StatusCode::SEE_OTHER,
        "reset credentials end the principal's sessions"
    );

    // A principal without a role on the registry cannot sign in to it, nor learn whether it exists.
    let (none, response) = sign_in(
        &server,
        &[
            ("kind", "registry"),
            ("registry", "nosuchreg"),
            ("username", "default"),
            ("password", "x"),
        ],
    )
    .await;
    assert!(none.is_none());
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_like_the_token_endpoint() {
    let server = TestServer::start_with(|c| c.auth.failed_logins_per_source = 3).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (_, response) = sign_in(&server, &[("kind", "operator"), ("token", "guess")]).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The throttle holds even for the right token, until the source's budget refills.
    let (cookie, response) = sign_in(&server, &[("kind", "operator"), ("token", TEST_OPERATOR_TOKEN)]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(cookie.is_none());
}

#[tokio::test]
async fn changes_need_the_form_token_and_the_same_origin() {
    let server = TestServer::start().await;
    let FormPoster { cookie, csrf, .. } = FormPoster::operator(&server).await;
    let create = |fields: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut request = no_redirects()
            .post(server.url("/portal/registries"))
            .header("cookie", &cookie)
            .form(&fields);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move { request.send().await.unwrap().status() }
    };
    let name = || ("name", "csrfcheck".to_string());
    assert_eq!(create(vec![name()], None).await, StatusCode::FORBIDDEN);
    assert_eq!(
        create(vec![name(), ("csrf", "wrong".into())], None).await,
        StatusCode::FORBIDDEN
    );
    let foreign = create(vec![name(), ("csrf", csrf.clone())], Some("http://evil.example")).await;
    assert_eq!(foreign, StatusCode::FORBIDDEN);
    assert_eq!(
        server
            .api(Method::GET, "/registries/csrfcheck")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND,
        "no refused form changed anything"
    );
    assert_eq!(create(vec![name(), ("csrf", csrf)], None).await, StatusCode::SEE_OTHER);
    assert_eq!(
        server
            .api(Method::GET, "/registries/csrfcheck")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// The operator's session cookie.
async fn operator_cookie(server: &TestServer) -> String {
    let (cookie, _) = sign_in(server, &[("kind", "operator"), ("token", TEST_OPERATOR_TOKEN)]).await;
    cookie.unwrap()
}

async fn page_text(server: &TestServer, cookie: &str, path: &str) -> String {
    let response = no_redirects()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_repository_page_shows_the_platforms_of_an_index_and_the_referrers_of_a_manifest() {
    let server = TestServer::start().await;
    let mut descriptors = Vec::new();
    for (tag, platform) in [
        ("amd64-only", json!({"os": "linux", "architecture": "amd64"})),
        (
            "arm64-only",
            json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ),
    ] {
        let body = server.image_manifest("multi/app", tag.as_bytes(), "").await;
        let pushed = server.put_manifest("multi/app", tag, OCI_MANIFEST, &body).await;
        assert_eq!(pushed.status(), StatusCode::CREATED);
        let digest = crate::common::sha256(body.as_bytes());
        descriptors
            .push(json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": body.len(), "platform": platform}));
    }
    let amd64 = descriptors[0]["digest"].as_str().unwrap().to_string();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}).to_string();
    let pushed = server.put_manifest("multi/app", "v1", OCI_INDEX, &index).await;
    assert_eq!(pushed.status(), StatusCode::CREATED, "{}", pushed.text().await.unwrap());
    let signature = server
        .image_manifest(
            "multi/app",
            b"a signature",
            &format!(r#","artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{amd64}","size":1}}"#),
        )
        .await;
    let signature_digest = crate::common::sha256(signature.as_bytes());
    let pushed = server
        .put_manifest("multi/app", &signature_digest, OCI_MANIFEST, &signature)
        .await;
    assert_eq!(pushed.status(), StatusCode::CREATED, "{}", pushed.text().await.unwrap());

    let cookie = operator_cookie(&server).await;
    let html = page_text(&server, &cookie, "/portal/registries/default/repositories/multi/app").await;
    let v1_row = html
        .split("id=\"tag-v1\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(v1_row.contains("linux/amd64, linux/arm64/v8"), "{v1_row}");
    assert!(v1_row.contains(OCI_INDEX), "{v1_row}");
    let amd64_row = html
        .split("id=\"tag-amd64-only\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        amd64_row.contains(&signature_digest),
        "the signature is a referrer of amd64: {amd64_row}"
    );
    assert!(
        html.contains("docker pull default.localhost:"),
        "the pull command names the login server"
    );
}

#[tokio::test]
async fn the_repository_list_is_searched_and_paginated() {
    let server = TestServer::start().await;
    for i in 0..55 {
        server
            .push_image(&format!("team/svc{i:02}"), "v1", b"shared layer")
            .await;
    }
    server.push_image("other/tool", "v1", b"shared layer").await;
    let cookie = operator_cookie(&server).await;
    let first = page_text(&server, &cookie, "/portal/registries/default/repositories").await;
    assert!(
        first.contains("56 repositories") && first.contains("Page 1 of 2"),
        "{first}"
    );
    assert!(first.contains(">other/tool<") && !first.contains(">team/svc54<"));
    let second = page_text(&server, &cookie, "/portal/registries/default/repositories?page=2").await;
    assert!(second.contains(">team/svc54<") && !second.contains(">other/tool<"));
    let searched = page_text(&server, &cookie, "/portal/registries/default/repositories?q=tool").await;
    assert!(searched.contains("1 repositories match") && searched.contains(">other/tool<"));
    assert!(!searched.contains("team/svc"));
}

/// A signed-in viewer posting the portal's forms as its pages do (with the session's form token).
struct FormPoster<'a> {
    server: &'a TestServer,
    cookie: String,
    csrf: String,
}

impl<'a> FormPoster<'a> {
    async fn operator(server: &'a TestServer) -> FormPoster<'a> {
        FormPoster::signed_in(server, operator_cookie(server).await, "/portal/registries").await
    }

    /// The viewer of session `cookie`, with the form token read from `page`.
    async fn signed_in(server: &'a TestServer, cookie: String, page: &str) -> FormPoster<'a> {
        let page = page_text(server, &cookie, page).await;
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string();
        FormPoster { server, cookie, csrf }
    }

    /// Posts `fields` to `path`, expecting `status`; returns the page.
    async fn expect(&self, status: StatusCode, path: &str, fields: &[(&str, &str)]) -> String {
        let (got, html) = self.post(path, fields).await;
        assert_eq!(got, status, "POST {path} {fields:?}: {html}");
        html
    }

    /// Posts `fields` to `path`; returns the status and the page.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.csrf));
        let response = no_redirects()
            .post(self.server.url(path))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }
}

/// The repository page's locks form with the boxes of `enabled` (write, delete, read, list) ticked.
fn locks_form(enabled: &[&str]) -> Vec<(&'static str, &'static str)> {
    let mut form = vec![("action", "locks")];
    for (attribute, field) in [
        ("write", "write_enabled"),
        ("delete", "delete_enabled"),
        ("read", "read_enabled"),
        ("list", "list_enabled"),
    ] {
        if enabled.contains(&attribute) {
            form.push((field, "true"));
        }
    }
    form
}

#[tokio::test]
async fn locks_immutability_and_retention_are_changed_from_their_pages() {
    let server = TestServer::start().await;
    server.push_image("team/app", "v1", b"layer one").await;
    server.push_image("team/app", "old", b"layer two").await;
    let poster = FormPoster::operator(&server).await;
    let repo_page = "/portal/registries/default/repositories/team/app";

    // Locks: unticking "Write enabled" locks the repository against pushes.
    let html = poster
        .expect(StatusCode::OK, repo_page, &locks_form(&["delete", "read", "list"]))
        .await;
    assert!(html.contains("Locks saved."));
    let shown = server.api_get("/registries/default/repositories/team/app").await;
    assert_eq!(shown["changeableAttributes"]["writeEnabled"], false, "{shown}");
    let v1 = server
        .req(Method::GET, "/v2/team/app/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    let v1 = v1.text().await.unwrap();
    let refused = server.put_manifest("team/app", "v2", OCI_MANIFEST, &v1).await;
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "a retag is refused by the write lock"
    );
    // A delete refused by a lock is shown beside the form, as the API words it.
    poster
        .expect(StatusCode::OK, repo_page, &locks_form(&["write", "read", "list"]))
        .await;
    let html = poster
        .expect(
            StatusCode::BAD_REQUEST,
            repo_page,
            &[("action", "delete-tag"), ("target", "v1")],
        )
        .await;
    assert!(
        html.contains("class=\"error\"") && html.contains("deleteEnabled is false"),
        "{html}"
    );
    let all = locks_form(&["write", "delete", "read", "list"]);
    poster.expect(StatusCode::OK, repo_page, &all).await;

    // A tag's own locks, from its row's "Locks…".
    let html = page_text(&server, &poster.cookie, &format!("{repo_page}?locks_tag=v1")).await;
    assert!(html.contains("Locks of tag team/app:v1"), "{html}");
    let mut tag_locks = locks_form(&["delete", "read", "list"]);
    tag_locks.extend([("subject", "tag"), ("target", "v1")]);
    poster.expect(StatusCode::OK, repo_page, &tag_locks).await;
    let v1 = server
        .api_get("/registries/default/repositories/team/app/_tags/v1")
        .await;
    assert_eq!(v1["changeableAttributes"]["writeEnabled"], false, "{v1}");
    let repository = server.api_get("/registries/default/repositories/team/app").await;
    assert_eq!(
        repository["changeableAttributes"]["writeEnabled"], true,
        "only the tag is locked"
    );

    // Tag immutability: a rule added and deleted from its page; a bad glob answered beside the form.
    let rules_page = "/portal/registries/default/immutability";
    poster
        .expect(
            StatusCode::SEE_OTHER,
            rules_page,
            &[
                ("action", "create"),
                ("repositories", "team/**"),
                ("tags", "v*"),
                ("except", "latest, dev"),
            ],
        )
        .await;
    let rules = server.api_get("/registries/default/immutability-rules").await;
    assert_eq!(rules[0]["repositories"], "team/**", "{rules}");
    assert_eq!(rules[0]["except"], json!(["latest", "dev"]));
    let html = poster
        .expect(
            StatusCode::BAD_REQUEST,
            rules_page,
            &[("action", "create"), ("repositories", "team/[**"), ("tags", "v*")],
        )
        .await;
    assert!(html.contains("class=\"error\""), "{html}");
    poster
        .expect(StatusCode::SEE_OTHER, rules_page, &[("action", "delete"), ("id", "1")])
        .await;
    assert_eq!(
        server.api_get("/registries/default/immutability-rules").await,
        json!([])
    );

    // Retention: a rule and the untagged setting saved, then a dry run listing what would go.
    let retention_page = "/portal/registries/default/retention";
    poster
        .expect(
            StatusCode::SEE_OTHER,
            retention_page,
            &[
                ("action", "add-rule"),
                ("filter", "team/.*:old"),
                ("days", "0"),
                ("keep", "0"),
            ],
        )
        .await;
    poster
        .expect(
            StatusCode::SEE_OTHER,
            retention_page,
            &[("action", "untagged"), ("days", "30")],
        )
        .await;
    let policy = server.api_get("/registries/default/retention").await;
    assert_eq!(policy["untaggedDays"], 30, "{policy}");
    assert_eq!(policy["rules"][0]["filter"], "team/.*:old");
    // Ages count in whole seconds: one passes, so "older than 0 days" holds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let html = poster
        .expect(
            StatusCode::OK,
            retention_page,
            &[("action", "run"), ("dry_run", "true")],
        )
        .await;
    assert!(
        html.contains("would delete 1 tags") && html.contains("team/app:old"),
        "{html}"
    );
    let tags = server.api_get("/registries/default/repositories/team/app/_tags").await;
    assert_eq!(tags, json!(["old", "v1"]), "a dry run deletes nothing");
    let html = poster
        .expect(
            StatusCode::BAD_REQUEST,
            retention_page,
            &[("action", "add-rule"), ("filter", "no-colon"), ("days", "1")],
        )
        .await;
    assert!(html.contains("class=\"error\""), "{html}");

    // A manifest deleted by digest, after its confirmation, goes with its tags.
    let old = server
        .api_get("/registries/default/repositories/team/app/_tags/old")
        .await;
    let digest = old["digest"].as_str().unwrap();
    let confirm = format!("{repo_page}?delete_manifest={digest}");
    let html = page_text(&server, &poster.cookie, &confirm).await;
    assert!(html.contains(&format!("Delete manifest {digest}?")), "{html}");
    let fields = [("action", "delete-manifest"), ("target", digest)];
    let html = poster.expect(StatusCode::OK, repo_page, &fields).await;
    assert!(html.contains(&format!("Deleted {digest}.")), "{html}");
    let tags = server.api_get("/registries/default/repositories/team/app/_tags").await;
    assert_eq!(tags, json!(["v1"]));
}

#[tokio::test]
async fn a_registry_is_deleted_only_once_its_name_is_typed() {
    let server = TestServer::start().await;
    let created = server
        .api(Method::POST, "/registries")
        .json(&json!({"name": "doomed1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let poster = FormPoster::operator(&server).await;
    let html = poster
        .expect(
            StatusCode::BAD_REQUEST,
            "/portal/registries/doomed1/delete",
            &[("confirm", "doomed")],
        )
        .await;
    assert!(html.contains("Type doomed1 exactly"), "{html}");
    assert_eq!(
        server
            .api(Method::GET, "/registries/doomed1")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    poster
        .expect(
            StatusCode::SEE_OTHER,
            "/portal/registries/doomed1/delete",
            &[("confirm", "doomed1")],
        )
        .await;
    assert_eq!(
        server
            .api(Method::GET, "/registries/doomed1")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

/// The `aria-label` of a history row's restore button for `repo:tag`.
fn restore_button(repo: &str, tag: &str) -> String {
    format!("aria-label=\"Restore {repo}:{tag} to sha256:")
}

#[tokio::test]
async fn a_tag_or_a_deleted_manifest_is_restored_from_the_history() {
    let server = TestServer::start().await;
    let v1 = server.push_image("team/app", "v1", b"layer one").await;
    let v2 = server.push_image("team/app", "v2", b"layer two").await;
    let poster = FormPoster::operator(&server).await;
    let repo_page = "/portal/registries/default/repositories/team/app";
    let activity = "/portal/registries/default/activity";
    poster
        .expect(StatusCode::OK, repo_page, &[("action", "delete-tag"), ("target", "v1")])
        .await;

    // The delete is the tag's latest change and took a digest away: both histories offer its restore;
    // v2's push took nothing away.
    for path in [activity, repo_page] {
        let html = page_text(&server, &poster.cookie, path).await;
        assert!(html.contains(&restore_button("team/app", "v1")), "{path}: {html}");
        assert!(!html.contains(&restore_button("team/app", "v2")), "{path}: {html}");
    }
    let fields = [("repository", "team/app"), ("reference", "v1")];
    let html = poster.expect(StatusCode::OK, activity, &fields).await;
    assert!(
        html.contains(&format!("Restored {v1} in team/app, with tags v1.")),
        "{html}"
    );
    assert!(
        !html.contains(&restore_button("team/app", "v1")),
        "the restore is now the latest change"
    );
    let pulled = server
        .req(Method::GET, "/v2/team/app/manifests/v1")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(pulled.headers()["docker-content-digest"], v1.as_str());

    // A manifest deleted by digest comes back by digest, with the tag and the signature deleted with it.
    let signature = server
        .image_manifest(
            "team/app",
            b"a signature",
            &format!(r#","artifactType":"application/vnd.example.signature","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{v2}","size":1}}"#),
        )
        .await;
    let signature_digest = crate::common::sha256(signature.as_bytes());
    let pushed = server
        .put_manifest("team/app", &signature_digest, OCI_MANIFEST, &signature)
        .await;
    assert_eq!(pushed.status(), StatusCode::CREATED);
    let fields = [("action", "delete-manifest"), ("target", v2.as_str())];
    poster.expect(StatusCode::OK, repo_page, &fields).await;
    let tags = server.api_get("/registries/default/repositories/team/app/_tags").await;
    assert_eq!(tags, json!(["v1"]));
    let fields = [("repository", "team/app"), ("reference", v2.as_str())];
    let html = poster.expect(StatusCode::OK, activity, &fields).await;
    assert!(
        html.contains(&format!("Restored {v2} in team/app, with tags v2 and 1 referrer.")),
        "{html}"
    );
    let tags = server.api_get("/registries/default/repositories/team/app/_tags").await;
    assert_eq!(tags, json!(["v1", "v2"]));

    // What cannot be restored is said beside the form.
    for (repository, reference, said) in [
        ("team/app", "never", "never pointed elsewhere"),
        ("team/app", v2.as_str(), "is not kept"),
        ("Team//App", "v1", "repository"),
        ("team/app", "bad tag!", "tag"),
    ] {
        let fields = [("repository", repository), ("reference", reference)];
        let html = poster.expect(StatusCode::BAD_REQUEST, activity, &fields).await;
        let error = html.split("class=\"error\"").nth(1).unwrap_or_default();
        assert!(error.contains(said), "{fields:?}: {html}");
    }

    // A Reader sees the history and restores nothing.
    let reader = principal_on(&server, "Reader", "default").await;
    let reader = FormPoster::signed_in(&server, member_cookie(&server, &reader).await, activity).await;
    poster
        .expect(StatusCode::OK, repo_page, &[("action", "delete-tag"), ("target", "v2")])
        .await;
    let html = page_text(&server, &reader.cookie, activity).await;
    assert!(html.contains("team/app"), "{html}");
    assert!(!html.contains("Restore"), "{html}");
    let fields = [("repository", "team/app"), ("reference", "v2")];
    reader.expect(StatusCode::FORBIDDEN, activity, &fields).await;
    let tags = server.api_get("/registries/default/repositories/team/app/_tags").await;
    assert_eq!(tags, json!(["v1"]));
}

#[tokio::test]
async fn a_refused_password_regeneration_answers_400_beside_its_form() {
    let server = TestServer::start().await;
    let poster = FormPoster::operator(&server).await;
    let html = poster
        .expect(
            StatusCode::BAD_REQUEST,
            "/portal/registries/default/access-keys/regenerate",
            &[("password_name", "password3")],
        )
        .await;
    assert!(html.contains("class=\"error\""), "{html}");
    assert!(html.contains("password3"), "{html}");
}

#[tokio::test]
async fn a_one_off_purge_runs_from_the_retention_page() {
    let server = TestServer::start().await;
    for n in 1..=4 {
        let tag = format!("build-{n}");
        server.push_image("team/app", &tag, tag.as_bytes()).await;
    }
    server.push_image("other/tool", "build-1", b"other").await;
    let poster = FormPoster::operator(&server).await;
    let retention_page = "/portal/registries/default/retention";
    let tags = || async { server.api_get("/registries/default/repositories/team/app/_tags").await };
    let purge = |filters: &'static str, max: &'static str, dry_run: bool| {
        let mut form = vec![("action", "purge"), ("filters", filters), ("max_deletions", max)];
        if dry_run {
            form.push(("dry_run", "true"));
        }
        form
    };

    let html = poster
        .expect(StatusCode::OK, retention_page, &purge("team/.*:build-[12]", "", true))
        .await;
    assert!(html.contains("The purge would delete 2 tags"), "{html}");
    assert!(
        html.contains("team/app:build-1") && html.contains("team/app:build-2"),
        "{html}"
    );
    assert_eq!(tags().await, json!(["build-1", "build-2", "build-3", "build-4"]));

    let html = poster
        .expect(StatusCode::OK, retention_page, &purge("team/.*:build-[12]", "", false))
        .await;
    assert!(html.contains("The purge deleted 2 tags"), "{html}");
    assert_eq!(tags().await, json!(["build-3", "build-4"]));
    let tool = server
        .api_get("/registries/default/repositories/other/tool/_tags")
        .await;
    assert_eq!(tool, json!(["build-1"]), "the filter named team/ alone");
    let activity = page_text(&server, &poster.cookie, "/portal/registries/default/activity").await;
    assert!(activity.contains(&restore_button("team/app", "build-1")), "{activity}");

    // Two filters on two lines, and a run that stops at its maximum.
    let html = poster
        .expect(
            StatusCode::OK,
            retention_page,
            &purge("team/.*:build-3\r\n\r\nteam/.*:build-4", "1", false),
        )
        .await;
    assert!(
        html.contains("The purge deleted 1 tags and 0 manifests. It stopped at its maximum"),
        "{html}"
    );
    assert_eq!(tags().await.as_array().unwrap().len(), 1);

    for (field, value, said) in [
        ("filters", "no-colon", "is not REPOSITORY_REGEX:TAG_REGEX"),
        ("filters", "", "give at least one filter"),
        ("ago", "soon", "is not a duration"),
        ("keep", "x", "Keep must be a whole number"),
        ("max_deletions", "-1", "Maximum deletions must be a whole number"),
    ] {
        let mut form = vec![("action", "purge"), ("filters", "team/.*:.*"), (field, value)];
        form.retain(|(name, _)| *name != field);
        form.push((field, value));
        let html = poster.expect(StatusCode::BAD_REQUEST, retention_page, &form).await;
        let error = html.split("class=\"error\"").nth(1).unwrap_or_default();
        assert!(error.contains(said), "{field}={value:?}: {html}");
    }
    assert_eq!(
        tags().await.as_array().unwrap().len(),
        1,
        "a refused purge deletes nothing"
    );
}

#[tokio::test]
async fn the_operator_deletes_a_principal_from_access_control() {
    let server = TestServer::start().await;
    let page = "/portal/registries/default/access-control";
    let reader = principal_on(&server, "Reader", "default").await;
    let reader_id = reader["appId"].as_str().unwrap();
    let reader_cookie = member_cookie(&server, &reader).await;
    let owner = principal_on(&server, "Owner", "default").await;
    let owner = FormPoster::signed_in(&server, member_cookie(&server, &owner).await, page).await;
    let operator = FormPoster::operator(&server).await;
    let html = page_text(&server, &operator.cookie, page).await;
    assert!(html.contains("Delete principal…"), "{html}");
    let html = page_text(&server, &owner.cookie, page).await;
    assert!(!html.contains("Delete principal…"), "{html}");

    let fields = [("action", "delete-principal"), ("app_id", reader_id)];
    owner.expect(StatusCode::FORBIDDEN, page, &fields).await;
    assert_eq!(
        status_of(&server, &reader_cookie, "/portal/registries/default/repositories").await,
        StatusCode::OK
    );
    let html = operator.expect(StatusCode::OK, page, &fields).await;
    assert!(!html.contains(reader_id), "{html}");
    let gone = server
        .api(Method::GET, &format!("/service-principals/{reader_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        status_of(&server, &reader_cookie, "/portal/registries/default/repositories").await,
        StatusCode::SEE_OTHER,
        "the deleted principal's session ends"
    );

    // Only principals holding a role here are deleted from here.
    let created = server
        .api(Method::POST, "/registries")
        .json(&json!({"name": "elsewhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let elsewhere = principal_on(&server, "Reader", "elsewhere").await;
    let fields = [
        ("action", "delete-principal"),
        ("app_id", elsewhere["appId"].as_str().unwrap()),
    ];
    let html = operator.expect(StatusCode::BAD_REQUEST, page, &fields).await;
    assert!(html.contains("has no role on default"), "{html}");
}

/// A new service principal with `role` on `registry`, as the API answers its creation.
async fn principal_on(server: &TestServer, role: &str, registry: &str) -> Value {
    let created = server
        .api(Method::POST, "/service-principals/create-for-rbac")
        .json(&json!({"scopes": [format!("/registries/{registry}")], "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    created.json().await.unwrap()
}

/// The session cookie of `principal` signed in to the default registry.
async fn member_cookie(server: &TestServer, principal: &Value) -> String {
    let fields = [
        ("kind", "registry"),
        ("registry", "default"),
        ("username", principal["appId"].as_str().unwrap()),
        ("password", principal["password"].as_str().unwrap()),
    ];
    sign_in(server, &fields).await.0.unwrap()
}
