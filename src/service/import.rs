//! Importing lesson folders into the store: read, hash, compress what is new, and make each
//! lesson visible in one transaction once all of its blobs are stored.

use std::collections::HashSet;
use std::io::Read;

use rayon::prelude::*;
use rusqlite::{Connection, TransactionBehavior};

use super::media::{media_type, worth_compressing};
use super::progress::Progress;
use super::scan::{FileSource, Scan, ScannedFile, ScannedLesson};
use super::{ServiceError, io_error};
use crate::lesson::LessonError;
use crate::store::{self, BlobWriter, FileEntry, Hash, NewLesson, Origin, StoredBlob};

/// Files up to this size are read whole and compressed in memory; larger ones are streamed
/// and stored raw (a text file this big is rare in a lesson, and streaming keeps memory flat).
const WHOLE_FILE_LIMIT: u64 = 8 * 1024 * 1024;
/// Small files are read and compressed in parallel groups of about this many bytes.
const GROUP_BYTES: u64 = 16 * 1024 * 1024;
/// Blobs waiting for their lesson are committed early when they pass this many bytes.
const BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Unused blobs younger than this are left for a concurrent import that may still need them.
const GC_GRACE_SECS: i64 = 3600;

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub origin: Origin,
    /// zstd level for text; higher is smaller and slower.
    pub zstd_level: i32,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            origin: Origin::Local,
            zstd_level: 9,
        }
    }
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub blobs_written: u64,
    pub bytes_read: u64,
    pub bytes_stored: u64,
    /// Lessons that were refused, with what to fix; the others were imported.
    pub errors: Vec<LessonError>,
}

/// Imports every valid lesson of `scan`; invalid ones are reported in the result.
pub fn import_scan(
    conn: &mut Connection,
    scan: Scan,
    opts: &ImportOptions,
    progress: &Progress,
) -> Result<ImportReport, ServiceError> {
    let mut report = ImportReport {
        errors: scan.errors,
        ..ImportReport::default()
    };
    let total: u64 = scan.lessons.iter().map(ScannedLesson::total_size).sum();
    progress.set_totals(scan.lessons.len() as u64, total);
    // Blob batches need not reach the disk before the lesson that uses them commits: a
    // power cut loses only unreferenced blobs. Saves an fsync per batch on an old disk.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = import_lessons(conn, &scan.lessons, opts, progress, &mut report);
    conn.pragma_update(None, "synchronous", "FULL")?;
    result?;
    store::collect_garbage(conn, GC_GRACE_SECS)?;
    Ok(report)
}

fn import_lessons(
    conn: &mut Connection,
    lessons: &[ScannedLesson],
    opts: &ImportOptions,
    progress: &Progress,
    report: &mut ImportReport,
) -> Result<(), ServiceError> {
    for lesson in lessons {
        progress.set_current(&lesson.meta.id);
        match import_lesson(conn, lesson, opts, progress, report) {
            Ok(()) => {}
            Err(ServiceError::Lesson(err)) => report.errors.push(*err),
            Err(other) => return Err(other),
        }
        progress.item_done();
    }
    Ok(())
}

fn import_lesson(
    conn: &mut Connection,
    lesson: &ScannedLesson,
    opts: &ImportOptions,
    progress: &Progress,
    report: &mut ImportReport,
) -> Result<(), ServiceError> {
    let files = &lesson.files;
    let mut entries = Vec::with_capacity(files.len());
    let mut pending: Vec<StoredBlob> = Vec::new();
    let mut seen: HashSet<Hash> = HashSet::new();
    let mut pending_bytes = 0usize;
    let mut index = 0;
    while index < files.len() {
        if files[index].size > WHOLE_FILE_LIMIT {
            let file = &files[index];
            entries.push(stream_large(conn, lesson, file, report)?);
            progress.add_bytes(file.size);
            report.bytes_read += file.size;
            index += 1;
            continue;
        }
        // A group of small files is read, hashed and compressed on every core at once;
        // only the writing into SQLite is sequential.
        let mut end = index;
        let mut group_bytes = 0;
        while end < files.len()
            && files[end].size <= WHOLE_FILE_LIMIT
            && (end == index || group_bytes + files[end].size <= GROUP_BYTES)
        {
            group_bytes += files[end].size;
            end += 1;
        }
        let group = &files[index..end];
        let loaded = group
            .par_iter()
            .map(|file| {
                let raw = read_whole(lesson, file)?;
                let media = media_type(&file.path, &raw);
                let compress = worth_compressing(&media, &raw);
                Ok((Hash::of(&raw), raw, (media, compress)))
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let mut work = Vec::new();
        for (file, (hash, raw, (media, compress))) in group.iter().zip(loaded) {
            entries.push(FileEntry {
                path: file.path.clone(),
                hash,
                size: file.size,
                media_type: media,
            });
            if seen.insert(hash) && !store::blob_exists(conn, hash)? {
                work.push((file, raw, compress));
            }
        }
        let blobs = work
            .into_par_iter()
            .map(|(file, raw, compress)| {
                store::prepare_blob(raw, compress, opts.zstd_level)
                    .map_err(|e| io_error(&lesson.dir.join(&file.path), e))
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        pending_bytes += blobs
            .iter()
            .flat_map(|b| b.variants.iter().map(|(_, bytes)| bytes.len()))
            .sum::<usize>();
        pending.extend(blobs);
        progress.add_bytes(group_bytes);
        report.bytes_read += group_bytes;
        if pending_bytes > BATCH_BYTES {
            commit_blobs(conn, &mut pending, report)?;
            pending_bytes = 0;
        }
        index = end;
    }
    let new = NewLesson {
        meta: lesson.meta.clone(),
        origin: opts.origin.clone(),
        seq: 0,
        files: entries,
        part: None,
    };
    // The commit that makes the lesson visible is durable before it returns; it also makes
    // the blob batches written before it (with synchronous=NORMAL) durable, since they are
    // earlier in the same WAL file.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Ok(row) = store::get_lesson(&tx, &new.meta.id)
        && let Origin::Publisher(fingerprint) = &row.origin
        && new.origin != row.origin
    {
        drop(tx);
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        return Err(ServiceError::Lesson(Box::new(LessonError::new(
            &lesson.dir.join("lesson.toml"),
            Some(&new.meta.id),
            format!(
                "this id belongs to a lesson signed by publisher {fingerprint}, which a local lesson cannot replace"
            ),
            "give your lesson another id in its lesson.toml",
        ))));
    }
    let before = store::current_digest(&tx, &new.meta.id)?;
    if before == Some(new.digest()) && pending.is_empty() {
        drop(tx);
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        report.unchanged.push(new.meta.id.clone());
        return Ok(());
    }
    write_pending(&tx, &pending, report)?;
    store::replace_lesson(&tx, &new)?;
    tx.commit()?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    if before.is_some() {
        report.updated.push(new.meta.id.clone());
    } else {
        report.added.push(new.meta.id.clone());
    }
    Ok(())
}

fn read_whole(lesson: &ScannedLesson, file: &ScannedFile) -> Result<Vec<u8>, ServiceError> {
    match &file.source {
        FileSource::Memory(bytes) => Ok(bytes.to_vec()),
        FileSource::Disk(path) => {
            let mut raw = Vec::with_capacity(usize::try_from(file.size).unwrap_or(0));
            std::fs::File::open(path)
                .and_then(|f| f.take(WHOLE_FILE_LIMIT + 1).read_to_end(&mut raw))
                .map_err(|e| io_error(path, e))?;
            if raw.len() as u64 != file.size {
                return Err(changed_while_reading(lesson, file));
            }
            Ok(raw)
        }
    }
}

fn changed_while_reading(lesson: &ScannedLesson, file: &ScannedFile) -> ServiceError {
    ServiceError::Lesson(Box::new(LessonError::new(
        &lesson.dir.join(&file.path),
        Some(&lesson.meta.id),
        "the file changed size while it was being read",
        "finish copying the lesson, then import it again",
    )))
}

/// Large files: hash in one pass, then (if new) store in chunks over several transactions.
fn stream_large(
    conn: &mut Connection,
    lesson: &ScannedLesson,
    file: &ScannedFile,
    report: &mut ImportReport,
) -> Result<FileEntry, ServiceError> {
    let FileSource::Disk(path) = &file.source else {
        return Err(ServiceError::Internal(format!("{} is too large to embed", file.path)));
    };
    let open = || std::fs::File::open(path).map_err(|e| io_error(path, e));
    let (hash, len) = store::hash_reader(open()?).map_err(|e| io_error(path, e))?;
    if len != file.size {
        return Err(changed_while_reading(lesson, file));
    }
    let mut head = vec![0; 4096];
    let n = open()?.read(&mut head).map_err(|e| io_error(path, e))?;
    let media = media_type(&file.path, &head[..n])
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    if !store::blob_exists(conn, hash)? {
        let mut reader = open()?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0; store::CHUNK_SIZE];
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut writer = BlobWriter::start(&tx, hash, len)?;
        tx.commit()?;
        let mut since_commit = 0usize;
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        loop {
            let n = read_full(&mut reader, &mut buf).map_err(|e| io_error(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer.write(&tx, &buf[..n])?;
            since_commit += n;
            if since_commit >= BATCH_BYTES {
                tx.commit()?;
                tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                since_commit = 0;
            }
        }
        if Hash(*hasher.finalize().as_bytes()) != hash {
            return Err(changed_while_reading(lesson, file));
        }
        writer.finish(&tx)?;
        tx.commit()?;
        report.blobs_written += 1;
        report.bytes_stored += len;
    }
    Ok(FileEntry {
        path: file.path.clone(),
        hash,
        size: len,
        media_type: media,
    })
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn commit_blobs(
    conn: &mut Connection,
    pending: &mut Vec<StoredBlob>,
    report: &mut ImportReport,
) -> Result<(), ServiceError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    write_pending(&tx, pending, report)?;
    tx.commit()?;
    pending.clear();
    Ok(())
}

fn write_pending(tx: &Connection, pending: &[StoredBlob], report: &mut ImportReport) -> Result<(), ServiceError> {
    for blob in pending {
        if store::write_blob(tx, blob)? {
            report.blobs_written += 1;
            report.bytes_stored += blob.variants.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        }
    }
    Ok(())
}
