//! Token issuance: signing an access token for what an identity asks and may have, and the refresh
//! tokens docker keeps after a login.

use crate::auth::secrets::{random_secret, token_hash};
use crate::auth::token::{Claims, ISSUER};
use crate::auth::{self, Auth, Identity, Permissions};
use crate::errors::OciError;
use crate::metadata::{self, Db, now, refresh_tokens::RefreshRow};
use crate::oci::scope::Access;
use crate::tenant::Tenant;

/// A signed access token, when it was issued (seconds since the epoch) and what it grants.
pub struct Issued {
    pub token: String,
    pub issued_at: i64,
    pub scope: String,
}

/// Signs an access token granting what was asked for, as far as the identity's rights reach.
pub async fn issue(
    auth: &Auth,
    db: &Db,
    reg: &Tenant,
    identity: &Identity,
    requested: &[Access],
) -> Result<Issued, OciError> {
    let permissions = Permissions::of(db, &reg.row, identity).await?;
    if !permissions.any() {
        let who = match identity {
            Identity::Principal { app_id, .. } => format!("service principal {app_id}"),
            Identity::Admin { .. } => "the admin user".to_owned(),
        };
        return Err(OciError::Forbidden(format!(
            "{who} has no role on registry {}: an Owner or the operator must assign one before it can log in",
            reg.row.name
        )));
    }
    let access: Vec<Access> = permissions.grant(requested);
    let iat = now();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: identity.subject(),
        aud: reg.login_server.clone(),
        exp: iat + auth.token_ttl_secs,
        nbf: iat,
        iat,
        jti: random_secret(16),
        access,
        rid: reg.row.id,
        epoch: identity.epoch(&reg.row),
        password: identity.password_mark(&reg.row),
    };
    let token = auth.keys.sign(&claims).map_err(OciError::Internal)?;
    let scope = claims
        .access
        .iter()
        .map(Access::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Issued {
        token,
        issued_at: iat,
        scope,
    })
}

/// A new refresh token for `identity` in `reg` (docker keeps it after a login), stored as a hash.
pub async fn new_refresh_token(auth: &Auth, db: &Db, reg: &Tenant, identity: &Identity) -> Result<String, OciError> {
    let token = random_secret(32);
    let row = RefreshRow {
        registry_id: reg.row.id,
        subject: identity.subject(),
        principal_id: identity.principal_id(),
        password_slot: identity.admin_password().map(i64::from),
        expires_at: now() + auth.refresh_ttl_secs,
    };
    metadata::refresh_tokens::insert(db, &token_hash(&token), &row).await?;
    Ok(token)
}

/// The identity behind a refresh token, if the token is live, of this registry, and its identity may
/// still log in here.
pub async fn identity_of_refresh_token(db: &Db, reg: &Tenant, token: &str) -> Result<Identity, OciError> {
    let row = metadata::refresh_tokens::find(db, &token_hash(token)).await?;
    let row = row
        .filter(|r| r.registry_id == reg.row.id)
        .ok_or_else(|| OciError::BadCredentials("invalid or revoked refresh token".into()))?;
    let admin_password = row.password_slot.and_then(|slot| u8::try_from(slot).ok());
    auth::identity_of(db, &reg.row, &row.subject, admin_password)
        .await?
        .ok_or_else(|| OciError::BadCredentials("invalid or revoked refresh token".into()))
}
