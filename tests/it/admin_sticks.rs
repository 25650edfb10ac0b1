//! Technicians' work in the console: USB sticks under a configured mount root (a package by a
//! trusted publisher, one by an unknown publisher, loose lesson folders, an empty stick),
//! verify, import and export as jobs with progress pages and JSON, and the system page.

use std::path::Path;
use std::time::{Duration, Instant};

use dars::http::admin::ConsoleSettings;
use dars::keys::SecretKey;
use dars::service::package::PublishOptions;
use dars::service::{Progress, Role};
use reqwest::StatusCode;

use crate::admin::{add_account, get_text, login, post};
use crate::common::{TestServer, write_lesson};

fn publish(src: &Path, out: &Path, key: SecretKey) {
    let scan = dars::service::scan_folder(src).expect("scan");
    dars::service::package::publish(scan, out, &PublishOptions::new(key), &Progress::new()).expect("publish");
}

/// Follows a job started by a POST to its end; returns its JSON.
pub async fn run_job(client: &reqwest::Client, server: &TestServer, response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "a job starts with a redirect");
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let id = location.strip_prefix("/admin/jobs/").expect("job page");
    let (status, page) = get_text(client, server, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<progress"), "a progress bar");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = get_text(client, server, &format!("/admin/api/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        let job: serde_json::Value = serde_json::from_str(&body).expect("json");
        if job["running"] == false {
            let (_, page) = get_text(client, server, &location).await;
            assert!(
                !page.contains("http-equiv=\"refresh\""),
                "a finished job's page stops refreshing"
            );
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sticks_are_listed_verified_imported_and_exported_with_progress() {
    let usb = tempfile::tempdir().expect("usb root");
    let src = tempfile::tempdir().expect("src");
    write_lesson(src.path(), "ministry-water", &[("index.html", b"<h1>Su</h1>")]);
    write_lesson(src.path(), "ministry-sun", &[("index.html", b"<h1>Gunes</h1>")]);
    let trusted_key = SecretKey::generate().expect("key");
    let trusted = trusted_key.public();
    publish(src.path(), &usb.path().join("KINGSTON").join("DARS"), trusted_key);
    let stranger_key = SecretKey::generate().expect("key");
    let stranger = stranger_key.public();
    publish(src.path(), &usb.path().join("UNKNOWN").join("DARS"), stranger_key);
    let teacher = usb.path().join("TEACHER");
    write_lesson(&teacher, "teacher-plants", &[("index.html", b"<h1>Bitki</h1>")]);
    std::fs::create_dir_all(usb.path().join("EMPTY")).expect("empty stick");

    let settings = ConsoleSettings {
        usb_roots: vec![usb.path().to_path_buf(), usb.path().join("not-mounted")],
        trusted_keys: vec![trusted],
        ..ConsoleSettings::default()
    };
    let server = TestServer::start_with_console(
        |data| add_account(data, "rauf", Role::Technician, "technician-pass-1"),
        settings,
    )
    .await;
    let (client, csrf) = login(&server, "rauf", "technician-pass-1").await;
    let (status, page) = get_text(&client, &server, "/admin/sticks").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "KINGSTON",
        "UNKNOWN",
        "TEACHER",
        "teacher-plants",
        // a package's lessons by title, read from their parts
        "Lesson ministry-water",
        "Lesson ministry-sun",
        &trusted.fingerprint(),
        &stranger.fingerprint(),
    ] {
        assert!(page.contains(expected), "the sticks page lacks {expected}");
    }
    assert!(
        page.contains(&format!("trusted_keys = [&quot;{}&quot;]", stranger.to_text())),
        "the line to add for the unknown publisher"
    );
    assert!(!page.contains(&format!("trusted_keys = [&quot;{}&quot;]", trusted.to_text())));

    let stick = |name: &str| usb.path().join(name).display().to_string();
    let job = run_job(
        &client,
        &server,
        post(
            &client,
            &server,
            "/admin/sticks/verify",
            &[("csrf", &csrf), ("stick", &stick("KINGSTON"))],
        )
        .await,
    )
    .await;
    assert_eq!(job["ok"], true, "{job}");
    assert!(job["message"].as_str().expect("message").contains("2 lessons"), "{job}");

    let job = run_job(
        &client,
        &server,
        post(
            &client,
            &server,
            "/admin/sticks/import",
            &[("csrf", &csrf), ("stick", &stick("KINGSTON"))],
        )
        .await,
    )
    .await;
    assert_eq!(job["ok"], true, "{job}");
    assert_eq!(job["progress"]["done_items"], job["progress"]["total_items"]);
    for id in ["ministry-water", "ministry-sun"] {
        let response = reqwest::get(server.url(&format!("/lessons/{id}/"))).await.expect("get");
        assert_eq!(response.status(), StatusCode::OK, "{id} imported");
    }

    let job = run_job(
        &client,
        &server,
        post(
            &client,
            &server,
            "/admin/sticks/import",
            &[("csrf", &csrf), ("stick", &stick("UNKNOWN"))],
        )
        .await,
    )
    .await;
    assert_eq!(job["ok"], false);
    assert!(
        job["message"].as_str().expect("message").contains("does not trust"),
        "{job}"
    );

    let job = run_job(
        &client,
        &server,
        post(
            &client,
            &server,
            "/admin/sticks/import",
            &[("csrf", &csrf), ("stick", &stick("TEACHER"))],
        )
        .await,
    )
    .await;
    assert_eq!(job["ok"], true, "{job}");
    let detail = reqwest::get(server.url("/api/v1/lessons/teacher-plants"))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(detail.contains("\"origin\":\"local\""), "{detail}");

    // Only the sticks found may be named: no other folder of the disk.
    let response = post(
        &client,
        &server,
        "/admin/sticks/import",
        &[("csrf", &csrf), ("stick", "/etc")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let job = run_job(
        &client,
        &server,
        post(
            &client,
            &server,
            "/admin/sticks/export",
            &[("csrf", &csrf), ("stick", &stick("EMPTY"))],
        )
        .await,
    )
    .await;
    assert_eq!(job["ok"], true, "{job}");
    assert!(usb.path().join("EMPTY/DARS/package.json").is_file());
    let (_, page) = get_text(&client, &server, "/admin/sticks").await;
    assert!(page.contains("EMPTY"), "the exported stick now holds a package");

    let (status, page) = get_text(&client, &server, "/admin/system").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&trusted.fingerprint()),
        "installed publisher and trusted key shown"
    );
    assert!(page.contains("upstreams"), "no upstreams configured");
    let job = run_job(
        &client,
        &server,
        post(&client, &server, "/admin/system/verify", &[("csrf", &csrf)]).await,
    )
    .await;
    assert_eq!(job["ok"], true, "{job}");

    let log = dars::service::Library::open(server.data.path())
        .expect("open")
        .audit_log(50)
        .expect("audit");
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    for action in ["stick imported", "stick import failed", "stick exported"] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
    server.stop().await;
}
