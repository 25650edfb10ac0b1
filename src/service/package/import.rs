//! Checking and importing a package: signatures first, then every blob's hash as it is read;
//! blobs already stored are skipped; all lessons of the package become visible in one
//! transaction, or none.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rusqlite::{Connection, TransactionBehavior};

use super::{PackageError, document_error, io_problem, read_file, read_index};
use crate::keys::{PublicKey, signature_from_text};
use crate::package::Index;
use crate::package::{
    Encoding, Manifest, ManifestFile, ManifestLesson, Root, Signed, blob_path, check_lesson, check_manifest,
    check_root, decode_part, dict_path, lesson_part_path, part_count, part_path,
};
use crate::service::{Progress, ServiceError};
use crate::store::{self, BlobWriter, FileEntry, Hash, IndexText, NewLesson, Origin, Storage, StoredBlob, Variant};

/// zstd blobs are decoded in memory; the publisher keeps text this small.
const MAX_TEXT: u64 = 64 * 1024 * 1024;
/// Blobs stored before their lessons commit are flushed in batches of this size.
const BATCH_BYTES: u64 = 32 * 1024 * 1024;
/// Blobs are read and checked in parallel groups of about this many raw bytes.
const GROUP_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct ImportPackageOptions {
    pub trusted: Vec<PublicKey>,
    pub allow_downgrade: bool,
}

/// What a verified package holds.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// (publisher fingerprint or "local", sequence, lessons carried)
    pub manifests: Vec<(String, u64, usize)>,
    pub lessons: usize,
    pub blobs_checked: u64,
    pub bytes_checked: u64,
}

#[derive(Debug, Default)]
pub struct PackageReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub blobs_written: u64,
    pub blobs_skipped: u64,
    pub bytes_read: u64,
    /// (publisher fingerprint or "local", sequence)
    pub manifests: Vec<(String, u64)>,
    /// Contents the updated lessons no longer use (for the garbage collection after it).
    pub dropped: Vec<Hash>,
    /// Contents no lesson uses any more, deleted in the import's transaction.
    pub collected: usize,
}

/// A manifest whose signature checked out, with the lessons to take from it.
pub(crate) struct Verified {
    origin: Origin,
    seq: u64,
    key: String,
    publisher: String,
    bytes: Vec<u8>,
    signature: Vec<u8>,
    dictionary: Option<Hash>,
    /// The lessons read in full: all of a whole manifest's, or a root's new or changed ones.
    lessons: Vec<ManifestLesson>,
    /// For lessons of a root: lesson id -> (part hash, the part file as it travels).
    parts: HashMap<String, (Hash, Vec<u8>)>,
    /// Lessons of a root whose part the store already has for that lesson: unchanged, so
    /// neither read nor written.
    kept: Vec<String>,
}

/// The parts a store holds for a publisher's lessons (lesson id -> part hash), so that an
/// update reads only the parts that changed. A check without a store knows none.
pub(crate) type KnownParts<'a> = dyn Fn(&str) -> HashMap<String, Hash> + 'a;

/// For `verify_manifests` without a store: every part is read.
pub(crate) fn no_parts(_: &str) -> HashMap<String, Hash> {
    HashMap::new()
}

/// The parts `conn` holds for publisher `key` (none if it cannot tell: then all are read).
pub(crate) fn stored_parts(conn: &Connection) -> impl Fn(&str) -> HashMap<String, Hash> + '_ {
    move |key| store::lesson_parts(conn, key).unwrap_or_default()
}

/// Reads a document of a package by its path inside the package (from a folder, or over HTTP).
pub(crate) type ReadDoc<'a> = dyn FnMut(&str) -> Result<Vec<u8>, PackageError> + 'a;

/// Reads and checks every manifest of the package: format, signature against `trusted`.
/// With `prefer_compressed` (over a network) a manifest's zstd copy is fetched instead of the
/// JSON; the signature is checked over the decompressed bytes either way.
pub(crate) fn verify_manifests(
    index: &Index,
    read: &mut ReadDoc<'_>,
    trusted: &[PublicKey],
    prefer_compressed: bool,
    known: &KnownParts<'_>,
) -> Result<Vec<Verified>, PackageError> {
    let mut out = Vec::new();
    for entry in &index.manifests {
        let bytes = match (&entry.compressed, prefer_compressed) {
            (Some(compressed), true) => {
                let packed = read(compressed)?;
                zstd::bulk::decompress(&packed, crate::package::MAX_MANIFEST).map_err(|e| {
                    PackageError::BadDocument {
                        file: compressed.clone(),
                        problem: format!("it does not decompress: {e}"),
                    }
                })?
            }
            _ => read(&entry.manifest)?,
        };
        let sig_text = read(&entry.signature)?;
        let manifest = Signed::parse(&bytes).map_err(|e| document_error(&entry.manifest, &e))?;
        let key = PublicKey::parse(manifest.publisher()).map_err(|e| PackageError::BadDocument {
            file: entry.manifest.clone(),
            problem: e.to_string(),
        })?;
        if !trusted.contains(&key) {
            return Err(PackageError::UnknownSigner {
                fingerprint: key.fingerprint(),
                key: key.to_text(),
            });
        }
        let signature =
            signature_from_text(&String::from_utf8_lossy(&sig_text)).map_err(|_| PackageError::BadSignature {
                manifest: entry.manifest.clone(),
            })?;
        if !key.verify(&bytes, &signature) {
            return Err(PackageError::BadSignature {
                manifest: entry.manifest.clone(),
            });
        }
        let bad = |problem| PackageError::BadDocument {
            file: entry.manifest.clone(),
            problem,
        };
        let fingerprint = key.fingerprint();
        let dictionary = manifest.dictionary().and_then(Hash::from_hex);
        let seq = manifest.seq();
        let (lessons, parts, kept) = match manifest {
            Signed::Whole(manifest) => {
                check_manifest(&manifest).map_err(bad)?;
                let wanted = entry.lessons.as_deref();
                let lessons = select(&manifest.lessons, |l| &l.id, wanted)?;
                (lessons, HashMap::new(), Vec::new())
            }
            Signed::Root(root) => {
                check_root(&root).map_err(bad)?;
                read_parts_of(&root, entry.lessons.as_deref(), read, &known(&fingerprint))?
            }
        };
        out.push(Verified {
            origin: Origin::Publisher(fingerprint.clone()),
            seq,
            key: fingerprint,
            publisher: key.to_text(),
            bytes,
            signature: sig_text,
            dictionary,
            lessons,
            parts,
            kept,
        });
    }
    if let Some(local) = &index.local {
        let bytes = read(local)?;
        let manifest = parse_manifest(local, &bytes)?;
        check_manifest(&manifest).map_err(|problem| PackageError::BadDocument {
            file: local.clone(),
            problem,
        })?;
        out.push(Verified {
            origin: Origin::Local,
            seq: 0,
            key: String::new(),
            publisher: "local".to_owned(),
            bytes: Vec::new(),
            signature: Vec::new(),
            dictionary: manifest.dictionary.as_deref().and_then(Hash::from_hex),
            lessons: manifest.lessons,
            parts: HashMap::new(),
            kept: Vec::new(),
        });
    }
    let mut seen = HashSet::new();
    for id in out
        .iter()
        .flat_map(|m| m.lessons.iter().map(|l| &l.id).chain(m.kept.iter()))
    {
        if !seen.insert(id.as_str()) {
            return Err(PackageError::LessonTwice(id.clone()));
        }
    }
    Ok(out)
}

/// The lessons of a root this package carries: parts the store already has for the same
/// lesson are kept unread; every other part is read, checked against its hash and parsed.
#[allow(clippy::type_complexity)]
fn read_parts_of(
    root: &Root,
    wanted: Option<&[String]>,
    read: &mut ReadDoc<'_>,
    known: &HashMap<String, Hash>,
) -> Result<(Vec<ManifestLesson>, HashMap<String, (Hash, Vec<u8>)>, Vec<String>), PackageError> {
    let mut lessons = Vec::new();
    let mut parts = HashMap::new();
    let mut kept = Vec::new();
    for entry in select(&root.lessons, |l| &l.id, wanted)? {
        let hash = entry.part().unwrap_or(Hash([0; 32]));
        if known.get(&entry.id) == Some(&hash) {
            kept.push(entry.id);
            continue;
        }
        let rel = lesson_part_path(hash);
        let file = read(&rel).map_err(|e| match e {
            PackageError::Unreadable { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                PackageError::MissingPart {
                    lesson: entry.id.clone(),
                    file: rel.clone(),
                }
            }
            other => other,
        })?;
        let damaged = |problem| PackageError::DamagedPart {
            lesson: entry.id.clone(),
            file: rel.clone(),
            problem,
        };
        let lesson = decode_part(&entry.id, hash, &file).map_err(damaged)?;
        check_lesson(&lesson).map_err(damaged)?;
        parts.insert(entry.id.clone(), (hash, file));
        lessons.push(lesson);
    }
    Ok((lessons, parts, kept))
}

fn parse_manifest(file: &str, bytes: &[u8]) -> Result<Manifest, PackageError> {
    serde_json::from_slice(bytes).map_err(|e| PackageError::BadDocument {
        file: file.to_owned(),
        problem: e.to_string(),
    })
}

fn select<T: Clone>(all: &[T], id: impl Fn(&T) -> &String, wanted: Option<&[String]>) -> Result<Vec<T>, PackageError> {
    let Some(wanted) = wanted else {
        return Ok(all.to_vec());
    };
    wanted
        .iter()
        .map(|want| {
            all.iter()
                .find(|l| id(l) == want)
                .cloned()
                .ok_or_else(|| PackageError::NotInManifest(want.clone()))
        })
        .collect()
}

/// Reads package documents, but a dictionary the store already has from the store (the same
/// bytes, by hash: `load_dictionaries` checks them again).
pub(crate) fn stored_first<'a>(
    conn: &'a Connection,
    read: &'a mut ReadDoc<'_>,
) -> impl FnMut(&str) -> Result<Vec<u8>, PackageError> + 'a {
    move |rel: &str| {
        if let Some(hash) = rel.strip_prefix("dict/").and_then(Hash::from_hex)
            && let Ok(Some(bytes)) = store::dictionary_by_hash(conn, hash)
        {
            return Ok(bytes);
        }
        read(rel)
    }
}

/// zstd dictionary id -> (hash, bytes).
pub(crate) type Dicts = HashMap<u32, (Hash, Vec<u8>)>;

/// Loads the dictionaries a package names.
pub(crate) fn load_dictionaries(manifests: &[Verified], read: &mut ReadDoc<'_>) -> Result<Dicts, PackageError> {
    let mut dicts = HashMap::new();
    for hash in manifests.iter().filter_map(|m| m.dictionary) {
        let rel = dict_path(hash);
        let bytes = read(&rel)?;
        if Hash::of(&bytes) != hash {
            return Err(PackageError::BadDocument {
                file: rel,
                problem: "the dictionary does not match its hash".to_owned(),
            });
        }
        let id = zstd::zstd_safe::get_dict_id(&bytes).map_or(0, |id| id.get());
        dicts.insert(id, (hash, bytes));
    }
    Ok(dicts)
}

/// The zstd dictionary id a frame names (0: none).
fn frame_dict_id(frame: &[u8]) -> u32 {
    zstd::zstd_safe::get_dict_id_from_frame(frame).map_or(0, |id| id.get())
}

/// Reads one blob of the package and checks it decodes to its hash. Text comes back ready
/// to store; large raw blobs are streamed into the store by `stream_raw` instead.
fn read_blob(
    root: &Path,
    lesson: &str,
    file: &ManifestFile,
    part_size: u64,
    dicts: &Dicts,
) -> Result<StoredBlob, PackageError> {
    let bytes = read_parts(root, lesson, file, part_size)?;
    decode_blob(lesson, file, bytes, dicts)
}

/// Checks that the bytes of a blob file decode to the manifest's hash, and makes them ready
/// to store: zstd kept as it came, raw as it is.
pub(crate) fn decode_blob(
    lesson: &str,
    file: &ManifestFile,
    bytes: Vec<u8>,
    dicts: &Dicts,
) -> Result<StoredBlob, PackageError> {
    let hash = file.hash().unwrap_or(Hash([0; 32]));
    let damaged = |problem: String| PackageError::DamagedBlob {
        lesson: lesson.to_owned(),
        path: file.path.clone(),
        file: blob_path(hash, None),
        problem,
    };
    match file.encoding {
        Encoding::Raw => {
            if Hash::of(&bytes) != hash || bytes.len() as u64 != file.size {
                return Err(damaged(format!(
                    "{} bytes that do not match the manifest's hash ({} bytes expected); it was altered, swapped or cut short",
                    bytes.len(),
                    file.size
                )));
            }
            Ok(StoredBlob {
                hash,
                size: file.size,
                storage: Storage::Raw,
                variants: vec![(Variant::Raw, bytes)],
                dict_id: 0,
            })
        }
        Encoding::Zstd => {
            if file.size > MAX_TEXT {
                return Err(damaged(format!(
                    "{} bytes of compressed text is more than this dars takes",
                    file.size
                )));
            }
            let dict_id = frame_dict_id(&bytes);
            let dict = match dict_id {
                0 => None,
                id => Some(dicts.get(&id).map(|(_, d)| d.as_slice()).ok_or_else(|| {
                    damaged(format!(
                        "it needs zstd dictionary {id}, which the package does not have"
                    ))
                })?),
            };
            let raw = store::decompress(&bytes, file.size, dict)
                .map_err(|e| damaged(format!("it does not decompress ({e}); it was altered or cut short")))?;
            if Hash::of(&raw) != hash {
                return Err(damaged(
                    "its content does not match the manifest's hash; it was altered or swapped".to_owned(),
                ));
            }
            // The gzip variant is made after the import, in the background (see
            // `Library::make_gzip_variants`): the import only reads, checks and stores.
            Ok(StoredBlob {
                hash,
                size: file.size,
                storage: Storage::Text,
                variants: vec![(Variant::Zstd, bytes)],
                dict_id,
            })
        }
    }
}

fn read_parts(root: &Path, lesson: &str, file: &ManifestFile, part_size: u64) -> Result<Vec<u8>, PackageError> {
    let hash = file.hash().unwrap_or(Hash([0; 32]));
    let parts = part_count(file.stored_size, part_size);
    let mut bytes = Vec::with_capacity(usize::try_from(file.stored_size.min(MAX_TEXT)).unwrap_or(0));
    for n in 0..parts {
        let (mut reader, path) = open_part(root, lesson, file, &part_path(hash, n, parts))?;
        reader.read_to_end(&mut bytes).map_err(|e| io_problem(root, path, e))?;
    }
    Ok(bytes)
}

/// Opens one part file of a blob, telling a missing blob from a stick that was pulled out.
fn open_part(
    root: &Path,
    lesson: &str,
    file: &ManifestFile,
    rel: &str,
) -> Result<(std::fs::File, PathBuf), PackageError> {
    let path = root.join(rel);
    match std::fs::File::open(&path) {
        Ok(f) => Ok((f, path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && root.join(crate::package::INDEX_FILE).exists() => {
            Err(PackageError::MissingBlob {
                lesson: lesson.to_owned(),
                path: file.path.clone(),
                file: rel.to_owned(),
            })
        }
        Err(e) => Err(io_problem(root, path, e)),
    }
}

/// Large raw blobs go straight into the store chunk by chunk, hashed on the way; the blob
/// stays incomplete (invisible) unless the hash matches.
fn stream_raw(
    conn: &mut Connection,
    root: &Path,
    lesson: &str,
    file: &ManifestFile,
    part_size: u64,
    after_commit: &dyn Fn(),
) -> Result<(), ServiceError> {
    let hash = file.hash().unwrap_or(Hash([0; 32]));
    let parts = part_count(file.stored_size, part_size);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut writer = BlobWriter::start(&tx, hash, file.size)?;
    tx.commit()?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0; store::CHUNK_SIZE];
    let mut since_commit = 0u64;
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for n in 0..parts {
        let rel = part_path(hash, n, parts);
        let (mut reader, path) = open_part(root, lesson, file, &rel)?;
        loop {
            let n = reader.read(&mut buf).map_err(|e| io_problem(root, path.clone(), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer.write(&tx, &buf[..n])?;
            since_commit += n as u64;
            if since_commit >= BATCH_BYTES {
                tx.commit()?;
                after_commit();
                tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                since_commit = 0;
            }
        }
    }
    if Hash(*hasher.finalize().as_bytes()) != hash {
        return Err(PackageError::DamagedBlob {
            lesson: lesson.to_owned(),
            path: file.path.clone(),
            file: blob_path(hash, None),
            problem: "its content does not match the manifest's hash; it was altered, swapped or cut short".to_owned(),
        }
        .into());
    }
    writer.finish(&tx).map_err(|e| match e {
        store::StoreError::Corrupt(_, problem) => PackageError::DamagedBlob {
            lesson: lesson.to_owned(),
            path: file.path.clone(),
            file: blob_path(hash, None),
            problem,
        }
        .into(),
        other => ServiceError::from(other),
    })?;
    tx.commit()?;
    Ok(())
}

/// Verifies a package without a store: signatures, then every blob decoded and hashed.
pub fn check_package(root: &Path, trusted: &[PublicKey], progress: &Progress) -> Result<CheckReport, ServiceError> {
    let index = read_index(root)?;
    let mut read = |rel: &str| read_file(root, rel);
    let manifests = verify_manifests(&index, &mut read, trusted, false, &no_parts)?;
    // The compressed copy a network sync fetches must be the same manifest.
    for entry in &index.manifests {
        if let Some(compressed) = &entry.compressed {
            let same = zstd::bulk::decompress(&read(compressed)?, crate::package::MAX_MANIFEST)
                .is_ok_and(|bytes| read(&entry.manifest).is_ok_and(|json| json == bytes));
            if !same {
                return Err(PackageError::BadDocument {
                    file: compressed.clone(),
                    problem: format!("it is not a copy of {}", entry.manifest),
                }
                .into());
            }
        }
    }
    let dicts = load_dictionaries(&manifests, &mut read)?;
    let mut report = CheckReport::default();
    let files: Vec<(&str, &ManifestFile)> = manifests
        .iter()
        .flat_map(|m| {
            m.lessons
                .iter()
                .flat_map(|l| l.files.iter().map(move |f| (l.id.as_str(), f)))
        })
        .collect();
    progress.set_totals(files.len() as u64, files.iter().map(|(_, f)| f.stored_size).sum());
    let mut seen = HashSet::new();
    for (lesson, file) in files {
        if seen.insert(&file.hash) {
            if file.encoding == Encoding::Raw && file.size > MAX_TEXT {
                check_large_raw(root, lesson, file, index.part_size)?;
            } else {
                read_blob(root, lesson, file, index.part_size, &dicts)?;
            }
            report.blobs_checked += 1;
            report.bytes_checked += file.stored_size;
        }
        progress.add_bytes(file.stored_size);
        progress.item_done();
    }
    for m in &manifests {
        report.manifests.push((
            if m.key.is_empty() {
                "local".to_owned()
            } else {
                m.key.clone()
            },
            m.seq,
            m.lessons.len(),
        ));
        report.lessons += m.lessons.len();
    }
    Ok(report)
}

fn check_large_raw(root: &Path, lesson: &str, file: &ManifestFile, part_size: u64) -> Result<(), PackageError> {
    let hash = file.hash().unwrap_or(Hash([0; 32]));
    let parts = part_count(file.stored_size, part_size);
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    for n in 0..parts {
        let rel = part_path(hash, n, parts);
        let (reader, path) = open_part(root, lesson, file, &rel)?;
        let (_, n) = hash_into(&mut hasher, reader).map_err(|e| io_problem(root, path.clone(), e))?;
        len += n;
    }
    if len != file.size || Hash(*hasher.finalize().as_bytes()) != hash {
        return Err(PackageError::DamagedBlob {
            lesson: lesson.to_owned(),
            path: file.path.clone(),
            file: blob_path(hash, None),
            problem: format!(
                "{len} bytes that do not match the manifest's hash ({} bytes expected)",
                file.size
            ),
        });
    }
    Ok(())
}

fn hash_into(hasher: &mut blake3::Hasher, mut reader: impl Read) -> std::io::Result<((), u64)> {
    let mut buf = vec![0; 256 * 1024];
    let mut len = 0;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(((), len));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// Imports a package into the store: nothing changes unless every signature, every blob and
/// the final transaction succeed.
pub fn import_package(
    conn: &mut Connection,
    root: &Path,
    opts: &ImportPackageOptions,
    progress: &Progress,
) -> Result<PackageReport, ServiceError> {
    // The store is read at random from here on (see `store::RandomReads`).
    let _reads = store::RandomReads::start(conn);
    let index = read_index(root)?;
    let mut read = |rel: &str| read_file(root, rel);
    let manifests = verify_manifests(&index, &mut read, &opts.trusted, false, &stored_parts(conn))?;
    check_sequences(conn, &manifests, opts.allow_downgrade)?;
    let mut report = PackageReport::default();
    let needed = needed_blobs(conn, &manifests, &mut report)?;
    // An update whose new contents are all media (or none) needs no dictionary.
    let dicts = if needed.iter().any(|(_, f)| f.encoding == Encoding::Zstd) {
        load_dictionaries(&manifests, &mut stored_first(conn, &mut read))?
    } else {
        Dicts::new()
    };
    progress.set_totals(needed.len() as u64, needed.iter().map(|(_, f)| f.stored_size).sum());

    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = store_blobs(conn, root, &needed, index.part_size, &dicts, progress, &mut report)
        .and_then(|mut last| commit(conn, &manifests, &dicts, &mut last, &mut report));
    conn.pragma_update(None, "synchronous", "FULL")?;
    result?;
    Ok(report)
}

/// For an import of more than one batch: checkpoints on a thread of their own while the blobs
/// are stored (the writer's automatic ones are off meanwhile). None for an update of a few
/// contents, or when the thread cannot start: the writer then checkpoints as usual.
fn background_checkpoints(conn: &Connection, needed: &[(&str, &ManifestFile)]) -> Option<store::Checkpointer> {
    if needed.iter().map(|(_, f)| f.stored_size).sum::<u64>() < BATCH_BYTES {
        return None;
    }
    let checkpointer = store::Checkpointer::start(Path::new(store::file_of(conn)?))
        .inspect_err(|e| tracing::warn!("checkpoints stay on the import's thread: {e}"))
        .ok()?;
    conn.pragma_update(None, "wal_autocheckpoint", 0).ok()?;
    Some(checkpointer)
}

/// Refuses a package older than what is installed from the same publisher.
pub(crate) fn check_sequences(
    conn: &Connection,
    manifests: &[Verified],
    allow_downgrade: bool,
) -> Result<(), ServiceError> {
    for m in manifests.iter().filter(|m| !m.key.is_empty()) {
        if let Some(installed) = store::latest_seq(conn, &m.key)?
            && m.seq < installed
            && !allow_downgrade
        {
            return Err(PackageError::Downgrade {
                fingerprint: m.key.clone(),
                installed,
                offered: m.seq,
            }
            .into());
        }
        // One (publisher, sequence) names one manifest: the same number for other content
        // would make what this centre serves differ from what it exports and mirrors.
        match store::get_manifest(conn, &m.key, m.seq) {
            Ok((bytes, _)) if bytes != m.bytes && !same_content(&bytes, &m.bytes) => {
                return Err(PackageError::SequenceReused {
                    fingerprint: m.key.clone(),
                    seq: m.seq,
                }
                .into());
            }
            Ok(_) | Err(store::StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Unsigned lessons never replace a trusted publisher's lesson of the same id.
    for m in manifests.iter().filter(|m| m.key.is_empty()) {
        for lesson in &m.lessons {
            if let Ok(row) = store::get_lesson(conn, &lesson.id)
                && let Origin::Publisher(fingerprint) = row.origin
            {
                return Err(PackageError::LocalOverSigned {
                    lesson: lesson.id.clone(),
                    fingerprint,
                }
                .into());
            }
        }
    }
    Ok(())
}

/// Whether two manifests describe the same lessons (they may differ in creation time).
fn same_content(a: &[u8], b: &[u8]) -> bool {
    match (Signed::parse(a), Signed::parse(b)) {
        (Ok(a), Ok(b)) => a.same_content(&b),
        _ => false,
    }
}

/// The contents the store lacks, once each, with a lesson that uses them (for messages).
pub(crate) fn needed_blobs<'m>(
    conn: &Connection,
    manifests: &'m [Verified],
    report: &mut PackageReport,
) -> Result<Vec<(&'m str, &'m ManifestFile)>, ServiceError> {
    let mut needed = Vec::new();
    let mut seen = HashSet::new();
    for m in manifests {
        for lesson in &m.lessons {
            // The contents the visible version of this lesson uses are stored: one read of its
            // file rows instead of a lookup per content (each a random page of the blobs index).
            let current: HashSet<Hash> = store::files_of(conn, &lesson.id)?.into_iter().map(|f| f.hash).collect();
            for file in &lesson.files {
                let hash = file.hash().unwrap_or(Hash([0; 32]));
                if !seen.insert(hash) {
                    continue;
                }
                if current.contains(&hash) || store::blob_exists(conn, hash)? {
                    report.blobs_skipped += 1;
                } else {
                    needed.push((lesson.id.as_str(), file));
                }
            }
        }
    }
    Ok(needed)
}

/// One step of the import pipeline, from the readers to the writer.
enum Step {
    /// Blobs read and checked, with their sizes in the package.
    Checked(Vec<(StoredBlob, u64)>),
    /// A large raw blob that the writer streams into the store itself.
    Large(usize),
}

/// Stores the blobs the store lacks. Two stages overlap: reader threads (rayon, every core)
/// read groups of blobs, decode and hash them; this thread writes each checked group into
/// SQLite while the next group is being read. A bounded channel keeps memory flat. The last
/// batch (all of a small update) is returned for `commit` to write in its own transaction:
/// a page its blobs share with the lessons' rows is then written once. For a big import a
/// third thread copies the log into the database after each batch (`background_checkpoints`).
fn store_blobs(
    conn: &mut Connection,
    root: &Path,
    needed: &[(&str, &ManifestFile)],
    part_size: u64,
    dicts: &Dicts,
    progress: &Progress,
    report: &mut PackageReport,
) -> Result<Vec<StoredBlob>, ServiceError> {
    let checkpointer = background_checkpoints(conn, needed);
    let after_commit = || {
        if let Some(c) = &checkpointer {
            c.nudge();
        }
    };
    let flush = |conn: &mut Connection, batch: &mut Vec<StoredBlob>| {
        flush(conn, batch, dicts)?;
        after_commit();
        Ok::<_, ServiceError>(())
    };
    let is_large = |file: &ManifestFile| file.encoding == Encoding::Raw && file.size > MAX_TEXT;
    let stored = std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<Step, PackageError>>(2);
        scope.spawn(move || {
            let mut index = 0;
            while index < needed.len() {
                if is_large(needed[index].1) {
                    if sender.send(Ok(Step::Large(index))).is_err() {
                        return;
                    }
                    index += 1;
                    continue;
                }
                let mut end = index;
                let mut group_bytes = 0u64;
                while end < needed.len()
                    && !is_large(needed[end].1)
                    && (end == index || group_bytes + needed[end].1.size <= GROUP_BYTES)
                {
                    group_bytes += needed[end].1.size;
                    end += 1;
                }
                let group = &needed[index..end];
                progress.set_current(group[0].0);
                let checked = group
                    .par_iter()
                    .map(|(lesson, file)| {
                        read_blob(root, lesson, file, part_size, dicts).map(|blob| (blob, file.stored_size))
                    })
                    .collect::<Result<Vec<_>, PackageError>>();
                let failed = checked.is_err();
                // The writer has stopped (an error) when the channel is closed.
                if sender.send(checked.map(Step::Checked)).is_err() || failed {
                    return;
                }
                index = end;
            }
        });
        let mut batch: Vec<StoredBlob> = Vec::new();
        let mut batch_bytes = 0u64;
        for step in receiver {
            match step? {
                Step::Large(index) => {
                    let (lesson, file) = needed[index];
                    flush(conn, &mut batch)?;
                    batch_bytes = 0;
                    progress.set_current(lesson);
                    stream_raw(conn, root, lesson, file, part_size, &after_commit)?;
                    report.blobs_written += 1;
                    report.bytes_read += file.stored_size;
                    progress.add_bytes(file.stored_size);
                    progress.item_done();
                }
                Step::Checked(blobs) => {
                    for (blob, stored_size) in blobs {
                        batch_bytes += blob.variants.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
                        batch.push(blob);
                        report.blobs_written += 1;
                        report.bytes_read += stored_size;
                        progress.add_bytes(stored_size);
                        progress.item_done();
                    }
                    if batch_bytes >= BATCH_BYTES {
                        flush(conn, &mut batch)?;
                        batch_bytes = 0;
                    }
                }
            }
        }
        Ok(batch)
    });
    if checkpointer.is_some() {
        drop(checkpointer);
        conn.pragma_update(None, "wal_autocheckpoint", store::AUTOCHECKPOINT_PAGES)?;
    }
    stored
}

pub(crate) fn flush(
    conn: &mut Connection,
    batch: &mut Vec<StoredBlob>,
    dicts: &HashMap<u32, (Hash, Vec<u8>)>,
) -> Result<(), ServiceError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut dicts_put = HashSet::new();
    for blob in batch.iter() {
        // Its dictionary first (once a batch: binding it copies all its bytes).
        if blob.dict_id != 0
            && dicts_put.insert(blob.dict_id)
            && let Some((hash, bytes)) = dicts.get(&blob.dict_id)
        {
            store::put_dictionary(&tx, blob.dict_id, *hash, bytes)?;
        }
        store::write_blob(&tx, blob)?;
    }
    tx.commit()?;
    batch.clear();
    Ok(())
}

/// The one transaction that makes every lesson of the package visible: it also stores `last`
/// (the blobs not flushed yet) and collects the contents the lessons stopped using.
pub(crate) fn commit(
    conn: &mut Connection,
    manifests: &[Verified],
    dicts: &Dicts,
    last: &mut Vec<StoredBlob>,
    report: &mut PackageReport,
) -> Result<(), ServiceError> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Only the lessons the transaction will replace need a text: an export or a peer carries
    // every local lesson in full, most of them unchanged. (Read before the transaction, as a
    // hint: the transaction decides again, and reads any text it was not given.)
    let mut lessons = Vec::new();
    for m in manifests {
        for lesson in &m.lessons {
            if !stored_as_is(conn, &new_lesson(m, lesson))? {
                lessons.push(lesson);
            }
        }
    }
    let readers = store::file_of(conn)
        .filter(|_| lessons.len() >= PARALLEL_TEXT_MIN)
        .map(PathBuf::from);
    if readers.is_some() {
        // The other connections see only committed blobs.
        flush(conn, last, dicts)?;
    }
    std::thread::scope(|scope| {
        let mut texts = LessonTexts::start(scope, readers.as_deref(), &lessons);
        write_lessons(conn, manifests, dicts, last, report, &mut texts)
    })
}

/// `commit`'s transaction, given the lessons' search texts as they come.
fn write_lessons(
    conn: &mut Connection,
    manifests: &[Verified],
    dicts: &Dicts,
    last: &mut Vec<StoredBlob>,
    report: &mut PackageReport,
    texts: &mut LessonTexts<'_>,
) -> Result<(), ServiceError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (id, (hash, bytes)) in dicts {
        store::put_dictionary(&tx, *id, *hash, bytes)?;
    }
    for blob in last.iter() {
        store::write_blob(&tx, blob)?;
    }
    let mut stale_parts = Vec::new();
    let mut to_index = Vec::new();
    for m in manifests {
        if !m.key.is_empty() {
            store::put_manifest(&tx, &m.key, m.seq, &m.publisher, &m.bytes, &m.signature)?;
        }
        report.manifests.push((
            if m.key.is_empty() {
                "local".to_owned()
            } else {
                m.key.clone()
            },
            m.seq,
        ));
        let seq = i64::try_from(m.seq).unwrap_or(i64::MAX);
        for (hash, file) in m.parts.values() {
            store::put_part(&tx, *hash, file)?;
        }
        for id in &m.kept {
            store::set_seq(&tx, id, seq)?;
            report.unchanged.push(id.clone());
        }
        for lesson in &m.lessons {
            let new = new_lesson(m, lesson);
            let part = new.part;
            let before = store::current_digest(&tx, &lesson.id)?;
            let old_part = store::part_of(&tx, &lesson.id)?;
            let same = before == Some(new.digest());
            if same && old_part == part {
                store::set_seq(&tx, &lesson.id, new.seq)?;
                report.unchanged.push(lesson.id.clone());
                continue;
            }
            let (rowid, dropped) = store::replace_lesson_rows(&tx, &new)?;
            report.dropped.extend(dropped);
            to_index.push((rowid, new));
            if let Some(old) = old_part.filter(|old| Some(*old) != part) {
                stale_parts.push(old);
            }
            if same {
                // Same lesson, now also known by its part: not an update a user would see.
                report.unchanged.push(lesson.id.clone());
                continue;
            }
            if before.is_some() {
                report.updated.push(lesson.id.clone());
            } else {
                report.added.push(lesson.id.clone());
            }
        }
    }
    // Indexed after every lesson's rows, in rowid order, so FTS5 writes its segments only
    // when it holds enough (see `store::replace_lesson_rows`).
    to_index.sort_by_key(|(rowid, _)| *rowid);
    for (rowid, new) in &to_index {
        let text = texts.take(&new.meta.id);
        store::index_lesson(&tx, *rowid, new, text)?;
    }
    store::prune_parts(&tx, &stale_parts)?;
    store::prune_manifests(&tx)?;
    report.collected = store::collect_garbage_after_import(&tx, &report.dropped, 3600)?;
    store::settle_index(&tx, report.added.len() + report.updated.len())?;
    tx.commit()?;
    last.clear();
    Ok(())
}

/// The lesson as the store will hold it, from manifest `m`.
fn new_lesson(m: &Verified, lesson: &ManifestLesson) -> NewLesson {
    NewLesson {
        meta: lesson.meta(),
        origin: m.origin.clone(),
        seq: i64::try_from(m.seq).unwrap_or(i64::MAX),
        part: m.parts.get(&lesson.id).map(|(hash, _)| *hash),
        files: file_entries(lesson),
    }
}

/// Whether the store's visible version of the lesson is `new` already, part and all: the
/// import then only moves its sequence.
fn stored_as_is(conn: &Connection, new: &NewLesson) -> Result<bool, ServiceError> {
    Ok(store::current_digest(conn, &new.meta.id)? == Some(new.digest())
        && store::part_of(conn, &new.meta.id)? == new.part)
}

fn file_entries(lesson: &ManifestLesson) -> Vec<FileEntry> {
    lesson
        .files
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            hash: f.hash().unwrap_or(Hash([0; 32])),
            size: f.size,
            media_type: f.media_type.clone(),
        })
        .collect()
}

/// From this many lessons to index on, `commit` extracts their search text on other threads
/// while its transaction inserts the lessons: one after another inside it, that was a quarter
/// of a big import.
const PARALLEL_TEXT_MIN: usize = 16;

/// The search texts of a big import's lessons, extracted in lesson order by threads with
/// read-only connections of their own while the writer inserts the lessons: it takes each
/// text when it reaches that lesson. Empty for a small update (each lesson then reads its own
/// text inside the transaction, so its last blobs can stay in that one transaction).
struct LessonTexts<'m> {
    ready: HashMap<&'m str, IndexText>,
    incoming: Option<std::sync::mpsc::Receiver<(&'m str, IndexText)>>,
}

impl<'m> LessonTexts<'m> {
    /// Starts one extracting thread per core on the store file at `store`, if given.
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        store: Option<&'scope Path>,
        lessons: &'scope [&'m ManifestLesson],
    ) -> Self
    where
        'm: 'scope,
    {
        let Some(path) = store else {
            return LessonTexts {
                ready: HashMap::new(),
                incoming: None,
            };
        };
        let (sender, incoming) = std::sync::mpsc::channel();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        for _ in 0..threads {
            let (sender, next) = (sender.clone(), next.clone());
            scope.spawn(move || {
                let reader = match store::open_reader(path) {
                    Ok(reader) => reader,
                    Err(e) => return tracing::warn!("search text is read inside the import's transaction: {e}"),
                };
                loop {
                    let Some(lesson) = lessons.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) else {
                        return;
                    };
                    let text = store::lesson_text(&reader, &lesson.entry, &file_entries(lesson));
                    let text = IndexText::of(&text);
                    // The writer has stopped (an error) when the channel is closed.
                    if sender.send((lesson.id.as_str(), text)).is_err() {
                        return;
                    }
                }
            });
        }
        LessonTexts {
            ready: HashMap::new(),
            incoming: Some(incoming),
        }
    }

    /// The text of lesson `id`, waiting for it if it is being extracted. None when no thread
    /// extracted it: the lesson's own transaction then reads it.
    fn take(&mut self, id: &str) -> Option<IndexText> {
        if let Some(text) = self.ready.remove(id) {
            return Some(text);
        }
        for (got, text) in self.incoming.as_ref()? {
            if got == id {
                return Some(text);
            }
            self.ready.insert(got, text);
        }
        None
    }
}

impl From<PackageError> for ServiceError {
    fn from(e: PackageError) -> Self {
        ServiceError::Package(Box::new(e))
    }
}
