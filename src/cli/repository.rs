//! `berth repository list|show|update|show-tags|show-manifests|show-tag-history|restore|delete|untag` over
//! `/api/registries/<name>/repositories` (`az acr repository …`). As in `az acr`, `--repository` names a
//! repository and `--image` one image of it (`REPOSITORY:TAG` or `REPOSITORY@DIGEST`).

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::client::Client;
use super::error::CliError;
use super::output::{Answer, Column, col};
use super::{Run, prompt};

const REPOSITORIES: &[Column] = &[col("REPOSITORY", "")];

const REPOSITORY: &[Column] = &[
    col("NAME", "name"),
    col("MANIFESTS", "manifestCount"),
    col("TAGS", "tagCount"),
    col("SIZE", "sizeBytes"),
    col("WRITE", "changeableAttributes.writeEnabled"),
    col("DELETE", "changeableAttributes.deleteEnabled"),
    col("READ", "changeableAttributes.readEnabled"),
    col("LIST", "changeableAttributes.listEnabled"),
];

const TAG: &[Column] = &[
    col("TAG", "name"),
    col("DIGEST", "digest"),
    col("UPDATED", "lastUpdateTime"),
    col("LAST PULLED", "lastPulledTime"),
    col("PULLS", "pullCount"),
    col("WRITE", "changeableAttributes.writeEnabled"),
    col("DELETE", "changeableAttributes.deleteEnabled"),
    col("READ", "changeableAttributes.readEnabled"),
    col("LIST", "changeableAttributes.listEnabled"),
];

const MANIFEST: &[Column] = &[
    col("DIGEST", "digest"),
    col("TAGS", "tags"),
    col("MEDIA TYPE", "mediaType"),
    col("WRITE", "changeableAttributes.writeEnabled"),
    col("DELETE", "changeableAttributes.deleteEnabled"),
    col("READ", "changeableAttributes.readEnabled"),
    col("LIST", "changeableAttributes.listEnabled"),
];

const TAGS: &[Column] = &[col("TAG", "")];

const TAG_DETAILS: &[Column] = &[
    col("TAG", "name"),
    col("DIGEST", "digest"),
    col("UPDATED", "lastUpdateTime"),
    col("LAST PULLED", "lastPulledTime"),
    col("PULLS", "pullCount"),
];

/// Deletions answer nothing.
const NONE: &[Column] = &[];

const HISTORY: &[Column] = &[
    col("TIME", "time"),
    col("TAG", "tag"),
    col("ACTION", "action"),
    col("OLD DIGEST", "oldDigest"),
    col("NEW DIGEST", "newDigest"),
    col("ACTOR", "actor"),
    col("CLIENT", "client"),
];

const RESTORED: &[Column] = &[
    col("DIGEST", "digest"),
    col("TAGS", "tags"),
    col("REFERRERS", "referrers"),
];

const MANIFESTS: &[Column] = &[
    col("DIGEST", "digest"),
    col("TAGS", "tags"),
    col("MEDIA TYPE", "mediaType"),
    col("SIZE", "size"),
    col("TIMESTAMP", "timestamp"),
    col("LAST PULLED", "lastPulledTime"),
    col("PULLS", "pullCount"),
];

#[derive(Subcommand)]
pub enum Command {
    /// List the repositories of a registry.
    List {
        /// Registry name.
        #[arg(short, long)]
        name: String,
    },
    /// Show a repository (its manifest and tag counts, the bytes of the blobs its manifests reference), a
    /// tag or a manifest, with its locks (changeableAttributes).
    Show {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        #[command(flatten)]
        what: Subject,
    },
    /// Lock or unlock a repository, a tag or a manifest: its changeableAttributes. A lock on a repository
    /// holds for its manifests and tags, a lock on a manifest for the tags pointing at it.
    Update {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        #[command(flatten)]
        what: Subject,
        /// Whether it may be pushed to (a tag moved, a manifest or blob added).
        #[arg(long, value_name = "BOOL")]
        write_enabled: Option<bool>,
        /// Whether it may be deleted (a tag untagged).
        #[arg(long, value_name = "BOOL")]
        delete_enabled: Option<bool>,
        /// Whether it may be pulled.
        #[arg(long, value_name = "BOOL")]
        read_enabled: Option<bool>,
        /// Whether it shows in listings (the catalog, tag lists).
        #[arg(long, value_name = "BOOL")]
        list_enabled: Option<bool>,
    },
    /// List the tags of a repository.
    ShowTags {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Repository name, e.g. warrantydept/dotnet-build.
        #[arg(long)]
        repository: String,
        /// Each tag with its digest, when it last moved, when it was last pulled, its pull count and locks.
        #[arg(long)]
        detail: bool,
    },
    /// List the manifests of a repository with their tags.
    ShowManifests {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Repository name.
        #[arg(long)]
        repository: String,
    },
    /// Delete a repository with all its manifests and tags.
    Delete {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Repository name.
        #[arg(long)]
        repository: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Show what the tags of a repository pointed at: every push that moved a tag, every delete and
    /// restore, who made it and from which client, newest first.
    ShowTagHistory {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Repository name.
        #[arg(long)]
        repository: String,
        /// Only this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Restore a tag to what it pointed at before its last move or delete (--image REPOSITORY:TAG), or a
    /// deleted manifest with the tags it had (--image REPOSITORY@DIGEST), while its blobs are still there.
    Restore {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// The tag or manifest, as REPOSITORY:TAG or REPOSITORY@DIGEST.
        #[arg(long, value_name = "REPOSITORY:TAG|REPOSITORY@DIGEST", value_parser = parse_image)]
        image: Image,
    },
    /// Remove a tag; the manifest stays.
    Untag {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// The image whose tag to remove, as REPOSITORY:TAG (as `az acr repository untag --image`).
        #[arg(long, value_name = "REPOSITORY:TAG", value_parser = parse_tagged)]
        image: TaggedImage,
    },
}

/// A repository (`--repository`) or one image of it (`--image`).
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Subject {
    /// Repository name.
    #[arg(long)]
    repository: Option<String>,
    /// An image, as REPOSITORY:TAG or REPOSITORY@DIGEST.
    #[arg(long, value_name = "REPOSITORY:TAG|REPOSITORY@DIGEST", value_parser = parse_image)]
    image: Option<Image>,
}

impl Subject {
    /// The API path of what this names, and the columns that show it.
    fn path<'a>(&'a self, registry: &'a str) -> (Vec<&'a str>, &'static [Column]) {
        match (&self.repository, &self.image) {
            (_, Some(image)) => match &image.reference {
                ImageRef::Tag(tag) => (repository_path(registry, &image.repository, &["_tags", tag]), TAG),
                ImageRef::Digest(digest) => (
                    repository_path(registry, &image.repository, &["_manifests", digest]),
                    MANIFEST,
                ),
            },
            (repository, None) => (
                repository_path(registry, repository.as_deref().unwrap_or_default(), &[]),
                REPOSITORY,
            ),
        }
    }
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let (value, columns) = match self {
            Command::List { name } => (
                client.get(&["registries", &name, "repositories"], &[]).await?,
                REPOSITORIES,
            ),
            Command::Show { name, what } => {
                let (path, columns) = what.path(&name);
                (client.get(&path, &[]).await?, columns)
            }
            Command::Update {
                name,
                what,
                write_enabled,
                delete_enabled,
                read_enabled,
                list_enabled,
            } => {
                let changes = [
                    ("writeEnabled", write_enabled),
                    ("deleteEnabled", delete_enabled),
                    ("readEnabled", read_enabled),
                    ("listEnabled", list_enabled),
                ];
                let body: Map<String, Value> = changes
                    .iter()
                    .filter_map(|(key, value)| value.map(|v| (key.to_string(), Value::Bool(v))))
                    .collect();
                if body.is_empty() {
                    return Err(CliError::Usage(
                        "say what to change: --write-enabled, --delete-enabled, --read-enabled or --list-enabled"
                            .into(),
                    ));
                }
                let (path, columns) = what.path(&name);
                (client.patch(&path, &Value::Object(body)).await?, columns)
            }
            Command::ShowTags {
                name,
                repository,
                detail,
            } => {
                let path = repository_path(&name, &repository, &["_tags"]);
                match detail {
                    true => (client.get(&path, &[("detail", "true")]).await?, TAG_DETAILS),
                    false => (client.get(&path, &[]).await?, TAGS),
                }
            }
            Command::ShowManifests { name, repository } => {
                let path = repository_path(&name, &repository, &["_manifests"]);
                (client.get(&path, &[]).await?, MANIFESTS)
            }
            Command::Delete { name, repository, yes } => {
                let what = format!("repository {repository:?} of {name:?} with all its manifests and tags");
                prompt::confirm_delete(&what, yes)?;
                (client.delete(&repository_path(&name, &repository, &[])).await?, NONE)
            }
            Command::ShowTagHistory { name, repository, tag } => {
                let path = repository_path(&name, &repository, &["_history"]);
                let query: Vec<(&str, &str)> = tag.iter().map(|t| ("tag", t.as_str())).collect();
                (client.get(&path, &query).await?, HISTORY)
            }
            Command::Restore { name, image } => {
                let body = match &image.reference {
                    ImageRef::Tag(tag) => serde_json::json!({ "tag": tag }),
                    ImageRef::Digest(digest) => serde_json::json!({ "digest": digest }),
                };
                let path = repository_path(&name, &image.repository, &["_restore"]);
                (client.post(&path, &body).await?, RESTORED)
            }
            Command::Untag { name, image } => {
                let path = repository_path(&name, &image.repository, &["_tags", &image.tag]);
                (client.delete(&path).await?, NONE)
            }
        };
        Ok(Answer { value, columns })
    }
}

/// `registries/<name>/repositories/<repo segments…>/<tail…>`: the repository's slashes stay path separators.
fn repository_path<'a>(registry: &'a str, repository: &'a str, tail: &[&'a str]) -> Vec<&'a str> {
    let mut path = vec!["registries", registry, "repositories"];
    path.extend(repository.split('/'));
    path.extend(tail);
    path
}

/// `--image REPOSITORY:TAG` or `REPOSITORY@DIGEST`.
#[derive(Clone)]
pub struct Image {
    repository: String,
    reference: ImageRef,
}

#[derive(Clone)]
enum ImageRef {
    Tag(String),
    Digest(String),
}

fn parse_image(s: &str) -> Result<Image, String> {
    if let Some((repository, digest)) = s.split_once('@') {
        if !repository.is_empty() && digest.contains(':') {
            return Ok(Image {
                repository: repository.to_string(),
                reference: ImageRef::Digest(digest.to_string()),
            });
        }
        return Err(format!("{s:?} is not REPOSITORY@DIGEST (e.g. hello-world@sha256:…)"));
    }
    let TaggedImage { repository, tag } = parse_tagged(s)?;
    Ok(Image {
        repository,
        reference: ImageRef::Tag(tag),
    })
}

/// `--image REPOSITORY:TAG`.
#[derive(Clone)]
pub struct TaggedImage {
    repository: String,
    tag: String,
}

fn parse_tagged(s: &str) -> Result<TaggedImage, String> {
    match s.rsplit_once(':') {
        Some((repository, tag))
            if !repository.is_empty() && !repository.contains('@') && !tag.is_empty() && !tag.contains('/') =>
        {
            Ok(TaggedImage {
                repository: repository.to_string(),
                tag: tag.to_string(),
            })
        }
        _ => Err(format!("{s:?} is not REPOSITORY:TAG (e.g. hello-world:v1)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_at_the_last_colon_or_at_the_digest() {
        let image = parse_image("warrantydept/web:v1").unwrap();
        assert!(matches!(&image.reference, ImageRef::Tag(t) if t == "v1"));
        assert_eq!(image.repository, "warrantydept/web");
        let image = parse_image("web@sha256:abc").unwrap();
        assert!(matches!(&image.reference, ImageRef::Digest(d) if d == "sha256:abc"));
        for bad in ["web", "web:", ":v1", "host:5000/web", "@sha256:abc", "web@latest"] {
            assert!(parse_image(bad).is_err(), "{bad}");
        }
        assert!(parse_tagged("web@sha256:abc").is_err());
    }

    #[test]
    fn repository_names_keep_their_levels_in_the_path() {
        assert_eq!(
            repository_path("reg", "a/b", &["_tags", "v1"]),
            ["registries", "reg", "repositories", "a", "b", "_tags", "v1"]
        );
    }
}
