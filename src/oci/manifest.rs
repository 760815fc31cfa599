//! Manifest documents: which media types are accepted, and what a manifest references (blobs, child
//! manifests, a subject). The bytes themselves are never re-serialised; they are stored as pushed.

use serde::Deserialize;

use super::GrammarError;
use super::digest::Digest;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Layers that live outside the registry (Windows base layers) and may be referenced without the blob.
const FOREIGN_LAYERS: [&str; 3] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

/// What Berth needs to know of a manifest to store it and answer referrers queries.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestInfo {
    pub media_type: String,
    /// Config and layer blobs that must exist in the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests (of an index or manifest list) that must exist in the repository.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or the config media type of an image manifest with a subject (referrers API).
    pub artifact_type: Option<String>,
    /// The `annotations` object as JSON text, when present.
    pub annotations: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: Digest,
    size: i64,
    urls: Option<Vec<String>>,
}

/// Parses a pushed manifest. `content_type` is the request's `Content-Type` without parameters, if any.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ManifestInfo, GrammarError> {
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(GrammarError::ManifestTooLarge(MAX_MANIFEST_BYTES));
    }
    let invalid = |e: serde_json::Error| GrammarError::Manifest(format!("not a valid manifest: {e}"));
    let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    refuse_case_variants(&value)?;
    let doc = Document::deserialize(&value).map_err(invalid)?;
    if doc.schema_version != Some(2) {
        return Err(GrammarError::Manifest(
            "schemaVersion must be 2 (schema 1 manifests are not supported)".into(),
        ));
    }
    let media_type = media_type_of(content_type, &doc)?;
    let is_index = matches!(media_type.as_str(), OCI_INDEX | DOCKER_MANIFEST_LIST);
    let mut info = ManifestInfo {
        media_type,
        blobs: Vec::new(),
        children: Vec::new(),
        subject: doc.subject.map(|s| s.digest),
        artifact_type: doc.artifact_type,
        annotations: doc.annotations.map(|a| serde_json::Value::Object(a).to_string()),
    };
    for d in doc
        .layers
        .iter()
        .flatten()
        .chain(doc.manifests.iter().flatten())
        .chain(doc.config.iter())
    {
        if d.size < 0 {
            return Err(GrammarError::Manifest(format!(
                "descriptor {} has a negative size",
                d.digest
            )));
        }
    }
    if is_index {
        if doc.config.is_some() || doc.layers.is_some() {
            return Err(GrammarError::Manifest("an index has no config or layers".into()));
        }
        let manifests = doc
            .manifests
            .ok_or_else(|| GrammarError::Manifest("an index needs a manifests array".into()))?;
        info.children = manifests.into_iter().map(|d| d.digest).collect();
    } else {
        if doc.manifests.is_some() {
            return Err(GrammarError::Manifest(
                "an image manifest has no manifests array".into(),
            ));
        }
        let config = doc
            .config
            .ok_or_else(|| GrammarError::Manifest("an image manifest needs a config".into()))?;
        let layers = doc
            .layers
            .ok_or_else(|| GrammarError::Manifest("an image manifest needs a layers array".into()))?;
        if info.artifact_type.is_none() && info.subject.is_some() {
            info.artifact_type = Some(config.media_type.clone());
        }
        info.blobs.push(config.digest);
        for layer in layers {
            let foreign = FOREIGN_LAYERS.contains(&layer.media_type.as_str())
                && layer.urls.as_ref().is_some_and(|u| !u.is_empty());
            if !foreign {
                info.blobs.push(layer.digest);
            }
        }
    }
    Ok(info)
}

/// Field names of manifests, indexes, descriptors and platforms.
const KNOWN_KEYS: [&str; 19] = [
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "manifests",
    "subject",
    "annotations",
    "digest",
    "size",
    "urls",
    "data",
    "platform",
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "features",
];

/// Refuses a key that differs from a known field name only in case (`Layers`, `MANIFESTS`, `layerſ`).
/// Go clients match JSON keys case-insensitively and keep the last match, so a document holding
/// `"layers": []` and `"Layers": [...]` would mean one thing here and another to them. Annotation maps
/// are free-form and not checked.
fn refuse_case_variants(value: &serde_json::Value) -> Result<(), GrammarError> {
    let serde_json::Value::Object(map) = value else {
        if let serde_json::Value::Array(items) = value {
            items.iter().try_for_each(refuse_case_variants)?;
        }
        return Ok(());
    };
    for (key, child) in map {
        if let Some(known) = KNOWN_KEYS.iter().find(|k| **k != key && fold(k) == fold(key)) {
            return Err(GrammarError::Manifest(format!(
                "key {:?} differs from {known:?} only in case",
                super::digest::truncate(key)
            )));
        }
        if key != "annotations" {
            refuse_case_variants(child)?;
        }
    }
    Ok(())
}

/// A key as Go's JSON decoder compares it: case-folded, with the two letters that fold to ASCII (`ſ`, the
/// Kelvin sign) folded too.
fn fold(key: &str) -> String {
    key.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ſ' { 's' } else { c })
        .collect()
}

/// The manifest's media type: the `Content-Type` and the document's `mediaType` must agree when both are
/// given; a missing one is inferred from the other, or from the document's shape (OCI allows omitting it).
fn media_type_of(content_type: Option<&str>, doc: &Document) -> Result<String, GrammarError> {
    let header = content_type.filter(|ct| is_manifest_type(ct));
    let media_type = match (header, doc.media_type.as_deref()) {
        (Some(h), Some(m)) if h != m => {
            return Err(GrammarError::Manifest(format!(
                "Content-Type {h} does not match mediaType {m}"
            )));
        }
        (Some(h), _) => h.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) if doc.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, None) => OCI_MANIFEST.to_owned(),
    };
    if !is_manifest_type(&media_type) {
        return Err(GrammarError::Manifest(format!(
            "unsupported manifest media type {}",
            super::digest::truncate(&media_type)
        )));
    }
    Ok(media_type)
}

/// Whether `media_type` is one of the manifest types this registry stores.
pub fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        DOCKER_MANIFEST | DOCKER_MANIFEST_LIST | OCI_MANIFEST | OCI_INDEX
    )
}

/// The platforms an index lists (`os/architecture[/variant]`, in its order); none for anything else.
pub fn platforms(content: &[u8]) -> Vec<String> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(content) else {
        return Vec::new();
    };
    let entries = doc.get("manifests").and_then(serde_json::Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let platform = entry.get("platform")?;
            let part = |key: &str| platform.get(key).and_then(serde_json::Value::as_str);
            let mut name = format!("{}/{}", part("os")?, part("architecture")?);
            if let Some(variant) = part("variant") {
                name = format!("{name}/{variant}");
            }
            Some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn image(media_type: &str, extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{A}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{B}","size":3}}]{extra}}}"#
        )
    }

    #[test]
    fn image_manifests_reference_config_and_layers() {
        let info = parse(Some(OCI_MANIFEST), image(OCI_MANIFEST, "").as_bytes()).unwrap();
        assert_eq!(info.media_type, OCI_MANIFEST);
        assert_eq!(info.blobs, vec![A.parse().unwrap(), B.parse().unwrap()]);
        assert!(info.children.is_empty() && info.subject.is_none() && info.artifact_type.is_none());
    }

    #[test]
    fn artifacts_with_a_subject_get_an_artifact_type() {
        let extra =
            format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{C}","size":9}},"annotations":{{"k":"v"}}"#);
        let info = parse(None, image(OCI_MANIFEST, &extra).as_bytes()).unwrap();
        assert_eq!(info.subject, Some(C.parse().unwrap()));
        assert_eq!(
            info.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(info.annotations.as_deref(), Some(r#"{"k":"v"}"#));
    }

    #[test]
    fn indexes_reference_child_manifests() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{A}","size":5,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let info = parse(Some(DOCKER_MANIFEST_LIST), body.as_bytes()).unwrap();
        assert_eq!(info.children, vec![A.parse().unwrap()]);
        assert!(info.blobs.is_empty());
    }

    #[test]
    fn foreign_layers_need_no_blob() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{A}","size":2}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{B}","size":3,"urls":["https://example.invalid/layer"]}}]}}"#
        );
        assert_eq!(
            parse(Some(DOCKER_MANIFEST), body.as_bytes()).unwrap().blobs,
            vec![A.parse().unwrap()]
        );
    }

    #[test]
    fn keys_that_differ_from_known_ones_only_in_case_are_refused() {
        let missing = C;
        let variants = [
            image(
                OCI_MANIFEST,
                &format!(r#","Layers":[{{"mediaType":"x","digest":"{missing}","size":1}}]"#),
            ),
            image(
                OCI_MANIFEST,
                &format!(r#","layerſ":[{{"mediaType":"x","digest":"{missing}","size":1}}]"#),
            ),
            image(OCI_MANIFEST, r#","CONFIG":{}"#),
            image(OCI_MANIFEST, "").replace(r#""digest":"sha256:b"#, r#""Digest":"sha256:b"#),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"Manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{missing}","size":5}}]}}"#
            ),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":5,"platform":{{"OS":"linux"}}}}]}}"#
            ),
        ];
        for body in variants {
            let err = parse(None, body.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), "Manifest", "{body}");
            assert!(err.to_string().contains("only in case"), "{err}: {body}");
        }
        let annotated = image(OCI_MANIFEST, r#","annotations":{"Layers":"free-form","layers":"too"}"#);
        assert!(
            parse(None, annotated.as_bytes()).is_ok(),
            "annotation keys are free-form"
        );
    }

    #[test]
    fn invalid_manifests_are_refused() {
        let cases = [
            (Some(OCI_MANIFEST), "not json".to_string()),
            (Some(OCI_MANIFEST), r#"{"schemaVersion":1}"#.to_string()),
            (Some(OCI_INDEX), image(OCI_MANIFEST, "")),
            (Some(OCI_MANIFEST), r#"{"schemaVersion":2,"layers":[]}"#.to_string()),
            (
                Some(OCI_INDEX),
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#.to_string(),
            ),
            (None, image("text/plain", "")),
            (Some(OCI_MANIFEST), image(OCI_MANIFEST, "").replace(A, "sha256:zz")),
            (
                Some(OCI_MANIFEST),
                image(OCI_MANIFEST, "").replace("\"size\":2", "\"size\":-2"),
            ),
        ];
        for (ct, body) in cases {
            let err = parse(ct, body.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), "Manifest", "{body}");
        }
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert_eq!(
            parse(Some(OCI_MANIFEST), &huge).unwrap_err(),
            GrammarError::ManifestTooLarge(MAX_MANIFEST_BYTES)
        );
    }
}
