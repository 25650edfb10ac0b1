//! Technicians' pages: health, disk, store size, sync now and the last result of each
//! upstream, trusted keys, a field report written to a stick; accounts (add, remove, reset
//! password); the audit log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::auth::{Admin, Posted};
use super::i18n::{Lang, S};
use super::layout::{self, button, csrf, problem, send, size, when};
use super::login::Nothing;
use crate::http::{AppState, HttpError};
use crate::service::sticks;
use crate::service::{Role, ServiceError};

/// `GET /admin/system`.
pub async fn page(State(state): State<AppState>, admin: Admin) -> Result<Response, HttpError> {
    admin.require(Role::Technician)?;
    let roots = state.console().settings.usb_roots.clone();
    let (health, targets) = state
        .blocking(move |lib| Ok((lib.health()?, sticks::export_targets(&roots))))
        .await?;
    let settings = &state.console().settings;
    let lang = admin.lang;
    let status = &health.status;
    let body = html! {
        section.card {
            h2 { (lang.t(S::health)) }
            @if health.problems.is_empty() { p.msg { (lang.t(S::all_well)) } }
            @for problem in &health.problems { p.err { (problem) } }
            table {
                tr { th { (lang.t(S::centre)) } td { (settings.centre_name) } }
                tr { th { (lang.t(S::version)) } td { (env!("CARGO_PKG_VERSION")) } }
                tr { th { (lang.t(S::lessons)) } td { (status.lessons) } }
                tr { th { (lang.t(S::store_size)) } td { (size(status.file_bytes)) " (" (status.data_file.display()) ")" } }
                tr { th { (lang.t(S::disk_free)) } td {
                    @if let Some(disk) = health.disk { (size(disk.free)) " / " (size(disk.total)) } @else { "?" }
                } }
                tr { th { (lang.t(S::schema)) } td { (status.schema_version) } }
            }
            p { (button(&admin, "/admin/system/verify", lang.t(S::verify_store), &[])) }
        }
        section.card {
            h2 { (lang.t(S::sync_title)) }
            @if settings.upstreams.is_empty() { p { (lang.t(S::no_upstreams)) } }
            @else {
                table {
                    @for url in &settings.upstreams {
                        tr {
                            td { code { (url) } }
                            td { @match status.syncs.iter().find(|s| &s.url == url) {
                                Some(s) => { (when(s.finished_at)) " · " @if s.ok { (lang.t(S::ok)) } @else { strong { (lang.t(S::failed)) } } br; small { (s.message) } },
                                None => { (lang.t(S::last_result)) ": " (lang.t(S::never)) },
                            } }
                        }
                    }
                }
                p { (button(&admin, "/admin/system/sync", lang.t(S::sync_now), &[])) }
            }
        }
        section.card {
            h2 { (lang.t(S::keys_title)) }
            @if settings.trusted_keys.is_empty() { p.err { (lang.t(S::no_keys)) } }
            ul { @for key in &settings.trusted_keys { li { code { (key.fingerprint()) } " " small.muted { code { (key.to_text()) } } } } }
            h2 { (lang.t(S::installed)) }
            table { @for (fingerprint, key, seq) in &status.publishers {
                tr { td { code { (fingerprint) } } td { (lang.t(S::sequence)) " " (seq) } td {
                    @if settings.trusted_keys.iter().any(|k| k.to_text() == *key) { (lang.t(S::trusted)) } @else { (lang.t(S::untrusted)) }
                } }
            } }
        }
        section.card #report {
            h2 { (lang.t(S::report_title)) }
            p { (lang.t(S::report_help)) }
            @if targets.is_empty() { p { (lang.t(S::no_targets)) } }
            @else {
                form method="post" action="/admin/system/report" {
                    (csrf(&admin))
                    label { (lang.t(S::stick)) " "
                        select name="stick" { @for target in &targets {
                            @let path = target.display().to_string();
                            option value=(path) { (path) }
                        } }
                    }
                    button type="submit" { (lang.t(S::write_report)) }
                }
            }
        }
    };
    Ok(send(
        StatusCode::OK,
        layout::page(Some(&admin), lang, lang.t(S::system), body),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ReportForm {
    stick: String,
}

/// What went wrong writing a report, in words a technician can act on, then the error itself
/// (which names the file).
fn report_failure(lang: Lang, e: &ServiceError) -> String {
    let why = match e {
        ServiceError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Some(S::stick_full),
            std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => Some(S::stick_read_only),
            _ => None,
        },
        _ => None,
    };
    match why {
        Some(why) => format!("{}: {}\n{e}", lang.t(S::report_not_written), lang.t(why)),
        None => format!("{}: {e}", lang.t(S::report_not_written)),
    }
}

/// `POST /admin/system/report`: a job writing this centre's signed report onto one of the
/// plugged-in sticks, as `dars report --out` does. The form names the stick by its path, which
/// must be one of the sticks listed; no other folder of the disk is written to.
pub async fn write_report(State(state): State<AppState>, posted: Posted<ReportForm>) -> Result<Response, HttpError> {
    let Posted { admin, form } = posted;
    admin.require(Role::Technician)?;
    let lang = admin.lang;
    let roots = state.console().settings.usb_roots.clone();
    let wanted = form.stick.clone();
    let target = state
        .blocking(move |_| {
            Ok(sticks::export_targets(&roots)
                .into_iter()
                .find(|t| t.as_os_str() == wanted.as_str()))
        })
        .await?;
    let Some(target) = target else {
        let message = format!("{}: {}", form.stick, lang.t(S::stick_gone));
        return Ok(problem(
            Some(&admin),
            lang,
            StatusCode::BAD_REQUEST,
            &message,
            "/admin/system",
        ));
    };
    let library = state.library_arc();
    let who = admin.session.account.clone();
    let centre = state.console().settings.centre_name.clone();
    let title = format!("report to {}", target.display());
    let id = state
        .console()
        .jobs
        .start(&title, &admin.session.account, move |progress| {
            let result = library.write_report(&centre, &target, false, progress);
            let (action, details) = match &result {
                Ok((json, _)) => ("report written", json.display().to_string()),
                Err(e) => ("report failed", format!("{}: {e}", target.display())),
            };
            library.audit(&who, action, &details)?;
            match result {
                Ok((json, report)) => Ok(format!(
                    "{}: {} · {}: {} · {}: {} · {}: {}",
                    lang.t(S::report_written),
                    json.display(),
                    lang.t(S::signature),
                    json.with_extension("sig").display(),
                    lang.t(S::lessons),
                    report.lessons,
                    lang.t(S::views_30),
                    report.usage.views_last(30)
                )),
                Err(e) => Err(ServiceError::Refused(report_failure(lang, &e))),
            }
        })?;
    Ok(Redirect::to(&format!("/admin/jobs/{id}")).into_response())
}

/// `POST /admin/system/sync`: one job syncing from every upstream in turn.
pub async fn sync_now(State(state): State<AppState>, posted: Posted<Nothing>) -> Result<Response, HttpError> {
    let admin = posted.admin;
    admin.require(Role::Technician)?;
    let settings = state.console().settings.clone();
    if settings.upstreams.is_empty() {
        return Err(HttpError::BadRequest(
            "no upstreams are set in the config file".to_owned(),
        ));
    }
    let library = state.library_arc();
    let who = admin.session.account.clone();
    let id = state
        .console()
        .jobs
        .start("sync", &admin.session.account, move |progress| {
            let mut lines = Vec::new();
            for url in &settings.upstreams {
                let line = match library.sync_and_record(url, &settings.sync, progress) {
                    Ok(r) => format!(
                        "{url}: {} new, {} updated lessons, {} downloaded",
                        r.package.added.len(),
                        r.package.updated.len(),
                        size(r.bytes_downloaded)
                    ),
                    Err(e) => format!("{url}: failed: {e}"),
                };
                lines.push(line);
            }
            let message = lines.join("\n");
            library.audit(&who, "sync now", &message)?;
            Ok(message)
        })?;
    Ok(Redirect::to(&format!("/admin/jobs/{id}")).into_response())
}

/// `POST /admin/system/verify`: re-hashes the whole store.
pub async fn verify_store(State(state): State<AppState>, posted: Posted<Nothing>) -> Result<Response, HttpError> {
    let admin = posted.admin;
    admin.require(Role::Technician)?;
    let library = state.library_arc();
    let id = state
        .console()
        .jobs
        .start("verify the store", &admin.session.account, move |progress| {
            let report = library.verify(progress)?;
            if report.is_clean() {
                Ok(format!("the store is whole: {} blobs checked", report.blobs_checked))
            } else {
                let problems: Vec<String> = report
                    .database
                    .iter()
                    .cloned()
                    .chain(report.problems.iter().map(|p| format!("{}: {}", p.hash, p.what)))
                    .collect();
                Err(ServiceError::Refused(format!("damage found:\n{}", problems.join("\n"))))
            }
        })?;
    Ok(Redirect::to(&format!("/admin/jobs/{id}")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

fn done_message(lang: Lang, done: &str) -> Option<&'static str> {
    Some(lang.t(match done {
        "added" => S::msg_account_added,
        "removed" => S::msg_account_removed,
        "password" => S::msg_password_set,
        _ => return None,
    }))
}

/// `GET /admin/accounts`.
pub async fn accounts(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<Done>,
) -> Result<Response, HttpError> {
    accounts_page(
        &state,
        &admin,
        StatusCode::OK,
        done_message(admin.lang, &q.done).map(str::to_owned),
        None,
    )
    .await
}

async fn accounts_page(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, HttpError> {
    admin.require(Role::Technician)?;
    let accounts = state.blocking(|lib| lib.accounts()).await?;
    let lang = admin.lang;
    let role_name = |r: Role| lang.t(if r == Role::Teacher { S::teacher } else { S::technician });
    let body = html! {
        @if let Some(m) = &message { p.msg role="status" { (m) } }
        @if let Some(e) = &error { p.err role="alert" { (e) } }
        table {
            thead { tr { th { (lang.t(S::account_name)) } th { (lang.t(S::role)) } th { (lang.t(S::created)) } th {} } }
            tbody { @for a in &accounts {
                tr {
                    td { (a.name) } td { (role_name(a.role)) } td { (when(a.created_at)) }
                    td {
                        form.inline method="post" action={ "/admin/accounts/" (a.name) "/password" } {
                            (csrf(admin))
                            input type="password" name="password" placeholder=(lang.t(S::new_password)) autocomplete="new-password" required;
                            input type="password" name="again" placeholder=(lang.t(S::password_again)) autocomplete="new-password" required;
                            button type="submit" { (lang.t(S::set_password)) }
                        }
                        @if a.name != admin.session.account { " " (button(admin, &format!("/admin/accounts/{}/remove", a.name), lang.t(S::delete), &[])) }
                    }
                }
            } }
        }
        section.card {
            h2 { (lang.t(S::add_account)) }
            form method="post" action="/admin/accounts/add" {
                (csrf(admin))
                label { (lang.t(S::account_name)) input type="text" name="name" autocapitalize="none" required; }
                label { (lang.t(S::role)) select name="role" {
                    option value="teacher" { (role_name(Role::Teacher)) } option value="technician" { (role_name(Role::Technician)) }
                } }
                label { (lang.t(S::password)) input type="password" name="password" autocomplete="new-password" required; }
                label { (lang.t(S::password_again)) input type="password" name="again" autocomplete="new-password" required; }
                button type="submit" { (lang.t(S::add_account)) }
            }
        }
    };
    Ok(send(status, layout::page(Some(admin), lang, lang.t(S::accounts), body)))
}

#[derive(Debug, Deserialize)]
pub struct NewAccount {
    name: String,
    role: String,
    password: String,
    again: String,
}

/// Runs an account change; a refusal is shown on the accounts page (422).
async fn account_change(
    state: AppState,
    admin: Admin,
    done: &str,
    work: impl FnOnce(&crate::service::Library) -> Result<(), ServiceError> + Send + 'static,
) -> Result<Response, HttpError> {
    admin.require(Role::Technician)?;
    let result = state
        .blocking(move |lib| match work(lib) {
            Err(ServiceError::Refused(why)) => Ok(Err(why)),
            other => other.map(Ok),
        })
        .await?;
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/admin/accounts?done={done}")).into_response()),
        Err(why) => accounts_page(&state, &admin, StatusCode::UNPROCESSABLE_ENTITY, None, Some(why)).await,
    }
}

/// `POST /admin/accounts/add`.
pub async fn add_account(State(state): State<AppState>, posted: Posted<NewAccount>) -> Result<Response, HttpError> {
    let Posted { admin, form } = posted;
    if form.password != form.again {
        admin.require(Role::Technician)?;
        let why = admin.lang.t(S::passwords_differ).to_owned();
        return accounts_page(&state, &admin, StatusCode::UNPROCESSABLE_ENTITY, None, Some(why)).await;
    }
    let actor = admin.session.account.clone();
    account_change(state, admin, "added", move |lib| {
        let role = Role::parse(&form.role)?;
        lib.add_account(&actor, form.name.trim(), role, &form.password)
    })
    .await
}

/// `POST /admin/accounts/{name}/remove`.
pub async fn remove_account(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<Nothing>,
) -> Result<Response, HttpError> {
    let admin = posted.admin;
    if name == admin.session.account {
        admin.require(Role::Technician)?;
        let lang = admin.lang;
        return Ok(problem(
            Some(&admin),
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            lang.t(S::cannot_remove_self),
            "/admin/accounts",
        ));
    }
    let actor = admin.session.account.clone();
    account_change(state, admin, "removed", move |lib| lib.remove_account(&actor, &name)).await
}

#[derive(Debug, Deserialize)]
pub struct NewPassword {
    password: String,
    again: String,
}

/// `POST /admin/accounts/{name}/password`.
pub async fn reset_password(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<NewPassword>,
) -> Result<Response, HttpError> {
    let Posted { admin, form } = posted;
    if form.password != form.again {
        admin.require(Role::Technician)?;
        let why = admin.lang.t(S::passwords_differ).to_owned();
        return accounts_page(&state, &admin, StatusCode::UNPROCESSABLE_ENTITY, None, Some(why)).await;
    }
    let actor = admin.session.account.clone();
    account_change(state, admin, "password", move |lib| {
        lib.set_password(&actor, &name, &form.password)
    })
    .await
}

/// `GET /admin/audit`: the newest 500 entries.
pub async fn audit(State(state): State<AppState>, admin: Admin) -> Result<Response, HttpError> {
    admin.require(Role::Technician)?;
    let log = state.blocking(|lib| lib.audit_log(500)).await?;
    let lang = admin.lang;
    let body = html! {
        table {
            thead { tr { th { (lang.t(S::time)) } th { (lang.t(S::account)) } th { (lang.t(S::action)) } th { (lang.t(S::details)) } } }
            tbody { @for e in &log {
                tr { td { (when(e.at)) } td { (e.account) } td { (e.action) } td { small { (e.details) } } }
            } }
        }
    };
    Ok(send(
        StatusCode::OK,
        layout::page(Some(&admin), lang, lang.t(S::audit), body),
    ))
}
