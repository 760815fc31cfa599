//! Tag immutability: a registry's rules that make tags write-once. A rule names repositories and tags by
//! glob (`*` stays within one path level, `**` crosses levels) with tag exceptions; a tag it covers may be
//! pushed once, then again with the same digest (a CI retry), never with another, and is never deleted.
//! The fallback tags signatures and attestations are stored under (`sha256-<hex>`, `.sig`, `.att`,
//! `.sbom`) are exempt unless a rule includes them. The rules live on the registry's row as JSON.

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::errors::OciError;
use crate::metadata::registries::RegistryRow;
use crate::metadata::{self, Db};
use crate::oci::reference::{RepoName, Tag};

/// Rules one registry may have.
const MAX_RULES: usize = 50;
/// Longest pattern a rule takes.
const MAX_PATTERN: usize = 256;
/// Exceptions one rule may list.
const MAX_EXCEPTIONS: usize = 20;

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: u32,
    #[serde(flatten)]
    pub spec: RuleSpec,
}

/// What a rule covers, as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    /// Glob of repository names.
    pub repositories: String,
    /// Glob of tags.
    pub tags: String,
    /// Globs of tags the rule leaves mutable.
    #[serde(default)]
    pub except: Vec<String>,
    /// Whether signature and attestation fallback tags are covered too.
    #[serde(default)]
    pub include_referrer_tags: bool,
}

/// A registry's rules, compiled.
pub struct Rules(Vec<(Rule, Matcher)>);

struct Matcher {
    repositories: GlobMatcher,
    tags: GlobMatcher,
    except: Vec<GlobMatcher>,
}

impl Rules {
    /// The rules of `reg` (none, without compiling anything, in the common case).
    pub fn of(reg: &RegistryRow) -> Result<Rules, OciError> {
        let rules = stored(&reg.immutability_rules)?;
        let compiled = rules
            .into_iter()
            .map(|rule| {
                let matcher = Matcher::new(&rule.spec).map_err(|e| OciError::Internal(anyhow::anyhow!(e)))?;
                Ok((rule, matcher))
            })
            .collect::<Result<_, OciError>>()?;
        Ok(Rules(compiled))
    }

    /// The first rule making `repo:tag` write-once.
    pub fn covering(&self, repo: &RepoName, tag: &Tag) -> Option<&Rule> {
        let referrer_tag = is_referrer_tag(tag.as_str());
        self.0
            .iter()
            .find(|(rule, m)| {
                (rule.spec.include_referrer_tags || !referrer_tag)
                    && m.repositories.is_match(repo.as_str())
                    && m.tags.is_match(tag.as_str())
                    && !m.except.iter().any(|e| e.is_match(tag.as_str()))
            })
            .map(|(rule, _)| rule)
    }

    /// Whether no rule covers any tag of `repo`.
    pub fn spare(&self, repo: &RepoName) -> bool {
        !self.0.iter().any(|(_, m)| m.repositories.is_match(repo.as_str()))
    }

    /// Refuses `action` on `repo` when one of `tags` is write-once.
    pub fn check_tags<'a>(
        &self,
        action: &str,
        repo: &RepoName,
        tags: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), OciError> {
        for name in tags {
            let Ok(tag) = name.parse::<Tag>() else { continue };
            if let Some(rule) = self.covering(repo, &tag) {
                return Err(refusal(&format!("{action} (it would remove tag {tag})"), rule));
            }
        }
        Ok(())
    }
}

impl Matcher {
    fn new(spec: &RuleSpec) -> Result<Matcher, String> {
        Ok(Matcher {
            repositories: glob(&spec.repositories)?,
            tags: glob(&spec.tags)?,
            except: spec.except.iter().map(|e| glob(e)).collect::<Result<_, _>>()?,
        })
    }
}

fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{pattern:?} is not a glob: {e}"))
}

/// The tags signatures, attestations and SBOMs are pushed under where a registry has no referrers API:
/// `<algorithm>-<hex>`, optionally `.sig`, `.att` or `.sbom`.
fn is_referrer_tag(tag: &str) -> bool {
    let stem = ["sig", "att", "sbom"]
        .iter()
        .find_map(|suffix| tag.strip_suffix(suffix).and_then(|t| t.strip_suffix('.')))
        .unwrap_or(tag);
    let Some((algorithm, hex)) = stem.split_once('-') else {
        return false;
    };
    matches!(algorithm, "sha256" | "sha512") && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The error of `action` ("push of app:v1") refused by `rule`.
pub fn refusal(action: &str, rule: &Rule) -> OciError {
    OciError::Locked(format!(
        "{action} refused: tag immutability rule {} (repositories {:?}, tags {:?}) makes the tag write-once",
        rule.id, rule.spec.repositories, rule.spec.tags
    ))
}

fn stored(json: &str) -> Result<Vec<Rule>, OciError> {
    serde_json::from_str(json).map_err(|e| OciError::Internal(anyhow::anyhow!("stored immutability rules: {e}")))
}

/// The rules of `reg`, in the order they were created.
pub fn list(reg: &RegistryRow) -> Result<Vec<Rule>, OciError> {
    stored(&reg.immutability_rules)
}

/// Adds a rule to `reg`; the rule as stored, with its id.
pub async fn create(db: &Db, reg: &RegistryRow, spec: RuleSpec) -> Result<Rule, OciError> {
    validate(&spec)?;
    let mut rule = None;
    change(db, reg, |rules| {
        if rules.len() >= MAX_RULES {
            return Err(OciError::Conflict(format!(
                "a registry has at most {MAX_RULES} immutability rules; delete one first"
            )));
        }
        let id = rules.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        let new = Rule { id, spec: spec.clone() };
        rules.push(new.clone());
        rule = Some(new);
        Ok(())
    })
    .await?;
    rule.ok_or_else(|| OciError::Internal(anyhow::anyhow!("no rule was added")))
}

/// Removes rule `id` of `reg`.
pub async fn delete(db: &Db, reg: &RegistryRow, id: u32) -> Result<(), OciError> {
    change(db, reg, |rules| {
        let before = rules.len();
        rules.retain(|r| r.id != id);
        if rules.len() == before {
            return Err(OciError::NotFound(format!(
                "registry {} has no immutability rule {id}",
                reg.name
            )));
        }
        Ok(())
    })
    .await
}

/// Applies `edit` to the stored rules of `reg`, again on what is stored when another change came first.
async fn change(
    db: &Db,
    reg: &RegistryRow,
    mut edit: impl FnMut(&mut Vec<Rule>) -> Result<(), OciError>,
) -> Result<(), OciError> {
    let mut current = reg.immutability_rules.clone();
    for _ in 0..5 {
        let mut rules = stored(&current)?;
        edit(&mut rules)?;
        let json = serde_json::to_string(&rules).map_err(|e| OciError::Internal(e.into()))?;
        if metadata::registries::replace_immutability_rules(db, reg.id, &current, &json).await? {
            tracing::info!(registry = %reg.name, rules = %json, "tag immutability rules changed");
            return Ok(());
        }
        let row = metadata::registries::find(db, &reg.name.to_ascii_lowercase()).await?;
        current = row
            .ok_or_else(|| OciError::NotFound(format!("registry {} is gone", reg.name)))?
            .immutability_rules;
    }
    Err(OciError::Conflict(
        "the immutability rules changed meanwhile; try again".into(),
    ))
}

fn validate(spec: &RuleSpec) -> Result<(), OciError> {
    if spec.except.len() > MAX_EXCEPTIONS {
        return Err(OciError::Invalid(format!(
            "a rule has at most {MAX_EXCEPTIONS} exceptions"
        )));
    }
    let patterns = [&spec.repositories, &spec.tags].into_iter().chain(&spec.except);
    for pattern in patterns {
        if pattern.is_empty() || pattern.chars().count() > MAX_PATTERN {
            return Err(OciError::Invalid(format!(
                "patterns are 1 to {MAX_PATTERN} characters: {pattern:?}"
            )));
        }
    }
    Matcher::new(spec).map(|_| ()).map_err(OciError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(specs: &[(&str, &str, &[&str], bool)]) -> Rules {
        let rules = specs
            .iter()
            .enumerate()
            .map(|(i, (repositories, tags, except, include))| {
                let spec = RuleSpec {
                    repositories: repositories.to_string(),
                    tags: tags.to_string(),
                    except: except.iter().map(|e| e.to_string()).collect(),
                    include_referrer_tags: *include,
                };
                let matcher = Matcher::new(&spec).unwrap();
                (Rule { id: i as u32 + 1, spec }, matcher)
            })
            .collect();
        Rules(rules)
    }

    fn covered(rules: &Rules, repo: &str, tag: &str) -> Option<u32> {
        rules
            .covering(&repo.parse().unwrap(), &tag.parse().unwrap())
            .map(|r| r.id)
    }

    #[test]
    fn globs_match_one_level_or_many_and_exceptions_win() {
        let rules = rules(&[("prod/*", "v*", &["v*-rc*"], false), ("**", "release", &[], false)]);
        assert_eq!(covered(&rules, "prod/app", "v1.2"), Some(1));
        assert_eq!(covered(&rules, "prod/app", "v1.2-rc1"), None);
        assert_eq!(covered(&rules, "prod/team/app", "v1"), None, "* stays within one level");
        assert_eq!(covered(&rules, "dev/app", "v1"), None);
        assert_eq!(covered(&rules, "any/deep/repo", "release"), Some(2));
        assert_eq!(covered(&rules, "prod/app", "latest"), None);
    }

    #[test]
    fn signature_tags_are_exempt_unless_included() {
        let hex = "a".repeat(64);
        let exempt = rules(&[("**", "*", &[], false)]);
        let included = rules(&[("**", "*", &[], true)]);
        for tag in [
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}.sbom"),
            format!("sha256-{hex}"),
        ] {
            assert_eq!(covered(&exempt, "app", &tag), None, "{tag}");
            assert_eq!(covered(&included, "app", &tag), Some(1), "{tag}");
        }
        assert_eq!(covered(&exempt, "app", "sha256-nothex.sig"), Some(1));
    }

    #[test]
    fn bad_rules_are_refused_with_the_pattern() {
        let spec = |repositories: &str, tags: &str| RuleSpec {
            repositories: repositories.into(),
            tags: tags.into(),
            except: vec![],
            include_referrer_tags: false,
        };
        assert!(validate(&spec("prod/**", "v*")).is_ok());
        for (r, t) in [("", "v*"), ("prod/[", "v*"), ("prod", &"x".repeat(300))] {
            assert!(matches!(validate(&spec(r, t)), Err(OciError::Invalid(_))), "{r} {t}");
        }
    }
}
