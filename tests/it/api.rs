//! The JSON API and health over real HTTP.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TestServer, client};

async fn json(server: &TestServer, path: &str) -> (StatusCode, Value) {
    let resp = client().get(server.url(path)).send().await.expect("send");
    let status = resp.status();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("application/json")
    );
    (
        status,
        serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json"),
    )
}

#[tokio::test]
async fn lessons_list_filters_by_language_grade_and_subject() {
    let server = TestServer::with_samples().await;
    let (status, all) = json(&server, "/api/v1/lessons").await;
    assert_eq!(status, StatusCode::OK);
    let lessons = all["lessons"].as_array().expect("array");
    assert!(lessons.len() >= 12);
    assert_eq!(all["count"].as_u64(), Some(lessons.len() as u64));
    let first = &lessons[0];
    for key in [
        "id", "title", "language", "grade", "subject", "summary", "entry", "origin", "size", "url",
    ] {
        assert!(first.get(key).is_some(), "missing {key}");
    }
    assert_eq!(first["origin"], "sample");

    let (_, az) = json(&server, "/api/v1/lessons?language=az").await;
    let az = az["lessons"].as_array().expect("array").clone();
    assert!(!az.is_empty());
    assert!(az.iter().all(|l| l["language"] == "az"));
    let grade = az[0]["grade"].as_u64().expect("grade");
    let subject = az[0]["subject"].as_str().expect("subject").to_owned();
    let query = format!(
        "/api/v1/lessons?language=az&grade={grade}&subject={}",
        urlencode(&subject)
    );
    let (_, narrow) = json(&server, &query).await;
    let narrow = narrow["lessons"].as_array().expect("array").clone();
    assert!(!narrow.is_empty());
    assert!(
        narrow
            .iter()
            .all(|l| l["grade"] == grade && l["subject"] == subject.as_str())
    );
    let (_, none) = json(&server, "/api/v1/lessons?language=xx").await;
    assert_eq!(none["count"], 0);

    let resp = client()
        .get(server.url("/api/v1/lessons?grade=abc"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.expect("text").contains("grade"));
    server.stop().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn lesson_detail_lists_files_and_unknown_is_404() {
    let server = TestServer::with_samples().await;
    let (_, all) = json(&server, "/api/v1/lessons").await;
    let id = all["lessons"][0]["id"].as_str().expect("id").to_owned();
    let (status, detail) = json(&server, &format!("/api/v1/lessons/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let files = detail["files"].as_array().expect("files");
    assert!(files.iter().any(|f| f["path"] == detail["entry"]));
    for file in files {
        assert_eq!(file["hash"].as_str().expect("hash").len(), 64);
        let resp = client()
            .get(server.url(&format!("/lessons/{id}/{}", file["path"].as_str().expect("p"))))
            .send()
            .await
            .expect("s");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], file["media_type"].as_str().expect("mt"));
        assert_eq!(
            resp.bytes().await.expect("b").len() as u64,
            file["size"].as_u64().expect("size")
        );
    }
    let (status, _) = json(&server, "/api/v1/lessons/no-such-lesson").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn health_is_ok_and_counts_the_lessons() {
    let server = TestServer::with_samples().await;
    let (_, all) = json(&server, "/api/v1/lessons").await;
    let (status, health) = json(&server, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["lessons"], all["count"]);
    server.stop().await;
}

#[tokio::test]
async fn a_lesson_imported_while_serving_appears_without_restart() {
    let server = TestServer::start(|_| {}).await;
    let (_, before) = json(&server, "/api/v1/lessons").await;
    assert_eq!(before["count"], 0);
    let src = tempfile::tempdir().expect("src");
    crate::common::write_lesson(src.path(), "late", &[("index.html", b"<p>late</p>")]);
    crate::common::import(server.data.path(), src.path());
    let resp = client().get(server.url("/lessons/late/")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.expect("t"), "<p>late</p>");
    server.stop().await;
}
