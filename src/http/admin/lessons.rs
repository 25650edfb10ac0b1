//! Teachers' pages: every lesson with hide, show and delete; the upload form and its result.

use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::auth::Admin;
use super::i18n::{Lang, S};
use super::layout::{button, csrf, page, problem, send, size};
use super::login::Nothing;
use crate::http::{AppState, HttpError};
use crate::lesson::valid_id;
use crate::service::upload::{LessonForm, Upload};
use crate::service::{ConsoleLesson, ServiceError};
use crate::store::Origin;

/// `GET /admin`: the lessons page.
pub async fn home(_admin: Admin) -> Redirect {
    Redirect::to("/admin/lessons")
}

#[derive(Debug, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

fn done_message(lang: Lang, done: &str) -> Option<&'static str> {
    Some(lang.t(match done {
        "hidden" => S::msg_hidden,
        "shown" => S::msg_shown,
        "deleted" => S::msg_deleted,
        _ => return None,
    }))
}

/// `GET /admin/lessons`.
pub async fn list(State(state): State<AppState>, admin: Admin, Query(q): Query<Done>) -> Result<Response, HttpError> {
    let message = done_message(admin.lang, &q.done).map(|m| html! { p.msg role="status" { (m) } });
    lessons_page(&state, &admin, StatusCode::OK, message).await
}

async fn lessons_page(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    message: Option<Markup>,
) -> Result<Response, HttpError> {
    let lessons = state.blocking(|lib| lib.all_lessons()).await?;
    let lang = admin.lang;
    let body = html! {
        @if let Some(message) = message { (message) }
        (upload_form(admin))
        h2 { (lang.t(S::lessons)) " (" (lessons.len()) ")" }
        @if lessons.is_empty() { p { (lang.t(S::no_lessons)) } }
        @else {
            table {
                thead { tr {
                    th { (lang.t(S::f_title)) } th { (lang.t(S::f_language)) } th { (lang.t(S::f_grade)) }
                    th { (lang.t(S::f_subject)) } th { (lang.t(S::origin)) } th { (lang.t(S::state)) } th {}
                } }
                tbody { @for lesson in &lessons { (lesson_row(admin, lesson)) } }
            }
        }
    };
    Ok(send(status, page(Some(admin), lang, lang.t(S::lessons), body)))
}

fn lesson_row(admin: &Admin, lesson: &ConsoleLesson) -> Markup {
    let lang = admin.lang;
    let meta = &lesson.row.meta;
    let signed = matches!(lesson.row.origin, Origin::Publisher(_));
    let origin = match &lesson.row.origin {
        Origin::Local => lang.t(S::origin_local),
        Origin::Sample => lang.t(S::origin_sample),
        Origin::Publisher(_) => lang.t(S::origin_signed),
    };
    let base = format!("/admin/lessons/{}", meta.id);
    html! {
        tr id={ "lesson-" (meta.id) } {
            td { a href={ "/lessons/" (meta.id) "/" } { (meta.title) } br; small.muted { (meta.id) " · " (size(lesson.row.size)) } }
            td { (meta.language) } td { (meta.grade) } td { (meta.subject) } td { (origin) }
            td { @if lesson.hidden { (lang.t(S::hidden)) } @else { (lang.t(S::visible)) } }
            td {
                @if !signed || admin.is_technician() {
                    @if lesson.hidden { (button(admin, &format!("{base}/show"), lang.t(S::show), &[])) }
                    @else { (button(admin, &format!("{base}/hide"), lang.t(S::hide), &[])) }
                }
                @if !signed { " " (button(admin, &format!("{base}/delete"), lang.t(S::delete), &[])) }
            }
        }
    }
}

fn upload_form(admin: &Admin) -> Markup {
    let lang = admin.lang;
    html! {
        section.card {
            h2 { (lang.t(S::upload_title)) }
            // The CSRF field comes first: the handler checks it before reading any file.
            form method="post" action="/admin/lessons/upload" enctype="multipart/form-data" {
                (csrf(admin))
                p { (lang.t(S::upload_zip_help)) }
                label { (lang.t(S::zip_file)) " " input type="file" name="zip" accept=".zip,application/zip"; }
                p { (lang.t(S::upload_files_help)) }
                label { (lang.t(S::files)) " " input type="file" name="files" multiple; }
                label { (lang.t(S::f_title)) input type="text" name="title"; }
                label { (lang.t(S::f_language)) select name="language" {
                    option value="az" { "Azərbaycanca" } option value="ru" { "Русский" } option value="en" { "English" }
                } }
                label { (lang.t(S::f_grade)) input type="text" name="grade" inputmode="numeric" value="0"; }
                label { (lang.t(S::f_subject)) input type="text" name="subject"; }
                label { (lang.t(S::f_summary)) textarea name="summary" rows="2" {} }
                label { (lang.t(S::f_id)) input type="text" name="id" pattern="[a-z0-9][a-z0-9-]{0,63}"; }
                button type="submit" { (lang.t(S::upload)) }
            }
        }
    }
}

/// `POST /admin/lessons/upload` (multipart): a zip, or files and the form.
pub async fn upload(State(state): State<AppState>, admin: Admin, request: Request) -> Result<Response, HttpError> {
    let lang = admin.lang;
    // Anything but a multipart form carries no token where this route looks for it.
    let Ok(mut multipart) = Multipart::from_request(request, &state).await else {
        admin.check_csrf("")?;
        return Err(HttpError::BadRequest("not an upload form".to_owned()));
    };
    let first = multipart.next_field().await.map_err(bad_upload)?;
    let token = match first {
        Some(field) if field.name() == Some("csrf") => field.text().await.map_err(bad_upload)?,
        _ => String::new(),
    };
    admin.check_csrf(&token)?;
    let staging = state.blocking(|lib| lib.staging()).await?;
    let mut form = LessonForm::default();
    let mut got_zip = false;
    let mut got_files = false;
    let max = state.console().settings.max_upload as u64;
    let mut total = 0u64;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_upload)? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned).filter(|f| !f.is_empty());
        let target = match (name.as_str(), &file_name) {
            ("zip", Some(_)) => {
                got_zip = true;
                staging.zip_path()
            }
            ("files", Some(file)) => {
                got_files = true;
                match staging.file_path(file) {
                    Ok(path) => path,
                    Err(ServiceError::Refused(why)) => return Ok(refused(&state, &admin, &why).await),
                    Err(e) => return Err(e.into()),
                }
            }
            ("zip" | "files", None) => continue,
            _ => {
                let text = field.text().await.map_err(bad_upload)?;
                match name.as_str() {
                    "id" => form.id = text,
                    "title" => form.title = text,
                    "language" => form.language = text,
                    "grade" => form.grade = text,
                    "subject" => form.subject = text,
                    "summary" => form.summary = text,
                    _ => {}
                }
                continue;
            }
        };
        let mut out = tokio::fs::File::create(&target)
            .await
            .map_err(|e| HttpError::Internal(format!("{}: {e}", target.display())))?;
        while let Some(chunk) = field.chunk().await.map_err(bad_upload)? {
            total += chunk.len() as u64;
            if total > max {
                return Ok(refused(&state, &admin, &format!("the upload is larger than {} MB", max >> 20)).await);
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| HttpError::Internal(format!("{}: {e}", target.display())))?;
        }
        out.flush().await.map_err(|e| HttpError::Internal(e.to_string()))?;
    }
    let upload = match (got_zip, got_files) {
        (true, _) => Upload::Zip,
        (false, true) => Upload::Files(form),
        (false, false) => {
            return Ok(refused(&state, &admin, "choose a zip file, or the lesson's files").await);
        }
    };
    let session = admin.session.clone();
    let limits = state.console().settings.unpack;
    let result = state
        .blocking(move |lib| {
            let result = lib.import_upload(&session, &staging, &upload, &limits);
            drop(staging);
            match result {
                Err(ServiceError::Refused(why)) => Ok(Err(why)),
                other => other.map(Ok),
            }
        })
        .await?;
    match result {
        Ok(report) => {
            let ids: Vec<&String> = report
                .added
                .iter()
                .chain(&report.updated)
                .chain(&report.unchanged)
                .collect();
            let message = html! {
                p.msg role="status" {
                    (lang.t(S::uploaded)) " "
                    @for id in &ids { a href={ "/lessons/" (id) "/" } { (id) } " " }
                }
                @for e in &report.errors { p.err { (e.to_string()) } }
            };
            lessons_page(&state, &admin, StatusCode::OK, Some(message)).await
        }
        Err(why) => Ok(refused(&state, &admin, &why).await),
    }
}

fn bad_upload(e: axum::extract::multipart::MultipartError) -> HttpError {
    HttpError::BadRequest(format!("the upload was cut short or malformed: {e}"))
}

/// The lessons page again with why the upload was refused (422).
async fn refused(state: &AppState, admin: &Admin, why: &str) -> Response {
    let message = html! {
        div.err role="alert" { strong { (admin.lang.t(S::upload_refused)) ": " } (why) }
    };
    match lessons_page(state, admin, StatusCode::UNPROCESSABLE_ENTITY, Some(message)).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn change(state: AppState, admin: Admin, id: String, what: &'static str) -> Result<Response, HttpError> {
    if !valid_id(&id) {
        return Err(HttpError::NotFound);
    }
    let session = admin.session.clone();
    let lesson = id.clone();
    let result = state
        .blocking(move |lib| match what {
            "hidden" => lib.set_hidden(&session, &lesson, true),
            "shown" => lib.set_hidden(&session, &lesson, false),
            _ => lib.delete_lesson(&session, &lesson),
        })
        .await;
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/admin/lessons?done={what}")).into_response()),
        Err(HttpError::Forbidden(why)) => Ok(problem(
            Some(&admin),
            admin.lang,
            StatusCode::FORBIDDEN,
            &why,
            "/admin/lessons",
        )),
        Err(e) => Err(e),
    }
}

/// `POST /admin/lessons/{id}/hide`.
pub async fn hide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: super::auth::Posted<Nothing>,
) -> Result<Response, HttpError> {
    change(state, posted.admin, id, "hidden").await
}

/// `POST /admin/lessons/{id}/show`.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: super::auth::Posted<Nothing>,
) -> Result<Response, HttpError> {
    change(state, posted.admin, id, "shown").await
}

/// `POST /admin/lessons/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: super::auth::Posted<Nothing>,
) -> Result<Response, HttpError> {
    change(state, posted.admin, id, "deleted").await
}
