//! The console's page frame: navigation by role, language links, messages, and the headers
//! every console page carries (never cached, never framed).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::auth::Admin;
use super::i18n::{Lang, S};

const STYLE: &str = "body{font:16px/1.45 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}\
header{background:#064;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.8rem;align-items:center}\
header a{color:#fff}header button{color:#064;background:#fff;border:0;border-radius:.3rem}header nav{display:flex;flex-wrap:wrap;gap:.8rem;flex:1}\
main{max-width:60rem;margin:0 auto;padding:0 1rem 3rem}h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top}\
form.inline{display:inline}button{padding:.35rem .8rem;cursor:pointer}.msg{background:#e6f4ea;padding:.6rem;border-radius:.3rem}\
.err{background:#fdecea;padding:.6rem;border-radius:.3rem;white-space:pre-wrap}label{display:block;margin:.4rem 0}\
input[type=text],input[type=password],select,textarea{width:100%;max-width:24rem;padding:.3rem}\
.card{background:#fff;border:1px solid #ddd;border-radius:.4rem;padding:.8rem;margin:.8rem 0}code{word-break:break-all}\
progress{width:100%;max-width:30rem;height:1.4rem}.muted{color:#555}\
figure.usage{margin:.6rem 0;overflow-x:auto}figure.usage svg{max-width:100%;height:auto}figcaption{font-size:.9rem;color:#555}";

/// A whole console page. `admin` is `None` on the login page.
pub fn page(admin: Option<&Admin>, lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dars " (lang.t(S::console)) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "dars · " (lang.t(S::console)) }
                    nav {
                        @if let Some(admin) = admin {
                            a href="/admin/lessons" { (lang.t(S::lessons)) }
                            a href="/admin/usage" { (lang.t(S::usage)) }
                            @if admin.is_technician() {
                                a href="/admin/sticks" { (lang.t(S::sticks)) }
                                a href="/admin/system" { (lang.t(S::system)) }
                                a href="/admin/accounts" { (lang.t(S::accounts)) }
                                a href="/admin/audit" { (lang.t(S::audit)) }
                            }
                        }
                    }
                    span {
                        @for other in Lang::ALL {
                            @if other != lang { a href={ "?lang=" (other.code()) } lang=(other.code()) { (other.native_name()) } " " }
                        }
                    }
                    @if let Some(admin) = admin {
                        form.inline method="post" action="/admin/logout" {
                            (csrf(admin))
                            span { (admin.session.account) " " }
                            button type="submit" { (lang.t(S::log_out)) }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(admin: &Admin) -> Markup {
    html! { input type="hidden" name="csrf" value=(admin.session.csrf); }
}

/// A small POST form with one button, for actions on one thing.
pub fn button(admin: &Admin, action: &str, label: &str, fields: &[(&str, &str)]) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(admin))
            @for (name, value) in fields { input type="hidden" name=(name) value=(value); }
            button type="submit" { (label) }
        }
    }
}

/// Sends a page with the console's headers.
pub fn send(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A page saying what went wrong, with a link back.
pub fn problem(admin: Option<&Admin>, lang: Lang, status: StatusCode, message: &str, back: &str) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => lang.t(S::forbidden),
        StatusCode::NOT_FOUND => lang.t(S::not_found),
        _ => lang.t(S::error),
    };
    let body = html! {
        p.err { (message) }
        p { a href=(back) { (lang.t(S::back)) } }
    };
    send(status, page(admin, lang, title, body))
}

/// Unknown console paths: still only for those logged in.
pub async fn not_found(admin: Admin) -> Response {
    problem(
        Some(&admin),
        admin.lang,
        StatusCode::NOT_FOUND,
        admin.lang.t(S::not_found),
        "/admin",
    )
}

/// Bytes as MB or GB for people.
pub fn size(bytes: u64) -> String {
    if bytes >= 10 << 30 {
        format!("{:.0} GB", bytes as f64 / f64::from(1u32 << 30))
    } else if bytes >= 1 << 30 {
        format!("{:.1} GB", bytes as f64 / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MB", bytes as f64 / f64::from(1u32 << 20))
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM` UTC.
pub fn when(secs: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let text = humantime::format_rfc3339_seconds(time).to_string();
    text.get(..16).map(|t| t.replace('T', " ")).unwrap_or(text)
}
