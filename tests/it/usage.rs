//! Usage figures: which requests count as views, counts surviving a flush and a reopen, the
//! periodic flush, and nothing personal in the store.

use std::time::{Duration, Instant};

use dars::service::usage::today;
use dars::service::{Library, UseKind};

use crate::common::{TestServer, client, import, write_lesson};

async fn two_lessons() -> TestServer {
    TestServer::start(|data| {
        let src = tempfile::tempdir().expect("src");
        write_lesson(
            src.path(),
            "water-cycle",
            &[
                ("index.html", b"<h1>Water</h1><img src=img/cloud.png>"),
                ("style.css", b"h1 { color: navy }"),
                ("img/cloud.png", b"\x89PNG cloud"),
            ],
        );
        write_lesson(src.path(), "fractions", &[("index.html", b"<h1>Fractions</h1>")]);
        let deep = write_lesson(src.path(), "deep", &[("pages/start.html", b"<h1>Deep</h1>")]);
        let toml = std::fs::read_to_string(deep.join("lesson.toml")).expect("toml");
        std::fs::write(
            deep.join("lesson.toml"),
            format!("{toml}entry = \"pages/start.html\"\n"),
        )
        .expect("entry");
        import(data, src.path());
    })
    .await
}

/// (lesson, views, offline saves) from a fresh library over the same folder: what another
/// process (or the next start) would read from the store.
fn stored(data: &std::path::Path) -> Vec<(String, u64, u64)> {
    let library = Library::open(data).expect("open");
    library
        .usage_totals(today() - 1, today() + 1)
        .expect("totals")
        .into_iter()
        .map(|u| (u.lesson, u.views, u.offline_saves))
        .collect()
}

#[tokio::test]
async fn views_count_entry_pages_answered_200_or_304_and_nothing_else() {
    let server = two_lessons().await;
    let http = client();
    let get = |path: &str| http.get(server.url(path)).send();
    let first = get("/lessons/water-cycle/").await.expect("get");
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].clone();
    assert_eq!(get("/lessons/water-cycle/").await.expect("get").status(), 200);
    let again = http
        .get(server.url("/lessons/water-cycle/"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(again.status(), 304);
    assert_eq!(get("/lessons/fractions/").await.expect("get").status(), 200);
    // An entry page in a sub-folder is counted at the redirect to it, not where it is served.
    assert_eq!(get("/lessons/deep/").await.expect("get").status(), 307);
    assert_eq!(get("/lessons/deep/pages/start.html").await.expect("get").status(), 200);
    // Not views: the lesson's other files, the entry file by its own path, HEAD, a redirect,
    // unknown lessons, and the home page.
    for (path, status) in [
        ("/lessons/water-cycle/style.css", 200),
        ("/lessons/water-cycle/img/cloud.png", 200),
        ("/lessons/water-cycle/index.html", 200),
        ("/lessons/water-cycle", 308),
        ("/lessons/no-such-lesson/", 404),
        ("/", 200),
    ] {
        assert_eq!(get(path).await.expect("get").status(), status, "{path}");
    }
    let head = http.head(server.url("/lessons/fractions/")).send().await.expect("head");
    assert_eq!(head.status(), 200);

    // Counted in memory: the store has nothing until the flush.
    assert!(stored(server.data.path()).is_empty());
    assert_eq!(server.library.flush_usage().expect("flush"), 3);
    assert_eq!(
        stored(server.data.path()),
        vec![
            ("water-cycle".to_owned(), 3, 0),
            ("deep".to_owned(), 1, 0),
            ("fractions".to_owned(), 1, 0)
        ]
    );
    let days = server.library.usage_by_day(today() - 30, today()).expect("by day");
    assert!(days.iter().all(|d| d.day == today()), "{days:?}");
    server.stop().await;
}

#[test]
fn counts_survive_a_flush_and_a_reopen() {
    let data = tempfile::tempdir().expect("data");
    let library = Library::open(data.path()).expect("open");
    library.record_use("fractions", UseKind::View);
    library.record_use("fractions", UseKind::View);
    library.record_use("fractions", UseKind::OfflineSave);
    assert_eq!(library.flush_usage().expect("flush"), 2);
    // Pending counts are shown with the stored ones.
    library.record_use("fractions", UseKind::View);
    let totals = library.usage_totals(today(), today()).expect("totals");
    assert_eq!((totals[0].views, totals[0].offline_saves), (3, 1));
    // Closing writes what is still pending.
    drop(library);
    assert_eq!(stored(data.path()), vec![("fractions".to_owned(), 3, 1)]);
    let library = Library::open(data.path()).expect("reopen");
    library.record_use("fractions", UseKind::View);
    drop(library);
    assert_eq!(stored(data.path()), vec![("fractions".to_owned(), 4, 1)]);
    let per_day = Library::open(data.path())
        .expect("open")
        .usage_per_day(today() - 2, today())
        .expect("per day");
    assert_eq!(per_day.len(), 3);
    assert_eq!(
        (per_day[0].views, per_day[2].views, per_day[2].offline_saves),
        (0, 4, 1)
    );
}

#[test]
fn the_flusher_writes_counts_while_the_library_stays_open() {
    let data = tempfile::tempdir().expect("data");
    let library = std::sync::Arc::new(Library::open(data.path()).expect("open"));
    Library::start_usage_flusher(&library, Duration::from_millis(50));
    library.record_use("fractions", UseKind::View);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(data.path()).is_empty() {
        assert!(Instant::now() < deadline, "the flusher never wrote the count");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stored(data.path()), vec![("fractions".to_owned(), 1, 0)]);
}

#[tokio::test]
async fn nothing_personal_is_stored() {
    const AGENT: &str = "Mozilla/5.0 (Linux; Android 12; SM-A125F) probe-8d1f2e";
    const FORWARDED: &str = "10.91.82.73";
    let server = two_lessons().await;
    let http = client();
    for _ in 0..3 {
        let response = http
            .get(server.url("/lessons/water-cycle/"))
            .header("user-agent", AGENT)
            .header("x-forwarded-for", FORWARDED)
            .header("cookie", "name=Aygun")
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
    }
    server.library.flush_usage().expect("flush");
    let db = server.data.path().join("dars.sqlite");
    // The schema: day, lesson, kind, count and nothing else.
    let conn = rusqlite::Connection::open(&db).expect("open");
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info('usage')")
        .expect("pragma");
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("columns")
        .collect::<Result<_, _>>()
        .expect("names");
    assert_eq!(columns, ["day", "lesson", "kind", "count"]);
    let rows: Vec<(i64, String, i64, i64)> = conn
        .prepare("SELECT day, lesson, kind, count FROM usage")
        .expect("select")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("values");
    assert_eq!(rows, vec![(today(), "water-cycle".to_owned(), 0, 3)]);
    drop(stmt);
    drop(conn);
    // The content: no trace of the phone anywhere in the database or its log.
    let mut bytes = std::fs::read(&db).expect("db");
    if let Ok(wal) = std::fs::read(db.with_file_name("dars.sqlite-wal")) {
        bytes.extend(wal);
    }
    for secret in [
        AGENT.as_bytes(),
        b"probe-8d1f2e",
        FORWARDED.as_bytes(),
        b"127.0.0.1",
        b"Aygun",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{} found in the store",
            String::from_utf8_lossy(secret)
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_saved_lesson_or_pack_counts_one_offline_save_per_lesson() {
    let server = two_lessons().await;
    let http = client();
    let get = |path: &str| http.get(server.url(path)).send();
    let saved = get("/lessons/water-cycle/offline.html").await.expect("get");
    assert_eq!(saved.status(), 200);
    assert!(saved.bytes().await.expect("body").len() > 100);
    let pack = get("/packs/offline.html?lesson=water-cycle&lesson=fractions")
        .await
        .expect("get");
    assert_eq!(pack.status(), 200);
    // Not saves: the pack's confirmation page (it shows the size), HEAD, an unknown lesson.
    assert_eq!(
        get("/packs?lesson=water-cycle&lesson=fractions")
            .await
            .expect("get")
            .status(),
        200
    );
    let head = http
        .head(server.url("/lessons/fractions/offline.html"))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(
        get("/lessons/nothing-here/offline.html").await.expect("get").status(),
        404
    );
    server.library.flush_usage().expect("flush");
    assert_eq!(
        stored(server.data.path()),
        vec![("fractions".to_owned(), 0, 1), ("water-cycle".to_owned(), 0, 2)]
    );
    server.stop().await;
}
