//! Repositories: the searchable, paginated list; a repository's tags (digest, media type, size, platforms
//! of an index, times, referrers), its untagged manifests, deleting either after a confirmation, the locks
//! of the repository, a tag or a manifest, and its tag history.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytesize::ByteSize;
use serde::Deserialize;

use super::history::{self as history_table, HistoryRow};
use super::session::{Submitted, Viewer};
use super::{Chrome, Place, PortalError, form_error, form_page, page, see_other};
use crate::app::{App, AppState};
use crate::http::actor;
use crate::http::edge_auth::login_server_seen_from;
use crate::oci::digest::Digest;
use crate::oci::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use crate::oci::reference::{Reference, RepoName, Tag};
use crate::ops::listings::{self, TagSummary};
use crate::ops::locks::{self, Attributes, Changes, Subject};
use crate::ops::{history, manifests, rfc3339};
use crate::tenant::Tenant;

/// Repositories on one page of the list.
const REPOSITORIES_PER_PAGE: usize = 50;
/// Tags on one page of a repository.
const TAGS_PER_PAGE: usize = 50;
/// Tag changes a repository page shows.
const HISTORY_SHOWN: u32 = 50;
/// Untagged manifests a repository page shows.
const UNTAGGED_SHOWN: usize = 100;

/// A page number from the query (1-based), and the pages `total` items make.
struct Pager {
    number: usize,
    pages: usize,
}

impl Pager {
    fn new(requested: Option<usize>, total: usize, per_page: usize) -> Pager {
        let pages = total.div_ceil(per_page).max(1);
        Pager {
            number: requested.unwrap_or(1).clamp(1, pages),
            pages,
        }
    }

    fn range(&self, per_page: usize, total: usize) -> std::ops::Range<usize> {
        let start = (self.number - 1) * per_page;
        start.min(total)..(start + per_page).min(total)
    }

    fn previous(&self) -> Option<usize> {
        (self.number > 1).then(|| self.number - 1)
    }

    fn next(&self) -> Option<usize> {
        (self.number < self.pages).then(|| self.number + 1)
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    page: Option<usize>,
}

#[derive(Template)]
#[template(path = "repositories.html", config = "src/http/portal/askama.toml")]
struct ListPage {
    chrome: Chrome,
    name: String,
    query: String,
    total: usize,
    page: Vec<String>,
    number: usize,
    pages: usize,
    previous: Option<usize>,
    next: Option<usize>,
}

pub async fn list(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    let reg = app.tenant(place.reg.clone())?;
    let needle = query.q.trim().to_ascii_lowercase();
    let mut names = listings::repositories(&app.db, &reg).await?;
    names.retain(|repo| place.may(repo, "pull") && repo.contains(&needle));
    let pager = Pager::new(query.page, names.len(), REPOSITORIES_PER_PAGE);
    let shown = names[pager.range(REPOSITORIES_PER_PAGE, names.len())].to_vec();
    page(&ListPage {
        chrome: place.chrome("repositories"),
        name: place.reg.name.clone(),
        query: query.q,
        total: names.len(),
        page: shown,
        number: pager.number,
        pages: pager.pages,
        previous: pager.previous(),
        next: pager.next(),
    })
}

pub struct TagRow {
    name: String,
    digest: String,
    media_type: String,
    size: String,
    platforms: String,
    created: String,
    updated: String,
    referrers: Vec<String>,
}

pub struct ManifestRow {
    digest: String,
    media_type: String,
    size: String,
    subject: String,
}

/// A deletion waiting for its confirmation.
pub struct Confirm {
    what: String,
    consequence: String,
    action: &'static str,
    target: String,
}

#[derive(Template)]
#[template(path = "repository.html", config = "src/http/portal/askama.toml")]
struct RepositoryPage {
    chrome: Chrome,
    name: String,
    repo: String,
    pull_command: String,
    tag_total: usize,
    tags: Vec<TagRow>,
    number: usize,
    pages: usize,
    previous: Option<usize>,
    next: Option<usize>,
    untagged: Vec<ManifestRow>,
    locks: LocksOf,
    can_manage: bool,
    can_delete: bool,
    confirm: Option<Confirm>,
    history: Vec<HistoryRow>,
    show_repository: bool,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    page: Option<usize>,
    delete_tag: Option<String>,
    delete_manifest: Option<String>,
    /// The locks form is for this tag (or manifest) instead of the repository.
    locks_tag: Option<String>,
    locks_manifest: Option<String>,
}

/// What the locks form is about: the repository, one tag or one manifest.
pub struct LocksOf {
    label: String,
    subject: &'static str,
    target: String,
    attributes: Attributes,
}

/// What is open on a repository page.
struct Opened<'a> {
    app: &'a App,
    place: Place,
    reg: Tenant,
    repo: RepoName,
    headers: &'a HeaderMap,
}

impl<'a> Opened<'a> {
    async fn new(
        app: &'a App,
        viewer: &Viewer,
        headers: &'a HeaderMap,
        name: &str,
        repo: &str,
    ) -> Result<Opened<'a>, PortalError> {
        let place = Place::of(app, viewer, name).await?;
        let invalid = |e: crate::oci::GrammarError| PortalError::NotFound(e.to_string());
        let repo: RepoName = repo.parse().map_err(invalid)?;
        if !place.may(repo.as_str(), "pull") {
            return Err(PortalError::NotFound(format!(
                "There is no repository {repo} you can see."
            )));
        }
        let reg = app.tenant(place.reg.clone())?;
        Ok(Opened {
            app,
            place,
            reg,
            repo,
            headers,
        })
    }

    async fn render(
        &self,
        query: ShowQuery,
        error: Option<String>,
        notice: Option<String>,
    ) -> Result<Response, PortalError> {
        let (db, reg, repo) = (&self.app.db, &self.reg, &self.repo);
        let unknown = |e| match e {
            crate::errors::OciError::NameUnknown(_) => {
                PortalError::NotFound(format!("Repository {repo} is not in {}.", reg.row.name))
            }
            other => PortalError::from(other),
        };
        let requested = query.page.unwrap_or(1).max(1);
        let (total, mut tags) = listings::tag_details_page(db, reg, repo, requested - 1, TAGS_PER_PAGE)
            .await
            .map_err(unknown)?;
        let pager = Pager::new(Some(requested), total, TAGS_PER_PAGE);
        if pager.number != requested {
            // Past the last page: show the last.
            tags = listings::tag_details_page(db, reg, repo, pager.number - 1, TAGS_PER_PAGE)
                .await?
                .1;
        }
        let mut rows = Vec::new();
        for tag in &tags {
            rows.push(self.tag_row(tag).await?);
        }
        let untagged = listings::untagged(db, reg, repo, UNTAGGED_SHOWN)
            .await?
            .into_iter()
            .map(|m| ManifestRow {
                size: ByteSize::b(m.size.max(0) as u64).to_string(),
                subject: m.subject.unwrap_or_default(),
                digest: m.digest,
                media_type: m.media_type,
            })
            .collect();
        let can_delete = self.place.may(repo.as_str(), "delete");
        let confirm = if can_delete { self.confirmation(&query) } else { None };
        let changes = history::recent(db, reg, Some(repo), HISTORY_SHOWN).await?;
        let history = history_table::rows(&self.place, &changes);
        let login_server = login_server_seen_from(self.app, self.headers, &reg.row);
        let first_tag = tags.first().map_or("latest", |t| t.name.as_str());
        let failed = error.is_some();
        let repository = RepositoryPage {
            chrome: self.place.chrome("repositories"),
            name: reg.row.name.clone(),
            repo: repo.to_string(),
            pull_command: format!("docker pull {login_server}/{repo}:{first_tag}"),
            tag_total: total,
            tags: rows,
            number: pager.number,
            pages: pager.pages,
            previous: pager.previous(),
            next: pager.next(),
            untagged,
            locks: self.locks_of(&query).await?,
            can_manage: self.place.manages(),
            can_delete,
            confirm,
            history,
            show_repository: false,
            error,
            notice,
        };
        form_page(&repository, failed)
    }

    /// One row of the tags table: the tag with its manifest's facts, an index's platforms and what
    /// refers to the manifest.
    async fn tag_row(&self, tag: &TagSummary) -> Result<TagRow, PortalError> {
        let (db, reg, repo) = (&self.app.db, &self.reg, &self.repo);
        let digest: Digest = tag.manifest_digest.parse().map_err(|e: crate::oci::GrammarError| {
            PortalError::Internal(crate::errors::OciError::Internal(e.into()))
        })?;
        let manifest = listings::manifest(db, reg, repo, &digest).await?;
        let platforms = if matches!(manifest.media_type.as_str(), OCI_INDEX | DOCKER_MANIFEST_LIST) {
            listings::platforms(db, reg, repo, &digest).await?.join(", ")
        } else {
            String::new()
        };
        let referrers = listings::referrers(db, reg, repo, &digest, None)
            .await?
            .into_iter()
            .map(|r| format!("{} ({})", r.digest, r.artifact_type.unwrap_or(r.media_type)))
            .collect();
        Ok(TagRow {
            name: tag.name.clone(),
            digest: tag.manifest_digest.clone(),
            media_type: manifest.media_type,
            size: ByteSize::b(manifest.size.max(0) as u64).to_string(),
            platforms,
            created: rfc3339(manifest.created_at),
            updated: rfc3339(tag.updated_at),
            referrers,
        })
    }

    /// The locks the page's form shows: of the tag or manifest the query names, else of the repository.
    async fn locks_of(&self, query: &ShowQuery) -> Result<LocksOf, PortalError> {
        let (db, reg, repo) = (&self.app.db, &self.reg, &self.repo);
        let invalid = |e: crate::oci::GrammarError| PortalError::Invalid(e.to_string());
        if let Some(tag) = &query.locks_tag {
            let tag: Tag = tag.parse().map_err(invalid)?;
            return Ok(LocksOf {
                label: format!("tag {repo}:{tag}"),
                subject: "tag",
                attributes: listings::tag(db, reg, repo, &tag).await?.attributes,
                target: tag.to_string(),
            });
        }
        if let Some(digest) = &query.locks_manifest {
            let digest: Digest = digest.parse().map_err(invalid)?;
            return Ok(LocksOf {
                label: format!("manifest {digest}"),
                subject: "manifest",
                attributes: listings::manifest(db, reg, repo, &digest).await?.attributes,
                target: digest.to_string(),
            });
        }
        Ok(LocksOf {
            label: format!("repository {repo}"),
            subject: "repository",
            target: String::new(),
            attributes: locks::of_repository(db, reg, repo).await?,
        })
    }

    fn confirmation(&self, query: &ShowQuery) -> Option<Confirm> {
        if let Some(tag) = &query.delete_tag {
            return Some(Confirm {
                what: format!("tag {}:{tag}", self.repo),
                consequence: "The tag goes; its manifest stays while other tags or its digest are used.".into(),
                action: "delete-tag",
                target: tag.clone(),
            });
        }
        query.delete_manifest.as_ref().map(|digest| Confirm {
            what: format!("manifest {digest}"),
            consequence:
                "The manifest goes with every tag pointing at it and the signatures and SBOMs referring to it.".into(),
            action: "delete-manifest",
            target: digest.clone(),
        })
    }
}

pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((name, repo)): Path<(String, String)>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PortalError> {
    let opened = Opened::new(&app, &viewer, &headers, &name, &repo).await?;
    opened.render(query, None, None).await
}

#[derive(Deserialize)]
pub struct ChangeForm {
    action: String,
    #[serde(default)]
    target: String,
    /// What the locks form changes: `repository` (the default), `tag` or `manifest` (named by `target`).
    #[serde(default)]
    subject: String,
    #[serde(default)]
    write_enabled: bool,
    #[serde(default)]
    delete_enabled: bool,
    #[serde(default)]
    read_enabled: bool,
    #[serde(default)]
    list_enabled: bool,
}

/// Deletes a tag or a manifest (confirmed), or saves the locks of the repository, a tag or a manifest.
pub async fn change(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((name, repo)): Path<(String, String)>,
    Submitted { viewer, form }: Submitted<ChangeForm>,
) -> Result<Response, PortalError> {
    let opened = Opened::new(&app, &viewer, &headers, &name, &repo).await?;
    let (reg, repo) = (&opened.reg, &opened.repo);
    let who = opened.place.actor_name();
    let done = match form.action.as_str() {
        "delete-tag" | "delete-manifest" => {
            if !opened.place.may(repo.as_str(), "delete") {
                return Err(PortalError::Forbidden(format!(
                    "Your roles do not allow deleting in {repo}."
                )));
            }
            let reference = if form.action == "delete-tag" {
                form.target.parse::<Tag>().map(Reference::Tag)
            } else {
                form.target.parse::<Digest>().map(Reference::Digest)
            };
            let reference = reference.map_err(|e| PortalError::Invalid(e.to_string()))?;
            manifests::delete(&app.db, reg, repo, &reference, actor(&who, &headers))
                .await
                .map(|()| format!("Deleted {}.", form.target))
        }
        "locks" => {
            opened.place.require_manager()?;
            let changes = Changes {
                write_enabled: Some(form.write_enabled),
                delete_enabled: Some(form.delete_enabled),
                read_enabled: Some(form.read_enabled),
                list_enabled: Some(form.list_enabled),
            };
            let invalid = |e: crate::oci::GrammarError| PortalError::Invalid(e.to_string());
            let (tag, digest): (Option<Tag>, Option<Digest>) = match form.subject.as_str() {
                "tag" => (Some(form.target.parse().map_err(invalid)?), None),
                "manifest" => (None, Some(form.target.parse().map_err(invalid)?)),
                _ => (None, None),
            };
            let subject = match (&tag, &digest) {
                (Some(tag), _) => Subject::Tag(tag),
                (_, Some(digest)) => Subject::Manifest(digest),
                _ => Subject::Repository,
            };
            locks::update(&app.db, reg, repo, subject, changes)
                .await
                .map(|_| "Locks saved.".to_string())
        }
        other => return Err(PortalError::Invalid(format!("Unknown action {other:?}."))),
    };
    match done {
        // A repository left empty is gone: back to the list.
        Ok(_) if reg.find_repository(&app.db, repo).await?.is_none() => {
            Ok(see_other(&format!("/portal/registries/{}/repositories", reg.row.name)))
        }
        Ok(notice) => opened.render(ShowQuery::default(), None, Some(notice)).await,
        Err(e) => {
            let error = form_error(e)?;
            opened.render(ShowQuery::default(), Some(error), None).await
        }
    }
}
