//! What a registry keeps: its tag immutability rules, its retention policy (and running it now), and its
//! activity log (the latest tag changes of every repository).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::repositories::HistoryRow;
use super::session::{Submitted, Viewer};
use super::{Chrome, Place, PortalError, form_error, form_page, page, see_other};
use crate::app::{App, AppState};
use crate::errors::OciError;
use crate::ops::immutability::{self, Rule, RuleSpec};
use crate::ops::{history, retention};

/// Tag changes the activity log shows.
const ACTIVITY_SHOWN: u32 = 200;

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
}

pub async fn change_retention(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Submitted { viewer, form }: Submitted<RetentionForm>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    place.require_manager()?;
    if form.action == "run" {
        return run_retention(&app, &place, form.dry_run).await;
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
    let report = retention::apply(&app.db, &app.tenant(place.reg.clone())?, dry_run).await;
    let report = match report {
        Ok(report) => report,
        Err(e) => return render_retention(place, Vec::new(), Some(form_error(e)?), None),
    };
    let Some(report) = report else {
        let notice = "The registry has no retention policy: nothing to do.".to_string();
        return render_retention(place, Vec::new(), None, Some(notice));
    };
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
    let verb = if dry_run { "would delete" } else { "deleted" };
    let notice = format!(
        "The policy {verb} {} tags and {} manifests.",
        report.deleted_tags, report.deleted_manifests
    );
    render_retention(place, lines, None, Some(notice))
}

#[derive(Template)]
#[template(path = "activity.html", config = "src/http/portal/askama.toml")]
struct ActivityPage {
    chrome: Chrome,
    name: String,
    history: Vec<HistoryRow>,
    show_repository: bool,
}

pub async fn activity(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PortalError> {
    let place = Place::of(&app, &viewer, &name).await?;
    let reg = app.tenant(place.reg.clone())?;
    let changes = history::recent(&app.db, &reg, None, ACTIVITY_SHOWN).await?;
    let history = changes
        .iter()
        .filter(|c| place.may(&c.repository, "pull"))
        .map(|c| HistoryRow::of(&c.repository, &c.change))
        .collect();
    page(&ActivityPage {
        chrome: place.chrome("activity"),
        name: place.reg.name.clone(),
        history,
        show_repository: true,
    })
}
