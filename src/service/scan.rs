//! Finding and validating lesson folders (DESIGN.md §3) on disk or in the embedded samples,
//! before anything is stored.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::lesson::{LessonError, LessonMeta, check_relative_path, parse_meta};

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub enum FileSource {
    Disk(PathBuf),
    Memory(Cow<'static, [u8]>),
}

/// One file of a scanned lesson, by its path inside the lesson.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    pub path: String,
    pub source: FileSource,
    pub size: u64,
}

/// A lesson folder that passed validation.
#[derive(Debug, Clone)]
pub struct ScannedLesson {
    pub dir: PathBuf,
    pub meta: LessonMeta,
    pub files: Vec<ScannedFile>,
}

impl ScannedLesson {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What a scan found: the valid lessons and a message for each invalid one.
#[derive(Debug, Default)]
pub struct Scan {
    pub lessons: Vec<ScannedLesson>,
    pub errors: Vec<LessonError>,
}

/// Folders found on USB sticks and disks that are never lessons.
const SYSTEM_DIRS: &[&str] = &["System Volume Information", "$RECYCLE.BIN", "lost+found", "__MACOSX"];
/// Files that operating systems leave in folders; never part of a lesson.
const SYSTEM_FILES: &[&str] = &["Thumbs.db", "desktop.ini"];

/// Scans `root`: either one lesson folder (it holds `lesson.toml`) or a folder of them.
pub fn scan_folder(root: &Path) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    if root.join("lesson.toml").is_file() {
        scan_lesson(root, &mut scan);
    } else {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') || SYSTEM_DIRS.contains(&name.as_str()) {
                continue;
            }
            if dir.join("lesson.toml").is_file() {
                scan_lesson(&dir, &mut scan);
            } else {
                scan.errors.push(LessonError::new(
                    &dir,
                    None,
                    "this folder has no lesson.toml, so it is not a lesson",
                    "add a lesson.toml (see README.md, \"Lesson format\") or move the folder out",
                ));
            }
        }
    }
    check_duplicates(&mut scan);
    Ok(scan)
}

fn scan_lesson(dir: &Path, scan: &mut Scan) {
    let toml_path = dir.join("lesson.toml");
    let meta = match std::fs::read_to_string(&toml_path) {
        Ok(text) => parse_meta(&text, &toml_path),
        Err(e) => Err(LessonError::new(
            &toml_path,
            None,
            format!("cannot read lesson.toml: {e}"),
            "check that the file is plain UTF-8 text and readable",
        )),
    };
    let meta = match meta {
        Ok(meta) => meta,
        Err(err) => return scan.errors.push(err),
    };
    match walk_files(dir, &meta) {
        Ok(files) => finish_lesson(dir.to_path_buf(), meta, files, scan),
        Err(err) => scan.errors.push(err),
    }
}

fn walk_files(dir: &Path, meta: &LessonMeta) -> Result<Vec<ScannedFile>, LessonError> {
    let lesson = Some(meta.id.as_str());
    let root = dir.canonicalize().map_err(|e| {
        LessonError::new(
            dir,
            lesson,
            format!("cannot read the lesson folder: {e}"),
            "check the folder is readable",
        )
    })?;
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    for entry in walker.filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name())) {
        let entry = entry.map_err(|e| {
            let path = e.path().map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
            LessonError::new(
                &path,
                lesson,
                format!("cannot read: {e}"),
                "check the file; a symlink loop or a damaged stick can cause this",
            )
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        if entry.path_is_symlink() || entry.depth() > 1 {
            let target = path.canonicalize().map_err(|e| {
                LessonError::new(
                    path,
                    lesson,
                    format!("broken link: {e}"),
                    "remove the link or copy the file in its place",
                )
            })?;
            if !target.starts_with(&root) {
                return Err(LessonError::new(
                    path,
                    lesson,
                    format!("this symlink leads out of the lesson folder (to {})", target.display()),
                    "copy the file into the lesson folder instead of linking to it",
                ));
            }
        }
        let name = entry.file_name().to_string_lossy();
        if SYSTEM_FILES.contains(&name.as_ref()) || (entry.depth() == 1 && name == "lesson.toml") {
            continue;
        }
        let rel = relative_name(dir, path).ok_or_else(|| {
            LessonError::new(
                path,
                lesson,
                "the file name is not valid UTF-8",
                "rename the file using letters, digits, '-' and '_'",
            )
        })?;
        if let Err(problem) = check_relative_path(&rel) {
            return Err(LessonError::new(
                path,
                lesson,
                format!("unusable file name: {problem}"),
                "rename the file",
            ));
        }
        let size = entry
            .metadata()
            .map(|m| m.len())
            .map_err(|e| LessonError::new(path, lesson, format!("cannot read: {e}"), "check the file is readable"))?;
        files.push(ScannedFile {
            path: rel,
            source: FileSource::Disk(path.to_path_buf()),
            size,
        });
    }
    Ok(files)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

fn relative_name(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

fn finish_lesson(dir: PathBuf, meta: LessonMeta, files: Vec<ScannedFile>, scan: &mut Scan) {
    if !files.iter().any(|f| f.path == meta.entry) {
        return scan.errors.push(LessonError::new(
            &dir.join("lesson.toml"),
            Some(&meta.id),
            format!("the entry file {:?} is not in the lesson folder", meta.entry),
            format!(
                "add {} to the folder, or set `entry` to the page students should open first",
                meta.entry
            ),
        ));
    }
    scan.lessons.push(ScannedLesson { dir, meta, files });
}

/// Two folders with the same id: both are refused, since neither can be chosen safely.
fn check_duplicates(scan: &mut Scan) {
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut dupes: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for lesson in &scan.lessons {
        if let Some(first) = seen.insert(lesson.meta.id.clone(), lesson.dir.clone()) {
            dupes
                .entry(lesson.meta.id.clone())
                .or_insert_with(|| vec![first])
                .push(lesson.dir.clone());
        }
    }
    if dupes.is_empty() {
        return;
    }
    scan.lessons.retain(|l| !dupes.contains_key(&l.meta.id));
    let mut ids: Vec<_> = dupes.into_iter().collect();
    ids.sort();
    for (id, dirs) in ids {
        let others: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        scan.errors.push(LessonError::new(
            &dirs[1].join("lesson.toml"),
            Some(&id),
            format!("the id is used by more than one lesson folder: {}", others.join(", ")),
            "give each lesson its own id in its lesson.toml",
        ));
    }
}

type MemoryFile = (String, Cow<'static, [u8]>);

/// Scans lessons held in memory (the embedded samples): `files` maps `dir/path` to bytes.
pub fn scan_memory(files: Vec<MemoryFile>) -> Scan {
    let mut by_dir: std::collections::BTreeMap<String, Vec<MemoryFile>> = Default::default();
    for (path, bytes) in files {
        if let Some((dir, rest)) = path.split_once('/') {
            by_dir.entry(dir.to_owned()).or_default().push((rest.to_owned(), bytes));
        }
    }
    let mut scan = Scan::default();
    for (dir, files) in by_dir {
        let dir_path = PathBuf::from(&dir);
        let toml_path = dir_path.join("lesson.toml");
        let Some((_, toml)) = files.iter().find(|(p, _)| p == "lesson.toml") else {
            continue;
        };
        let meta = match std::str::from_utf8(toml)
            .map_err(|e| e.to_string())
            .and_then(|text| parse_meta(text, &toml_path).map_err(|e| e.to_string()))
        {
            Ok(meta) => meta,
            Err(problem) => {
                scan.errors
                    .push(LessonError::new(&toml_path, None, problem, "fix the embedded sample"));
                continue;
            }
        };
        let files = files
            .into_iter()
            .filter(|(p, _)| p != "lesson.toml" && !p.split('/').any(|part| part.starts_with('.')))
            .map(|(path, bytes)| ScannedFile {
                size: bytes.len() as u64,
                path,
                source: FileSource::Memory(bytes),
            })
            .collect();
        finish_lesson(dir_path, meta, files, &mut scan);
    }
    check_duplicates(&mut scan);
    scan
}
