//! Backup and restore with the real binary: `dars backup` while `dars serve` answers requests
//! and `dars import` writes, `dars restore` refusing a store in use, checking a backup before
//! it replaces anything; and a store made by the first schema (a fixture made with the first
//! commit's binary) opening, migrating, serving and verifying today.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dars::service::{Library, Progress};

use crate::common::{
    Served, TestServer, client, dars, healthz_lessons, http_get, pseudo_random_bytes, pseudo_random_text, run, run_ok,
    text, write_lesson,
};

/// `count` lessons named `{prefix}-{i}`, each with a page and a 120 KB picture.
fn lessons(root: &Path, prefix: &str, count: usize) {
    for i in 0..count {
        let page = pseudo_random_text(6_000, i as u64);
        let picture = pseudo_random_bytes(120_000, 1000 + i as u64);
        write_lesson(
            root,
            &format!("{prefix}-{i}"),
            &[("index.html", &page), ("pic.jpg", &picture)],
        );
    }
}

fn lessons_in(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    conn.query_row("SELECT count(*) FROM lessons", [], |r| r.get(0))
        .expect("count")
}

fn backup_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("backup dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "exactly one file (no .part, no -wal) in {files:?}");
    files.into_iter().next().expect("one")
}

#[test]
fn backup_while_serving_and_importing_then_restore_and_verify() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    let (first, second, stick) = (work.path().join("a"), work.path().join("b"), work.path().join("stick"));
    lessons(&first, "old", 40);
    lessons(&second, "new", 40);
    run_ok(dars().arg("--data").arg(&data).arg("import").arg(&first));

    let served = Served::start(&data);
    let addr = served.addr;
    // Phones keep asking for pages the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Acquire) {
                    let (code, _) = http_get(addr, &format!("/lessons/old-{}/pic.jpg", i % 40));
                    assert_eq!(code, 200);
                    answered.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    // An import writes while the backup runs.
    let mut import = dars()
        .arg("--data")
        .arg(&data)
        .arg("import")
        .arg(&second)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn import");
    let out = run_ok(dars().arg("--data").arg(&data).arg("backup").arg(&stick));
    let status = crate::common::wait_for(&mut import, Duration::from_secs(120), "dars import");
    assert!(status.success(), "import: {status}");
    stop.store(true, Ordering::Release);
    for t in load {
        t.join().expect("load thread");
    }
    assert!(answered.load(Ordering::Relaxed) > 0);
    assert!(out.contains("backed up"), "{out}");

    let file = backup_file(&stick);
    let name = file.file_name().expect("name").to_string_lossy().into_owned();
    assert!(name.starts_with("dars-20") && name.ends_with(".sqlite"), "{name}");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
        "FAT32-safe: {name}"
    );
    assert!(out.contains(&name), "{out}");
    let in_backup = lessons_in(&file);
    assert!((40..=80).contains(&in_backup), "{in_backup}");

    // The server holds the store: restore refuses and changes nothing.
    let refused = run(dars().arg("--data").arg(&data).arg("restore").arg(&file));
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(err.contains("running dars server") && err.contains("--force"), "{err}");
    assert_eq!(healthz_lessons(addr), 80);
    let status = served.terminate();
    assert!(status.success(), "{status}");

    let out = run_ok(dars().arg("--data").arg(&data).arg("restore").arg(&file));
    assert!(out.contains(&format!("restored {in_backup} lessons")), "{out}");
    let verified = run_ok(dars().arg("--data").arg(&data).arg("verify"));
    assert!(verified.starts_with("ok:"), "{verified}");
    assert!(!data.join("dars-restore.sqlite").exists());

    let served = Served::start(&data);
    assert_eq!(healthz_lessons(served.addr), u64::try_from(in_backup).expect("count"));
    let (code, body) = http_get(served.addr, "/lessons/old-3/");
    assert_eq!(code, 200);
    assert_eq!(body.as_bytes(), pseudo_random_text(6_000, 3).as_slice());
    served.terminate();
}

#[test]
fn restore_with_force_swaps_the_store_under_a_running_server() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    let stick = work.path().join("stick");
    lessons(&work.path().join("a"), "kept", 3);
    run_ok(dars().arg("--data").arg(&data).arg("import").arg(work.path().join("a")));
    run_ok(dars().arg("--data").arg(&data).arg("backup").arg(&stick));
    let file = backup_file(&stick);
    lessons(&work.path().join("b"), "later", 5);
    run_ok(dars().arg("--data").arg(&data).arg("import").arg(work.path().join("b")));

    let served = Served::start(&data);
    assert_eq!(healthz_lessons(served.addr), 8);
    let out = run_ok(dars().arg("--data").arg(&data).args(["restore", "--force"]).arg(&file));
    assert!(
        out.contains("restored 3 lessons") && out.contains("serves the restored"),
        "{out}"
    );
    // The server sees the swap as one commit: 8 lessons, then 3, never a mixture.
    let deadline = Instant::now() + Duration::from_secs(10);
    while healthz_lessons(served.addr) != 3 {
        assert!(Instant::now() < deadline, "the server still shows the old store");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_get(served.addr, "/lessons/later-1/").0, 404);
    assert_eq!(http_get(served.addr, "/lessons/kept-1/").0, 200);
    served.terminate();
    let verified = run_ok(dars().arg("--data").arg(&data).arg("verify"));
    assert!(verified.starts_with("ok:"), "{verified}");
}

#[test]
fn a_damaged_or_foreign_backup_is_refused_and_the_store_kept() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    let stick = work.path().join("stick");
    lessons(&work.path().join("a"), "good", 2);
    run_ok(dars().arg("--data").arg(&data).arg("import").arg(work.path().join("a")));
    run_ok(dars().arg("--data").arg(&data).arg("backup").arg(&stick));
    let file = backup_file(&stick);
    // Damage one chunk of the picture of good-1 inside the backup.
    {
        let conn = rusqlite::Connection::open(&file).expect("open backup");
        let changed = conn
            .execute(
                "UPDATE chunks SET data = zeroblob(length(data)) WHERE id = (SELECT c.id FROM chunks c
                 JOIN blobs b ON c.id BETWEEN b.id << 24 AND (b.id << 24) + 16777215
                 JOIN files f ON f.hash = b.hash JOIN lessons l ON l.rowid = f.lesson
                 WHERE l.id = 'good-1' AND f.path = 'pic.jpg' LIMIT 1)",
                [],
            )
            .expect("damage");
        assert_eq!(changed, 1);
    }
    lessons(&work.path().join("b"), "since", 1);
    run_ok(dars().arg("--data").arg(&data).arg("import").arg(work.path().join("b")));

    let out = run(dars().arg("--data").arg(&data).arg("restore").arg(&file));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("is damaged") && err.contains("good-1/pic.jpg"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");

    let foreign = work.path().join("notes.sqlite");
    std::fs::write(&foreign, b"these are not the lessons you are looking for").expect("write");
    let out = run(dars().arg("--data").arg(&data).arg("restore").arg(&foreign));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not a dars backup"),
        "{}",
        text(&out.stderr)
    );
    let out = run(dars()
        .arg("--data")
        .arg(&data)
        .arg("restore")
        .arg(work.path().join("gone.sqlite")));
    assert!(text(&out.stderr).contains("no such file"), "{}", text(&out.stderr));

    assert_eq!(lessons_in(&data.join("dars.sqlite")), 3);
    let verified = run_ok(dars().arg("--data").arg(&data).arg("verify"));
    assert!(verified.starts_with("ok:"), "{verified}");
}

/// The store file made by the first schema (see tests/fixtures/README.md).
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-1.sqlite")
}

fn fixture_lessons() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-1-lessons")
}

/// The schema version of a store file, read from its header (bytes 60..64) without SQLite, so
/// nothing is written beside the fixture.
fn header_version(path: &Path) -> u32 {
    let bytes = std::fs::read(path).expect("read store");
    u32::from_be_bytes(bytes[60..64].try_into().expect("4 bytes"))
}

/// Nothing (no -wal, no -shm) was written beside the fixture, and it is still schema 1.
fn fixture_untouched() {
    for suffix in ["-wal", "-shm", "-journal"] {
        let beside = PathBuf::from(format!("{}{suffix}", fixture().display()));
        assert!(!beside.exists(), "{} was created", beside.display());
    }
    assert_eq!(header_version(&fixture()), 1, "the fixture is a first-schema store");
}

#[tokio::test]
async fn a_store_of_the_first_schema_opens_migrates_serves_and_verifies() {
    fixture_untouched();
    let server = TestServer::start(|data| {
        std::fs::copy(fixture(), data.join("dars.sqlite")).expect("copy fixture");
    })
    .await;
    let library = Library::open(server.data.path()).expect("reopen");
    let status = library.status().expect("status");
    assert_eq!(status.schema_version, dars::store::SCHEMA_VERSION);
    assert_eq!(status.lessons, 2);
    assert!(library.verify(&Progress::new()).expect("verify").is_clean());

    let http = client();
    for (lesson, path) in [
        ("su-dovrani", "index.html"),
        ("su-dovrani", "dovr.svg"),
        ("kesrler", "index.html"),
        ("kesrler", "img/pizza.bin"),
    ] {
        let response = http
            .get(server.url(&format!("/lessons/{lesson}/{path}")))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{lesson}/{path}");
        let body = response.bytes().await.expect("body");
        let source = std::fs::read(fixture_lessons().join(lesson).join(path)).expect("source");
        assert_eq!(body.as_ref(), source.as_slice(), "{lesson}/{path}");
    }
    let api = http
        .get(server.url("/api/v1/lessons/kesrler"))
        .send()
        .await
        .expect("api")
        .bytes()
        .await
        .expect("api body");
    let api: serde_json::Value = serde_json::from_slice(&api).expect("json");
    assert_eq!(api["title"], "Kəsrlər: giriş", "{api}");
    server.stop().await;
}

#[test]
fn a_first_schema_backup_restores_into_todays_store() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    let report = dars::service::restore(&data, &fixture(), false, &Progress::new()).expect("restore");
    assert_eq!(report.backup_schema, 1);
    assert_eq!(report.lessons, 2);
    let library = Library::open(&data).expect("open");
    assert_eq!(
        library.status().expect("status").schema_version,
        dars::store::SCHEMA_VERSION
    );
    assert!(library.verify(&Progress::new()).expect("verify").is_clean());
    let lessons = library.lessons(&Default::default()).expect("lessons");
    let mut ids: Vec<&str> = lessons.iter().map(|l| l.meta.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["kesrler", "su-dovrani"]);
    // The backup (the fixture) was only read: nothing was written beside it.
    fixture_untouched();
}
