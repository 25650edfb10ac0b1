//! USB sticks: the folders under the configured mount roots that hold a package (`DARS/`) or
//! lesson folders, with what each package carries (publisher, fingerprint, trusted or not,
//! sequence, lessons). Reading only; importing and exporting go through [`super::Library`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ServiceError;
use super::package::{PackageError, read_file, read_index};
use crate::keys::PublicKey;
use crate::lesson::parse_meta;
use crate::package::{Manifest, Signed, USB_DIR, decode_part, lesson_part_path};

/// A stick (or any folder under a mount root) that holds something to import.
#[derive(Debug, Clone, Serialize)]
pub struct Stick {
    pub path: PathBuf,
    /// Its folder name (the stick's label, as mounted).
    pub name: String,
    pub package: Option<PackageSummary>,
    /// Lesson folders at the stick's root: (id, title).
    pub lesson_folders: Vec<(String, String)>,
    /// Why the package on it cannot be read, if it cannot.
    pub problem: Option<String>,
}

/// What a package holds, read from its index and manifests (signatures are checked by a
/// verify or an import, not here).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackageSummary {
    pub manifests: Vec<ManifestSummary>,
    /// Unsigned local lessons the package carries: (id, title).
    pub local_lessons: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestSummary {
    pub fingerprint: String,
    /// The key in the form `trusted_keys` takes.
    pub key: String,
    pub trusted: bool,
    pub seq: u64,
    pub created: String,
    /// (id, title) of the lessons this package carries from the manifest.
    pub lessons: Vec<(String, String)>,
}

/// Every stick under `roots`: their direct subfolders, and one level deeper (as in
/// `/run/media/<user>/<label>`), sorted by path.
pub fn find_sticks(roots: &[PathBuf], trusted: &[PublicKey]) -> Vec<Stick> {
    let mut found = Vec::new();
    for root in roots {
        for dir in subfolders(root) {
            if let Some(stick) = examine(&dir, trusted) {
                found.push(stick);
            } else {
                found.extend(subfolders(&dir).iter().filter_map(|d| examine(d, trusted)));
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    found
}

/// The stick at `path`, if `path` is one that [`find_sticks`] lists: requests name sticks by
/// path, and nothing else on the disk may be imported from or exported to.
pub fn stick_at(roots: &[PathBuf], trusted: &[PublicKey], path: &str) -> Result<Stick, ServiceError> {
    find_sticks(roots, trusted)
        .into_iter()
        .find(|s| s.path.as_os_str() == path)
        .ok_or_else(|| {
            ServiceError::Refused(format!(
                "{path} is not a USB stick holding lessons any more (was it pulled out?); reload the page"
            ))
        })
}

/// Folders under the roots that can take an export (every mounted stick, even an empty one):
/// each folder under a root, or, when that folder holds mount points of its own (as
/// `/run/media/<user>/` does), those.
pub fn export_targets(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in roots {
        for dir in subfolders(root) {
            let mounted: Vec<PathBuf> = subfolders(&dir).into_iter().filter(|d| is_mount_point(d)).collect();
            if mounted.is_empty() || is_mount_point(&dir) {
                found.push(dir);
            } else {
                found.extend(mounted);
            }
        }
    }
    found.sort();
    found
}

/// Whether `dir` is on another file system than its parent folder.
#[cfg(unix)]
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    dir.parent()
        .is_some_and(|parent| dev(dir).is_some() && dev(dir) != dev(parent))
}

#[cfg(not(unix))]
fn is_mount_point(_dir: &Path) -> bool {
    false
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn examine(dir: &Path, trusted: &[PublicKey]) -> Option<Stick> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let mut stick = Stick {
        path: dir.to_path_buf(),
        name,
        package: None,
        lesson_folders: Vec::new(),
        problem: None,
    };
    if dir.join(USB_DIR).is_dir() {
        match summarise(&dir.join(USB_DIR), trusted) {
            Ok(summary) => stick.package = Some(summary),
            Err(e) => stick.problem = Some(e.to_string()),
        }
        return Some(stick);
    }
    let candidates = if dir.join("lesson.toml").is_file() {
        vec![dir.to_path_buf()]
    } else {
        subfolders(dir)
    };
    for folder in candidates {
        let toml = folder.join("lesson.toml");
        if let Ok(text) = std::fs::read_to_string(&toml) {
            let (id, title) = match parse_meta(&text, &toml) {
                Ok(meta) => (meta.id, meta.title),
                Err(e) => (
                    folder.file_name()?.to_string_lossy().into_owned(),
                    format!("({})", e.problem),
                ),
            };
            stick.lesson_folders.push((id, title));
        }
    }
    (!stick.lesson_folders.is_empty()).then_some(stick)
}

/// Reads a package's index and manifests.
pub fn summarise(root: &Path, trusted: &[PublicKey]) -> Result<PackageSummary, PackageError> {
    let index = read_index(root)?;
    let mut summary = PackageSummary::default();
    let parse = |rel: &str| -> Result<Manifest, PackageError> {
        serde_json::from_slice(&read_file(root, rel)?).map_err(|e| super::package::document_error(rel, &e))
    };
    for entry in &index.manifests {
        let bytes = read_file(root, &entry.manifest)?;
        let manifest = Signed::parse(&bytes).map_err(|e| super::package::document_error(&entry.manifest, &e))?;
        let key = PublicKey::parse(manifest.publisher()).map_err(|e| PackageError::BadDocument {
            file: entry.manifest.clone(),
            problem: e.to_string(),
        })?;
        let carried = |id: &String| entry.lessons.as_ref().is_none_or(|only| only.contains(id));
        let (seq, created, lessons) = match manifest {
            Signed::Whole(manifest) => (
                manifest.seq,
                manifest.created,
                manifest
                    .lessons
                    .iter()
                    .filter(|l| carried(&l.id))
                    .map(|l| (l.id.clone(), l.title.clone()))
                    .collect(),
            ),
            // A root names lessons by id; their titles are in their parts.
            Signed::Root(root_doc) => (
                root_doc.seq,
                root_doc.created,
                root_doc
                    .lessons
                    .iter()
                    .filter(|l| carried(&l.id))
                    .map(|l| {
                        let title = l
                            .part()
                            .and_then(|hash| {
                                let file = read_file(root, &lesson_part_path(hash)).ok()?;
                                decode_part(&l.id, hash, &file).ok()
                            })
                            .map_or_else(|| "(missing or damaged)".to_owned(), |lesson| lesson.title);
                        (l.id.clone(), title)
                    })
                    .collect(),
            ),
        };
        summary.manifests.push(ManifestSummary {
            fingerprint: key.fingerprint(),
            key: key.to_text(),
            trusted: trusted.contains(&key),
            seq,
            created,
            lessons,
        });
    }
    if let Some(local) = &index.local {
        let manifest = parse(local)?;
        summary.local_lessons = manifest
            .lessons
            .iter()
            .map(|l| (l.id.clone(), l.title.clone()))
            .collect();
    }
    Ok(summary)
}
