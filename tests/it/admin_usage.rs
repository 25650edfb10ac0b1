//! The console's usage page and field reports over real HTTP: phones open and save lessons on
//! the real server, a teacher sees those counts (charts and table) at once; a technician writes
//! the signed report onto a stick under a configured mount root and `dars fleet`'s reading
//! trusts it.

use std::path::Path;

use dars::http::admin::ConsoleSettings;
use dars::service::fleet::{FleetOptions, merge};
use dars::service::report::{REPORTS_DIR, centre_key, read_reports};
use dars::service::usage::{day_text, today};
use dars::service::{Library, Role};
use reqwest::StatusCode;

use crate::admin::{add_account, browser, get_text, login, post};
use crate::admin_sticks::run_job;
use crate::common::{TestServer, client, import, write_lesson};

/// A store with three lessons (water, fractions, sun), a teacher (amina) and a technician
/// (rauf).
fn fill(data: &Path) {
    let src = tempfile::tempdir().expect("src");
    write_lesson(src.path(), "water", &[("index.html", b"<h1>Su</h1>")]);
    write_lesson(src.path(), "fractions", &[("index.html", b"<h1>Kesr</h1>")]);
    write_lesson(src.path(), "sun", &[("index.html", b"<h1>Gunes</h1>")]);
    import(data, src.path());
    add_account(data, "amina", Role::Teacher, "teacher-pass-1");
    add_account(data, "rauf", Role::Technician, "technician-pass-1");
}

/// Real GETs of pages phones open, each answered 200.
async fn open_lessons(server: &TestServer, paths: &[&str]) {
    let http = client();
    for path in paths {
        let response = http.get(server.url(path)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.bytes().await.expect("body");
    }
}

/// The four figures (views 30 d, saves 30 d, views 90 d, saves 90 d) of a lesson's table row.
fn row_figures(page: &str, lesson: &str) -> Vec<u64> {
    let start = page
        .find(&format!("<tr data-lesson=\"{lesson}\">"))
        .unwrap_or_else(|| panic!("no row for {lesson} in\n{page}"));
    let row = &page[start..start + page[start..].find("</tr>").expect("row end")];
    row.split("<td class=\"")
        .skip(1)
        .map(|cell| {
            let value = &cell[cell.find('>').expect("cell") + 1..];
            value[..value.find('<').expect("cell end")].parse().expect("a number")
        })
        .collect()
}

#[tokio::test]
async fn the_usage_page_shows_what_phones_just_did() {
    let server = TestServer::start_with_console(fill, ConsoleSettings::default()).await;
    // No session: to the login page, like every console page.
    let response = browser().get(server.url("/admin/usage")).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/admin/login");

    open_lessons(
        &server,
        &[
            "/lessons/water/",
            "/lessons/water/",
            "/lessons/water/",
            "/lessons/fractions/",
            "/lessons/water/offline.html",
        ],
    )
    .await;
    // Nothing is in the store yet: counts wait in memory for the minute's flush.
    let stored = |data: &Path| {
        Library::open(data)
            .expect("open")
            .usage_totals(today() - 1, today())
            .expect("totals")
            .into_iter()
            .map(|u| (u.lesson, u.views, u.offline_saves))
            .collect::<Vec<_>>()
    };
    assert!(stored(server.data.path()).is_empty());

    let (teacher, _) = login(&server, "amina", "teacher-pass-1").await;
    let (status, page) = get_text(&teacher, &server, "/admin/usage").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<h1>İstifadə</h1>"), "Azerbaijani first");
    assert_eq!(row_figures(&page, "water"), vec![3, 1, 3, 1]);
    assert_eq!(row_figures(&page, "fractions"), vec![1, 0, 1, 0]);
    assert!(
        page.find("data-lesson=\"water\"") < page.find("data-lesson=\"fractions\""),
        "most used first"
    );
    assert!(page.contains("Lesson water"), "lessons by their titles");
    assert!(!page.contains("data-lesson=\"sun\""), "an unused lesson has no row");
    assert!(page.contains("<li>Lesson sun</li>"), "but is listed as not opened");
    // The charts: inline SVG, each named for screen readers, today's figures in the titles.
    assert!(page.contains("<svg"), "{page}");
    assert_eq!(page.matches("role=\"img\"").count(), 4, "{page}");
    let date = day_text(today());
    assert!(
        page.contains(&format!(
            "<title>Baxışlar, gün üzrə (son 30 gün): Σ 4 · max 4 ({date})</title>"
        )),
        "{page}"
    );
    assert!(page.contains(&format!(
        "aria-label=\"Oflayn saxlamalar, gün üzrə (son 30 gün): Σ 1 · max 1 ({date})\""
    )));
    assert!(page.contains("<title>Lesson water: 3</title>"), "{page}");
    assert!(!page.contains("<script"), "no script needed");
    assert!(!page.contains("127.0.0.1"), "nothing about who opened a lesson");
    // The page wrote the counts to the store first.
    assert_eq!(
        stored(server.data.path()),
        vec![("water".to_owned(), 3, 1), ("fractions".to_owned(), 1, 0)]
    );
    // A new view is there on the next look.
    open_lessons(&server, &["/lessons/fractions/"]).await;
    let (_, page) = get_text(&teacher, &server, "/admin/usage?lang=en").await;
    assert_eq!(row_figures(&page, "fractions"), vec![2, 0, 2, 0]);
    for english in [
        "Views per day (last 30 days)",
        "Offline saves, 90 days",
        "<h1>Usage</h1>",
    ] {
        assert!(page.contains(english), "{english}");
    }
    let (_, page) = get_text(&teacher, &server, "/admin/usage?lang=ru").await;
    assert!(page.contains("Просмотры по дням (последние 30 дней)"));
    // Linked from every console page, for teachers too.
    let (_, page) = get_text(&teacher, &server, "/admin/lessons").await;
    assert!(page.contains("href=\"/admin/usage\""));
    server.stop().await;
}

#[tokio::test]
async fn a_technician_writes_a_signed_field_report_onto_a_plugged_in_stick() {
    let usb = tempfile::tempdir().expect("usb root");
    let stick = usb.path().join("KINGSTON");
    std::fs::create_dir_all(&stick).expect("stick");
    // A stick where the reports folder cannot be made: a file has its name.
    let broken = usb.path().join("BROKEN");
    std::fs::create_dir_all(&broken).expect("stick");
    std::fs::write(broken.join(REPORTS_DIR), b"not a folder").expect("file");
    let settings = ConsoleSettings {
        centre_name: "Quba 3 nömrəli məktəb".to_owned(),
        usb_roots: vec![usb.path().to_path_buf()],
        ..ConsoleSettings::default()
    };
    let server = TestServer::start_with_console(fill, settings).await;
    open_lessons(&server, &["/lessons/water/", "/lessons/water/"]).await;
    let stick_path = stick.display().to_string();
    let written = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(REPORTS_DIR))
            .map(|entries| {
                entries
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };

    // A teacher may not, even with her token.
    let (teacher, teacher_csrf) = login(&server, "amina", "teacher-pass-1").await;
    let response = post(
        &teacher,
        &server,
        "/admin/system/report",
        &[("csrf", &teacher_csrf), ("stick", &stick_path)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let (tech, csrf) = login(&server, "rauf", "technician-pass-1").await;
    let (status, page) = get_text(&tech, &server, "/admin/system").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("action=\"/admin/system/report\""), "{page}");
    assert!(page.contains(&format!("<option value=\"{stick_path}\">")), "{page}");
    // Without the form's token, or with a wrong one: refused, nothing written.
    let wrong = "0".repeat(64);
    for fields in [
        vec![("stick", stick_path.as_str())],
        vec![("csrf", wrong.as_str()), ("stick", stick_path.as_str())],
    ] {
        let response = post(&tech, &server, "/admin/system/report", &fields).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{fields:?}");
    }
    // Only a listed stick: not the mount root itself, not another folder of the disk.
    let usb_root = usb.path().display().to_string();
    for other in [usb_root.as_str(), "/tmp", ""] {
        let response = post(
            &tech,
            &server,
            "/admin/system/report",
            &[("csrf", &csrf), ("stick", other)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{other:?}");
        let body = response.text().await.expect("body");
        assert!(body.contains("səhifəni yeniləyin"), "a clear error: {body}");
    }
    assert!(written(&stick).is_empty());
    assert!(!usb.path().join(REPORTS_DIR).exists());

    let job = run_job(
        &tech,
        &server,
        post(
            &tech,
            &server,
            "/admin/system/report",
            &[("csrf", &csrf), ("stick", &stick_path)],
        )
        .await,
    )
    .await;
    assert_eq!(job["ok"], true, "{job}");
    let files = written(&stick);
    assert_eq!(files.len(), 2, "{files:?}");
    let json = files.iter().find(|f| f.ends_with(".json")).expect("a .json");
    let stem = json.trim_end_matches(".json");
    assert!(files.contains(&format!("{stem}.sig")), "{files:?}");
    let message = job["message"].as_str().expect("message");
    let json_path = stick.join(REPORTS_DIR).join(json);
    assert!(
        message.contains(&json_path.display().to_string()),
        "the file is shown: {message}"
    );

    // dars fleet's reading: the signature holds and the key is this centre's.
    let found = read_reports(std::slice::from_ref(&stick)).expect("read");
    let fleet = merge(found, FleetOptions::default());
    assert!(fleet.rejected.is_empty(), "{:?}", fleet.rejected);
    assert_eq!(fleet.centres.len(), 1);
    let report = &fleet.centres[0].report;
    assert_eq!(report.centre, "Quba 3 nömrəli məktəb");
    assert_eq!(
        report.fingerprint,
        centre_key(server.data.path()).expect("key").public().fingerprint()
    );
    assert_eq!(report.lessons, 3);
    assert_eq!(report.usage.views_last(30), 2);
    assert_eq!(fleet.centres[0].recent_views, 2);

    // A stick that cannot take the report: the job fails and says why.
    let job = run_job(
        &tech,
        &server,
        post(
            &tech,
            &server,
            "/admin/system/report",
            &[("csrf", &csrf), ("stick", &broken.display().to_string())],
        )
        .await,
    )
    .await;
    assert_eq!(job["ok"], false, "{job}");
    let message = job["message"].as_str().expect("message");
    assert!(message.starts_with("Hesabat yazılmadı"), "{message}");
    assert!(
        message.contains(&broken.join(REPORTS_DIR).display().to_string()),
        "{message}"
    );

    let log = Library::open(server.data.path())
        .expect("open")
        .audit_log(50)
        .expect("audit");
    assert!(
        log.iter()
            .any(|e| e.action == "report written" && e.account == "rauf" && e.details.contains(json.as_str())),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| e.action == "report failed" && e.details.contains("BROKEN"))
    );
    server.stop().await;
}
