//! Web portal sessions: signing in with the operator token (every registry) or with a registry's admin
//! user or a principal holding a role there (that registry only), finding who a session cookie stands
//! for while the credentials it was opened with still stand, and signing out.

use crate::auth::secrets::{constant_time_eq, random_secret, token_hash};
use crate::auth::{self, Auth, Identity, Permissions};
use crate::errors::OciError;
use crate::metadata::{self, Db, now, portal_sessions::SessionRow};
use crate::ops::registries::{self, RegistryRow};

const OPERATOR_SUBJECT: &str = "operator";

/// Who a session stands for.
#[derive(Debug, Clone)]
pub enum SignedIn {
    Operator,
    /// The admin user or a principal, confined to `registry`.
    Member {
        registry: Box<RegistryRow>,
        identity: Identity,
    },
}

impl SignedIn {
    /// How the portal names who is signed in.
    pub fn display(&self) -> String {
        match self {
            SignedIn::Operator => "operator".into(),
            SignedIn::Member { registry, identity } => match identity {
                Identity::Admin { .. } => format!("{} (admin user)", registry.name),
                Identity::Principal { app_id, .. } => format!("{app_id} on {}", registry.name),
            },
        }
    }
}

/// A live session: who it stands for and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub signed_in: SignedIn,
    pub csrf_token: String,
}

impl Session {
    /// Whether `offered` is this session's form token.
    pub fn csrf_matches(&self, offered: &str) -> bool {
        constant_time_eq(offered.as_bytes(), self.csrf_token.as_bytes())
    }
}

/// What signing in gives: the cookie value (shown to the browser only) and the session.
pub struct Opened {
    pub cookie: String,
    pub session: Session,
}

/// Signs in with the operator token; `None` if it is not one.
pub async fn sign_in_operator(db: &Db, ttl_secs: i64, token: &str) -> Result<Option<Opened>, OciError> {
    if !auth::is_operator_token(db, token).await? {
        return Ok(None);
    }
    open(
        db,
        ttl_secs,
        SignedIn::Operator,
        OPERATOR_SUBJECT,
        None,
        token_hash(token),
    )
    .await
    .map(Some)
}

/// Signs in to registry `registry` as its admin user (username: the registry's name) or as a principal
/// (username: its appId) that holds a role there; `None` when the credentials match nothing, or a
/// principal with no role there (alike, whether the registry exists or not).
pub async fn sign_in_member(
    auth: &Auth,
    db: &Db,
    ttl_secs: i64,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<Option<Opened>, OciError> {
    let Ok(reg) = registries::find(db, registry).await else {
        // Costs what checking a password does, so the answer does not tell whether the registry exists.
        auth::authenticate_principal(auth, db, username, password).await?;
        return Ok(None);
    };
    let Some(identity) = auth::authenticate(auth, db, &reg, username, password).await? else {
        return Ok(None);
    };
    if !Permissions::of(db, &reg, &identity).await?.any() {
        return Ok(None);
    }
    let stamp = auth::credential_stamp(&reg, &identity);
    let subject = identity.subject();
    let registry_id = Some(reg.id);
    let signed_in = SignedIn::Member {
        registry: Box::new(reg),
        identity,
    };
    open(db, ttl_secs, signed_in, &subject, registry_id, stamp)
        .await
        .map(Some)
}

async fn open(
    db: &Db,
    ttl_secs: i64,
    signed_in: SignedIn,
    subject: &str,
    registry_id: Option<i64>,
    stamp: String,
) -> Result<Opened, OciError> {
    let cookie = random_secret(32);
    let row = SessionRow {
        subject: subject.to_owned(),
        registry_id,
        registry_name: None,
        stamp,
        csrf_token: random_secret(32),
        expires_at: now() + ttl_secs,
    };
    metadata::portal_sessions::insert(db, &token_hash(&cookie), &row).await?;
    let session = Session {
        signed_in,
        csrf_token: row.csrf_token,
    };
    Ok(Opened { cookie, session })
}

/// The session behind cookie value `cookie`, if it is live and the credentials it was opened with are
/// unchanged (the operator token not replaced; the admin password not regenerated nor the admin user
/// disabled; the principal's credentials not reset, nor the principal deleted).
pub async fn find(db: &Db, cookie: &str) -> Result<Option<Session>, OciError> {
    let Some(row) = metadata::portal_sessions::find(db, &token_hash(cookie)).await? else {
        return Ok(None);
    };
    let signed_in = match (row.subject.as_str(), &row.registry_name) {
        (OPERATOR_SUBJECT, None) => metadata::operators::exists(db, &row.stamp)
            .await?
            .then_some(SignedIn::Operator),
        (subject, Some(name)) => match registries::find(db, name).await {
            Ok(reg) if Some(reg.id) == row.registry_id => auth::identity_with_stamp(db, &reg, subject, &row.stamp)
                .await?
                .map(|identity| SignedIn::Member {
                    registry: Box::new(reg),
                    identity,
                }),
            _ => None,
        },
        _ => None,
    };
    Ok(signed_in.map(|signed_in| Session {
        signed_in,
        csrf_token: row.csrf_token,
    }))
}

/// Ends the session behind cookie value `cookie`.
pub async fn sign_out(db: &Db, cookie: &str) -> Result<(), OciError> {
    Ok(metadata::portal_sessions::delete(db, &token_hash(cookie)).await?)
}

/// Deletes expired sessions; returns how many.
pub async fn purge_expired(db: &Db) -> Result<u64, OciError> {
    Ok(metadata::portal_sessions::purge_expired(db).await?)
}
