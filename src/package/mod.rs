//! The package format (DESIGN.md §4): one directory of plain files that travels by USB
//! stick, HTTP mirror or peer. Pure format code: paths, JSON documents, parsing with clear
//! errors. Reading from disk or HTTP and writing the store happen in `service`.
//!
//! ```text
//! DARS/                        (on a USB stick; any folder elsewhere)
//!   package.json               unsigned index: which manifests, which of their lessons
//!   manifests/<key>-<seq>.json a publisher's signed manifest, byte for byte as published:
//!                              a root (dars-manifest/2) naming each lesson's part by hash,
//!                              or (dars-manifest/1, older packages) every lesson in full
//!   manifests/<key>-<seq>.sig  its detached Ed25519 signature (hex)
//!   lessons/<2 hex>/<hash>     one lesson's part of a root: zstd of its JSON, `hash` the
//!                              BLAKE3 of that JSON, so an unchanged lesson keeps its file
//!   local.json                 unsigned manifest of local lessons (exports only)
//!   dict/<hash>                zstd dictionary, when the publisher used one
//!   blobs/<2 hex>/<hash>       content: zstd frames (text) or raw bytes (media)
//!   blobs/<2 hex>/<hash>.<n>   parts of a stored blob larger than the part size
//! ```

use serde::{Deserialize, Serialize};

use crate::lesson::{LessonMeta, check_relative_path, valid_id};
use crate::store::Hash;

/// The folder a package lives in at the root of a USB stick.
pub const USB_DIR: &str = "DARS";
pub const INDEX_FILE: &str = "package.json";
pub const INDEX_FORMAT: &str = "dars-package/1";
/// A manifest that lists every lesson in full (what dars wrote before roots).
pub const MANIFEST_FORMAT: &str = "dars-manifest/1";
/// A signed root: each lesson by the hash of its part, so an update reads and stores only
/// the parts that changed.
pub const ROOT_FORMAT: &str = "dars-manifest/2";
/// The largest lesson part accepted after decompression.
pub const MAX_PART: usize = 64 * 1024 * 1024;
/// FAT32 holds files under 4 GiB; blobs are cut into parts well below that.
pub const DEFAULT_PART_SIZE: u64 = 1 << 30;

/// `package.json`: the entry point of a package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: String,
    /// Signed manifests, each with the lessons of it that this package carries.
    pub manifests: Vec<IndexEntry>,
    /// An unsigned manifest of local lessons (exports of teachers' lessons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Stored blobs larger than this are split into numbered parts.
    pub part_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// Path of the manifest inside the package.
    pub manifest: String,
    /// Path of its signature.
    pub signature: String,
    /// The same manifest zstd-compressed (about a tenth of the size), for fetching over a
    /// network; the signature is over the uncompressed bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed: Option<String>,
    /// The lessons of the manifest this package carries; `None` means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lessons: Option<Vec<String>>,
}

/// A signed document: a manifest (every lesson in full) or a root (every lesson by the hash of
/// its part); the same header either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document<L> {
    pub format: String,
    /// The publisher's public key in text form, or "local" for unsigned local lessons.
    pub publisher: String,
    /// Grows with every package the publisher makes.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub created: String,
    /// Hash of the zstd dictionary the text blobs were compressed with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dictionary: Option<String>,
    pub lessons: Vec<L>,
}

impl<L: PartialEq> Document<L> {
    /// Whether two documents describe the same lessons (they may differ in creation time).
    pub fn same_content(&self, other: &Self) -> bool {
        self.lessons == other.lessons && self.dictionary == other.dictionary && self.publisher == other.publisher
    }
}

/// A manifest (dars-manifest/1, and the unsigned `local.json`): every lesson in full.
pub type Manifest = Document<ManifestLesson>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLesson {
    pub id: String,
    pub title: String,
    pub language: String,
    pub grade: u8,
    pub subject: String,
    #[serde(default)]
    pub summary: String,
    pub entry: String,
    #[serde(default)]
    pub order: i64,
    pub files: Vec<ManifestFile>,
}

impl ManifestLesson {
    pub fn meta(&self) -> LessonMeta {
        LessonMeta {
            id: self.id.clone(),
            title: self.title.clone(),
            language: self.language.clone(),
            grade: self.grade,
            subject: self.subject.clone(),
            summary: self.summary.clone(),
            entry: self.entry.clone(),
            order: self.order,
        }
    }

    pub fn from_meta(meta: &LessonMeta, files: Vec<ManifestFile>) -> Self {
        ManifestLesson {
            id: meta.id.clone(),
            title: meta.title.clone(),
            language: meta.language.clone(),
            grade: meta.grade,
            subject: meta.subject.clone(),
            summary: meta.summary.clone(),
            entry: meta.entry.clone(),
            order: meta.order,
            files,
        }
    }
}

/// `manifests/<key>-<seq>.json` in format 2: what a publisher signs. Small (about a hundred
/// bytes per lesson) however many files the lessons have.
pub type Root = Document<RootLesson>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootLesson {
    pub id: String,
    /// BLAKE3 (hex) of the lesson's part: its `ManifestLesson` as compact JSON.
    pub part: String,
}

impl RootLesson {
    pub fn part(&self) -> Option<Hash> {
        Hash::from_hex(&self.part)
    }
}

/// Either kind of signed manifest, as parsed from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    Whole(Manifest),
    Root(Root),
}

impl Signed {
    /// Parses a signed manifest of either format (told apart by its `format` field).
    pub fn parse(bytes: &[u8]) -> Result<Signed, serde_json::Error> {
        #[derive(Deserialize)]
        struct Head {
            format: String,
        }
        let head: Head = serde_json::from_slice(bytes)?;
        if head.format == ROOT_FORMAT {
            serde_json::from_slice(bytes).map(Signed::Root)
        } else {
            serde_json::from_slice(bytes).map(Signed::Whole)
        }
    }

    pub fn publisher(&self) -> &str {
        match self {
            Signed::Whole(m) => &m.publisher,
            Signed::Root(r) => &r.publisher,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            Signed::Whole(m) => m.seq,
            Signed::Root(r) => r.seq,
        }
    }

    pub fn dictionary(&self) -> Option<&str> {
        match self {
            Signed::Whole(m) => m.dictionary.as_deref(),
            Signed::Root(r) => r.dictionary.as_deref(),
        }
    }

    /// Whether two manifests describe the same lessons (they may differ in creation time).
    pub fn same_content(&self, other: &Signed) -> bool {
        match (self, other) {
            (Signed::Whole(a), Signed::Whole(b)) => a.same_content(b),
            (Signed::Root(a), Signed::Root(b)) => a.same_content(b),
            _ => false,
        }
    }
}

/// A lesson's part as it travels: (BLAKE3 of its JSON, the zstd file).
pub fn encode_part(lesson: &ManifestLesson) -> (Hash, Vec<u8>) {
    let json = serde_json::to_vec(lesson).unwrap_or_default();
    let hash = Hash::of(&json);
    (hash, zstd::bulk::compress(&json, 19).unwrap_or_default())
}

/// Decodes a part file and checks it is the part `expected` names for lesson `id`.
pub fn decode_part(id: &str, expected: Hash, file: &[u8]) -> Result<ManifestLesson, String> {
    let json = zstd::bulk::decompress(file, MAX_PART).map_err(|e| format!("it does not decompress ({e})"))?;
    if Hash::of(&json) != expected {
        return Err("it does not match the hash its signed manifest gives; it was altered or swapped".to_owned());
    }
    let lesson: ManifestLesson = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    if lesson.id != id {
        return Err(format!("it describes lesson {}, not {id}", lesson.id));
    }
    Ok(lesson)
}

/// Where the part with hash `hash` lives in a package.
pub fn lesson_part_path(hash: Hash) -> String {
    let hex = hash.to_hex();
    format!("lessons/{}/{hex}", &hex[..2])
}

/// How a blob file holds its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// zstd frames (with the manifest's dictionary, if it names one).
    Zstd,
    /// The bytes as they are.
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub media_type: String,
    /// BLAKE3 of the raw bytes, hex.
    pub hash: String,
    pub encoding: Encoding,
    /// Length of the blob file (all parts together).
    pub stored_size: u64,
}

impl ManifestFile {
    pub fn hash(&self) -> Option<Hash> {
        Hash::from_hex(&self.hash)
    }
}

/// Where blob `hash` lives in a package: `blobs/ab/abcd...`; part `n` (from 1) of a split
/// blob gets `.n` appended.
pub fn blob_path(hash: Hash, part: Option<u32>) -> String {
    let hex = hash.to_hex();
    match part {
        None => format!("blobs/{}/{hex}", &hex[..2]),
        Some(n) => format!("blobs/{}/{hex}.{n}", &hex[..2]),
    }
}

/// The file of part `n` (from 0) of a blob stored in `parts` part files.
pub fn part_path(hash: Hash, n: u64, parts: u64) -> String {
    if parts == 1 {
        blob_path(hash, None)
    } else {
        blob_path(hash, Some(u32::try_from(n + 1).unwrap_or(u32::MAX)))
    }
}

/// How many part files a stored blob of `stored_size` bytes takes (1 = not split).
pub fn part_count(stored_size: u64, part_size: u64) -> u64 {
    if stored_size <= part_size {
        1
    } else {
        stored_size.div_ceil(part_size)
    }
}

pub fn dict_path(hash: Hash) -> String {
    format!("dict/{}", hash.to_hex())
}

/// The file name of a publisher's manifest: `<fingerprint>-<seq>.json`.
pub fn manifest_name(fingerprint: &str, seq: u64) -> (String, String) {
    (
        format!("manifests/{fingerprint}-{seq}.json"),
        format!("manifests/{fingerprint}-{seq}.sig"),
    )
}

/// A manifest's compressed copy: zstd -19 (deterministic).
pub fn compress_manifest(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 19).unwrap_or_default()
}

/// The largest manifest accepted after decompression.
pub const MAX_MANIFEST: usize = 512 * 1024 * 1024;

/// Checks what a manifest says before anything is trusted from it: formats, ids, paths,
/// hashes, duplicates. Returns a description of the first problem.
pub fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    if manifest.format != MANIFEST_FORMAT {
        return Err(format!(
            "unknown manifest format {:?} (this dars reads {MANIFEST_FORMAT} and {ROOT_FORMAT}); install a newer dars",
            manifest.format
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for lesson in &manifest.lessons {
        if !ids.insert(lesson.id.as_str()) {
            return Err(format!("lesson {} is listed twice", lesson.id));
        }
        check_lesson(lesson)?;
    }
    Ok(())
}

/// Checks a signed root: format, ids, part hashes, duplicates.
pub fn check_root(root: &Root) -> Result<(), String> {
    if root.format != ROOT_FORMAT {
        return Err(format!(
            "unknown manifest format {:?} (this dars reads {MANIFEST_FORMAT} and {ROOT_FORMAT}); install a newer dars",
            root.format
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for lesson in &root.lessons {
        if !valid_id(&lesson.id) {
            return Err(format!("bad lesson id {:?}", lesson.id));
        }
        if !ids.insert(lesson.id.as_str()) {
            return Err(format!("lesson {} is listed twice", lesson.id));
        }
        if lesson.part().is_none() {
            return Err(format!("lesson {} has a bad part hash", lesson.id));
        }
    }
    Ok(())
}

/// Checks one lesson of a manifest (or one part): id, paths, hashes, entry.
pub fn check_lesson(lesson: &ManifestLesson) -> Result<(), String> {
    if !valid_id(&lesson.id) {
        return Err(format!("bad lesson id {:?}", lesson.id));
    }
    let mut paths = std::collections::HashSet::new();
    for file in &lesson.files {
        if let Err(problem) = check_relative_path(&file.path) {
            return Err(format!("lesson {}: bad path {:?}: {problem}", lesson.id, file.path));
        }
        if !paths.insert(file.path.as_str()) {
            return Err(format!("lesson {}: {} is listed twice", lesson.id, file.path));
        }
        if file.hash().is_none() {
            return Err(format!("lesson {}: {} has a bad hash", lesson.id, file.path));
        }
    }
    if !paths.contains(lesson.entry.as_str()) {
        return Err(format!(
            "lesson {}: its entry {} is not among its files",
            lesson.id, lesson.entry
        ));
    }
    Ok(())
}

/// Checks a package index: known format, paths inside the package.
pub fn check_index(index: &Index) -> Result<(), String> {
    if index.format != INDEX_FORMAT {
        return Err(format!(
            "unknown package format {:?} (this dars reads {INDEX_FORMAT}); install a newer dars",
            index.format
        ));
    }
    if index.part_size == 0 {
        return Err("part_size is 0".to_owned());
    }
    let paths = index
        .manifests
        .iter()
        .flat_map(|e| [&e.manifest, &e.signature].into_iter().chain(e.compressed.iter()))
        .chain(index.local.iter());
    for path in paths {
        check_relative_path(path).map_err(|p| format!("bad path {path:?} in {INDEX_FILE}: {p}"))?;
    }
    Ok(())
}

/// Now, in RFC 3339 UTC to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
