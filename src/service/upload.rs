//! A teacher's upload: a zip of a lesson folder, or a lesson's files with a short form. The
//! upload is unpacked into a staging folder inside the data folder (nothing is written
//! elsewhere), checked with the import's own rules, and imported as local lessons only when
//! every lesson in it is valid. Zips are refused when an entry's path is absolute or climbs
//! out (`..`), when an entry is a symlink, and when the bytes really decompressed pass a cap
//! or a ratio to the zip's size (a zip bomb).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::accounts::Session;
use super::{ImportOptions, ImportReport, Library, Progress, ServiceError, io_error, scan_folder};
use crate::lesson::check_relative_path;

/// How much an upload may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Bytes all entries may decompress to together.
    pub max_bytes: u64,
    /// Decompressed bytes per byte of zip, beyond `ratio_floor`.
    pub max_ratio: u64,
    /// Decompressed bytes allowed whatever the ratio (small zips of very regular text).
    pub ratio_floor: u64,
    /// Entries a zip may hold.
    pub max_entries: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 1 << 30,
            max_ratio: 100,
            ratio_floor: 16 << 20,
            max_entries: 10_000,
        }
    }
}

/// A temporary folder inside the data folder, removed when dropped.
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
}

/// Where the lesson's files go inside the staging folder.
const FILES_DIR: &str = "lesson";
const ZIP_FILE: &str = "upload.zip";

impl Staging {
    /// Where the uploaded zip is written.
    pub fn zip_path(&self) -> PathBuf {
        self.dir.path().join(ZIP_FILE)
    }

    /// Where an uploaded file named `rel` (relative, `/`-separated) is written; refused when
    /// the name is absolute, climbs out or is otherwise unusable.
    pub fn file_path(&self, rel: &str) -> Result<PathBuf, ServiceError> {
        check_relative_path(rel).map_err(|why| refused_name(rel, why))?;
        let path = self.dir.path().join(FILES_DIR).join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        Ok(path)
    }

    fn files_dir(&self) -> PathBuf {
        self.dir.path().join(FILES_DIR)
    }
}

fn refused_name(name: &str, why: &str) -> ServiceError {
    ServiceError::Refused(format!(
        "the upload holds {name:?}, which cannot be part of a lesson: {why}. Nothing was stored; \
         zip the lesson folder itself (its files inside it, no links)"
    ))
}

/// The short form sent with loose files; empty fields are left to an uploaded lesson.toml.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LessonForm {
    pub id: String,
    pub title: String,
    pub language: String,
    pub grade: String,
    pub subject: String,
    pub summary: String,
}

/// What was uploaded.
#[derive(Debug, Clone)]
pub enum Upload {
    /// A zip at [`Staging::zip_path`].
    Zip,
    /// Files written at [`Staging::file_path`], described by the form.
    Files(LessonForm),
}

impl Library {
    /// A new staging folder for one upload, inside the data folder.
    pub fn staging(&self) -> Result<Staging, ServiceError> {
        let data = self.db_path().parent().unwrap_or_else(|| Path::new("."));
        let dir = tempfile::Builder::new()
            .prefix("upload-")
            .tempdir_in(data)
            .map_err(|e| io_error(data, e))?;
        Ok(Staging { dir })
    }

    /// Checks and imports an upload as local lessons, as `actor`. Refused whole (the store
    /// unchanged) when anything in it is wrong.
    pub fn import_upload(
        &self,
        actor: &Session,
        staging: &Staging,
        upload: &Upload,
        limits: &UnpackLimits,
    ) -> Result<ImportReport, ServiceError> {
        let files = staging.files_dir();
        match upload {
            Upload::Zip => unpack(&staging.zip_path(), &files, limits)?,
            Upload::Files(form) => write_form(&files, form)?,
        }
        let root = lesson_root(&files);
        let scan = scan_folder(&root).map_err(|e| io_error(&root, e))?;
        if !scan.errors.is_empty() {
            let messages: Vec<String> = scan
                .errors
                .into_iter()
                .map(|mut e| {
                    e.file = e.file.strip_prefix(&files).map(Path::to_path_buf).unwrap_or(e.file);
                    e.to_string()
                })
                .collect();
            return Err(ServiceError::Refused(format!(
                "the upload was refused and nothing was stored:\n{}",
                messages.join("\n")
            )));
        }
        if scan.lessons.is_empty() {
            return Err(ServiceError::Refused(
                "the upload holds no lesson: a lesson folder needs a lesson.toml (or fill in the form)".to_owned(),
            ));
        }
        let report = self.import_folder(&root, &ImportOptions::default(), &Progress::new())?;
        let stored: Vec<&String> = report
            .added
            .iter()
            .chain(&report.updated)
            .chain(&report.unchanged)
            .collect();
        if stored.is_empty()
            && let Some(first) = report.errors.first()
        {
            return Err(ServiceError::Refused(format!("the upload was refused: {first}")));
        }
        let names: Vec<&str> = stored.iter().map(|s| s.as_str()).collect();
        self.audit(&actor.account, "lesson uploaded", &names.join(", "))?;
        Ok(report)
    }
}

/// Unpacks `zip` into `dest`, counting the bytes really decompressed.
fn unpack(zip: &Path, dest: &Path, limits: &UnpackLimits) -> Result<(), ServiceError> {
    let file = std::fs::File::open(zip).map_err(|e| io_error(zip, e))?;
    let packed = file.metadata().map_err(|e| io_error(zip, e))?.len();
    let not_a_zip = |e: zip::result::ZipError| {
        ServiceError::Refused(format!(
            "the upload is not a zip file that can be read ({e}); zip the lesson folder again, without a password"
        ))
    };
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(not_a_zip)?;
    if archive.len() > limits.max_entries {
        return Err(ServiceError::Refused(format!(
            "the zip holds {} entries, more than the {} a lesson upload may have",
            archive.len(),
            limits.max_entries
        )));
    }
    let cap = limits
        .max_bytes
        .min(packed.saturating_mul(limits.max_ratio).max(limits.ratio_floor));
    let mut total = 0u64;
    std::fs::create_dir_all(dest).map_err(|e| io_error(dest, e))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(not_a_zip)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let rel = name.trim_end_matches('/');
        if entry.is_symlink() {
            return Err(refused_name(&name, "it is a symbolic link"));
        }
        if rel.is_empty() && entry.is_dir() {
            continue;
        }
        check_relative_path(rel).map_err(|why| refused_name(&name, why))?;
        if rel.split('/').any(|p| p.starts_with('.') || p == "__MACOSX") {
            continue; // hidden files and macOS metadata are never part of a lesson
        }
        let path = dest.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| io_error(&path, e))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => refused_name(&name, "the zip holds it twice"),
                _ => io_error(&path, e),
            })?;
        let allowed = cap - total;
        let written = copy_limited(&mut entry, &mut out, allowed + 1).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::Other => {
                ServiceError::Refused(format!(
                    "the zip is damaged at {name:?} ({e}); zip the lesson folder again. Nothing was stored"
                ))
            }
            _ => io_error(&path, e),
        })?;
        if written > allowed {
            return Err(ServiceError::Refused(format!(
                "the zip unpacks to more than {} MB (it is {} KB packed): it looks like a zip bomb, or the lesson is \
                 too big to upload. Nothing was stored; bring a big lesson on a USB stick instead",
                cap >> 20,
                packed >> 10
            )));
        }
        total += written;
    }
    Ok(())
}

/// Copies at most `limit` bytes (so a bomb stops early); returns how many were copied.
fn copy_limited(from: &mut impl Read, to: &mut impl Write, limit: u64) -> std::io::Result<u64> {
    std::io::copy(&mut from.take(limit), to)
}

/// Writes the form's lesson.toml beside the uploaded files (keeping an uploaded one when the
/// form is empty).
fn write_form(dir: &Path, form: &LessonForm) -> Result<(), ServiceError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let toml_path = dir.join("lesson.toml");
    if form.title.trim().is_empty() && toml_path.is_file() {
        return Ok(());
    }
    let grade: i64 = form.grade.trim().parse().map_err(|_| {
        ServiceError::Refused(format!(
            "grade {:?} is not a number: write a grade from 0 (not graded) to {}",
            form.grade,
            crate::lesson::MAX_GRADE
        ))
    })?;
    let id = if form.id.trim().is_empty() {
        id_from_title(&form.title)
    } else {
        form.id.trim().to_owned()
    };
    let entry = entry_file(dir);
    let mut table = toml::Table::new();
    table.insert("id".into(), id.into());
    table.insert("title".into(), form.title.trim().into());
    table.insert("language".into(), form.language.trim().into());
    table.insert("grade".into(), grade.into());
    table.insert("subject".into(), form.subject.trim().into());
    table.insert("summary".into(), form.summary.trim().into());
    if let Some(entry) = entry {
        table.insert("entry".into(), entry.into());
    }
    let text = toml::to_string(&table).map_err(|e| ServiceError::Internal(format!("toml: {e}")))?;
    std::fs::write(&toml_path, text).map_err(|e| io_error(&toml_path, e))
}

/// index.html when there is one, else the first HTML page (else the import says what is missing).
fn entry_file(dir: &Path) -> Option<String> {
    if dir.join("index.html").is_file() {
        return None;
    }
    let mut pages: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(dir).ok()?.to_str()?.replace('\\', "/");
            (rel.ends_with(".html") || rel.ends_with(".htm")).then_some(rel)
        })
        .collect();
    pages.sort();
    pages.into_iter().next()
}

/// A lesson id from a title: Azerbaijani letters folded to a-z, other characters to '-'.
pub fn id_from_title(title: &str) -> String {
    let mut id = String::new();
    for c in title.trim().to_lowercase().chars() {
        let mapped = match c {
            'ə' | 'ä' => 'e',
            'ı' => 'i',
            '\u{307}' => continue, // the dot that lowercasing 'İ' leaves
            'ö' => 'o',
            'ü' => 'u',
            'ş' => 's',
            'ç' => 'c',
            'ğ' => 'g',
            c if c.is_ascii_alphanumeric() => c,
            _ => '-',
        };
        if mapped != '-' || !id.ends_with('-') {
            id.push(mapped);
        }
    }
    let id: String = id.trim_matches('-').chars().take(48).collect();
    let id = id.trim_end_matches('-').to_owned();
    if id.is_empty() {
        format!("lesson-{}", crate::store::now_secs())
    } else {
        id
    }
}

/// The folder to scan: descends through a lone wrapping folder without a lesson.toml (a zip
/// of `lessons/`, or of a folder holding the lesson folder).
fn lesson_root(dir: &Path) -> PathBuf {
    let mut root = dir.to_path_buf();
    for _ in 0..3 {
        if root.join("lesson.toml").is_file() {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&root) else { break };
        let entries: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        match entries.as_slice() {
            [only] if only.is_dir() && !only.join("lesson.toml").is_file() => root = only.clone(),
            _ => break,
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_titles() {
        assert_eq!(id_from_title("Kəsrlər: giriş"), "kesrler-giris");
        assert_eq!(id_from_title("  Su dövranı 4 "), "su-dovrani-4");
        assert_eq!(id_from_title("İqlim"), "iqlim");
        assert!(id_from_title("Вода").starts_with("lesson-"));
    }
}
