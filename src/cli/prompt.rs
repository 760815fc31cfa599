//! Confirming a destructive command: `--yes`, or a "y" typed at the terminal. Without a terminal and without
//! `--yes` the command is refused, so scripts never hang on a question.

use std::io::{BufRead, IsTerminal, Write};

use super::error::CliError;

/// Ok when `yes` was passed or the person answers "y" to deleting `what`.
pub fn confirm_delete(what: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(format!("not confirmed: pass --yes to delete {what}")));
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "Delete {what}? (y/N): ")?;
    stderr.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::Usage("cancelled; nothing was deleted".into())),
    }
}
