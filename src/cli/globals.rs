//! The options every management command takes (server, output format, credentials) and which credentials
//! they amount to. Secrets are read from flags or the environment and never printed; a flag given on the
//! command line wins over the environment, so `--username` works with `BERTH_TOKEN` exported.

use clap::Args;

use super::error::CliError;
use super::output::Format;

/// Where the server is, how to authenticate as the operator, how to print.
#[derive(Args)]
pub struct Globals {
    /// Base URL of the Berth server, without a path.
    #[arg(
        long,
        global = true,
        env = "BERTH_SERVER",
        hide_env_values = true,
        default_value = "http://localhost:5000"
    )]
    pub server: String,
    /// The operator token (sent as a bearer token) [env: BERTH_TOKEN].
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Json)]
    pub output: Format,
}

/// A service principal's login, for an Owner of a registry managing it without the operator token.
#[derive(Args)]
pub struct Login {
    /// appId of a service principal (instead of --token) [env: BERTH_USERNAME].
    #[arg(long, global = true)]
    pub username: Option<String>,
    /// Password of that service principal [env: BERTH_PASSWORD].
    #[arg(long, global = true)]
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
        let env = |name: &str| std::env::var(name).ok();
        Self::choose(globals, login, env)
    }

    /// [`Credentials::from_options`] with the environment read through `env`.
    fn choose(
        globals: &Globals,
        login: Option<&Login>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, CliError> {
        let set = |v: Option<String>| v.filter(|s| !s.is_empty());
        let flag_token = set(globals.token.clone());
        let flag_username = set(login.and_then(|l| l.username.clone()));
        // A flag names the identity; only without one does the environment.
        let (token, username) = match (flag_token, flag_username) {
            (None, None) => (set(env("BERTH_TOKEN")), set(login.and_then(|_| env("BERTH_USERNAME")))),
            flags => flags,
        };
        let password = login.and_then(|l| set(l.password.clone()).or_else(|| set(env("BERTH_PASSWORD"))));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn globals(token: Option<&str>) -> Globals {
        Globals {
            server: "http://localhost:5000".into(),
            token: token.map(str::to_owned),
            output: Format::Json,
        }
    }

    fn login(username: Option<&str>, password: Option<&str>) -> Login {
        Login {
            username: username.map(str::to_owned),
            password: password.map(str::to_owned),
        }
    }

    fn environment(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    fn who(credentials: Result<Credentials, CliError>) -> String {
        match credentials {
            Ok(Credentials::Operator { token }) => format!("operator {token}"),
            Ok(Credentials::Principal { app_id, password }) => format!("principal {app_id} {password}"),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn a_flag_wins_over_the_environment() {
        let exported = environment(&[("BERTH_TOKEN", "env-token"), ("BERTH_PASSWORD", "env-pw")]);
        let l = login(Some("app"), Some("flag-pw"));
        assert_eq!(
            who(Credentials::choose(&globals(None), Some(&l), &exported)),
            "principal app flag-pw"
        );
        let l = login(Some("app"), None);
        assert_eq!(
            who(Credentials::choose(&globals(None), Some(&l), &exported)),
            "principal app env-pw"
        );
        let exported = environment(&[("BERTH_USERNAME", "env-app"), ("BERTH_PASSWORD", "env-pw")]);
        let l = login(None, None);
        assert_eq!(
            who(Credentials::choose(&globals(Some("flag-token")), Some(&l), &exported)),
            "operator flag-token"
        );
        assert_eq!(
            who(Credentials::choose(&globals(None), Some(&l), &exported)),
            "principal env-app env-pw"
        );
    }

    #[test]
    fn two_identities_from_the_same_place_are_refused() {
        let l = login(Some("app"), Some("pw"));
        let both = who(Credentials::choose(&globals(Some("t")), Some(&l), environment(&[])));
        assert!(both.starts_with("error: both a token and a username are set"), "{both}");
        let exported = environment(&[
            ("BERTH_TOKEN", "t"),
            ("BERTH_USERNAME", "app"),
            ("BERTH_PASSWORD", "pw"),
        ]);
        let both = who(Credentials::choose(&globals(None), Some(&login(None, None)), exported));
        assert!(both.starts_with("error: both a token and a username are set"), "{both}");
    }

    #[test]
    fn operator_only_commands_ignore_an_exported_username() {
        let exported = environment(&[("BERTH_TOKEN", "t"), ("BERTH_USERNAME", "app")]);
        assert_eq!(who(Credentials::choose(&globals(None), None, exported)), "operator t");
    }
}
