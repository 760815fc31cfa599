//! `berth registry create|list|show|show-usage|update|delete` over `/api/registries` (`az acr create|list|
//! show|show-usage|update|delete`).

use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::client::Client;
use super::error::CliError;
use super::output::{Answer, Column, col};
use super::{Run, prompt};

const COLUMNS: &[Column] = &[
    col("NAME", "name"),
    col("SKU", "sku.name"),
    col("LOGIN SERVER", "loginServer"),
    col("CREATION DATE", "creationDate"),
    col("ADMIN ENABLED", "adminUserEnabled"),
];

const USAGE: &[Column] = &[
    col("NAME", "name"),
    col("LIMIT", "limit"),
    col("CURRENT VALUE", "currentValue"),
    col("UNIT", "unit"),
];

#[derive(Subcommand)]
pub enum Command {
    /// Create a registry.
    Create {
        /// Registry name: 5 to 50 letters and digits, unique case-insensitively.
        #[arg(short, long)]
        name: String,
        /// Basic, Standard or Premium (default Basic).
        #[arg(long)]
        sku: Option<String>,
        /// Enable the admin user (username = registry name, two passwords).
        #[arg(long, value_name = "true|false")]
        admin_enabled: Option<bool>,
        /// Tags as space-separated key=value pairs.
        #[arg(long, num_args = 0.., value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<Tag>,
        /// Where the registry's blobs are stored (default: a folder of the server's data directory).
        #[arg(long, value_name = "URL")]
        storage_location: Option<String>,
    },
    /// List the registries the caller manages.
    List,
    /// Show a registry.
    Show {
        /// Registry name.
        #[arg(short, long)]
        name: String,
    },
    /// Show what a registry stores: bytes (each blob once), bytes no manifest references, and counts of
    /// repositories, manifests and tags.
    ShowUsage {
        /// Registry name.
        #[arg(short, long)]
        name: String,
    },
    /// Change a registry's SKU, admin user, tags, or (the operator) its limits and storage quota.
    Update {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Basic, Standard or Premium.
        #[arg(long)]
        sku: Option<String>,
        /// Enable or disable the admin user; disabling takes effect at once.
        #[arg(long, value_name = "true|false")]
        admin_enabled: Option<bool>,
        /// Replace all tags with these key=value pairs; `--tags ""` removes them all.
        #[arg(long, num_args = 0.., value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Option<Vec<Tag>>,
        /// Concurrent pulls allowed (0: the SKU's default); applies to the next request.
        #[arg(long, value_name = "N")]
        pull_limit: Option<u32>,
        /// Concurrent pushes allowed (0: the SKU's default); applies to the next request.
        #[arg(long, value_name = "N")]
        push_limit: Option<u32>,
        /// Storage quota: bytes of blobs, each counted once, e.g. 50GiB or 500MiB (0: the SKU's default).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        storage_quota: Option<u64>,
    },
    /// Delete a registry with all its content and credentials.
    Delete {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let (value, columns) = match self {
            Command::Create {
                name,
                sku,
                admin_enabled,
                tags,
                storage_location,
            } => {
                let body = json!({
                    "name": name,
                    "sku": sku,
                    "adminUserEnabled": admin_enabled,
                    "tags": tags_object(&tags),
                    "storageLocation": storage_location,
                });
                (client.post(&["registries"], &body).await?, COLUMNS)
            }
            Command::List => (client.get(&["registries"], &[]).await?, COLUMNS),
            Command::Show { name } => (client.get(&["registries", &name], &[]).await?, COLUMNS),
            Command::ShowUsage { name } => (client.get(&["registries", &name, "usage"], &[]).await?, USAGE),
            Command::Update {
                name,
                sku,
                admin_enabled,
                tags,
                pull_limit,
                push_limit,
                storage_quota,
            } => {
                let nothing = sku.is_none() && admin_enabled.is_none() && tags.is_none();
                if nothing && pull_limit.is_none() && push_limit.is_none() && storage_quota.is_none() {
                    return Err(CliError::Usage(
                        "nothing to update: pass --sku, --admin-enabled, --tags, --pull-limit, --push-limit or \
                         --storage-quota"
                            .into(),
                    ));
                }
                let body = json!({
                    "sku": sku,
                    "adminUserEnabled": admin_enabled,
                    "tags": tags.as_deref().map(tags_object),
                    "pullLimit": pull_limit,
                    "pushLimit": push_limit,
                    "storageQuotaBytes": storage_quota,
                });
                (client.patch(&["registries", &name], &body).await?, COLUMNS)
            }
            Command::Delete { name, yes } => {
                prompt::confirm_delete(&format!("registry {name:?} with all its content and credentials"), yes)?;
                (client.delete(&["registries", &name]).await?, COLUMNS)
            }
        };
        Ok(Answer { value, columns })
    }
}

/// A `--storage-quota`: a number of bytes, or one with a unit (`KiB`, `MiB`, `GiB`, `TiB`, or `KB`, `MB`...).
fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| format!("{s:?} is not a size: write e.g. 50GiB, 500MiB or a number of bytes"))
}

/// One `--tags` item: `key=value`, `key` (empty value), or `""` (no tag, so that `--tags ""` clears).
#[derive(Clone)]
pub struct Tag(Option<(String, String)>);

fn parse_tag(s: &str) -> Result<Tag, String> {
    if s.is_empty() {
        return Ok(Tag(None));
    }
    let (key, value) = s.split_once('=').unwrap_or((s, ""));
    if key.is_empty() {
        return Err(format!("tag {s:?} has no key: use key=value"));
    }
    Ok(Tag(Some((key.to_string(), value.to_string()))))
}

fn tags_object(tags: &[Tag]) -> Value {
    let map: Map<String, Value> = tags
        .iter()
        .filter_map(|t| t.0.clone())
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Value::Object(map)
}
