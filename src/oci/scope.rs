//! The token spec's scope grammar: `repository:<name>:<action>[,<action>…]` and `registry:catalog:*`.
//! Several scopes come as repeated `scope` parameters or space-separated in one.

use std::collections::BTreeSet;
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

/// Parses every scope in `params` (each possibly space-separated). Unparseable scopes are skipped, as
/// a token server grants nothing for what it does not understand rather than failing the login.
pub fn parse_scopes<'a>(params: impl IntoIterator<Item = &'a str>) -> Vec<Access> {
    let mut out: Vec<Access> = Vec::new();
    for scope in params.into_iter().flat_map(str::split_whitespace) {
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
        let actions: BTreeSet<String> = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        match out.iter_mut().find(|a| a.kind == kind && a.name == name) {
            Some(existing) => existing.actions.extend(actions),
            None => out.push(Access {
                kind: kind.into(),
                name: name.into(),
                actions,
            }),
        }
    }
    out
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
        ]);
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
        assert!(parse_scopes(["repository::pull", ":x:pull"]).is_empty());
    }
}
