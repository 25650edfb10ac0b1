//! Server-rendered pages for phones (maud), usable without JavaScript: the language they are
//! in (a `?lang=` choice kept in a cookie, else `Accept-Language`, else Azerbaijani), one
//! layout with one small inline stylesheet, and responses with an ETag, gzip when offered,
//! and `Vary` on what they depend on.

mod browse;
mod home;
mod lesson;
mod offline;
mod poster;
mod search;

use std::net::SocketAddr;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

pub use browse::browse;
pub use home::home;
pub use lesson::card;
pub use offline::{lesson_file, pack_confirm, pack_file};
pub use poster::poster;
pub use search::search;

use super::negotiate::{Coding, choose_coding, none_match};
use super::{AppState, HttpError, Listening};
use crate::ui::{self, Lang, Text};

const LANG_COOKIE: &str = "dars_lang";

/// The stylesheet of every page: big touch targets (48 px), readable at 360 px, AA contrast.
const STYLE: &str = "*{box-sizing:border-box}html{-webkit-text-size-adjust:100%}\
body{font:17px/1.5 system-ui,-apple-system,Roboto,\"Noto Sans\",Arial,sans-serif;margin:0;color:#1a1a1a;background:#fff}\
.wrap{max-width:40rem;margin:0 auto;padding:0 1rem}header.top{background:#0a4d2c;color:#fff}\
header.top a{color:#fff}header.top .wrap{display:flex;align-items:center;min-height:56px;gap:1rem;flex-wrap:wrap}\
.brand{font-weight:700;font-size:1.25rem;text-decoration:none;min-height:48px;line-height:48px}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:.5rem;background:#ff0;color:#000;padding:.7rem;z-index:9}\
h1{font-size:1.5rem;line-height:1.25;margin:1rem 0 .6rem}h2{font-size:1.2rem;margin:1.4rem 0 .5rem}\
a{color:#0b4f9c}ul.tiles,ul.list{list-style:none;padding:0;margin:0}\
ul.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr));gap:.6rem}\
.tiles a,.list a.item,.btn{display:block;min-height:48px;padding:.7rem .9rem;border-radius:.5rem;text-decoration:none;font-weight:600}\
.tiles a,.list a.item{background:#eef4f0;color:#063d22;border:2px solid #c5dccd}\
.tiles a:focus,.list a.item:focus,.btn:focus{outline:3px solid #b36b00;outline-offset:2px}\
small,.meta{display:block;font-weight:400;color:#333;font-size:.93rem}.list li{margin:.6rem 0}\
.btn{background:#0a6b3d;color:#fff;border:0;font-size:1.05rem;text-align:center;margin:.6rem 0;width:100%;cursor:pointer}\
.btn.alt{background:#fff;color:#0a4d2c;border:2px solid #0a6b3d}\
.langs{display:flex;gap:.5rem;flex-wrap:wrap;list-style:none;padding:0}.langs a{display:block;min-height:48px;min-width:48px;padding:.7rem 1rem;border:2px solid #0a6b3d;border-radius:.5rem;text-decoration:none;font-weight:600;color:#0a4d2c}\
.langs a[aria-current]{background:#0a6b3d;color:#fff}\
form.search{display:flex;gap:.5rem;margin:1rem 0}form.search input{flex:1;min-width:0;min-height:48px;font-size:1rem;padding:0 .6rem;border:2px solid #555;border-radius:.5rem}\
form.search button{min-height:48px;padding:0 1rem;font-size:1rem;border:0;border-radius:.5rem;background:#0a6b3d;color:#fff}\
label.pick{display:flex;align-items:center;gap:.6rem;min-height:48px;padding:0 .4rem;color:#1a1a1a}label.pick input{width:28px;height:28px}\
nav.crumbs ol{list-style:none;padding:0;margin:.8rem 0 0;display:flex;flex-wrap:wrap;gap:.2rem .6rem}\
nav.crumbs a{display:inline-block;min-height:48px;line-height:48px}\
dl.facts{display:grid;grid-template-columns:auto 1fr;gap:.2rem 1rem}dl.facts dt{font-weight:600}dl.facts dd{margin:0}\
mark{background:#ffe27a;color:#000}footer.foot{margin:2.5rem 0 1rem;padding-top:.5rem;border-top:1px solid #ccc;font-size:.95rem}\
footer.foot a{display:inline-block;min-height:48px;line-height:48px}.error{border-left:6px solid #b00020;padding:.5rem .8rem;background:#fdecee}";

/// Who is asking: the page language, and the request headers the response depends on.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub lang: Lang,
    /// Chosen now with `?lang=`: the response remembers it in a cookie.
    remember: bool,
    accept_encoding: Option<String>,
    if_none_match: Option<String>,
    /// `http://host:port` as the phone reached us, for links inside saved files.
    pub origin: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let chosen = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "lang")
                .and_then(|(_, v)| Lang::from_tag(&v))
        });
        let (lang, remember) = match chosen {
            Some(lang) => (lang, cookie_lang(headers) != Some(lang)),
            None => (
                cookie_lang(headers)
                    .or_else(|| accept_language(text(header::ACCEPT_LANGUAGE).as_deref()))
                    .unwrap_or(Lang::Az),
                false,
            ),
        };
        let local = parts.extensions.get::<Listening>().map(|l| l.local);
        let origin = text(header::HOST)
            .filter(|h| valid_host(h))
            .map(|h| format!("http://{h}"))
            .or_else(|| local.map(|a| format!("http://{a}")));
        Ok(Visitor {
            lang,
            remember,
            accept_encoding: text(header::ACCEPT_ENCODING),
            if_none_match: text(header::IF_NONE_MATCH),
            origin,
        })
    }
}

/// A Host header safe to put into links: a name or address and a port, nothing else.
fn valid_host(host: &str) -> bool {
    !host.is_empty() && host.len() <= 255 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

fn cookie_lang(headers: &HeaderMap) -> Option<Lang> {
    super::negotiate::cookie(headers, LANG_COOKIE).and_then(Lang::from_tag)
}

/// The best of az, ru and en in an `Accept-Language` header (highest q; on a tie, the
/// first listed), or `None` when it names none of them.
pub fn accept_language(header: Option<&str>) -> Option<Lang> {
    let mut best: Option<(Lang, f32)> = None;
    for item in header?.split(',') {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(Lang::from_tag) else {
            continue;
        };
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((lang, q));
        }
    }
    best.map(|(lang, _)| lang)
}

/// A link in the breadcrumb trail.
pub struct Crumb {
    pub label: String,
    pub href: String,
}

/// Where a page shows the "whose turn is it?" profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profiles {
    /// Before the content: the home page, where a child picks who is reading.
    First,
    /// After it: lists, cards and results, where the lesson comes first on a small screen.
    Last,
}

/// The page around `body`: skip link, header, breadcrumbs, main, footer, and the script.
/// The profiles come after the content; see [`layout_with`].
pub fn layout(lang: Lang, title: &str, crumbs: &[Crumb], body: Markup) -> Markup {
    layout_with(lang, title, crumbs, body, Profiles::Last)
}

/// The same, with the profiles where `profiles` says.
pub fn layout_with(lang: Lang, title: &str, crumbs: &[Crumb], body: Markup, profiles: Profiles) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="description" content=(lang.t(Text::SiteTitle));
                title { (title) " · dars" }
                link rel="icon" href="data:,";
                style { (PreEscaped(STYLE)) (PreEscaped(ui::PROFILE_CSS)) }
                noscript { style { (PreEscaped(ui::NOSCRIPT_CSS)) } }
            }
            body {
                a .skip href="#main" { (lang.t(Text::SkipToContent)) }
                header .top { div .wrap { a .brand href="/" { "dars · " (lang.t(Text::SiteTitle)) } } }
                div .wrap {
                    @if !crumbs.is_empty() {
                        nav .crumbs aria-label=(lang.t(Text::Breadcrumb)) {
                            ol {
                                li { a href="/" { (lang.t(Text::Home)) } }
                                @for crumb in crumbs { li { "› " a href=(crumb.href) { (crumb.label) } } }
                            }
                        }
                    }
                    main #main {
                        @if profiles == Profiles::First { (ui::profile_bar(lang)) }
                        (body)
                        @if profiles == Profiles::Last { (ui::profile_bar(lang)) }
                    }
                    footer .foot { a href="/poster" { (lang.t(Text::Poster)) } }
                }
                script src=(ui::script_path()) defer {}
            }
        }
    }
}

/// A rendered page as a response: a strong ETag of its bytes (304 when it matches), gzip
/// when the phone offers it, `Vary` on the headers that chose it, and the language cookie
/// when one was chosen now.
pub fn page_response(visitor: &Visitor, status: StatusCode, markup: Markup) -> Response {
    let body = markup.into_string();
    let coding = choose_coding(visitor.accept_encoding.as_deref(), &[Coding::Gzip, Coding::Identity]);
    let Some(coding) = coding else {
        return HttpError::NotAcceptable.into_response();
    };
    let hash = blake3::hash(body.as_bytes()).to_hex();
    let etag = match coding {
        Coding::Gzip => format!("\"p{}-gz\"", &hash[..24]),
        _ => format!("\"p{}\"", &hash[..24]),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Encoding, Accept-Language, Cookie"),
    );
    headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(visitor.lang.code()));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if visitor.remember {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            visitor.lang.code()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.insert(header::SET_COOKIE, value);
        }
    }
    if status == StatusCode::OK && none_match(visitor.if_none_match.as_deref(), &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let bytes = match coding {
        Coding::Gzip => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzip(body.as_bytes())
        }
        _ => body.into_bytes(),
    };
    (status, headers, bytes).into_response()
}

/// gzip for pages (level 9: they are small, so this costs well under a millisecond).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_at(bytes, 9)
}

/// gzip at libdeflate's `level` (saved files of several MB use 6: fast, nearly as small).
pub fn gzip_at(bytes: &[u8], level: i32) -> Vec<u8> {
    let level = libdeflater::CompressionLvl::new(level).unwrap_or_default();
    let mut compressor = libdeflater::Compressor::new(level);
    let mut out = vec![0; compressor.gzip_compress_bound(bytes.len())];
    let n = compressor.gzip_compress(bytes, &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// A page saying what went wrong, in the visitor's language.
pub fn message_page(visitor: &Visitor, status: StatusCode, title: Text, message: &str) -> Response {
    let lang = visitor.lang;
    let body = html! {
        h1 { (lang.t(title)) }
        p .error { (message) }
        p { a .btn.alt href="/" { (lang.t(Text::Home)) } }
    };
    page_response(visitor, status, layout(lang, lang.t(title), &[], body))
}

/// The small page for anything that is not there, in all three languages.
pub fn not_found_page() -> Response {
    let body = html! {
        main {
            @for lang in Lang::ALL {
                h1 lang=(lang.code()) { (lang.t(Text::NotFoundTitle)) }
                p lang=(lang.code()) { (lang.t(Text::NotFoundText)) " " a href="/" { (lang.t(Text::Home)) } }
            }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="az" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "404 · dars" }
                link rel="icon" href="data:,";
                style { (PreEscaped(STYLE)) }
            }
            body { div .wrap { (body) } }
        }
    };
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// What a phone sees when the server (or its own share of it) is busy: a 503 with
/// `Retry-After`, in the three languages.
pub const BUSY_TEXT: &str = "Server məşğuldur, bir az sonra yenidən cəhd edin.\nСервер занят, повторите чуть позже.\nThe server is busy; try again in a moment.\n";

/// Fallback route.
pub async fn not_found() -> Response {
    not_found_page()
}

/// `GET /static/app-<hash>.js`: the profiles script, cached for a year (its path changes
/// with its content).
pub async fn script(State(_): State<AppState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if uri.path() != ui::script_path() {
        return not_found_page();
    }
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    let gz = choose_coding(accept, &[Coding::Gzip, Coding::Identity]) == Some(Coding::Gzip);
    let etag = format!("\"{}{}\"", &ui::script_path()[12..24], if gz { "-gz" } else { "" });
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    if none_match(headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()), &etag) {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    static GZ: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if gz {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let body = GZ.get_or_init(|| gzip(ui::APP_JS.as_bytes())).clone();
        (out, body).into_response()
    } else {
        (out, ui::APP_JS).into_response()
    }
}

/// The address the phone used, else the first LAN address, for the poster and saved files.
pub fn addresses(listening: Option<Listening>) -> Vec<SocketAddr> {
    listening.map(|l| super::lan_addresses(l.bound)).unwrap_or_default()
}

/// The search form (a plain GET form), with the words already asked for.
pub fn search_form(lang: Lang, words: &str, language: Option<&str>) -> Markup {
    html! {
        form .search action="/search" method="get" role="search" {
            label for="q" .skip { (lang.t(Text::SearchLabel)) }
            input #q type="search" name="q" value=(words) placeholder=(lang.t(Text::SearchLabel))
                aria-label=(lang.t(Text::SearchLabel)) enterkeyhint="search";
            @if let Some(language) = language { input type="hidden" name="language" value=(language); }
            button type="submit" { (lang.t(Text::SearchButton)) }
        }
    }
}

/// Escapes text for an attribute value built by hand.
pub fn attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_of_the_three() {
        assert_eq!(accept_language(Some("ru-RU,ru;q=0.9,en;q=0.8")), Some(Lang::Ru));
        assert_eq!(accept_language(Some("en-US,en;q=0.9,az;q=0.8")), Some(Lang::En));
        assert_eq!(accept_language(Some("tr-TR,tr;q=0.9")), None);
        assert_eq!(accept_language(Some("de;q=1, az;q=0.5, ru;q=0.4")), Some(Lang::Az));
        assert_eq!(accept_language(Some("ru;q=0")), None);
        assert_eq!(accept_language(None), None);
    }

    #[test]
    fn only_plain_hosts_go_into_links() {
        assert!(valid_host("10.0.0.2:8080"));
        assert!(valid_host("[fe80::1]:8080"));
        assert!(!valid_host("evil.example/\"><script>"));
    }
}
