//! Saved files: `/lessons/{id}/offline.html` (one lesson) and `/packs/offline.html?...`
//! (several, with a table of contents), sent as downloads; `/packs?...` shows what a pack
//! holds and its size before the download starts. A pack is `lesson=a&lesson=b...` (ticked
//! on a list) or `language=&grade=&subject=` (a whole subject of a grade).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::browse::{enc, shelf_crumbs};
use super::{Crumb, Visitor, layout, message_page, page_response};
use crate::http::negotiate::{Coding, choose_coding};
use crate::http::{AppState, HttpError};
use crate::lesson::{MAX_GRADE, valid_id};
use crate::service::offline::{PACK_MAX, percent_encode_path};
use crate::service::{OfflineFile, OfflineOptions, PackRequest, Separate, UseKind};
use crate::store::LessonFilter;
use crate::ui::{Lang, Text, grade_label, human_size, lesson_count};

/// How a saved file is made for this visitor: links back to the address the phone used.
pub fn options(visitor: &Visitor) -> OfflineOptions {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    OfflineOptions {
        server: visitor.origin.clone(),
        lang: visitor.lang,
        today: now.get(..10).unwrap_or(&now).to_owned(),
    }
}

/// The files of a saved file that download separately, with their sizes.
pub fn separate_list(lang: Lang, files: &[Separate]) -> Markup {
    html! {
        @if !files.is_empty() {
            h2 { (lang.t(Text::Separate)) }
            p { (lang.t(Text::SeparateNote)) }
            ul {
                @for f in files {
                    li {
                        @match &f.url {
                            Some(url) => a href=(url) { (f.path) },
                            None => span { (f.path) },
                        }
                        " (" (human_size(f.size)) ")"
                    }
                }
            }
        }
    }
}

/// `GET /lessons/{id}/offline.html`
pub async fn lesson_file(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    if !valid_id(&id) {
        return Err(HttpError::NotFound);
    }
    let request = PackRequest {
        ids: vec![id],
        title: None,
    };
    let opts = options(&visitor);
    let file = state.blocking(move |lib| lib.offline_file(&request, &opts)).await?;
    let response = download(&file, &headers);
    count_saves(&state, &method, &file, &response);
    Ok(response)
}

/// Counts a saved file as one offline save of each lesson in it (a GET that got the file;
/// HEAD and refusals are not saves).
fn count_saves(state: &AppState, method: &Method, file: &OfflineFile, response: &Response) {
    if *method == Method::GET && response.status() == StatusCode::OK {
        for lesson in &file.lessons {
            state.library().record_use(&lesson.meta.id, UseKind::OfflineSave);
        }
    }
}

/// A pack asked for in a query, or the page saying what is wrong with it.
enum Asked {
    Pack(PackRequest, String),
    Wrong(Response),
}

async fn asked(state: &AppState, visitor: &Visitor, query: Option<&str>) -> Result<Asked, HttpError> {
    let lang = visitor.lang;
    let mut ids: Vec<String> = Vec::new();
    let (mut language, mut grade, mut subject) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "lesson" => {
                let id = value.trim().to_owned();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            "language" => language = Some(value.into_owned()),
            "grade" => grade = value.trim().parse::<u8>().ok().filter(|g| *g <= MAX_GRADE),
            "subject" => subject = Some(value.into_owned()),
            _ => {}
        }
    }
    let wrong = |status, title, message: String| Ok(Asked::Wrong(message_page(visitor, status, title, &message)));
    if let Some(bad) = ids.iter().find(|id| !valid_id(id)) {
        return wrong(
            StatusCode::NOT_FOUND,
            Text::NotFoundTitle,
            lang.fill(Text::PackUnknown, &[bad]),
        );
    }
    let (ids, title, query) = if !ids.is_empty() {
        let query: Vec<String> = ids.iter().map(|id| format!("lesson={}", enc(id))).collect();
        let title = format!("{} ({})", lang.t(Text::PackTitle), lesson_count(lang, ids.len()));
        (ids, title, query.join("&"))
    } else if let (Some(language), Some(grade), Some(subject)) = (language, grade, subject) {
        let filter = LessonFilter {
            language: Some(language.clone()),
            grade: Some(grade),
            subject: Some(subject.clone()),
        };
        let lessons = state.blocking(move |lib| lib.lessons(&filter)).await?;
        let ids = lessons.into_iter().map(|l| l.meta.id).collect();
        let title = format!("{subject} · {}", grade_label(lang, grade));
        let query = format!("language={}&grade={grade}&subject={}", enc(&language), enc(&subject));
        (ids, title, query)
    } else {
        (Vec::new(), String::new(), String::new())
    };
    if ids.is_empty() {
        return wrong(
            StatusCode::BAD_REQUEST,
            Text::BadRequestTitle,
            lang.t(Text::PackNone).to_owned(),
        );
    }
    if ids.len() > PACK_MAX {
        return wrong(
            StatusCode::BAD_REQUEST,
            Text::BadRequestTitle,
            lang.fill(Text::PackTooMany, &[&PACK_MAX.to_string()]),
        );
    }
    Ok(Asked::Pack(
        PackRequest {
            ids,
            title: Some(title),
        },
        query,
    ))
}

/// Builds a pack, or says which lesson is missing.
async fn build(
    state: &AppState,
    visitor: &Visitor,
    request: PackRequest,
) -> Result<Result<std::sync::Arc<OfflineFile>, Response>, HttpError> {
    let opts = options(visitor);
    let ids = request.ids.clone();
    match state.blocking(move |lib| lib.offline_file(&request, &opts)).await {
        Ok(file) => Ok(Ok(file)),
        Err(HttpError::NotFound) => {
            // Name the lesson that is gone, so the child knows which tick to take off.
            let rows = state
                .blocking(move |lib| {
                    Ok(ids
                        .iter()
                        .filter(|id| lib.lesson_row(id).is_err())
                        .cloned()
                        .collect::<Vec<_>>())
                })
                .await?;
            let lang = visitor.lang;
            let message = lang.fill(Text::PackUnknown, &[&rows.join(", ")]);
            Ok(Err(message_page(
                visitor,
                StatusCode::NOT_FOUND,
                Text::NotFoundTitle,
                &message,
            )))
        }
        Err(e) => Err(e),
    }
}

/// `GET /packs?...`: what the pack holds and the size of its file, before downloading it.
pub async fn pack_confirm(
    State(state): State<AppState>,
    visitor: Visitor,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let (request, query) = match asked(&state, &visitor, query.as_deref()).await? {
        Asked::Pack(request, query) => (request, query),
        Asked::Wrong(response) => return Ok(response),
    };
    let file = match build(&state, &visitor, request).await? {
        Ok(file) => file,
        Err(response) => return Ok(response),
    };
    let lang = visitor.lang;
    let ids: Vec<&str> = file.lessons.iter().map(|l| l.meta.id.as_str()).collect();
    let titles: Vec<&str> = file.lessons.iter().map(|l| l.meta.title.as_str()).collect();
    let crumbs: Vec<Crumb> = match file.lessons.first() {
        Some(first)
            if file
                .lessons
                .iter()
                .all(|l| l.meta.subject == first.meta.subject && l.meta.grade == first.meta.grade) =>
        {
            shelf_crumbs(
                lang,
                &first.meta.language,
                Some(first.meta.grade),
                Some(&first.meta.subject),
            )
        }
        _ => Vec::new(),
    };
    let size = human_size(file.html.len() as u64);
    let body = html! {
        h1 { (file.title) }
        p { (lang.t(Text::PackConfirm)) }
        ol .list {
            @for lesson in &file.lessons {
                li lang=(lesson.meta.language) {
                    a href={ "/card/" (lesson.meta.id) } { (lesson.meta.title) }
                    small lang=(lang.code()) { (grade_label(lang, lesson.meta.grade)) " · " (lesson.meta.subject) " · " (human_size(lesson.size)) }
                }
            }
        }
        p { strong { (lang.fill(Text::DownloadSize, &[&size])) } }
        a .btn href={ "/packs/offline.html?" (query) } download=(file.file_name) data-save=(ids.join(" ")) data-titles=(titles.join("\n")) {
            (lang.fill(Text::Download, &[&size]))
        }
        p .fine { (lang.t(Text::SaveOfflineNote)) }
        (separate_list(lang, &file.separate))
    };
    Ok(page_response(
        &visitor,
        StatusCode::OK,
        layout(lang, &file.title, &crumbs, body),
    ))
}

/// `GET /packs/offline.html?...`: the pack's file, as a download.
pub async fn pack_file(
    State(state): State<AppState>,
    visitor: Visitor,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let request = match asked(&state, &visitor, query.as_deref()).await? {
        Asked::Pack(request, _) => request,
        Asked::Wrong(response) => return Ok(response),
    };
    match build(&state, &visitor, request).await? {
        Ok(file) => {
            let response = download(&file, &headers);
            count_saves(&state, &method, &file, &response);
            Ok(response)
        }
        Err(response) => Ok(response),
    }
}

/// A saved file as a download: `attachment` with an ASCII name and the full UTF-8 one, gzip
/// when offered (the phone stores it decompressed).
fn download(file: &OfflineFile, headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    let Some(coding) = choose_coding(accept, &[Coding::Gzip, Coding::Identity]) else {
        return HttpError::NotAcceptable.into_response();
    };
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        file.ascii_name,
        percent_encode_path(&file.file_name).replace('/', "%2F")
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        out.insert(header::CONTENT_DISPOSITION, value);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Encoding, Accept-Language, Cookie"),
    );
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if coding == Coding::Gzip {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (out, super::gzip_at(&file.html, 6)).into_response()
    } else {
        (out, file.html.clone()).into_response()
    }
}
