//! What a registry keeps: its tag immutability rules, its retention policy (and running it now), and a
//! one-off purge (`acr purge`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::session::{Submitted, Viewer};
use super::{Chrome, Place, PortalError, form_error, form_page, see_other};
use crate::app::{App, AppState};
use crate::errors::OciError;
use crate::http::actor;
use crate::ops::immutability::{self, Rule, RuleSpec};
use crate::ops::purge::{self, Asked, Spec};
use crate::ops::retention;

#[derive(Template)]
#[template(path = "immutability.html", config = "src/http/portal/askama.toml")]
struct ImmutabilityPage {
    chrome: Chrome,
    name: String,
    rules: Vec<Rule>,
    error: Option<String>,
}

pub async fn immutability(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    render_immutability(&place, None)
}

fn render_immutability(place: &Place, error: Option<String>) -> Result<Response, PortalError> {
    let failed = error.is_some();
    let rules = ImmutabilityPage {
        chrome: place.chrome("immutability"),
        name: place.reg.name.clone(),
        rules: immutability::list(&place.reg)?,
        error,
    };
    form_page(&rules, failed)
}

#[derive(Deserialize)]
pub struct ImmutabilityForm {
    action: String,
    #[serde(default)]
    repositories: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    except: String,
    #[serde(default)]
    include_referrer_tags: bool,
    #[serde(default)]
    id: String,
}

pub async fn change_immutability(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Submitted { viewer, form }: Submitted<ImmutabilityForm>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    let done = match form.action.as_str() {
        "create" => {
            let spec = RuleSpec {
                repositories: form.repositories.trim().to_owned(),
                tags: form.tags.trim().to_owned(),
                except: comma_separated(&form.except),
                include_referrer_tags: form.include_referrer_tags,
            };
            immutability::create(&app.db, &place.reg, spec).await.map(|_| ())
        }
        "delete" => match form.id.parse() {
            Ok(id) => immutability::delete(&app.db, &place.reg, id).await,
            Err(_) => Err(OciError::Invalid(format!("{:?} is not a rule number", form.id))),
        },
        other => return Err(PortalError::Invalid(format!("Unknown action {other:?}."))),
    };
    match done {
        Ok(()) => Ok(see_other(&format!(
            "/portal/registries/{}/immutability",
            place.reg.name
        ))),
        Err(e) => render_immutability(&place, Some(form_error(e)?)),
    }
}

fn comma_separated(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Template)]
#[template(path = "retention.html", config = "src/http/portal/askama.toml")]
struct RetentionPage {
    chrome: Chrome,
    name: String,
    untagged_days: String,
    rules: Vec<retention::Rule>,
    report: Vec<String>,
    error: Option<String>,
    notice: Option<String>,
}

pub async fn retention(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    render_retention(&place, Vec::new(), None, None)
}

fn render_retention(
    place: &Place,
    report: Vec<String>,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, PortalError> {
    let policy = retention::of(&place.reg)?;
    let failed = error.is_some();
    let retention = RetentionPage {
        chrome: place.chrome("retention"),
        name: place.reg.name.clone(),
        untagged_days: policy.untagged_days.map(|d| d.to_string()).unwrap_or_default(),
        rules: policy.rules,
        report,
        error,
        notice,
    };
    form_page(&retention, failed)
}

#[derive(Deserialize)]
pub struct RetentionForm {
    action: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    keep: String,
    #[serde(default)]
    dry_run: bool,
    /// A purge's filters, one per line.
    #[serde(default)]
    filters: String,
    /// A purge's age, a duration such as `30d`; empty: any age.
    #[serde(default)]
    ago: String,
    #[serde(default)]
    untagged: bool,
    #[serde(default)]
    max_deletions: String,
}

pub async fn change_retention(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Submitted { viewer, form }: Submitted<RetentionForm>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    match form.action.as_str() {
        "run" => return run_retention(&app, &place, form.dry_run).await,
        "purge" => return purge_now(&app, &place, &form, &headers).await,
        _ => {}
    }
    let mut policy = retention::of(&place.reg)?;
    let number = |text: &str, what: &str| -> Result<u32, OciError> {
        text.trim()
            .parse()
            .map_err(|_| OciError::Invalid(format!("{what} must be a whole number of days or items")))
    };
    let changed = match form.action.as_str() {
        "untagged" if form.days.trim().is_empty() => {
            policy.untagged_days = None;
            Ok(())
        }
        "untagged" => number(&form.days, "Days").map(|days| policy.untagged_days = Some(days)),
        "add-rule" => {
            let keep = if form.keep.trim().is_empty() {
                Ok(0)
            } else {
                number(&form.keep, "Keep")
            };
            number(&form.days, "Days").and_then(|days| {
                policy.rules.push(retention::Rule {
                    filter: form.filter.trim().to_owned(),
                    days,
                    keep: keep? as usize,
                });
                Ok(())
            })
        }
        "remove-rule" => {
            policy.rules.retain(|r| r.filter != form.filter);
            Ok(())
        }
        other => return Err(PortalError::Invalid(format!("Unknown action {other:?}."))),
    };
    let saved = match changed {
        Ok(()) => retention::set(&app.db, &place.reg, &policy).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(()) => Ok(see_other(&format!("/portal/registries/{}/retention", place.reg.name))),
        Err(e) => render_retention(&place, Vec::new(), Some(form_error(e)?), None),
    }
}

/// Applies the policy now (or lists what it would delete) and shows what it did.
async fn run_retention(app: &App, place: &Place, dry_run: bool) -> Result<Response, PortalError> {
    match retention::apply(&app.db, &app.tenant(place.reg.clone())?, dry_run).await {
        Ok(Some(report)) => show_report(place, "The policy", &report),
        Ok(None) => {
            let notice = "The registry has no retention policy: nothing to do.".to_string();
            render_retention(place, Vec::new(), None, Some(notice))
        }
        Err(e) => render_retention(place, Vec::new(), Some(form_error(e)?), None),
    }
}

/// Purges what the form's filters match (or lists what it would), as `POST …/purge` does.
async fn purge_now(
    app: &App,
    place: &Place,
    form: &RetentionForm,
    headers: &HeaderMap,
) -> Result<Response, PortalError> {
    let filters: Vec<String> = form
        .filters
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let count = |text: &str, what: &str| -> Result<Option<usize>, OciError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let number = text
            .parse()
            .map_err(|_| OciError::Invalid(format!("{what} must be a whole number")))?;
        Ok(Some(number))
    };
    let spec = count(&form.keep, "Keep").and_then(|keep| {
        Spec::from_asked(Asked {
            filters: &filters,
            ago: Some(form.ago.trim()).filter(|ago| !ago.is_empty()),
            keep: keep.unwrap_or(0),
            untagged: form.untagged,
            dry_run: form.dry_run,
            max_deletions: count(&form.max_deletions, "Maximum deletions")?,
        })
    });
    let who = place.actor_name();
    let report = match spec {
        Ok(spec) => purge::run(&app.db, &app.tenant(place.reg.clone())?, &spec, actor(&who, headers)).await,
        Err(e) => Err(e),
    };
    match report {
        Ok(report) => show_report(place, "The purge", &report),
        Err(e) => render_retention(place, Vec::new(), Some(form_error(e)?), None),
    }
}

/// The retention page with what a run (`who`: the policy or the purge) deleted or would delete.
fn show_report(place: &Place, who: &str, report: &purge::Report) -> Result<Response, PortalError> {
    let lines = report
        .candidates
        .iter()
        .map(|c| {
            let what = c
                .tag
                .as_deref()
                .map_or_else(|| c.digest.clone(), |t| format!("{}:{t}", c.repository));
            format!("{}: {what} ({})", c.action, c.reason)
        })
        .collect();
    let verb = if report.dry_run { "would delete" } else { "deleted" };
    let stopped = if report.stopped {
        " It stopped at its maximum number of deletions."
    } else {
        ""
    };
    let notice = format!(
        "{who} {verb} {} tags and {} manifests.{stopped}",
        report.deleted_tags, report.deleted_manifests
    );
    render_retention(place, lines, None, Some(notice))
}
