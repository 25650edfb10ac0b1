//! `GET /card/{id}`: a lesson's card: title, summary, facts, the size of its saved file, and
//! the two things to do with it: open it, or download it to read at home.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::browse::shelf_crumbs;
use super::offline::{options, separate_list};
use super::{Visitor, layout, page_response};
use crate::http::{AppState, HttpError};
use crate::lesson::valid_id;
use crate::service::PackRequest;
use crate::ui::{self, Lang, Text, grade_label, human_size};

pub async fn card(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    if !valid_id(&id) {
        return Err(HttpError::NotFound);
    }
    let lang = visitor.lang;
    let request = PackRequest {
        ids: vec![id.clone()],
        title: None,
    };
    let opts = options(&visitor);
    let (row, saved) = state
        .blocking(move |lib| {
            let row = lib.lesson_row(&id)?;
            let saved = lib.offline_file(&request, &opts)?;
            Ok((row, saved))
        })
        .await?;
    let m = &row.meta;
    let content_lang = Lang::from_tag(&m.language).unwrap_or(lang);
    let crumbs = shelf_crumbs(lang, &m.language, Some(m.grade), Some(&m.subject));
    let body: Markup = html! {
        article lang=(m.language) {
            h1 { (m.title) }
            @if !m.summary.is_empty() { p { (m.summary) } }
            dl .facts lang=(lang.code()) {
                dt { (lang.t(Text::Subject)) } dd lang=(m.language) { (m.subject) }
                dt { (lang.t(Text::Grade)) } dd { (grade_label(lang, m.grade)) }
                dt { (lang.t(Text::LessonLanguage)) } dd { (content_lang.native_name()) }
                dt { (lang.t(Text::Size)) } dd { (human_size(row.size)) }
            }
            div lang=(lang.code()) {
                a .btn href={ "/lessons/" (m.id) "/" } { (lang.t(Text::OpenLesson)) }
                a .btn.alt href={ "/lessons/" (m.id) "/offline.html" } download=(saved.file_name)
                    data-save=(m.id) data-titles=(m.title) {
                    (lang.t(Text::SaveOffline))
                    small { (lang.fill(Text::DownloadSize, &[&human_size(saved.html.len() as u64)])) }
                }
                p .fine { (lang.t(Text::SaveOfflineNote)) }
                (ui::done_button(lang, &m.id))
                (separate_list(lang, &saved.separate))
            }
        }
    };
    Ok(page_response(
        &visitor,
        StatusCode::OK,
        layout(lang, &m.title, &crumbs, body),
    ))
}
