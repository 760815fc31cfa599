//! Whether a data-plane request's bearer token grants what the request needs, and the refusal that
//! tells a client why (and where to get a token) when it does not.

use crate::errors::{Challenge, OciError};
use crate::metadata::{Db, registries::RegistryRow};
use crate::oci::scope::Access;

use super::token::Claims;
use super::{Auth, Permissions, identity_of, token_is_current};

/// Reads the bearer token of a request and checks it grants every access in `need`.
/// No or bad token: 401 with the challenge. A valid token lacking an action: 403 DENIED with an
/// `insufficient_scope` challenge, saying to fetch a token for it when the caller's roles allow it (as
/// RFC 6750 has it: clients that reuse a token, like the ORAS Python client, fetch a new one on a 403 and
/// not on a repeated 401; docker, containerd and skopeo ask for every scope up front), or naming the
/// caller's roles when they never allow it.
pub async fn authorize(
    auth: &Auth,
    db: &Db,
    reg: &RegistryRow,
    bearer: Option<&str>,
    need: &[Access],
    challenge: Challenge,
) -> Result<Claims, OciError> {
    let Some(token) = bearer else {
        return Err(OciError::Unauthorized(Box::new(challenge)));
    };
    let claims = match auth.keys.verify(db, token, &challenge.service).await {
        Some(claims) if token_is_current(db, reg, &claims).await? => Some(claims),
        _ => None,
    };
    let Some(claims) = claims else {
        return Err(OciError::Unauthorized(Box::new(Challenge {
            invalid_token: true,
            ..challenge
        })));
    };
    let lacking: Vec<&Access> = need
        .iter()
        .filter(|a| a.actions.iter().any(|action| !claims.allows(&a.kind, &a.name, action)))
        .collect();
    if lacking.is_empty() {
        return Ok(claims);
    }
    let owned: Vec<Access> = lacking.iter().map(|a| (*a).clone()).collect();
    let permissions = match identity_of(db, reg, &claims.sub, claims.password.as_ref().map(|m| m.slot)).await? {
        Some(identity) => Some(Permissions::of(db, reg, &identity).await?),
        None => None,
    };
    if permissions.as_ref().is_some_and(|p| p.grant(&owned) == owned) {
        let reason = format!(
            "the token does not grant {}: fetch a token for the scope in WWW-Authenticate",
            describe(&owned)
        );
        return Err(OciError::AccessDenied(
            Box::new(Challenge {
                insufficient: true,
                ..challenge
            }),
            reason,
        ));
    }
    let reason = denial_reason(&claims.sub, &reg.name, &owned, permissions.as_ref());
    Err(OciError::AccessDenied(
        Box::new(Challenge {
            scope: owned,
            insufficient: true,
            ..challenge
        }),
        reason,
    ))
}

/// `pull,push on repository a/b; pull on repository c`.
fn describe(accesses: &[Access]) -> String {
    accesses
        .iter()
        .map(|a| {
            let actions: Vec<&str> = a.actions.iter().map(String::as_str).collect();
            format!("{} on {} {}", actions.join(","), a.kind, a.name)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why `subject` may not do `lacking`: the actions and repositories refused, and the roles the caller
/// holds in registry `registry` (its own assignments only: nothing about repositories it cannot see).
fn denial_reason(subject: &str, registry: &str, lacking: &[Access], permissions: Option<&Permissions>) -> String {
    let refused = describe(lacking);
    let who = subject
        .strip_prefix("sp:")
        .map_or_else(|| "the admin user".to_owned(), |id| format!("service principal {id}"));
    let holds = match permissions {
        None => "can no longer log in here".to_owned(),
        Some(Permissions::Everything) => "holds every right".to_owned(),
        Some(Permissions::Roles(roles)) if roles.is_empty() => format!("has no role on registry {registry}"),
        Some(Permissions::Roles(roles)) => {
            let held: Vec<String> = roles
                .iter()
                .map(|(prefix, role)| match prefix.as_str() {
                    "" => format!("{role} on registry {registry}"),
                    prefix => format!("{role} on repositories {prefix}/*"),
                })
                .collect();
            format!("has {}", held.join(", "))
        }
    };
    format!("{refused} refused: {who} {holds}")
}
