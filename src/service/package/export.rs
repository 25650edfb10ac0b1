//! `dars export`: what a centre holds, written as a package onto a USB stick. Publishers'
//! lessons travel with their signed manifests exactly as received, so they stay verifiable
//! as the publisher's; local lessons travel in an unsigned local manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::PackageError;
use super::publish::{write_atomically, write_if_changed};
use crate::package::{
    DEFAULT_PART_SIZE, Encoding, INDEX_FILE, INDEX_FORMAT, Index, IndexEntry, MANIFEST_FORMAT, Manifest, ManifestFile,
    ManifestLesson, USB_DIR, blob_path, dict_path, manifest_name, now_rfc3339, part_count,
};
use crate::service::{Progress, ServiceError, io_error};
use crate::store::{self, BlobInfo, Hash, LessonFilter, LessonRow, Origin, Storage, Variant};

#[derive(Debug, Default)]
pub struct ExportReport {
    pub dir: PathBuf,
    pub lessons: usize,
    pub blobs_written: usize,
    pub blobs_present: usize,
    pub bytes_written: u64,
}

/// Writes the lessons `ids` (all when empty) into `dir/DARS/`.
pub fn export(
    conn: &Connection,
    dir: &Path,
    ids: &[String],
    progress: &Progress,
) -> Result<ExportReport, ServiceError> {
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
    let out = dir.join(USB_DIR);
    std::fs::create_dir_all(&out).map_err(|e| io_error(&out, e))?;

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
    let mut report = ExportReport {
        dir: out.clone(),
        lessons: chosen.len(),
        ..ExportReport::default()
    };
    // (hash -> encoding wanted in the package), from the manifests that describe them.
    let mut blobs: BTreeMap<Hash, Encoding> = BTreeMap::new();
    let mut entries = Vec::new();
    for ((key, seq), lesson_ids) in &signed {
        let (bytes, signature) = store::get_manifest(conn, key, *seq)?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| ServiceError::Internal(e.to_string()))?;
        for lesson in manifest.lessons.iter().filter(|l| lesson_ids.contains(&l.id)) {
            for file in &lesson.files {
                if let Some(hash) = file.hash() {
                    blobs.insert(hash, file.encoding);
                }
            }
        }
        let (manifest_file, signature_file) = manifest_name(key, *seq);
        write_if_changed(&out, &manifest_file, &bytes)?;
        write_if_changed(&out, &signature_file, &signature)?;
        entries.push(IndexEntry {
            manifest: manifest_file,
            signature: signature_file,
            lessons: Some(lesson_ids.clone()),
        });
    }
    let local_file = if local.is_empty() {
        None
    } else {
        let mut lessons = Vec::new();
        for row in &local {
            let mut files = Vec::new();
            for file in store::files_of(conn, &row.meta.id)? {
                let info = store::blob_info(conn, file.hash)?;
                let (encoding, stored_size) = match info.storage {
                    Storage::Text => (Encoding::Zstd, info.zstd_size),
                    Storage::Raw => (Encoding::Raw, info.size),
                };
                blobs.entry(file.hash).or_insert(encoding);
                files.push(ManifestFile {
                    path: file.path,
                    size: file.size,
                    media_type: file.media_type,
                    hash: file.hash.to_hex(),
                    encoding,
                    stored_size,
                });
            }
            lessons.push(ManifestLesson::from_meta(&row.meta, files));
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            publisher: "local".to_owned(),
            seq: 0,
            created: now_rfc3339(),
            dictionary: None,
            lessons,
        };
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| ServiceError::Internal(e.to_string()))?;
        write_if_changed(&out, "local.json", &bytes)?;
        Some("local.json".to_owned())
    };

    let infos: Vec<(BlobInfo, Encoding)> = blobs
        .iter()
        .map(|(hash, enc)| Ok((store::blob_info(conn, *hash)?, *enc)))
        .collect::<Result<_, ServiceError>>()?;
    progress.set_totals(infos.len() as u64, infos.iter().map(|(i, _)| i.size).sum());
    let mut dict_ids = BTreeSet::new();
    for (info, encoding) in &infos {
        progress.set_current(&info.hash.short());
        let written = write_blob(conn, &out, info, *encoding)?;
        if written > 0 {
            report.blobs_written += 1;
            report.bytes_written += written;
        } else {
            report.blobs_present += 1;
        }
        if *encoding == Encoding::Zstd && info.storage == Storage::Text && info.dict_id != 0 {
            dict_ids.insert(info.dict_id);
        }
        progress.add_bytes(info.size);
        progress.item_done();
    }
    for id in dict_ids {
        let bytes = store::dictionary(conn, id)?;
        write_if_changed(&out, &dict_path(Hash::of(&bytes)), &bytes)?;
    }
    let index = Index {
        format: INDEX_FORMAT.to_owned(),
        manifests: entries,
        local: local_file,
        part_size: DEFAULT_PART_SIZE,
    };
    let bytes = serde_json::to_vec_pretty(&index).map_err(|e| ServiceError::Internal(e.to_string()))?;
    write_atomically(&out.join(INDEX_FILE), &bytes)?;
    Ok(report)
}

/// Writes one blob in the encoding its manifest declares; returns the bytes written (0 when
/// a file of the right size is already there: blob files are named by their content).
fn write_blob(conn: &Connection, out: &Path, info: &BlobInfo, encoding: Encoding) -> Result<u64, ServiceError> {
    let stored: Vec<u8> = match (encoding, info.storage) {
        (Encoding::Zstd, Storage::Text) => store::read_variant(conn, info.hash, Variant::Zstd, 0..info.zstd_size)?,
        (Encoding::Raw, Storage::Text) => store::read_raw(conn, info)?,
        (Encoding::Zstd, Storage::Raw) => {
            let raw = store::read_raw(conn, info)?;
            zstd::bulk::compress(&raw, 9).map_err(|e| ServiceError::Internal(format!("zstd: {e}")))?
        }
        (Encoding::Raw, Storage::Raw) => return copy_raw(conn, out, info),
    };
    let target = out.join(blob_path(info.hash, None));
    if std::fs::metadata(&target).is_ok_and(|m| m.len() == stored.len() as u64) {
        return Ok(0);
    }
    write_if_changed(out, &blob_path(info.hash, None), &stored)?;
    Ok(stored.len() as u64)
}

/// Copies a raw blob chunk by chunk into its part files.
fn copy_raw(conn: &Connection, out: &Path, info: &BlobInfo) -> Result<u64, ServiceError> {
    let parts = part_count(info.size, DEFAULT_PART_SIZE);
    let mut written = 0;
    for n in 0..parts {
        let rel = if parts == 1 {
            blob_path(info.hash, None)
        } else {
            blob_path(info.hash, Some(u32::try_from(n + 1).unwrap_or(0)))
        };
        let start = n * DEFAULT_PART_SIZE;
        let end = (start + DEFAULT_PART_SIZE).min(info.size);
        let target = out.join(&rel);
        if std::fs::metadata(&target).is_ok_and(|m| m.len() == end - start) {
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
