//! `/metrics`: counters that move with real requests, by route pattern (never the raw URL),
//! and output that Prometheus's own `promtool check metrics` accepts.
//!
//! promtool comes with Debian's `prometheus` package; without it the promtool check is
//! skipped, unless `DARS_REQUIRE_TOOLS=1` (CI) makes that a failure.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{TestServer, client};

/// Every sample line as `name{labels}` -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l:?}"));
            (
                key.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

async fn scrape(server: &TestServer) -> String {
    let response = client().get(server.url("/metrics")).send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.expect("text")
}

fn get(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_with_requests() {
    let server = TestServer::with_samples().await;
    let http = client();
    let before = samples(&scrape(&server).await);
    let lessons = server.library.count_lessons().expect("count");
    assert_eq!(get(&before, "dars_lessons"), lessons as f64);
    assert!(get(&before, "dars_store_size_bytes") > 0.0);
    assert_eq!(get(&before, "dars_import_running{kind=\"import\"}"), 0.0);

    let id = server.library.lessons(&Default::default()).expect("lessons")[0]
        .meta
        .id
        .clone();
    let page = http
        .get(server.url(&format!("/lessons/{id}/")))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("entry");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-encoding"], "gzip");
    let gzip_bytes = page.bytes().await.expect("body").len() as f64;
    let missing = http
        .get(server.url("/lessons/no-such-lesson/"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let nowhere = http.get(server.url("/no/such/page")).send().await.expect("fallback");
    assert_eq!(nowhere.status(), 404);
    let head = http
        .head(server.url(&format!("/lessons/{id}/")))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);

    let text = scrape(&server).await;
    let after = samples(&text);
    let moved = |key: &str| get(&after, key) - get(&before, key);
    assert_eq!(
        moved("dars_http_requests_total{route=\"/lessons/{id}/\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        moved("dars_http_requests_total{route=\"/lessons/{id}/\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        moved("dars_http_requests_total{route=\"unmatched\",status=\"404\"}"),
        1.0
    );
    // The first scrape is counted by the time of the second.
    assert_eq!(
        get(&after, "dars_http_requests_total{route=\"/metrics\",status=\"200\"}"),
        1.0
    );
    // HEAD sends no body, so the gzip bytes are the one page's.
    assert_eq!(moved("dars_http_response_bytes_total{encoding=\"gzip\"}"), gzip_bytes);
    assert_eq!(
        moved("dars_http_request_duration_seconds_count{route=\"/lessons/{id}/\"}"),
        3.0
    );
    assert_eq!(
        moved("dars_http_request_duration_seconds_bucket{route=\"/lessons/{id}/\",le=\"+Inf\"}"),
        3.0
    );
    // Routes are patterns: neither the lesson's id nor the unmatched path shows.
    assert!(!text.contains(&id), "{text}");
    assert!(!text.contains("no-such"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn promtool_accepts_the_output() {
    let server = TestServer::with_samples().await;
    let http = client();
    for path in ["/", "/lessons/no-such/", "/healthz", "/api/v1/lessons"] {
        http.get(server.url(path)).send().await.expect("get");
    }
    let text = scrape(&server).await;
    server.stop().await;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let required = std::env::var("DARS_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
            assert!(!required, "DARS_REQUIRE_TOOLS=1 but promtool cannot run: {e}");
            eprintln!("skipped: promtool cannot run ({e}); install Debian's prometheus package");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics complained ({}):\n{}{}\n--- output was:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
