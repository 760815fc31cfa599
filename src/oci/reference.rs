//! Repository names, tags and manifest references, validated to the distribution spec's grammar.

use std::fmt;
use std::str::FromStr;

use super::GrammarError;
use super::digest::{Digest, truncate};

/// The longest repository name accepted (the spec's limit on `<name>`).
pub const MAX_NAME_LEN: usize = 255;

/// A repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoName(String);

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoName {
    type Err = GrammarError;
    fn from_str(s: &str) -> Result<Self, GrammarError> {
        if s.len() > MAX_NAME_LEN {
            return Err(GrammarError::Name(format!(
                "repository name longer than {MAX_NAME_LEN} characters"
            )));
        }
        if s.is_empty() || !s.split('/').all(valid_component) {
            return Err(GrammarError::Name(format!("invalid repository name {:?}", truncate(s))));
        }
        Ok(RepoName(s.to_owned()))
    }
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or any number of `-`.
fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let dashes = sep.bytes().all(|b| b == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
    true
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = GrammarError;
    fn from_str(s: &str) -> Result<Self, GrammarError> {
        let bytes = s.as_bytes();
        let head_ok = bytes.first().is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !head_ok || !rest_ok || bytes.len() > 128 {
            return Err(GrammarError::Manifest(format!("invalid tag {:?}", truncate(s))));
        }
        Ok(Tag(s.to_owned()))
    }
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = GrammarError;
    fn from_str(s: &str) -> Result<Self, GrammarError> {
        if s.contains(':') {
            s.parse().map(Reference::Digest)
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_grammar() {
        let long_ok = format!("a/{}", "b".repeat(253));
        for ok in [
            "a",
            "library/ubuntu",
            "warrantydept/customersubmissions/web",
            "a.b_c__d-e---f",
            "0/1/2",
            long_ok.as_str(),
        ] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok:?} should be accepted");
        }
        let too_long = "a".repeat(256);
        for bad in [
            "",
            "A",
            "Library/ubuntu",
            "..",
            "a/../b",
            "./a",
            "a//b",
            "/a",
            "a/",
            "-a",
            "a-",
            "a___b",
            "a..b",
            "a._b",
            "%2e%2e",
            "a b",
            "a\\b",
            too_long.as_str(),
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn tags_follow_the_grammar() {
        let max = "t".repeat(128);
        for ok in ["latest", "v1.0.1", "_x", "A-b_c.d", max.as_str()] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok:?}");
        }
        let over = "t".repeat(129);
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b", over.as_str()] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever parses prints back to text that parses to the same value: a reference, a repository
        /// name (strings drawn from the grammar's alphabet, so many are accepted and many refused).
        #[test]
        fn what_parses_prints_back_to_the_same_value(
            reference in "[a-zA-Z0-9_.:-]{1,130}|sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}",
            name in "[a-z0-9._/-]{1,40}",
        ) {
            if let Ok(parsed) = reference.parse::<Reference>() {
                let printed = parsed.to_string();
                proptest::prop_assert_eq!(printed.parse::<Reference>().ok(), Some(parsed));
                proptest::prop_assert_eq!(printed, reference);
            }
            if let Ok(parsed) = name.parse::<RepoName>() {
                proptest::prop_assert_eq!(parsed.to_string().parse::<RepoName>().ok(), Some(parsed));
            }
        }
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert!(matches!("v1".parse::<Reference>(), Ok(Reference::Tag(_))));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(d.parse::<Reference>(), Ok(Reference::Digest(_))));
        assert!("sha256:nothex".parse::<Reference>().is_err());
    }
}
