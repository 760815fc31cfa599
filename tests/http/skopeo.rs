//! Round trips through a real client: skopeo (containers/image) copies OCI image layouts built here into
//! Berth and back out, and the digests and every blob must come back byte for byte.
//!
//! skopeo must be installed (`apt-get install skopeo`); without it these tests fail, they never skip.
//! Flags that matter:
//! - `--preserve-digests`: skopeo otherwise gzips the uncompressed layers on push (and on the way back
//!   into an `oci:` layout), which changes every digest;
//! - `--dest-tls-verify=false` / `--src-tls-verify=false`: plain HTTP on 127.0.0.1 (`tls.rs` runs these
//!   helpers against a server speaking HTTPS, with `--cert-dir` holding the test CA instead);
//! - `--policy`: a throwaway accept-anything signature policy, so the host's policy.json does not matter;
//! - `REGISTRY_AUTH_FILE`: a private auth.json with the default registry's admin user; skopeo follows the
//!   Bearer challenge to the token endpoint with it;
//! - `--src-creds` / `--dest-creds` / `--creds appId:password`: a service principal's credentials on the
//!   command line instead (the tests using them empty the auth.json first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{OCI_INDEX, OCI_MANIFEST, TestServer, bytes, sha256};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout being written in a folder.
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    /// Stores `data` under blobs/sha256/ and returns its descriptor.
    fn blob(&self, media_type: &str, data: &[u8]) -> Value {
        let digest = sha256(data);
        std::fs::write(self.dir.join("blobs/sha256").join(&digest["sha256:".len()..]), data).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": data.len()})
    }

    /// Writes a config and three layers of a few hundred KB for `os`/`arch`, then their image manifest;
    /// returns the manifest's bytes.
    pub(crate) fn image(&self, os: &str, arch: &str, seed: u8) -> Vec<u8> {
        let layers: Vec<Value> = (0..3u8)
            .map(|i| {
                self.blob(
                    OCI_LAYER,
                    &bytes(200_000 + 50_000 * usize::from(i) + usize::from(seed), seed + i),
                )
            })
            .collect();
        let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
        let config = json!({
            "architecture": arch,
            "os": os,
            "config": {"Cmd": ["/bin/hello"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = self.blob(OCI_CONFIG, &serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
            "annotations": {"org.opencontainers.image.description": format!("berth skopeo test {os}/{arch}")},
        });
        let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
        self.blob(OCI_MANIFEST, &manifest);
        manifest
    }

    /// Writes index.json naming `top` (a manifest or index already stored as a blob) `tag`.
    pub(crate) fn tag(&self, tag: &str, media_type: &str, top: &[u8]) {
        let mut desc = json!({"mediaType": media_type, "digest": sha256(top), "size": top.len()});
        desc["annotations"] = json!({ REF_NAME: tag });
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }
}

/// Every blob of a layout: file name → bytes.
fn blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

/// The digest index.json of the layout in `dir` gives to `tag`.
pub(crate) fn tagged_digest(dir: &Path, tag: &str) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let found: Vec<&Value> = index["manifests"]
        .as_array()
        .expect("index.json has manifests")
        .iter()
        .filter(|d| d["annotations"][REF_NAME] == tag)
        .collect();
    assert_eq!(found.len(), 1, "one {tag} entry in {index}");
    found[0]["digest"].as_str().unwrap().to_string()
}

/// Checks the layout in `copy` holds exactly the blobs of `original` and tags the same digest.
pub(crate) fn assert_same_layout(original: &Path, copy: &Path, tag: &str) {
    assert_eq!(
        tagged_digest(copy, tag),
        tagged_digest(original, tag),
        "digest of {tag} after the round trip"
    );
    let (want, got) = (blobs(original), blobs(copy));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "blob files after the round trip"
    );
    for (name, data) in &want {
        assert!(
            got[name] == *data,
            "blob {name} differs after the round trip ({} vs {} bytes)",
            got[name].len(),
            data.len()
        );
        assert_eq!(sha256(data), format!("sha256:{name}"), "original blob {name}");
    }
}

/// A running server, a temp folder, a signature policy accepting anything and a credentials file of our
/// own holding the default registry's admin user (so the host's ~/.docker/config.json or auth.json play
/// no part).
pub(crate) struct Setup {
    pub(crate) server: TestServer,
    tmp: tempfile::TempDir,
    policy: PathBuf,
    auth_file: PathBuf,
    pub(crate) host: String,
    /// For a server speaking HTTPS: a folder with the CA certificate (`ca.crt`) that skopeo is to trust
    /// (`--cert-dir`). `None`: plain HTTP (`--tls-verify=false`).
    cert_dir: Option<PathBuf>,
    /// Where skopeo sends its requests when `host` is a registry's login server that does not resolve
    /// here (`<name>.localhost`): the server itself, as an HTTP proxy, which keeps `Host` as named.
    proxy: Option<String>,
}

impl Setup {
    async fn new() -> Self {
        Self::with_server(TestServer::start().await, None)
    }

    /// Skopeo against `server`, trusting the CA certificates in `cert_dir` when it serves HTTPS.
    pub(crate) fn with_server(server: TestServer, cert_dir: Option<PathBuf>) -> Self {
        let host = server.base.split_once("://").unwrap().1.to_string();
        let setup = Self::build(server, host, cert_dir, None);
        // skopeo follows the registry's Bearer challenge and logs in at the token endpoint with these.
        setup.login("default", &setup.server.admin_password);
        setup
    }

    /// Skopeo against registry `name` of `server` (plain HTTP) by its login server `<name>.localhost:port`,
    /// with no credentials yet.
    pub(crate) fn for_registry(server: TestServer, name: &str) -> Self {
        let port = server.base.rsplit_once(':').unwrap().1.to_string();
        let proxy = Some(server.base.clone());
        Self::build(server, format!("{name}.localhost:{port}"), None, proxy)
    }

    fn build(server: TestServer, host: String, cert_dir: Option<PathBuf>, proxy: Option<String>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let policy = tmp.path().join("policy.json");
        std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        let auth_file = tmp.path().join("auth.json");
        let setup = Setup {
            server,
            tmp,
            policy,
            auth_file,
            host,
            cert_dir,
            proxy,
        };
        setup.logout();
        setup
    }

    /// Makes every later skopeo command use these credentials for the server (as `skopeo login` would).
    pub(crate) fn login(&self, username: &str, password: &str) {
        let auth = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{username}:{password}"),
        );
        self.write_auths(json!({self.host.as_str(): {"auth": auth}}));
    }

    /// Empties the auth file: from now on skopeo has only the credentials given on its command line.
    pub(crate) fn logout(&self) {
        self.write_auths(json!({}));
    }

    fn write_auths(&self, auths: Value) {
        let file = json!({ "auths": auths });
        std::fs::write(&self.auth_file, serde_json::to_vec(&file).unwrap()).unwrap();
    }

    /// Runs skopeo and returns its standard output; fails on a missing skopeo, an error exit or a hang.
    pub(crate) async fn skopeo(&self, args: &[&str]) -> Vec<u8> {
        self.skopeo_result(args).await.unwrap_or_else(|err| panic!("{err}"))
    }

    /// Runs skopeo: `Ok(stdout)` on success, `Err(message)` when it exits with an error.
    pub(crate) async fn skopeo_result(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        let mut command = tokio::process::Command::new("skopeo");
        if let Some(proxy) = &self.proxy {
            command.env("HTTP_PROXY", proxy).env("NO_PROXY", "");
        }
        command
            .arg("--policy")
            .arg(&self.policy)
            .args(args)
            .env("REGISTRY_AUTH_FILE", &self.auth_file)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        let output = match tokio::time::timeout(Duration::from_secs(180), command.output()).await {
            Err(_) => panic!("skopeo {args:?} did not finish within 180 s"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("skopeo is not installed (install skopeo: apt-get install skopeo): {e}")
            }
            Ok(Err(e)) => panic!("cannot run skopeo {args:?}: {e}"),
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(format!(
                "skopeo {args:?} failed ({}):\nstdout: {}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub(crate) fn docker_ref(&self, repo: &str, reference: &str) -> String {
        let sep = if reference.starts_with("sha256:") { '@' } else { ':' };
        format!("docker://{}/{repo}{sep}{reference}", self.host)
    }

    async fn push(&self, layout: &Path, tag: &str, repo: &str, dest_tag: &str) {
        self.push_as(None, layout, tag, repo, dest_tag)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    }

    /// Copies `layout:tag` to `repo:dest_tag`, as the auth file's user or with `--dest-creds creds`
    /// ("user:password"); `Err(message)` when skopeo fails.
    pub(crate) async fn push_as(
        &self,
        creds: Option<&str>,
        layout: &Path,
        tag: &str,
        repo: &str,
        dest_tag: &str,
    ) -> Result<Vec<u8>, String> {
        let src = format!("oci:{}:{tag}", layout.display());
        let dest = self.docker_ref(repo, dest_tag);
        self.copy("--dest", creds, &src, &dest).await
    }

    async fn pull(&self, repo: &str, reference: &str, layout: &Path, tag: &str) {
        self.pull_as(None, repo, reference, layout, tag)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    }

    /// Copies `repo:reference` into `layout:tag`, as the auth file's user or with `--src-creds creds`.
    pub(crate) async fn pull_as(
        &self,
        creds: Option<&str>,
        repo: &str,
        reference: &str,
        layout: &Path,
        tag: &str,
    ) -> Result<Vec<u8>, String> {
        let src = self.docker_ref(repo, reference);
        let dest = format!("oci:{}:{tag}", layout.display());
        self.copy("--src", creds, &src, &dest).await
    }

    /// `skopeo copy --all --preserve-digests` where `side` ("--src" or "--dest") is the registry: plain
    /// HTTP there (or HTTPS trusting `cert_dir`), and `{side}-creds` when `creds` is given.
    async fn copy(&self, side: &str, creds: Option<&str>, src: &str, dest: &str) -> Result<Vec<u8>, String> {
        let tls = self.tls_flag(&format!("{side}-"));
        let mut args = vec!["copy", "--all", "--preserve-digests", tls.as_str()];
        let creds_flag = format!("{side}-creds");
        if let Some(creds) = creds {
            args.extend([creds_flag.as_str(), creds]);
        }
        args.extend([src, dest]);
        self.skopeo_result(&args).await
    }

    pub(crate) async fn inspect_raw(&self, repo: &str, reference: &str) -> Vec<u8> {
        self.skopeo(&[
            "inspect",
            "--raw",
            &self.tls_flag("--"),
            &self.docker_ref(repo, reference),
        ])
        .await
    }

    /// How skopeo is to reach the registry, `prefix` being "--", "--src-" or "--dest-": trusting the CA
    /// certificates of `cert_dir` over HTTPS, or plain HTTP.
    fn tls_flag(&self, prefix: &str) -> String {
        match &self.cert_dir {
            Some(dir) => format!("{prefix}cert-dir={}", dir.display()),
            None => format!("{prefix}tls-verify=false"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_round_trips_a_multi_layer_image() {
    let s = Setup::new().await;
    let repo = "skopeo/multi/level/image";
    let src = s.path("src");
    let layout = Layout::new(src.clone());
    let manifest = layout.image("linux", "amd64", 1);
    layout.tag("v1", OCI_MANIFEST, &manifest);
    let digest = sha256(&manifest);

    s.push(&src, "v1", repo, "v1").await;

    // The registry serves the manifest exactly as pushed, by tag and by digest.
    assert!(
        s.inspect_raw(repo, "v1").await == manifest,
        "inspect --raw by tag returns the pushed bytes"
    );
    assert!(
        s.inspect_raw(repo, &digest).await == manifest,
        "inspect --raw by digest returns the pushed bytes"
    );
    let resp = s
        .server
        .req(reqwest::Method::HEAD, &format!("/v2/{repo}/manifests/v1"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());

    // The parsed inspection reads the config through the registry too.
    let info: Value = serde_json::from_slice(
        &s.skopeo(&["inspect", "--tls-verify=false", &s.docker_ref(repo, "v1")])
            .await,
    )
    .unwrap();
    assert_eq!(info["Digest"], digest.as_str(), "{info}");
    assert_eq!(info["Architecture"], "amd64", "{info}");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(3), "{info}");

    // Copy back out, by tag and by digest.
    let out = s.path("out");
    s.pull(repo, "v1", &out, "v1").await;
    assert_same_layout(&src, &out, "v1");
    let by_digest = s.path("by-digest");
    s.pull(repo, &digest, &by_digest, "v1").await;
    assert_same_layout(&src, &by_digest, "v1");

    // A second tag: every blob already exists, skopeo only checks for them.
    s.push(&src, "v1", repo, "latest").await;
    let tags: Value = serde_json::from_slice(
        &s.skopeo(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/{repo}", s.host),
        ])
        .await,
    )
    .unwrap();
    assert_eq!(tags["Tags"], json!(["latest", "v1"]), "{tags}");

    // Registry to registry into another repository: skopeo mounts the blobs (POST ?mount=&from=).
    s.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &s.docker_ref(repo, "v1"),
        &s.docker_ref("skopeo/other", "v1"),
    ])
    .await;
    assert!(s.inspect_raw("skopeo/other", "v1").await == manifest);
    let other = s.path("other");
    s.pull("skopeo/other", "v1", &other, "v1").await;
    assert_same_layout(&src, &other, "v1");

    // skopeo delete removes the manifest (by digest, so every tag of it goes with it).
    s.skopeo(&["delete", "--tls-verify=false", &s.docker_ref(repo, "latest")])
        .await;
    for reference in ["latest", "v1", digest.as_str()] {
        let err = s
            .skopeo_result(&["inspect", "--raw", "--tls-verify=false", &s.docker_ref(repo, reference)])
            .await
            .expect_err("the manifest is gone after skopeo delete");
        assert!(err.to_lowercase().contains("manifest unknown"), "{reference}: {err}");
    }
    // The other repository still has its copy.
    assert!(s.inspect_raw("skopeo/other", "v1").await == manifest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_round_trips_a_multi_arch_index() {
    let s = Setup::new().await;
    let repo = "skopeo/multi/arch";
    let src = s.path("src");
    let layout = Layout::new(src.clone());
    let mut children = Vec::new();
    let mut platforms = Vec::new();
    for (arch, seed) in [("amd64", 10u8), ("arm64", 20u8)] {
        let manifest = layout.image("linux", arch, seed);
        platforms.push(json!({
            "mediaType": OCI_MANIFEST,
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
        children.push((arch, manifest));
    }
    let index = serde_json::to_vec_pretty(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": platforms}))
        .unwrap();
    layout.blob(OCI_INDEX, &index);
    layout.tag("v2", OCI_INDEX, &index);
    let index_digest = sha256(&index);

    s.push(&src, "v2", repo, "v2").await;

    assert!(
        s.inspect_raw(repo, "v2").await == index,
        "inspect --raw returns the pushed index bytes"
    );
    assert!(s.inspect_raw(repo, &index_digest).await == index);
    for (arch, manifest) in &children {
        let digest = sha256(manifest);
        assert!(
            s.inspect_raw(repo, &digest).await == *manifest,
            "{arch} manifest by digest"
        );
        // skopeo picks the platform's manifest out of the index served by the registry.
        let info: Value = serde_json::from_slice(
            &s.skopeo(&[
                "--override-os",
                "linux",
                "--override-arch",
                arch,
                "inspect",
                "--tls-verify=false",
                &s.docker_ref(repo, "v2"),
            ])
            .await,
        )
        .unwrap();
        // `Digest` is the top-level (index) digest; the layers and architecture are the platform's.
        assert_eq!(info["Digest"], index_digest.as_str(), "{arch}: {info}");
        assert_eq!(info["Architecture"], *arch, "{info}");
        let parsed: Value = serde_json::from_slice(manifest).unwrap();
        let layers: Vec<Value> = parsed["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone())
            .collect();
        assert_eq!(info["Layers"], Value::Array(layers), "{arch}: {info}");
    }
    let resp = s
        .server
        .req(reqwest::Method::GET, &format!("/v2/{repo}/manifests/v2"))
        .await
        .header("accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], OCI_INDEX);
    assert_eq!(resp.headers()["docker-content-digest"], index_digest.as_str());

    let out = s.path("out");
    s.pull(repo, "v2", &out, "v2").await;
    assert_same_layout(&src, &out, "v2");
    let by_digest = s.path("by-digest");
    s.pull(repo, &index_digest, &by_digest, "v2").await;
    assert_same_layout(&src, &by_digest, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_creds_of_service_principals_push_pull_and_are_refused() {
    let s = Setup::new().await;
    s.logout();
    let repo = "warrantydept/customersubmissions/web";
    let creds = |(app_id, password): (String, String)| format!("{app_id}:{password}");
    let contributor = creds(
        crate::auth::principal(
            &s.server,
            "/registries/default/repositories/warrantydept",
            "Contributor",
        )
        .await,
    );
    let reader = creds(crate::auth::principal(&s.server, "/registries/default", "Reader").await);
    let src = s.path("src");
    let layout = Layout::new(src.clone());
    let manifest = layout.image("linux", "amd64", 30);
    layout.tag("v1", OCI_MANIFEST, &manifest);

    // The Contributor pushes into the multilevel repository under its prefix.
    s.push_as(Some(&contributor), &src, "v1", repo, "v1")
        .await
        .unwrap_or_else(|err| panic!("Contributor push: {err}"));
    let resp = s
        .server
        .req(reqwest::Method::HEAD, &format!("/v2/{repo}/manifests/v1"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["docker-content-digest"], sha256(&manifest).as_str());

    // The Reader copies it out byte for byte, and with the Contributor's credentials it comes out the same.
    for (who, creds) in [("Reader", &reader), ("Contributor", &contributor)] {
        let out = s.path(&format!("out-{who}"));
        s.pull_as(Some(creds), repo, "v1", &out, "v1")
            .await
            .unwrap_or_else(|err| panic!("{who} pull: {err}"));
        assert_same_layout(&src, &out, "v1");
    }

    // Pushes the roles do not allow: the Reader anywhere (a new tag of existing blobs: the manifest PUT is
    // refused; a new repository: the first upload is), the Contributor outside its prefix (the first blob
    // HEAD is). Berth answers 403 {"code":"DENIED","message":"requested access to the resource is denied:
    // <action> on <repository> refused: <who> has <role>",...}; containers/image, like docker, shows it as
    // "denied: <message>"; a 403 to a HEAD (no body) as "403 (Forbidden)".
    for (who, creds, target, says) in [
        ("Reader", &reader, repo, "uploading manifest v2 to "),
        ("Reader", &reader, "warrantydept/new", "initiating layer upload to "),
        ("Contributor", &contributor, "samples/outside", "403 (Forbidden)"),
    ] {
        let err = s
            .push_as(Some(creds), &src, "v1", target, "v2")
            .await
            .expect_err(&format!("{who} may not push to {target}"));
        let stderr = stderr_of(&err);
        let denied = stderr.contains(": denied") || stderr.contains("403 (Forbidden)");
        assert!(denied && stderr.contains(says), "{who} push to {target}: {err}");
    }
    let tags: Value = serde_json::from_slice(
        &s.skopeo(&[
            "list-tags",
            "--tls-verify=false",
            "--creds",
            &reader,
            &format!("docker://{}/{repo}", s.host),
        ])
        .await,
    )
    .unwrap();
    assert_eq!(tags["Tags"], json!(["v1"]), "the Reader's push left no tag: {tags}");

    // A wrong password is refused at the token endpoint, for pulls and pushes alike.
    let wrong = format!("{}:wrong-password", contributor.split(':').next().unwrap());
    let pull = s.pull_as(Some(&wrong), repo, "v1", &s.path("wrong"), "v1").await;
    let push = s.push_as(Some(&wrong), &src, "v1", repo, "v3").await;
    for (what, result) in [("pull", pull), ("push", push)] {
        let err = result.expect_err(&format!("{what} with a wrong password"));
        assert!(
            stderr_of(&err).contains("unauthorized: incorrect username or password"),
            "{what} with a wrong password: {err}"
        );
    }
}

/// The standard error part of a failure message of `Setup::skopeo_result`.
fn stderr_of(err: &str) -> &str {
    err.rsplit_once("\nstderr: ")
        .map_or(err, |(_, stderr)| stderr.trim_end())
}
