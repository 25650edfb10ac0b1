//! Media types of lesson files, and which of them are text worth compressing.

/// The `Content-Type` for a file at `path` whose raw bytes are `head` (a prefix is enough to
/// decide the charset only when the whole file is given; pass the whole file for text).
pub fn media_type(path: &str, bytes: &[u8]) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str().to_owned();
    if is_text(&essence) && std::str::from_utf8(bytes).is_ok() {
        format!("{essence}; charset=utf-8")
    } else {
        essence
    }
}

/// Whether files of this media type are text that compresses (and gets a gzip variant).
/// Pictures, audio, video, PDFs and archives are already compressed: stored and served as is.
pub fn is_compressible(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    is_text(essence)
        || matches!(
            essence,
            "application/wasm"
                | "font/ttf"
                | "font/otf"
                | "application/vnd.ms-fontobject"
                | "image/x-icon"
                | "image/bmp"
        )
}

fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence.ends_with("+xml")
        || essence.ends_with("+json")
        || matches!(
            essence,
            "application/javascript" | "application/x-javascript" | "application/json" | "application/xml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_gets_a_charset_and_media_does_not() {
        assert_eq!(media_type("a/index.html", "ə".as_bytes()), "text/html; charset=utf-8");
        assert_eq!(media_type("pie.svg", b"<svg/>"), "image/svg+xml; charset=utf-8");
        assert_eq!(media_type("x.png", b"\x89PNG"), "image/png");
        assert_eq!(
            media_type("old.html", b"\xe9t\xe9"),
            "text/html",
            "latin-1 text keeps its own meta charset"
        );
        assert_eq!(media_type("noext", b""), "application/octet-stream");
    }

    #[test]
    fn only_text_is_compressed() {
        assert!(is_compressible("text/css; charset=utf-8"));
        assert!(is_compressible("image/svg+xml"));
        assert!(!is_compressible("image/png"));
        assert!(!is_compressible("application/pdf"));
        assert!(!is_compressible("video/mp4"));
    }
}
