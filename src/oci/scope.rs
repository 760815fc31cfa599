//! The token spec's scope grammar: `repository:<name>:<action>[,<action>…]` and `registry:catalog:*`.
//! Several scopes come as repeated `scope` parameters or space-separated in one.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

/// One requested or granted access: a resource and the actions on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: BTreeSet<String>,
}

impl Access {
    pub fn repository(name: &str, actions: &[&str]) -> Access {
        Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    pub fn catalog() -> Access {
        Access {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: ["*".to_string()].into(),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(String::as_str).collect();
        write!(f, "{}:{}:{}", self.kind, self.name, actions.join(","))
    }
}

/// The most scopes one token request may carry. docker, containerd and skopeo ask for a handful (a
/// push with cross-repository mounts names each source); more is refused rather than parsed and signed.
pub const MAX_SCOPES: usize = 100;

/// A token request naming more than [`MAX_SCOPES`] scopes.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many scopes: a token request may ask for at most {MAX_SCOPES}")]
pub struct TooManyScopes;

/// Parses every scope in `params` (each possibly space-separated), merging the actions of scopes that
/// name the same resource, in time linear in the input. Unparseable scopes are skipped, as a token server
/// grants nothing for what it does not understand rather than failing the login; more than
/// [`MAX_SCOPES`] is an error.
pub fn parse_scopes<'a>(params: impl IntoIterator<Item = &'a str>) -> Result<Vec<Access>, TooManyScopes> {
    let mut out: Vec<Access> = Vec::new();
    let mut index: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    for (n, scope) in params.into_iter().flat_map(str::split_whitespace).enumerate() {
        if n >= MAX_SCOPES {
            return Err(TooManyScopes);
        }
        // The name may hold a port-less host and colons never appear in repository names: split at the
        // first and last colon.
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        if kind.is_empty() || name.is_empty() {
            continue;
        }
        let actions = actions.split(',').filter(|a| !a.is_empty()).map(str::to_owned);
        match index.get(&(kind, name)) {
            Some(&i) => out[i].actions.extend(actions),
            None => {
                index.insert((kind, name), out.len());
                out.push(Access {
                    kind: kind.into(),
                    name: name.into(),
                    actions: actions.collect(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_from_repeated_and_space_separated_params() {
        let got = parse_scopes([
            "repository:a/b:pull,push",
            "repository:c:pull registry:catalog:*",
            "",
            "junk",
            "repository:a/b:delete",
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![
                Access::repository("a/b", &["delete", "pull", "push"]),
                Access::repository("c", &["pull"]),
                Access::catalog()
            ]
        );
        assert_eq!(got[0].to_string(), "repository:a/b:delete,pull,push");
        assert_eq!(Access::catalog().to_string(), "registry:catalog:*");
        assert!(parse_scopes(["repository::pull", ":x:pull"]).unwrap().is_empty());
    }

    #[test]
    fn more_than_the_cap_is_refused_however_the_scopes_are_spelled() {
        let at_cap: Vec<String> = (0..MAX_SCOPES).map(|i| format!("repository:r{i}:pull")).collect();
        assert_eq!(
            parse_scopes(at_cap.iter().map(String::as_str)).unwrap().len(),
            MAX_SCOPES
        );
        let over = format!("{} repository:one-more:pull", at_cap.join(" "));
        assert_eq!(parse_scopes([over.as_str()]), Err(TooManyScopes));
        let same = vec!["repository:a:pull"; MAX_SCOPES + 1];
        assert_eq!(parse_scopes(same), Err(TooManyScopes), "repeats count too");
    }
}
