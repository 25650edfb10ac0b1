//! Importing lesson folders through `dars::service::Library`: validation messages, what is
//! skipped, what is (and is not) written on a re-import, large files, and the samples.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dars::lesson::LessonError;
use dars::service::{ImportReport, Library, Progress, ServiceError};
use dars::store::{CHUNK_SIZE, Hash, Origin, Storage, Variant};

use crate::common::{import, pseudo_random_bytes, write_lesson};

const GOOD_TOML: &str = "id = \"ID\"\ntitle = \"A lesson\"\nlanguage = \"en\"\ngrade = 5\nsubject = \"Science\"\n";

/// A lesson.toml for `id` that is valid, with `extra` appended.
fn toml_for(id: &str, extra: &str) -> String {
    format!("{}{extra}", GOOD_TOML.replace("ID", id))
}

/// Writes a lesson folder `root/dir` with the given lesson.toml text and files.
fn write_raw_lesson(root: &Path, dir: &str, toml: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = root.join(dir);
    std::fs::create_dir_all(&dir).expect("lesson dir");
    std::fs::write(dir.join("lesson.toml"), toml).expect("toml");
    for (path, bytes) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("subdir");
        std::fs::write(file, bytes).expect("file");
    }
    dir
}

fn lesson_ids(data: &Path) -> BTreeSet<String> {
    Library::open(data)
        .expect("open")
        .lessons(&Default::default())
        .expect("lessons")
        .into_iter()
        .map(|l| l.meta.id)
        .collect()
}

fn read_file(lib: &Library, id: &str, path: &str) -> Vec<u8> {
    let hit = lib.find_file(id, path).unwrap_or_else(|e| panic!("{id}/{path}: {e}"));
    lib.read_raw(&hit.blob).expect("read")
}

/// Imports a folder holding one good lesson ("good-one") and whatever `bad` writes beside it;
/// checks that the good lesson went in and that exactly one lesson was refused, and returns
/// that refusal.
fn refused(bad: impl FnOnce(&Path)) -> LessonError {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    write_lesson(src.path(), "good-one", &[("index.html", b"<p>good</p>")]);
    bad(src.path());
    let report = import(data.path(), src.path());
    assert_eq!(report.added, vec!["good-one".to_owned()], "{report:?}");
    assert_eq!(
        lesson_ids(data.path()),
        BTreeSet::from(["good-one".to_owned()]),
        "only the good lesson is visible"
    );
    assert_eq!(report.errors.len(), 1, "{:#?}", report.errors);
    let err = report.errors.into_iter().next().expect("one error");
    let shown = err.to_string();
    assert!(shown.contains(&err.file.display().to_string()), "{shown}");
    assert!(shown.contains(&err.problem), "{shown}");
    assert!(shown.contains(&format!("fix: {}", err.fix)), "{shown}");
    assert!(!err.fix.trim().is_empty(), "{err:?}");
    err
}

#[test]
fn bad_toml_names_the_file_and_line() {
    let err = refused(|root| {
        let toml = "id = \"broken\"\ntitle = \"T\"\nlanguage = en\ngrade = 5\nsubject = \"S\"\n";
        write_raw_lesson(root, "broken", toml, &[("index.html", b"x")]);
    });
    assert!(err.file.ends_with("broken/lesson.toml"), "{err:?}");
    assert!(err.problem.contains("line 3"), "{err}");
    assert!(err.fix.contains("double quotes"), "{err}");
}

#[test]
fn unknown_key_is_named() {
    let err = refused(|root| {
        write_raw_lesson(
            root,
            "colourful",
            &toml_for("colourful", "colour = \"red\"\n"),
            &[("index.html", b"x")],
        );
    });
    assert!(err.file.ends_with("colourful/lesson.toml"), "{err:?}");
    assert!(err.problem.contains("colour"), "{err}");
    assert!(err.problem.contains("line 6"), "{err}");
    assert!(err.fix.contains("allowed keys"), "{err}");
}

#[test]
fn bad_id_is_refused() {
    let err = refused(|root| {
        write_raw_lesson(root, "bad-id", &toml_for("Math_4", ""), &[("index.html", b"x")]);
    });
    assert!(err.file.ends_with("bad-id/lesson.toml"), "{err:?}");
    assert!(err.problem.contains("Math_4"), "{err}");
    assert!(err.fix.contains("lowercase"), "{err}");
}

#[test]
fn missing_required_key_is_named() {
    let err = refused(|root| {
        let toml = "id = \"no-subject\"\ntitle = \"T\"\nlanguage = \"en\"\ngrade = 5\n";
        write_raw_lesson(root, "no-subject", toml, &[("index.html", b"x")]);
    });
    assert!(err.file.ends_with("no-subject/lesson.toml"), "{err:?}");
    assert!(err.problem.contains("subject"), "{err}");
    assert!(err.fix.contains("required keys"), "{err}");
}

#[test]
fn missing_entry_file_is_named() {
    let err = refused(|root| {
        write_raw_lesson(
            root,
            "no-entry",
            &toml_for("no-entry", "entry = \"start.html\"\n"),
            &[("index.html", b"x")],
        );
    });
    assert_eq!(err.lesson.as_deref(), Some("no-entry"));
    assert!(err.file.ends_with("no-entry/lesson.toml"), "{err:?}");
    assert!(err.problem.contains("start.html"), "{err}");
    assert!(err.fix.contains("start.html"), "{err}");
}

#[test]
fn entry_leaving_the_folder_is_refused() {
    let err = refused(|root| {
        write_raw_lesson(
            root,
            "dotdot",
            &toml_for("dotdot", "entry = \"../good-one/index.html\"\n"),
            &[("index.html", b"x")],
        );
    });
    assert_eq!(err.lesson.as_deref(), Some("dotdot"));
    assert!(err.problem.contains(".."), "{err}");
    assert!(err.fix.contains("relative path"), "{err}");
}

#[test]
fn absolute_entry_is_refused() {
    let err = refused(|root| {
        write_raw_lesson(
            root,
            "absolute",
            &toml_for("absolute", "entry = \"/etc/passwd\"\n"),
            &[("index.html", b"x")],
        );
    });
    assert_eq!(err.lesson.as_deref(), Some("absolute"));
    assert!(err.problem.contains("absolute"), "{err}");
    assert!(err.problem.contains("/etc/passwd"), "{err}");
}

#[test]
fn symlink_out_of_the_lesson_is_refused() {
    let outside = tempfile::tempdir().expect("outside");
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "not for students").expect("secret");
    let err = refused(|root| {
        let dir = write_lesson(root, "leaky", &[("index.html", b"<p>hi</p>")]);
        std::os::unix::fs::symlink(&secret, dir.join("notes.txt")).expect("symlink");
    });
    assert_eq!(err.lesson.as_deref(), Some("leaky"));
    assert!(err.file.ends_with("leaky/notes.txt"), "{err:?}");
    assert!(err.problem.contains("out of the lesson folder"), "{err}");
    assert!(err.fix.contains("copy the file"), "{err}");
}

#[test]
fn symlinked_folder_out_of_the_lesson_is_refused() {
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("private.txt"), "not for students").expect("private");
    let err = refused(|root| {
        let dir = write_lesson(root, "leaky-dir", &[("index.html", b"<p>hi</p>")]);
        std::os::unix::fs::symlink(outside.path(), dir.join("extra")).expect("symlink");
    });
    assert_eq!(err.lesson.as_deref(), Some("leaky-dir"));
    assert!(err.file.ends_with("leaky-dir/extra/private.txt"), "{err:?}");
    assert!(err.problem.contains("out of the lesson folder"), "{err}");
}

#[test]
fn symlink_inside_the_lesson_is_accepted_and_served() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let dir = write_lesson(
        src.path(),
        "linked",
        &[("index.html", b"<p>hi</p>"), ("img/pie.png", b"\x89PNG pie")],
    );
    std::os::unix::fs::symlink("img/pie.png", dir.join("pie-again.png")).expect("relative symlink");
    std::os::unix::fs::symlink(dir.join("img"), dir.join("pictures")).expect("dir symlink");
    let report = import(data.path(), src.path());
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert_eq!(report.added, vec!["linked".to_owned()]);
    let lib = Library::open(data.path()).expect("open");
    assert_eq!(read_file(&lib, "linked", "pie-again.png"), b"\x89PNG pie");
    assert_eq!(read_file(&lib, "linked", "pictures/pie.png"), b"\x89PNG pie");
    assert_eq!(read_file(&lib, "linked", "img/pie.png"), b"\x89PNG pie");
}

#[test]
fn duplicate_ids_refuse_both_folders() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    write_lesson(src.path(), "good-one", &[("index.html", b"good")]);
    write_raw_lesson(src.path(), "twin-a", &toml_for("twin", ""), &[("index.html", b"a")]);
    write_raw_lesson(src.path(), "twin-b", &toml_for("twin", ""), &[("index.html", b"b")]);
    let report = import(data.path(), src.path());
    assert_eq!(report.added, vec!["good-one".to_owned()]);
    assert_eq!(lesson_ids(data.path()), BTreeSet::from(["good-one".to_owned()]));
    assert_eq!(report.errors.len(), 1, "{:#?}", report.errors);
    let err = &report.errors[0];
    assert_eq!(err.lesson.as_deref(), Some("twin"));
    assert!(
        err.problem.contains("twin-a") && err.problem.contains("twin-b"),
        "{err}"
    );
    assert!(err.fix.contains("own id"), "{err}");
}

#[test]
fn subfolder_without_lesson_toml_is_named() {
    let err = refused(|root| {
        std::fs::create_dir_all(root.join("notes")).expect("dir");
        std::fs::write(root.join("notes/readme.txt"), "just notes").expect("file");
    });
    assert!(err.file.ends_with("notes"), "{err:?}");
    assert_eq!(err.lesson, None);
    assert!(err.problem.contains("no lesson.toml"), "{err}");
}

#[test]
fn many_invalid_lessons_beside_valid_ones() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    for id in ["alpha", "beta", "gamma"] {
        write_lesson(src.path(), id, &[("index.html", id.as_bytes())]);
    }
    write_raw_lesson(
        src.path(),
        "bad-1",
        &toml_for("bad-1", "grade = 3\n"),
        &[("index.html", b"x")],
    );
    write_raw_lesson(src.path(), "bad-2", &toml_for("bad-2", ""), &[("other.html", b"x")]);
    std::fs::create_dir_all(src.path().join("empty")).expect("dir");
    let report = import(data.path(), src.path());
    assert_eq!(report.added, vec!["alpha", "beta", "gamma"]);
    assert_eq!(report.errors.len(), 3, "{:#?}", report.errors);
    assert_eq!(lesson_ids(data.path()).len(), 3);
}

/// Everything a write to the store would change.
#[derive(Debug, PartialEq, Eq)]
struct StoreState {
    blobs: i64,
    chunks: i64,
    files: i64,
    lessons: Vec<(i64, String, i64, Vec<u8>)>,
}

fn store_state(conn: &rusqlite::Connection) -> StoreState {
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).expect(sql);
    let mut stmt = conn
        .prepare("SELECT rowid, id, imported_at, digest FROM lessons ORDER BY id")
        .expect("prepare");
    let lessons = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    StoreState {
        blobs: count("SELECT count(*) FROM blobs"),
        chunks: count("SELECT count(*) FROM chunks"),
        files: count("SELECT count(*) FROM files"),
        lessons,
    }
}

fn data_version(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .expect("data_version")
}

fn db_conn(data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("dars.sqlite")).expect("open sqlite")
}

#[test]
fn reimporting_unchanged_lessons_writes_nothing() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let big = pseudo_random_bytes(9 * 1024 * 1024 + 77, 1);
    write_lesson(
        src.path(),
        "one",
        &[("index.html", b"<p>one</p>"), ("style.css", b"p { color: red }")],
    );
    write_lesson(src.path(), "two", &[("index.html", b"<p>two</p>"), ("film.mp4", &big)]);
    let first = import(data.path(), src.path());
    assert_eq!(first.added, vec!["one", "two"]);

    let watcher = db_conn(data.path());
    let before = store_state(&watcher);
    let version = data_version(&watcher);
    let again = import(data.path(), src.path());
    assert_eq!(again.unchanged, vec!["one", "two"], "{again:?}");
    assert!(again.added.is_empty() && again.updated.is_empty(), "{again:?}");
    assert_eq!(again.blobs_written, 0);
    assert_eq!(again.bytes_stored, 0);
    assert_eq!(
        data_version(&watcher),
        version,
        "another connection committed a write during an unchanged re-import"
    );
    assert_eq!(store_state(&watcher), before);

    // The detector works: a real change is seen.
    std::fs::write(src.path().join("one/style.css"), "p { color: blue }").expect("edit");
    let changed = import(data.path(), src.path());
    assert_eq!(changed.updated, vec!["one"]);
    assert_ne!(data_version(&watcher), version);
    assert_ne!(store_state(&watcher), before);
}

#[test]
fn changing_one_file_stores_only_its_new_blob() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let page = "<p>Kəsrlər: bir yarım, bir dörddə bir.</p>\n".repeat(300);
    write_lesson(
        src.path(),
        "fractions",
        &[
            ("index.html", page.as_bytes()),
            ("style.css", b"body { margin: 0 }"),
            ("img/pie.png", b"\x89PNG one"),
        ],
    );
    write_lesson(src.path(), "other", &[("index.html", b"<p>other</p>")]);
    import(data.path(), src.path());
    let lib = Library::open(data.path()).expect("open");
    let old = lib.find_file("fractions", "style.css").expect("old file").blob.hash;
    let conn = db_conn(data.path());
    let blobs_before: i64 = conn
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .expect("count");

    std::fs::write(src.path().join("fractions/style.css"), "body { margin: 1em }").expect("edit");
    // Through the same Library that looked the old file up: its lookups must follow.
    let report = lib
        .import_folder(src.path(), &Default::default(), &Progress::new())
        .expect("import");
    assert_eq!(report.updated, vec!["fractions"], "{report:?}");
    assert_eq!(report.unchanged, vec!["other"], "{report:?}");
    assert_eq!(report.blobs_written, 1, "{report:?}");
    let blobs_after: i64 = conn
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .expect("count");
    assert_eq!(blobs_after, blobs_before + 1);

    assert_eq!(read_file(&lib, "fractions", "style.css"), b"body { margin: 1em }");
    assert_eq!(read_file(&lib, "fractions", "index.html"), page.as_bytes());
    let new = lib.find_file("fractions", "style.css").expect("new file").blob.hash;
    assert_ne!(new, old);
    assert_eq!(new, Hash::of(b"body { margin: 1em }"));
    let uses: i64 = conn
        .query_row("SELECT count(*) FROM files WHERE hash = ?1", [&old.0[..]], |r| r.get(0))
        .expect("uses");
    assert_eq!(uses, 0, "the old blob is still referenced");
    let report = lib.verify(&Progress::new()).expect("verify");
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_title_change_updates_the_lesson_without_new_blobs() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    write_raw_lesson(
        src.path(),
        "renamed",
        &toml_for("renamed", ""),
        &[("index.html", b"<p>same</p>")],
    );
    import(data.path(), src.path());
    write_raw_lesson(
        src.path(),
        "renamed",
        &toml_for("renamed", "").replace("A lesson", "A better title"),
        &[],
    );
    let report = import(data.path(), src.path());
    assert_eq!(report.updated, vec!["renamed"], "{report:?}");
    assert_eq!(report.blobs_written, 0, "{report:?}");
    let lib = Library::open(data.path()).expect("open");
    assert_eq!(
        lib.lesson("renamed").expect("lesson").lesson.meta.title,
        "A better title"
    );
    assert_eq!(read_file(&lib, "renamed", "index.html"), b"<p>same</p>");
}

#[test]
fn identical_files_share_one_blob_and_empty_files_work() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let logo: &[u8] = b"\x89PNG the same logo everywhere";
    write_lesson(
        src.path(),
        "first",
        &[("index.html", b"<p>1</p>"), ("logo.png", logo), ("img/logo.png", logo)],
    );
    write_lesson(
        src.path(),
        "second",
        &[("index.html", b"<p>2</p>"), ("logo.png", logo), ("empty.txt", b"")],
    );
    let report = import(data.path(), src.path());
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    // index.html twice (different), the logo once, the empty file once.
    assert_eq!(report.blobs_written, 4, "{report:?}");
    let lib = Library::open(data.path()).expect("open");
    for (id, path) in [("first", "logo.png"), ("first", "img/logo.png"), ("second", "logo.png")] {
        assert_eq!(read_file(&lib, id, path), logo, "{id}/{path}");
    }
    assert_eq!(read_file(&lib, "second", "empty.txt"), b"");
    let verify = lib.verify(&Progress::new()).expect("verify");
    assert!(verify.is_clean(), "{verify:?}");
    assert_eq!(verify.blobs_checked, 4);
}

#[test]
fn hidden_and_system_files_are_skipped() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    write_lesson(
        src.path(),
        "tidy",
        &[
            ("index.html", b"<p>hi</p>"),
            ("img/pie.png", b"\x89PNG"),
            (".DS_Store", b"mac"),
            (".git/config", b"[core]"),
            (".git/objects/ab/cdef", b"object"),
            ("img/.hidden.png", b"hidden"),
            ("Thumbs.db", b"windows"),
            ("desktop.ini", b"[.ShellClassInfo]"),
        ],
    );
    let report = import(data.path(), src.path());
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let lib = Library::open(data.path()).expect("open");
    let paths: Vec<String> = lib
        .lesson("tidy")
        .expect("lesson")
        .file_list
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(paths, vec!["img/pie.png", "index.html"]);
    assert!(matches!(
        lib.find_file("tidy", ".git/config"),
        Err(ServiceError::NotFound)
    ));
}

/// Windows Explorer leaves a Thumbs.db in every folder that holds pictures, so the one in
/// `img/` is the one a teacher's stick really has.
#[test]
fn thumbs_db_in_a_picture_folder_is_skipped() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    write_lesson(
        src.path(),
        "pictures",
        &[
            ("index.html", b"<p>hi</p>"),
            ("img/pie.png", b"\x89PNG"),
            ("img/Thumbs.db", b"windows"),
        ],
    );
    import(data.path(), src.path());
    let lib = Library::open(data.path()).expect("open");
    let paths: Vec<String> = lib
        .lesson("pictures")
        .expect("lesson")
        .file_list
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(paths, vec!["img/pie.png", "index.html"]);
}

#[test]
fn a_file_over_8_mib_round_trips_by_ranges() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let size = 8 * 1024 * 1024 + 3 * CHUNK_SIZE + 12_345;
    let big = pseudo_random_bytes(size, 7);
    write_lesson(
        src.path(),
        "film",
        &[("index.html", b"<video src=film.mp4>"), ("media/film.mp4", &big)],
    );
    let report = import(data.path(), src.path());
    assert_eq!(report.added, vec!["film"]);
    assert_eq!(report.blobs_written, 2);
    let lib = Library::open(data.path()).expect("open");
    let hit = lib.find_file("film", "media/film.mp4").expect("file");
    assert_eq!(hit.media_type, "video/mp4");
    assert_eq!(hit.blob.size, size as u64);
    assert_eq!(hit.blob.storage, Storage::Raw);
    assert_eq!(hit.blob.hash, Hash::of(&big));
    let chunk = CHUNK_SIZE as u64;
    let eight = 8 * 1024 * 1024u64;
    let len = size as u64;
    for range in [
        0..1,
        0..100,
        chunk - 3..chunk + 5,
        eight - 10..eight + 10,
        5 * chunk..7 * chunk + 1,
        len - 10..len,
        0..len,
    ] {
        let got = lib.read(hit.blob.hash, Variant::Raw, range.clone()).expect("read");
        assert!(
            got == big[range.start as usize..range.end as usize],
            "range {range:?} differs"
        );
    }
    let verify = lib.verify(&Progress::new()).expect("verify");
    assert!(verify.is_clean(), "{verify:?}");
    assert_eq!(verify.blobs_checked, 2);
    assert!(verify.bytes_checked >= len);
}

#[test]
fn a_lesson_folder_given_directly_is_one_lesson() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let dir = write_lesson(
        src.path(),
        "solo",
        &[("index.html", b"<p>solo</p>"), ("img/a.png", b"\x89PNG a")],
    );
    let report = import(data.path(), &dir);
    assert_eq!(report.added, vec!["solo"]);
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let lib = Library::open(data.path()).expect("open");
    let lesson = lib.lesson("solo").expect("lesson");
    assert_eq!(lesson.file_list.len(), 2, "{lesson:?}");
    assert_eq!(read_file(&lib, "solo", "img/a.png"), b"\x89PNG a");
}

#[test]
fn an_empty_folder_is_nothing_to_import() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    let lib = Library::open(data.path()).expect("open");
    let err = lib
        .import_folder(src.path(), &Default::default(), &Progress::new())
        .expect_err("nothing to import");
    assert!(
        matches!(&err, ServiceError::NothingToImport(p) if p == src.path()),
        "{err:?}"
    );
    assert!(err.to_string().contains("lesson.toml"), "{err}");
}

fn sample_report(lib: &Library) -> Option<ImportReport> {
    lib.load_samples_once().expect("samples")
}

#[test]
fn samples_load_once_on_a_new_store() {
    let data = tempfile::tempdir().expect("data");
    let lib = Library::open(data.path()).expect("open");
    let report = sample_report(&lib).expect("first time loads samples");
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert!(report.added.len() >= 12, "{report:?}");
    let lessons = lib.lessons(&Default::default()).expect("lessons");
    assert_eq!(lessons.len(), report.added.len());
    assert!(lessons.iter().all(|l| l.origin == Origin::Sample), "{lessons:?}");
    for lesson in &lessons {
        let entry = lib.entry_of(&lesson.meta.id).expect("entry");
        let bytes = read_file(&lib, &lesson.meta.id, &entry);
        assert!(!bytes.is_empty(), "{} has an empty entry page", lesson.meta.id);
    }
    assert!(sample_report(&lib).is_none(), "samples loaded twice");
    drop(lib);
    let reopened = Library::open(data.path()).expect("reopen");
    assert!(
        sample_report(&reopened).is_none(),
        "samples loaded again after a restart"
    );
    assert_eq!(reopened.count_lessons().expect("count"), lessons.len() as u64);
}

#[test]
fn samples_are_not_loaded_into_a_store_with_lessons() {
    let src = tempfile::tempdir().expect("src");
    let data = tempfile::tempdir().expect("data");
    write_lesson(src.path(), "mine", &[("index.html", b"<p>mine</p>")]);
    import(data.path(), src.path());
    let lib = Library::open(data.path()).expect("open");
    assert!(sample_report(&lib).is_none());
    assert_eq!(lesson_ids(data.path()), BTreeSet::from(["mine".to_owned()]));
}
