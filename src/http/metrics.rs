//! Monitoring: a middleware that counts every request by route (the matched path pattern,
//! never the raw URL) and status, response bytes by content encoding and a latency histogram,
//! and `GET /metrics`, which shows them with the store's figures in the Prometheus text format
//! (version 0.0.4).
//!
//! The text is written here rather than through a metrics crate: the families are few and
//! fixed, each server keeps its own counters (a process-wide recorder would mix the several
//! servers the tests run in one process), and the format is small and checked by promtool.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppState, HttpError};
use crate::service::Figures;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];
/// Content encodings counted apart; anything else counts as "other".
const ENCODINGS: [&str; 4] = ["identity", "gzip", "zstd", "other"];

#[derive(Debug, Default)]
struct RouteStats {
    /// (status, requests); a route answers with few statuses, so a short list beats a map.
    statuses: Vec<(u16, u64)>,
    /// Requests at or under each bucket's bound (not yet cumulative).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_secs: f64,
}

#[derive(Debug, Default)]
struct Counters {
    routes: HashMap<String, RouteStats>,
    bytes: [u64; ENCODINGS.len()],
}

/// The request counters of one server. A `std::sync::Mutex` is right: it is held for a few
/// additions per request, never across an await.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Counters>);

impl Metrics {
    fn record(&self, route: &str, status: u16, encoding: usize, bytes: u64, secs: f64) {
        let mut c = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        c.bytes[encoding] += bytes;
        // Look up by &str so a known route costs no allocation.
        let stats = match c.routes.get_mut(route) {
            Some(stats) => stats,
            None => c.routes.entry(route.to_owned()).or_default(),
        };
        match stats.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => stats.statuses.push((status, 1)),
        }
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            stats.buckets[i] += 1;
        }
        stats.count += 1;
        stats.sum_secs += secs;
    }
}

fn encoding_index(response: &Response) -> usize {
    match response
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(HeaderValue::as_bytes)
    {
        None => 0,
        Some(b"gzip") => 1,
        Some(b"zstd") => 2,
        Some(_) => 3,
    }
}

/// The body bytes a response sends: known exactly for whole bodies, from Content-Length for
/// streamed ones, none for HEAD.
fn body_bytes(method: &Method, response: &Response) -> u64 {
    if method == Method::HEAD {
        return 0;
    }
    response.body().size_hint().exact().unwrap_or_else(|| {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0)
    })
}

/// The middleware: counts the request and logs it at debug level. The time is to the
/// response's headers; a large body may stream for longer.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let secs = started.elapsed().as_secs_f64();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status().as_u16();
    let bytes = body_bytes(&method, &response);
    let encoding = encoding_index(&response);
    state.metrics().record(route, status, encoding, bytes, secs);
    tracing::debug!(
        route,
        method = method.as_str(),
        status,
        bytes,
        encoding = ENCODINGS[encoding],
        latency_ms = secs * 1000.0,
        "request"
    );
    response
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, HttpError> {
    let figures = state.blocking(|lib| lib.figures()).await?;
    let text = render(state.metrics(), &figures);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

/// A label value with `\`, `"` and newlines escaped as the format requires.
fn label(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The whole exposition.
pub fn render(metrics: &Metrics, figures: &Figures) -> String {
    let mut out = String::with_capacity(4096);
    {
        let c = metrics.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut routes: Vec<(&String, &RouteStats)> = c.routes.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        family(
            &mut out,
            "dars_http_requests_total",
            "counter",
            "HTTP requests answered, by route pattern and status.",
        );
        for (route, stats) in &routes {
            let mut statuses = stats.statuses.clone();
            statuses.sort_unstable();
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "dars_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    label(route)
                );
            }
        }
        family(
            &mut out,
            "dars_http_response_bytes_total",
            "counter",
            "Response body bytes sent, by content encoding.",
        );
        for (name, bytes) in ENCODINGS.iter().zip(c.bytes) {
            let _ = writeln!(out, "dars_http_response_bytes_total{{encoding=\"{name}\"}} {bytes}");
        }
        family(
            &mut out,
            "dars_http_request_duration_seconds",
            "histogram",
            "Time from a request to its response's headers, by route pattern.",
        );
        for (route, stats) in &routes {
            let route = label(route);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(stats.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "dars_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "dars_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                stats.count
            );
            let _ = writeln!(
                out,
                "dars_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                stats.sum_secs
            );
            let _ = writeln!(
                out,
                "dars_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                stats.count
            );
        }
    }
    family(&mut out, "dars_lessons", "gauge", "Lessons visible to phones.");
    let _ = writeln!(out, "dars_lessons {}", figures.lessons);
    family(
        &mut out,
        "dars_store_size_bytes",
        "gauge",
        "Size of the store on disk (database and write-ahead log).",
    );
    let _ = writeln!(out, "dars_store_size_bytes {}", figures.store_bytes);
    family(
        &mut out,
        "dars_sync_last_finished_timestamp_seconds",
        "gauge",
        "When the last scheduled sync from each upstream finished (Unix time).",
    );
    for sync in &figures.syncs {
        let _ = writeln!(
            out,
            "dars_sync_last_finished_timestamp_seconds{{upstream=\"{}\"}} {}",
            label(&sync.url),
            sync.finished_at
        );
    }
    family(
        &mut out,
        "dars_sync_last_success",
        "gauge",
        "1 if the last sync from each upstream succeeded, else 0.",
    );
    for sync in &figures.syncs {
        let _ = writeln!(
            out,
            "dars_sync_last_success{{upstream=\"{}\"}} {}",
            label(&sync.url),
            u8::from(sync.ok)
        );
    }
    let (kind, snap) = figures.work.clone().unwrap_or_default();
    family(
        &mut out,
        "dars_import_running",
        "gauge",
        "1 while this server runs an import or sync, by kind.",
    );
    for k in ["import", "sync"] {
        let _ = writeln!(out, "dars_import_running{{kind=\"{k}\"}} {}", u8::from(kind == k));
    }
    family(
        &mut out,
        "dars_import_done_bytes",
        "gauge",
        "Bytes done of the running import or sync (0 when none runs).",
    );
    let _ = writeln!(out, "dars_import_done_bytes {}", snap.done_bytes);
    family(
        &mut out,
        "dars_import_total_bytes",
        "gauge",
        "Bytes in all of the running import or sync (0 when none runs).",
    );
    let _ = writeln!(out, "dars_import_total_bytes {}", snap.total_bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Snapshot;
    use crate::store::SyncResult;

    #[test]
    fn counters_histograms_and_figures_render_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.record("/lessons/{id}/", 200, 1, 1000, 0.0007);
        metrics.record("/lessons/{id}/", 200, 1, 500, 0.02);
        metrics.record("/lessons/{id}/", 304, 0, 0, 20.0);
        let figures = Figures {
            lessons: 16,
            store_bytes: 4096,
            syncs: vec![SyncResult {
                url: "http://mirror/\"x\"".to_owned(),
                finished_at: 1_700_000_000,
                ok: false,
                message: "gone".to_owned(),
            }],
            work: Some((
                "sync",
                Snapshot {
                    total_bytes: 100,
                    done_bytes: 40,
                    ..Snapshot::default()
                },
            )),
        };
        let text = render(&metrics, &figures);
        for line in [
            "dars_http_requests_total{route=\"/lessons/{id}/\",status=\"200\"} 2",
            "dars_http_requests_total{route=\"/lessons/{id}/\",status=\"304\"} 1",
            "dars_http_response_bytes_total{encoding=\"gzip\"} 1500",
            "dars_http_request_duration_seconds_bucket{route=\"/lessons/{id}/\",le=\"0.0005\"} 0",
            "dars_http_request_duration_seconds_bucket{route=\"/lessons/{id}/\",le=\"0.001\"} 1",
            "dars_http_request_duration_seconds_bucket{route=\"/lessons/{id}/\",le=\"0.025\"} 2",
            "dars_http_request_duration_seconds_bucket{route=\"/lessons/{id}/\",le=\"10\"} 2",
            "dars_http_request_duration_seconds_bucket{route=\"/lessons/{id}/\",le=\"+Inf\"} 3",
            "dars_http_request_duration_seconds_count{route=\"/lessons/{id}/\"} 3",
            "dars_lessons 16",
            "dars_store_size_bytes 4096",
            "dars_sync_last_finished_timestamp_seconds{upstream=\"http://mirror/\\\"x\\\"\"} 1700000000",
            "dars_sync_last_success{upstream=\"http://mirror/\\\"x\\\"\"} 0",
            "dars_import_running{kind=\"sync\"} 1",
            "dars_import_running{kind=\"import\"} 0",
            "dars_import_done_bytes 40",
            "dars_import_total_bytes 100",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
