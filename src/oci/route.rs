//! Splits the path after `/v2/` into a data-plane route. Repository names contain slashes, so the
//! parser works from the right: the last `/manifests/`, `/blobs/`, … marker ends the name.

use std::fmt;
use std::str::FromStr;

use super::GrammarError;
use super::digest::{Digest, truncate};
use super::reference::{Reference, RepoName};

/// An upload session id: letters, digits, `-` and `_`, at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    pub fn generate() -> Self {
        UploadId(uuid::Uuid::new_v4().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UploadId {
    type Err = GrammarError;
    fn from_str(s: &str) -> Result<Self, GrammarError> {
        let ok =
            !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(GrammarError::NoSuchUpload)
        }
    }
}

/// What follows `/manifests/`: a tag or digest, or the text that is neither.
pub type ManifestRef = Result<Reference, String>;

/// The reference a GET, HEAD or DELETE names: text that is no reference names no manifest (404, as the
/// spec answers for a manifest that is not there).
pub fn existing(reference: ManifestRef) -> Result<Reference, GrammarError> {
    reference
        .map_err(|text| GrammarError::NoSuchManifest(format!("no manifest {:?} in the repository", truncate(&text))))
}

/// The reference a PUT stores under: text that is no reference is the client's mistake (400).
pub fn for_put(reference: ManifestRef) -> Result<Reference, GrammarError> {
    reference.or_else(|text| text.parse())
}

/// A data-plane endpoint below `/v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`: the registry's repositories.
    Catalog,
    /// `reference` is `Err(text)` when the text is no tag or digest: it names no manifest (a GET, HEAD or
    /// DELETE of it is MANIFEST_UNKNOWN once the caller is authorized), and a PUT to it is refused with
    /// the parse error ([`ManifestRef::for_put`]).
    Manifest {
        repo: RepoName,
        reference: ManifestRef,
    },
    Blob {
        repo: RepoName,
        digest: Digest,
    },
    UploadStart {
        repo: RepoName,
    },
    Upload {
        repo: RepoName,
        id: UploadId,
    },
    TagsList {
        repo: RepoName,
    },
    Referrers {
        repo: RepoName,
        digest: Digest,
    },
}

impl V2Route {
    /// The repository the route is in; none for the base and the catalog.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            V2Route::Base | V2Route::Catalog => None,
            V2Route::Manifest { repo, .. }
            | V2Route::Blob { repo, .. }
            | V2Route::UploadStart { repo }
            | V2Route::Upload { repo, .. }
            | V2Route::TagsList { repo }
            | V2Route::Referrers { repo, .. } => Some(repo),
        }
    }
}

/// Parses `rest`, the path after `/v2/` with no leading slash.
pub fn parse_v2(rest: &str) -> Result<V2Route, GrammarError> {
    match rest {
        "" => return Ok(V2Route::Base),
        "_catalog" => return Ok(V2Route::Catalog),
        _ => {}
    }
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        return Ok(V2Route::TagsList { repo: repo.parse()? });
    }
    if let Some(repo) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Ok(V2Route::UploadStart { repo: repo.parse()? });
    }
    if let Some((repo, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Ok(V2Route::Upload {
            repo: repo.parse()?,
            id: id.parse()?,
        });
    }
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        return Ok(V2Route::Manifest {
            repo: repo.parse()?,
            reference: reference.parse().map_err(|_| reference.to_owned()),
        });
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        return Ok(V2Route::Blob {
            repo: repo.parse()?,
            digest: digest.parse()?,
        });
    }
    if let Some((repo, digest)) = rest.rsplit_once("/referrers/") {
        return Ok(V2Route::Referrers {
            repo: repo.parse()?,
            digest: digest.parse()?,
        });
    }
    Err(GrammarError::Name(format!(
        "no registry endpoint at /v2/{}",
        truncate(rest)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn routes_are_split_from_the_right() {
        let digest: Digest = D.parse().unwrap();
        let table = vec![
            (String::new(), V2Route::Base),
            ("_catalog".into(), V2Route::Catalog),
            (
                "a/b/c/manifests/v1".to_string(),
                V2Route::Manifest {
                    repo: repo("a/b/c"),
                    reference: Ok(Reference::Tag("v1".parse().unwrap())),
                },
            ),
            (
                format!("x/manifests/{D}"),
                V2Route::Manifest {
                    repo: repo("x"),
                    reference: Ok(Reference::Digest(digest.clone())),
                },
            ),
            (
                format!("x/y/blobs/{D}"),
                V2Route::Blob {
                    repo: repo("x/y"),
                    digest: digest.clone(),
                },
            ),
            ("x/blobs/uploads/".into(), V2Route::UploadStart { repo: repo("x") }),
            ("x/blobs/uploads".into(), V2Route::UploadStart { repo: repo("x") }),
            (
                "x/blobs/uploads/abc-1".into(),
                V2Route::Upload {
                    repo: repo("x"),
                    id: "abc-1".parse().unwrap(),
                },
            ),
            ("x/tags/list".into(), V2Route::TagsList { repo: repo("x") }),
            (
                "manifests/tags/list".into(),
                V2Route::TagsList {
                    repo: repo("manifests"),
                },
            ),
            (
                "blobs/blobs/uploads/".into(),
                V2Route::UploadStart { repo: repo("blobs") },
            ),
            (
                format!("r/referrers/{D}"),
                V2Route::Referrers {
                    repo: repo("r"),
                    digest,
                },
            ),
        ];
        for (path, want) in table {
            assert_eq!(parse_v2(&path).unwrap(), want, "{path}");
        }
    }

    #[test]
    fn a_manifest_reference_that_is_none_is_unknown_to_reads_and_invalid_to_puts() {
        for (text, put_kind) in [("bad:digest", "Digest"), ("-tag", "Manifest"), (".INVALID", "Manifest")] {
            let Ok(V2Route::Manifest { reference, .. }) = parse_v2(&format!("x/manifests/{text}")) else {
                panic!("{text} is a manifest route");
            };
            assert_eq!(reference, Err(text.to_string()));
            assert_eq!(existing(reference.clone()).unwrap_err().kind(), "NoSuchManifest");
            assert_eq!(for_put(reference).unwrap_err().kind(), put_kind);
        }
    }

    #[test]
    fn bad_paths_are_client_errors() {
        let long = format!("{}/tags/list", "a".repeat(256));
        let cases: Vec<(String, &str)> = vec![
            ("../x/tags/list".into(), "Name"),
            ("Upper/tags/list".into(), "Name"),
            (long, "Name"),
            ("x/blobs/notadigest".into(), "Digest"),
            ("x/blobs/uploads/../../etc".into(), "NoSuchUpload"),
            ("x/something".into(), "Name"),
            ("_catalog/tags/list".into(), "Name"),
        ];
        for (path, kind) in cases {
            assert_eq!(parse_v2(&path).unwrap_err().kind(), kind, "{path}");
        }
    }
}
