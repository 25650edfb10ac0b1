//! Gzip variants made after a package import: a gzip-only phone gets gzip for a lesson imported
//! moments ago (compressed on the fly) and the same bytes once the background worker has stored
//! the variant; `dars status` counts what is left; verify passes before and after.

use std::path::Path;
use std::time::{Duration, Instant};

use dars::keys::SecretKey;
use dars::service::package::{ImportPackageOptions, PublishOptions};
use dars::service::{Library, Progress};
use dars::store::Variant;

use crate::common::{TestServer, client, gunzip, pseudo_random_text, write_lesson};

/// Publishes two lessons of text (and a picture) and returns the import options trusting them.
fn package(dir: &Path) -> (ImportPackageOptions, Vec<(String, Vec<u8>)>) {
    let src = dir.join("src");
    let mut files = Vec::new();
    for (i, id) in ["alpha", "beta"].iter().enumerate() {
        let page = pseudo_random_text(40_000 + 5_000 * i, 7 + i as u64);
        let css = format!("body {{ margin: 0 auto; max-width: {}rem }}\n", 40 + i)
            .repeat(60)
            .into_bytes();
        write_lesson(
            &src,
            id,
            &[
                ("index.html", page.as_slice()),
                ("style.css", css.as_slice()),
                ("pic.png", b"\x89PNG not text".as_slice()),
            ],
        );
        files.push((format!("/lessons/{id}/index.html"), page));
        files.push((format!("/lessons/{id}/style.css"), css));
    }
    let secret = SecretKey::generate().expect("key");
    let public = secret.public();
    let mut opts = PublishOptions::new(secret);
    opts.seq = Some(1);
    let scan = dars::service::scan_folder(&src).expect("scan");
    dars::service::package::publish(scan, &dir.join("pkg"), &opts, &Progress::new()).expect("publish");
    let import = ImportPackageOptions {
        trusted: vec![public],
        allow_downgrade: false,
    };
    (import, files)
}

#[test]
fn a_package_import_leaves_gzip_to_later_and_on_the_fly_bytes_equal_the_stored_ones() {
    let work = tempfile::tempdir().expect("work");
    let (opts, files) = package(work.path());
    let data = work.path().join("data");
    let library = Library::open(&data).expect("open");
    library
        .import_package(&work.path().join("pkg"), &opts, &Progress::new())
        .expect("import");
    let status = library.status().expect("status");
    assert_eq!(status.gzip_pending, 4, "two pages and two stylesheets wait for gzip");
    assert!(library.verify(&Progress::new()).expect("verify").problems.is_empty());

    let mut before = Vec::new();
    for (url, raw) in &files {
        let (id, path) = url["/lessons/".len()..].split_once('/').expect("url");
        let hit = library.find_file(id, path).expect("file");
        assert!(
            !hit.blob.has_gzip(),
            "{url} has a stored gzip variant right after the import"
        );
        let gz = library.body(&hit.blob, Variant::Gzip).expect("gzip on the fly");
        assert!(
            gunzip(&gz) == *raw,
            "{url}: gzip made on the fly does not decode to the file"
        );
        before.push(gz);
    }

    let made = library.make_gzip_variants(&|| false).expect("make variants");
    assert_eq!(made, 4);
    assert_eq!(library.status().expect("status").gzip_pending, 0);
    assert_eq!(library.make_gzip_variants(&|| false).expect("again"), 0);
    assert!(library.verify(&Progress::new()).expect("verify").problems.is_empty());

    // A fresh library (no cache) reads the stored variants: the same bytes as on the fly.
    let fresh = Library::open(&data).expect("reopen");
    for ((url, _), gz) in files.iter().zip(&before) {
        let (id, path) = url["/lessons/".len()..].split_once('/').expect("url");
        let hit = fresh.find_file(id, path).expect("file");
        assert!(hit.blob.has_gzip(), "{url}");
        let stored = fresh.body(&hit.blob, Variant::Gzip).expect("stored gzip");
        assert!(
            stored == *gz,
            "{url}: the stored gzip variant differs from the one sent before"
        );
    }
}

async fn get(server: &TestServer, url: &str) -> (Option<String>, Option<String>, Vec<u8>) {
    let resp = client()
        .get(server.url(url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().expect("text").to_owned());
    let (coding, etag) = (header("content-encoding"), header("etag"));
    (coding, etag, resp.bytes().await.expect("body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_only_phone_gets_gzip_before_and_after_the_background_worker_stores_it() {
    let work = tempfile::tempdir().expect("work");
    let (opts, files) = package(work.path());
    let pkg = work.path().join("pkg");
    // Hold the write lock from before the server starts, so its worker cannot store a
    // variant while the phone asks.
    let mut holder = None;
    let server = TestServer::start(|data| {
        Library::open(data)
            .expect("open")
            .import_package(&pkg, &opts, &Progress::new())
            .expect("import");
        let conn = rusqlite::Connection::open(data.join("dars.sqlite")).expect("holder");
        conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
        holder = Some(conn);
    })
    .await;
    let holder = holder.expect("holder");
    let db = server.data.path().join("dars.sqlite");
    let pending = || {
        let conn = rusqlite::Connection::open(&db).expect("db");
        conn.query_row(
            "SELECT count(*) FROM blobs WHERE storage = 1 AND gzip_size IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .expect("count")
    };

    let mut before = Vec::new();
    for (url, raw) in &files {
        let (coding, etag, body) = get(&server, url).await;
        assert_eq!(
            coding.as_deref(),
            Some("gzip"),
            "{url}: a gzip-only phone must get gzip"
        );
        assert!(
            gunzip(&body) == *raw,
            "{url}: gzip made on the fly does not decode to the file"
        );
        before.push((etag, body));
    }
    assert_eq!(pending(), 4, "the variants were stored while the store was locked");
    holder.execute_batch("ROLLBACK").expect("unlock");

    // The worker stores them (it was woken by the requests).
    let deadline = Instant::now() + Duration::from_secs(120);
    while pending() > 0 {
        assert!(
            Instant::now() < deadline,
            "the background worker did not store the variants"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for ((url, raw), (etag, body)) in files.iter().zip(&before) {
        let (coding, etag_after, after) = get(&server, url).await;
        assert_eq!(coding.as_deref(), Some("gzip"), "{url}");
        assert_eq!(&etag_after, etag, "{url}: the ETag changed when the variant was stored");
        assert!(
            after == *body,
            "{url}: the stored variant differs from the one made on the fly"
        );
        assert!(gunzip(&after) == *raw, "{url}");
    }
    server.stop().await;
}
