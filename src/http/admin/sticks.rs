//! Technicians' USB stick pages: the sticks plugged in and the packages on them; verify,
//! import and export as jobs with a progress page that refreshes itself (no script needed),
//! and the same progress as JSON for a small script.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::auth::{Admin, Posted};
use super::i18n::S;
use super::layout::{button, page, send, size, when};
use crate::http::{AppState, HttpError};
use crate::service::jobs::JobView;
use crate::service::package::ImportPackageOptions;
use crate::service::sticks::{self, Stick};
use crate::service::{ImportOptions, Role};

/// `GET /admin/sticks`.
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Response, HttpError> {
    admin.require(Role::Technician)?;
    let settings = state.console().settings.clone();
    let (found, targets) = state
        .blocking(move |_| {
            Ok((
                sticks::find_sticks(&settings.usb_roots, &settings.trusted_keys),
                sticks::export_targets(&settings.usb_roots),
            ))
        })
        .await?;
    let lang = admin.lang;
    let roots: Vec<String> = state
        .console()
        .settings
        .usb_roots
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    let jobs = state.console().jobs.recent();
    let body = html! {
        p { a href="/admin/sticks" { (lang.t(S::reload)) } }
        @if found.is_empty() { p { (lang.t(S::no_sticks)) " " code { (roots.join(", ")) } } }
        @for stick in &found { (stick_card(&admin, stick)) }
        h2 { (lang.t(S::export_title)) }
        @if targets.is_empty() { p { (lang.t(S::no_targets)) } }
        @for target in &targets {
            p { code { (target.display()) } " " (button(&admin, "/admin/sticks/export", lang.t(S::export), &[("stick", &target.display().to_string())])) }
        }
        (job_list(&admin, &jobs))
    };
    Ok(send(StatusCode::OK, page(Some(&admin), lang, lang.t(S::sticks), body)))
}

fn stick_card(admin: &Admin, stick: &Stick) -> Markup {
    let lang = admin.lang;
    let path = stick.path.display().to_string();
    html! {
        section.card {
            h2 { (stick.name) " " small.muted { code { (path) } } }
            @if let Some(problem) = &stick.problem { p.err { (problem) } }
            @if let Some(package) = &stick.package {
                table {
                    thead { tr { th { (lang.t(S::publisher)) } th { (lang.t(S::fingerprint)) } th { (lang.t(S::sequence)) } th { (lang.t(S::lessons)) } } }
                    tbody {
                        @for m in &package.manifests {
                            tr {
                                td { @if m.trusted { "✔ " (lang.t(S::trusted)) } @else { "✖ " (lang.t(S::untrusted)) } }
                                td { code { (m.fingerprint) } }
                                td { (m.seq) br; small.muted { (m.created) } }
                                td { (m.lessons.len()) ": " @for (id, title) in m.lessons.iter().take(12) { span title=(id) { (title) } "; " } @if m.lessons.len() > 12 { "…" } }
                            }
                            @if !m.trusted {
                                tr { td colspan="4" { (lang.t(S::add_key_line)) br; code { "trusted_keys = [\"" (m.key) "\"]" } } }
                            }
                        }
                    }
                }
                @if !package.local_lessons.is_empty() {
                    p { (lang.t(S::local_lessons)) ": " @for (_, title) in &package.local_lessons { (title) "; " } }
                }
            }
            @if !stick.lesson_folders.is_empty() {
                p { (lang.t(S::lesson_folders)) ": " @for (id, title) in &stick.lesson_folders { span title=(id) { (title) } "; " } }
            }
            p {
                @if stick.package.is_some() { (button(admin, "/admin/sticks/verify", lang.t(S::verify), &[("stick", &path)])) " " }
                (button(admin, "/admin/sticks/import", lang.t(S::import), &[("stick", &path)]))
            }
        }
    }
}

fn job_list(admin: &Admin, jobs: &[JobView]) -> Markup {
    let lang = admin.lang;
    html! {
        @if !jobs.is_empty() {
            h2 { (lang.t(S::recent_jobs)) }
            ul { @for job in jobs {
                li { a href={ "/admin/jobs/" (job.id) } { (job.title) } " · " (when(job.started_at)) " · " (job.started_by) " · " (status_word(admin, job)) }
            } }
        }
    }
}

fn status_word(admin: &Admin, job: &JobView) -> &'static str {
    admin.lang.t(match job.ok {
        None => S::running,
        Some(true) => S::done,
        Some(false) => S::failed,
    })
}

#[derive(Debug, Deserialize)]
pub struct StickForm {
    stick: String,
}

/// Starts a job; answers 303 to its progress page.
fn start(
    state: &AppState,
    admin: &Admin,
    title: String,
    work: impl FnOnce(&crate::service::Library, &crate::service::Progress) -> Result<String, crate::service::ServiceError>
    + Send
    + 'static,
) -> Result<Response, HttpError> {
    let library = state.library_arc();
    let who = admin.session.account.clone();
    let id = state
        .console()
        .jobs
        .start(&title, &who, move |progress| work(&library, progress))?;
    Ok(Redirect::to(&format!("/admin/jobs/{id}")).into_response())
}

/// The stick a form names, if it is still one of the sticks found.
async fn named_stick(state: &AppState, path: String) -> Result<Stick, HttpError> {
    let settings = state.console().settings.clone();
    state
        .blocking(move |_| sticks::stick_at(&settings.usb_roots, &settings.trusted_keys, &path))
        .await
}

/// `POST /admin/sticks/verify`: signatures and every blob of the package on the stick.
pub async fn verify(State(state): State<AppState>, posted: Posted<StickForm>) -> Result<Response, HttpError> {
    let admin = posted.admin;
    admin.require(Role::Technician)?;
    let stick = named_stick(&state, posted.form.stick).await?;
    let trusted = state.console().settings.trusted_keys.clone();
    let title = format!("verify {}", stick.path.display());
    start(&state, &admin, title, move |_, progress| {
        let root = crate::service::package::locate(&stick.path)?;
        let report = crate::service::package::check_package(&root, &trusted, progress)?;
        Ok(format!(
            "the package is whole: {} lessons, {} files checked ({})",
            report.lessons,
            report.blobs_checked,
            size(report.bytes_checked)
        ))
    })
}

/// `POST /admin/sticks/import`: the package on the stick, or its lesson folders as local lessons.
pub async fn import(State(state): State<AppState>, posted: Posted<StickForm>) -> Result<Response, HttpError> {
    let admin = posted.admin;
    admin.require(Role::Technician)?;
    let stick = named_stick(&state, posted.form.stick).await?;
    let opts = ImportPackageOptions {
        trusted: state.console().settings.trusted_keys.clone(),
        allow_downgrade: false,
    };
    let who = admin.session.account.clone();
    let title = format!("import {}", stick.path.display());
    start(&state, &admin, title, move |lib, progress| {
        let path = stick.path.display().to_string();
        let result = if stick.package.is_some() {
            lib.import_package(&stick.path, &opts, progress).map(|r| {
                format!(
                    "{} new, {} updated, {} unchanged lessons",
                    r.added.len(),
                    r.updated.len(),
                    r.unchanged.len()
                )
            })
        } else {
            lib.import_folder(&stick.path, &ImportOptions::default(), progress)
                .map(|r| {
                    let mut text = format!(
                        "{} new, {} updated, {} unchanged lessons",
                        r.added.len(),
                        r.updated.len(),
                        r.unchanged.len()
                    );
                    for e in &r.errors {
                        text.push_str(&format!("\nrefused: {e}"));
                    }
                    text
                })
        };
        let (action, details) = match &result {
            Ok(message) => ("stick imported", format!("{path}: {message}")),
            Err(e) => ("stick import failed", format!("{path}: {e}")),
        };
        lib.audit(&who, action, &details)?;
        result
    })
}

/// `POST /admin/sticks/export`: every lesson, as a package into the stick's DARS/.
pub async fn export(State(state): State<AppState>, posted: Posted<StickForm>) -> Result<Response, HttpError> {
    let admin = posted.admin;
    admin.require(Role::Technician)?;
    let roots = state.console().settings.usb_roots.clone();
    let wanted = posted.form.stick;
    let target = state
        .blocking(move |_| {
            sticks::export_targets(&roots)
                .into_iter()
                .find(|t| t.as_os_str() == wanted.as_str())
                .ok_or_else(|| {
                    crate::service::ServiceError::Refused(format!(
                        "{wanted} is not a plugged-in USB stick (was it pulled out?); reload the page"
                    ))
                })
        })
        .await?;
    let who = admin.session.account.clone();
    let title = format!("export to {}", target.display());
    start(&state, &admin, title, move |lib, progress| {
        let report = lib.export(&target, &[], progress)?;
        let message = format!(
            "{} lessons written to {} ({} new files, {})",
            report.lessons,
            report.dir.display(),
            report.blobs_written,
            size(report.bytes_written)
        );
        lib.audit(&who, "stick exported", &message)?;
        Ok(message)
    })
}

fn find_job(state: &AppState, id: &str) -> Result<JobView, HttpError> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| state.console().jobs.get(id))
        .ok_or(HttpError::NotFound)
}

/// `GET /admin/jobs/{id}`: refreshes itself every two seconds while the job runs.
pub async fn job_page(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    admin.require(Role::Technician)?;
    let job = find_job(&state, &id)?;
    let lang = admin.lang;
    let p = &job.progress;
    let body = html! {
        @if job.running { meta http-equiv="refresh" content="2"; }
        div #job data-id=(job.id) {
            p { strong #state { (status_word(&admin, &job)) } " · " (lang.t(S::started_by)) ": " (job.started_by) " · " (when(job.started_at)) }
            progress #bar max=(p.total_bytes.max(1)) value=(p.done_bytes) {}
            p #figures { (p.done_items) " / " (p.total_items) " · " (size(p.done_bytes)) " / " (size(p.total_bytes)) " · " span #current { (p.current) } }
            @if !job.message.is_empty() {
                @if job.ok == Some(false) { p.err #message role="alert" { (job.message) } }
                @else { p.msg #message role="status" { (job.message) } }
            }
        }
        p { a href="/admin/sticks" { (lang.t(S::sticks)) } " · " a href="/admin/system" { (lang.t(S::system)) } }
        script src="/admin/progress.js" {}
    };
    let title = format!("{}: {}", lang.t(S::job), job.title);
    Ok(send(StatusCode::OK, page(Some(&admin), lang, &title, body)))
}

/// `GET /admin/api/jobs/{id}`: the same as JSON.
pub async fn job_json(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    admin.require(Role::Technician)?;
    let job = find_job(&state, &id)?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(job)).into_response())
}

/// Polls the JSON twice a second and moves the bar between the page's own refreshes (every
/// two seconds, which alone is enough when scripts are off); reloads when the job ends.
const SCRIPT: &str = r#"(function () {
  var job = document.getElementById("job");
  if (!job) return;
  if (!document.querySelector("meta[http-equiv=refresh]")) return;
  function tick() {
    fetch("/admin/api/jobs/" + job.dataset.id, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        var bar = document.getElementById("bar");
        bar.max = Math.max(j.progress.total_bytes, 1);
        bar.value = j.progress.done_bytes;
        document.getElementById("current").textContent = j.progress.current;
        if (j.running) { setTimeout(tick, 500); } else { location.reload(); }
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  setTimeout(tick, 500);
})();
"#;

/// `GET /admin/progress.js`.
pub async fn script(_admin: Admin) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PreEscaped(SCRIPT).into_string(),
    )
        .into_response()
}
