//! Principal passwords: argon2id hashes, checked on blocking threads through a bounded queue, and a
//! short-lived cache of successful verifications so the token endpoint does not pay argon2's cost on every
//! login of a busy CI pipeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

use super::secrets::token_hash;

/// How long a verified (hash, password) pair is trusted without running argon2 again.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_MAX: usize = 10_000;

/// An argon2id PHC string for `password`, computed on a blocking thread.
pub async fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash(&password)).await?
}

/// An argon2id PHC string for `password`.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// How many password checks may wait for a hashing thread before more are refused (429): a flood of
/// guesses is turned away instead of queueing without end.
const MAX_WAITING: usize = 64;

/// A password check that could not run: too many are waiting already.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy;

/// Checks passwords on blocking threads, a few at a time (argon2 takes tens of milliseconds of CPU, which
/// must never stall the async executor serving pulls), and remembers recent successes keyed by a hash of
/// (stored hash, password).
pub struct Verifier {
    verified: Mutex<HashMap<String, Instant>>,
    /// One permit per hashing thread allowed at once.
    hashing: Arc<Semaphore>,
    /// Permits for checks waiting for or holding a hashing thread.
    waiting: Arc<Semaphore>,
    /// A hash of a random password, checked for names that match no identity, so an unknown name costs
    /// what a known one does and answers no faster.
    decoy: String,
}

impl Verifier {
    /// A verifier hashing on as many threads as the machine has cores.
    pub fn new() -> anyhow::Result<Verifier> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Verifier {
            verified: Mutex::new(HashMap::new()),
            hashing: Arc::new(Semaphore::new(cores)),
            waiting: Arc::new(Semaphore::new(MAX_WAITING)),
            decoy: hash(&super::secrets::random_password())?,
        })
    }

    /// Whether `password` matches the PHC string `stored`.
    pub async fn verify(&self, stored: &str, password: &str) -> Result<bool, Busy> {
        let key = token_hash(&format!("{stored}\u{0}{password}"));
        if let Ok(cache) = self.verified.lock()
            && cache.get(&key).is_some_and(|at| at.elapsed() < VERIFIED_TTL)
        {
            return Ok(true);
        }
        let ok = self.check(stored, password).await?;
        if ok && let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_MAX {
                cache.retain(|_, at| at.elapsed() < VERIFIED_TTL);
                if cache.len() >= VERIFIED_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, Instant::now());
        }
        Ok(ok)
    }

    /// Spends what checking a real password costs, for a name that matches no identity; always false.
    pub async fn verify_unknown(&self, password: &str) -> Result<bool, Busy> {
        self.check(&self.decoy, password).await.map(|_| false)
    }

    /// Runs argon2 on a blocking thread once one is free.
    async fn check(&self, stored: &str, password: &str) -> Result<bool, Busy> {
        let _waiting = self.waiting.clone().try_acquire_owned().map_err(|_| Busy)?;
        let _hashing = self.hashing.clone().acquire_owned().await.map_err(|_| Busy)?;
        let (stored, password) = (stored.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let stored = hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        let verifier = Verifier::new().unwrap();
        assert!(verifier.verify(&stored, "correct horse").await.unwrap());
        assert!(
            verifier.verify(&stored, "correct horse").await.unwrap(),
            "again, from the cache"
        );
        assert!(!verifier.verify(&stored, "wrong").await.unwrap());
        assert!(!verifier.verify("not a phc string", "correct horse").await.unwrap());
        assert!(!verifier.verify_unknown("correct horse").await.unwrap());
        assert_ne!(hash("correct horse").unwrap(), stored, "salted");
    }

    #[tokio::test]
    async fn checks_past_the_waiting_bound_are_refused_not_queued() {
        let stored = hash("correct horse").unwrap();
        let verifier = Verifier::new().unwrap();
        let checks = (0..MAX_WAITING * 2).map(|_| verifier.verify(&stored, "wrong"));
        let results = futures::future::join_all(checks).await;
        let refused = results.iter().filter(|r| r.is_err()).count();
        assert!(refused >= MAX_WAITING, "{refused} of {} refused", MAX_WAITING * 2);
        assert!(results.iter().any(|r| matches!(r, Ok(false))));
    }
}
