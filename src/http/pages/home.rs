//! `GET /`: choose a language, then a grade; search; the current profile's lessons. Lists
//! grades, never lessons, so it stays small however many lessons there are.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::{Profiles, Visitor, layout_with, page_response, search_form};
use crate::http::{AppState, HttpError};
use crate::ui::{Lang, Text, grade_label, lesson_count};

pub async fn home(State(state): State<AppState>, visitor: Visitor) -> Result<Response, HttpError> {
    let shelves = state.blocking(|lib| lib.shelves()).await?;
    let lang = visitor.lang;
    // Lessons per grade in the page's language; lessons per other language.
    let mut grades: BTreeMap<u8, u64> = BTreeMap::new();
    let mut others: BTreeMap<String, u64> = BTreeMap::new();
    for shelf in &shelves {
        if shelf.language == lang.code() {
            *grades.entry(shelf.grade).or_default() += shelf.lessons;
        } else {
            *others.entry(shelf.language.clone()).or_default() += shelf.lessons;
        }
    }
    let mut others: Vec<(String, u64)> = others.into_iter().collect();
    let rank = |code: &str| Lang::from_tag(code).map_or(9, |l| l as usize);
    others.sort_by_key(|(code, _)| (rank(code), code.clone()));
    let body = html! {
        h1 { (lang.t(Text::SiteTitle)) }
        nav aria-label=(lang.t(Text::ChooseLanguage)) {
            ul .langs {
                @for l in Lang::ALL {
                    li { a href={ "/?lang=" (l.code()) } lang=(l.code()) hreflang=(l.code())
                        aria-current=[(l == lang).then_some("page")] { (l.native_name()) } }
                }
            }
        }
        (search_form(lang, "", None))
        section #mine hidden aria-labelledby="mine-h" {
            h2 #mine-h { (lang.t(Text::MyLessons)) }
            p #mine-empty { (lang.t(Text::MyLessonsEmpty)) }
            ul #mine-list .list {}
        }
        section aria-labelledby="grades-h" {
            h2 #grades-h { (lang.t(Text::ChooseGrade)) }
            @if grades.is_empty() {
                p { (lang.t(Text::NoLessons)) }
            }
            ul .tiles {
                @for (grade, count) in &grades {
                    li { a href={ "/browse?language=" (lang.code()) "&grade=" (grade) } {
                        (grade_label(lang, *grade))
                        small { (lesson_count(lang, *count as usize)) }
                    } }
                }
            }
        }
        @if !others.is_empty() {
            section aria-labelledby="others-h" {
                h2 #others-h { (lang.t(Text::OtherLanguages)) }
                ul .tiles {
                    @for (code, count) in &others {
                        li { a href={ "/browse?language=" (code) } lang=(code) {
                            (Lang::from_tag(code).map_or_else(|| code.clone(), |l| l.native_name().to_owned()))
                            small lang=(lang.code()) { (lesson_count(lang, *count as usize)) }
                        } }
                    }
                }
            }
        }
    };
    Ok(page_response(
        &visitor,
        StatusCode::OK,
        layout_with(lang, lang.t(Text::SiteTitle), &[], body, Profiles::First),
    ))
}
