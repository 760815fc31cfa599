//! The management CLI (`berth registry|credential|sp|role|repository|immutability|purge|retention|gc …`):
//! parses the command line with clap, calls the REST API under `/api` through [`client::Client`] and
//! prints the answer with [`output`]. It uses nothing of the server but its HTTP API, so it works against
//! any Berth installation.
//!
//! Each command group owns its subcommands and returns an [`output::Answer`]; this module builds the client
//! from the global options, runs the command and turns every failure into one line on stderr.

mod client;
mod credential;
mod error;
mod gc;
mod globals;
mod healthcheck;
mod immutability;
mod output;
mod prompt;
mod purge;
mod registry;
mod repository;
mod retention;
mod role;
mod sp;

use std::process::ExitCode;

use clap::{Args, Subcommand};

use client::Client;
use error::CliError;
use globals::{Globals, Login};
use output::Answer;

/// The management command groups, mirroring `az acr`.
#[derive(Subcommand)]
pub enum Command {
    /// Create, list, show, update and delete registries.
    Registry(Group<registry::Command>),
    /// Show and renew a registry's admin credentials.
    Credential(Group<credential::Command>),
    /// Manage service principals (operator only).
    Sp(sp::Args),
    /// Manage role assignments.
    Role(Group<role::Command>),
    /// List, lock and delete repositories, tags and manifests.
    Repository(Group<repository::Command>),
    /// Make tags write-once: a registry's tag immutability rules.
    Immutability(Group<immutability::Command>),
    /// Delete old tags (and the untagged manifests left behind) matching a filter, keeping the newest.
    Purge(purge::Purge),
    /// A registry's stored retention policy, applied on the server's schedule.
    Retention(Group<retention::Command>),
    /// Collect garbage now, and see what collections did.
    Gc(Group<gc::Command>),
    /// Probe a server's /healthz: exit 0 when it answers 200 (the container image's HEALTHCHECK).
    Healthcheck(healthcheck::Args),
}

/// A command group's subcommand with the global options, which may appear anywhere after the group name.
#[derive(Args)]
pub struct Group<C: Subcommand> {
    #[command(subcommand)]
    command: C,
    #[command(flatten)]
    globals: Globals,
    #[command(flatten)]
    login: Login,
}

/// Runs a management command; a refusal is printed as one `error: …` line on stderr.
pub async fn run(command: Command) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> Result<(), CliError> {
    match command {
        Command::Registry(g) => run_group(g.command, &g.globals, Some(&g.login)).await,
        Command::Credential(g) => run_group(g.command, &g.globals, Some(&g.login)).await,
        Command::Sp(a) => run_group(a.command, &a.globals, None).await,
        Command::Role(g) => run_group(g.command, &g.globals, Some(&g.login)).await,
        Command::Repository(g) => run_group(g.command, &g.globals, Some(&g.login)).await,
        Command::Immutability(g) => run_group(g.command, &g.globals, Some(&g.login)).await,
        Command::Retention(g) => run_group(g.command, &g.globals, Some(&g.login)).await,
        Command::Purge(purge::Purge { args, globals, login }) => {
            run_group(args.printed_as(globals.output), &globals, Some(&login)).await
        }
        Command::Gc(g) => run_group(g.command, &g.globals, Some(&g.login)).await,
        Command::Healthcheck(a) => healthcheck::run(a).await,
    }
}

async fn run_group(command: impl Run, globals: &Globals, login: Option<&Login>) -> Result<(), CliError> {
    let client = Client::new(globals, login)?;
    let answer = command.run(&client).await?;
    output::print(&answer, globals.output)
}

/// A group's subcommand: the API calls it makes and the answer to print.
trait Run {
    async fn run(self, client: &Client) -> Result<Answer, CliError>;
}
