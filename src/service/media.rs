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

/// Whether a file of `media_type` whose first bytes are `head` is worth compressing: any type
/// `is_compressible` names, and a file of no known type (`application/octet-stream`) whose
/// bytes are text. Documentation carries such files (Qt's `.index` and `.qhp`, GNOME's
/// `.devhelp2`: XML under names no table knows); kept raw, they were a quarter of the
/// bench corpus's package while zstd makes them 23 times smaller.
pub fn worth_compressing(media_type: &str, head: &[u8]) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    is_compressible(essence) || (essence == "application/octet-stream" && looks_like_text(head))
}

/// Whether `head` (the whole file, or its first bytes) is text: not empty and free of the
/// bytes that the WHATWG MIME Sniffing standard calls binary data bytes (controls other than
/// tab, line feed, form feed, carriage return and escape). UTF-8 and the legacy 8-bit code
/// pages pass; UTF-16 (a NUL in every other byte of Latin text) and binaries do not.
fn looks_like_text(head: &[u8]) -> bool {
    const SNIFFED: usize = 8192;
    let head = &head[..head.len().min(SNIFFED)];
    !head.is_empty()
        && !head
            .iter()
            .any(|&b| matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F))
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
    fn a_file_of_no_known_type_is_compressed_when_its_bytes_are_text() {
        let xml = b"<?xml version=\"1.0\"?>\n<INDEX project=\"QtCore\">\r\n\t<page/>\x0c</INDEX>\n";
        assert!(worth_compressing(&media_type("qtcore.index", xml), xml));
        assert!(worth_compressing(
            "application/octet-stream",
            "dərs\u{1b}[0m".as_bytes()
        ));
        assert!(worth_compressing("application/octet-stream", b"caf\xe9 latin-1"));
        assert!(!worth_compressing(
            "application/octet-stream",
            b"\x7fELF\x02\x01\x01\x00"
        ));
        assert!(!worth_compressing(
            "application/octet-stream",
            "<x/>"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<_>>()
                .as_slice()
        ));
        assert!(!worth_compressing("application/octet-stream", b""));
        // A known type keeps its own rule, whatever its bytes.
        assert!(!worth_compressing("image/png", b"plain text in a .png"));
        assert!(worth_compressing("text/css", b"\x00"));
        // Binary after the sniffed part does not count: the compressor decides from there.
        let mut long = vec![b'a'; 8192];
        long.push(0);
        assert!(worth_compressing("application/octet-stream", &long));
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
