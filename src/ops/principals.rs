//! Service principals: creating one with a chosen or generated password, resetting its credentials
//! (which revokes what it was given), finding, listing and deleting. Passwords are hashed on blocking
//! threads, never on the executor.

use crate::auth::password;
use crate::auth::secrets::random_password;
use crate::errors::OciError;
use crate::metadata::{self, Db};

pub use crate::metadata::principals::PrincipalRow;

/// The shortest password accepted when a caller chooses one.
const MIN_PASSWORD_LEN: usize = 12;

fn chosen_or_new_password(given: Option<String>) -> Result<String, OciError> {
    match given {
        Some(p) if p.chars().count() < MIN_PASSWORD_LEN => Err(OciError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters"
        ))),
        Some(p) => Ok(p),
        None => Ok(random_password()),
    }
}

async fn hash(password: &str) -> Result<String, OciError> {
    password::hash_blocking(password).await.map_err(OciError::Internal)
}

/// A new principal named `name` (or `berth-sp-<id>`) with password `given` (or a generated one); returns
/// it and its password, which is shown once.
pub async fn create(db: &Db, name: Option<String>, given: Option<String>) -> Result<(PrincipalRow, String), OciError> {
    let password = chosen_or_new_password(given)?;
    let app_id = uuid::Uuid::new_v4().to_string();
    let display_name = name.unwrap_or_else(|| format!("berth-sp-{}", &app_id[..8]));
    let row = metadata::principals::create(db, &app_id, &display_name, &hash(&password).await?).await?;
    Ok((row, password))
}

/// The principal `app_id` (case-insensitively), if there is one.
pub async fn find(db: &Db, app_id: &str) -> Result<Option<PrincipalRow>, OciError> {
    Ok(metadata::principals::find(db, &app_id.to_ascii_lowercase()).await?)
}

pub async fn list(db: &Db) -> Result<Vec<PrincipalRow>, OciError> {
    Ok(metadata::principals::list(db).await?)
}

/// Replaces the principal's password with `given` (or a generated one), revoking its old ones and every
/// refresh token of it; returns the new password.
pub async fn reset(db: &Db, principal: &PrincipalRow, given: Option<String>) -> Result<String, OciError> {
    let password = chosen_or_new_password(given)?;
    metadata::principals::reset_secret(db, principal.id, &hash(&password).await?).await?;
    Ok(password)
}

pub async fn delete(db: &Db, principal: &PrincipalRow) -> Result<(), OciError> {
    metadata::principals::delete(db, principal.id).await?;
    Ok(())
}
