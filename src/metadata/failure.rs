//! How a database failure reaches a client: a lock's refusal (403), unavailable (503, retry) or the
//! server's fault (500).

use crate::errors::OciError;

impl From<sqlx::Error> for OciError {
    /// A write a lock refused is DENIED, naming the lock; a database that cannot be reached, refuses connections or was shut down is 503 UNAVAILABLE (the
    /// client may retry); anything else is a server fault.
    fn from(e: sqlx::Error) -> Self {
        if let Some(lock) = super::locks::refusal(&e) {
            return OciError::Locked(format!(
                "refused by a lock: {} is false on the {}",
                lock.attribute,
                lock.level.as_str()
            ));
        }
        let unreachable = match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
            sqlx::Error::WorkerCrashed => true,
            // SQLSTATE classes 08 (connection exception), 53 (insufficient resources), 57 (operator
            // intervention: shutdown, terminated connection, statement timeout), 28 (the server refuses our
            // login), and 3D000 / 55000 (the database is gone or not accepting connections).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                ["08", "53", "57", "28"].iter().any(|class| c.starts_with(class)) || c == "3D000" || c == "55000"
            }),
            _ => false,
        };
        if unreachable {
            tracing::warn!(error = %e, "metadata database unavailable");
            OciError::Unavailable("the metadata database is unavailable; retry later".into())
        } else {
            OciError::Internal(e.into())
        }
    }
}
