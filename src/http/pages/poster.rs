//! `GET /poster`: a printable A4 page for the classroom wall: the server's address as a big
//! QR code (SVG) and in large type, with a two-line instruction in Azerbaijani and Russian.

use std::net::{IpAddr, SocketAddr};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{Visitor, addresses, page_response, valid_host};
use crate::http::{AppState, Listening};
use crate::ui::{Lang, Text};

const POSTER_STYLE: &str = "@page{size:A4;margin:12mm}*{box-sizing:border-box}\
body{font-family:system-ui,Roboto,Arial,sans-serif;color:#000;background:#fff;margin:0 auto;max-width:186mm;padding:4mm;text-align:center}\
h1{font-size:26pt;margin:2mm 0 4mm}.qr{width:120mm;max-width:100%;height:auto;display:block;margin:0 auto}\
.url{font:700 34pt/1.15 ui-monospace,\"DejaVu Sans Mono\",Menlo,monospace;margin:4mm 0;word-break:break-all}\
.line{font-size:17pt;margin:2mm 0}.other{margin-top:8mm}.other ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;justify-content:center;gap:8mm}\
.other svg{width:45mm;height:auto;display:block;margin:0 auto}.other p{font:600 14pt ui-monospace,monospace;margin:1mm 0}\
.print{min-height:48px;font-size:1rem;padding:0 1.2rem;margin:6mm 0;border:2px solid #0a6b3d;background:#fff;color:#0a4d2c;border-radius:.4rem}\
@media print{.print{display:none}}";

/// The QR code of `text` as an SVG element.
fn qr_svg(text: &str, label: &str) -> Markup {
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .dark_color(qrcode::render::svg::Color("#000000"))
                .light_color(qrcode::render::svg::Color("#ffffff"))
                .build();
            // Drop the XML declaration; give the picture a class and a name.
            let svg = svg.trim_start_matches(|c| c != '<');
            let svg = match svg.find("<svg") {
                Some(at) => &svg[at..],
                None => svg,
            };
            let named = svg.replacen(
                "<svg",
                &format!(
                    "<svg class=\"qr\" role=\"img\" aria-label=\"{}\"",
                    super::super::pages::attr(label)
                ),
                1,
            );
            PreEscaped(named)
        }
        Err(_) => html! {},
    }
}

/// The address to print first: the one the visitor used, unless it is this machine's own
/// loopback name, which no phone could use.
fn primary(host: Option<&str>, lan: &[SocketAddr]) -> Option<String> {
    let from_host = host.filter(|h| valid_host(h)).filter(|h| {
        let name = h.rsplit_once(':').map_or(*h, |(n, _)| n).trim_matches(['[', ']']);
        let loopback =
            name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        !loopback
    });
    from_host
        .map(str::to_owned)
        .or_else(|| lan.first().map(|a| a.to_string()))
        .or_else(|| host.filter(|h| valid_host(h)).map(str::to_owned))
}

pub async fn poster(
    State(_): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    listening: Option<axum::Extension<Listening>>,
) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let lan = addresses(listening.map(|e| e.0));
    let first = primary(host, &lan);
    let others: Vec<String> = lan
        .iter()
        .map(SocketAddr::to_string)
        .filter(|a| Some(a) != first.as_ref())
        .collect();
    let url = |a: &str| format!("http://{a}/");
    let (az, ru) = (Lang::Az, Lang::Ru);
    let markup = html! {
        (DOCTYPE)
        html lang="az" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (az.t(Text::PosterTitle)) " · " (ru.t(Text::PosterTitle)) }
                link rel="icon" href="data:,";
                style { (PreEscaped(POSTER_STYLE)) }
            }
            body {
                main {
                    h1 { "dars · " (az.t(Text::SiteTitle)) " · " span lang="ru" { (ru.t(Text::SiteTitle)) } }
                    p .line { (az.t(Text::PosterLine1)) }
                    p .line lang="ru" { (ru.t(Text::PosterLine1)) }
                    @match &first {
                        Some(address) => {
                            (qr_svg(&url(address), &url(address)))
                            p .line { (az.t(Text::PosterLine2)) " · " span lang="ru" { (ru.t(Text::PosterLine2)) } }
                            p .url { (address) }
                        }
                        None => p .line { (az.t(Text::PosterNoAddress)) br; span lang="ru" { (ru.t(Text::PosterNoAddress)) } },
                    }
                    @if !others.is_empty() {
                        section .other aria-label={ (az.t(Text::PosterOther)) " · " (ru.t(Text::PosterOther)) } {
                            h2 { (az.t(Text::PosterOther)) " · " span lang="ru" { (ru.t(Text::PosterOther)) } }
                            ul {
                                @for address in &others {
                                    li { (qr_svg(&url(address), &url(address))) p { (address) } }
                                }
                            }
                        }
                    }
                    button .print type="button" onclick="window.print()" { (az.t(Text::Print)) " · " (ru.t(Text::Print)) }
                }
            }
        }
    };
    page_response(&visitor, StatusCode::OK, markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poster_prints_the_address_phones_used_unless_it_is_loopback() {
        let lan: Vec<SocketAddr> = vec!["10.0.0.2:8080".parse().unwrap_or_else(|_| unreachable!())];
        assert_eq!(primary(Some("10.0.0.9:8080"), &lan).as_deref(), Some("10.0.0.9:8080"));
        assert_eq!(primary(Some("localhost:8080"), &lan).as_deref(), Some("10.0.0.2:8080"));
        assert_eq!(primary(Some("127.0.0.1:8080"), &lan).as_deref(), Some("10.0.0.2:8080"));
        assert_eq!(primary(Some("127.0.0.1:8080"), &[]).as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(primary(None, &[]), None);
    }
}
