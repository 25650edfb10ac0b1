//! The console at /admin over real HTTP with a cookie store: sessions, CSRF tokens, roles,
//! login slowing, and the audit log.

use std::path::Path;

use dars::http::admin::ConsoleSettings;
use dars::service::{Library, Role};
use reqwest::StatusCode;

use crate::common::{TestServer, write_lesson};

/// Adds an account straight through the library (as `dars user add` does).
pub fn add_account(data: &Path, name: &str, role: Role, password: &str) {
    Library::open(data)
        .expect("open")
        .add_account("test", name, role, password)
        .expect("add account");
}

/// A client that keeps cookies and does not follow redirects.
pub fn browser() -> reqwest::Client {
    dars::service::sync::install_crypto();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of the first `name="csrf"` field of a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).map(|i| i + marker.len()).expect("a csrf field");
    html[start..].split('"').next().expect("value").to_owned()
}

/// Sends the login form as a browser would; returns the response.
pub async fn try_login(client: &reqwest::Client, server: &TestServer, name: &str, password: &str) -> reqwest::Response {
    let form = client.get(server.url("/admin/login")).send().await.expect("login page");
    assert_eq!(form.status(), StatusCode::OK);
    let token = csrf_of(&form.text().await.expect("body"));
    client
        .post(server.url("/admin/login"))
        .form(&[("csrf", token.as_str()), ("name", name), ("password", password)])
        .send()
        .await
        .expect("login")
}

/// A logged-in client and its session's CSRF token.
pub async fn login(server: &TestServer, name: &str, password: &str) -> (reqwest::Client, String) {
    let client = browser();
    let response = try_login(&client, server, name, password).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "login of {name}");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .find(|c| c.starts_with("dars_session="))
        .expect("session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    let page = client.get(server.url("/admin/lessons")).send().await.expect("lessons");
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.expect("body"));
    (client, csrf)
}

pub async fn post(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    client.post(server.url(path)).form(fields).send().await.expect("post")
}

pub async fn get_text(client: &reqwest::Client, server: &TestServer, path: &str) -> (StatusCode, String) {
    let response = client.get(server.url(path)).send().await.expect("get");
    (response.status(), response.text().await.expect("body"))
}

/// A server with one lesson, a teacher (amina) and a technician (rauf).
pub async fn console() -> TestServer {
    TestServer::start_with_console(
        |data| {
            let src = tempfile::tempdir().expect("src");
            write_lesson(src.path(), "water", &[("index.html", b"<h1>Su</h1>")]);
            crate::common::import(data, src.path());
            add_account(data, "amina", Role::Teacher, "teacher-pass-1");
            add_account(data, "rauf", Role::Technician, "technician-pass-1");
        },
        ConsoleSettings::default(),
    )
    .await
}

const GET_ROUTES: &[&str] = &[
    "/admin",
    "/admin/",
    "/admin/lessons",
    "/admin/usage",
    "/admin/sticks",
    "/admin/jobs/1",
    "/admin/api/jobs/1",
    "/admin/progress.js",
    "/admin/system",
    "/admin/accounts",
    "/admin/audit",
    "/admin/no-such-page",
];

/// Every POST route, with a real target where the path names one.
const POST_ROUTES: &[&str] = &[
    "/admin/logout",
    "/admin/lessons/upload",
    "/admin/lessons/water/hide",
    "/admin/lessons/water/show",
    "/admin/lessons/water/delete",
    "/admin/sticks/verify",
    "/admin/sticks/import",
    "/admin/sticks/export",
    "/admin/system/sync",
    "/admin/system/verify",
    "/admin/system/report",
    "/admin/accounts/add",
    "/admin/accounts/amina/remove",
    "/admin/accounts/amina/password",
];

/// Technicians' work, with a valid form for each.
const TECHNICIAN_ONLY: &[(&str, &[(&str, &str)])] = &[
    ("/admin/sticks/verify", &[("stick", "/media/x")]),
    ("/admin/sticks/import", &[("stick", "/media/x")]),
    ("/admin/sticks/export", &[("stick", "/media/x")]),
    ("/admin/system/sync", &[]),
    ("/admin/system/verify", &[]),
    ("/admin/system/report", &[("stick", "/media/x")]),
    (
        "/admin/accounts/add",
        &[
            ("name", "leyla"),
            ("role", "technician"),
            ("password", "p4ssword!"),
            ("again", "p4ssword!"),
        ],
    ),
    ("/admin/accounts/rauf/remove", &[]),
    (
        "/admin/accounts/rauf/password",
        &[("password", "p4ssword!"), ("again", "p4ssword!")],
    ),
];

#[tokio::test]
async fn every_admin_route_refuses_a_request_without_a_session() {
    let server = console().await;
    let client = browser();
    for path in GET_ROUTES {
        let response = client.get(server.url(path)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "GET {path}");
        assert_eq!(response.headers()["location"], "/admin/login", "GET {path}");
    }
    for path in POST_ROUTES {
        let response = post(&client, &server, path, &[("csrf", "x")]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "POST {path}");
    }
    // A made-up session cookie is no session either.
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = forged
        .get(server.url("/admin/lessons"))
        .header("cookie", format!("dars_session={}", "ab".repeat(32)))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Only the login page answers.
    let (status, body) = get_text(&client, &server, "/admin/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Konsola giriş"), "Azerbaijani first");
    // Nothing changed.
    assert_eq!(
        Library::open(server.data.path())
            .expect("open")
            .accounts()
            .expect("accounts")
            .len(),
        2
    );
    let (status, _) = get_text(&client, &server, "/lessons/water/").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn every_post_without_a_valid_csrf_token_is_refused() {
    let server = console().await;
    let (client, csrf) = login(&server, "rauf", "technician-pass-1").await;
    for path in POST_ROUTES {
        for fields in [
            vec![],
            vec![("csrf", "0".repeat(64))],
            vec![("csrf", csrf[..63].to_owned())],
        ] {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let response = post(&client, &server, path, &fields).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "POST {path} with {fields:?}");
        }
    }
    // A multipart upload without the token is refused before any file is read.
    let form = reqwest::multipart::Form::new().part(
        "zip",
        reqwest::multipart::Part::bytes(b"PK".to_vec()).file_name("x.zip"),
    );
    let response = client
        .post(server.url("/admin/lessons/upload"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // The login form has its own token.
    let response = browser()
        .post(server.url("/admin/login"))
        .form(&[("name", "rauf"), ("password", "technician-pass-1")])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Nothing changed: the lesson is visible, the accounts are the same, the session lives.
    let (status, _) = get_text(&client, &server, "/lessons/water/").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = Library::open(server.data.path())
        .expect("open")
        .accounts()
        .expect("accounts")
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["amina", "rauf"]);
    let (status, _) = get_text(&client, &server, "/admin/lessons").await;
    assert_eq!(status, StatusCode::OK);
    // With the token, the same POST works: logging out ends the session server-side.
    let response = post(&client, &server, "/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, _) = get_text(&client, &server, "/admin/lessons").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "logged out");
    server.stop().await;
}

#[tokio::test]
async fn a_teacher_cannot_do_a_technicians_work() {
    let server = console().await;
    let (client, csrf) = login(&server, "amina", "teacher-pass-1").await;
    for path in [
        "/admin/sticks",
        "/admin/system",
        "/admin/accounts",
        "/admin/audit",
        "/admin/jobs/1",
    ] {
        let (status, _) = get_text(&client, &server, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {path}");
    }
    for (path, fields) in TECHNICIAN_ONLY {
        let mut fields = fields.to_vec();
        fields.push(("csrf", &csrf));
        let response = post(&client, &server, path, &fields).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "POST {path}");
    }
    let (_, page) = get_text(&client, &server, "/admin/lessons").await;
    assert!(!page.contains("/admin/system"), "no technician links for a teacher");
    let lib = Library::open(server.data.path()).expect("open");
    assert_eq!(
        lib.accounts().expect("accounts").len(),
        2,
        "no account was added or removed"
    );
    assert!(
        lib.login("rauf", "technician-pass-1", [127, 0, 0, 1].into()).is_ok(),
        "password unchanged"
    );
    // What a teacher may do, she can.
    let response = post(&client, &server, "/admin/lessons/water/hide", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // A technician may do the same work.
    let (tech, tech_csrf) = login(&server, "rauf", "technician-pass-1").await;
    for path in ["/admin/sticks", "/admin/system", "/admin/accounts", "/admin/audit"] {
        let (status, _) = get_text(&tech, &server, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path} as technician");
    }
    let response = post(&tech, &server, "/admin/lessons/water/show", &[("csrf", &tech_csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    server.stop().await;
}

#[tokio::test]
async fn failed_logins_lock_out_the_account_and_then_the_address() {
    let server = console().await;
    let client = browser();
    for attempt in 1..=5 {
        let response = try_login(&client, &server, "amina", "wrong password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // The account is locked: even the right password is refused, with a time to wait.
    let response = try_login(&client, &server, "amina", "teacher-pass-1").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait >= 1, "{wait}");
    assert!(response.text().await.expect("body").contains("saniyə"));
    // Another account from the same address is not locked yet (the address allows more).
    let response = try_login(&client, &server, "rauf", "technician-pass-1").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Guessing across many names locks the address itself.
    for n in 1..=10 {
        let response = try_login(&client, &server, &format!("guess{n}"), "wrong password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let response = try_login(&client, &server, "rauf", "technician-pass-1").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // Failed logins are in the audit log, with the address.
    let log = Library::open(server.data.path())
        .expect("open")
        .audit_log(100)
        .expect("audit");
    let failed = log.iter().filter(|e| e.action == "login failed").count();
    assert_eq!(failed, 15);
    assert!(
        log.iter()
            .any(|e| e.action == "login" && e.account == "rauf" && e.details.contains("127.0.0.1"))
    );
    server.stop().await;
}

#[tokio::test]
async fn accounts_are_managed_by_technicians_and_every_change_is_audited() {
    let server = console().await;
    let (tech, csrf) = login(&server, "rauf", "technician-pass-1").await;
    let add = |name: &'static str, again: &'static str| {
        vec![
            ("name", name),
            ("role", "teacher"),
            ("password", "leyla-pass-1"),
            ("again", again),
        ]
    };
    let mut fields = add("leyla", "something else");
    fields.push(("csrf", &csrf));
    let response = post(&tech, &server, "/admin/accounts/add", &fields).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "passwords differ");
    let mut fields = add("Leyla M", "leyla-pass-1");
    fields.push(("csrf", &csrf));
    let response = post(&tech, &server, "/admin/accounts/add", &fields).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.expect("body").contains("bad account name"));
    let mut fields = add("leyla", "leyla-pass-1");
    fields.push(("csrf", &csrf));
    let response = post(&tech, &server, "/admin/accounts/add", &fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (leyla, _) = login(&server, "leyla", "leyla-pass-1").await;
    // A reset password ends her session and the old password stops working.
    let response = post(
        &tech,
        &server,
        "/admin/accounts/leyla/password",
        &[
            ("csrf", &csrf),
            ("password", "new-leyla-pass"),
            ("again", "new-leyla-pass"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, _) = get_text(&leyla, &server, "/admin/lessons").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "session ended");
    assert_eq!(
        try_login(&browser(), &server, "leyla", "leyla-pass-1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    login(&server, "leyla", "new-leyla-pass").await;
    let response = post(&tech, &server, "/admin/accounts/rauf/remove", &[("csrf", &csrf)]).await;
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "not one's own account"
    );
    let response = post(&tech, &server, "/admin/accounts/leyla/remove", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, page) = get_text(&tech, &server, "/admin/audit?lang=en").await;
    assert_eq!(status, StatusCode::OK);
    for action in ["account added", "password set", "account removed", "login"] {
        assert!(page.contains(action), "audit log lacks {action}");
    }
    assert!(page.contains("Audit log"), "English on request");
    // The language choice sticks.
    let (_, page) = get_text(&tech, &server, "/admin/accounts").await;
    assert!(page.contains("Add an account"));
    let (_, page) = get_text(&tech, &server, "/admin/accounts?lang=ru").await;
    assert!(page.contains("Добавить учётную запись"));
    server.stop().await;
}
