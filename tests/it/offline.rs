//! Saved files over real HTTP: one lesson or a pack as one self-contained HTML file, sent as a
//! download, with every picture inlined, links between pages as anchors, lesson scripts gone,
//! and what cannot be inlined listed with its size.

use std::path::Path;

use reqwest::StatusCode;

use crate::common::{TestServer, client, pseudo_random_bytes, write_lesson};
use crate::pages::get;

/// A 1x1 PNG.
pub const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

fn png() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(PNG).expect("png")
}

fn svg(colour: &str) -> Vec<u8> {
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"20\"><rect width=\"40\" height=\"20\" fill=\"{colour}\"/></svg>").into_bytes()
}

/// A lesson that uses every way of pointing at a picture, two pages linking each other, a
/// script, an event handler, a video, a PDF, a picture too big to inline and an external one.
pub fn rich_lesson(root: &Path) {
    let index = r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Rich &amp; full</title>
<link rel="stylesheet" href="css/style.css"><style>.hero{background:url(img/bg.svg) no-repeat;min-height:20px}</style>
<script src="app.js"></script></head><body class="light"><main>
<h1 id="top">Rich lesson</h1>
<p class="hero">hero</p>
<img src="img/a.png" alt="A dot" width="40" height="40">
<img srcset="img/s1.svg 1x, img/s2.svg 2x" src="img/s1.svg" alt="Sharp">
<picture><source srcset="img/s2.svg" type="image/svg+xml"><img src="img/s1.svg" alt="In a picture"></picture>
<div style="background-image:url('img/c.svg');height:20px">styled</div>
<p><a href="page2.html#part">Part two</a> · <a href="#top">Top</a> · <a href="./page2.html">Page two</a></p>
<label for="answer">Answer</label><input id="answer">
<button onclick="alert(1)">Press</button>
<img src="img/big.jpg" alt="A huge map">
<video src="film.mp4" controls></video>
<p><a href="sheet.pdf">Worksheet</a></p>
<img src="http://example.com/x.png" alt="Far away">
<p><a href="../math-4-fractions-az/">Another lesson</a></p>
<svg width="10" height="10"><defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient></defs><rect width="10" height="10" fill="url(#g)"/></svg>
<script>document.title = "changed";</script>
</main></body></html>"##;
    let page2 = r#"<!doctype html><html lang="en"><head><title>Part two</title><link rel="stylesheet" href="css/style.css"></head>
<body><h2 id="part">Part two</h2><img src="img/a.png" alt="The dot again"><p><a href="index.html">Back</a></p></body></html>"#;
    let big = pseudo_random_bytes(2_100_000, 7);
    write_lesson(
        root,
        "rich",
        &[
            ("index.html", index.as_bytes()),
            ("page2.html", page2.as_bytes()),
            (
                "css/style.css",
                b"@import \"more.css\";\nbody{background:url(../img/d.svg)} main{color:#123}",
            ),
            ("css/more.css", b"h1{color:#a00}"),
            ("app.js", b"console.log('lesson script')"),
            ("img/a.png", &png()),
            ("img/bg.svg", &svg("#eef")),
            ("img/s1.svg", &svg("#f00")),
            ("img/s2.svg", &svg("#0f0")),
            ("img/c.svg", &svg("#00f")),
            ("img/d.svg", &svg("#ff0")),
            ("img/big.jpg", &big),
            ("film.mp4", &pseudo_random_bytes(3000, 8)),
            ("sheet.pdf", b"%PDF-1.4 tiny"),
        ],
    );
    // A second lesson on the same shelf (English, grade 5, Science), to make packs from.
    let notes = r#"<!doctype html><html lang="en"><head><title>Notes</title><style>body{color:#222}</style></head>
<body><h1>Notes</h1><p>See <a href="../rich/page2.html#part">part two of the rich lesson</a>.</p><img src="dot.png" alt="A dot"></body></html>"#;
    write_lesson(
        root,
        "rich-notes",
        &[("index.html", notes.as_bytes()), ("dot.png", &png())],
    );
}

async fn rich_server() -> TestServer {
    TestServer::start(|data| {
        dars::service::Library::open(data)
            .expect("open")
            .load_samples_once()
            .expect("samples");
        let src = tempfile::tempdir().expect("src");
        rich_lesson(src.path());
        crate::common::import(data, src.path());
    })
    .await
}

/// Every `<img ...>` tag of a page.
fn img_tags(html: &str) -> Vec<&str> {
    html.match_indices("<img")
        .map(|(at, _)| &html[at..at + html[at..].find('>').expect("tag end")])
        .collect()
}

#[tokio::test]
async fn a_saved_lesson_is_one_file_with_every_picture_inlined() {
    let server = rich_server().await;
    let (status, head, html) = get(&server, "/lessons/rich/offline.html", &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(head["content-encoding"], "gzip");
    let disposition = head["content-disposition"].to_str().expect("disposition");
    assert!(
        disposition
            .starts_with("attachment; filename=\"dars-rich.html\"; filename*=UTF-8''Lesson%20rich%20-%20dars.html"),
        "{disposition}"
    );
    // Every picture is a data: URI, in src, srcset, CSS and style attributes alike.
    let imgs = img_tags(&html);
    assert_eq!(imgs.len(), 4, "{imgs:?}");
    for img in &imgs {
        assert!(img.contains("src=\"data:image/"), "{}", &img[..img.len().min(200)]);
    }
    assert!(!html.contains("srcset=\"img/") && !html.contains("img/s2.svg 2x"));
    assert!(html.contains("<source srcset=\"data:image/svg+xml;base64,"));
    assert!(
        html.contains("style=\"background-image:url(&quot;data:image/svg+xml;base64,")
            || html.contains("style=\"background-image:url(\"data:"),
        "style attribute"
    );
    for inlined in [
        "img/a.png",
        "img/bg.svg",
        "img/s1.svg",
        "img/s2.svg",
        "img/c.svg",
        "img/d.svg",
        "css/style.css",
        "more.css",
        "app.js",
    ] {
        assert!(!html.contains(inlined), "{inlined} is still referenced");
    }
    assert!(!html.contains("url(img/") && !html.contains("url(../img"));
    assert!(
        html.contains(".hero{background:url(\"data:image/svg+xml;base64,"),
        "a page's <style>, inlined and scoped"
    );
    assert!(html.contains("{color:#a00}"), "@import inlined");
    // The lesson's styles are scoped to its pages; its body style does not reach the file's.
    assert!(
        html.contains(".dars-s1{background:url(\"data:image/svg+xml;base64,"),
        "{}",
        &html[..html.len().min(3000)]
    );
    assert!(html.contains(".dars-s1 .dars-main{color:#123}"));
    server.stop().await;
}

#[tokio::test]
async fn pages_of_a_saved_lesson_link_to_each_other_inside_the_file() {
    let server = rich_server().await;
    let (_, _, html) = get(&server, "/lessons/rich/offline.html", &[]).await;
    assert!(
        html.contains("<section class=\"dars-page dars-s1 light\" id=\"lesson-rich--p0\""),
        "{html}"
    );
    assert!(html.contains("id=\"lesson-rich--p1\""));
    assert!(html.contains("<a href=\"#lesson-rich--p1--part\">Part two</a>"));
    assert!(html.contains("<a href=\"#lesson-rich--p0--top\">Top</a>"));
    assert!(html.contains("<a href=\"#lesson-rich--p1\">Page two</a>"));
    assert!(html.contains("<a href=\"#lesson-rich--p0\">Back</a>"));
    assert!(html.contains("id=\"lesson-rich--p1--part\"") && html.contains("id=\"lesson-rich--p0--top\""));
    assert!(
        html.contains("<label for=\"lesson-rich--p0--answer\">") && html.contains("id=\"lesson-rich--p0--answer\"")
    );
    assert!(
        html.contains("fill=\"url(&quot;#lesson-rich--p0--g&quot;)\"")
            || html.contains("fill=\"url(\"#lesson-rich--p0--g\")\"")
            || html.contains("url(&quot;#lesson-rich--p0--g&quot;)"),
        "inline SVG references follow their ids"
    );
    // The table of contents lists both pages by their titles.
    assert!(html.contains("<a href=\"#lesson-rich--p0\">Rich &amp; full</a>"));
    assert!(html.contains("<a href=\"#lesson-rich--p1\">Part two</a>"));
    // One <main> in the file; the lesson's became a div.
    assert_eq!(html.matches("<main").count(), 1);
    assert!(html.contains("<div class=\"dars-main\">"));
    server.stop().await;
}

#[tokio::test]
async fn lesson_scripts_are_dropped_and_big_files_listed_with_their_sizes() {
    let server = rich_server().await;
    let base = format!("http://{}", server.addr);
    let (_, _, html) = get(&server, "/lessons/rich/offline.html?lang=en", &[]).await;
    // Only the file's own profiles script remains; no lesson script, no event handler.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("dars.profiles.v1"));
    assert!(!html.contains("lesson script") && !html.contains("document.title") && !html.contains("onclick=\""));
    assert!(html.contains("This lesson's interactive parts work only at school."));
    // The big picture, the video and the PDF download separately from the server, with sizes.
    assert!(
        html.contains(&format!(
            "<a href=\"{base}/lessons/rich/img/big.jpg\">This picture is too big for the file (big.jpg)</a>"
        )),
        "{html}"
    );
    assert!(html.contains("A huge map"), "its description stays");
    assert!(html.contains("Pictures bigger than 2.0 MB are not put in the file"));
    assert!(html.contains(&format!("<a href=\"{base}/lessons/rich/film.mp4\">film.mp4</a>")));
    assert!(html.contains(&format!("<a href=\"{base}/lessons/rich/sheet.pdf\">Worksheet</a> <small class=\"dars-size\">(13 B, school network)</small>")));
    assert!(
        html.contains("Files that download separately")
            && html.contains("These files download only on the school network.")
    );
    assert!(html.contains("(2.1 MB)") && html.contains("(3 KB)"));
    assert!(
        !html.contains("<video"),
        "no media element that would reach for the network"
    );
    // An external picture would not load offline: it becomes its description and a link.
    assert!(!html.contains("src=\"http://example.com"));
    assert!(html.contains("Far away <a href=\"http://example.com/x.png\">"));
    // A lesson not in the file is a link to the server.
    assert!(html.contains(&format!(
        "<a href=\"{base}/lessons/math-4-fractions-az/\">Another lesson</a>"
    )));
    // The only http: references are the separate downloads and that link.
    for (at, _) in html.match_indices("http://") {
        let rest = &html[at..at + 120.min(html.len() - at)];
        assert!(
            rest.starts_with(&format!("{base}/lessons/rich/big.jpg"))
                || rest.starts_with(&format!("{base}/lessons/rich/img/big.jpg"))
                || rest.starts_with(&format!("{base}/lessons/rich/film.mp4"))
                || rest.starts_with(&format!("{base}/lessons/rich/sheet.pdf"))
                || rest.starts_with(&format!("{base}/lessons/math-4-fractions-az/"))
                || rest.starts_with("http://example.com/x.png")
                || rest.starts_with("http://www.w3.org/"),
            "unexpected reference {rest}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn every_sample_lesson_saves_with_only_data_pictures() {
    let server = TestServer::with_samples().await;
    let resp = client().get(server.url("/api/v1/lessons")).send().await.expect("send");
    let all: serde_json::Value = serde_json::from_slice(&resp.bytes().await.expect("b")).expect("json");
    for lesson in all["lessons"].as_array().expect("lessons") {
        let id = lesson["id"].as_str().expect("id");
        let (status, _, html) = get(&server, &format!("/lessons/{id}/offline.html"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{id}");
        let imgs = img_tags(&html);
        assert!(!imgs.is_empty(), "{id} has pictures");
        for img in imgs {
            assert!(img.contains("src=\"data:image/"), "{id}: {img}");
        }
        assert!(!html.contains(&format!("/lessons/{id}/img/")), "{id}");
        assert!(!html.contains("style.css"), "{id}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_pack_has_a_table_of_contents_and_its_size_is_shown_first() {
    let server = rich_server().await;
    let ids = ["math-4-fractions-az", "science-4-water-cycle-az", "rich", "rich-notes"];
    let query = ids
        .iter()
        .map(|id| format!("lesson={id}"))
        .collect::<Vec<_>>()
        .join("&");
    let (status, _, confirm) = get(&server, &format!("/packs?{query}&lang=en"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("<h1>Lesson pack (4 lessons)</h1>"), "{confirm}");
    let (_, _, file) = get(&server, &format!("/packs/offline.html?{query}&lang=en"), &[]).await;
    let size = crate::common::text(dars::ui::human_size(file.len() as u64).as_bytes());
    assert!(
        confirm.contains(&format!("File size: {size}")),
        "size {size} shown before the download: {confirm}"
    );
    assert!(confirm.contains(&format!("href=\"/packs/offline.html?{}\"", query.replace('&', "&amp;"))));
    assert!(confirm.contains("data-save=\"math-4-fractions-az science-4-water-cycle-az rich rich-notes\""));
    for id in ids {
        assert!(
            file.contains(&format!("<a href=\"#lesson-{id}\">")),
            "the contents link to {id}"
        );
        assert!(
            file.contains(&format!("<article class=\"dars-lesson\" id=\"lesson-{id}\"")),
            "{id} is in the file"
        );
    }
    // A link between two lessons of the pack stays inside the file.
    assert!(file.contains("<a href=\"#lesson-rich--p1--part\">part two of the rich lesson</a>"));
    // Each lesson's styles stay with its own pages.
    assert!(file.contains(".dars-s1") && file.contains(".dars-s2") && file.contains(".dars-s3"));
    let (_, head, _) = get(&server, &format!("/packs/offline.html?{query}"), &[]).await;
    assert!(
        head["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment; filename=\"dars-")
    );

    // A whole subject of a grade.
    let (status, _, confirm) = get(&server, "/packs?language=az&grade=4&subject=Riyaziyyat", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("math-4-fractions-az"));
    let (_, head, file) = get(
        &server,
        "/packs/offline.html?language=az&grade=4&subject=Riyaziyyat",
        &[],
    )
    .await;
    assert!(file.contains("id=\"lesson-math-4-fractions-az\""));
    assert!(
        head["content-disposition"]
            .to_str()
            .expect("cd")
            .contains("filename=\"dars-riyaziyyat-4-cu-sinif-1.html\""),
        "{:?}",
        head["content-disposition"]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_bad_pack_says_what_is_wrong() {
    let server = TestServer::with_samples().await;
    let (status, _, html) = get(&server, "/packs?lang=en", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("No lessons were ticked."));
    let (status, _, html) = get(
        &server,
        "/packs?lesson=math-4-fractions-az&lesson=gone-lesson&lang=en",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("This lesson is no longer here: gone-lesson"), "{html}");
    let many: Vec<String> = (0..61).map(|i| format!("lesson=l{i}")).collect();
    let (status, _, html) = get(&server, &format!("/packs/offline.html?{}&lang=en", many.join("&")), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("One file can hold at most 60 lessons."));
    let (status, _, _) = get(&server, "/lessons/no-such/offline.html", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}
