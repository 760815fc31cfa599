//! Access tokens: ES256 JWTs with a `kid`, signed by a key kept (encrypted) in the database so every node
//! and every restart verifies them.

use std::collections::HashMap;
use std::sync::RwLock;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use super::secrets::{SecretBox, random_secret};
use crate::metadata::{self, Db};
use crate::oci::scope::Access;

/// The `iss` of every token Berth signs.
pub const ISSUER: &str = "berth";

/// The claims of an access token (Distribution's claim set).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub access: Vec<Access>,
    /// The row id of the registry the token was issued for: a registry deleted and created again under
    /// the same name (same audience) has a new id, and the old tokens are refused.
    pub rid: i64,
    /// The revocation epoch of the subject when the token was issued (see [`super::token_is_current`]).
    pub epoch: i64,
    /// For the admin user: which of its two passwords the token came from, and a fingerprint of that
    /// password as stored, which renewing it changes. Absent for principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordMark>,
}

/// Which admin password a token came from (see [`Claims::password`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordMark {
    pub slot: u8,
    pub fingerprint: String,
}

impl Claims {
    /// Whether the token grants `action` on resource (`kind`, `name`); `*` matches only itself (the catalog).
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == kind && a.name == name && a.actions.contains(action))
    }
}

/// Tokens already verified, by (audience, token), kept up to about this many bytes in all (a typical
/// token weighs about 1.2 KiB here; a full cache holds about twice its bound in the heap).
const VERIFIED_MAX_BYTES: usize = 4 << 20;
/// A token weighing more than this is verified every time, never kept.
const VERIFIED_MAX_ENTRY_BYTES: usize = 256 << 10;

/// How long past its expiry a token in use may keep working at most (see [`Keys::used`]).
const IN_USE_AT_MOST_SECS: i64 = 3600;

/// A verified token: its claims, its weight in bytes, and when a request using it last ended (0: never).
struct Entry {
    claims: Claims,
    weight: usize,
    used_at: i64,
}

impl Entry {
    /// Whether the token verifies at `now`: within its lifetime and `leeway`, or in use (a request using it
    /// ended less than `leeway` ago) and at most [`IN_USE_AT_MOST_SECS`] past its expiry.
    fn valid_at(&self, now: i64, leeway: i64) -> bool {
        let claims = &self.claims;
        let started = claims.nbf - leeway <= now;
        let live = now < claims.exp + leeway;
        let in_use = now < self.used_at + leeway && now < claims.exp + IN_USE_AT_MOST_SECS;
        started && (live || in_use)
    }
}

/// Verified tokens and the bytes they hold. Bounded in bytes, not entries: a token's size is the caller's
/// choice.
#[derive(Default)]
struct Verified {
    entries: HashMap<(String, String), Entry>,
    bytes: usize,
}

impl Verified {
    /// About how many bytes an entry holds: its key and its claims.
    fn weight(audience: &str, token: &str, claims: &Claims) -> usize {
        let access: usize = claims
            .access
            .iter()
            .map(|a| 64 + a.kind.len() + a.name.len() + a.actions.iter().map(|x| 32 + x.len()).sum::<usize>())
            .sum();
        256 + audience.len() + token.len() + claims.sub.len() + claims.aud.len() + claims.jti.len() + access
    }

    /// Keeps `claims`, dropping entries expired past `leeway`, then everything, when the bound would be
    /// passed.
    fn keep(&mut self, key: (String, String), claims: Claims, leeway: i64) {
        let weight = Self::weight(&key.0, &key.1, &claims);
        if weight > VERIFIED_MAX_ENTRY_BYTES {
            return;
        }
        if self.bytes + weight > VERIFIED_MAX_BYTES {
            let now = crate::metadata::now();
            self.entries.retain(|_, entry| entry.valid_at(now, leeway));
            self.bytes = self.entries.values().map(|entry| entry.weight).sum();
            if self.bytes + weight > VERIFIED_MAX_BYTES {
                self.entries = HashMap::new();
                self.bytes = 0;
            }
        }
        let entry = Entry {
            claims,
            weight,
            used_at: 0,
        };
        if let Some(replaced) = self.entries.insert(key, entry) {
            self.bytes -= replaced.weight;
        }
        self.bytes += weight;
    }
}

/// The signing key, every known verification key, and the tokens already verified (a client reuses its
/// token for every request of a push or pull; checking its ES256 signature once is enough).
pub struct Keys {
    kid: String,
    encoding: EncodingKey,
    decoding: RwLock<HashMap<String, DecodingKey>>,
    verified: std::sync::Mutex<Verified>,
    secrets: SecretBox,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (`auth.clock_leeway_secs`).
    leeway: u64,
}

impl Keys {
    /// Loads the newest signing key, creating one on first start; tokens verify within `leeway` seconds
    /// of their `nbf` and `exp`.
    pub async fn load_or_create(db: &Db, secrets: SecretBox, leeway: u64) -> anyhow::Result<Keys> {
        let row = match metadata::signing_keys::newest(db).await? {
            Some(row) => row,
            None => {
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| anyhow::anyhow!("generating a signing key"))?;
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|_| anyhow::anyhow!("reading the new signing key"))?;
                let kid = random_secret(12);
                let sealed = secrets.seal(pkcs8.as_ref());
                metadata::signing_keys::insert(db, &kid, &sealed, pair.public_key().as_ref()).await?;
                // Another node may have created one at the same moment: use whichever is newest.
                metadata::signing_keys::newest(db)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("signing key vanished"))?
            }
        };
        let pkcs8 = secrets.open(&row.private_key)?;
        let mut decoding = HashMap::new();
        decoding.insert(row.kid.clone(), DecodingKey::from_ec_der(&row.public_key));
        Ok(Keys {
            kid: row.kid,
            encoding: EncodingKey::from_ec_der(&pkcs8),
            decoding: RwLock::new(decoding),
            verified: std::sync::Mutex::new(Verified::default()),
            secrets,
            leeway,
        })
    }

    /// The installation's secret box, for the other secrets kept at rest.
    pub fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(encode(&header, claims, &self.encoding)?)
    }

    /// Verifies signature, issuer, audience, expiry and shape; `None` for any token that fails. A token
    /// this node verified stays valid past its expiry while it is in use ([`Keys::used`]).
    pub async fn verify(&self, db: &Db, token: &str, audience: &str) -> Option<Claims> {
        let cache_key = (audience.to_owned(), token.to_owned());
        if let Some(entry) = self.verified.lock().ok()?.entries.get(&cache_key) {
            let valid = entry.valid_at(crate::metadata::now(), self.leeway as i64);
            return valid.then(|| entry.claims.clone());
        }
        let claims = self.verify_signed(db, token, audience).await?;
        if let Ok(mut verified) = self.verified.lock() {
            verified.keep(cache_key, claims.clone(), self.leeway as i64);
        }
        Some(claims)
    }

    /// Records that a request `token` (for `audience`) was verified for has just ended: for `leeway` seconds
    /// more the token verifies even if it expired while the request ran (at most [`IN_USE_AT_MOST_SECS`]
    /// past its expiry). A client in the middle of a push or pull so finishes it: containerd 1.6 keeps the
    /// token it got first and cannot send a manifest again after a 401, so a push whose layer upload
    /// outlived the token would fail. Revocation is not delayed: every request still checks the identity
    /// and registry the token names.
    ///
    /// Before `claims` (the token's) expire nothing is recorded: a use within the lifetime extends nothing, and most
    /// requests (the hot path) take no lock here.
    pub fn used(&self, token: &str, audience: &str, claims: &Claims) {
        let now = crate::metadata::now();
        if now <= claims.exp {
            return;
        }
        if let Ok(mut verified) = self.verified.lock()
            && let Some(entry) = verified.entries.get_mut(&(audience.to_owned(), token.to_owned()))
            && now < entry.claims.exp + IN_USE_AT_MOST_SECS
        {
            entry.used_at = now;
        }
    }

    /// Checks a token's signature and claims (the expensive part of [`Keys::verify`]).
    async fn verify_signed(&self, db: &Db, token: &str, audience: &str) -> Option<Claims> {
        let kid = decode_header(token).ok()?.kid?;
        let key = self.decoding_key(db, &kid).await?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss", "sub"]);
        decode::<Claims>(token, &key, &validation).ok().map(|data| data.claims)
    }

    /// The verification key `kid`, looked up in the database when another node made it.
    async fn decoding_key(&self, db: &Db, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.decoding.read().ok()?.get(kid) {
            return Some(key.clone());
        }
        let public = metadata::signing_keys::public_key(db, kid).await.ok()??;
        let key = DecodingKey::from_ec_der(&public);
        self.decoding.write().ok()?.insert(kid.to_owned(), key.clone());
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, exp: i64, names: usize) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "admin".into(),
            aud: "r.localhost".into(),
            exp,
            nbf: 0,
            iat: 0,
            jti: jti.into(),
            access: (0..names)
                .map(|i| Access::repository(&format!("{i:0>200}"), &["pull"]))
                .collect(),
            rid: 1,
            epoch: 0,
            password: None,
        }
    }

    #[test]
    fn a_token_in_use_outlives_its_expiry_by_the_leeway_after_each_use_for_an_hour_at_most() {
        let (exp, leeway) = (1_000_000, 60);
        let mut entry = Entry {
            claims: claims("t", exp, 1),
            weight: 0,
            used_at: 0,
        };
        assert!(entry.valid_at(exp + 59, leeway), "within the leeway");
        assert!(!entry.valid_at(exp + 60, leeway), "expired, never used");
        // A request using it ended at exp + 30 (a long push): it works until exp + 90.
        entry.used_at = exp + 30;
        assert!(entry.valid_at(exp + 89, leeway));
        assert!(!entry.valid_at(exp + 90, leeway), "idle for the leeway: expired");
        // In use, but never more than an hour past its expiry.
        entry.used_at = exp + IN_USE_AT_MOST_SECS - 10;
        assert!(entry.valid_at(exp + IN_USE_AT_MOST_SECS - 1, leeway));
        assert!(!entry.valid_at(exp + IN_USE_AT_MOST_SECS, leeway));
    }

    #[test]
    fn the_verified_cache_stays_within_its_bytes_whatever_the_tokens_weigh() {
        let mut verified = Verified::default();
        let live = crate::metadata::now() + 3600;
        for i in 0..5_000 {
            let token = format!("{i}{}", "t".repeat(20_000));
            verified.keep(("r.localhost".into(), token), claims(&i.to_string(), live, 100), 60);
            assert!(
                verified.bytes <= VERIFIED_MAX_BYTES,
                "{} bytes after {i}",
                verified.bytes
            );
        }
        let held: usize = verified.entries.values().map(|entry| entry.weight).sum();
        assert_eq!(held, verified.bytes, "the count matches what is held");
        assert!(!verified.entries.is_empty());

        let huge = "t".repeat(VERIFIED_MAX_ENTRY_BYTES);
        verified.keep(("r.localhost".into(), huge.clone()), claims("huge", live, 1), 60);
        assert!(!verified.entries.contains_key(&("r.localhost".to_string(), huge)));
    }
}
