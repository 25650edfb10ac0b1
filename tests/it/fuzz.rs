//! Property tests (proptest) of every parser that takes outside input: lesson.toml, package
//! indexes and manifests (and whole packages with damaged files), `Range`, `Accept-Encoding`,
//! the conditional headers, request paths through the real router, and teachers' zip uploads. A few hundred cases
//! each here; `bench/fuzz.sh` runs them long. Failures are kept in proptest-regressions/.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dars::http::negotiate::{Coding, RangeRequest, choose_coding, if_range_allows, none_match, parse_range};
use dars::lesson::{check_relative_path, parse_meta};
use dars::package::{Index, Manifest, check_index, check_manifest};
use proptest::prelude::*;
use tower::ServiceExt;

/// Cases per property: `PROPTEST_CASES` (bench/fuzz.sh sets it high), else a few hundred.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// TOML-ish text built from the pieces lesson.toml files are made of, so the parser's
/// deeper checks (ids, languages, grades, entry paths) are reached, not only its syntax errors.
fn lesson_toml() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("title".to_owned()),
        Just("language".to_owned()),
        Just("grade".to_owned()),
        Just("subject".to_owned()),
        Just("summary".to_owned()),
        Just("entry".to_owned()),
        Just("order".to_owned()),
        "[a-z]{1,8}",
    ];
    let value = prop_oneof![
        "\"[a-z0-9-]{0,70}\"",
        "\"\\PC{0,20}\"",
        "-?[0-9]{1,20}",
        Just("\"../x.html\"".to_owned()),
        Just("\"a//b\"".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        "\\PC{0,12}",
        Just("[1, 2]".to_owned()),
        Just("{ a = 1 }".to_owned()),
    ];
    proptest::collection::vec((key, value, "[ \t\r]{0,2}"), 0..10).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, pad)| format!("{k}{pad}= {v}\n"))
            .collect::<String>()
    })
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn lesson_toml_never_panics_and_what_passes_is_valid(text in prop_oneof![lesson_toml(), "\\PC{0,200}", any::<String>()]) {
        if let Ok(meta) = parse_meta(&text, Path::new("x/lesson.toml")) {
            prop_assert!(dars::lesson::valid_id(&meta.id));
            prop_assert!(check_relative_path(&meta.entry).is_ok());
            prop_assert!(meta.grade <= 11);
        }
    }

    #[test]
    fn range_never_panics_and_partial_ranges_lie_inside(
        header in prop_oneof![
            "(bytes|BYTES|items| bytes)=[ 0-9]{0,21}-[ 0-9]{0,21}",
            "bytes=-?[0-9]{0,5}(,[0-9]{0,3}-[0-9]{0,3})?",
            "\\PC{0,40}",
        ],
        len in prop_oneof![Just(0u64), 0u64..1000, any::<u64>()],
    ) {
        match parse_range(Some(&header), len) {
            RangeRequest::Partial(r) => prop_assert!(r.start < r.end && r.end <= len, "{header:?} {len} -> {r:?}"),
            RangeRequest::Full | RangeRequest::Unsatisfiable => {}
        }
    }

    #[test]
    fn accept_encoding_never_panics_and_chooses_only_what_is_available(
        header in prop_oneof![
            proptest::collection::vec(
                ("(gzip|zstd|br|identity|\\*|x-gzip|GZIP|[a-z]{1,5})", "(;q=[0-9](\\.[0-9]{0,4})?|;q=|;[a-z]=1|)"),
                0..6,
            ).prop_map(|items| items.into_iter().map(|(c, q)| format!("{c}{q}")).collect::<Vec<_>>().join(", ")),
            "\\PC{0,60}",
        ],
        media in any::<bool>(),
    ) {
        let available: &[Coding] = if media { &[Coding::Identity] } else { &[Coding::Zstd, Coding::Gzip, Coding::Identity] };
        if let Some(chosen) = choose_coding(Some(&header), available) {
            prop_assert!(available.contains(&chosen));
        }
    }

    #[test]
    fn conditional_headers_never_panic(header in "\\PC{0,60}", etag in "\"[0-9a-f]{0,32}(-gz|-zst)?\"") {
        let _ = none_match(Some(&header), &etag);
        prop_assert!(if_range_allows(Some(&etag), &etag));
        let _ = if_range_allows(Some(&header), &etag);
    }

    #[test]
    fn accepted_lesson_paths_have_no_way_out(path in prop_oneof![
        proptest::collection::vec(prop_oneof!["[a-z.]{1,4}", Just("..".to_owned()), Just(".".to_owned()), Just(String::new()), "\\PC{1,3}"], 1..5)
            .prop_map(|parts| parts.join("/")),
        "\\PC{0,30}",
    ]) {
        if check_relative_path(&path).is_ok() {
            prop_assert!(!path.starts_with('/') && !path.contains('\\'));
            prop_assert!(path.split('/').all(|p| !p.is_empty() && p != "." && p != ".."), "{path:?}");
        }
    }

    #[test]
    fn index_and_manifest_documents_never_panic(doc in damaged_json()) {
        if let Ok(index) = serde_json::from_slice::<Index>(&doc) {
            let _ = check_index(&index);
        }
        if let Ok(manifest) = serde_json::from_slice::<Manifest>(&doc)
            && check_manifest(&manifest).is_ok()
        {
            for lesson in &manifest.lessons {
                let meta = lesson.meta();
                prop_assert!(dars::lesson::valid_id(&meta.id));
                for file in &lesson.files {
                    prop_assert!(check_relative_path(&file.path).is_ok());
                    prop_assert!(file.hash().is_some());
                }
            }
        }
    }
}

/// A valid index or manifest with a few bytes changed, cut short or spliced.
fn damaged_json() -> impl Strategy<Value = Vec<u8>> {
    let manifest = serde_json::json!({
        "format": dars::package::MANIFEST_FORMAT, "publisher": "local", "seq": 3, "created": "2026-01-01T00:00:00Z",
        "lessons": [{
            "id": "math-4", "title": "Kəsrlər", "language": "az", "grade": 4, "subject": "R", "entry": "index.html",
            "files": [{"path": "index.html", "size": 5, "media_type": "text/html", "encoding": "raw", "stored_size": 5,
                       "hash": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"}]
        }]
    })
    .to_string()
    .into_bytes();
    let index = serde_json::json!({
        "format": dars::package::INDEX_FORMAT, "part_size": 1000,
        "manifests": [{"manifest": "manifests/a-1.json", "signature": "manifests/a-1.sig", "lessons": ["math-4"]}],
        "local": "local.json"
    })
    .to_string()
    .into_bytes();
    (
        prop_oneof![Just(manifest), Just(index)],
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..6),
    )
        .prop_map(|(mut doc, edits)| {
            for (at, byte, kind) in edits {
                if doc.is_empty() {
                    break;
                }
                let i = at.index(doc.len());
                match kind {
                    0 => doc[i] = byte,
                    1 => doc.truncate(i),
                    _ => doc.insert(i, byte),
                }
            }
            doc
        })
}

/// Request paths of every shape through the real router: only the listed files are ever
/// served, and nothing answers with a server error.
#[test]
fn request_paths_through_the_router_reach_only_lesson_files() {
    let data = tempfile::tempdir().expect("data");
    let src = tempfile::tempdir().expect("src");
    crate::common::write_lesson(
        src.path(),
        "demo",
        &[("index.html", b"demo page"), ("img/a.png", b"png")],
    );
    crate::common::write_lesson(src.path(), "other", &[("index.html", b"other page")]);
    let report = crate::common::import(data.path(), src.path());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let library = dars::service::Library::open(data.path()).expect("open");
    let router = dars::http::router(dars::http::AppState::new(library), &dars::http::Limits::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let segment = prop_oneof![
        Just("..".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2E.".to_owned()),
        Just(".".to_owned()),
        Just("%2f".to_owned()),
        Just("%5c".to_owned()),
        Just("..%5c".to_owned()),
        Just("\\".to_owned()),
        Just("index.html".to_owned()),
        Just("img".to_owned()),
        Just("a.png".to_owned()),
        Just("demo".to_owned()),
        Just("other".to_owned()),
        Just("%00".to_owned()),
        Just(String::new()),
        "[a-zA-Z0-9%._~-]{1,6}",
    ];
    let paths = proptest::collection::vec(segment, 0..6).prop_map(|parts| format!("/lessons/demo/{}", parts.join("/")));
    let mut runner = proptest::test_runner::TestRunner::new(config(300));
    runner
        .run(&paths, |path| {
            let Ok(request) = Request::get(&path).body(Body::empty()) else {
                return Ok(()); // not a URI at all: hyper refuses it before any route
            };
            let response = runtime.block_on(router.clone().oneshot(request)).expect("infallible");
            let status = response.status();
            prop_assert!(!status.is_server_error(), "{path} -> {status}");
            if status == StatusCode::OK {
                let body = runtime
                    .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
                    .expect("body");
                let served = [&b"demo page"[..], b"png"];
                prop_assert!(served.contains(&&body[..]), "{path} served {body:?}");
                let exact = ["/lessons/demo/", "/lessons/demo/index.html", "/lessons/demo/img/a.png"];
                let decoded = path.replace("%2e", ".").replace("%2E", ".");
                prop_assert!(
                    exact.contains(&path.as_str()) || exact.contains(&decoded.as_str()) || path.contains('%'),
                    "{path} was served"
                );
            }
            Ok(())
        })
        .expect("paths");
}

/// Every file of a real signed package in turn, with bytes changed, cut or added: the import
/// never panics, and when it refuses the package the store holds none of its lessons.
#[test]
fn damaged_packages_never_panic_and_are_refused_whole() {
    use dars::keys::SecretKey;
    use dars::service::package::{ImportPackageOptions, PublishOptions};
    use dars::service::{Library, Progress};

    let src = tempfile::tempdir().expect("src");
    let page = crate::common::pseudo_random_text(3000, 1);
    let picture = crate::common::pseudo_random_bytes(5000, 2);
    crate::common::write_lesson(src.path(), "alpha", &[("index.html", &page), ("img/a.png", &picture)]);
    crate::common::write_lesson(src.path(), "beta", &[("index.html", b"<p>beta</p>")]);
    let key = SecretKey::generate().expect("key");
    let trusted = vec![key.public()];
    let mut opts = PublishOptions::new(key);
    opts.seq = Some(1);
    let pkg = tempfile::tempdir().expect("pkg");
    let scan = dars::service::scan_folder(src.path()).expect("scan");
    dars::service::package::publish(scan, pkg.path(), &opts, &Progress::new()).expect("publish");
    let files: Vec<std::path::PathBuf> = walkdir::WalkDir::new(pkg.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(pkg.path()).expect("inside").to_path_buf())
        .collect();
    assert!(files.len() > 4, "{files:?}");
    let edits = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4);
    let mut runner = proptest::test_runner::TestRunner::new(config(48));
    runner
        .run(&(any::<prop::sample::Index>(), edits), |(which, edits)| {
            let copy = tempfile::tempdir().expect("copy");
            for file in &files {
                let to = copy.path().join(file);
                std::fs::create_dir_all(to.parent().expect("parent")).expect("dirs");
                std::fs::copy(pkg.path().join(file), &to).expect("copy");
            }
            let target = copy.path().join(which.get(&files));
            let mut bytes = std::fs::read(&target).expect("read");
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] ^= byte | 1,
                    1 => bytes.truncate(i),
                    _ => bytes.insert(i, byte),
                }
            }
            std::fs::write(&target, &bytes).expect("write");
            let data = tempfile::tempdir().expect("data");
            let library = Library::open(data.path()).expect("open");
            let options = ImportPackageOptions {
                trusted: trusted.clone(),
                allow_downgrade: false,
            };
            let result = library.import_package(copy.path(), &options, &Progress::new());
            let lessons = library.lessons(&dars::store::LessonFilter::default()).expect("list");
            match result {
                Ok(_) => prop_assert_eq!(lessons.len(), 2, "a package that imports carries both lessons"),
                Err(_) => prop_assert!(lessons.is_empty(), "a refused package left {} lessons", lessons.len()),
            }
            let report = library.verify(&Progress::new()).expect("verify");
            prop_assert!(report.is_clean(), "{:?} {:?}", report.database, report.problems.len());
            Ok(())
        })
        .expect("damaged packages");
}

/// Zips a teacher might upload, built from good and hostile entry names (`..`, absolute,
/// backslashes, hidden files, empty names) with a lesson.toml that may or may not be valid,
/// then maybe damaged byte by byte: the upload never panics, nothing lands outside its
/// staging folder, and a refused upload leaves the store as it was.
const VALID_TOML: &str = "id = \"up\"\ntitle = \"Yükləmə\"\nlanguage = \"az\"\ngrade = 4\nsubject = \"Riyaziyyat\"\n";

#[test]
fn uploaded_zips_never_panic_nor_write_outside_the_upload() {
    use std::io::Write as _;

    use dars::service::upload::{UnpackLimits, Upload};
    use dars::service::{Library, Role, Session};

    let name = prop_oneof![
        Just("lesson/lesson.toml".to_owned()),
        Just("lesson/index.html".to_owned()),
        Just("lesson/img/a.png".to_owned()),
        Just("lesson.toml".to_owned()),
        Just("index.html".to_owned()),
        Just("../escape.html".to_owned()),
        Just("lesson/../../escape.html".to_owned()),
        Just("/etc/escape".to_owned()),
        Just("lesson\\..\\escape".to_owned()),
        Just("lesson/.hidden".to_owned()),
        Just("__MACOSX/lesson/._index.html".to_owned()),
        Just(String::new()),
        r"[a-z./\\]{1,24}",
        "\\PC{1,40}",
    ];
    let body = prop_oneof![
        Just(
            "id = \"up\"\ntitle = \"Yükləmə\"\nlanguage = \"az\"\ngrade = 4\nsubject = \"Riyaziyyat\"\n"
                .as_bytes()
                .to_vec()
        ),
        Just(b"<h1>D\xc9\x99rs</h1>".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..300),
    ];
    let entries = (any::<bool>(), proptest::collection::vec((name, body), 0..4));
    let damage = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3);

    let data = tempfile::tempdir().expect("data");
    let library = Library::open(data.path()).expect("open");
    let before: Vec<String> = std::fs::read_dir(data.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let teacher = Session {
        account: "fuzz".to_owned(),
        role: Role::Teacher,
        csrf: String::new(),
    };
    let limits = UnpackLimits {
        max_bytes: 1 << 20,
        ..UnpackLimits::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config(64));
    runner
        .run(&(entries, damage), |((whole, extra), damage)| {
            // Half the cases start from a lesson that imports, so the checks after a
            // success are reached too.
            let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
            if whole {
                entries.push(("lesson/lesson.toml".to_owned(), VALID_TOML.as_bytes().to_vec()));
                entries.push(("lesson/index.html".to_owned(), b"<h1>Up</h1>".to_vec()));
            }
            entries.extend(extra);
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for (name, body) in &entries {
                let options = zip::write::SimpleFileOptions::default();
                if zip.start_file(name.as_str(), options).is_ok() {
                    zip.write_all(body).expect("write entry");
                }
            }
            let mut bytes = zip.finish().expect("finish").into_inner();
            for (at, byte) in damage {
                let i = at.index(bytes.len());
                bytes[i] ^= byte | 1;
            }
            let lessons = |lib: &Library| lib.lessons(&dars::store::LessonFilter::default()).expect("list");
            let stored_before = lessons(&library);
            let staging = library.staging().expect("staging");
            std::fs::write(staging.zip_path(), &bytes).expect("zip");
            let result = library.import_upload(&teacher, &staging, &Upload::Zip, &limits);
            drop(staging);
            if let Err(e) = &result {
                prop_assert_eq!(
                    lessons(&library),
                    stored_before,
                    "refused ({}) yet the store changed",
                    e
                );
                prop_assert!(!e.to_string().is_empty());
            }
            // Nothing written beside the store: no escaped file, no staging folder left.
            let mut now: Vec<String> = std::fs::read_dir(data.path())
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("dars.sqlite") && n != "dars.lock")
                .collect();
            now.sort();
            let mut expected: Vec<String> = before
                .iter()
                .filter(|n| !n.starts_with("dars.sqlite"))
                .cloned()
                .collect();
            expected.sort();
            prop_assert_eq!(now, expected);
            prop_assert!(!data.path().parent().expect("tmp").join("escape.html").exists());
            Ok(())
        })
        .expect("uploaded zips");
}

/// The seed corpus: inputs picked by hand for the edges each parser has, run every time.
#[test]
fn seed_corpus_of_awkward_inputs() {
    let tomls = [
        "",
        "\u{feff}id = \"a\"",
        "id = \"ə\"\ntitle = \"Ə\u{0}\"",
        "ид = 1\n\"ə\" = ",
        "id = \"a\"\ntitle = \"t\"\nlanguage = \"az\"\ngrade = 99999999999999999999\nsubject = \"s\"",
        "id = \"a\"\ntitle = \"t\"\nlanguage = \"AZ \"\ngrade = 0\nsubject = \"s\"\nentry = \"a/./b\"",
        "[id]\n[[id]]",
        "id = \"a\"\nid = \"b\"",
        &"x = [".repeat(2000),
    ];
    for text in tomls {
        let _ = parse_meta(text, Path::new("seed/lesson.toml"));
    }
    for (header, len) in [
        ("bytes=18446744073709551615-", u64::MAX),
        ("bytes=-18446744073709551615", 10),
        ("bytes=99999999999999999999-1", 10),
        ("bytes=0-0", 0),
        ("bytes=-0", 5),
        ("bytes= 1 - 2 ", 5),
        ("bytes=5-1", 10),
        ("bytes=ə-1", 10),
        ("bytes=0-,1-2", 10),
    ] {
        if let RangeRequest::Partial(r) = parse_range(Some(header), len) {
            assert!(r.start < r.end && r.end <= len, "{header:?} {len} -> {r:?}");
        }
    }
    for header in [
        "q=1",
        ";q=0",
        "gzip;q=",
        "gzip;q=0.",
        "gzip;q=1.0000",
        "*;q=0.5, identity;q=0",
        "ə, gzip",
        ",,,,",
    ] {
        let _ = choose_coding(Some(header), &[Coding::Zstd, Coding::Gzip, Coding::Identity]);
    }
    for path in [
        "..",
        "a/..",
        "a/../b",
        "./a",
        "a/.",
        "a//b",
        "/a",
        "C:a",
        "a\\b",
        "a\u{7f}",
        "ə/ü.html",
    ] {
        let ok = check_relative_path(path).is_ok();
        assert_eq!(ok, path == "ə/ü.html", "{path:?}");
    }
}
