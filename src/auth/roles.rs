//! What each role allows: a static table.

use std::fmt;
use std::str::FromStr;

/// A role a principal holds on a registry or on a repository prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Contributor,
    Owner,
}

impl Role {
    /// The data-plane actions of the role.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Role::Reader => &["pull"],
            Role::Contributor | Role::Owner => &["pull", "push", "delete"],
        }
    }

    /// Whether the role may manage its registry (credentials, role assignments, settings).
    pub fn manages(self) -> bool {
        self == Role::Owner
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "Reader",
            Role::Contributor => "Contributor",
            Role::Owner => "Owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "reader" | "acrpull" => Ok(Role::Reader),
            "contributor" | "acrpush" => Ok(Role::Contributor),
            "owner" => Ok(Role::Owner),
            _ => Err(format!("unknown role {s:?}: use Reader, Contributor or Owner")),
        }
    }
}

/// Whether a role assigned on `prefix` ('' = the whole registry) covers repository `repo`.
pub fn prefix_covers(prefix: &str, repo: &str) -> bool {
    prefix.is_empty() || repo == prefix || repo.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// A role assignment's scope: `/registries/<name>` or `/registries/<name>/repositories/<prefix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub registry: String,
    /// '' for the whole registry.
    pub repo_prefix: String,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, String> {
        let bad = || format!("scope {s:?} must be /registries/<name> or /registries/<name>/repositories/<prefix>");
        let rest = s.trim_end_matches('/').strip_prefix("/registries/").ok_or_else(bad)?;
        let (registry, repo_prefix) = match rest.split_once("/repositories/") {
            Some((registry, prefix)) => {
                prefix.parse::<crate::oci::reference::RepoName>().map_err(|_| bad())?;
                (registry, prefix)
            }
            None => (rest, ""),
        };
        if registry.is_empty() || registry.contains('/') {
            return Err(bad());
        }
        Ok(Scope {
            registry: registry.to_owned(),
            repo_prefix: repo_prefix.to_owned(),
        })
    }

    /// The scope's text, as it was given.
    pub fn render(registry: &str, repo_prefix: &str) -> String {
        if repo_prefix.is_empty() {
            format!("/registries/{registry}")
        } else {
            format!("/registries/{registry}/repositories/{repo_prefix}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_a_registry_or_a_repository_prefix() {
        assert_eq!(
            Scope::parse("/registries/myreg").unwrap(),
            Scope {
                registry: "myreg".into(),
                repo_prefix: "".into()
            }
        );
        let prefixed = Scope::parse("/registries/myreg/repositories/warrantydept/web").unwrap();
        assert_eq!(prefixed.repo_prefix, "warrantydept/web");
        assert_eq!(
            Scope::render("myreg", "warrantydept/web"),
            "/registries/myreg/repositories/warrantydept/web"
        );
        for bad in [
            "myreg",
            "/registries/",
            "/registries/a/b",
            "/registries/r/repositories/../x",
            "/subscriptions/x",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_role_table() {
        assert_eq!(Role::Reader.actions(), ["pull"]);
        assert_eq!(Role::Contributor.actions(), ["pull", "push", "delete"]);
        assert_eq!(Role::Owner.actions(), ["pull", "push", "delete"]);
        assert!(Role::Owner.manages() && !Role::Contributor.manages() && !Role::Reader.manages());
        assert_eq!("reader".parse::<Role>(), Ok(Role::Reader));
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn prefixes_cover_the_repository_and_everything_below() {
        assert!(prefix_covers("", "anything/at/all"));
        assert!(prefix_covers("warrantydept", "warrantydept"));
        assert!(prefix_covers("warrantydept", "warrantydept/dotnet-build"));
        assert!(!prefix_covers("warrantydept", "warrantydeptx"));
        assert!(!prefix_covers("warrantydept", "aspnetcore"));
        assert!(!prefix_covers("a/b", "a"));
    }
}
