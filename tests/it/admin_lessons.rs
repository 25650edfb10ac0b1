//! Teachers' work in the console: uploads (good ones become local lessons phones see; bad
//! ones, zip-slip, symlinks and zip bombs are refused with a clear message and change
//! nothing), hide, show and delete, and what a teacher may not do to a signed lesson.

use std::io::Write;
use std::path::Path;

use dars::http::admin::ConsoleSettings;
use dars::keys::SecretKey;
use dars::service::package::{ImportPackageOptions, PublishOptions};
use dars::service::{Library, Progress, Role};
use reqwest::StatusCode;
use zip::write::SimpleFileOptions;

use crate::admin::{add_account, get_text, login, post};
use crate::common::{TestServer, write_lesson};

const TOML: &str = "id = \"fractions\"\ntitle = \"Kəsrlər\"\nlanguage = \"az\"\ngrade = 4\nsubject = \"Riyaziyyat\"\n";

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}

fn zip_of(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default();
    for entry in entries {
        match entry {
            Entry::File(name, bytes) => {
                zip.start_file(*name, opts).expect("start");
                zip.write_all(bytes).expect("write");
            }
            Entry::Link(name, target) => zip.add_symlink(*name, *target, opts).expect("link"),
        }
    }
    zip.finish().expect("finish").into_inner()
}

/// A lesson zip of about 1.5 MB: far above the 64 KiB body limit of the phones' routes.
fn good_zip() -> Vec<u8> {
    let photo = crate::common::pseudo_random_bytes(1_500_000, 7);
    zip_of(&[
        Entry::File("fractions/lesson.toml", TOML.as_bytes()),
        Entry::File("fractions/index.html", b"<h1>Kesr</h1><img src=img/pie.svg>"),
        Entry::File("fractions/img/pie.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        Entry::File("fractions/img/photo.jpg", &photo),
    ])
}

async fn upload_zip(client: &reqwest::Client, server: &TestServer, csrf: &str, bytes: Vec<u8>) -> (StatusCode, String) {
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.to_owned())
        .part("zip", reqwest::multipart::Part::bytes(bytes).file_name("lesson.zip"));
    let response = client
        .post(server.url("/admin/lessons/upload"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    (response.status(), response.text().await.expect("body"))
}

/// What phones see: the JSON list.
async fn phone_list(server: &TestServer) -> serde_json::Value {
    let body = reqwest::get(server.url("/api/v1/lessons"))
        .await
        .expect("list")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&body).expect("json")
}

fn leftovers(data: &Path) -> Vec<String> {
    std::fs::read_dir(data)
        .expect("data dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("upload-"))
        .collect()
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_clear_message_and_change_nothing() {
    let server = crate::admin::console().await;
    let (client, csrf) = login(&server, "amina", "teacher-pass-1").await;
    let before = phone_list(&server).await;
    let outside = std::env::temp_dir().join(format!("dars-console-evil-{}.html", std::process::id()));
    let absolute = outside.display().to_string();
    let zeros = vec![0u8; 40 << 20];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not a zip", b"this is not a zip file at all".to_vec(), "not a zip file"),
        (
            "zip-slip",
            zip_of(&[
                Entry::File("fractions/lesson.toml", TOML.as_bytes()),
                Entry::File("fractions/index.html", b"x"),
                Entry::File("../evil.html", b"gotcha"),
            ]),
            "\"../evil.html\"",
        ),
        (
            "deep zip-slip",
            zip_of(&[Entry::File("fractions/../../evil.html", b"gotcha")]),
            "'..'",
        ),
        (
            "absolute path",
            zip_of(&[Entry::File(&absolute, b"gotcha")]),
            "absolute",
        ),
        (
            "symlink",
            zip_of(&[
                Entry::File("fractions/lesson.toml", TOML.as_bytes()),
                Entry::File("fractions/index.html", b"x"),
                Entry::Link("fractions/passwd.html", "/etc/passwd"),
            ]),
            "symbolic link",
        ),
        (
            "zip bomb",
            zip_of(&[
                Entry::File("fractions/lesson.toml", TOML.as_bytes()),
                Entry::File("fractions/index.html", b"x"),
                Entry::File("fractions/zeros.bin", &zeros),
            ]),
            "zip bomb",
        ),
        (
            "bad lesson.toml",
            zip_of(&[
                Entry::File(
                    "fractions/lesson.toml",
                    TOML.replace("grade = 4", "grade = 14").as_bytes(),
                ),
                Entry::File("fractions/index.html", b"x"),
            ]),
            "grade",
        ),
        (
            "no entry page",
            zip_of(&[Entry::File("fractions/lesson.toml", TOML.as_bytes())]),
            "index.html",
        ),
        (
            "no lesson at all",
            zip_of(&[Entry::File("notes.txt", b"hello")]),
            "lesson.toml",
        ),
    ];
    for (what, bytes, expected) in cases {
        let packed = bytes.len();
        let (status, body) = upload_zip(&client, &server, &csrf, bytes).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
        let message = body.split("role=\"alert\"").nth(1).unwrap_or_default();
        let expected = expected.replace('"', "&quot;");
        assert!(
            message.contains(&expected),
            "{what}: the message lacks {expected:?}: {message}"
        );
        assert!(
            message.contains("Yükləmə qəbul edilmədi"),
            "{what}: Azerbaijani heading"
        );
        if what == "zip bomb" {
            assert!(packed < 1 << 20, "the bomb is small packed: {packed}");
        }
    }
    assert!(!outside.exists(), "nothing was written outside the staging folder");
    assert!(!server.data.path().join("evil.html").exists());
    assert!(!server.data.path().parent().expect("parent").join("evil.html").exists());
    assert_eq!(
        leftovers(server.data.path()),
        Vec::<String>::new(),
        "staging folders are removed"
    );
    assert_eq!(phone_list(&server).await, before, "the store is unchanged");
    server.stop().await;
}

#[tokio::test]
async fn an_upload_is_a_local_lesson_phones_see_until_it_is_hidden_or_deleted() {
    let server = crate::admin::console().await;
    let (client, csrf) = login(&server, "amina", "teacher-pass-1").await;
    let (status, body) = upload_zip(&client, &server, &csrf, good_zip()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Dərs yükləndi"), "{body}");
    let list = phone_list(&server).await;
    let lesson = list["lessons"]
        .as_array()
        .expect("lessons")
        .iter()
        .find(|l| l["id"] == "fractions")
        .expect("uploaded lesson listed")
        .clone();
    assert_eq!(lesson["origin"], "local");
    assert_eq!(lesson["title"], "Kəsrlər");
    let (status, page) = get_text(&client, &server, "/lessons/fractions/").await;
    assert_eq!((status, page.contains("Kesr")), (StatusCode::OK, true));
    let (status, _) = get_text(&client, &server, "/lessons/fractions/img/pie.svg").await;
    assert_eq!(status, StatusCode::OK);
    let photo = reqwest::get(server.url("/lessons/fractions/img/photo.jpg"))
        .await
        .expect("photo");
    assert_eq!(photo.bytes().await.expect("body").len(), 1_500_000);

    // Hidden: neither listed nor served to phones; still listed in the console.
    let response = post(&client, &server, "/admin/lessons/fractions/hide", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    for path in [
        "/lessons/fractions/",
        "/lessons/fractions/img/pie.svg",
        "/api/v1/lessons/fractions",
    ] {
        let response = reqwest::get(server.url(path)).await.expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path} while hidden");
    }
    assert!(!phone_list(&server).await.to_string().contains("fractions"));
    let home = reqwest::get(server.url("/"))
        .await
        .expect("home")
        .text()
        .await
        .expect("body");
    assert!(!home.contains("Kəsrlər"), "not on the home page");
    let (_, console) = get_text(&client, &server, "/admin/lessons?done=hidden").await;
    assert!(console.contains("lesson-fractions") && console.contains("gizli"));

    // Uploading a new version keeps it hidden.
    let (status, _) = upload_zip(&client, &server, &csrf, good_zip()).await;
    assert_eq!(status, StatusCode::OK);
    let response = reqwest::get(server.url("/lessons/fractions/")).await.expect("get");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = post(&client, &server, "/admin/lessons/fractions/show", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = reqwest::get(server.url("/lessons/fractions/")).await.expect("get");
    assert_eq!(response.status(), StatusCode::OK, "shown again");

    let response = post(&client, &server, "/admin/lessons/fractions/delete", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = reqwest::get(server.url("/lessons/fractions/")).await.expect("get");
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "deleted");

    let log = Library::open(server.data.path())
        .expect("open")
        .audit_log(50)
        .expect("audit");
    let mine: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e.account == "amina")
        .map(|e| (e.action.as_str(), e.details.as_str()))
        .collect();
    for action in [
        "lesson uploaded",
        "lesson hidden",
        "lesson shown",
        "lesson deleted",
        "login",
    ] {
        assert!(mine.iter().any(|(a, _)| *a == action), "no {action} in {mine:?}");
    }
    assert!(
        mine.iter()
            .any(|(a, d)| *a == "lesson uploaded" && d.contains("fractions"))
    );
    server.stop().await;
}

#[tokio::test]
async fn loose_files_and_the_short_form_make_a_lesson() {
    let server = crate::admin::console().await;
    let (client, csrf) = login(&server, "amina", "teacher-pass-1").await;
    let file = |name: &str, bytes: &'static [u8]| reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part("files", file("index.html", b"<h1>Su dovrani</h1>"))
        .part(
            "files",
            file("img/cycle.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        )
        .text("title", "Su dövranı")
        .text("language", "az")
        .text("grade", "3")
        .text("subject", "Təbiət")
        .text("summary", "Su necə dövr edir")
        .text("id", "");
    let response = client
        .post(server.url("/admin/lessons/upload"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{body}");
    let detail: serde_json::Value = serde_json::from_str(
        &reqwest::get(server.url("/api/v1/lessons/su-dovrani"))
            .await
            .expect("detail")
            .text()
            .await
            .expect("body"),
    )
    .expect("json");
    assert_eq!(detail["title"], "Su dövranı");
    assert_eq!(detail["grade"], 3);
    assert_eq!(detail["origin"], "local");
    assert_eq!(detail["files"].as_array().map(Vec::len), Some(2));

    // A file name that climbs out is refused, and a bad grade is named.
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part("files", file("../index.html", b"x"))
        .text("title", "X");
    let response = client
        .post(server.url("/admin/lessons/upload"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part("files", file("index.html", b"x"))
        .text("title", "X")
        .text("grade", "four")
        .text("subject", "S")
        .text("language", "az");
    let response = client
        .post(server.url("/admin/lessons/upload"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.expect("body").contains("is not a number"));
    server.stop().await;
}

#[tokio::test]
async fn a_signed_lesson_is_never_deleted_and_only_a_technician_hides_it() {
    let key = SecretKey::generate().expect("key");
    let public = key.public();
    let server = TestServer::start_with_console(
        |data| {
            let src = tempfile::tempdir().expect("src");
            write_lesson(src.path(), "ministry-math", &[("index.html", b"<h1>Riyaziyyat</h1>")]);
            let pkg = tempfile::tempdir().expect("pkg");
            let scan = dars::service::scan_folder(src.path()).expect("scan");
            dars::service::package::publish(scan, pkg.path(), &PublishOptions::new(key), &Progress::new())
                .expect("publish");
            let opts = ImportPackageOptions {
                trusted: vec![public],
                allow_downgrade: false,
            };
            Library::open(data)
                .expect("open")
                .import_package(pkg.path(), &opts, &Progress::new())
                .expect("import");
            add_account(data, "amina", Role::Teacher, "teacher-pass-1");
            add_account(data, "rauf", Role::Technician, "technician-pass-1");
        },
        ConsoleSettings::default(),
    )
    .await;
    let (teacher, csrf) = login(&server, "amina", "teacher-pass-1").await;
    for action in ["hide", "delete"] {
        let response = post(
            &teacher,
            &server,
            &format!("/admin/lessons/ministry-math/{action}"),
            &[("csrf", &csrf)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "teacher {action}");
        assert!(response.text().await.expect("body").contains("signed by publisher"));
    }
    // A local lesson cannot take a signed lesson's id by upload either.
    let zip = {
        let toml = TOML.replace("fractions", "ministry-math");
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("lesson.toml", SimpleFileOptions::default())
            .expect("start");
        zip.write_all(toml.as_bytes()).expect("write");
        zip.start_file("index.html", SimpleFileOptions::default())
            .expect("start");
        zip.write_all(b"fake").expect("write");
        zip.finish().expect("finish").into_inner()
    };
    let (status, body) = upload_zip(&teacher, &server, &csrf, zip).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("signed by publisher"), "{body}");
    let (tech, tech_csrf) = login(&server, "rauf", "technician-pass-1").await;
    let response = post(
        &tech,
        &server,
        "/admin/lessons/ministry-math/delete",
        &[("csrf", &tech_csrf)],
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "nobody deletes a signed lesson here"
    );
    let response = post(
        &tech,
        &server,
        "/admin/lessons/ministry-math/hide",
        &[("csrf", &tech_csrf)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = reqwest::get(server.url("/lessons/ministry-math/")).await.expect("get");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let page = reqwest::get(server.url("/api/v1/lessons/ministry-math"))
        .await
        .expect("get");
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}
