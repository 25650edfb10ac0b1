//! The usage page, for teachers and technicians: views and offline saves per day over the
//! last 30 days and per lesson over 30 and 90 days, drawn on the server (no script). Only
//! the counts the service keeps are shown: (day, lesson, kind, count), nothing about anyone.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::auth::Admin;
use super::i18n::S;
use super::layout::{self, send};
use crate::http::charts::{self, UsageTitles};
use crate::http::{AppState, HttpError};
use crate::service::Role;
use crate::service::report::LessonUsage;
use crate::service::usage::{DayUse, LessonUse, today};

/// What the page shows, read in one go off the async threads.
struct Figures {
    per_day: Vec<DayUse>,
    /// Most used first.
    lessons: Vec<LessonUsage>,
    /// Titles of the lessons in the store, by id.
    titles: HashMap<String, String>,
    /// Titles of the lessons in the store not used in 90 days.
    unused: Vec<String>,
}

/// Uses over 30 days, then over 90: what "most used" means on this page.
fn used(u: &LessonUsage) -> (u64, u64) {
    (u.views_30d + u.offline_saves_30d, u.views_90d + u.offline_saves_90d)
}

fn figures(lib: &crate::service::Library) -> Result<Figures, crate::service::ServiceError> {
    // Counts are written to the store once a minute; write them now so the page (and anyone
    // reading the store) has what just happened. The figures below include pending counts
    // anyway, so a failed write costs nothing here: it is tried again within the minute.
    if let Err(e) = lib.flush_usage() {
        tracing::warn!("could not write usage figures (will try again): {e}");
    }
    let day = today();
    let per_day = lib.usage_per_day(day - 29, day)?;
    let mut lessons = lib.lesson_usage(day)?;
    lessons.sort_by(|a, b| used(b).cmp(&used(a)).then_with(|| a.lesson.cmp(&b.lesson)));
    let all = lib.all_lessons()?;
    let unused = all
        .iter()
        .filter(|l| !lessons.iter().any(|u| u.lesson == l.row.meta.id))
        .map(|l| l.row.meta.title.clone())
        .collect();
    let titles = all.into_iter().map(|l| (l.row.meta.id, l.row.meta.title)).collect();
    Ok(Figures {
        per_day,
        lessons,
        titles,
        unused,
    })
}

/// `GET /admin/usage`.
pub async fn page(State(state): State<AppState>, admin: Admin) -> Result<Response, HttpError> {
    admin.require(Role::Teacher)?;
    let figures = state.blocking(figures).await?;
    let lang = admin.lang;
    let title_of = |id: &str| figures.titles.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let last_30: Vec<LessonUse> = figures
        .lessons
        .iter()
        .map(|u| LessonUse {
            lesson: u.lesson.clone(),
            views: u.views_30d,
            offline_saves: u.offline_saves_30d,
        })
        .collect();
    let titles = UsageTitles {
        views_per_day: lang.t(S::views_per_day),
        saves_per_day: lang.t(S::saves_per_day),
        views_per_lesson: lang.t(S::most_viewed),
        saves_per_lesson: lang.t(S::most_saved),
    };
    let body = html! {
        p.muted { (lang.t(S::usage_note)) }
        section.card { (charts::usage(&figures.per_day, &last_30, title_of, &titles)) }
        h2 { (lang.t(S::lessons)) }
        @if figures.lessons.is_empty() { p { (lang.t(S::no_usage)) } }
        @else {
            table #usage {
                thead { tr {
                    th scope="col" { (lang.t(S::lesson)) }
                    th scope="col" { (lang.t(S::views_30)) } th scope="col" { (lang.t(S::saves_30)) }
                    th scope="col" { (lang.t(S::views_90)) } th scope="col" { (lang.t(S::saves_90)) }
                } }
                tbody { @for u in &figures.lessons {
                    tr data-lesson=(u.lesson) {
                        th scope="row" {
                            @match figures.titles.get(&u.lesson) {
                                Some(title) => { (title) " " small.muted { code { (u.lesson) } } },
                                None => { code { (u.lesson) } " " small.muted { "(" (lang.t(S::deleted_lesson)) ")" } },
                            }
                        }
                        td.views30 { (u.views_30d) } td.saves30 { (u.offline_saves_30d) }
                        td.views90 { (u.views_90d) } td.saves90 { (u.offline_saves_90d) }
                    }
                } }
            }
        }
        @if !figures.unused.is_empty() {
            details {
                summary { (lang.t(S::unused_lessons)) ": " (figures.unused.len()) }
                ul { @for title in &figures.unused { li { (title) } } }
            }
        }
    };
    Ok(send(
        StatusCode::OK,
        layout::page(Some(&admin), lang, lang.t(S::usage), body),
    ))
}
