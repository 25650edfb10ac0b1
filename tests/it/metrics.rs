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

/// Serves the files of `root` over plain HTTP/1.1, holding back the first blob until `release`
/// says so, so a sync can be watched while it runs.
fn stalling_file_server(root: std::path::PathBuf, release: std::sync::mpsc::Receiver<()>) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = first
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_owned();
            if path.starts_with("blobs/") && !held {
                held = true;
                let _ = release.recv();
            }
            let response = match std::fs::read(root.join(&path)) {
                Ok(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_sync_and_its_result_show() {
    use dars::keys::SecretKey;
    use dars::service::package::{DictionaryChoice, ImportPackageOptions, PublishOptions, publish};
    use dars::service::sync::SyncOptions;
    use dars::service::{Progress, scan_folder};

    let work = tempfile::tempdir().expect("work");
    let src = work.path().join("src");
    let film = crate::common::pseudo_random_bytes(300_000, 7);
    crate::common::write_lesson(
        &src,
        "film-lesson",
        &[("index.html", b"<h1>Film</h1>"), ("film.bin", &film)],
    );
    let secret = SecretKey::generate().expect("key");
    let public = secret.public();
    let mut opts = PublishOptions::new(secret);
    opts.seq = Some(1);
    opts.dictionary = DictionaryChoice::Never;
    let pkg = work.path().join("pkg");
    publish(scan_folder(&src).expect("scan"), &pkg, &opts, &Progress::new()).expect("publish");
    let (release, hold) = std::sync::mpsc::channel();
    let mirror = stalling_file_server(pkg, hold);
    let url = format!("http://{mirror}/");

    let server = TestServer::start(|_| {}).await;
    let library = server.library.clone();
    let upstream = url.clone();
    let sync = std::thread::spawn(move || {
        let opts = SyncOptions {
            package: ImportPackageOptions {
                trusted: vec![public],
                allow_downgrade: false,
            },
            ..SyncOptions::default()
        };
        library.sync_and_record(&upstream, &opts, &Progress::new())
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let running = loop {
        // Running first shows with no total while the manifests are fetched; the total comes
        // before the first blob, which the mirror holds back.
        let text = scrape(&server).await;
        let now = samples(&text);
        if get(&now, "dars_import_running{kind=\"sync\"}") == 1.0 && get(&now, "dars_import_total_bytes") > 0.0 {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never showed as running:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(get(&running, "dars_import_running{kind=\"import\"}"), 0.0);
    let total = get(&running, "dars_import_total_bytes");
    assert!(total >= film.len() as f64, "total {total}");
    assert!(get(&running, "dars_import_done_bytes") < total);
    assert_eq!(get(&running, "dars_lessons"), 0.0);
    release.send(()).expect("release");
    let report = tokio::task::spawn_blocking(move || sync.join().expect("sync thread"))
        .await
        .expect("join");
    report.expect("sync");

    let after = samples(&scrape(&server).await);
    assert_eq!(get(&after, "dars_import_running{kind=\"sync\"}"), 0.0);
    assert_eq!(get(&after, "dars_import_total_bytes"), 0.0);
    assert_eq!(get(&after, "dars_lessons"), 1.0);
    assert_eq!(
        get(&after, &format!("dars_sync_last_success{{upstream=\"{url}\"}}")),
        1.0
    );
    let finished = get(
        &after,
        &format!("dars_sync_last_finished_timestamp_seconds{{upstream=\"{url}\"}}"),
    );
    assert!(finished > 1.7e9, "{finished}");
    server.stop().await;
}
