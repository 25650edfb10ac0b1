//! File responses over real HTTP: encodings, ETag/304, HEAD, ranges, traversal, byte-exact
//! round trips of every sample file.

use std::path::Path;

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_NONE_MATCH, RANGE, VARY,
};

use crate::common::{TestServer, client, content_dir, gunzip, import, unzstd, write_lesson};

const PAGE: &[u8] = "<!doctype html><html lang=\"az\"><meta charset=\"utf-8\"><title>Dərs</title><p>Şagirdlər üçün dərs. Kəsrlər, bölmə, vurma.</p></html>\n".as_bytes();

fn page() -> Vec<u8> {
    PAGE.repeat(40)
}

fn media() -> Vec<u8> {
    // Big enough to span several stored chunks, and incompressible like a real picture.
    let mut state = 0x1234_5678_u32;
    (0..700_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

async fn fixture() -> TestServer {
    TestServer::start(|data| {
        let src = tempfile::tempdir().expect("src");
        let page = page();
        let media = media();
        write_lesson(
            src.path(),
            "demo",
            &[("index.html", &page), ("img/photo.png", &media), ("empty.txt", b""), ("notes.txt", b"short")],
        );
        write_lesson(src.path(), "nested", &[("html/start.html", &page)]);
        std::fs::write(src.path().join("nested/lesson.toml"), "id = \"nested\"\ntitle = \"N\"\nlanguage = \"ru\"\ngrade = 2\nsubject = \"S\"\nentry = \"html/start.html\"\n").expect("toml");
        let report = import(data, src.path());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    })
    .await
}

#[tokio::test]
async fn each_encoding_and_q_value_gets_the_right_stored_bytes() {
    let server = fixture().await;
    let url = server.url("/lessons/demo/index.html");
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some("gzip, deflate"), Some("gzip")),
        (Some("gzip, deflate, br, zstd"), Some("zstd")),
        (Some("zstd;q=0.1, gzip;q=0.9"), Some("gzip")),
        (Some("br"), None),
        (Some("*"), Some("zstd")),
        (Some("gzip;q=0"), None),
        (Some("identity"), None),
    ];
    for (accept, want) in cases {
        let mut req = client().get(&url);
        if let Some(accept) = accept {
            req = req.header(ACCEPT_ENCODING, *accept);
        }
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::OK, "{accept:?}");
        let encoding = resp
            .headers()
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().expect("text").to_owned());
        assert_eq!(encoding.as_deref(), *want, "{accept:?}");
        assert_eq!(resp.headers()[VARY], "Accept-Encoding");
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        let length: usize = resp.headers()[CONTENT_LENGTH]
            .to_str()
            .expect("len")
            .parse()
            .expect("num");
        let body = resp.bytes().await.expect("body");
        assert_eq!(body.len(), length);
        let decoded = match *want {
            Some("gzip") => gunzip(&body),
            Some("zstd") => unzstd(&body),
            _ => body.to_vec(),
        };
        assert_eq!(decoded, page(), "{accept:?}");
    }
    let refused = client()
        .get(&url)
        .header(ACCEPT_ENCODING, "identity;q=0, *;q=0")
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
    server.stop().await;
}

#[tokio::test]
async fn media_is_never_recompressed_and_has_no_vary() {
    let server = fixture().await;
    let resp = client()
        .get(server.url("/lessons/demo/img/photo.png"))
        .header(ACCEPT_ENCODING, "gzip, zstd")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get(CONTENT_ENCODING).is_none());
    assert!(resp.headers().get(VARY).is_none());
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.expect("body").to_vec(), media());
    server.stop().await;
}

#[tokio::test]
async fn etag_gives_304_per_representation() {
    let server = fixture().await;
    let url = server.url("/lessons/demo/index.html");
    let gz = client()
        .get(&url)
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("send");
    let gz_tag = gz.headers()[ETAG].to_str().expect("etag").to_owned();
    let plain = client().get(&url).send().await.expect("send");
    let plain_tag = plain.headers()[ETAG].to_str().expect("etag").to_owned();
    assert_ne!(gz_tag, plain_tag, "each representation has its own strong ETag");
    assert!(gz_tag.starts_with('"') && !gz_tag.starts_with("W/"));

    let again = client()
        .get(&url)
        .header(ACCEPT_ENCODING, "gzip")
        .header(IF_NONE_MATCH, &gz_tag)
        .send()
        .await
        .expect("send");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[ETAG].to_str().expect("etag"), gz_tag);
    assert!(again.bytes().await.expect("body").is_empty());

    // The gzip tag does not validate the identity representation.
    let other = client()
        .get(&url)
        .header(IF_NONE_MATCH, &gz_tag)
        .send()
        .await
        .expect("send");
    assert_eq!(other.status(), StatusCode::OK);
    let listed = client()
        .get(&url)
        .header(IF_NONE_MATCH, format!("\"x\", W/{plain_tag}"))
        .send()
        .await
        .expect("send");
    assert_eq!(listed.status(), StatusCode::NOT_MODIFIED);
    server.stop().await;
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let server = fixture().await;
    for (path, accept) in [
        ("/lessons/demo/index.html", "gzip"),
        ("/lessons/demo/img/photo.png", "gzip"),
        ("/lessons/demo/", ""),
    ] {
        let get = client()
            .get(server.url(path))
            .header(ACCEPT_ENCODING, accept)
            .send()
            .await
            .expect("get");
        let head = client()
            .head(server.url(path))
            .header(ACCEPT_ENCODING, accept)
            .send()
            .await
            .expect("head");
        assert_eq!(head.status(), StatusCode::OK);
        for name in [CONTENT_LENGTH, ETAG, CONTENT_ENCODING, reqwest::header::CONTENT_TYPE] {
            assert_eq!(get.headers().get(&name), head.headers().get(&name), "{path} {name}");
        }
        assert!(head.bytes().await.expect("body").is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn ranges_first_middle_suffix_open_and_out_of_range() {
    let server = fixture().await;
    let url = server.url("/lessons/demo/img/photo.png");
    let data = media();
    let len = data.len();
    let cases = [
        ("bytes=0-99", 0, 100),
        ("bytes=262000-262999", 262_000, 263_000),
        ("bytes=-1000", len - 1000, len),
        ("bytes=600000-", 600_000, len),
        ("bytes=10-5000000", 10, len),
    ];
    for (range, start, end) in cases {
        let resp = client().get(&url).header(RANGE, range).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            resp.headers()[CONTENT_RANGE].to_str().expect("cr"),
            format!("bytes {start}-{}/{len}", end - 1)
        );
        assert_eq!(resp.bytes().await.expect("body").to_vec(), &data[start..end], "{range}");
    }
    for range in ["bytes=700000-", "bytes=-0", "bytes=800000-900000"] {
        let resp = client().get(&url).header(RANGE, range).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            resp.headers()[CONTENT_RANGE].to_str().expect("cr"),
            format!("bytes */{len}")
        );
    }
    // Several ranges, or a malformed one: the whole file.
    for range in ["bytes=0-1,5-6", "bytes=x-y"] {
        let resp = client().get(&url).header(RANGE, range).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::OK, "{range}");
        assert_eq!(resp.bytes().await.expect("body").len(), len);
    }
    // A range of the gzip representation is a range of the stored gzip bytes.
    let page_url = server.url("/lessons/demo/index.html");
    let full = client()
        .get(&page_url)
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("b");
    let part = client()
        .get(&page_url)
        .header(ACCEPT_ENCODING, "gzip")
        .header(RANGE, "bytes=10-")
        .send()
        .await
        .expect("send");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.expect("body"), full.slice(10..));
    // A changed file (If-Range no longer matching) gets the whole file.
    let resp = client()
        .get(&url)
        .header(RANGE, "bytes=0-9")
        .header("if-range", "\"old\"")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn empty_and_tiny_files() {
    let server = fixture().await;
    let resp = client()
        .get(server.url("/lessons/demo/empty.txt"))
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("s");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.expect("body").is_empty());
    let resp = client()
        .get(server.url("/lessons/demo/empty.txt"))
        .header(RANGE, "bytes=0-")
        .send()
        .await
        .expect("s");
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let resp = client()
        .get(server.url("/lessons/demo/notes.txt"))
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("s");
    assert_eq!(
        resp.bytes().await.expect("body").as_ref(),
        b"short",
        "text that does not compress is stored raw"
    );
    server.stop().await;
}

#[tokio::test]
async fn entry_page_slash_redirect_and_nested_entry() {
    let server = fixture().await;
    let resp = client().get(server.url("/lessons/demo")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(resp.headers()["location"], "/lessons/demo/");
    let resp = client().get(server.url("/lessons/demo/")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.expect("body").to_vec(), page());
    let resp = client().get(server.url("/lessons/nested/")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(resp.headers()["location"], "/lessons/nested/html/start.html");
    server.stop().await;
}

/// Sends a raw request line, so the path reaches the server exactly as written.
async fn raw_status(server: &TestServer, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn unknown_lessons_paths_and_traversal_get_a_small_404_page() {
    let server = fixture().await;
    let attempts = [
        "/lessons/nope/",
        "/lessons/demo/missing.html",
        "/lessons/demo/../demo/index.html",
        "/lessons/demo/%2e%2e/demo/index.html",
        "/lessons/demo/%2E%2E%2Fdemo%2Findex.html",
        "/lessons/demo/img/..%2fphoto.png",
        "/lessons/demo/img%5c..%5cindex.html",
        "/lessons/demo/img\\photo.png",
        "/lessons/demo//index.html",
        "/lessons/demo/./index.html",
        "/lessons/demo/%00",
        "/lessons/Demo/index.html",
        "/lessons/../../etc/passwd",
        "/nothing-here",
    ];
    for target in attempts {
        let (status, text) = raw_status(&server, target).await;
        assert!(status == 404 || status == 400, "{target}: {status}");
        if status == 404 {
            assert!(
                text.contains("Tapılmadı"),
                "{target}: the 404 page in Azerbaijani, Russian and English"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn every_sample_file_round_trips_byte_exact_in_every_encoding() {
    let server = TestServer::with_samples().await;
    let root = content_dir();
    let mut checked = 0;
    for lesson in std::fs::read_dir(&root).expect("content") {
        let dir = lesson.expect("entry").path();
        if !dir.join("lesson.toml").is_file() {
            continue;
        }
        let id = toml_id(&dir);
        for file in walk(&dir) {
            let rel = file
                .strip_prefix(&dir)
                .expect("rel")
                .to_str()
                .expect("utf8")
                .replace('\\', "/");
            if rel == "lesson.toml" {
                continue;
            }
            let want = std::fs::read(&file).expect("read");
            let url = server.url(&format!("/lessons/{id}/{rel}"));
            for accept in ["identity", "gzip", "zstd"] {
                let resp = client()
                    .get(&url)
                    .header(ACCEPT_ENCODING, accept)
                    .send()
                    .await
                    .expect("send");
                assert_eq!(resp.status(), StatusCode::OK, "{url}");
                let encoding = resp
                    .headers()
                    .get(CONTENT_ENCODING)
                    .map(|v| v.to_str().expect("t").to_owned());
                let body = resp.bytes().await.expect("body");
                let got = match encoding.as_deref() {
                    Some("gzip") => gunzip(&body),
                    Some("zstd") => unzstd(&body),
                    None => body.to_vec(),
                    Some(other) => panic!("unexpected encoding {other}"),
                };
                assert_eq!(got, want, "{url} with {accept}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 3 * 40, "only {checked} responses checked");
    server.stop().await;
}

fn toml_id(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("lesson.toml")).expect("toml");
    let value: toml::Table = text.parse().expect("parse");
    value["id"].as_str().expect("id").to_owned()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn shutdown_lets_a_download_in_progress_finish() {
    let big: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let for_fill = big.clone();
    let server = TestServer::start(move |data| {
        let src = tempfile::tempdir().expect("src");
        write_lesson(
            src.path(),
            "film",
            &[("index.html", b"<p>x</p>"), ("film.mp4", &for_fill)],
        );
        import(data, src.path());
    })
    .await;
    let mut resp = client()
        .get(server.url("/lessons/film/film.mp4"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut got = resp.chunk().await.expect("first chunk").expect("some bytes").to_vec();
    let addr = server.addr;
    let stopping = tokio::spawn(server.stop());
    // New connections are refused once the listener is closed...
    let mut refused = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the listener should close on shutdown");
    // ...while the download in progress completes.
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), big.len());
    assert!(got == big);
    stopping.await.expect("stopped");
}
