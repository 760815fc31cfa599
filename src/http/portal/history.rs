//! The tag history as the portal shows it: the registry's activity log and a repository's history, and
//! restoring from them a deleted or moved tag, or a deleted manifest with its tags (the API's `_restore`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashSet;

use super::session::{Submitted, Viewer};
use super::{Chrome, Place, PortalError, form_error, form_page};
use crate::app::{App, AppState};
use crate::http::actor;
use crate::oci::digest::Digest;
use crate::oci::reference::{RepoName, Tag};
use crate::ops::history::{self, RegistryChange, Restore};
use crate::ops::rfc3339;

/// Tag changes the activity log shows.
const ACTIVITY_SHOWN: u32 = 200;

/// One change in a history table.
pub struct HistoryRow {
    pub at: String,
    pub repository: String,
    pub tag: String,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub client: String,
    /// The row offers a restore: it is its tag's latest change, it took a digest away (a delete or a
    /// move), and the viewer may push to the repository.
    pub restorable: bool,
}

/// The rows of a history table for `changes` (newest first), as `place`'s viewer may act on them.
pub fn rows(place: &Place, changes: &[RegistryChange]) -> Vec<HistoryRow> {
    let mut seen = HashSet::new();
    changes
        .iter()
        .map(|RegistryChange { repository, change }| {
            let latest = seen.insert((repository.as_str(), change.tag.as_str()));
            let digest = |d: &Option<String>| d.clone().unwrap_or_else(|| "—".into());
            HistoryRow {
                at: rfc3339(change.at),
                repository: repository.clone(),
                tag: change.tag.clone(),
                from: digest(&change.old_digest),
                to: digest(&change.new_digest),
                actor: change.actor.clone(),
                client: change.client.clone().unwrap_or_default(),
                restorable: latest && change.old_digest.is_some() && place.may(repository, "push"),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "activity.html", config = "src/http/portal/askama.toml")]
struct ActivityPage {
    chrome: Chrome,
    name: String,
    history: Vec<HistoryRow>,
    show_repository: bool,
    can_restore: bool,
    error: Option<String>,
    notice: Option<String>,
}

pub async fn activity(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    render_activity(&app, &place, None, None).await
}

async fn render_activity(
    app: &App,
    place: &Place,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, PortalError> {
    let reg = app.tenant(place.reg.clone())?;
    let mut changes = history::recent(&app.db, &reg, None, ACTIVITY_SHOWN).await?;
    changes.retain(|c| place.may(&c.repository, "pull"));
    let failed = error.is_some();
    let activity = ActivityPage {
        chrome: place.chrome("activity"),
        name: place.reg.name.clone(),
        history: rows(place, &changes),
        show_repository: true,
        can_restore: place.pushes_somewhere(),
        error,
        notice,
    };
    form_page(&activity, failed)
}

#[derive(Deserialize)]
pub struct RestoreForm {
    repository: String,
    /// A tag (restored to what it pointed at before its latest change) or a deleted manifest's digest.
    reference: String,
}

/// Restores a tag or a deleted manifest (push rights on the repository, as in the API), then shows the
/// activity log with what was restored, or why not.
pub async fn restore(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Submitted { viewer, form }: Submitted<RestoreForm>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    let repo: RepoName = match form.repository.trim().parse() {
        Ok(repo) => repo,
        Err(e) => return render_activity(&app, &place, Some(e.to_string()), None).await,
    };
    if !place.may(repo.as_str(), "push") {
        return Err(PortalError::Forbidden(format!(
            "Your roles do not allow restoring in {repo}."
        )));
    }
    let reference = form.reference.trim();
    let (digest, tag): (Digest, Tag);
    let what = if let Ok(parsed) = reference.parse::<Digest>() {
        digest = parsed;
        Restore::Manifest(&digest)
    } else {
        match reference.parse::<Tag>() {
            Ok(parsed) => {
                tag = parsed;
                Restore::Tag(&tag)
            }
            Err(e) => return render_activity(&app, &place, Some(e.to_string()), None).await,
        }
    };
    let reg = app.tenant(place.reg.clone())?;
    let who = place.actor_name();
    match history::restore(&app.db, &reg, &repo, what, actor(&who, &headers)).await {
        Ok(restored) => {
            let tags = if restored.tags.is_empty() {
                "no tags".to_string()
            } else {
                format!("tags {}", restored.tags.join(", "))
            };
            let referrers = match restored.referrers.len() {
                0 => String::new(),
                1 => " and 1 referrer".to_string(),
                n => format!(" and {n} referrers"),
            };
            let notice = format!("Restored {} in {repo}, with {tags}{referrers}.", restored.digest);
            render_activity(&app, &place, None, Some(notice)).await
        }
        Err(e) => render_activity(&app, &place, Some(form_error(e)?), None).await,
    }
}
