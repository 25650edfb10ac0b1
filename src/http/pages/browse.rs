//! `GET /browse?language=&grade=&subject=`: a language's grades, a grade's subjects, then a
//! subject's lessons, with checkboxes to save several as one file (a plain GET form).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Crumb, Visitor, layout, message_page, page_response};
use crate::http::{AppState, HttpError};
use crate::lesson::MAX_GRADE;
use crate::store::{LessonFilter, LessonRow};
use crate::ui::{Lang, Text, grade_label, human_size, lesson_count};

#[derive(Debug, Deserialize)]
pub struct BrowseQuery {
    language: Option<String>,
    grade: Option<String>,
    subject: Option<String>,
}

/// A URL query value, percent-encoded.
pub fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The link to a shelf: a language, maybe a grade, maybe a subject.
pub fn shelf_href(language: &str, grade: Option<u8>, subject: Option<&str>) -> String {
    let mut href = format!("/browse?language={}", enc(language));
    if let Some(grade) = grade {
        href.push_str(&format!("&grade={grade}"));
    }
    if let Some(subject) = subject {
        href.push_str(&format!("&subject={}", enc(subject)));
    }
    href
}

/// The breadcrumbs down to a shelf.
pub fn shelf_crumbs(lang: Lang, language: &str, grade: Option<u8>, subject: Option<&str>) -> Vec<Crumb> {
    let ui_lang = lang;
    let content_lang = Lang::from_tag(language).unwrap_or(ui_lang);
    let mut crumbs = vec![Crumb {
        label: content_lang.native_name().to_owned(),
        href: shelf_href(language, None, None),
    }];
    if let Some(grade) = grade {
        crumbs.push(Crumb {
            label: grade_label(ui_lang, grade),
            href: shelf_href(language, Some(grade), None),
        });
        if let Some(subject) = subject {
            crumbs.push(Crumb {
                label: subject.to_owned(),
                href: shelf_href(language, Some(grade), Some(subject)),
            });
        }
    }
    crumbs
}

pub async fn browse(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<BrowseQuery>,
) -> Result<Response, HttpError> {
    let lang = visitor.lang;
    let language = query
        .language
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| lang.code().to_owned());
    let grade = match query.grade.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        None => None,
        Some(text) => match text.parse::<u8>().ok().filter(|g| *g <= MAX_GRADE) {
            Some(g) => Some(g),
            None => {
                let why = format!("grade: 0-{MAX_GRADE}");
                return Ok(message_page(
                    &visitor,
                    StatusCode::BAD_REQUEST,
                    Text::BadRequestTitle,
                    &why,
                ));
            }
        },
    };
    let subject = query.subject.filter(|s| !s.trim().is_empty());
    match (grade, subject) {
        (Some(grade), Some(subject)) => {
            let filter = LessonFilter {
                language: Some(language.clone()),
                grade: Some(grade),
                subject: Some(subject.clone()),
            };
            let lessons = state.blocking(move |lib| lib.lessons(&filter)).await?;
            let title = format!("{subject} · {}", grade_label(lang, grade));
            let crumbs = shelf_crumbs(lang, &language, Some(grade), Some(&subject));
            let body = lesson_list(lang, &title, &language, grade, &subject, &lessons);
            Ok(page_response(
                &visitor,
                StatusCode::OK,
                layout(lang, &title, &crumbs, body),
            ))
        }
        (grade, _) => {
            let shelves = state.blocking(|lib| lib.shelves()).await?;
            let shelves: Vec<_> = shelves.into_iter().filter(|s| s.language == language).collect();
            let content_lang = Lang::from_tag(&language);
            let name = content_lang.map_or(language.clone(), |l| l.native_name().to_owned());
            let title = match grade {
                Some(g) => format!("{} · {name}", grade_label(lang, g)),
                None => lang.fill(Text::LessonsIn, &[&name]),
            };
            let crumbs = shelf_crumbs(lang, &language, grade, None);
            let body = match grade {
                Some(g) => {
                    let subjects: Vec<(String, u64)> = shelves
                        .iter()
                        .filter(|s| s.grade == g)
                        .map(|s| (s.subject.clone(), s.lessons))
                        .collect();
                    html! {
                        h1 { (title) }
                        h2 { (lang.t(Text::ChooseSubject)) }
                        @if subjects.is_empty() { p { (lang.t(Text::NoLessons)) } }
                        ul .tiles {
                            @for (subject, count) in &subjects {
                                li { a href=(shelf_href(&language, Some(g), Some(subject))) lang=(language) {
                                    (subject) small lang=(lang.code()) { (lesson_count(lang, *count as usize)) }
                                } }
                            }
                        }
                    }
                }
                None => {
                    let mut grades: BTreeMap<u8, u64> = BTreeMap::new();
                    for s in &shelves {
                        *grades.entry(s.grade).or_default() += s.lessons;
                    }
                    html! {
                        h1 { (title) }
                        h2 { (lang.t(Text::ChooseGrade)) }
                        @if grades.is_empty() { p { (lang.t(Text::NoLessons)) } }
                        ul .tiles {
                            @for (g, count) in &grades {
                                li { a href=(shelf_href(&language, Some(*g), None)) {
                                    (grade_label(lang, *g)) small { (lesson_count(lang, *count as usize)) }
                                } }
                            }
                        }
                    }
                }
            };
            Ok(page_response(
                &visitor,
                StatusCode::OK,
                layout(lang, &title, &crumbs, body),
            ))
        }
    }
}

/// A subject's lessons: each opens its card; ticked ones (or all) go into one saved file.
fn lesson_list(lang: Lang, title: &str, language: &str, grade: u8, subject: &str, lessons: &[LessonRow]) -> Markup {
    let total: u64 = lessons.iter().map(|l| l.size).sum();
    html! {
        h1 { (title) }
        @if lessons.is_empty() { p { (lang.t(Text::NoLessons)) } }
        @else {
            p { a .btn.alt href={ "/packs?language=" (enc(language)) "&grade=" (grade) "&subject=" (enc(subject)) } {
                (lang.fill(Text::PackAll, &[&lessons.len().to_string()])) small { (lang.t(Text::Size)) ": " (human_size(total)) }
            } }
            form action="/packs" method="get" {
                p { (lang.t(Text::PickLessons)) }
                ul .list {
                    @for lesson in lessons {
                        @let m = &lesson.meta;
                        li {
                            a .item href={ "/card/" (m.id) } lang=(m.language) #{ "t-" (m.id) } {
                                (m.title)
                                @if !m.summary.is_empty() { small { (m.summary) } }
                                small lang=(lang.code()) { (lang.t(Text::Size)) ": " (human_size(lesson.size)) }
                            }
                            label .pick {
                                input type="checkbox" name="lesson" value=(m.id) aria-describedby={ "t-" (m.id) };
                                (lang.t(Text::PickThis))
                            }
                        }
                    }
                }
                button .btn type="submit" { (lang.t(Text::PackChosen)) }
            }
        }
    }
}
