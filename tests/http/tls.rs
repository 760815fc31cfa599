//! HTTPS served by Berth itself (`http.tls_cert_file` / `http.tls_key_file`): a CA and a server
//! certificate made here with rcgen, clients that trust the CA (reqwest, skopeo `--cert-dir`) and one that
//! does not, the realm's scheme, the real `berth serve` process, and clear refusals of bad PEM files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::{OCI_MANIFEST, TestServer, bytes, header, sha256};
use crate::skopeo::{Layout, Setup, assert_same_layout};

/// A test CA and a server certificate it signed for localhost, default.localhost and 127.0.0.1, as PEM
/// files in a temp folder; `cert_dir` holds only `ca.crt` (what `--cert-dir` and docker's certs.d want).
struct Pki {
    _dir: tempfile::TempDir,
    ca_pem: String,
    cert_file: PathBuf,
    key_file: PathBuf,
    cert_dir: PathBuf,
}

impl Pki {
    fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "Berth test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

        let names = ["localhost", "default.localhost", "127.0.0.1"].map(String::from);
        let mut leaf = CertificateParams::new(names.to_vec()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &ca).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("server.crt");
        let key_file = dir.path().join("server.key");
        let cert_dir = dir.path().join("certs");
        std::fs::write(&cert_file, leaf.pem()).unwrap();
        std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();
        std::fs::create_dir(&cert_dir).unwrap();
        std::fs::write(cert_dir.join("ca.crt"), ca.pem()).unwrap();
        Pki {
            _dir: dir,
            ca_pem: ca.pem(),
            cert_file,
            key_file,
            cert_dir,
        }
    }

    /// A client trusting the test CA.
    fn client(&self) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        reqwest::Client::builder().add_root_certificate(ca)
    }

    /// A test server speaking HTTPS with this certificate; its helpers trust the CA.
    async fn server(&self) -> TestServer {
        TestServer::start_with_client(self.client().build().unwrap(), |config| {
            config.http.tls_cert_file = self.cert_file.clone();
            config.http.tls_key_file = self.key_file.clone();
        })
        .await
    }
}

/// The whole chain of an error, for matching on its cause.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_challenge_names_an_https_realm_and_a_client_trusting_the_ca_pushes_and_pulls() {
    let pki = Pki::new();
    let server = pki.server().await;
    let addr = server.base.strip_prefix("https://").expect("an https base").to_string();
    let port = addr.rsplit_once(':').unwrap().1;
    // The login server's own name, resolved to the test server (its certificate names it).
    let client = pki
        .client()
        .resolve("default.localhost", addr.parse().unwrap())
        .build()
        .unwrap();
    let base = format!("https://default.localhost:{port}");
    let realm = format!("{base}/oauth2/token");

    let resp = client.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&resp, "www-authenticate"),
        format!(r#"Bearer realm="{realm}",service="default.localhost""#)
    );
    let repo = "tls/app";
    let resp = client
        .get(format!("{base}/v2/{repo}/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&resp, "www-authenticate"),
        format!(r#"Bearer realm="{realm}",service="default.localhost",scope="repository:{repo}:pull""#)
    );
    // What a proxy in front says still wins over the server's own scheme.
    let proxied = client
        .get(format!("{base}/v2/"))
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert!(
        header(&proxied, "www-authenticate").starts_with(&format!(r#"Bearer realm="http://default.localhost:{port}/"#)),
        "{:?}",
        proxied.headers()
    );

    // docker login: the realm without a scope, then a token for the repository.
    let login = client
        .get(&realm)
        .query(&[("service", "default.localhost")])
        .basic_auth("default", Some(&server.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let wrong = client
        .get(&realm)
        .query(&[("service", "default.localhost")])
        .basic_auth("default", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let token: Value = client
        .get(&realm)
        .query(&[
            ("service", "default.localhost"),
            ("scope", &format!("repository:{repo}:pull,push")),
        ])
        .basic_auth("default", Some(&server.admin_password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap();

    let data = bytes(300_000, 7);
    let digest = sha256(&data);
    let pushed = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED, "{}", pushed.text().await.unwrap());
    let pulled = client
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(header(&pulled, "docker-content-digest"), digest);
    assert!(
        pulled.bytes().await.unwrap() == data,
        "the blob comes back byte for byte"
    );

    // The test server's own helpers (127.0.0.1, also named by the certificate) work over HTTPS as well.
    let manifest = server.push_image(repo, "v1", b"layer over https").await;
    let resp = server
        .req(Method::HEAD, &format!("/v2/{repo}/manifests/v1"))
        .await
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "docker-content-digest"), manifest);

    // A client that does not trust the CA is refused at the handshake; so is plain HTTP on the port.
    let untrusting = reqwest::Client::new().get(format!("{}/v2/", server.base)).send().await;
    let err = untrusting.expect_err("a client not trusting the CA must not connect");
    let text = chain(&err);
    assert!(
        text.contains("UnknownIssuer") || text.contains("certificate"),
        "a certificate error: {text}"
    );
    let plain = reqwest::Client::new().get(format!("http://{addr}/v2/")).send().await;
    assert!(
        plain.is_err(),
        "plain HTTP on the HTTPS port gets no answer: {:?}",
        plain.map(|r| r.status())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_are_refused_with_errors_naming_them() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let load = |cert: &Path, key: &Path| {
        let mut config = berth::config::Config::for_tests(dir.path());
        config.http.tls_cert_file = cert.to_path_buf();
        config.http.tls_key_file = key.to_path_buf();
        match berth::tls::from_config(&config.http) {
            Ok(_) => panic!("{} / {} accepted", cert.display(), key.display()),
            Err(e) => format!("{e:#}"),
        }
    };
    let missing = dir.path().join("missing.crt");
    let err = load(&missing, &pki.key_file);
    assert!(
        err.contains("reading the TLS certificate file") && err.contains(&*missing.to_string_lossy()),
        "{err}"
    );
    let err = load(&pki.cert_file, &dir.path().join("missing.key"));
    assert!(err.contains("reading the TLS private key file"), "{err}");

    let not_pem = dir.path().join("not-pem.crt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let err = load(&not_pem, &pki.key_file);
    assert!(err.contains("holds no certificate"), "{err}");
    // The key file given the certificate: no key in it.
    let err = load(&pki.cert_file, &pki.cert_file);
    assert!(err.contains("holds no private key"), "{err}");
    // A real key, but not the certificate's.
    let other = Pki::new();
    let err = load(&pki.cert_file, &other.key_file);
    assert!(err.contains("does not fit the certificate"), "{err}");
    let broken = dir.path().join("broken.key");
    std::fs::write(&broken, "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n").unwrap();
    let err = load(&pki.cert_file, &broken);
    assert!(err.contains("not valid PEM"), "{err}");

    let mut config = berth::config::Config::for_tests(dir.path());
    config.http.tls_cert_file = pki.cert_file.clone();
    let err = berth::tls::from_config(&config.http).unwrap_err().to_string();
    assert!(err.contains("set both or neither"), "{err}");

    // `berth serve` stops at once with that message (before touching the database).
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .env("BERTH_HTTP_BIND", "127.0.0.1:0")
        .env("BERTH_DATA_DIR", dir.path().join("data"))
        .env("BERTH_TLS_CERT_FILE", &missing)
        .env("BERTH_TLS_KEY_FILE", &pki.key_file)
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "berth serve started with a missing certificate");
    assert!(
        stderr.contains("reading the TLS certificate file") && stderr.contains(&*missing.to_string_lossy()),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_serve_speaks_https_from_env_and_shuts_down_gracefully() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--log-format", "json"])
        .env("BERTH_HTTP_BIND", "127.0.0.1:0")
        .env("BERTH_DATA_DIR", dir.path())
        .env("BERTH_TLS_CERT_FILE", &pki.cert_file)
        .env("BERTH_TLS_KEY_FILE", &pki.key_file)
        .env("BERTH_LOG_LEVEL", "info")
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(json) = serde_json::from_str::<Value>(&line)
                && json["fields"]["message"] == "berth listening"
            {
                return json;
            }
        }
        panic!("berth serve exited before listening")
    })
    .await
    .expect("berth serve started");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    assert_eq!(listening["fields"]["tls"], true, "{listening}");
    let addr = listening["fields"]["address"].as_str().unwrap();
    let base = format!("https://{addr}");

    let client = pki.client().build().unwrap();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let challenge = client.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(
        header(&challenge, "www-authenticate"),
        format!(r#"Bearer realm="https://{addr}/oauth2/token",service="default.localhost""#)
    );

    // SIGTERM with an idle keep-alive connection open: the server exits 0 and accepts no more.
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server exits")
        .unwrap();
    assert!(status.success(), "{status}");
    let fresh = pki
        .client()
        .build()
        .unwrap()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(fresh.is_err(), "no new connections after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_in_and_out_over_https_trusting_the_ca_with_cert_dir() {
    let pki = Pki::new();
    let s = Setup::with_server(pki.server().await, Some(pki.cert_dir.clone()));
    let repo = "tls/skopeo";
    let src = s.path("src");
    let layout = Layout::new(src.clone());
    let manifest = layout.image("linux", "amd64", 3);
    layout.tag("v1", OCI_MANIFEST, &manifest);

    // Without the CA skopeo refuses the server's certificate.
    let err = s
        .skopeo_result(&["inspect", "--raw", &s.docker_ref(repo, "v1")])
        .await
        .expect_err("skopeo must not trust the test CA by itself");
    assert!(
        err.contains("certificate signed by unknown authority") || err.contains("x509"),
        "{err}"
    );

    // --creds on the command line only: the auth file is empty.
    s.logout();
    let creds = format!("default:{}", s.server.admin_password);
    s.push_as(Some(&creds), &src, "v1", repo, "v1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = s.path("out");
    s.pull_as(Some(&creds), repo, "v1", &out, "v1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_same_layout(&src, &out, "v1");
    let by_digest = s.path("by-digest");
    s.pull_as(Some(&creds), repo, &sha256(&manifest), &by_digest, "v1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_same_layout(&src, &by_digest, "v1");
    let inspected = s
        .skopeo(&[
            "inspect",
            "--raw",
            &format!("--cert-dir={}", pki.cert_dir.display()),
            "--creds",
            &creds,
            &s.docker_ref(repo, "v1"),
        ])
        .await;
    assert!(inspected == manifest, "the manifest comes back as pushed");

    // Wrong credentials are refused over HTTPS too.
    let err = s
        .pull_as(Some("default:wrong"), repo, "v1", &s.path("refused"), "v1")
        .await
        .expect_err("wrong credentials must be refused");
    assert!(err.to_lowercase().contains("unauthorized"), "{err}");
}

#[tokio::test]
async fn the_portal_s_session_cookie_is_secure_over_https() {
    let pki = Pki::new();
    let server = pki.server().await;
    let client = pki
        .client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(server.url("/portal/sign-in"))
        .form(&[("kind", "operator"), ("token", berth::config::TEST_OPERATOR_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
}
