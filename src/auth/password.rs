//! Principal passwords: argon2id hashes, and a short-lived cache of successful verifications so the
//! token endpoint does not pay argon2's cost on every login of a busy CI pipeline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::secrets::token_hash;

/// How long a verified (hash, password) pair is trusted without running argon2 again.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_MAX: usize = 10_000;

/// An argon2id PHC string for `password`.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Remembers recent successful verifications, keyed by a hash of (stored hash, password).
#[derive(Default)]
pub struct Verifier {
    verified: Mutex<HashMap<String, Instant>>,
}

impl Verifier {
    /// Whether `password` matches the PHC string `stored`.
    pub fn verify(&self, stored: &str, password: &str) -> bool {
        let key = token_hash(&format!("{stored}\u{0}{password}"));
        if let Ok(cache) = self.verified.lock()
            && cache.get(&key).is_some_and(|at| at.elapsed() < VERIFIED_TTL)
        {
            return true;
        }
        let ok = PasswordHash::new(stored)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
        if ok && let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_MAX {
                cache.retain(|_, at| at.elapsed() < VERIFIED_TTL);
                if cache.len() >= VERIFIED_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, Instant::now());
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let stored = hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        let verifier = Verifier::default();
        assert!(verifier.verify(&stored, "correct horse"));
        assert!(verifier.verify(&stored, "correct horse"), "again, from the cache");
        assert!(!verifier.verify(&stored, "wrong"));
        assert!(!verifier.verify("not a phc string", "correct horse"));
        assert_ne!(hash("correct horse").unwrap(), stored, "salted");
    }
}
