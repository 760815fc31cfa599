//! `berth credential show|renew` over `/api/registries/<name>/credentials` (`az acr credential show|renew`):
//! the admin user's name and its two passwords.

use clap::Subcommand;
use serde_json::json;

use super::Run;
use super::client::Client;
use super::error::CliError;
use super::output::{Answer, Column, col};

const COLUMNS: &[Column] = &[
    col("USERNAME", "username"),
    col("PASSWORD", "passwords.0.value"),
    col("PASSWORD2", "passwords.1.value"),
];

#[derive(Subcommand)]
pub enum Command {
    /// Show the admin user's name and passwords (the admin user must be enabled).
    Show {
        /// Registry name.
        #[arg(short, long)]
        name: String,
    },
    /// Regenerate one of the two admin passwords; the other keeps working.
    Renew {
        /// Registry name.
        #[arg(short, long)]
        name: String,
        /// Which password to regenerate: password or password2.
        #[arg(long)]
        password_name: String,
    },
}

impl Run for Command {
    async fn run(self, client: &Client) -> Result<Answer, CliError> {
        let value = match self {
            Command::Show { name } => client.get(&["registries", &name, "credentials"], &[]).await?,
            Command::Renew { name, password_name } => {
                let body = json!({ "passwordName": password_name });
                client
                    .post(&["registries", &name, "credentials", "renew"], &body)
                    .await?
            }
        };
        Ok(Answer {
            value,
            columns: COLUMNS,
        })
    }
}
