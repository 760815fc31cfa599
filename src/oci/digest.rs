//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and the streaming hasher that produces them.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

use super::GrammarError;

/// A digest algorithm Berth verifies content with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest. The only way to build one is parsing or hashing, so its text is always canonical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The lowercase hex encoding of the hash.
    pub fn hex(&self) -> &str {
        &self.hex
    }
    /// Hashes a whole in-memory document (manifests) with the given algorithm.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = GrammarError;
    fn from_str(s: &str) -> Result<Self, GrammarError> {
        let invalid = || GrammarError::Digest(format!("invalid digest {:?}", truncate(s)));
        let (alg, hex) = s.split_once(':').ok_or_else(invalid)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(GrammarError::Digest(format!(
                    "unsupported digest algorithm {:?}",
                    truncate(alg)
                )));
            }
        };
        let well_formed =
            hex.len() == algorithm.hex_len() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(invalid());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: GrammarError| serde::de::Error::custom(e.to_string()))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Shortens untrusted input before it is echoed in an error.
pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// An incremental hasher whose whole state (partial block included) can be saved between requests.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// The serialized state: one algorithm byte, then the hasher's own serialization.
    pub fn save(&self) -> Vec<u8> {
        let (tag, state) = match self {
            Hasher::Sha256(h) => (0u8, h.serialize().to_vec()),
            Hasher::Sha512(h) => (1u8, h.serialize().to_vec()),
        };
        let mut out = Vec::with_capacity(state.len() + 1);
        out.push(tag);
        out.extend_from_slice(&state);
        out
    }

    /// Restores a state made by [`Hasher::save`]; `None` if it is not one.
    pub fn restore(saved: &[u8]) -> Option<Self> {
        let (tag, state) = saved.split_first()?;
        match tag {
            0 => {
                let state = SerializedState::<Sha256>::try_from(state).ok()?;
                Sha256::deserialize(&state).ok().map(Hasher::Sha256)
            }
            1 => {
                let state = SerializedState::<Sha512>::try_from(state).ok()?;
                Sha512::deserialize(&state).ok().map(Hasher::Sha512)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_and_rejects_invalid_digests() {
        let sha512 = format!("sha512:{}", "a".repeat(128));
        for ok in [EMPTY_SHA256, sha512.as_str()] {
            assert_eq!(ok.parse::<Digest>().unwrap().to_string(), ok);
        }
        let bad = [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "sha256:../../../../etc/passwd",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ];
        for b in bad {
            assert!(b.parse::<Digest>().is_err(), "{b:?} should be refused");
        }
    }

    #[test]
    fn hashes_known_vectors() {
        assert_eq!(Digest::of(Algorithm::Sha256, b"").to_string(), EMPTY_SHA256);
        assert_eq!(
            Digest::of(Algorithm::Sha512, b"abc").hex(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn saved_state_resumes_at_any_offset_including_partial_blocks() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let whole = Digest::of(algorithm, &data);
            for split in [0, 1, 63, 64, 65, 127, 129, 333, 999, 1000] {
                let mut first = Hasher::new(algorithm);
                first.update(&data[..split]);
                let mut resumed = Hasher::restore(&first.save()).expect("state restores");
                resumed.update(&data[split..]);
                assert_eq!(resumed.finish(), whole, "{algorithm:?} split at {split}");
            }
        }
        assert!(Hasher::restore(&[]).is_none());
        assert!(Hasher::restore(&[0, 1, 2]).is_none());
        assert!(Hasher::restore(&[9; 200]).is_none());
    }
}
