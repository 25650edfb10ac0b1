//! `GET /search?q=&language=`: lessons whose title, summary or page text hold the words,
//! best first, each with a snippet whose matched words are marked. `ders` finds `dərs`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{Visitor, layout, page_response, search_form};
use crate::http::{AppState, HttpError};
use crate::service::{SearchQuery, SnippetPart};
use crate::ui::{Lang, Text, grade_label, human_size};

/// Results on one page: enough to find a lesson, few enough to stay light on a phone.
const PAGE_RESULTS: usize = 20;

/// Longest query taken, in characters: a search box, not a document.
const MAX_QUERY_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    language: Option<String>,
}

pub async fn search(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(params): Query<SearchParams>,
) -> Result<Response, HttpError> {
    let lang = visitor.lang;
    let words: String = params.q.trim().chars().take(MAX_QUERY_CHARS).collect();
    let language = params.language.filter(|l| !l.trim().is_empty());
    let query = SearchQuery {
        text: words.clone(),
        language: language.clone(),
        limit: PAGE_RESULTS,
    };
    let hits = state.blocking(move |lib| lib.search(&query)).await?;
    let title = if words.is_empty() {
        lang.t(Text::SearchLabel).to_owned()
    } else {
        lang.fill(Text::SearchResults, &[&words])
    };
    let only = language
        .as_deref()
        .map(|code| Lang::from_tag(code).map_or_else(|| code.to_owned(), |l| l.native_name().to_owned()));
    let body = html! {
        h1 { (title) }
        (search_form(lang, &words, language.as_deref()))
        @if let Some(only) = &only {
            p { (only) ": " a href={ "/search?q=" (super::browse::enc(&words)) } { (lang.t(Text::AllLanguages)) } }
        }
        @if words.is_empty() {
            p { (lang.t(Text::SearchHint)) }
        } @else if hits.is_empty() {
            p role="status" { (lang.t(Text::SearchNothing)) }
            p { (lang.t(Text::SearchHint)) }
        } @else {
            ul .list {
                @for hit in &hits {
                    @let m = &hit.lesson.meta;
                    li {
                        a .item href={ "/card/" (m.id) } lang=(m.language) {
                            (m.title)
                            @if !hit.snippet.is_empty() {
                                small { (snippet(&hit.snippet)) }
                            }
                            small lang=(lang.code()) {
                                (grade_label(lang, m.grade)) " · " (m.subject) " · " (human_size(hit.lesson.size))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page_response(&visitor, StatusCode::OK, layout(lang, &title, &[], body)))
}

/// A snippet with its matched words in `<mark>`.
fn snippet(parts: &[SnippetPart]) -> maud::Markup {
    html! {
        @for part in parts {
            @if part.hit { mark { (part.text) } } @else { (part.text) }
        }
    }
}
