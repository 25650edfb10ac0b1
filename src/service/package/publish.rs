//! `dars publish`: a folder of lesson folders becomes a signed package. Text is zstd at a
//! high level (with a dictionary trained on the package's own text when that pays); the same
//! input gives the same blob files.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{PackageError, read_index};
use crate::keys::{SecretKey, signature_to_text};
use crate::package::{
    DEFAULT_PART_SIZE, Encoding, INDEX_FILE, INDEX_FORMAT, Index, IndexEntry, ManifestFile, ManifestLesson,
    ROOT_FORMAT, Root, RootLesson, Signed, blob_path, dict_path, encode_part, lesson_part_path, manifest_name,
    now_rfc3339, part_count, part_path,
};
use crate::service::media::{media_type, worth_compressing};
use crate::service::scan::{FileSource, Scan, ScannedFile};
use crate::service::{Progress, ServiceError, io_error};
use crate::store::Hash;

/// Text files up to this size are compressed; larger ones travel raw (as the store keeps them).
const TEXT_LIMIT: u64 = 8 * 1024 * 1024;
/// A dictionary is used only if it makes the text at least this much smaller, its own size
/// included.
const DICT_MIN_SAVING: f64 = 0.10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictionaryChoice {
    /// Train one and use it if it saves at least 10 %.
    Auto,
    Never,
}

#[derive(Debug)]
pub struct PublishOptions {
    pub key: SecretKey,
    /// Defaults to the UTC date and time as YYYYMMDDHHMM, which only grows.
    pub seq: Option<u64>,
    pub zstd_level: i32,
    pub part_size: u64,
    pub dictionary: DictionaryChoice,
}

impl PublishOptions {
    pub fn new(key: SecretKey) -> Self {
        PublishOptions {
            key,
            seq: None,
            zstd_level: 19,
            part_size: DEFAULT_PART_SIZE,
            dictionary: DictionaryChoice::Auto,
        }
    }
}

#[derive(Debug, Default)]
pub struct PublishReport {
    pub seq: u64,
    pub lessons: usize,
    pub files: usize,
    pub blobs: usize,
    pub blobs_written: usize,
    pub raw_bytes: u64,
    pub package_bytes: u64,
    /// (dictionary size, measured saving on a sample, used?)
    pub dictionary: Option<(usize, f64, bool)>,
    /// The dictionary is the one the previous package in `out` used (its text blobs that did
    /// not change keep their bytes, so mirrors and sticks copy only what changed).
    pub dictionary_reused: bool,
    /// Lesson parts written (new or changed lessons) and kept from the previous package.
    pub parts_written: usize,
    pub manifest: PathBuf,
}

/// One distinct content of the package.
struct Content<'a> {
    hash: Hash,
    file: &'a ScannedFile,
    text: bool,
}

pub fn publish(
    scan: Scan,
    out: &Path,
    opts: &PublishOptions,
    progress: &Progress,
) -> Result<PublishReport, ServiceError> {
    if let Some(first) = scan.errors.into_iter().next() {
        return Err(ServiceError::Lesson(Box::new(first)));
    }
    if scan.lessons.is_empty() {
        return Err(ServiceError::Internal("there are no lessons to publish".to_owned()));
    }
    let public = opts.key.public();
    let fingerprint = public.fingerprint();
    let seq = opts.seq.unwrap_or_else(default_seq);
    let previous = newest_published(out, &fingerprint)?;
    if let Some((existing, _)) = &previous
        && *existing >= seq
    {
        return Err(ServiceError::Package(Box::new(PackageError::SequenceMustGrow {
            dir: out.to_path_buf(),
            existing: *existing,
            next: existing + 1,
        })));
    }
    std::fs::create_dir_all(out.join("blobs")).map_err(|e| io_error(out, e))?;

    // Hash every file once; the manifest lists files, the package stores distinct contents.
    let mut lessons: Vec<ManifestLesson> = Vec::new();
    let mut contents: BTreeMap<Hash, Content<'_>> = BTreeMap::new();
    let mut report = PublishReport {
        seq,
        lessons: scan.lessons.len(),
        ..PublishReport::default()
    };
    let total: u64 = scan.lessons.iter().map(|l| l.total_size()).sum();
    progress.set_totals(scan.lessons.len() as u64, total * 2);
    for lesson in &scan.lessons {
        progress.set_current(&lesson.meta.id);
        let hashed = lesson
            .files
            .par_iter()
            .map(|file| hash_file(&lesson.dir, file))
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let mut files = Vec::new();
        for (file, (hash, media, compress)) in lesson.files.iter().zip(hashed) {
            let text = compress && file.size <= TEXT_LIMIT && file.size > 0;
            contents.entry(hash).or_insert(Content { hash, file, text });
            files.push(ManifestFile {
                path: file.path.clone(),
                size: file.size,
                media_type: media,
                hash: hash.to_hex(),
                encoding: Encoding::Raw,
                stored_size: file.size,
            });
            report.raw_bytes += file.size;
            progress.add_bytes(file.size);
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        lessons.push(ManifestLesson::from_meta(&lesson.meta, files));
        progress.item_done();
    }
    lessons.sort_by(|a, b| a.id.cmp(&b.id));
    report.files = lessons.iter().map(|l| l.files.len()).sum();
    report.blobs = contents.len();

    let dictionary = match opts.dictionary {
        DictionaryChoice::Never => None,
        DictionaryChoice::Auto => choose_dictionary(
            &contents,
            previous.and_then(|(_, manifest)| previous_dictionary(out, &manifest)),
            &mut report,
        )?,
    };
    if let Some(dict) = &dictionary {
        let hash = Hash::of(dict);
        write_if_changed(out, &dict_path(hash), dict)?;
    }

    // Compress and write the contents, a group at a time on every core.
    let mut stored: BTreeMap<Hash, (Encoding, u64)> = BTreeMap::new();
    let list: Vec<&Content<'_>> = contents.values().collect();
    for group in list.chunks(64) {
        let results = group
            .par_iter()
            .map(|content| store_content(out, content, dictionary.as_deref(), opts))
            .collect::<Result<Vec<_>, ServiceError>>()?;
        for (content, (encoding, size, written)) in group.iter().zip(results) {
            stored.insert(content.hash, (encoding, size));
            report.package_bytes += size;
            report.blobs_written += usize::from(written);
            progress.add_bytes(content.file.size);
        }
    }
    for lesson in &mut lessons {
        for file in &mut lesson.files {
            if let Some((encoding, size)) = file.hash().and_then(|h| stored.get(&h)) {
                file.encoding = *encoding;
                file.stored_size = *size;
            }
        }
    }

    // Each lesson travels as its own part, named by its hash: a lesson that did not change
    // keeps its part file, and an importer that has it reads none of it.
    let mut root_lessons = Vec::with_capacity(lessons.len());
    let mut parts_bytes = 0u64;
    for lesson in &lessons {
        let (hash, file) = encode_part(lesson);
        report.parts_written += usize::from(write_if_changed(out, &lesson_part_path(hash), &file)?);
        parts_bytes += file.len() as u64;
        root_lessons.push(RootLesson {
            id: lesson.id.clone(),
            part: hash.to_hex(),
        });
    }
    let root = Root {
        format: ROOT_FORMAT.to_owned(),
        publisher: public.to_text(),
        seq,
        created: now_rfc3339(),
        dictionary: dictionary.as_ref().map(|d| Hash::of(d).to_hex()),
        lessons: root_lessons,
    };
    let bytes = serde_json::to_vec_pretty(&root).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let signature = opts.key.sign(&bytes);
    let (manifest_file, signature_file) = manifest_name(&fingerprint, seq);
    write_if_changed(out, &manifest_file, &bytes)?;
    write_if_changed(out, &signature_file, signature_to_text(&signature).as_bytes())?;
    let index = Index {
        format: INDEX_FORMAT.to_owned(),
        manifests: vec![IndexEntry {
            manifest: manifest_file.clone(),
            signature: signature_file,
            compressed: None,
            lessons: None,
        }],
        local: None,
        part_size: opts.part_size,
    };
    let index_bytes = serde_json::to_vec_pretty(&index).map_err(|e| ServiceError::Internal(e.to_string()))?;
    // The index goes last: a mirror copying the folder never sees it point at missing files.
    write_atomically(&out.join(INDEX_FILE), &index_bytes)?;
    report.package_bytes += (bytes.len() + index_bytes.len()) as u64 + parts_bytes;
    report.manifest = out.join(manifest_file);
    Ok(report)
}

fn default_seq() -> u64 {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let digits: String = now.chars().filter(char::is_ascii_digit).take(12).collect();
    digits.parse().unwrap_or(1)
}

/// The newest manifest `fingerprint` published into `out` before: (its sequence, its path in
/// the package). A folder without a package has none; a damaged index is an error.
fn newest_published(out: &Path, fingerprint: &str) -> Result<Option<(u64, String)>, ServiceError> {
    if !out.join(INDEX_FILE).is_file() {
        return Ok(None);
    }
    let index = read_index(out).map_err(|e| ServiceError::Package(Box::new(e)))?;
    let prefix = format!("manifests/{fingerprint}-");
    Ok(index
        .manifests
        .into_iter()
        .filter_map(|e| {
            let seq = e
                .manifest
                .strip_prefix(&prefix)?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()?;
            Some((seq, e.manifest))
        })
        .max())
}

/// The file's hash, its media type and whether it is worth compressing (`worth_compressing`).
fn hash_file(dir: &Path, file: &ScannedFile) -> Result<(Hash, String, bool), ServiceError> {
    match &file.source {
        FileSource::Memory(bytes) => {
            let media = media_type(&file.path, bytes);
            let compress = worth_compressing(&media, bytes);
            Ok((Hash::of(bytes), media, compress))
        }
        FileSource::Disk(path) => {
            let open = || std::fs::File::open(path).map_err(|e| io_error(path, e));
            let (hash, _) = crate::store::hash_reader(open()?).map_err(|e| io_error(path, e))?;
            let mut head = Vec::new();
            let limit = if file.size <= TEXT_LIMIT { TEXT_LIMIT } else { 4096 };
            open()?
                .take(limit)
                .read_to_end(&mut head)
                .map_err(|e| io_error(&dir.join(&file.path), e))?;
            let media = media_type(&file.path, &head);
            let compress = worth_compressing(&media, &head);
            Ok((hash, media, compress))
        }
    }
}

fn read_content(content: &Content<'_>) -> Result<Vec<u8>, ServiceError> {
    match &content.file.source {
        FileSource::Memory(bytes) => Ok(bytes.to_vec()),
        FileSource::Disk(path) => std::fs::read(path).map_err(|e| io_error(path, e)),
    }
}

/// Trains a dictionary on the package's text and keeps it if it pays.
fn choose_dictionary(
    contents: &BTreeMap<Hash, Content<'_>>,
    previous: Option<Vec<u8>>,
    report: &mut PublishReport,
) -> Result<Option<Vec<u8>>, ServiceError> {
    let texts: Vec<&Content<'_>> = contents.values().filter(|c| c.text).collect();
    let text_bytes: u64 = texts.iter().map(|c| c.file.size).sum();
    if texts.len() < 50 || text_bytes < 1024 * 1024 {
        return Ok(None);
    }
    // Train on every other file (up to 20 MB) and measure on the rest (up to 300 files).
    let mut training = Vec::new();
    let mut testing = Vec::new();
    let mut trained_bytes = 0u64;
    for (i, content) in texts.iter().enumerate() {
        if i % 2 == 0 && trained_bytes < 20_000_000 {
            trained_bytes += content.file.size;
            training.push(read_content(content)?);
        } else if testing.len() < 300 {
            testing.push(read_content(content)?);
        }
    }
    let level = 9;
    // The previous package's dictionary, while it still pays, keeps every unchanged text blob
    // byte for byte: an update then rewrites only what changed, on sticks and mirrors alike.
    if let Some(previous) = previous {
        let saving = dictionary_saving(&previous, &testing, text_bytes, level);
        if saving >= DICT_MIN_SAVING {
            report.dictionary = Some((previous.len(), saving, true));
            report.dictionary_reused = true;
            return Ok(Some(previous));
        }
    }
    let dict_size = usize::try_from((text_bytes / 100).clamp(16 * 1024, 112 * 1024)).unwrap_or(112 * 1024);
    let Ok(dict) = zstd::dict::from_samples(&training, dict_size) else {
        return Ok(None);
    };
    let saving = dictionary_saving(&dict, &testing, text_bytes, level);
    let used = saving >= DICT_MIN_SAVING;
    report.dictionary = Some((dict.len(), saving, used));
    Ok(used.then_some(dict))
}

/// What share of the text `dict` saves at zstd `level`, measured on `testing` and projected
/// onto `text_bytes`, the dictionary's own size counted against it.
fn dictionary_saving(dict: &[u8], testing: &[Vec<u8>], text_bytes: u64, level: i32) -> f64 {
    let plain: usize = testing
        .par_iter()
        .map(|t| zstd::bulk::compress(t, level).map_or(t.len(), |c| c.len()))
        .sum();
    let with: usize = testing
        .par_iter()
        .map(|t| {
            zstd::bulk::Compressor::with_dictionary(level, dict)
                .and_then(|mut c| c.compress(t))
                .map_or(t.len(), |c| c.len())
        })
        .sum();
    let tested: u64 = testing.iter().map(|t| t.len() as u64).sum();
    // Project the sample onto all text, and count the dictionary's own size against it.
    let scale = text_bytes as f64 / tested.max(1) as f64;
    1.0 - (with as f64 * scale + dict.len() as f64) / (plain as f64 * scale).max(1.0)
}

/// The dictionary the manifest at `manifest` (in `out`) names, if it is there and intact.
fn previous_dictionary(out: &Path, manifest: &str) -> Option<Vec<u8>> {
    let bytes = std::fs::read(out.join(manifest)).ok()?;
    let hash = Hash::from_hex(Signed::parse(&bytes).ok()?.dictionary()?)?;
    let dict = std::fs::read(out.join(dict_path(hash))).ok()?;
    (Hash::of(&dict) == hash).then_some(dict)
}

/// Compresses (text) or copies (media) one content into the package. Returns its encoding,
/// stored size and whether a file was written (false: already there, identical).
fn store_content(
    out: &Path,
    content: &Content<'_>,
    dict: Option<&[u8]>,
    opts: &PublishOptions,
) -> Result<(Encoding, u64, bool), ServiceError> {
    if content.text {
        let raw = read_content(content)?;
        let compressed = match dict {
            Some(dict) => {
                zstd::bulk::Compressor::with_dictionary(opts.zstd_level, dict).and_then(|mut c| c.compress(&raw))
            }
            None => zstd::bulk::compress(&raw, opts.zstd_level),
        }
        .map_err(|e| ServiceError::Internal(format!("zstd: {e}")))?;
        if (compressed.len() as u64) < content.file.size {
            let written = write_parts(out, content.hash, &compressed, opts.part_size)?;
            return Ok((Encoding::Zstd, compressed.len() as u64, written));
        }
    }
    let size = content.file.size;
    let written = match &content.file.source {
        FileSource::Memory(bytes) => write_parts(out, content.hash, bytes, opts.part_size)?,
        FileSource::Disk(path) => copy_parts(out, content.hash, path, size, opts.part_size)?,
    };
    Ok((Encoding::Raw, size, written))
}

fn write_parts(out: &Path, hash: Hash, bytes: &[u8], part_size: u64) -> Result<bool, ServiceError> {
    let parts = part_count(bytes.len() as u64, part_size);
    let mut written = false;
    if parts == 1 {
        return write_if_changed(out, &blob_path(hash, None), bytes);
    }
    for (n, piece) in bytes
        .chunks(usize::try_from(part_size).unwrap_or(usize::MAX))
        .enumerate()
    {
        let name = blob_path(hash, Some(u32::try_from(n + 1).unwrap_or(u32::MAX)));
        written |= write_if_changed(out, &name, piece)?;
    }
    Ok(written)
}

/// Copies a large media file into its part files without holding it in memory.
fn copy_parts(out: &Path, hash: Hash, source: &Path, size: u64, part_size: u64) -> Result<bool, ServiceError> {
    let parts = part_count(size, part_size);
    let mut reader = std::fs::File::open(source).map_err(|e| io_error(source, e))?;
    let mut written = false;
    for n in 0..parts {
        let name = part_path(hash, n, parts);
        let len = part_size.min(size - n * part_size);
        let target = out.join(&name);
        if std::fs::metadata(&target).is_ok_and(|m| m.len() == len) {
            // Content-addressed: a part of the right length under this name is this content.
            std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink()).map_err(|e| io_error(source, e))?;
            continue;
        }
        let parent = target.parent().unwrap_or(out);
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        let temp = temp_name(&target);
        let mut file = std::fs::File::create(&temp).map_err(|e| io_error(&temp, e))?;
        std::io::copy(&mut (&mut reader).take(len), &mut file).map_err(|e| io_error(&temp, e))?;
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        std::fs::rename(&temp, &target).map_err(|e| io_error(&target, e))?;
        written = true;
    }
    Ok(written)
}

/// Writes `rel` under `out` unless it already holds exactly these bytes.
pub(super) fn write_if_changed(out: &Path, rel: &str, bytes: &[u8]) -> Result<bool, ServiceError> {
    let target = out.join(rel);
    if std::fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64)
        && std::fs::read(&target).is_ok_and(|existing| existing == bytes)
    {
        return Ok(false);
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    }
    write_atomically(&target, bytes)?;
    Ok(true)
}

/// Writes through a temporary name and renames, so a pulled stick never holds a full-length
/// file with the wrong bytes under the final name.
pub(super) fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    let temp = temp_name(target);
    let mut file = std::fs::File::create(&temp).map_err(|e| io_error(&temp, e))?;
    file.write_all(bytes).map_err(|e| io_error(&temp, e))?;
    file.sync_all().map_err(|e| io_error(&temp, e))?;
    drop(file);
    std::fs::rename(&temp, target).map_err(|e| io_error(target, e))
}

fn temp_name(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    target.with_file_name(name)
}
