//! `/api/registries/<name>/repositories`: list repositories; `<repo>` shows one with its size, counts and
//! locks, `<repo>/_tags` and `<repo>/_manifests` list what it holds, `<repo>/_tags/<tag>` and
//! `<repo>/_manifests/<digest>` show one tag or manifest with its locks; PATCH on those three changes the
//! locks; DELETE `<repo>` removes it, DELETE `<repo>/_tags/<tag>` untags. The markers start with `_`,
//! which no repository path component can, so `team/tags/web` stays a repository name.
//!
//! Besides the operator, every principal with a role on the registry may use these, within its roles:
//! it sees and reads the repositories it may pull, deletes where it may delete (Contributor, Owner), and
//! an Owner changes locks.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiCaller, ApiPath, ApiQuery, json_body, rfc3339};
use crate::app::{App, AppState};
use crate::auth::Permissions;
use crate::errors::OciError;
use crate::http::actor;
use crate::oci::GrammarError;
use crate::oci::digest::Digest;
use crate::oci::reference::{Reference, RepoName, Tag};
use crate::ops::history;
use crate::ops::locks::{self, Subject};
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

    /// `Forbidden` unless the caller may change locks (the operator, an Owner).
    fn require_manager(&self, reg: &Tenant) -> Result<(), OciError> {
        if self.0.as_ref().is_none_or(Permissions::manages) {
            return Ok(());
        }
        Err(OciError::Forbidden(format!(
            "changing locks refused: it takes the Owner role on registry {}",
            reg.row.name
        )))
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
    Manifest(RepoName, Digest),
    History(RepoName),
    Restore(RepoName),
}

impl RepoPath {
    fn repository(&self) -> &RepoName {
        match self {
            RepoPath::Repository(repo)
            | RepoPath::Tags(repo)
            | RepoPath::Manifests(repo)
            | RepoPath::Tag(repo, _)
            | RepoPath::Manifest(repo, _)
            | RepoPath::History(repo)
            | RepoPath::Restore(repo) => repo,
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
    if let Some(repo) = rest.strip_suffix("/_history") {
        return Ok(RepoPath::History(repo.parse().map_err(invalid)?));
    }
    if let Some(repo) = rest.strip_suffix("/_restore") {
        return Ok(RepoPath::Restore(repo.parse().map_err(invalid)?));
    }
    if let Some((repo, digest)) = rest.rsplit_once("/_manifests/") {
        return Ok(RepoPath::Manifest(
            repo.parse().map_err(invalid)?,
            digest.parse().map_err(invalid)?,
        ));
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

/// `?detail=true` on a tag list: each tag with its digest, times, pulls and locks, not just its name;
/// `?tag=T` on the history: the changes of one tag.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListOptions {
    #[serde(default)]
    detail: bool,
    tag: Option<String>,
}

pub async fn get(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((name, rest)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ListOptions>,
) -> Result<Response, OciError> {
    let (reg, rights) = Rights::of(&app, caller, &name).await?;
    let path = parse(&rest)?;
    rights.require(&reg, path.repository(), "pull")?;
    match path {
        RepoPath::Tags(repo) if options.detail => {
            let tags = listings::tag_details(&app.db, &reg, &repo).await;
            let tags = tags.map_err(unknown_repository(&reg, &repo))?;
            Ok(Json(tags.iter().map(tag_view).collect::<Vec<_>>()).into_response())
        }
        RepoPath::Tags(repo) => {
            let tags = listings::tags(&app.db, &reg, &repo, None, usize::MAX).await;
            Ok(Json(tags.map_err(unknown_repository(&reg, &repo))?).into_response())
        }
        RepoPath::History(repo) => {
            let tag: Option<Tag> = options
                .tag
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: GrammarError| OciError::Invalid(e.to_string()))?;
            let changes = history::changes(&app.db, &reg, &repo, tag.as_ref()).await?;
            Ok(Json(changes.iter().map(change_view).collect::<Vec<_>>()).into_response())
        }
        RepoPath::Manifests(repo) => {
            let rows = listings::manifests(&app.db, &reg, &repo)
                .await
                .map_err(unknown_repository(&reg, &repo))?;
            Ok(Json(rows.iter().map(manifest_view).collect::<Vec<_>>()).into_response())
        }
        path => Ok(Json(show(&app, &reg, &path).await?).into_response()),
    }
}

/// A repository, tag or manifest with its locks.
async fn show(app: &App, reg: &Tenant, path: &RepoPath) -> Result<Value, OciError> {
    let repo = path.repository();
    let found = async {
        Ok(match path {
            RepoPath::Repository(_) => {
                let usage = usage::of_repository(&app.db, reg, repo).await?;
                let attributes = locks::of_repository(&app.db, reg, repo).await?;
                json!({
                    "registry": reg.row.name,
                    "name": repo.as_str(),
                    "manifestCount": usage.manifests,
                    "tagCount": usage.tags,
                    "sizeBytes": usage.bytes,
                    "changeableAttributes": attributes,
                })
            }
            RepoPath::Tag(_, tag) => tag_view(&listings::tag(&app.db, reg, repo, tag).await?),
            RepoPath::Manifest(_, digest) => manifest_view(&listings::manifest(&app.db, reg, repo, digest).await?),
            RepoPath::Tags(_) | RepoPath::Manifests(_) | RepoPath::History(_) | RepoPath::Restore(_) => {
                return Err(OciError::Unsupported);
            }
        })
    };
    found
        .await
        .map_err(unknown_repository(reg, repo))
        .map_err(unknown_reference)
}

/// The API's 404 for a tag or manifest the data plane calls unknown.
fn unknown_reference(e: OciError) -> OciError {
    match e {
        OciError::ManifestUnknown(m) => OciError::NotFound(m),
        other => other,
    }
}

fn manifest_view(m: &listings::ManifestSummary) -> Value {
    let mut tags: Vec<&str> = m.tags.as_deref().map(|t| t.split(',').collect()).unwrap_or_default();
    tags.sort_unstable();
    json!({
        "digest": m.digest,
        "mediaType": m.media_type,
        "size": m.size,
        "tags": tags,
        "timestamp": rfc3339(m.created_at),
        "lastPulledTime": m.last_pulled_at.map(rfc3339),
        "pullCount": m.pull_count,
        "changeableAttributes": m.attributes,
    })
}

fn change_view(c: &history::TagChange) -> Value {
    let action = match (&c.old_digest, &c.new_digest) {
        (None, _) => "create",
        (Some(_), None) => "delete",
        (Some(_), Some(_)) => "move",
    };
    json!({
        "tag": c.tag,
        "action": action,
        "oldDigest": c.old_digest,
        "newDigest": c.new_digest,
        "actor": c.actor,
        "client": c.client,
        "time": rfc3339(c.at),
    })
}

fn tag_view(t: &listings::TagSummary) -> Value {
    json!({
        "name": t.name,
        "digest": t.manifest_digest,
        "lastUpdateTime": rfc3339(t.updated_at),
        "lastPulledTime": t.last_pulled_at.map(rfc3339),
        "pullCount": t.pull_count,
        "changeableAttributes": t.attributes,
    })
}

/// PATCH: changes the locks of a repository, a tag or a manifest; answers it as GET does.
pub async fn update(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((name, rest)): ApiPath<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    let (reg, rights) = Rights::of(&app, caller, &name).await?;
    let path = parse(&rest)?;
    rights.require(&reg, path.repository(), "pull")?;
    rights.require_manager(&reg)?;
    let changes: locks::Changes = json_body(body)?;
    let subject = match &path {
        RepoPath::Repository(_) => Subject::Repository,
        RepoPath::Tag(_, tag) => Subject::Tag(tag),
        RepoPath::Manifest(_, digest) => Subject::Manifest(digest),
        _ => return Err(OciError::Unsupported),
    };
    let repo = path.repository();
    locks::update(&app.db, &reg, repo, subject, changes)
        .await
        .map_err(unknown_repository(&reg, repo))
        .map_err(unknown_reference)?;
    Ok(Json(show(&app, &reg, &path).await?).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ApiPath((name, rest)): ApiPath<(String, String)>,
) -> Result<Response, OciError> {
    let who = caller.principal();
    let actor = actor(&who, &headers);
    let (reg, rights) = Rights::of(&app, caller, &name).await?;
    let path = parse(&rest)?;
    rights.require(&reg, path.repository(), "delete")?;
    match path {
        RepoPath::Repository(repo) => {
            repositories::delete(&app.db, &reg, &repo, actor)
                .await
                .map_err(unknown_repository(&reg, &repo))?;
        }
        RepoPath::Tag(repo, tag) => {
            let untagged = manifests::delete(&app.db, &reg, &repo, &Reference::Tag(tag.clone()), actor).await;
            untagged.map_err(unknown_repository(&reg, &repo)).map_err(|e| match e {
                OciError::ManifestUnknown(_) => OciError::NotFound(format!("tag {tag} not found in {repo}")),
                other => other,
            })?;
        }
        _ => return Err(OciError::Unsupported),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What `<repo>/_restore` restores: a tag (to what it pointed at before its last change) or a deleted
/// manifest (with its tags and referrers).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreRequest {
    tag: Option<String>,
    digest: Option<String>,
}

/// POST `<repo>/_restore`: takes push rights on the repository.
pub async fn restore(
    State(app): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    ApiPath((name, rest)): ApiPath<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OciError> {
    let who = caller.principal();
    let actor = actor(&who, &headers);
    let (reg, rights) = Rights::of(&app, caller, &name).await?;
    let RepoPath::Restore(repo) = parse(&rest)? else {
        return Err(OciError::Unsupported);
    };
    rights.require(&reg, &repo, "push")?;
    let request: RestoreRequest = json_body(body)?;
    let invalid = |e: GrammarError| OciError::Invalid(e.to_string());
    let (tag, digest): (Option<Tag>, Option<Digest>) = match (request.tag, request.digest) {
        (Some(tag), None) => (Some(tag.parse().map_err(invalid)?), None),
        (None, Some(digest)) => (None, Some(digest.parse().map_err(invalid)?)),
        _ => return Err(OciError::Invalid("give either \"tag\" or \"digest\"".into())),
    };
    let what = match (&tag, &digest) {
        (Some(tag), _) => history::Restore::Tag(tag),
        (_, Some(digest)) => history::Restore::Manifest(digest),
        _ => return Err(OciError::Unsupported),
    };
    let restored = history::restore(&app.db, &reg, &repo, what, actor)
        .await
        .map_err(unknown_repository(&reg, &repo))?;
    let answer = json!({ "digest": restored.digest, "tags": restored.tags, "referrers": restored.referrers });
    Ok(Json(answer).into_response())
}
