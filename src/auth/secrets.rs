//! Secrets at rest and fresh secrets: AES-256-GCM with the installation key for what must be read back
//! (admin passwords, signing keys), SHA-256 for high-entropy tokens, and random generation.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest as _, Sha256};

const NONCE_LEN: usize = 12;

/// Encrypts and decrypts small secrets with the installation key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    /// From a base64-encoded 32-byte key.
    pub fn from_base64(key: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| anyhow::anyhow!("the secret key is not base64"))?;
        anyhow::ensure!(
            bytes.len() == 32,
            "the secret key must be 32 bytes (base64 of 32 random bytes)"
        );
        Ok(SecretBox {
            cipher: Aes256Gcm::new_from_slice(&bytes).map_err(|_| anyhow::anyhow!("bad key length"))?,
        })
    }

    /// A new random key, base64-encoded.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Nonce followed by ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        // Encryption with a valid key and a fresh nonce cannot fail for in-memory buffers.
        out.extend(
            self.cipher
                .encrypt(Nonce::from_slice(&nonce), plain)
                .unwrap_or_default(),
        );
        out
    }

    pub fn open(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > NONCE_LEN, "sealed secret too short");
        let (nonce, cipher) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), cipher)
            .map_err(|_| anyhow::anyhow!("a stored secret does not decrypt: was the secret key changed?"))
    }
}

/// A random secret of `bytes` bytes, URL-safe base64 (passwords, tokens).
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A random credential people paste (passwords, the operator token): 32 letters and digits, about 190
/// bits, nothing a shell or a command line (a leading `-`) could misread.
pub fn random_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
}

/// The SHA-256 of a high-entropy token, hex: how tokens are stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = SecretBox::generate_key();
        let sealed_box = SecretBox::from_base64(&key).unwrap();
        let sealed = sealed_box.seal(b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(sealed_box.open(&sealed).unwrap(), b"hunter2");
        assert_ne!(sealed_box.seal(b"hunter2"), sealed, "fresh nonce each time");
        let other = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
        assert_eq!(format!("{sealed_box:?}"), "SecretBox(<redacted>)");
    }

    #[test]
    fn random_secrets_differ_and_hashes_are_stable() {
        assert_ne!(random_secret(32), random_secret(32));
        assert_eq!(random_secret(32).len(), 43);
        let password = random_password();
        assert!(password.len() == 32 && password.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(password, random_password());
        assert_eq!(token_hash("abc"), token_hash("abc"));
        assert!(constant_time_eq(b"same", b"same") && !constant_time_eq(b"same", b"diff"));
    }
}
