//! `/api/registries/<name>/repositories`: list repositories; `<repo>` shows one with its size and counts,
//! `<repo>/_tags` and `<repo>/_manifests` list what it holds; DELETE `<repo>` removes it, DELETE `<repo>/_tags/<tag>` untags. The markers
//! start with `_`, which no repository path component can, so `team/tags/web` stays a repository name.
//!
//! Besides the operator, every principal with a role on the registry may use these, within its roles:
//! it sees and reads the repositories it may pull, and deletes where it may delete (Contributor, Owner).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiCaller, ApiPath, rfc3339};
use crate::app::{App, AppState};
use crate::auth::Permissions;
use crate::errors::OciError;
use crate::oci::GrammarError;
use crate::oci::reference::{Reference, RepoName, Tag};
use crate::ops::{listings, manifests, repositories, usage};
use crate::tenant::Tenant;

/// What the caller may do in one registry's repositories: everything (the operator), or what a
/// principal's roles allow.
struct Rights(Option<Permissions>);

impl Rights {
    /// The registry `name` and the caller's rights in it; a principal with no role there is refused, and
    /// learns nothing about whether the registry exists.
    async fn of(app: &App, caller: ApiCaller, name: &str) -> Result<(Tenant, Rights), OciError> {
        let reg = caller.registry(app, name).await?;
        let rights = match caller {
            ApiCaller::Operator => Rights(None),
            ApiCaller::Principal(identity) => {
                let permissions = Permissions::of(&app.db, &reg, &identity).await?;
                if !permissions.any() {
                    return Err(OciError::Denied);
                }
                Rights(Some(permissions))
            }
        };
        Ok((app.tenant(reg)?, rights))
    }

    fn allow(&self, repo: &str, action: &str) -> bool {
        self.0.as_ref().is_none_or(|p| p.actions_on(repo).contains(action))
    }

    /// `Forbidden` (naming what was refused) unless the caller may `action` on `repo`.
    fn require(&self, reg: &Tenant, repo: &RepoName, action: &str) -> Result<(), OciError> {
        if self.allow(repo.as_str(), action) {
            return Ok(());
        }
        Err(OciError::Forbidden(format!(
            "{action} on repository {repo} refused: your roles on registry {} do not allow it",
            reg.row.name
        )))
    }
}

/// What a path below `/repositories/` names.
enum RepoPath {
    Repository(RepoName),
    Tags(RepoName),
    Manifests(RepoName),
    Tag(RepoName, Tag),
}

impl RepoPath {
    fn repository(&self) -> &RepoName {
        match self {
            RepoPath::Repository(repo) | RepoPath::Tags(repo) | RepoPath::Manifests(repo) | RepoPath::Tag(repo, _) => {
                repo
            }
        }
    }
}

fn parse(rest: &str) -> Result<RepoPath, OciError> {
    let invalid = |e: GrammarError| OciError::Invalid(e.to_string());
    if let Some(repo) = rest.strip_suffix("/_tags") {
        return Ok(RepoPath::Tags(repo.parse().map_err(invalid)?));
    }
    if let Some(repo) = rest.strip_suffix("/_manifests") {
        return Ok(RepoPath::Manifests(repo.parse().map_err(invalid)?));
    }
    if let Some((repo, tag)) = rest.rsplit_once("/_tags/") {
        return Ok(RepoPath::Tag(
            repo.parse().map_err(invalid)?,
            tag.parse().map_err(invalid)?,
        ));
    }
    Ok(RepoPath::Repository(rest.parse().map_err(invalid)?))
}

/// The API's 404 for a repository the data plane calls unknown.
fn unknown_repository(reg: &Tenant, repo: &RepoName) -> impl Fn(OciError) -> OciError {
    let message = format!("repository {repo} not found in {}", reg.row.name);
    move |e| match e {
        OciError::NameUnknown(_) => OciError::NotFound(message.clone()),
        other => other,
    }
}

pub async fn list(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, OciError> {
    let (reg, rights) = Rights::of(&app, caller, &name).await?;
    let mut names = listings::repositories(&app.db, &reg).await?;
    names.retain(|repo| rights.allow(repo, "pull"));
    Ok(Json(names).into_response())
}

pub async fn get(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((name, rest)): ApiPath<(String, String)>,
) -> Result<Response, OciError> {
    let (reg, rights) = Rights::of(&app, caller, &name).await?;
    let path = parse(&rest)?;
    rights.require(&reg, path.repository(), "pull")?;
    match path {
        RepoPath::Tags(repo) => {
            let tags = listings::tags(&app.db, &reg, &repo, None, usize::MAX).await;
            Ok(Json(tags.map_err(unknown_repository(&reg, &repo))?).into_response())
        }
        RepoPath::Manifests(repo) => {
            let rows = listings::manifests(&app.db, &reg, &repo)
                .await
                .map_err(unknown_repository(&reg, &repo))?;
            let out: Vec<_> = rows
                .iter()
                .map(|m| {
                    let mut tags: Vec<&str> = m.tags.as_deref().map(|t| t.split(',').collect()).unwrap_or_default();
                    tags.sort_unstable();
                    json!({ "digest": m.digest, "mediaType": m.media_type, "size": m.size, "tags": tags, "timestamp": rfc3339(m.created_at) })
                })
                .collect();
            Ok(Json(out).into_response())
        }
        RepoPath::Repository(repo) => {
            let usage = usage::of_repository(&app.db, &reg, &repo)
                .await
                .map_err(unknown_repository(&reg, &repo))?;
            Ok(Json(json!({
                "registry": reg.row.name,
                "name": repo.as_str(),
                "manifestCount": usage.manifests,
                "tagCount": usage.tags,
                "sizeBytes": usage.bytes,
            }))
            .into_response())
        }
        RepoPath::Tag(..) => Err(OciError::Unsupported),
    }
}

pub async fn delete(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((name, rest)): ApiPath<(String, String)>,
) -> Result<Response, OciError> {
    let (reg, rights) = Rights::of(&app, caller, &name).await?;
    let path = parse(&rest)?;
    rights.require(&reg, path.repository(), "delete")?;
    match path {
        RepoPath::Repository(repo) => {
            repositories::delete(&app.db, &reg, &repo)
                .await
                .map_err(unknown_repository(&reg, &repo))?;
        }
        RepoPath::Tag(repo, tag) => {
            let untagged = manifests::delete(&app.db, &reg, &repo, &Reference::Tag(tag.clone())).await;
            untagged.map_err(unknown_repository(&reg, &repo)).map_err(|e| match e {
                OciError::ManifestUnknown(_) => OciError::NotFound(format!("tag {tag} not found in {repo}")),
                other => other,
            })?;
        }
        RepoPath::Tags(_) | RepoPath::Manifests(_) => return Err(OciError::Unsupported),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
