//! The phone pages over real HTTP: languages and their cookie, browsing down to every lesson,
//! cards, ETags, gzip, the home page's 14 KB budget, packs and the poster.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};

use crate::common::{TestServer, client, gunzip};

/// GET with these headers: status, headers, body (gunzipped when sent gzip).
pub async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
    let mut request = client().get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.expect("send");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        gunzip(&bytes)
    } else {
        bytes.to_vec()
    };
    (status, headers, String::from_utf8(body).expect("utf-8"))
}

/// Every `href="..."` of a page, unescaped.
pub fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

fn html_lang(html: &str) -> &str {
    let at = html.find("<html lang=\"").expect("html lang") + 12;
    &html[at..at + html[at..].find('"').expect("quote")]
}

#[tokio::test]
async fn a_first_visit_follows_accept_language_with_azerbaijani_by_default() {
    let server = TestServer::with_samples().await;
    for (accept, lang) in [
        (None, "az"),
        (Some("ru-RU,ru;q=0.9,en;q=0.8"), "ru"),
        (Some("en-GB,en;q=0.9"), "en"),
        (Some("tr-TR,tr;q=0.9,de;q=0.5"), "az"),
        (Some("de, en;q=0.3, az;q=0.6"), "az"),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept-language", a)).into_iter().collect();
        let (status, head, html) = get(&server, "/", &headers).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(html_lang(&html), lang, "Accept-Language {accept:?}");
        assert_eq!(head["content-language"], lang);
        assert!(head.get("set-cookie").is_none(), "nothing chosen, nothing remembered");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_chosen_language_is_remembered_in_a_cookie() {
    let server = TestServer::with_samples().await;
    let (_, head, html) = get(&server, "/?lang=ru", &[("accept-language", "en")]).await;
    assert_eq!(html_lang(&html), "ru");
    let cookie = head["set-cookie"].to_str().expect("cookie").to_owned();
    assert!(cookie.starts_with("dars_lang=ru;"), "{cookie}");
    assert!(cookie.contains("Max-Age=") && cookie.contains("Path=/"), "{cookie}");
    let pair = cookie.split(';').next().expect("pair");
    // The cookie wins over Accept-Language on every page, and is not set again.
    for path in ["/", "/browse?language=az", "/card/math-4-fractions-az"] {
        let (status, head, html) = get(&server, path, &[("cookie", pair), ("accept-language", "en")]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(html_lang(&html), "ru", "{path}");
        assert!(head.get("set-cookie").is_none(), "{path}");
    }
    let (_, _, html) = get(&server, "/", &[("cookie", "other=1; dars_lang=en")]).await;
    assert_eq!(html_lang(&html), "en");
    server.stop().await;
}

#[tokio::test]
async fn every_lesson_is_reached_from_home_in_each_language() {
    let server = TestServer::with_samples().await;
    let resp = client().get(server.url("/api/v1/lessons")).send().await.expect("send");
    let all: serde_json::Value = serde_json::from_slice(&resp.bytes().await.expect("b")).expect("json");
    let ids: BTreeSet<String> = all["lessons"]
        .as_array()
        .expect("lessons")
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect();
    for lang in ["az", "ru", "en"] {
        // Home -> grade -> subject -> card, following only links the pages show.
        let (_, _, home) = get(&server, &format!("/?lang={lang}"), &[]).await;
        assert!(!home.contains("/card/"), "the home page lists grades, not lessons");
        let cookie = format!("dars_lang={lang}");
        let mut reached = BTreeSet::new();
        let mut queue: Vec<String> = hrefs(&home).into_iter().filter(|h| h.starts_with("/browse?")).collect();
        let mut seen = BTreeSet::new();
        while let Some(href) = queue.pop() {
            if !seen.insert(href.clone()) {
                continue;
            }
            let (status, _, html) = get(&server, &href, &[("cookie", &cookie)]).await;
            assert_eq!(status, StatusCode::OK, "{href}");
            assert_eq!(html_lang(&html), lang, "{href}");
            for link in hrefs(&html) {
                if let Some(id) = link.strip_prefix("/card/") {
                    reached.insert(id.to_owned());
                } else if link.starts_with("/browse?") && link.contains("grade=") {
                    queue.push(link);
                }
            }
        }
        let in_lang: BTreeSet<String> = all["lessons"]
            .as_array()
            .expect("lessons")
            .iter()
            .filter(|l| l["language"] == lang)
            .map(|l| l["id"].as_str().expect("id").to_owned())
            .collect();
        assert!(!in_lang.is_empty());
        assert!(
            in_lang.is_subset(&reached),
            "{lang}: reached {reached:?}, expected {in_lang:?}"
        );
    }
    // The other languages' lessons are one link away from home too.
    let (_, _, home) = get(&server, "/?lang=az", &[]).await;
    assert!(hrefs(&home).iter().any(|h| h == "/browse?language=ru"));
    assert!(hrefs(&home).iter().any(|h| h == "/browse?language=en"));
    assert!(ids.len() >= 12);
    server.stop().await;
}

#[tokio::test]
async fn a_lesson_card_shows_size_open_and_save() {
    let server = TestServer::with_samples().await;
    let (status, _, html) = get(&server, "/card/language-4-cases-ru?lang=en", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Падежи имён существительных</h1>"), "{html}");
    assert!(html.contains("href=\"/lessons/language-4-cases-ru/\""));
    assert!(html.contains("href=\"/lessons/language-4-cases-ru/offline.html\""));
    assert!(html.contains("download=\"Падежи имён существительных - dars.html\""));
    assert!(html.contains("Download to read at home"));
    assert!(html.contains("File size: "), "the saved file's size is shown");
    assert!(
        html.contains("worksheet.pdf"),
        "the PDF is named as a separate download"
    );
    assert!(html.contains("<main id=\"main\">") && html.contains("class=\"skip\" href=\"#main\""));
    let (status, _, _) = get(&server, "/card/no-such-lesson", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&server, "/card/..%2Fetc", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn pages_are_gzipped_only_when_offered_and_revalidate_with_their_etag() {
    let server = TestServer::with_samples().await;
    for path in [
        "/",
        "/browse?language=ru&grade=4",
        "/card/math-4-fractions-az",
        "/poster",
    ] {
        let (_, plain_head, plain) = get(&server, path, &[]).await;
        assert!(
            plain_head.get("content-encoding").is_none(),
            "{path}: no Accept-Encoding, no coding"
        );
        let (_, br_head, _) = get(&server, path, &[("accept-encoding", "br, zstd")]).await;
        assert!(
            br_head.get("content-encoding").is_none(),
            "{path}: never a coding not offered"
        );
        let (_, gz_head, unzipped) = get(&server, path, &[("accept-encoding", "gzip, deflate")]).await;
        assert_eq!(gz_head["content-encoding"], "gzip", "{path}");
        assert_eq!(unzipped, plain, "{path}: the same page either way");
        let vary = gz_head["vary"].to_str().expect("vary");
        assert!(
            vary.contains("Accept-Encoding") && vary.contains("Cookie"),
            "{path}: {vary}"
        );
        let etag = gz_head["etag"].to_str().expect("etag").to_owned();
        assert_ne!(
            etag,
            plain_head["etag"].to_str().expect("etag"),
            "each coding has its own tag"
        );
        let resp = client()
            .get(server.url(path))
            .header("accept-encoding", "gzip")
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    let (status, _, _) = get(&server, "/", &[("accept-encoding", "identity;q=0, br")]).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    server.stop().await;
}

#[tokio::test]
async fn the_home_page_stays_under_14_kb_with_hundreds_of_lessons() {
    let server = TestServer::start(|data| {
        let src = tempfile::tempdir().expect("src");
        for i in 0..400 {
            let id = format!("lesson-{i}");
            let dir = crate::common::write_lesson(src.path(), &id, &[("index.html", format!("<p>{i}</p>").as_bytes())]);
            let toml = format!(
                "id = \"{id}\"\ntitle = \"Dərs nömrə {i} haqqında uzun bir başlıq\"\nlanguage = \"{}\"\ngrade = {}\nsubject = \"Fənn {}\"\nsummary = \"{}\"\n",
                ["az", "ru", "en"][i % 3],
                (i / 3) % 12,
                i % 17,
                "Uzun xülasə ".repeat(10)
            );
            std::fs::write(dir.join("lesson.toml"), toml).expect("toml");
        }
        crate::common::import(data, src.path());
    })
    .await;
    let resp = client()
        .get(server.url("/"))
        .header("accept-encoding", "gzip, deflate")
        .send()
        .await
        .expect("send");
    let wire = resp.bytes().await.expect("body").len();
    println!("home page with 400 lessons: {wire} bytes on the wire (gzip)");
    assert!(wire <= 14 * 1024, "home page is {wire} bytes gzipped");
    let (_, _, html) = get(&server, "/", &[]).await;
    assert!(!html.contains("lesson-1"), "no lesson is listed on the home page");
    for grade in ["1-ci sinif", "11-ci sinif", "Sinifsiz"] {
        assert!(html.contains(grade), "{grade}");
    }
    server.stop().await;
}

#[tokio::test]
async fn pages_need_at_most_three_requests() {
    // The page itself, its script (cached for a year), and nothing else: styles are inline,
    // the favicon is a data: URI, and no page loads pictures or fonts.
    let server = TestServer::with_samples().await;
    for path in [
        "/",
        "/browse?language=az&grade=4",
        "/card/math-4-fractions-az",
        "/packs?lesson=math-4-fractions-az",
        "/poster",
    ] {
        let (_, _, html) = get(&server, path, &[]).await;
        let fetched: Vec<&str> = html
            .split(" src=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        assert!(fetched.len() <= 1, "{path} loads {fetched:?} besides itself");
        assert!(
            html.contains("rel=\"icon\" href=\"data:,\""),
            "{path}: no favicon request"
        );
        assert!(!html.contains("<img"), "{path}");
        assert!(!html.contains("<link rel=\"stylesheet\""), "{path}");
    }
    let (_, _, home) = get(&server, "/", &[]).await;
    let script = home
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("script")
        .to_owned();
    let (status, head, js) = get(&server, &script, &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(head["cache-control"].to_str().expect("cc").contains("immutable"));
    assert!(js.contains("localStorage"));
    assert!(
        !js.contains("fetch(") && !js.contains("XMLHttpRequest") && !js.contains("sendBeacon"),
        "the script never talks to the network"
    );
    let (status, _, _) = get(&server, "/static/app-000000000000.js", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn a_subject_list_offers_the_whole_shelf_and_ticked_lessons_as_packs() {
    let server = TestServer::with_samples().await;
    let (_, _, html) = get(&server, "/browse?language=ru&grade=4&subject=%D0%A0%D1%83%D1%81%D1%81%D0%BA%D0%B8%D0%B9%20%D1%8F%D0%B7%D1%8B%D0%BA&lang=en", &[]).await;
    assert!(
        html.contains("<form action=\"/packs\" method=\"get\">"),
        "a plain GET form"
    );
    assert!(html.contains("type=\"checkbox\" name=\"lesson\" value=\"language-4-cases-ru\""));
    assert!(
        html.contains("href=\"/packs?language=ru&amp;grade=4&amp;subject="),
        "the whole shelf"
    );
    assert!(html.contains("Size: "));
    let (status, _, _) = get(&server, "/browse?language=ru&grade=99", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(HeaderValue::to_str)
        .and_then(Result::ok)
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn the_poster_has_the_address_as_a_qr_code_and_in_large_type() {
    let server = TestServer::with_samples().await;
    let (status, head, html) = get(&server, "/poster", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_text(&head, "content-type"), "text/html; charset=utf-8");
    let address = server.addr.to_string();
    assert!(html.contains(&format!("<p class=\"url\">{address}</p>")), "{html}");
    assert!(html.contains("<svg class=\"qr\""), "an inline SVG QR code");
    assert!(html.contains(&format!("aria-label=\"http://{address}/\"")));
    assert!(html.contains("@page{size:A4"), "printable on A4");
    // Two lines in Azerbaijani and two in Russian.
    assert!(html.contains("Məktəbin Wi-Fi şəbəkəsinə qoşul"));
    assert!(html.contains("Подключись к Wi-Fi школы"));
    assert!(html.contains("brauzerdə bu ünvanı yaz") && html.contains("набери в браузере этот адрес"));
    // A Host the phones used is what gets printed.
    let (_, _, html) = get(&server, "/poster", &[("host", "10.20.30.40:8080")]).await;
    assert!(html.contains("<p class=\"url\">10.20.30.40:8080</p>"));
    let (_, _, html) = get(&server, "/poster", &[("host", "bad\"><b>host")]).await;
    assert!(!html.contains("<b>host"));
    server.stop().await;
}

#[tokio::test]
async fn search_finds_lessons_typed_with_or_without_azerbaijani_letters() {
    let server = TestServer::with_samples().await;
    // "Xəzər dənizi" typed as a phone without an Azerbaijani keyboard would.
    for q in ["X%C9%99z%C9%99r", "xezer", "XEZER"] {
        let (status, head, html) = get(&server, &format!("/search?q={q}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert_eq!(head["content-type"], "text/html; charset=utf-8");
        assert!(
            hrefs(&html).contains(&"/card/geography-6-caspian-az".to_owned()),
            "{q}: {html}"
        );
        assert!(html.contains("<mark>"), "{q}: the matched word is marked");
        assert!(html.contains("action=\"/search\""), "the form stays on the page");
    }
    // Russian in any case, and the page in the phone's language.
    let (_, _, html) = get(
        &server,
        "/search?q=%D0%9F%D0%A0%D0%9E%D0%A6%D0%95%D0%9D%D0%A2%D0%AB&lang=ru",
        &[],
    )
    .await;
    assert!(hrefs(&html).contains(&"/card/math-6-percent-ru".to_owned()), "{html}");
    assert_eq!(html_lang(&html), "ru");
    // Only one language when asked.
    let (_, _, html) = get(&server, "/search?q=photosynthesis&language=ru", &[]).await;
    assert!(!hrefs(&html).contains(&"/card/science-7-photosynthesis-en".to_owned()));
    // Nothing found, an empty box, and markup in the query: a page that says so, escaped.
    let (status, _, html) = get(&server, "/search?q=zzqqxx&lang=en", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Nothing found"), "{html}");
    let (status, _, html) = get(&server, "/search?q=", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<mark>"));
    let (status, _, html) = get(&server, "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script>alert"), "{html}");
    server.stop().await;
}
