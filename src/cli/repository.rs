//! `berth repository list|show|show-tags|show-manifests|delete|untag` over
//! `/api/registries/<name>/repositories` (`az acr repository …`). As in `az acr`, `--repository` names a
//! repository and `--image` one image of it (`REPOSITORY:TAG`).

use clap::Subcommand;

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
];

const TAGS: &[Column] = &[col("TAG", "")];

/// Deletions answer nothing.
const NONE: &[Column] = &[];

const MANIFESTS: &[Column] = &[
    col("DIGEST", "digest"),
    col("TAGS", "tags"),
    col("MEDIA TYPE", "mediaType"),
    col("SIZE", "size"),
    col("TIMESTAMP", "timestamp"),
];

#[derive(Subcommand)]
pub enum Command {
    /// List the repositories of a registry.
    List {
        /// Registry name.
        #[arg(short, long)]
        name: String,
    },
    /// Show a repository: its manifest and tag counts and the bytes of the blobs its manifests reference.
    Show {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Repository name.
        #[arg(long)]
        repository: String,
    },
    /// List the tags of a repository.
    ShowTags {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Repository name, e.g. warrantydept/dotnet-build.
        #[arg(long)]
        repository: String,
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
    /// Remove a tag; the manifest stays.
    Untag {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// The image whose tag to remove, as REPOSITORY:TAG (as `az acr repository untag --image`).
        #[arg(long, value_name = "REPOSITORY:TAG", value_parser = parse_image)]
        image: Image,
    },
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let (value, columns) = match self {
            Command::List { name } => (
                client.get(&["registries", &name, "repositories"], &[]).await?,
                REPOSITORIES,
            ),
            Command::Show { name, repository } => {
                let path = repository_path(&name, &repository, &[]);
                (client.get(&path, &[]).await?, REPOSITORY)
            }
            Command::ShowTags { name, repository } => {
                let path = repository_path(&name, &repository, &["_tags"]);
                (client.get(&path, &[]).await?, TAGS)
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

/// `--image REPOSITORY:TAG`.
#[derive(Clone)]
pub struct Image {
    repository: String,
    tag: String,
}

fn parse_image(s: &str) -> Result<Image, String> {
    match s.rsplit_once(':') {
        Some((repository, tag))
            if !repository.is_empty() && !repository.contains('@') && !tag.is_empty() && !tag.contains('/') =>
        {
            Ok(Image {
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
    fn images_split_at_the_last_colon() {
        let image = parse_image("warrantydept/web:v1").unwrap();
        assert_eq!(
            (image.repository.as_str(), image.tag.as_str()),
            ("warrantydept/web", "v1")
        );
        for bad in ["web", "web:", ":v1", "host:5000/web", "web@sha256:abc"] {
            assert!(parse_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repository_names_keep_their_levels_in_the_path() {
        assert_eq!(
            repository_path("reg", "a/b", &["_tags", "v1"]),
            ["registries", "reg", "repositories", "a", "b", "_tags", "v1"]
        );
    }
}
