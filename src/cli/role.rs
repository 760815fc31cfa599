//! `berth role assignment create|list|delete` over `/api/role-assignments` (`az role assignment …`).

use clap::Subcommand;
use serde_json::json;

use super::Run;
use super::client::Client;
use super::error::CliError;
use super::output::{Answer, Column, col};

const COLUMNS: &[Column] = &[
    col("ID", "id"),
    col("PRINCIPAL", "principalName"),
    col("PRINCIPAL ID", "principalId"),
    col("ROLE", "roleDefinitionName"),
    col("SCOPE", "scope"),
];

#[derive(Subcommand)]
pub enum Command {
    /// Role assignments: who may do what on a registry or a repository prefix.
    #[command(subcommand)]
    Assignment(Assignment),
}

#[derive(Subcommand)]
pub enum Assignment {
    /// Give a service principal a role on a scope.
    Create {
        /// The principal's appId.
        #[arg(long)]
        assignee: String,
        /// /registries/<name> or /registries/<name>/repositories/<prefix>.
        #[arg(long)]
        scope: String,
        /// Reader (pull), Contributor (pull, push, delete) or Owner (Contributor + manage the registry).
        #[arg(long)]
        role: String,
    },
    /// List role assignments (a service principal must name a --scope in a registry it owns).
    List {
        /// Only assignments in this scope's registry.
        #[arg(long)]
        scope: Option<String>,
        /// Only assignments of this appId.
        #[arg(long)]
        assignee: Option<String>,
    },
    /// Delete a role assignment.
    Delete {
        /// The assignment's id (from `role assignment list`).
        #[arg(long)]
        id: String,
    },
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let Command::Assignment(command) = self;
        let value = match command {
            Assignment::Create { assignee, scope, role } => {
                let body = json!({ "assignee": assignee, "scope": scope, "role": role });
                client.post(&["role-assignments"], &body).await?
            }
            Assignment::List { scope, assignee } => {
                let query: Vec<(&str, &str)> = [("scope", scope.as_deref()), ("assignee", assignee.as_deref())]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v?)))
                    .collect();
                client.get(&["role-assignments"], &query).await?
            }
            Assignment::Delete { id } => client.delete(&["role-assignments", &id]).await?,
        };
        Ok(Answer {
            value,
            columns: COLUMNS,
        })
    }
}
