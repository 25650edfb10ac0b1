//! Where a reference in a lesson page points: another page of the file, one of its files, a
//! page of the server, or somewhere else entirely. Lessons are served at `/lessons/{id}/`, so
//! references are resolved as the browser would against that address.

use super::Build;

/// What a reference (`href`, `src`, `url()`) in a page points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `#x` on the same page.
    Here(String),
    /// A page of a lesson in the file, maybe with a fragment.
    Page {
        lesson: usize,
        page: usize,
        fragment: Option<String>,
    },
    /// Another file of a lesson in the file.
    File { lesson: usize, path: String },
    /// A path on the server (a lesson not in the file, a missing file), with query and fragment.
    Server(String),
    /// Another site, `mailto:`, `tel:` or a `data:` URI: left as it is.
    External(String),
    /// Nothing to keep (`javascript:`, empty).
    Nothing,
}

/// Percent-encodes a lesson path for use in a URL (keeping `/`).
pub fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `text` starts with a URL scheme (`http:`, `mailto:`, `data:` ...).
fn has_scheme(text: &str) -> bool {
    let Some(colon) = text.find(':') else { return false };
    let scheme = &text[..colon];
    !scheme.is_empty()
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
}

impl Build<'_> {
    /// Resolves `reference` found on page `page` of lesson `lesson`.
    pub(super) fn resolve(&self, lesson: usize, page_path: &str, reference: &str) -> Target {
        let reference = reference.trim();
        if reference.is_empty() {
            return Target::Nothing;
        }
        if let Some(fragment) = reference.strip_prefix('#') {
            return Target::Here(percent_decode(fragment));
        }
        if has_scheme(reference) {
            let scheme = reference[..reference.find(':').unwrap_or(0)].to_ascii_lowercase();
            return if matches!(scheme.as_str(), "javascript" | "vbscript") {
                Target::Nothing
            } else {
                Target::External(reference.to_owned())
            };
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return Target::External(format!("http://{rest}"));
        }
        let (before_fragment, fragment) = match reference.split_once('#') {
            Some((a, f)) => (a, Some(percent_decode(f))),
            None => (reference, None),
        };
        let (path_part, query) = match before_fragment.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (before_fragment, None),
        };
        let id = &self.lessons[lesson].row.meta.id;
        let joined = if path_part.starts_with('/') {
            path_part.to_owned()
        } else {
            let base = format!("/lessons/{id}/{page_path}");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{path_part}")
        };
        let mut segments: Vec<String> = Vec::new();
        let trailing = joined.ends_with('/') || path_part.is_empty();
        for segment in joined.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                other => segments.push(percent_decode(other)),
            }
        }
        let server_path = || {
            let mut path = format!(
                "/{}",
                segments
                    .iter()
                    .map(|s| percent_encode_path(s))
                    .collect::<Vec<_>>()
                    .join("/")
            );
            if trailing && path.len() > 1 {
                path.push('/');
            }
            if let Some(q) = query {
                path.push('?');
                path.push_str(q);
            }
            if let Some(f) = &fragment {
                path.push('#');
                path.push_str(f);
            }
            path
        };
        if segments.len() < 2 || segments[0] != "lessons" {
            return Target::Server(server_path());
        }
        let Some(&target) = self.by_id.get(&segments[1]) else {
            return Target::Server(server_path());
        };
        let file_path = segments[2..].join("/");
        let lesson = &self.lessons[target];
        let file_path = if file_path.is_empty() {
            lesson.row.meta.entry.clone()
        } else {
            file_path
        };
        if let Some(page) = lesson.pages.iter().position(|p| *p == file_path) {
            return Target::Page {
                lesson: target,
                page,
                fragment: fragment.filter(|f| !f.is_empty()),
            };
        }
        if lesson.files.contains_key(&file_path) {
            return Target::File {
                lesson: target,
                path: file_path,
            };
        }
        Target::Server(server_path())
    }

    /// The in-file anchor of an element id on a page.
    pub(super) fn element_anchor(&self, lesson: usize, page: usize, id: &str) -> String {
        let clean: String = id.chars().map(|c| if c.is_whitespace() { '_' } else { c }).collect();
        format!("{}--{clean}", self.lessons[lesson].page_anchor(page))
    }

    /// The `href` that takes a reader of the saved file to `target`, or `None` to drop it.
    /// Links to files that are not in the saved file are listed as separate downloads.
    pub(super) fn link_href(&mut self, lesson: usize, page: usize, target: Target) -> Option<String> {
        match target {
            Target::Here(f) if f.is_empty() => Some(format!("#{}", self.lessons[lesson].page_anchor(page))),
            Target::Here(f) => Some(format!("#{}", self.element_anchor(lesson, page, &f))),
            Target::Page {
                lesson: l,
                page: p,
                fragment,
            } => Some(match fragment {
                Some(f) => format!("#{}", self.element_anchor(l, p, &f)),
                None => format!("#{}", self.lessons[l].page_anchor(p)),
            }),
            Target::File { lesson: l, path } => {
                let media_type = self.lessons[l]
                    .files
                    .get(&path)
                    .map(|f| f.media_type.clone())
                    .unwrap_or_default();
                if super::is_material(&media_type) {
                    self.list(l, &path, false);
                }
                self.server_url(l, &path)
            }
            Target::Server(path) => self.opts.server.as_ref().map(|s| format!("{s}{path}")),
            Target::External(url) => Some(url),
            Target::Nothing => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_told_from_paths() {
        assert!(has_scheme("http://x"));
        assert!(has_scheme("mailto:a@b"));
        assert!(!has_scheme("img/a.png"));
        assert_eq!(percent_decode("my%20pic.png"), "my pic.png");
        assert_eq!(percent_encode_path("img/my pic.png"), "img/my%20pic.png");
    }
}
