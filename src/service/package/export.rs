//! What a centre holds, as a package: planned once, then written onto a USB stick
//! (`dars export`) or served to peers (`/mirror/`). Publishers' lessons travel with their
//! signed manifests exactly as received, so they stay verifiable as the publisher's; local
//! lessons travel in an unsigned local manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::PackageError;
use super::publish::{write_atomically, write_if_changed};
use crate::package::{
    DEFAULT_PART_SIZE, Encoding, INDEX_FILE, INDEX_FORMAT, Index, IndexEntry, MANIFEST_FORMAT, Manifest, ManifestFile,
    ManifestLesson, Signed, USB_DIR, blob_path, decode_part, dict_path, lesson_part_path, manifest_name, part_count,
    part_path,
};
use crate::service::{Progress, ServiceError, io_error};
use crate::store::{self, BlobInfo, Hash, LessonFilter, LessonRow, Origin, Storage, Variant};

pub const LOCAL_FILE: &str = "local.json";

/// A package of (some of) the lessons in the store, before it is written or served.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub index: Index,
    /// Manifests, signatures and the local manifest: (path in the package, bytes).
    pub documents: BTreeMap<String, Vec<u8>>,
    /// Every blob, with the encoding the package's manifests declare for it.
    pub blobs: BTreeMap<Hash, (BlobInfo, Encoding)>,
    /// Dictionaries the zstd blobs need: path -> bytes.
    pub dicts: BTreeMap<String, Vec<u8>>,
    pub lessons: usize,
}

impl Plan {
    pub fn index_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.index).unwrap_or_default()
    }

    /// The length of a blob file as the package holds it.
    pub fn stored_len(&self, conn: &Connection, hash: Hash) -> Result<Option<u64>, ServiceError> {
        let Some((info, encoding)) = self.blobs.get(&hash) else {
            return Ok(None);
        };
        Ok(Some(match (encoding, info.storage) {
            (Encoding::Zstd, Storage::Text) => info.zstd_size,
            (Encoding::Raw, _) => info.size,
            (Encoding::Zstd, Storage::Raw) => blob_bytes(conn, info, Encoding::Zstd, None)?.len() as u64,
        }))
    }
}

/// Plans a package of the lessons `ids` (all when empty).
pub fn plan(conn: &Connection, ids: &[String]) -> Result<Plan, ServiceError> {
    let all = store::list_lessons(conn, &LessonFilter::default())?;
    let chosen: Vec<LessonRow> = if ids.is_empty() {
        all
    } else {
        let wanted: BTreeSet<&String> = ids.iter().collect();
        for id in &wanted {
            if !all.iter().any(|l| &l.meta.id == *id) {
                return Err(PackageError::UnknownLesson((*id).clone()).into());
            }
        }
        all.into_iter().filter(|l| wanted.contains(&l.meta.id)).collect()
    };
    let mut plan = Plan {
        lessons: chosen.len(),
        ..Plan::default()
    };

    // Publishers' lessons grouped by the manifest they came with; the rest are local.
    let mut signed: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    let mut local: Vec<&LessonRow> = Vec::new();
    for lesson in &chosen {
        match &lesson.origin {
            Origin::Publisher(key) => signed
                .entry((key.clone(), u64::try_from(lesson.seq).unwrap_or(0)))
                .or_default()
                .push(lesson.meta.id.clone()),
            Origin::Local | Origin::Sample => local.push(lesson),
        }
    }
    let mut declared: BTreeMap<Hash, Encoding> = BTreeMap::new();
    let mut entries = Vec::new();
    for ((key, seq), lesson_ids) in &signed {
        let (bytes, signature) = store::get_manifest(conn, key, *seq)?;
        let internal = |e: String| ServiceError::Internal(format!("stored manifest {key}-{seq}: {e}"));
        let (manifest_file, signature_file) = manifest_name(key, *seq);
        let compressed = match Signed::parse(&bytes).map_err(|e| internal(e.to_string()))? {
            Signed::Whole(manifest) => {
                for lesson in manifest.lessons.iter().filter(|l| lesson_ids.contains(&l.id)) {
                    declare(&mut declared, lesson);
                }
                let compressed_file = format!("{manifest_file}.zst");
                plan.documents
                    .insert(compressed_file.clone(), crate::package::compress_manifest(&bytes));
                Some(compressed_file)
            }
            Signed::Root(root) => {
                // Each lesson's part exactly as received, so the root's hashes still hold.
                for entry in root.lessons.iter().filter(|l| lesson_ids.contains(&l.id)) {
                    let hash = entry
                        .part()
                        .ok_or_else(|| internal(format!("lesson {} has a bad part", entry.id)))?;
                    let file = store::get_part(conn, hash)
                        .map_err(|e| internal(format!("the part of lesson {}: {e}", entry.id)))?;
                    let lesson = decode_part(&entry.id, hash, &file).map_err(internal)?;
                    declare(&mut declared, &lesson);
                    plan.documents.insert(lesson_part_path(hash), file);
                }
                None
            }
        };
        plan.documents.insert(manifest_file.clone(), bytes);
        plan.documents.insert(signature_file.clone(), signature);
        entries.push(IndexEntry {
            manifest: manifest_file,
            signature: signature_file,
            compressed,
            lessons: Some(lesson_ids.clone()),
        });
    }
    let local_file = if local.is_empty() {
        None
    } else {
        let (manifest, encodings) = local_manifest(conn, &local)?;
        for (hash, encoding) in encodings {
            declared.entry(hash).or_insert(encoding);
        }
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| ServiceError::Internal(e.to_string()))?;
        plan.documents.insert(LOCAL_FILE.to_owned(), bytes);
        Some(LOCAL_FILE.to_owned())
    };
    for (hash, encoding) in declared {
        let info = store::blob_info(conn, hash)?;
        if encoding == Encoding::Zstd && info.storage == Storage::Text && info.dict_id != 0 {
            let bytes = store::dictionary(conn, info.dict_id)?;
            plan.dicts.insert(dict_path(Hash::of(&bytes)), bytes);
        }
        plan.blobs.insert(hash, (info, encoding));
    }
    plan.index = Index {
        format: INDEX_FORMAT.to_owned(),
        manifests: entries,
        local: local_file,
        part_size: DEFAULT_PART_SIZE,
    };
    Ok(plan)
}

/// Notes the encoding a manifest declares for each file of `lesson`.
fn declare(declared: &mut BTreeMap<Hash, Encoding>, lesson: &ManifestLesson) {
    for file in &lesson.files {
        if let Some(hash) = file.hash() {
            declared.insert(hash, file.encoding);
        }
    }
}

/// An unsigned manifest of local lessons, in the encodings the store keeps them.
fn local_manifest(
    conn: &Connection,
    lessons: &[&LessonRow],
) -> Result<(Manifest, Vec<(Hash, Encoding)>), ServiceError> {
    let mut out = Vec::new();
    let mut encodings = Vec::new();
    for row in lessons {
        let mut files = Vec::new();
        for file in store::files_of(conn, &row.meta.id)? {
            let info = store::blob_info(conn, file.hash)?;
            let (encoding, stored_size) = match info.storage {
                Storage::Text => (Encoding::Zstd, info.zstd_size),
                Storage::Raw => (Encoding::Raw, info.size),
            };
            encodings.push((file.hash, encoding));
            files.push(ManifestFile {
                path: file.path,
                size: file.size,
                media_type: file.media_type,
                hash: file.hash.to_hex(),
                encoding,
                stored_size,
            });
        }
        out.push(ManifestLesson::from_meta(&row.meta, files));
    }
    // The creation time is that of the newest lesson, so the same lessons give the same bytes.
    let newest = lessons.iter().map(|l| l.imported_at).max().unwrap_or(0);
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(newest).unwrap_or(0));
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        publisher: "local".to_owned(),
        seq: 0,
        created: humantime::format_rfc3339_seconds(created).to_string(),
        dictionary: None,
        lessons: out,
    };
    Ok((manifest, encodings))
}

/// The bytes of a blob file as the package holds it (`range` of it, or all), converting
/// only in the rare case the store keeps it differently from what the manifest declares.
pub fn blob_bytes(
    conn: &Connection,
    info: &BlobInfo,
    encoding: Encoding,
    range: Option<Range<u64>>,
) -> Result<Vec<u8>, ServiceError> {
    let direct = match (encoding, info.storage) {
        (Encoding::Zstd, Storage::Text) => Some((Variant::Zstd, info.zstd_size)),
        (Encoding::Raw, Storage::Raw) => Some((Variant::Raw, info.size)),
        _ => None,
    };
    if let Some((variant, len)) = direct {
        return Ok(store::read_variant(conn, info.hash, variant, range.unwrap_or(0..len))?);
    }
    let whole = match encoding {
        Encoding::Raw => store::read_raw(conn, info)?,
        Encoding::Zstd => {
            let raw = store::read_raw(conn, info)?;
            zstd::bulk::compress(&raw, 9).map_err(|e| ServiceError::Internal(format!("zstd: {e}")))?
        }
    };
    Ok(match range {
        Some(r) => whole
            .get(usize::try_from(r.start).unwrap_or(usize::MAX)..usize::try_from(r.end).unwrap_or(usize::MAX))
            .unwrap_or_default()
            .to_vec(),
        None => whole,
    })
}

#[derive(Debug, Default)]
pub struct ExportReport {
    pub dir: PathBuf,
    pub lessons: usize,
    pub blobs_written: usize,
    pub blobs_present: usize,
    pub bytes_written: u64,
}

/// Writes the lessons `ids` (all when empty) into `dir/DARS/`. The index is written last, so a
/// stick pulled out early holds no package that claims to be whole.
pub fn export(
    conn: &Connection,
    dir: &Path,
    ids: &[String],
    progress: &Progress,
) -> Result<ExportReport, ServiceError> {
    let plan = plan(conn, ids)?;
    let out = dir.join(USB_DIR);
    std::fs::create_dir_all(&out).map_err(|e| io_error(&out, e))?;
    let mut report = ExportReport {
        dir: out.clone(),
        lessons: plan.lessons,
        ..ExportReport::default()
    };
    for (path, bytes) in plan.documents.iter().chain(plan.dicts.iter()) {
        write_if_changed(&out, path, bytes)?;
    }
    progress.set_totals(plan.blobs.len() as u64, plan.blobs.values().map(|(i, _)| i.size).sum());
    for (info, encoding) in plan.blobs.values() {
        progress.set_current(&info.hash.short());
        let written = write_blob(conn, &out, info, *encoding)?;
        if written > 0 {
            report.blobs_written += 1;
            report.bytes_written += written;
        } else {
            report.blobs_present += 1;
        }
        progress.add_bytes(info.size);
        progress.item_done();
    }
    write_atomically(&out.join(INDEX_FILE), &plan.index_bytes())?;
    Ok(report)
}

/// Writes one blob file (or its parts); returns the bytes written (0 when a file of the
/// right size is already there: blob files are named by their content).
fn write_blob(conn: &Connection, out: &Path, info: &BlobInfo, encoding: Encoding) -> Result<u64, ServiceError> {
    if encoding == Encoding::Raw && info.storage == Storage::Raw {
        return copy_raw(conn, out, info);
    }
    let stored = blob_bytes(conn, info, encoding, None)?;
    // Rewritten unless the stick already holds exactly these bytes: exporting again repairs
    // a damaged stick.
    let written = write_if_changed(out, &blob_path(info.hash, None), &stored)?;
    Ok(if written { stored.len() as u64 } else { 0 })
}

/// Whether the file at `target` holds exactly `range` of the raw blob (read back in pieces,
/// so a damaged stick is noticed and repaired).
fn same_as_store(conn: &Connection, info: &BlobInfo, target: &Path, range: Range<u64>) -> Result<bool, ServiceError> {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(target) else {
        return Ok(false);
    };
    let step = store::CHUNK_SIZE as u64 * 4;
    let mut at = range.start;
    let mut buf = Vec::new();
    while at < range.end {
        let next = (at + step).min(range.end);
        let want = store::read_variant(conn, info.hash, Variant::Raw, at..next)?;
        buf.resize(want.len(), 0);
        if file.read_exact(&mut buf).is_err() || buf != want {
            return Ok(false);
        }
        at = next;
    }
    Ok(true)
}

/// Copies a raw blob a few chunks at a time into its part files.
fn copy_raw(conn: &Connection, out: &Path, info: &BlobInfo) -> Result<u64, ServiceError> {
    let parts = part_count(info.size, DEFAULT_PART_SIZE);
    let mut written = 0;
    for n in 0..parts {
        let rel = part_path(info.hash, n, parts);
        let start = n * DEFAULT_PART_SIZE;
        let end = (start + DEFAULT_PART_SIZE).min(info.size);
        let target = out.join(&rel);
        if std::fs::metadata(&target).is_ok_and(|m| m.len() == end - start)
            && same_as_store(conn, info, &target, start..end)?
        {
            continue;
        }
        let parent = target.parent().unwrap_or(out);
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        let mut temp_name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        temp_name.push(".partial");
        let temp = target.with_file_name(temp_name);
        let mut file = std::fs::File::create(&temp).map_err(|e| io_error(&temp, e))?;
        let step = store::CHUNK_SIZE as u64 * 4;
        let mut at = start;
        while at < end {
            let next = (at + step).min(end);
            let bytes = store::read_variant(conn, info.hash, Variant::Raw, at..next)?;
            file.write_all(&bytes).map_err(|e| io_error(&temp, e))?;
            at = next;
        }
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        std::fs::rename(&temp, &target).map_err(|e| io_error(&target, e))?;
        written += end - start;
    }
    Ok(written)
}
