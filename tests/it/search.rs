//! Search over real HTTP: folding (`ders` finds `dərs`), Russian in any case, ranking,
//! snippets in the original letters, the index following imports and removals, and queries
//! that look like syntax.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

use dars::keys::SecretKey;
use dars::service::package::{ImportPackageOptions, PublishOptions};
use dars::service::{Library, Progress, SearchQuery};

use crate::common::{TestServer, client, import};

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /api/v1/search` with `q` and extra raw query text; the status and the JSON body.
async fn search_raw(server: &TestServer, q: &str, extra: &str) -> (StatusCode, Value) {
    let url = server.url(&format!("/api/v1/search?q={}{extra}", urlencode(q)));
    let resp = client().get(url).send().await.expect("send");
    let status = resp.status();
    let body = resp.bytes().await.expect("body");
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, value)
}

/// The results of a search that must succeed.
async fn search(server: &TestServer, q: &str, extra: &str) -> Vec<Value> {
    let (status, value) = search_raw(server, q, extra).await;
    assert_eq!(status, StatusCode::OK, "{q}: {value}");
    let results = value["results"].as_array().expect("results").clone();
    assert_eq!(value["count"].as_u64(), Some(results.len() as u64));
    results
}

fn ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The words a result's snippet marks as hits.
fn hits(result: &Value) -> Vec<String> {
    result["snippet"]
        .as_array()
        .expect("snippet")
        .iter()
        .filter(|p| p["hit"] == true)
        .map(|p| p["text"].as_str().expect("text").to_owned())
        .collect()
}

fn snippet_text(result: &Value) -> String {
    result["snippet"]
        .as_array()
        .expect("snippet")
        .iter()
        .map(|p| p["text"].as_str().expect("text"))
        .collect()
}

/// A lesson folder with its own metadata and one page.
fn write(root: &Path, id: &str, title: &str, language: &str, summary: &str, body: &str) {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).expect("dir");
    let toml = format!(
        "id = \"{id}\"\ntitle = \"{title}\"\nlanguage = \"{language}\"\ngrade = 5\nsubject = \"Test\"\nsummary = \"{summary}\"\n"
    );
    std::fs::write(dir.join("lesson.toml"), toml).expect("toml");
    let html = format!(
        "<!doctype html><html><head><title>{title}</title><style>.x{{}}</style></head><body><main>{body}</main>\
         <script>var hidden = 'gizlisöz';</script></body></html>"
    );
    std::fs::write(dir.join("index.html"), html).expect("html");
}

#[tokio::test]
async fn the_sample_lessons_are_found_with_and_without_azerbaijani_letters() {
    let server = TestServer::with_samples().await;

    // "Dərsin məqsədi" opens the Azerbaijani lessons' pages.
    let ders = search(&server, "ders", "").await;
    assert!(
        ids(&ders).contains(&"language-5-vowel-harmony-az".to_owned()),
        "{:?}",
        ids(&ders)
    );
    for result in &ders {
        let marked = hits(result);
        assert!(!marked.is_empty(), "{result}");
        assert!(
            marked.iter().all(|w| w.to_lowercase().starts_with("dərs")),
            "{marked:?}"
        );
    }
    assert_eq!(ids(&search(&server, "dərs", "").await), ids(&ders));

    // "şagird" is only on the fractions lesson's practice page, not its entry page.
    let sagird = search(&server, "sagird", "").await;
    assert_eq!(ids(&sagird), ["math-4-fractions-az"]);
    assert!(
        hits(&sagird[0]).iter().any(|w| w.starts_with("şagird")),
        "{}",
        sagird[0]
    );
    assert!(
        !snippet_text(&sagird[0]).contains("sagird"),
        "a folded word shown: {}",
        sagird[0]
    );

    // A title word without its letters ranks its lesson first.
    let xezer = search(&server, "xezer denizi", "").await;
    assert_eq!(ids(&xezer)[0], "geography-6-caspian-az");
    assert_eq!(
        ids(&search(&server, "ahəng QANUNU", "").await)[0],
        "language-5-vowel-harmony-az"
    );

    // Russian in any case and with е for ё: "течёт" is in the water lessons' text.
    let upper = search(&server, "ГОБУСТАН", "").await;
    assert_eq!(ids(&upper)[0], "history-6-gobustan-ru");
    assert_eq!(ids(&search(&server, "гобустан", "").await), ids(&upper));
    let techet = search(&server, "течет", "").await;
    assert!(!techet.is_empty());
    assert!(
        techet.iter().all(|r| hits(r).iter().any(|w| w.contains('ё'))),
        "{techet:?}"
    );

    // English, and a word only in an English page's text.
    assert_eq!(
        ids(&search(&server, "pondweed", "").await),
        ["science-7-photosynthesis-en"]
    );
    let pythagoras = search(&server, "pythagorean", "").await;
    assert_eq!(ids(&pythagoras)[0], "math-8-pythagoras-en");
    for key in [
        "id", "title", "language", "grade", "subject", "summary", "url", "snippet", "score",
    ] {
        assert!(pythagoras[0].get(key).is_some(), "missing {key}");
    }
    assert_eq!(pythagoras[0]["url"], "/lessons/math-8-pythagoras-en/");
    assert!(pythagoras[0]["score"].as_f64().expect("score") > 0.0);

    // Words of a script or a style are not lesson text.
    assert!(search(&server, "stylesheet", "").await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn the_language_filter_and_the_limit_narrow_results() {
    let server = TestServer::with_samples().await;
    // Numbers are in lessons of every language.
    let all = search(&server, "1", "").await;
    let languages: std::collections::HashSet<String> = all
        .iter()
        .map(|r| r["language"].as_str().expect("language").to_owned())
        .collect();
    assert!(languages.len() >= 2, "{languages:?}");
    for language in ["az", "ru", "en"] {
        let only = search(&server, "1", &format!("&language={language}")).await;
        assert!(!only.is_empty(), "{language}");
        assert!(only.iter().all(|r| r["language"] == language), "{language}");
    }
    assert!(search(&server, "1", "&language=xx").await.is_empty());
    assert_eq!(
        ids(&search(&server, "гобустан", "&language=ru").await),
        ["history-6-gobustan-ru"]
    );
    assert!(search(&server, "гобустан", "&language=az").await.is_empty());
    let one = search(&server, "1", "&limit=1").await;
    assert_eq!(one.len(), 1);
    assert_eq!(ids(&one)[0], ids(&all)[0]);
    assert!(search(&server, "1", "&limit=100000").await.len() <= dars::service::MAX_RESULTS);
    let (status, _) = search_raw(&server, "1", "&limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test]
async fn titles_rank_above_text_and_snippets_keep_the_original_letters() {
    let source = tempfile::tempdir().expect("source");
    write(
        source.path(),
        "school-ru",
        "Школа",
        "ru",
        "Наша большая Школа.",
        "<p>Урок в Школе номер 5.</p>",
    );
    write(
        source.path(),
        "body-az",
        "Dağlar",
        "az",
        "Dağlar haqqında.",
        "<p>Bu dağda bir <b>vulkan</b> var, vulkan püskürür.</p>",
    );
    write(
        source.path(),
        "title-az",
        "Vulkan",
        "az",
        "Yer necə qaynayır.",
        "<p>Dağlar və onların quruluşu.</p>",
    );
    write(
        source.path(),
        "pupils-az",
        "Sinif",
        "az",
        "Sinifdə kim var?",
        "<p>Sinifdə 25 şagird var. Şagirdlər dərsə gəlir.</p>",
    );
    let server = TestServer::start(|data| {
        import(data, source.path());
    })
    .await;

    assert_eq!(ids(&search(&server, "vulkan", "").await), ["title-az", "body-az"]);
    for q in ["ШКОЛА", "школа", "Школа", "шКоЛа"] {
        let found = search(&server, q, "").await;
        assert_eq!(ids(&found), ["school-ru"], "{q}");
        assert!(
            hits(&found[0]).iter().all(|w| w.starts_with("Школ")),
            "{q}: {}",
            found[0]
        );
    }
    let pupils = search(&server, "sagird ders", "").await;
    assert_eq!(ids(&pupils), ["pupils-az"]);
    assert_eq!(hits(&pupils[0]), ["şagird", "Şagirdlər", "dərsə"]);
    assert_eq!(
        snippet_text(&pupils[0]),
        "Sinifdə 25 şagird var. Şagirdlər dərsə gəlir."
    );
    // A title-only match still gets a snippet: the start of the text.
    let title_only = search(&server, "sinif", "&language=az").await;
    assert_eq!(ids(&title_only), ["pupils-az"]);
    assert!(!hits(&title_only[0]).is_empty());
    // Words in no lesson at all: nothing. Several words, not all in one lesson: any of them.
    assert!(search(&server, "qqqq", "").await.is_empty());
    let any = search(&server, "vulkan şagird", "").await;
    assert_eq!(ids(&any).len(), 3, "{:?}", ids(&any));
    // Script text is not lesson text.
    assert!(search(&server, "gizlisoz", "").await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_reimported_lesson_is_found_by_its_new_text_and_a_removed_one_disappears() {
    let source = tempfile::tempdir().expect("source");
    write(
        source.path(),
        "water-az",
        "Su",
        "az",
        "Su haqqında.",
        "<p>Köhnə mətn: buxarlanma.</p>",
    );
    write(
        source.path(),
        "other-az",
        "Başqa",
        "az",
        "Başqa dərs.",
        "<p>Torpaq və daş.</p>",
    );
    let server = TestServer::start(|data| {
        import(data, source.path());
    })
    .await;
    assert_eq!(ids(&search(&server, "buxarlanma", "").await), ["water-az"]);

    write(
        source.path(),
        "water-az",
        "Su",
        "az",
        "Su haqqında.",
        "<p>Yeni mətn: yağıntı.</p>",
    );
    let report = import(server.data.path(), source.path());
    assert_eq!(report.updated, ["water-az"]);
    assert!(search(&server, "buxarlanma", "").await.is_empty());
    assert_eq!(ids(&search(&server, "yaginti", "").await), ["water-az"]);

    let conn = dars::store::open(server.data.path()).expect("open store");
    assert!(dars::store::remove_lesson(&conn, "water-az").expect("remove"));
    drop(conn);
    assert!(search(&server, "yaginti", "").await.is_empty());
    assert!(search(&server, "su", "").await.iter().all(|r| r["id"] != "water-az"));
    assert_eq!(ids(&search(&server, "torpaq", "").await), ["other-az"]);
    server.stop().await;
}

#[tokio::test]
async fn queries_that_look_like_syntax_never_fail() {
    let server = TestServer::with_samples().await;
    let long = "dərs ".repeat(3000);
    let hostile = [
        "\"",
        "*",
        "NEAR(",
        "-",
        "AND OR",
        "AND",
        "OR NOT",
        "\"dərs",
        "dərs*",
        "-su",
        "su -",
        "title:su",
        "^su",
        "(su",
        "su)",
        "NEAR(su dərs, 2)",
        "{su}",
        "'",
        "%",
        "\\",
        "\u{0}",
        "🙂",
        "   ",
        &long,
    ];
    for q in hostile {
        let (status, value) = search_raw(&server, q, "").await;
        assert_eq!(status, StatusCode::OK, "{q:?}: {value}");
        assert!(value["results"].is_array(), "{q:?}: {value}");
    }
    // Syntax characters are only separators: the words around them still match.
    assert!(!search(&server, "\"dərs*", "").await.is_empty());
    assert_eq!(
        ids(&search(&server, "NEAR(xəzər", "").await)[0],
        "geography-6-caspian-az"
    );
    // Empty or missing q: an empty list.
    assert!(search(&server, "", "").await.is_empty());
    let resp = client().get(server.url("/api/v1/search")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let value: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
    assert_eq!(value["count"], 0);
    // Bytes that are not UTF-8 are not an error either.
    let resp = client()
        .get(server.url("/api/v1/search?q=%FF%FEd%C9%99rs"))
        .send()
        .await
        .expect("send");
    assert!(!resp.status().is_server_error(), "{}", resp.status());
    server.stop().await;
}

/// Copies the sample lessons into `to`, with `replace` applied to every HTML page.
fn copy_samples(to: &Path, replace: (&str, &str)) {
    for entry in walkdir::WalkDir::new(crate::common::content_dir()) {
        let entry = entry.expect("walk");
        let rel = entry.path().strip_prefix(crate::common::content_dir()).expect("inside");
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("dir");
        } else if rel.extension().is_some_and(|e| e == "html") {
            let page = std::fs::read_to_string(entry.path()).expect("page");
            std::fs::write(&dest, page.replace(replace.0, replace.1)).expect("write");
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

fn library_ids(library: &Library, text: &str) -> Vec<String> {
    let query = SearchQuery {
        text: text.to_owned(),
        language: None,
        limit: 20,
    };
    library
        .search(&query)
        .expect("search")
        .into_iter()
        .map(|hit| hit.lesson.meta.id)
        .collect()
}

#[test]
fn lessons_from_a_signed_package_are_searchable_and_follow_its_new_version() {
    let work = tempfile::tempdir().expect("work");
    let key = SecretKey::generate().expect("key");
    let trusted = ImportPackageOptions {
        trusted: vec![key.public()],
        allow_downgrade: false,
    };
    let publish = |src: &Path, out: &Path, seq: u64| {
        let key = SecretKey::parse_file(&key.to_file_text()).expect("same key");
        let mut opts = PublishOptions::new(key);
        opts.seq = Some(seq);
        opts.zstd_level = 3;
        let scan = dars::service::scan_folder(src).expect("scan");
        dars::service::package::publish(scan, out, &opts, &Progress::new()).expect("publish");
    };
    copy_samples(&work.path().join("v1"), ("güzgü", "güzgü"));
    publish(&work.path().join("v1"), &work.path().join("pkg1"), 1);
    let data = work.path().join("data");
    let library = Library::open(&data).expect("open");
    library
        .import_package(&work.path().join("pkg1"), &trusted, &Progress::new())
        .expect("import v1");
    assert_eq!(library_ids(&library, "guzgu"), ["language-5-vowel-harmony-az"]);
    assert_eq!(library_ids(&library, "sagird"), ["math-4-fractions-az"]);

    // Version 2 of the package says "ayna" where version 1 said "güzgü".
    copy_samples(&work.path().join("v2"), ("güzgü", "ayna"));
    publish(&work.path().join("v2"), &work.path().join("pkg2"), 2);
    let report = library
        .import_package(&work.path().join("pkg2"), &trusted, &Progress::new())
        .expect("import v2");
    assert_eq!(report.updated, ["language-5-vowel-harmony-az"]);
    assert!(library_ids(&library, "guzgu").is_empty());
    assert_eq!(library_ids(&library, "ayna"), ["language-5-vowel-harmony-az"]);
}

#[test]
fn a_store_made_before_search_is_indexed_when_opened() {
    let data = tempfile::tempdir().expect("data");
    Library::open(data.path())
        .expect("open")
        .load_samples_once()
        .expect("samples");
    // Make it look like a store from before search: lessons, but no index and no version.
    let conn = rusqlite::Connection::open(data.path().join("dars.sqlite")).expect("sqlite");
    conn.execute_batch(
        "INSERT INTO lesson_fts (lesson_fts) VALUES ('delete-all');
         DELETE FROM lesson_text; DELETE FROM meta WHERE key = 'search_index_version';",
    )
    .expect("clear the index");
    let indexed: i64 = conn
        .query_row("SELECT count(*) FROM lesson_text", [], |r| r.get(0))
        .expect("count");
    assert_eq!(indexed, 0);
    drop(conn);
    let library = Library::open(data.path()).expect("reopen");
    assert_eq!(library_ids(&library, "sagird"), ["math-4-fractions-az"]);
    assert_eq!(library_ids(&library, "гобустан"), ["history-6-gobustan-ru"]);
    let conn = rusqlite::Connection::open(data.path().join("dars.sqlite")).expect("sqlite");
    let (indexed, lessons): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM lesson_text), (SELECT count(*) FROM lessons)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!(indexed, lessons);
}

/// How many segments the store's search index has, from FTS5's structure record (its
/// cookie, an optional version marker, then the number of levels and of segments as varints).
fn index_segments(data: &Path) -> u8 {
    let conn = rusqlite::Connection::open(data.join("dars.sqlite")).expect("store");
    let record: Vec<u8> = conn
        .query_row("SELECT block FROM lesson_fts_data WHERE id = 10", [], |r| r.get(0))
        .expect("structure record");
    let at = if record[4..8] == [0xff, 0, 0, 1] { 8 } else { 4 };
    let segments = record[at + 1];
    assert!(record[at] < 0x80 && segments < 0x80, "one-byte varints in this test");
    segments
}

#[test]
fn an_update_of_many_lessons_adds_one_segment_to_the_search_index() {
    let work = tempfile::tempdir().expect("work");
    let key = SecretKey::generate().expect("key");
    let trusted = ImportPackageOptions {
        trusted: vec![key.public()],
        allow_downgrade: false,
    };
    let publish = |version: &str, seq: u64, lessons: &[(String, String)]| {
        let src = work.path().join(format!("src-{version}"));
        for (id, word) in lessons {
            let page = format!("<html><body><p>{word} and the rest of lesson {id}</p></body></html>");
            crate::common::write_lesson(&src, id, &[("index.html", page.as_bytes())]);
        }
        let mut opts = PublishOptions::new(SecretKey::parse_file(&key.to_file_text()).expect("same key"));
        opts.seq = Some(seq);
        opts.zstd_level = 3;
        let out = work.path().join(format!("pkg-{version}"));
        let scan = dars::service::scan_folder(&src).expect("scan");
        dars::service::package::publish(scan, &out, &opts, &Progress::new()).expect("publish");
        out
    };
    let v1: Vec<(String, String)> = (0..24).map(|i| (format!("l{i:02}"), format!("old{i}"))).collect();
    let data = work.path().join("data");
    let library = Library::open(&data).expect("open");
    library
        .import_package(&publish("v1", 1, &v1), &trusted, &Progress::new())
        .expect("import v1");
    assert_eq!(index_segments(&data), 1, "a first import leaves its index merged");

    // Version 2 changes ten lessons (their rowids are old) and adds two (new rowids).
    let mut v2 = v1.clone();
    for (i, lesson) in v2.iter_mut().enumerate().take(10) {
        lesson.1 = format!("new{i}");
    }
    v2.push(("m1".to_owned(), "added1".to_owned()));
    v2.push(("m2".to_owned(), "added2".to_owned()));
    let report = library
        .import_package(&publish("v2", 2, &v2), &trusted, &Progress::new())
        .expect("import v2");
    assert_eq!((report.updated.len(), report.added.len()), (10, 2));
    // Indexed lesson by lesson, each lesson's rows made FTS5 write the one before as a
    // segment of its own: 12 more here.
    assert_eq!(index_segments(&data), 2, "the twelve lessons went into one new segment");
    assert_eq!(library_ids(&library, "new3"), ["l03"]);
    assert!(library_ids(&library, "old3").is_empty());
    assert_eq!(library_ids(&library, "old12"), ["l12"]);
    assert_eq!(library_ids(&library, "added2"), ["m2"]);
}
