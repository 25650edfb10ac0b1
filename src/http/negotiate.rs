//! Parsing of the request headers that choose a representation: `Accept-Encoding` (with
//! q-values), `Range`, `If-None-Match` and `If-Range`. Pure functions, fuzzed and unit-tested.

use std::ops::Range;

use axum::http::{HeaderMap, header};

/// A content coding dars can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Zstd,
    Gzip,
    Identity,
}

impl Coding {
    fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }
}

/// Chooses among `available` codings (in order of preference) strictly from the client's
/// `Accept-Encoding`. `None` means nothing available is acceptable (406).
///
/// - no header, or an empty one: identity only;
/// - a coding is acceptable if listed with q > 0, or matched by `*` with q > 0;
/// - identity is acceptable unless refused by `identity;q=0`, or by `*;q=0` without an
///   `identity` entry; when not listed it ranks below every coding that is;
/// - the highest q wins; ties go to the earlier (smaller) coding in `available`.
pub fn choose_coding(header: Option<&str>, available: &[Coding]) -> Option<Coding> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return available.contains(&Coding::Identity).then_some(Coding::Identity);
    };
    let entries = parse_accept_encoding(header);
    let lookup = |name: &str| entries.iter().find(|(n, _)| n == name).map(|(_, q)| *q);
    let star = lookup("*");
    let mut best: Option<(Coding, u32)> = None;
    for &coding in available {
        let explicit = match coding {
            Coding::Gzip => lookup("gzip").or_else(|| lookup("x-gzip")),
            other => lookup(other.token()),
        };
        let q = match (explicit, coding) {
            (Some(q), _) => q,
            (None, Coding::Identity) => {
                if star == Some(0) {
                    0
                } else {
                    1 // acceptable, but below anything listed with q >= 0.002
                }
            }
            (None, _) => star.unwrap_or(0),
        };
        if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((coding, q));
        }
    }
    best.map(|(coding, _)| coding)
}

/// `(coding, q in thousandths)` for each well-formed entry; malformed entries are skipped.
fn parse_accept_encoding(header: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_*.+".contains(&b)) {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                q = None;
                break;
            };
            if key.trim().eq_ignore_ascii_case("q") {
                q = parse_qvalue(value.trim());
            }
        }
        if let Some(q) = q {
            out.push((name, q));
        }
    }
    out
}

/// RFC 9110 qvalue: `0[.ddd]` or `1[.000]`, in thousandths.
fn parse_qvalue(text: &str) -> Option<u32> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u32>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole representation (absent, malformed, several ranges).
    Full,
    /// One satisfiable range: 206.
    Partial(Range<u64>),
    /// A syntactically valid range that lies outside the representation: 416.
    Unsatisfiable,
}

/// Parses a single-range `Range: bytes=...` header against a length.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Full;
    };
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(len.saturating_sub(n)..len)
            }
        }
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if end.is_some_and(|e| e < start) {
                return RangeRequest::Full;
            }
            if start >= len {
                return RangeRequest::Unsatisfiable;
            }
            let end = end.map_or(len, |e| e.saturating_add(1).min(len));
            RangeRequest::Partial(start..end)
        }
        _ => RangeRequest::Full,
    }
}

/// Whether `If-None-Match` matches `etag` (weak comparison, as RFC 9110 requires for it).
pub fn none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    let ours = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

/// Whether a Range may be honoured given `If-Range` (strong comparison; dates never match
/// since dars sends no Last-Modified).
pub fn if_range_allows(header: Option<&str>, etag: &str) -> bool {
    header.is_none_or(|h| {
        let h = h.trim();
        !h.starts_with("W/") && h == etag
    })
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    const TEXT: &[Coding] = &[Zstd, Gzip, Identity];
    const MEDIA: &[Coding] = &[Identity];

    #[test]
    fn encodings_follow_the_header_strictly() {
        let cases: &[(Option<&str>, Option<Coding>)] = &[
            (None, Some(Identity)),
            (Some(""), Some(Identity)),
            (Some("gzip, deflate"), Some(Gzip)),
            (Some("gzip, deflate, br, zstd"), Some(Zstd)),
            (Some("br"), Some(Identity)),
            (Some("zstd;q=0.5, gzip"), Some(Gzip)),
            (Some("zstd;q=1, gzip;q=1"), Some(Zstd)),
            (Some("gzip;q=0"), Some(Identity)),
            (Some("*"), Some(Zstd)),
            (Some("*;q=0"), None),
            (Some("*;q=0, identity"), Some(Identity)),
            (Some("identity;q=0"), None),
            (Some("identity;q=0, gzip"), Some(Gzip)),
            (Some("GZIP"), Some(Gzip)),
            (Some("x-gzip"), Some(Gzip)),
            (Some("gzip;q=0.001"), Some(Gzip)),
            (Some("gzip;q=1.5"), Some(Identity)),
            (Some("gzip;q=abc"), Some(Identity)),
            (Some("gzip;q=0.0001"), Some(Identity)),
            (Some(" , ;;, gzip ; q = 0.8 "), Some(Gzip)),
            (Some("identity;q=0.5, gzip;q=0.4"), Some(Identity)),
        ];
        for (header, want) in cases {
            assert_eq!(choose_coding(*header, TEXT), *want, "{header:?}");
        }
        assert_eq!(
            choose_coding(Some("gzip, zstd"), MEDIA),
            Some(Identity),
            "media is never recompressed"
        );
        assert_eq!(choose_coding(Some("identity;q=0"), MEDIA), None);
    }

    #[test]
    fn ranges() {
        let len = 1000;
        let cases: &[(&str, RangeRequest)] = &[
            ("bytes=0-99", RangeRequest::Partial(0..100)),
            ("bytes=500-599", RangeRequest::Partial(500..600)),
            ("bytes=900-", RangeRequest::Partial(900..1000)),
            ("bytes=-100", RangeRequest::Partial(900..1000)),
            ("bytes=-5000", RangeRequest::Partial(0..1000)),
            ("bytes=990-5000", RangeRequest::Partial(990..1000)),
            ("bytes=1000-", RangeRequest::Unsatisfiable),
            ("bytes=1000-2000", RangeRequest::Unsatisfiable),
            ("bytes=-0", RangeRequest::Unsatisfiable),
            ("bytes=5-1", RangeRequest::Full),
            ("bytes=0-1,5-6", RangeRequest::Full),
            ("items=0-1", RangeRequest::Full),
            ("bytes=abc", RangeRequest::Full),
            ("bytes=-", RangeRequest::Full),
            ("bytes=99999999999999999999-", RangeRequest::Full),
        ];
        for (header, want) in cases {
            assert_eq!(&parse_range(Some(header), len), want, "{header}");
        }
        assert_eq!(parse_range(None, len), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn etag_matching() {
        assert!(none_match(Some("\"a\", \"b\""), "\"b\""));
        assert!(none_match(Some("W/\"b\""), "\"b\""));
        assert!(none_match(Some("*"), "\"b\""));
        assert!(!none_match(Some("\"c\""), "\"b\""));
        assert!(if_range_allows(None, "\"b\""));
        assert!(if_range_allows(Some("\"b\""), "\"b\""));
        assert!(!if_range_allows(Some("W/\"b\""), "\"b\""));
        assert!(!if_range_allows(Some("Sat, 01 Jan 2000 00:00:00 GMT"), "\"b\""));
    }
}
