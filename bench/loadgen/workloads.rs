//! The workloads. Each sets up what it needs untimed (generating blob contents, pushing what it reads),
//! then times its rows and prints one JSON line per row. Every pulled blob and manifest is checked
//! against its sha256 digest.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LINK, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::RunArgs;
use crate::client::{AuthMode, Registry, expect, pull_scope, push_scope};
use crate::report::Measurement;

const MIB: usize = 1024 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

pub async fn run(args: RunArgs) -> Result<()> {
    let mode = args.dance_every.map_or(AuthMode::Reuse, AuthMode::Dance);
    let reg = Arc::new(Registry::new(
        &args.registry,
        args.user.clone(),
        args.password.clone(),
        mode,
        args.concurrency.unwrap_or(32),
    )?);
    match args.workload.as_str() {
        "blobs" => {
            let p = BlobParams {
                key: "blobs",
                count: pick(args.count, args.quick, 200, 40),
                size: args.size_mib.unwrap_or(1) * MIB,
                chunk: None,
                concurrency: args.concurrency.unwrap_or(8),
            };
            blobs(&reg, &args, p).await
        }
        "big" => {
            let p = BlobParams {
                key: "big",
                count: args.count.unwrap_or(4),
                size: pick(args.size_mib, args.quick, 256, 32) * MIB,
                chunk: None,
                concurrency: args.concurrency.unwrap_or(4),
            };
            blobs(&reg, &args, p).await
        }
        "chunked" => {
            let p = BlobParams {
                key: "chunked",
                count: pick(args.count, args.quick, 16, 4),
                size: pick(args.size_mib, args.quick, 16, 8) * MIB,
                chunk: Some(MIB),
                concurrency: args.concurrency.unwrap_or(4),
            };
            blobs(&reg, &args, p).await
        }
        "manifests" => manifests(&reg, &args).await,
        "head-get" => head_get(&reg, &args).await,
        "catalog" => catalog(&reg, &args).await,
        "images" => images(&reg, &args).await,
        "tokens" => tokens(&reg, &args).await,
        other => bail!("unknown workload {other:?}"),
    }
}

fn pick(given: Option<usize>, quick: bool, full: usize, small: usize) -> usize {
    given.unwrap_or(if quick { small } else { full })
}

fn seconds(args: &RunArgs, full: f64, quick: f64) -> f64 {
    args.duration.unwrap_or(if args.quick { quick } else { full })
}

/// Deterministic incompressible bytes (splitmix64) and their digest.
fn generate(seed: u64, size: usize) -> (Bytes, String) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut buf = Vec::with_capacity(size + 8);
    while buf.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        buf.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    buf.truncate(size);
    let digest = sha256(&buf);
    (Bytes::from(buf), digest)
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Generates `count` blobs on the blocking pool (both cores), untimed.
async fn generate_all(seed: u64, count: usize, size: usize) -> Result<Vec<(Bytes, String)>> {
    let jobs = (0..count).map(|i| {
        let seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        tokio::task::spawn_blocking(move || generate(seed, size))
    });
    futures::future::try_join_all(jobs).await.context("generating blobs")
}

fn location(response: &reqwest::Response) -> Result<String> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no Location in the answer"))
}

fn octet_stream() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers
}

/// Pushes a blob the way docker does: `POST` to start, `PATCH` (the whole blob, or `chunk`-sized pieces
/// with `Content-Range`), `PUT ?digest=`.
async fn push_blob(reg: &Registry, repo: &str, data: &Bytes, digest: &str, chunk: Option<usize>) -> Result<()> {
    let scope = push_scope(repo);
    let url = reg.url(&format!("/v2/{repo}/blobs/uploads/"));
    let response = reg.send(Method::POST, &url, &scope, HeaderMap::new(), None).await?;
    let mut at = location(&expect(response, StatusCode::ACCEPTED, "POST blobs/uploads/").await?)?;
    let step = chunk.unwrap_or(data.len()).max(1);
    let mut start = 0;
    while start < data.len() {
        let end = (start + step).min(data.len());
        let mut headers = octet_stream();
        if chunk.is_some() {
            headers.insert(CONTENT_RANGE, HeaderValue::from_str(&format!("{start}-{}", end - 1))?);
        }
        let response = reg
            .send(
                Method::PATCH,
                &reg.url(&at),
                &scope,
                headers,
                Some(data.slice(start..end)),
            )
            .await?;
        at = location(&expect(response, StatusCode::ACCEPTED, "PATCH upload").await?)?;
        start = end;
    }
    let separator = if at.contains('?') { '&' } else { '?' };
    let url = reg.url(&format!("{at}{separator}digest={digest}"));
    let response = reg.send(Method::PUT, &url, &scope, HeaderMap::new(), None).await?;
    expect(response, StatusCode::CREATED, "PUT upload ?digest=").await?;
    Ok(())
}

/// Pushes a small blob for a setup: `POST`, then `PUT ?digest=` with the body (Distribution 2.8 has no
/// monolithic `POST ?digest=`).
async fn push_small(reg: &Registry, repo: &str, data: &Bytes, digest: &str) -> Result<()> {
    let scope = push_scope(repo);
    let url = reg.url(&format!("/v2/{repo}/blobs/uploads/"));
    let response = reg.send(Method::POST, &url, &scope, HeaderMap::new(), None).await?;
    let at = location(&expect(response, StatusCode::ACCEPTED, "POST blobs/uploads/").await?)?;
    let separator = if at.contains('?') { '&' } else { '?' };
    let url = reg.url(&format!("{at}{separator}digest={digest}"));
    let response = reg
        .send(Method::PUT, &url, &scope, octet_stream(), Some(data.clone()))
        .await?;
    expect(response, StatusCode::CREATED, "PUT upload ?digest= with the blob").await?;
    Ok(())
}

/// Pulls a blob, hashing it as it arrives; fails unless the content matches the digest. Returns its size.
async fn pull_blob(reg: &Registry, repo: &str, digest: &str) -> Result<u64> {
    let url = reg.url(&format!("/v2/{repo}/blobs/{digest}"));
    let response = reg
        .send(Method::GET, &url, &pull_scope(repo), HeaderMap::new(), None)
        .await?;
    let mut response = expect(response, StatusCode::OK, "GET blob").await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = response.chunk().await? {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if got != digest {
        bail!("GET blob {digest}: the content's digest is {got}");
    }
    Ok(size)
}

/// Runs `f` over `items`, `concurrency` at a time; returns (successes, errors, seconds).
async fn for_each<T, F, Fut>(items: Vec<T>, concurrency: usize, f: F) -> (u64, u64, f64)
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let started = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(items.into_iter().map(f))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut ok = 0;
    let mut errors = 0;
    for result in results {
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                if errors == 0 {
                    eprintln!("berth-bench: {e:#}");
                }
                errors += 1;
            }
        }
    }
    (ok, errors, seconds)
}

/// Runs `f(worker, iteration)` in `concurrency` tasks until `secs` have passed; returns (successes,
/// errors, bytes, seconds).
async fn for_duration<F, Fut>(concurrency: usize, secs: f64, f: F) -> Result<(u64, u64, u64, f64)>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64>> + Send + 'static,
{
    let f = Arc::new(f);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|worker| {
            let f = f.clone();
            tokio::spawn(async move {
                let (mut ok, mut errors, mut bytes, mut i) = (0u64, 0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    match f(worker, i).await {
                        Ok(n) => {
                            ok += 1;
                            bytes += n;
                        }
                        Err(e) => {
                            if errors == 0 && worker == 0 {
                                eprintln!("berth-bench: {e:#}");
                            }
                            errors += 1;
                        }
                    }
                    i += 1;
                }
                (ok, errors, bytes)
            })
        })
        .collect();
    let mut total = (0, 0, 0);
    for task in tasks {
        let (ok, errors, bytes) = task.await?;
        total = (total.0 + ok, total.1 + errors, total.2 + bytes);
    }
    Ok((total.0, total.1, total.2, started.elapsed().as_secs_f64()))
}

struct BlobParams {
    key: &'static str,
    count: usize,
    size: usize,
    chunk: Option<usize>,
    concurrency: usize,
}

/// Push `count` blobs of `size`, then pull them all back (verifying each).
async fn blobs(reg: &Arc<Registry>, args: &RunArgs, p: BlobParams) -> Result<()> {
    let repo = format!("{}/{}", args.prefix, p.key);
    let seed = args.seed.wrapping_mul(31).wrapping_add(p.key.len() as u64);
    let data = generate_all(seed, p.count, p.size).await?;
    let size = human(p.size);
    let how = match p.chunk {
        Some(chunk) => format!(" in {} PATCH chunks", human(chunk)),
        None => String::new(),
    };
    let total = (p.count * p.size) as u64;
    let (ok, errors, secs) = for_each(data.iter().collect(), p.concurrency, |(bytes, digest)| {
        push_blob(reg, &repo, bytes, digest, p.chunk)
    })
    .await;
    Measurement {
        key: format!("push-{}", p.key),
        label: format!("push {} × {size} blobs{how} (c={})", p.count, p.concurrency),
        unit: "MiB/s",
        ops: ok,
        bytes: total * ok / p.count.max(1) as u64,
        seconds: secs,
        errors,
        extra: json!({}),
    }
    .print();
    let (ok, errors, secs) = for_each(data.iter().collect(), p.concurrency, |(_, digest)| {
        let repo = &repo;
        async move { pull_blob(reg, repo, digest).await.map(|_| ()) }
    })
    .await;
    Measurement {
        key: format!("pull-{}", p.key),
        label: format!("pull {} × {size} blobs, sha256 verified (c={})", p.count, p.concurrency),
        unit: "MiB/s",
        ops: ok,
        bytes: total * ok / p.count.max(1) as u64,
        seconds: secs,
        errors,
        extra: json!({}),
    }
    .print();
    Ok(())
}

fn human(size: usize) -> String {
    if size >= MIB && size.is_multiple_of(MIB) {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / 1024)
    }
}

/// An image's config blob, layers and manifest body (digest, bytes).
struct Image {
    config: (Bytes, String),
    layers: Vec<(Bytes, String)>,
}

impl Image {
    fn manifest(&self, media_type: &str, index: usize) -> (Bytes, String) {
        let (config_type, layer_type) = if media_type == OCI_MANIFEST {
            (
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        } else {
            (
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        };
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|(b, d)| json!({"mediaType": layer_type, "digest": d, "size": b.len()}))
            .collect();
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": self.config.1, "size": self.config.0.len()},
            "layers": layers,
        });
        if media_type == OCI_MANIFEST {
            manifest["annotations"] = json!({"org.example.bench.index": index.to_string()});
        }
        let body = Bytes::from(manifest.to_string());
        let digest = sha256(&body);
        (body, digest)
    }
}

fn config_blob(seed: u64) -> (Bytes, String) {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [format!("BENCH_SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let body = Bytes::from(config.to_string());
    let digest = sha256(&body);
    (body, digest)
}

async fn put_manifest(reg: &Registry, repo: &str, reference: &str, media_type: &str, body: &Bytes) -> Result<()> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_str(media_type)?);
    let url = reg.url(&format!("/v2/{repo}/manifests/{reference}"));
    let response = reg
        .send(Method::PUT, &url, &push_scope(repo), headers, Some(body.clone()))
        .await?;
    expect(response, StatusCode::CREATED, "PUT manifest").await?;
    Ok(())
}

/// A small image (one 1 KiB layer) pushed untimed into `repo`.
async fn small_image(reg: &Registry, repo: &str, seed: u64) -> Result<Image> {
    let image = Image {
        config: config_blob(seed),
        layers: vec![generate(seed, 1024)],
    };
    push_small(reg, repo, &image.config.0, &image.config.1).await?;
    push_small(reg, repo, &image.layers[0].0, &image.layers[0].1).await?;
    Ok(image)
}

/// Walks a listing from `first`, following `Link` headers; returns (entries, pages, whether the server
/// honoured `n`).
async fn walk(reg: &Registry, first: &str, scope: &str, field: &str, n: Option<usize>) -> Result<(usize, usize, bool)> {
    let mut next = Some(first.to_owned());
    let (mut entries, mut pages, mut honoured) = (0, 0, true);
    while let Some(path) = next.take() {
        let response = reg
            .send(Method::GET, &reg.url(&path), scope, HeaderMap::new(), None)
            .await?;
        let response = expect(response, StatusCode::OK, "GET listing").await?;
        next = response
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Some(v.split_once('<')?.1.split_once('>')?.0.to_owned()));
        let body: Value = response.json().await?;
        let count = body.get(field).and_then(Value::as_array).map_or(0, Vec::len);
        if n.is_some_and(|n| count > n) {
            honoured = false;
        }
        entries += count;
        pages += 1;
    }
    Ok((entries, pages, honoured))
}

fn not_applicable(key: &str, label: &str, unit: &str, why: &str) {
    println!("{}", json!({"key": key, "row": label, "unit": unit, "na": why}));
}

/// PUT `count` manifests by tag, then list the tags whole and in pages of 100.
async fn manifests(reg: &Arc<Registry>, args: &RunArgs) -> Result<()> {
    let count = pick(args.count, args.quick, 2000, 300);
    let concurrency = args.concurrency.unwrap_or(16);
    let repo = format!("{}/manifests", args.prefix);
    let image = small_image(reg, &repo, args.seed).await?;
    let bodies: Vec<(usize, Bytes)> = (0..count).map(|i| (i, image.manifest(OCI_MANIFEST, i).0)).collect();
    let (ok, errors, secs) = for_each(bodies, concurrency, |(i, body)| {
        let repo = &repo;
        async move { put_manifest(reg, repo, &format!("t{i:05}"), OCI_MANIFEST, &body).await }
    })
    .await;
    Measurement {
        key: "put-manifests".into(),
        label: format!("PUT {count} manifests by tag (c={concurrency})"),
        unit: "req/s",
        ops: ok,
        bytes: 0,
        seconds: secs,
        errors,
        extra: json!({}),
    }
    .print();
    let lists = pick(None, args.quick, 1000, 200);
    for (key, n) in [("tags-whole", None), ("tags-paged", Some(100))] {
        let label = match n {
            None => format!("list {count} tags whole, {lists} times (c=4)"),
            Some(n) => format!("list {count} tags in pages of {n}, {lists} times (c=4)"),
        };
        let first = match n {
            None => format!("/v2/{repo}/tags/list"),
            Some(n) => format!("/v2/{repo}/tags/list?n={n}"),
        };
        let (entries, _, honoured) = walk(reg, &first, &pull_scope(&repo), "tags", n).await?;
        if entries != count {
            bail!("the tag list has {entries} tags, not {count}");
        }
        if !honoured {
            not_applicable(key, &label, "lists/s", "the server ignores n (no pagination)");
            continue;
        }
        let (ok, errors, secs) = for_each((0..lists).collect(), 4, |_| {
            let (repo, first) = (&repo, &first);
            async move {
                let (entries, _, _) = walk(reg, first, &pull_scope(repo), "tags", n).await?;
                if entries != count {
                    bail!("listed {entries} tags, not {count}");
                }
                Ok(())
            }
        })
        .await;
        Measurement {
            key: key.into(),
            label,
            unit: "lists/s",
            ops: ok,
            bytes: 0,
            seconds: secs,
            errors,
            extra: json!({}),
        }
        .print();
    }
    Ok(())
}

/// HEAD and GET (alternating) of one manifest by tag for a while, at c=32; GET bodies are verified.
async fn head_get(reg: &Arc<Registry>, args: &RunArgs) -> Result<()> {
    let concurrency = args.concurrency.unwrap_or(32);
    let secs = seconds(args, 10.0, 3.0);
    let repo = format!("{}/headget", args.prefix);
    let image = small_image(reg, &repo, args.seed).await?;
    let (body, digest) = image.manifest(OCI_MANIFEST, 0);
    put_manifest(reg, &repo, "latest", OCI_MANIFEST, &body).await?;
    let url = reg.url(&format!("/v2/{repo}/manifests/latest"));
    let get = |reg: Arc<Registry>, url: String, repo: String, digest: String, head: bool| async move {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json"),
        );
        let method = if head { Method::HEAD } else { Method::GET };
        let response = reg.send(method, &url, &pull_scope(&repo), headers, None).await?;
        let response = expect(response, StatusCode::OK, "HEAD/GET manifest").await?;
        let served = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if head {
            if served != digest {
                bail!("HEAD manifest: Docker-Content-Digest {served:?}, expected {digest}");
            }
            return Ok(0);
        }
        let bytes = response.bytes().await?;
        if sha256(&bytes) != digest {
            bail!("GET manifest: the body's digest is not {digest}");
        }
        Ok(bytes.len() as u64)
    };
    // Warm up (and, in reuse mode, fetch the one token) untimed.
    get(reg.clone(), url.clone(), repo.clone(), digest.clone(), false).await?;
    let fetched_before = reg.token_fetches.load(Ordering::Relaxed);
    let (reg2, url2, repo2, digest2) = (reg.clone(), url.clone(), repo.clone(), digest.clone());
    let (ok, errors, _, secs) = for_duration(concurrency, secs, move |_, i| {
        get(reg2.clone(), url2.clone(), repo2.clone(), digest2.clone(), i % 2 == 0)
    })
    .await?;
    let fetched = reg.token_fetches.load(Ordering::Relaxed) - fetched_before;
    let (key, how) = match args.dance_every {
        None if args.token_auth_row => ("head-get-token".to_owned(), "token auth, one token reused".to_owned()),
        None => (
            "head-get".to_owned(),
            "no auth (Berth has none: one token reused)".to_owned(),
        ),
        Some(1) => (
            "head-get-dance".to_owned(),
            "full token dance per request: 401, token, retry".to_owned(),
        ),
        Some(n) => (
            format!("head-get-dance-{n}"),
            format!("full token dance every {n} requests"),
        ),
    };
    Measurement {
        key,
        label: format!("HEAD+GET manifest by tag, {secs:.0} s (c={concurrency}), {how}"),
        unit: "req/s",
        ops: ok,
        bytes: 0,
        seconds: secs,
        errors,
        extra: json!({"tokens_fetched": fetched}),
    }
    .print();
    Ok(())
}

/// Walks the catalog (pages of 1000, following `Link`) for a while; `--setup` first creates the
/// repositories (a blob and a manifest each).
async fn catalog(reg: &Arc<Registry>, args: &RunArgs) -> Result<()> {
    let count = pick(args.count, args.quick, 2000, 300);
    let walks = pick(None, args.quick, 100, 50);
    if args.setup {
        let (_, errors, _) = for_each((0..count).collect(), 16, |i| async move {
            let repo = format!("catalog/r{i:05}");
            let config = config_blob(i as u64);
            push_small(reg, &repo, &config.0, &config.1).await?;
            let image = Image { config, layers: vec![] };
            put_manifest(reg, &repo, "v1", OCI_MANIFEST, &image.manifest(OCI_MANIFEST, i).0).await
        })
        .await;
        if errors > 0 {
            bail!("{errors} repositories could not be created");
        }
    }
    let scope = "registry:catalog:*";
    let (entries, pages, _) = walk(reg, "/v2/_catalog?n=1000", scope, "repositories", Some(1000)).await?;
    if entries < count {
        bail!("the catalog lists {entries} repositories, fewer than {count}");
    }
    let (ok, errors, secs) = for_each((0..walks).collect(), 4, |_| async move {
        let (listed, _, _) = walk(reg, "/v2/_catalog?n=1000", scope, "repositories", Some(1000)).await?;
        if listed != entries {
            bail!("the catalog listed {listed} repositories, then {entries}");
        }
        Ok(())
    })
    .await;
    Measurement {
        key: "catalog".into(),
        label: format!("catalog walk of ≥{count} repositories (n=1000 + Link), {walks} times (c=4)"),
        unit: "walks/s",
        ops: ok,
        bytes: 0,
        seconds: secs,
        errors,
        extra: json!({"repositories": entries, "pages": pages}),
    }
    .print();
    Ok(())
}

/// Docker-style image pushes: for each blob HEAD (missing), POST, PATCH, PUT; then PUT the manifest.
async fn images(reg: &Arc<Registry>, args: &RunArgs) -> Result<()> {
    let count = pick(args.count, args.quick, 40, 8);
    let concurrency = args.concurrency.unwrap_or(4);
    let layer = args.size_mib.unwrap_or(1) * MIB;
    let repo = format!("{}/images", args.prefix);
    let seed = args.seed.wrapping_mul(7919);
    let mut images = Vec::with_capacity(count);
    for i in 0..count {
        let layers = generate_all(seed.wrapping_add(i as u64 * 8), 5, layer).await?;
        images.push((
            i,
            Image {
                config: config_blob(seed.wrapping_add(i as u64)),
                layers,
            },
        ));
    }
    let (ok, errors, secs) = for_each(images, concurrency, |(i, image)| {
        let repo = &repo;
        async move {
            for (bytes, digest) in image.layers.iter().chain(std::iter::once(&image.config)) {
                let url = reg.url(&format!("/v2/{repo}/blobs/{digest}"));
                let response = reg
                    .send(Method::HEAD, &url, &push_scope(repo), HeaderMap::new(), None)
                    .await?;
                if response.status() != StatusCode::NOT_FOUND {
                    bail!("HEAD of a new blob answered {}", response.status());
                }
                push_blob(reg, repo, bytes, digest, None).await?;
            }
            let (body, _) = image.manifest(DOCKER_MANIFEST, i);
            put_manifest(reg, repo, &format!("v{i}"), DOCKER_MANIFEST, &body).await
        }
    })
    .await;
    Measurement {
        key: "images".into(),
        label: format!(
            "docker-style push: 5 × {} layers + config + manifest (c={concurrency} images)",
            human(layer)
        ),
        unit: "images/s",
        ops: ok,
        bytes: 0,
        seconds: secs,
        errors,
        extra: json!({}),
    }
    .print();
    Ok(())
}

/// Token endpoint throughput: `GET realm?service&scope` with Basic credentials, at c=8.
async fn tokens(reg: &Arc<Registry>, args: &RunArgs) -> Result<()> {
    let concurrency = args.concurrency.unwrap_or(8);
    let count = pick(args.count, args.quick, 20_000, 5_000);
    let label = format!("token endpoint, Basic auth, one repository scope, {count} tokens (c={concurrency})");
    let Some((realm, service)) = reg.discover().await? else {
        not_applicable("tokens", &label, "tokens/s", "no token auth");
        return Ok(());
    };
    let scope = push_scope(&format!("{}/tokens", args.prefix));
    let (ok, errors, secs) = for_each((0..count).collect(), concurrency, |_| {
        let (realm, service, scope) = (&realm, service.as_deref(), &scope);
        async move {
            reg.fetch_token(realm, service, scope).await?;
            Ok(())
        }
    })
    .await;
    Measurement {
        key: "tokens".into(),
        label,
        unit: "tokens/s",
        ops: ok,
        bytes: 0,
        seconds: secs,
        errors,
        extra: json!({}),
    }
    .print();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_blobs_are_deterministic_and_distinct() {
        let (a, da) = generate(1, 1000);
        let (b, db) = generate(1, 1000);
        let (_, dc) = generate(2, 1000);
        assert_eq!(a.len(), 1000);
        assert_eq!((a, &da), (b, &db));
        assert_ne!(da, dc);
        assert_eq!(da, sha256(&generate(1, 1000).0));
    }
}
