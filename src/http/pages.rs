//! Server-rendered pages: the plain home page listing lessons, and the small 404 page.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::{AppState, HttpError};
use crate::store::{LessonFilter, LessonRow};

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:40rem;padding:0 1rem;color:#1a1a1a}\
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:2px solid #0b5;}h3{font-size:1.1rem;margin-bottom:.2rem}\
ul{padding:0;list-style:none}li a{display:block;padding:.7rem .5rem;margin:.3rem 0;background:#f2f5f3;\
border-radius:.4rem;color:#063;text-decoration:none;font-weight:600}li small{display:block;color:#333;font-weight:400}";

fn language_name(code: &str) -> &str {
    match code {
        "az" => "Azərbaycanca",
        "ru" => "Русский",
        "en" => "English",
        other => other,
    }
}

fn grade_label(language: &str, grade: u8) -> String {
    match (language, grade) {
        ("az", 0) => "Sinifsiz".to_owned(),
        ("ru", 0) => "Без класса".to_owned(),
        (_, 0) => "Any grade".to_owned(),
        ("az", g) => format!("{g}-{} sinif", az_ordinal_suffix(g)),
        ("ru", g) => format!("{g} класс"),
        (_, g) => format!("Grade {g}"),
    }
}

/// The Azerbaijani ordinal suffix follows the number's last sound (vowel harmony):
/// 1-ci, 2-ci, 3-cü, 4-cü, 5-ci, 6-cı, 7-ci, 8-ci, 9-cu, 10-cu, 11-ci.
fn az_ordinal_suffix(n: u8) -> &'static str {
    match n % 10 {
        3 | 4 => "cü",
        6 => "cı",
        9 => "cu",
        0 => "cu",
        _ => "ci",
    }
}

fn page(title: &str, lang: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

/// `GET /`: every lesson, by language, grade and subject.
pub async fn home(State(state): State<AppState>) -> Result<Response, HttpError> {
    let lessons = state.blocking(|lib| lib.lessons(&LessonFilter::default())).await?;
    let mut tree: BTreeMap<&str, BTreeMap<u8, BTreeMap<&str, Vec<&LessonRow>>>> = BTreeMap::new();
    for lesson in &lessons {
        let m = &lesson.meta;
        tree.entry(m.language.as_str())
            .or_default()
            .entry(m.grade)
            .or_default()
            .entry(m.subject.as_str())
            .or_default()
            .push(lesson);
    }
    // Azerbaijani first, then Russian, English, and any others.
    let rank = |l: &str| ["az", "ru", "en"].iter().position(|x| *x == l).unwrap_or(3);
    let mut languages: Vec<_> = tree.into_iter().collect();
    languages.sort_by_key(|(l, _)| (rank(l), *l));
    let body = html! {
        header { h1 { "dars — Dərslər · Уроки · Lessons" } }
        main {
            @if languages.is_empty() {
                p { "Hələ dərs yoxdur. · Уроков пока нет. · No lessons yet." }
            }
            @for (language, grades) in &languages {
                section lang=(language) {
                    h2 { (language_name(language)) }
                    @for (grade, subjects) in grades {
                        @for (subject, list) in subjects {
                            h3 { (grade_label(language, *grade)) " · " (subject) }
                            ul {
                                @for lesson in list {
                                    li { a href={ "/lessons/" (lesson.meta.id) "/" } {
                                        (lesson.meta.title)
                                        @if !lesson.meta.summary.is_empty() { small { (lesson.meta.summary) } }
                                    } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let markup = page("dars", "az", body);
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        markup.into_string(),
    )
        .into_response())
}

/// The small page for anything that is not there.
pub fn not_found_page() -> Response {
    let body = html! {
        main {
            h1 { "Tapılmadı · Не найдено · Not found" }
            p lang="az" { "Bu səhifə yoxdur." }
            p lang="ru" { "Такой страницы нет." }
            p lang="en" { "There is no such page." }
            p { a href="/" { "Dərslər · Уроки · Lessons" } }
        }
    };
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page("404", "az", body).into_string(),
    )
        .into_response()
}

/// What a phone sees when the server (or its own share of it) is busy: a 503 with
/// `Retry-After`, in the three languages.
pub const BUSY_TEXT: &str = "Server məşğuldur, bir az sonra yenidən cəhd edin.\nСервер занят, повторите чуть позже.\nThe server is busy; try again in a moment.\n";

/// Fallback route.
pub async fn not_found() -> Response {
    not_found_page()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azerbaijani_grades_follow_vowel_harmony() {
        let labels: Vec<String> = (1..=11).map(|g| grade_label("az", g)).collect();
        assert_eq!(
            labels,
            [
                "1-ci sinif",
                "2-ci sinif",
                "3-cü sinif",
                "4-cü sinif",
                "5-ci sinif",
                "6-cı sinif",
                "7-ci sinif",
                "8-ci sinif",
                "9-cu sinif",
                "10-cu sinif",
                "11-ci sinif"
            ]
        );
        assert_eq!(grade_label("ru", 4), "4 класс");
    }
}
