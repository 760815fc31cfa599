//! Why a management command failed, worded for the person who ran it: each variant prints as one line.

/// A failed command; `main` prints it after `error: ` and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Something wrong with the command line or the environment; the server was not asked.
    #[error("{0}")]
    Usage(String),
    /// No connection to the server (refused, unknown host, TLS, timeout).
    #[error("cannot reach the Berth server at {server}: {cause}")]
    Unreachable { server: String, cause: String },
    /// The API refused the request with its error envelope.
    #[error("{message} ({status} {code}){hint}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// Advice on what to change, starting with "; ", or empty.
        hint: String,
    },
    /// An answer that is not the API's (another service on that address, a proxy's error page).
    #[error("unexpected answer from {server}: {what}")]
    Protocol { server: String, what: String },
    /// Stdout or stdin failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
