//! `berth sp create-for-rbac|create|reset-credentials|list|delete` over `/api/service-principals`
//! (`az ad sp …`). Only the operator manages principals, so this group takes the operator token and no
//! `--username/--password` (its `--password` is the new principal's).

use clap::Subcommand;
use serde_json::json;

use super::Run;
use super::client::Client;
use super::error::CliError;
use super::globals::Globals;
use super::output::{Answer, Column, col};

/// A principal with the password it was just given.
const WITH_PASSWORD: &[Column] = &[
    col("APP ID", "appId"),
    col("DISPLAY NAME", "displayName"),
    col("PASSWORD", "password"),
];

const LISTED: &[Column] = &[
    col("APP ID", "appId"),
    col("DISPLAY NAME", "displayName"),
    col("CREATED", "createdAt"),
];

/// The `sp` group: its subcommand and the global options.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub globals: Globals,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a service principal and give it a role on each scope; prints its password once.
    CreateForRbac {
        /// /registries/<name> or /registries/<name>/repositories/<prefix>, one or more.
        #[arg(long, num_args = 1.., required = true)]
        scopes: Vec<String>,
        /// Reader (pull), Contributor (pull, push, delete; the default) or Owner (Contributor + manage the
        /// registry).
        #[arg(long)]
        role: Option<String>,
        /// Display name (default berth-sp-<id>).
        #[arg(short, long)]
        name: Option<String>,
        /// The password, at least 12 characters (default: generated).
        #[arg(long)]
        password: Option<String>,
    },
    /// Create a service principal without roles; prints its password once.
    Create {
        /// Display name (default berth-sp-<id>).
        #[arg(short, long)]
        name: Option<String>,
        /// The password, at least 12 characters (default: generated).
        #[arg(long)]
        password: Option<String>,
    },
    /// Issue a new password, revoking the old ones and the principal's refresh tokens.
    ResetCredentials {
        /// The principal's appId.
        #[arg(long)]
        id: String,
        /// The new password, at least 12 characters (default: generated).
        #[arg(long)]
        password: Option<String>,
    },
    /// List service principals.
    List,
    /// Delete a service principal with its role assignments and tokens.
    Delete {
        /// The principal's appId.
        #[arg(long)]
        id: String,
    },
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let (value, columns) = match self {
            Command::CreateForRbac {
                scopes,
                role,
                name,
                password,
            } => {
                let body = json!({ "scopes": scopes, "role": role, "name": name, "password": password });
                let created = client.post(&["service-principals", "create-for-rbac"], &body).await?;
                (created, WITH_PASSWORD)
            }
            Command::Create { name, password } => {
                let body = json!({ "name": name, "password": password });
                (client.post(&["service-principals"], &body).await?, WITH_PASSWORD)
            }
            Command::ResetCredentials { id, password } => {
                let body = json!({ "password": password });
                let reset = client
                    .post(&["service-principals", &id, "reset-credentials"], &body)
                    .await?;
                (reset, WITH_PASSWORD)
            }
            Command::List => (client.get(&["service-principals"], &[]).await?, LISTED),
            Command::Delete { id } => (client.delete(&["service-principals", &id]).await?, LISTED),
        };
        Ok(Answer { value, columns })
    }
}
