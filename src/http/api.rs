//! The JSON API (`/api/v1/...`) and the health check.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, HttpError};
use crate::lesson::{MAX_GRADE, valid_id};
use crate::service::{MAX_RESULTS, SearchQuery};
use crate::store::LessonFilter;

/// Query of `/api/v1/lessons`; grade is taken as text so a bad one gets a clear 400.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    language: Option<String>,
    grade: Option<String>,
    subject: Option<String>,
}

impl ListQuery {
    pub fn filter(self) -> Result<LessonFilter, HttpError> {
        let grade = match self.grade.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
            None => None,
            Some(text) => Some(
                text.parse::<u8>()
                    .ok()
                    .filter(|g| *g <= MAX_GRADE)
                    .ok_or_else(|| HttpError::BadRequest(format!("grade must be a number from 0 to {MAX_GRADE}")))?,
            ),
        };
        let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(LessonFilter {
            language: nonempty(self.language),
            grade,
            subject: nonempty(self.subject),
        })
    }
}

fn no_cache(json: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Json(json)).into_response()
}

/// `GET /api/v1/lessons?language=&grade=&subject=`
pub async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Response, HttpError> {
    let filter = query.filter()?;
    let lessons = state.blocking(move |lib| lib.lessons(&filter)).await?;
    let lessons: Vec<_> = lessons
        .into_iter()
        .map(|l| {
            let url = format!("/lessons/{}/", l.meta.id);
            let mut value = serde_json::to_value(&l).unwrap_or_default();
            value["url"] = json!(url);
            value
        })
        .collect();
    Ok(no_cache(json!({ "count": lessons.len(), "lessons": lessons })))
}

/// `GET /api/v1/lessons/{id}`
pub async fn detail(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, HttpError> {
    if !valid_id(&id) {
        return Ok(json_not_found());
    }
    match state.blocking(move |lib| lib.lesson(&id)).await {
        Ok(detail) => {
            let mut value = serde_json::to_value(&detail).unwrap_or_default();
            value["url"] = json!(format!("/lessons/{}/", detail.lesson.meta.id));
            if let Some(files) = value.get_mut("file_list") {
                let files = files.take();
                value["files"] = files;
                if let Some(map) = value.as_object_mut() {
                    map.remove("file_list");
                }
            }
            Ok(no_cache(value))
        }
        Err(HttpError::NotFound) => Ok(json_not_found()),
        Err(e) => Err(e),
    }
}

/// Query of `/api/v1/search`; limit is taken as text so a bad one gets a clear 400.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    language: Option<String>,
    limit: Option<String>,
}

/// Results when the query names no limit.
const DEFAULT_RESULTS: usize = 20;

/// `GET /api/v1/search?q=&language=&limit=`: lessons best first, each with a snippet whose
/// parts mark the matched words. Any text is a valid query; an empty one finds nothing.
pub async fn search(State(state): State<AppState>, Query(params): Query<SearchParams>) -> Result<Response, HttpError> {
    let limit = match params.limit.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        None => DEFAULT_RESULTS,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(MAX_RESULTS))
            .ok_or_else(|| HttpError::BadRequest(format!("limit must be a number from 1 to {MAX_RESULTS}")))?,
    };
    let query = SearchQuery {
        text: params.q.unwrap_or_default(),
        language: params.language,
        limit,
    };
    let hits = state.blocking(move |lib| lib.search(&query)).await?;
    let results: Vec<_> = hits
        .into_iter()
        .map(|hit| {
            let meta = &hit.lesson.meta;
            json!({
                "id": meta.id,
                "title": meta.title,
                "language": meta.language,
                "grade": meta.grade,
                "subject": meta.subject,
                "summary": meta.summary,
                "url": format!("/lessons/{}/", meta.id),
                "snippet": hit.snippet,
                "score": hit.score,
            })
        })
        .collect();
    Ok(no_cache(json!({ "count": results.len(), "results": results })))
}

fn json_not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": "no such lesson" }))).into_response()
}

/// `GET /healthz`: 200 with the lesson count when the store answers, 503 otherwise.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.blocking(|lib| lib.count_lessons()).await {
        Ok(lessons) => no_cache(json!({ "status": "ok", "lessons": lessons, "version": env!("CARGO_PKG_VERSION") })),
        Err(e) => {
            tracing::error!("health check failed: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}
