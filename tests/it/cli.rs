//! The real `dars` binary: import, status, verify, configuration errors, `serve` with a
//! signal, and imports killed at many points (the store must come back whole every time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dars::service::Library;
use dars::store::Hash;

use crate::common::{Rng, pseudo_random_bytes, pseudo_random_text, write_lesson};

use crate::common::{Served, dars, healthz_lessons, http_get, run, run_ok, text};

fn status_json(cmd: &mut Command) -> serde_json::Value {
    let stdout = run_ok(cmd.args(["status", "--json"]));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{stdout}"))
}

fn two_lessons(root: &Path) {
    write_lesson(
        root,
        "water-cycle",
        &[
            ("index.html", b"<h1>Water</h1><p>Rain falls, the sun warms the sea.</p>"),
            ("style.css", b"h1 { color: navy }"),
            ("img/cloud.png", b"\x89PNG cloud"),
        ],
    );
    write_lesson(
        root,
        "fractions",
        &[("index.html", b"<h1>Fractions</h1>"), ("img/pie.png", b"\x89PNG pie")],
    );
}

#[test]
fn import_status_and_verify() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    two_lessons(src.path());
    let out = run_ok(dars().arg("--data").arg(data.path()).arg("import").arg(src.path()));
    assert!(out.contains("2 new"), "{out}");
    assert!(data.path().join("dars.sqlite").is_file());

    let out = run_ok(dars().arg("--data").arg(data.path()).arg("status"));
    assert!(out.contains("lessons:        2"), "{out}");
    assert!(out.contains("blobs:          5"), "{out}");
    assert!(
        out.contains(&data.path().join("dars.sqlite").display().to_string()),
        "{out}"
    );

    let json = status_json(dars().arg("--data").arg(data.path()));
    assert_eq!(json["lessons"], 2, "{json}");
    assert_eq!(json["blobs"], 5, "{json}");
    assert_eq!(json["schema_version"], dars::store::SCHEMA_VERSION, "{json}");

    let out = run(dars().arg("--data").arg(data.path()).arg("verify"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok"), "{}", text(&out.stdout));

    let again = run_ok(dars().arg("--data").arg(data.path()).arg("import").arg(src.path()));
    assert!(again.contains("0 new, 0 updated, 2 unchanged"), "{again}");
    assert!(again.contains("0 new blobs"), "{again}");
}

#[test]
fn import_with_a_refused_lesson_exits_2() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    write_lesson(src.path(), "good", &[("index.html", b"<p>good</p>")]);
    let bad = src.path().join("broken-lesson");
    std::fs::create_dir_all(&bad).expect("dir");
    std::fs::write(bad.join("lesson.toml"), "id = \"broken\"\ncolour = \"red\"\n").expect("toml");
    let out = run(dars().arg("--data").arg(data.path()).arg("import").arg(src.path()));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("broken-lesson/lesson.toml"), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
    assert!(stderr.contains("fix:"), "{stderr}");
    assert!(text(&out.stdout).contains("1 new"), "{}", text(&out.stdout));
    assert_eq!(status_json(dars().arg("--data").arg(data.path()))["lessons"], 1);
}

#[test]
fn import_of_a_missing_folder_fails_clearly() {
    let work = tempfile::tempdir().expect("work");
    let data = work.path().join("data");
    let missing = work.path().join("no-such-stick");
    let out = run(dars().arg("--data").arg(&data).arg("import").arg(&missing));
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(2), "a missing folder is not a refused lesson");
    assert!(stderr.contains("error:"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn data_folder_from_flag_in_any_position_or_environment() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let cwd = tempfile::tempdir().expect("cwd");
    two_lessons(src.path());
    run_ok(
        dars()
            .current_dir(cwd.path())
            .arg("import")
            .arg(src.path())
            .arg("--data")
            .arg(data.path()),
    );
    let before = status_json(dars().current_dir(cwd.path()).arg("--data").arg(data.path()));
    assert_eq!(before["lessons"], 2);
    let after = run_ok(
        dars()
            .current_dir(cwd.path())
            .args(["status", "--json", "--data"])
            .arg(data.path()),
    );
    assert!(after.contains("\"lessons\": 2"), "{after}");
    let from_env = status_json(dars().current_dir(cwd.path()).env("DARS_DATA", data.path()));
    assert_eq!(from_env["lessons"], 2, "{from_env}");
    assert_eq!(
        from_env["data_file"],
        data.path().join("dars.sqlite").display().to_string()
    );
    let flag_wins = status_json(
        dars()
            .current_dir(cwd.path())
            .env("DARS_DATA", cwd.path().join("elsewhere"))
            .arg("--data")
            .arg(data.path()),
    );
    assert_eq!(flag_wins["lessons"], 2, "the flag beats the environment: {flag_wins}");
    assert!(
        !cwd.path().join("dars-data").exists(),
        "a command wrote to the default data folder"
    );
}

#[test]
fn verify_names_the_lesson_and_file_of_a_damaged_blob() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let clip = pseudo_random_bytes(600_000, 11);
    let page = pseudo_random_text(50_000, 12);
    write_lesson(
        src.path(),
        "film-lesson",
        &[("index.html", b"<p>film</p>"), ("media/clip.mp4", &clip)],
    );
    write_lesson(
        src.path(),
        "text-lesson",
        &[("index.html", b"<p>text</p>"), ("long.html", &page)],
    );
    write_lesson(src.path(), "healthy", &[("index.html", b"<p>fine</p>")]);
    run_ok(dars().arg("--data").arg(data.path()).arg("import").arg(src.path()));

    let conn = rusqlite::Connection::open(data.path().join("dars.sqlite")).expect("sqlite");
    let damage = |hash: Hash, variant: i64, idx: i64| {
        let changed = conn
            .execute(
                "UPDATE chunks SET data = randomblob(length(data))
                 WHERE id = (SELECT (b.id << 24) | (?2 << 22) | ?3 FROM blobs b WHERE b.hash = ?1)",
                rusqlite::params![&hash.0[..], variant, idx],
            )
            .expect("corrupt");
        assert_eq!(changed, 1, "no chunk {idx} of variant {variant} to damage");
    };
    // The second chunk of a raw file, and the gzip variant of a text file.
    damage(Hash::of(&clip), 0, 1);
    damage(Hash::of(&page), 2, 0);
    drop(conn);

    let out = run(dars().arg("--data").arg(data.path()).arg("verify"));
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "verify passed a damaged store:\n{stdout}");
    assert!(stdout.contains("lesson film-lesson, file media/clip.mp4"), "{stdout}");
    assert!(stdout.contains("lesson text-lesson, file long.html"), "{stdout}");
    assert!(stdout.contains(&Hash::of(&clip).to_hex()), "{stdout}");
    assert!(!stdout.contains("healthy"), "{stdout}");
    assert!(stdout.contains("2 damaged blob(s)"), "{stdout}");
}

fn bad_config(dir: &Path) -> PathBuf {
    let file = dir.join("dars.toml");
    std::fs::write(&file, "centre_name = \"Quba\"\ncolour = \"red\"\n").expect("config");
    file
}

#[test]
fn config_prints_the_layered_settings() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/dars.toml");
    let out = run_ok(
        dars()
            .env("DARS_LISTEN", "127.0.0.1:9999")
            .env("DARS_UPSTREAMS", "[\"http://quba.local:8080/mirror/\"]")
            .arg("--config")
            .arg(&example)
            .args(["--data", "/srv/flag", "config"]),
    );
    let printed: toml::Table = out.parse().expect("TOML");
    assert_eq!(printed["centre_name"].as_str(), Some("Quba computer centre"), "{out}");
    assert_eq!(printed["listen"].as_str(), Some("127.0.0.1:9999"), "{out}");
    assert_eq!(printed["data"].as_str(), Some("/srv/flag"), "{out}");
    assert_eq!(
        printed["upstreams"][0].as_str(),
        Some("http://quba.local:8080/mirror/"),
        "{out}"
    );
    assert_eq!(printed["sync_interval"].as_str(), Some("6h"), "{out}");
}

#[test]
fn a_config_with_an_unknown_key_stops_every_command() {
    let work = tempfile::tempdir().expect("work");
    let src = work.path().join("lessons");
    two_lessons(&src);
    let config = bad_config(work.path());
    let data = work.path().join("data");
    let commands: [&[&str]; 8] = [
        &["config"],
        &["backup", "stick"],
        &["restore", "stick/dars.sqlite"],
        &["status"],
        &["status", "--json"],
        &["verify"],
        &["import", src.to_str().expect("utf-8")],
        &["serve", "--listen", "127.0.0.1:0"],
    ];
    for args in commands {
        let out = run(dars()
            .current_dir(work.path())
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(&data)
            .args(args));
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran with a bad config");
        assert!(stderr.contains("colour"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let from_env = run(dars()
        .current_dir(work.path())
        .env("DARS_CONFIG", &config)
        .arg("status"));
    assert!(!from_env.status.success());
    assert!(text(&from_env.stderr).contains("colour"), "{}", text(&from_env.stderr));
    assert!(!data.exists(), "a command touched the store despite a bad config");
}

#[test]
fn a_missing_config_file_fails_clearly() {
    let work = tempfile::tempdir().expect("work");
    let missing = work.path().join("nowhere.toml");
    for args in [&["status"][..], &["verify"], &["serve", "--listen", "127.0.0.1:0"]] {
        let out = run(dars().current_dir(work.path()).arg("--config").arg(&missing).args(args));
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran without its config");
        assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
        assert!(stderr.contains("does not exist"), "{stderr}");
    }
    assert!(!work.path().join("dars-data").exists());
}

#[test]
fn serve_on_a_new_store_loads_samples_and_stops_on_sigterm() {
    let data = tempfile::tempdir().expect("data");
    let served = Served::start(&data.path().join("fresh"));
    assert_eq!(served.addr.ip().to_string(), "127.0.0.1");
    let lessons = healthz_lessons(served.addr);
    assert!(lessons >= 12, "only {lessons} sample lessons");
    let (code, page) = http_get(served.addr, "/lessons/math-4-fractions-az/");
    assert_eq!(code, 200, "{page}");
    let status = served.terminate();
    assert!(status.success(), "dars serve exited with {status} after SIGTERM");
}

#[test]
fn serve_shows_imported_lessons_and_no_samples() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    two_lessons(src.path());
    run_ok(dars().arg("--data").arg(data.path()).arg("import").arg(src.path()));
    let served = Served::start(data.path());
    assert_eq!(healthz_lessons(served.addr), 2);
    let (code, body) = http_get(served.addr, "/lessons/fractions/");
    assert_eq!((code, body.as_str()), (200, "<h1>Fractions</h1>"));
    // An import while the server runs is visible without a restart.
    write_lesson(src.path(), "third", &[("index.html", b"<p>3</p>")]);
    std::fs::write(src.path().join("fractions/index.html"), "<h1>Fractions, revised</h1>").expect("edit");
    run_ok(dars().arg("--data").arg(data.path()).arg("import").arg(src.path()));
    assert_eq!(healthz_lessons(served.addr), 3);
    assert_eq!(http_get(served.addr, "/lessons/third/"), (200, "<p>3</p>".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, body) = http_get(served.addr, "/lessons/fractions/");
        if (code, body.as_str()) == (200, "<h1>Fractions, revised</h1>") {
            break;
        }
        assert!(Instant::now() < deadline, "the server still shows {code} {body:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = served.terminate();
    assert!(status.success(), "dars serve exited with {status} after SIGTERM");
}

// ---------------------------------------------------------------------------------------
// Crash test: `dars import` killed with SIGKILL at several points of an update.

const LESSONS: usize = 40;
const PAGES: usize = 30;
/// The lesson holding two files over 8 MiB (stored by the streaming path, one after the
/// other). Both change in version 2, so the lesson's transaction comes well after the first
/// large blob is complete.
const BIG_LESSON: usize = 12;
const BIG_FILES: [&str; 2] = ["media/film-1.mp4", "media/film-2.mp4"];

fn lesson_id(i: usize) -> String {
    format!("crash-{i:02}")
}

/// One version of one lesson: its title and, per path, the hash of the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    title: String,
    files: BTreeMap<String, Hash>,
}

/// Two versions of a folder of lessons, on disk in `v1/` and `v2/`.
struct Corpus {
    dir: tempfile::TempDir,
    versions: Vec<[Version; 2]>,
}

impl Corpus {
    fn root(&self, version: usize) -> PathBuf {
        self.dir.path().join(format!("v{version}"))
    }

    /// Which version (1 or 2) of lesson `i` the store shows; panics on a mix or a gap.
    fn version_in(&self, lib: &Library, i: usize) -> usize {
        let id = lesson_id(i);
        let detail = lib
            .lesson(&id)
            .unwrap_or_else(|e| panic!("lesson {id} is missing: {e}"));
        let mut served = BTreeMap::new();
        for file in &detail.file_list {
            let hit = lib
                .find_file(&id, &file.path)
                .unwrap_or_else(|e| panic!("{id}/{}: {e}", file.path));
            let bytes = lib
                .read_raw(&hit.blob)
                .unwrap_or_else(|e| panic!("{id}/{}: {e}", file.path));
            served.insert(file.path.clone(), Hash::of(&bytes));
        }
        let shown = Version {
            title: detail.lesson.meta.title.clone(),
            files: served,
        };
        let [v1, v2] = &self.versions[i];
        if &shown == v1 {
            1
        } else if &shown == v2 {
            2
        } else {
            panic!("lesson {id} is neither version 1 nor version 2:\nshown {shown:#?}\nv1 {v1:#?}\nv2 {v2:#?}")
        }
    }
}

/// Writes lesson `i` in `version` under `root` and returns what it holds. In version 2 some
/// pages change, some lessons gain or lose a file, change title, or change a media file.
fn write_crash_lesson(root: &Path, i: usize, version: usize) -> Version {
    let v2 = version == 2;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let seed = |j: usize, changed: bool| (i * 1000 + j * 10 + usize::from(changed && v2)) as u64;
    let mut sizes = Rng::new(i as u64);
    for j in 0..PAGES {
        let changed = (i + j).is_multiple_of(4) || j == i % PAGES;
        let len = 15_000 + sizes.below(30_000) as usize;
        let name = if j == 0 {
            "index.html".to_owned()
        } else {
            format!("page-{j:02}.html")
        };
        files.push((name, pseudo_random_text(len, seed(j, changed))));
    }
    if i.is_multiple_of(3) && v2 {
        files.push(("extra.html".to_owned(), pseudo_random_text(5_000, seed(90, true))));
    }
    if i % 5 == 1 && !v2 {
        files.push(("old-notes.html".to_owned(), pseudo_random_text(4_000, seed(91, false))));
    }
    if i % 8 == 3 {
        let len = 1_000_000 + sizes.below(2_000_000) as usize;
        files.push((
            "media/clip.mp4".to_owned(),
            pseudo_random_bytes(len, seed(92, i % 16 == 3)),
        ));
    }
    if i == BIG_LESSON {
        for (k, name) in BIG_FILES.iter().enumerate() {
            let len = 8 * 1024 * 1024 + 4321 + k * 100_000;
            files.push(((*name).to_owned(), pseudo_random_bytes(len, seed(93 + k, true))));
        }
    }
    let title = if v2 && i.is_multiple_of(4) {
        format!("Lesson {i}, revised")
    } else {
        format!("Lesson {i}")
    };
    let dir = root.join(lesson_id(i));
    std::fs::create_dir_all(dir.join("media")).expect("lesson dir");
    std::fs::write(
        dir.join("lesson.toml"),
        format!(
            "id = \"{}\"\ntitle = \"{title}\"\nlanguage = \"en\"\ngrade = {}\nsubject = \"Crash\"\n",
            lesson_id(i),
            i % 12
        ),
    )
    .expect("toml");
    let mut hashes = BTreeMap::new();
    for (path, bytes) in files {
        std::fs::write(dir.join(&path), &bytes).expect("file");
        hashes.insert(path, Hash::of(&bytes));
    }
    Version { title, files: hashes }
}

fn generate_corpus() -> Corpus {
    let dir = tempfile::tempdir().expect("corpus dir");
    let mut versions = Vec::with_capacity(LESSONS);
    for i in 0..LESSONS {
        let v1 = write_crash_lesson(&dir.path().join("v1"), i, 1);
        let v2 = write_crash_lesson(&dir.path().join("v2"), i, 2);
        assert_ne!(v1, v2, "lesson {i} must change");
        versions.push([v1, v2]);
    }
    Corpus { dir, versions }
}

/// Lessons whose digest differs from the one recorded after the first import.
fn count_updated(watch: &rusqlite::Connection, v1: &BTreeMap<String, Vec<u8>>) -> usize {
    lesson_digests(watch)
        .iter()
        .filter(|(id, digest)| v1.get(*id) != Some(*digest))
        .count()
}

fn lesson_digests(conn: &rusqlite::Connection) -> BTreeMap<String, Vec<u8>> {
    let mut stmt = conn.prepare_cached("SELECT id, digest FROM lessons").expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

fn blob_complete(conn: &rusqlite::Connection, hash: Hash) -> bool {
    conn.query_row(
        "SELECT count(*) FROM blobs WHERE hash = ?1 AND complete = 1",
        [&hash.0[..]],
        |r| r.get::<_, i64>(0),
    )
    .expect("count")
        > 0
}

/// Checks the store as a concurrent reader sees it: all lessons there, every file's blob
/// complete.
fn reader_view_is_whole(conn: &rusqlite::Connection) -> Result<(), String> {
    let (lessons, broken): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM lessons),
                    (SELECT count(*) FROM files f LEFT JOIN blobs b ON b.hash = f.hash
                     WHERE b.hash IS NULL OR b.complete = 0)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| e.to_string())?;
    if lessons != LESSONS as i64 {
        return Err(format!("{lessons} lessons visible, {LESSONS} expected"));
    }
    if broken > 0 {
        return Err(format!("{broken} visible files point at missing or incomplete blobs"));
    }
    Ok(())
}

/// Whether blob `hash` has a row but not yet all of its `chunks` (it is being streamed in).
fn blob_being_written(conn: &rusqlite::Connection, hash: Hash, chunks: u64) -> bool {
    let (rows, stored): (i64, u64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM blobs WHERE hash = ?1), (SELECT count(*) FROM chunks c JOIN blobs b
              ON c.id BETWEEN b.id << 24 AND (b.id << 24) + 16777215 WHERE b.hash = ?1)",
            [&hash.0[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    rows > 0 && stored < chunks
}

fn incomplete_blobs(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM blobs WHERE complete = 0", [], |r| r.get(0))
        .expect("count")
}

/// After a kill: the store opens, `dars verify` passes, and every lesson shows all of its
/// old or all of its new version. Returns the version of each lesson.
fn check_after_kill(data: &Path, corpus: &Corpus, when: &str) -> Vec<usize> {
    let out = run(dars().arg("--data").arg(data).arg("verify"));
    assert!(
        out.status.success(),
        "verify after a kill {when} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).starts_with("ok"), "{}", text(&out.stdout));
    let lib = Library::open(data).unwrap_or_else(|e| panic!("the store does not open after a kill {when}: {e}"));
    assert_eq!(
        lib.count_lessons().expect("count"),
        LESSONS as u64,
        "after a kill {when}"
    );
    (0..LESSONS).map(|i| corpus.version_in(&lib, i)).collect()
}

#[test]
fn import_killed_at_any_point_leaves_each_lesson_old_or_new() {
    let started = Instant::now();
    let corpus = generate_corpus();
    let data = tempfile::tempdir().expect("data");
    let generated = started.elapsed();
    let first = Instant::now();
    run_ok(dars().arg("--data").arg(data.path()).arg("import").arg(corpus.root(1)));
    let first = first.elapsed();
    let db = data.path().join("dars.sqlite");
    let watch = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("watch");
    watch.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    let v1_digests = lesson_digests(&watch);
    assert_eq!(v1_digests.len(), LESSONS);
    assert!(
        check_after_kill(data.path(), &corpus, "(none yet)")
            .iter()
            .all(|&v| v == 1)
    );

    // Kill points, in order: the first lesson committed; the first large file half written;
    // the first large file stored but its lesson not yet (the second one is being written);
    // then three points spread over the remaining lessons.
    let film = corpus.versions[BIG_LESSON][1].files[BIG_FILES[0]];
    let film_len = std::fs::metadata(corpus.root(2).join(lesson_id(BIG_LESSON)).join(BIG_FILES[0]))
        .expect("film")
        .len();
    let film_chunks = film_len.div_ceil(dars::store::CHUNK_SIZE as u64);
    type Condition<'a> = Box<dyn Fn(&rusqlite::Connection) -> bool + 'a>;
    let v1_digests = &v1_digests;
    let at_least = |n: usize| -> Condition<'_> { Box::new(move |c| count_updated(c, v1_digests) >= n) };
    let kill_points: Vec<(&str, Condition<'_>)> = vec![
        ("after the first lesson", at_least(1)),
        (
            "while a large file is written",
            Box::new(move |c| blob_being_written(c, film, film_chunks)),
        ),
        (
            "after a large file, before its lesson",
            Box::new(move |c| blob_complete(c, film)),
        ),
        ("half way", at_least(LESSONS / 2)),
        ("at 70 %", at_least(LESSONS * 7 / 10)),
        ("near the end", at_least(LESSONS - 4)),
    ];
    let mut updated_before = 0;
    let mut kill_times = Vec::new();
    for (when, condition) in &kill_points {
        let spawned = Instant::now();
        let mut child = dars()
            .arg("--data")
            .arg(data.path())
            .arg("import")
            .arg(corpus.root(2))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn import");
        let deadline = spawned + Duration::from_secs(60);
        loop {
            // What a reader (a running server) sees while the import works: never a lesson
            // missing, never a file whose blob is not all there.
            if let Err(problem) = reader_view_is_whole(&watch) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("while importing, before the kill point {when}: {problem}");
            }
            if condition(&watch) {
                break;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("the import finished ({status}) before the kill point {when}");
            }
            assert!(Instant::now() < deadline, "kill point {when} never came");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the import finished before the kill {when}"
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kill_times.push(spawned.elapsed());

        let versions = check_after_kill(data.path(), &corpus, when);
        if when.contains("large file") {
            assert_eq!(
                versions[BIG_LESSON], 1,
                "the kill {when} came too late to test that point"
            );
        }
        let updated = versions.iter().filter(|&&v| v == 2).count();
        assert!(
            updated >= updated_before,
            "lessons went back to version 1 after a kill {when}"
        );
        assert!(updated < LESSONS, "every lesson was already updated at the kill {when}");
        updated_before = updated;
    }

    let last = Instant::now();
    let out = run_ok(dars().arg("--data").arg(data.path()).arg("import").arg(corpus.root(2)));
    let last = last.elapsed();
    assert!(out.contains(&format!("{} updated", LESSONS - updated_before)), "{out}");
    let versions = check_after_kill(data.path(), &corpus, "(final import)");
    assert!(versions.iter().all(|&v| v == 2), "{versions:?}");
    assert_eq!(incomplete_blobs(&watch), 0, "a half-written blob was left behind");
    eprintln!(
        "crash test: generated in {generated:?}, first import {first:?}, kills after {kill_times:?}, final import {last:?}, total {:?}",
        started.elapsed()
    );
}
