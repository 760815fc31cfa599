//! Who is calling and what they may do: credentials (admin users, service principals, operators),
//! roles, token issuance and verification. Depends on `oci` and `metadata`, never on `http`.

pub mod access;
pub mod password;
pub mod roles;
pub mod secrets;
pub mod throttle;
pub mod token;

use std::collections::BTreeSet;

use crate::errors::OciError;
use crate::metadata::{self, Db, registries::RegistryRow};
use crate::oci::scope::Access;
use password::Verifier;
use roles::{Role, prefix_covers};
use secrets::{SecretBox, constant_time_eq};
use sha2::{Digest as _, Sha256};
use throttle::LoginThrottle;
use token::{Claims, Keys, PasswordMark};

/// The subject of the registry's admin user in tokens and refresh tokens.
pub const ADMIN_SUBJECT: &str = "admin";

/// Authentication state shared by all requests.
pub struct Auth {
    pub keys: Keys,
    pub verifier: Verifier,
    pub throttle: LoginThrottle,
    pub token_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
}

impl Auth {
    pub fn secrets(&self) -> &SecretBox {
        self.keys.secrets()
    }

    /// 429 when `identity` spent its failure budget and the current source has not logged in as it lately.
    fn refuse_if_throttled(&self, identity: &str) -> Result<(), OciError> {
        match self.throttle.identity_wait(identity) {
            Some(retry_after_secs) => Err(OciError::TooManyRequests {
                retry_after_secs,
                reason: "too many failed logins for this user".into(),
            }),
            None => Ok(()),
        }
    }

    fn note_attempt(&self, identity: &str, succeeded: bool) {
        if succeeded {
            self.throttle.identity_succeeded(identity);
        } else {
            self.throttle.identity_failed(identity);
        }
    }
}

/// An authenticated caller of one registry's data plane.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// The registry's admin user, with which of its two passwords (1 or 2) it logged in; `None` when that
    /// is not known (a refresh token from before it was recorded).
    Admin { password: Option<u8> },
    Principal {
        id: i64,
        app_id: String,
        /// The principal's revocation epoch when it was authenticated.
        epoch: i64,
    },
}

impl Identity {
    /// The `sub` claim: `admin` or `sp:<appId>`.
    pub fn subject(&self) -> String {
        match self {
            Identity::Admin { .. } => ADMIN_SUBJECT.to_string(),
            Identity::Principal { app_id, .. } => format!("sp:{app_id}"),
        }
    }

    pub fn principal_id(&self) -> Option<i64> {
        match self {
            Identity::Admin { .. } => None,
            Identity::Principal { id, .. } => Some(*id),
        }
    }

    /// The admin password this identity logged in with, if it is the admin user and that is known.
    pub fn admin_password(&self) -> Option<u8> {
        match self {
            Identity::Admin { password } => *password,
            Identity::Principal { .. } => None,
        }
    }

    /// What an access token records of the admin password it came from (see [`token_is_current`]).
    pub fn password_mark(&self, reg: &RegistryRow) -> Option<PasswordMark> {
        let slot = self.admin_password()?;
        Some(PasswordMark {
            slot,
            fingerprint: password_fingerprint(reg, slot)?,
        })
    }

    /// The revocation epoch access tokens issued to this identity in `reg` carry.
    pub fn epoch(&self, reg: &RegistryRow) -> i64 {
        match self {
            Identity::Admin { .. } => reg.admin_epoch,
            Identity::Principal { epoch, .. } => *epoch,
        }
    }
}

/// A fingerprint of admin password `slot` as stored (sealed with a fresh nonce, so every renewal changes
/// it); `None` when the registry has no such password.
fn password_fingerprint(reg: &RegistryRow, slot: u8) -> Option<String> {
    let sealed = match slot {
        1 => reg.admin_password1.as_deref()?,
        2 => reg.admin_password2.as_deref()?,
        _ => return None,
    };
    Some(hex::encode(&Sha256::digest(sealed)[..8]))
}

/// What the credentials `identity` signed in with stand on, for a session that must end when they change:
/// the admin user's revocation epoch and the fingerprint of its password, a principal's revocation epoch.
pub fn credential_stamp(reg: &RegistryRow, identity: &Identity) -> String {
    match identity {
        Identity::Admin { password } => {
            let fingerprint = password.and_then(|slot| password_fingerprint(reg, slot));
            format!("{}:{}", reg.admin_epoch, fingerprint.unwrap_or_default())
        }
        Identity::Principal { epoch, .. } => epoch.to_string(),
    }
}

/// The identity behind a sign-in of `subject` whose credentials had `stamp` ([`credential_stamp`]), if
/// those credentials still stand in `reg`.
pub async fn identity_with_stamp(
    db: &Db,
    reg: &RegistryRow,
    subject: &str,
    stamp: &str,
) -> Result<Option<Identity>, OciError> {
    if subject == ADMIN_SUBJECT {
        let signed_in_with = [1, 2]
            .map(|slot| Identity::Admin { password: Some(slot) })
            .into_iter()
            .find(|identity| credential_stamp(reg, identity) == stamp);
        return Ok(signed_in_with.filter(|_| reg.admin_enabled));
    }
    let current = identity_of(db, reg, subject, None).await?;
    Ok(current.filter(|identity| credential_stamp(reg, identity) == stamp))
}

/// Whether an access token verified for `reg`'s login server is still good: issued for this very registry
/// (not an earlier one of the same name) to an identity that still exists, may still log in, and has not
/// been revoked since (its epoch is current; for the admin user, the password it came from is unchanged).
pub async fn token_is_current(db: &Db, reg: &RegistryRow, claims: &Claims) -> Result<bool, OciError> {
    if claims.rid != reg.id {
        return Ok(false);
    }
    if claims.sub == ADMIN_SUBJECT {
        let password_unchanged = claims
            .password
            .as_ref()
            .is_none_or(|mark| password_fingerprint(reg, mark.slot).as_ref() == Some(&mark.fingerprint));
        return Ok(reg.admin_enabled && claims.epoch == reg.admin_epoch && password_unchanged);
    }
    let Some(app_id) = claims.sub.strip_prefix("sp:") else {
        return Ok(false);
    };
    Ok(metadata::principals::epoch(db, app_id).await? == Some(claims.epoch))
}

/// Whether `token` is an operator token of the management API (only its hash is stored).
pub async fn is_operator_token(db: &Db, token: &str) -> Result<bool, OciError> {
    Ok(metadata::operators::exists(db, &secrets::token_hash(token)).await?)
}

/// Checks a username and password against the registry's admin user (username = registry name) and
/// the service principals (username = appId). `None` when they match nothing.
pub async fn authenticate(
    auth: &Auth,
    db: &Db,
    reg: &RegistryRow,
    username: &str,
    password: &str,
) -> Result<Option<Identity>, OciError> {
    if username.eq_ignore_ascii_case(&reg.name) {
        let key = format!("admin@{}", reg.id);
        auth.refuse_if_throttled(&key)?;
        let matched = [(1, &reg.admin_password1), (2, &reg.admin_password2)]
            .into_iter()
            .filter(|_| reg.admin_enabled)
            .find_map(|(slot, sealed)| {
                let plain = auth.secrets().open(sealed.as_deref()?).ok()?;
                constant_time_eq(&plain, password.as_bytes()).then_some(slot)
            });
        auth.note_attempt(&key, matched.is_some());
        return Ok(matched.map(|slot| Identity::Admin { password: Some(slot) }));
    }
    authenticate_principal(auth, db, username, password).await
}

/// Checks a service principal's appId and password (for the data plane and the management API alike).
pub async fn authenticate_principal(
    auth: &Auth,
    db: &Db,
    app_id: &str,
    password: &str,
) -> Result<Option<Identity>, OciError> {
    let busy = |_| OciError::TooManyRequests {
        retry_after_secs: 1,
        reason: "too many password checks waiting".into(),
    };
    let app_id = app_id.to_ascii_lowercase();
    auth.refuse_if_throttled(&app_id)?;
    let Some(principal) = metadata::principals::find(db, &app_id).await? else {
        auth.verifier.verify_unknown(password).await.map_err(busy)?;
        auth.note_attempt(&app_id, false);
        return Ok(None);
    };
    let hashes = metadata::principals::secret_hashes(db, principal.id).await?;
    let mut matches = false;
    for stored in &hashes {
        if auth.verifier.verify(stored, password).await.map_err(busy)? {
            matches = true;
            break;
        }
    }
    auth.note_attempt(&app_id, matches);
    Ok(matches.then_some(Identity::Principal {
        id: principal.id,
        app_id: principal.app_id,
        epoch: principal.auth_epoch,
    }))
}

/// The identity a token subject names, if it still exists and may still log in to the registry; the admin
/// user as having logged in with `admin_password` (1, 2, or not known).
pub async fn identity_of(
    db: &Db,
    reg: &RegistryRow,
    subject: &str,
    admin_password: Option<u8>,
) -> Result<Option<Identity>, OciError> {
    if subject == ADMIN_SUBJECT {
        let password_exists = admin_password.is_none_or(|slot| password_fingerprint(reg, slot).is_some());
        return Ok((reg.admin_enabled && password_exists).then_some(Identity::Admin {
            password: admin_password,
        }));
    }
    let Some(app_id) = subject.strip_prefix("sp:") else {
        return Ok(None);
    };
    let principal = metadata::principals::find(db, app_id).await?;
    Ok(principal.map(|p| Identity::Principal {
        id: p.id,
        app_id: p.app_id,
        epoch: p.auth_epoch,
    }))
}

/// What an identity may do in one registry.
#[derive(Debug, Clone)]
pub enum Permissions {
    /// The admin user: pull, push and delete everywhere.
    Everything,
    /// A principal's role assignments: `(repository prefix, role)`; prefix '' is the whole registry.
    Roles(Vec<(String, Role)>),
}

impl Permissions {
    pub async fn of(db: &Db, reg: &RegistryRow, identity: &Identity) -> Result<Permissions, OciError> {
        match identity {
            Identity::Admin { .. } => Ok(Permissions::Everything),
            Identity::Principal { id, .. } => {
                let rows = metadata::role_assignments::of_principal(db, *id, reg.id).await?;
                Ok(Permissions::Roles(
                    rows.into_iter()
                        .filter_map(|(prefix, role)| Some((prefix, role.parse().ok()?)))
                        .collect(),
                ))
            }
        }
    }

    /// The data-plane actions allowed on repository `repo`.
    pub fn actions_on(&self, repo: &str) -> BTreeSet<&'static str> {
        match self {
            Permissions::Everything => ["pull", "push", "delete"].into(),
            Permissions::Roles(roles) => roles
                .iter()
                .filter(|(prefix, _)| prefix_covers(prefix, repo))
                .flat_map(|(_, role)| role.actions().iter().copied())
                .collect(),
        }
    }

    /// Whether `action` (pull, push, delete) is allowed on at least one repository.
    pub fn allows_somewhere(&self, action: &str) -> bool {
        match self {
            Permissions::Everything => true,
            Permissions::Roles(roles) => roles.iter().any(|(_, role)| role.actions().contains(&action)),
        }
    }

    /// Whether the identity holds any role here (and so may list the catalog, filtered).
    pub fn any(&self) -> bool {
        match self {
            Permissions::Everything => true,
            Permissions::Roles(roles) => !roles.is_empty(),
        }
    }

    /// Whether the identity may manage the registry (Owner on the whole registry).
    pub fn manages(&self) -> bool {
        match self {
            Permissions::Everything => false,
            Permissions::Roles(roles) => roles.iter().any(|(prefix, role)| prefix.is_empty() && role.manages()),
        }
    }

    /// The requested accesses intersected with what is allowed; resources with nothing left are dropped.
    pub fn grant(&self, requested: &[Access]) -> Vec<Access> {
        requested
            .iter()
            .filter_map(|want| {
                let allowed: BTreeSet<String> = match (want.kind.as_str(), want.name.as_str()) {
                    // `*` asks for everything and gets what the roles allow, spelled out: a granted `*`
                    // would pass for any action.
                    ("repository", repo) => {
                        let ok = self.actions_on(repo);
                        if want.actions.contains("*") {
                            ok.iter().map(|a| a.to_string()).collect()
                        } else {
                            want.actions
                                .iter()
                                .filter(|a| ok.contains(a.as_str()))
                                .cloned()
                                .collect()
                        }
                    }
                    ("registry", "catalog") if self.any() => {
                        want.actions.iter().filter(|a| a.as_str() == "*").cloned().collect()
                    }
                    _ => BTreeSet::new(),
                };
                (!allowed.is_empty()).then(|| Access {
                    kind: want.kind.clone(),
                    name: want.name.clone(),
                    actions: allowed,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_the_intersection_of_request_and_roles() {
        let reader_on_dept = Permissions::Roles(vec![("warrantydept".into(), Role::Reader)]);
        let requested = vec![
            Access::repository("warrantydept/dotnet-build", &["pull", "push"]),
            Access::repository("aspnetcore", &["pull"]),
            Access::catalog(),
        ];
        assert_eq!(
            reader_on_dept.grant(&requested),
            vec![
                Access::repository("warrantydept/dotnet-build", &["pull"]),
                Access::catalog()
            ]
        );
        let contributor = Permissions::Roles(vec![(String::new(), Role::Contributor)]);
        assert_eq!(
            contributor.grant(&requested[..1]),
            vec![Access::repository("warrantydept/dotnet-build", &["pull", "push"])]
        );
        assert!(!contributor.manages());
        assert!(Permissions::Roles(vec![(String::new(), Role::Owner)]).manages());
        assert!(
            !Permissions::Roles(vec![("x".into(), Role::Owner)]).manages(),
            "an Owner of a prefix manages nothing"
        );
        assert!(Permissions::Roles(vec![]).grant(&requested).is_empty());
        assert_eq!(Permissions::Everything.grant(&requested).len(), 3);
        let everything = vec![Access::repository("warrantydept/web", &["*"])];
        assert_eq!(
            reader_on_dept.grant(&everything),
            vec![Access::repository("warrantydept/web", &["pull"])]
        );
        assert_eq!(
            contributor.grant(&everything),
            vec![Access::repository("warrantydept/web", &["delete", "pull", "push"])]
        );
    }
}
