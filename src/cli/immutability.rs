//! `berth immutability create|list|delete` over `/api/registries/<name>/immutability-rules`: the rules that
//! make a registry's tags write-once.

use clap::Subcommand;
use serde_json::json;

use super::Run;
use super::client::Client;
use super::error::CliError;
use super::output::{Answer, Column, col};

const RULE: &[Column] = &[
    col("ID", "id"),
    col("REPOSITORIES", "repositories"),
    col("TAGS", "tags"),
    col("EXCEPT", "except"),
    col("REFERRER TAGS", "includeReferrerTags"),
];

/// Deletions answer nothing.
const NONE: &[Column] = &[];

#[derive(Subcommand)]
pub enum Command {
    /// Make the tags a rule covers write-once: pushed once, then again only with the same digest, never
    /// deleted. Signature and attestation fallback tags (sha256-<hex>.sig, .att, .sbom) stay exempt unless
    /// --include-referrer-tags.
    Create {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Glob of repository names: `*` within one path level, `**` across levels (e.g. 'prod/**').
        #[arg(long)]
        repositories: String,
        /// Glob of tags (e.g. 'v*').
        #[arg(long)]
        tags: String,
        /// A glob of tags the rule leaves mutable (repeatable).
        #[arg(long = "except", value_name = "GLOB")]
        except: Vec<String>,
        /// Cover signature and attestation fallback tags too.
        #[arg(long)]
        include_referrer_tags: bool,
    },
    /// List a registry's rules.
    List {
        /// Registry name.
        #[arg(short, long)]
        name: String,
    },
    /// Remove a rule: the tags it covered become mutable again.
    Delete {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// The rule's id (see `list`).
        #[arg(long)]
        id: u32,
    },
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let (value, columns) = match self {
            Command::Create {
                name,
                repositories,
                tags,
                except,
                include_referrer_tags,
            } => {
                let body = json!({
                    "repositories": repositories,
                    "tags": tags,
                    "except": except,
                    "includeReferrerTags": include_referrer_tags,
                });
                (
                    client.post(&["registries", &name, "immutability-rules"], &body).await?,
                    RULE,
                )
            }
            Command::List { name } => (
                client.get(&["registries", &name, "immutability-rules"], &[]).await?,
                RULE,
            ),
            Command::Delete { name, id } => {
                let id = id.to_string();
                (
                    client.delete(&["registries", &name, "immutability-rules", &id]).await?,
                    NONE,
                )
            }
        };
        Ok(Answer { value, columns })
    }
}
