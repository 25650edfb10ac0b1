//! Saved lessons: one self-contained HTML file for one lesson or a pack of lessons, made from
//! the stored bytes. Each lesson's HTML pages are put one after another, their links between
//! pages turned into anchors in the file; pictures (in `src`, `srcset`, CSS `url()` and
//! `style` attributes) become data: URIs; styles are inlined and scoped to their pages;
//! lesson scripts are dropped (the file carries only the profiles script). Big media, PDFs and
//! pictures over [`PICTURE_MAX`] are listed as separate downloads from the server, with sizes.

mod css;
mod page;
mod resolve;
mod shell;

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::Connection;

use super::ServiceError;
use crate::store::{self, FileEntry, LessonRow};
use crate::ui::Lang;

pub use resolve::percent_encode_path;

/// Pictures bigger than this are not inlined (base64 makes them a third bigger again).
pub const PICTURE_MAX: u64 = 2 * 1000 * 1000;
/// Inlined content per file, before base64; pictures past it are listed separately.
pub const INLINE_BUDGET: u64 = 24 * 1000 * 1000;
/// Lessons in one pack.
pub const PACK_MAX: usize = 60;

/// What a saved file is made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OfflineOptions {
    /// The address phones reach this server at (`http://10.0.0.2:8080`), for the links to
    /// files that are downloaded separately. `None`: such files are only named.
    pub server: Option<String>,
    /// The language of the file's own texts.
    pub lang: Lang,
    /// The date shown as the day it was saved (`2026-12-01`).
    pub today: String,
}

/// A file of a lesson that is not in the saved file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Separate {
    pub lesson: String,
    pub path: String,
    pub size: u64,
    pub media_type: String,
    /// Where to download it from, when the server's address is known.
    pub url: Option<String>,
    /// A picture left out for its size (not a PDF or media file, which are always separate).
    pub too_big: bool,
}

/// A saved file, ready to send.
#[derive(Debug, Clone)]
pub struct OfflineFile {
    pub html: bytes::Bytes,
    /// The file's title: the lesson's, or the pack's.
    pub title: String,
    /// A file name of ASCII letters only, for old download managers.
    pub ascii_name: String,
    /// The file name in full (UTF-8).
    pub file_name: String,
    pub lessons: Vec<LessonRow>,
    pub separate: Vec<Separate>,
    /// Pictures (and fonts) inlined, and their bytes before base64.
    pub inlined: (usize, u64),
}

/// What a pack is: the lessons, in order, and how it is named.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackRequest {
    pub ids: Vec<String>,
    /// The pack's title (for a subject of a grade: "Riyaziyyat · 4-cü sinif"); `None` for a
    /// single lesson, which takes its own title.
    pub title: Option<String>,
}

/// One lesson of a file being built.
struct Lesson {
    row: LessonRow,
    files: BTreeMap<String, FileEntry>,
    /// HTML pages, entry first.
    pages: Vec<String>,
    anchor: String,
    had_scripts: bool,
}

impl Lesson {
    fn page_anchor(&self, page: usize) -> String {
        format!("{}--p{page}", self.anchor)
    }
}

/// The state of one build.
struct Build<'c> {
    conn: &'c Connection,
    opts: &'c OfflineOptions,
    lessons: Vec<Lesson>,
    by_id: HashMap<String, usize>,
    inlined: (usize, u64),
    data_uris: HashMap<(usize, String), Option<std::rc::Rc<str>>>,
    separate: Vec<Separate>,
    listed: HashSet<(usize, String)>,
    /// Scoped CSS of each stylesheet, by (lesson, path): its class and text.
    sheets: BTreeMap<(usize, String), (String, String)>,
    /// CSS of `<style>` elements, already scoped to their page.
    inline_css: Vec<String>,
    over_budget: bool,
    too_big: bool,
}

/// Builds the saved file for `request`.
pub fn build(conn: &Connection, request: &PackRequest, opts: &OfflineOptions) -> Result<OfflineFile, ServiceError> {
    let mut lessons = Vec::new();
    let mut by_id = HashMap::new();
    for id in &request.ids {
        if by_id.contains_key(id) {
            continue;
        }
        let row = store::get_lesson(conn, id).map_err(|e| match e {
            store::StoreError::NotFound => ServiceError::NotFound,
            other => ServiceError::Store(other),
        })?;
        let files: BTreeMap<String, FileEntry> = store::files_of(conn, id)?
            .into_iter()
            .map(|f| (f.path.clone(), f))
            .collect();
        let mut pages: Vec<String> = files
            .values()
            .filter(|f| is_html(&f.media_type) && f.path != row.meta.entry)
            .map(|f| f.path.clone())
            .collect();
        if files.contains_key(&row.meta.entry) {
            pages.insert(0, row.meta.entry.clone());
        }
        by_id.insert(id.clone(), lessons.len());
        lessons.push(Lesson {
            anchor: format!("lesson-{id}"),
            row,
            files,
            pages,
            had_scripts: false,
        });
    }
    if lessons.is_empty() {
        return Err(ServiceError::NotFound);
    }
    let mut build = Build {
        conn,
        opts,
        lessons,
        by_id,
        inlined: (0, 0),
        data_uris: HashMap::new(),
        separate: Vec::new(),
        listed: HashSet::new(),
        sheets: BTreeMap::new(),
        inline_css: Vec::new(),
        over_budget: false,
        too_big: false,
    };
    let mut bodies = Vec::new();
    for lesson in 0..build.lessons.len() {
        let mut pages = Vec::new();
        for page in 0..build.lessons[lesson].pages.len() {
            pages.push(page::rewrite(&mut build, lesson, page)?);
        }
        build.list_materials(lesson);
        bodies.push(pages);
    }
    let title = match &request.title {
        Some(title) => title.clone(),
        None => build.lessons[0].row.meta.title.clone(),
    };
    let html = shell::assemble(&build, &title, &bodies);
    let (ascii_name, file_name) = file_names(&build, request, &title);
    Ok(OfflineFile {
        html: bytes::Bytes::from(html),
        title,
        ascii_name,
        file_name,
        lessons: build.lessons.iter().map(|l| l.row.clone()).collect(),
        separate: build.separate,
        inlined: build.inlined,
    })
}

impl Build<'_> {
    /// The raw bytes of a lesson file.
    fn read(&self, lesson: usize, path: &str) -> Result<Vec<u8>, ServiceError> {
        let entry = &self.lessons[lesson].files[path];
        let info = store::blob_info(self.conn, entry.hash)?;
        Ok(store::read_raw(self.conn, &info)?)
    }

    /// A picture or font of a lesson as a data: URI, or `None` when it is not one, or too
    /// big (then it is listed as a separate download).
    fn data_uri(&mut self, lesson: usize, path: &str) -> Result<Option<std::rc::Rc<str>>, ServiceError> {
        let key = (lesson, path.to_owned());
        if let Some(known) = self.data_uris.get(&key) {
            if known.is_some() {
                self.inlined.0 += 1;
                self.inlined.1 += self.lessons[lesson].files[path].size;
            }
            return Ok(known.clone());
        }
        let Some(entry) = self.lessons[lesson].files.get(path) else {
            return Ok(None);
        };
        let essence = essence(&entry.media_type).to_owned();
        if !(essence.starts_with("image/") || essence.starts_with("font/")) {
            return Ok(None);
        }
        let size = entry.size;
        if size > PICTURE_MAX || self.inlined.1 + size > INLINE_BUDGET {
            if size > PICTURE_MAX {
                self.too_big = true;
            } else {
                self.over_budget = true;
            }
            self.list(lesson, path, true);
            self.data_uris.insert(key, None);
            return Ok(None);
        }
        use base64::Engine as _;
        let bytes = self.read(lesson, path)?;
        let uri: std::rc::Rc<str> = format!(
            "data:{essence};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        )
        .into();
        self.inlined.0 += 1;
        self.inlined.1 += size;
        self.data_uris.insert(key, Some(uri.clone()));
        Ok(Some(uri))
    }

    /// Lists a lesson file as a separate download (once).
    fn list(&mut self, lesson: usize, path: &str, too_big: bool) {
        if !self.listed.insert((lesson, path.to_owned())) {
            return;
        }
        let Some(entry) = self.lessons[lesson].files.get(path) else {
            return;
        };
        let url = self.server_url(lesson, path);
        self.separate.push(Separate {
            lesson: self.lessons[lesson].row.meta.id.clone(),
            path: path.to_owned(),
            size: entry.size,
            media_type: essence(&entry.media_type).to_owned(),
            url,
            too_big,
        });
    }

    /// The server's address of a lesson file, when the server is known.
    fn server_url(&self, lesson: usize, path: &str) -> Option<String> {
        let id = &self.lessons[lesson].row.meta.id;
        self.opts
            .server
            .as_ref()
            .map(|s| format!("{s}/lessons/{id}/{}", percent_encode_path(path)))
    }

    /// Lists a lesson's materials that are never inlined (PDFs, audio, video, documents),
    /// whether or not a page links to them.
    fn list_materials(&mut self, lesson: usize) {
        let paths: Vec<String> = self.lessons[lesson]
            .files
            .values()
            .filter(|f| is_material(&f.media_type))
            .map(|f| f.path.clone())
            .collect();
        for path in paths {
            self.list(lesson, &path, false);
        }
    }
}

fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

fn is_html(media_type: &str) -> bool {
    matches!(essence(media_type), "text/html" | "application/xhtml+xml")
}

/// Files a student downloads to use as they are: not pages, styles, scripts or pictures.
fn is_material(media_type: &str) -> bool {
    let e = essence(media_type);
    !(e.starts_with("text/")
        || e.starts_with("image/")
        || e.starts_with("font/")
        || matches!(
            e,
            "application/javascript" | "application/json" | "application/xhtml+xml"
        ))
}

/// The file names of a saved file: ASCII (`dars-math-4-fractions-az.html`) and in full
/// (`Kəsrlər giriş - dars.html`).
fn file_names(build: &Build<'_>, request: &PackRequest, title: &str) -> (String, String) {
    let ascii = if build.lessons.len() == 1 && request.title.is_none() {
        format!("dars-{}.html", build.lessons[0].row.meta.id)
    } else {
        let slug: String = fold_to_ascii(title)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let slug: Vec<&str> = slug.split('-').filter(|s| !s.is_empty()).collect();
        let slug = slug.join("-");
        let slug = if slug.is_empty() {
            "pack".to_owned()
        } else {
            slug.chars().take(60).collect()
        };
        format!("dars-{slug}-{}.html", build.lessons.len())
    };
    let clean: String = title
        .chars()
        .map(|c| {
            if c.is_control() || "/\\:*?\"<>|".contains(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let clean: String = clean
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(80)
        .collect();
    (ascii, format!("{clean} - dars.html"))
}

/// Azerbaijani and Russian letters written with Latin ones, for ASCII file names.
fn fold_to_ascii(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let lower = c.to_lowercase().next().unwrap_or(c);
        let s = match lower {
            'ə' => "e",
            'ı' | 'i' => "i",
            'ş' => "sh",
            'ç' => "ch",
            'ğ' => "g",
            'ö' => "o",
            'ü' => "u",
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' => "g",
            'д' => "d",
            'е' | 'ё' | 'э' => "e",
            'ж' => "zh",
            'з' => "z",
            'и' | 'й' | 'ы' => "i",
            'к' => "k",
            'л' => "l",
            'м' => "m",
            'н' => "n",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'у' => "u",
            'ф' => "f",
            'х' => "kh",
            'ц' => "ts",
            'ч' => "ch",
            'ш' | 'щ' => "sh",
            'ю' => "yu",
            'я' => "ya",
            'ъ' | 'ь' => "",
            other => {
                out.push(other);
                continue;
            }
        };
        out.push_str(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_fold_to_ascii_file_names() {
        assert_eq!(fold_to_ascii("Kəsrlər: giriş"), "kesrler: girish");
        assert_eq!(fold_to_ascii("Падежи"), "padezhi");
    }

    #[test]
    fn materials_are_what_is_not_a_page_style_or_picture() {
        assert!(is_material("application/pdf"));
        assert!(is_material("video/mp4"));
        assert!(!is_material("image/png"));
        assert!(!is_material("text/css; charset=utf-8"));
    }
}
