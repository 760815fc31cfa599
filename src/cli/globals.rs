//! The options every management command takes (server, output format, credentials) and which credentials
//! they amount to. Secrets are read from flags or the environment and never printed.

use clap::Args;

use super::error::CliError;
use super::output::Format;

/// Where the server is, how to authenticate as the operator, how to print.
#[derive(Args)]
pub struct Globals {
    /// Base URL of the Berth server.
    #[arg(long, global = true, env = "BERTH_SERVER", default_value = "http://localhost:5000")]
    pub server: String,
    /// The operator token (sent as a bearer token).
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Json)]
    pub output: Format,
}

/// A service principal's login, for an Owner of a registry managing it without the operator token.
#[derive(Args)]
pub struct Login {
    /// appId of a service principal (instead of --token).
    #[arg(long, global = true, env = "BERTH_USERNAME")]
    pub username: Option<String>,
    /// Password of that service principal.
    #[arg(long, global = true, env = "BERTH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// Who the CLI calls the API as.
pub enum Credentials {
    Operator { token: String },
    Principal { app_id: String, password: String },
}

impl Credentials {
    /// The one identity the options name: the operator token or a principal's appId and password.
    /// `login` is `None` for commands only the operator may run.
    pub fn from_options(globals: &Globals, login: Option<&Login>) -> Result<Credentials, CliError> {
        let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let token = set(&globals.token);
        let (username, password) = login.map_or((None, None), |l| (set(&l.username), set(&l.password)));
        match (token, username, password) {
            (Some(_), Some(_), _) => Err(CliError::Usage(
                "both a token and a username are set: use either the operator token (--token, BERTH_TOKEN) or a \
                 service principal (--username, BERTH_USERNAME), not both"
                    .into(),
            )),
            (Some(token), None, _) => Ok(Credentials::Operator { token }),
            (None, Some(app_id), Some(password)) => Ok(Credentials::Principal { app_id, password }),
            (None, Some(_), None) => Err(CliError::Usage(
                "--username needs --password (or BERTH_PASSWORD)".into(),
            )),
            (None, None, _) if login.is_none() => Err(CliError::Usage(
                "no operator token: this command needs one; set BERTH_TOKEN or pass --token".into(),
            )),
            (None, None, _) => Err(CliError::Usage(
                "no credentials: set BERTH_TOKEN (or pass --token) to the operator token, or pass --username and \
                 --password of a service principal that is Owner of the registry"
                    .into(),
            )),
        }
    }
}
