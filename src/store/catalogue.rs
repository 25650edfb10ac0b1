//! The catalogue: which lessons are visible, their metadata, and the files (paths to blobs)
//! of each. A lesson is replaced by its new version in one transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::blobs::{BLOB_COLUMNS, BlobInfo, Hash, blob_from_row};
use super::search::IndexText;
use super::{Result, StoreError, now_secs};
use crate::lesson::LessonMeta;

/// Where a lesson came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Origin {
    /// Imported from a folder or uploaded by a teacher: unsigned.
    Local,
    /// One of the sample lessons built into dars.
    Sample,
    /// Signed by the publisher with this key id.
    Publisher(String),
}

impl Origin {
    pub fn as_db(&self) -> String {
        match self {
            Origin::Local => "local".to_owned(),
            Origin::Sample => "sample".to_owned(),
            Origin::Publisher(key) => format!("key:{key}"),
        }
    }

    fn from_db(text: &str) -> Self {
        match text {
            "sample" => Origin::Sample,
            other => other
                .strip_prefix("key:")
                .map_or(Origin::Local, |key| Origin::Publisher(key.to_owned())),
        }
    }
}

impl From<Origin> for String {
    fn from(origin: Origin) -> String {
        origin.as_db()
    }
}

/// One file of a lesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    pub path: String,
    #[serde(serialize_with = "hex")]
    pub hash: Hash,
    pub size: u64,
    pub media_type: String,
}

fn hex<S: serde::Serializer>(hash: &Hash, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hash.to_hex())
}

/// A lesson version ready to become visible: every blob it names must already be stored.
#[derive(Debug, Clone)]
pub struct NewLesson {
    pub meta: LessonMeta,
    pub origin: Origin,
    pub seq: i64,
    pub files: Vec<FileEntry>,
    /// The hash of the signed root's part this version came in (dars-manifest/2).
    pub part: Option<Hash>,
}

impl NewLesson {
    /// A digest of everything visible about this version: equal digests mean nothing changed.
    /// The sequence number is left out: a lesson a new package carries unchanged keeps its
    /// rows, and only its sequence number moves (`set_seq`).
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        let meta = serde_json::to_vec(&self.meta).unwrap_or_default();
        hasher.update(&meta);
        hasher.update(self.origin.as_db().as_bytes());
        let mut files: Vec<&FileEntry> = self.files.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for file in files {
            hasher.update(file.path.as_bytes());
            hasher.update(&[0]);
            hasher.update(&file.hash.0);
            hasher.update(file.media_type.as_bytes());
            hasher.update(&[0]);
        }
        *hasher.finalize().as_bytes()
    }
}

/// A visible lesson as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LessonRow {
    #[serde(flatten)]
    pub meta: LessonMeta,
    pub origin: Origin,
    pub seq: i64,
    pub size: u64,
    pub files: u64,
    pub imported_at: i64,
}

/// Filters for listing lessons; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct LessonFilter {
    pub language: Option<String>,
    pub grade: Option<u8>,
    pub subject: Option<String>,
}

/// A file found by lesson id and path, with its blob.
#[derive(Debug, Clone)]
pub struct FileHit {
    pub media_type: String,
    pub blob: BlobInfo,
}

/// The digest of the visible version of lesson `id`, if any.
pub fn current_digest(conn: &Connection, id: &str) -> Result<Option<[u8; 32]>> {
    let digest: Option<Vec<u8>> = conn
        .prepare_cached("SELECT digest FROM lessons WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(digest.and_then(|d| d.try_into().ok()))
}

/// Makes `lesson` the visible version of its id, replacing any older one. Call inside a
/// transaction, so readers see old or new, never a mix. An older version keeps its row and the
/// rows of its files that did not change: an update that edits a few files of a lesson
/// rewrites only their rows (and index entries), not the whole lesson's. Returns the contents
/// the older version used that this one does not (for `collect_garbage_after_import`).
pub fn replace_lesson(conn: &Connection, lesson: &NewLesson) -> Result<Vec<Hash>> {
    let (rowid, dropped) = replace_lesson_rows(conn, lesson)?;
    index_lesson(conn, rowid, lesson, None)?;
    Ok(dropped)
}

/// `replace_lesson` without the search index: the lesson's row and its files' rows. Returns
/// the lesson's rowid, for `index_lesson` in the same transaction, and the contents dropped.
///
/// An import of many lessons writes every lesson's rows first and indexes them after, in rowid
/// order. A statement that opens a savepoint (every insert into `files` does, for its
/// triggers) makes FTS5 write out what it holds as a new segment; indexing each lesson right
/// after its rows wrote one small segment per lesson, and merged them again and again.
pub fn replace_lesson_rows(conn: &Connection, lesson: &NewLesson) -> Result<(i64, Vec<Hash>)> {
    let meta = &lesson.meta;
    let total: u64 = lesson.files.iter().map(|f| f.size).sum();
    let existing: Option<i64> = conn
        .prepare_cached("SELECT rowid FROM lessons WHERE id = ?1")?
        .query_row([&meta.id], |r| r.get(0))
        .optional()?;
    let values = params![
        meta.id,
        meta.title,
        meta.language,
        meta.grade,
        meta.subject,
        meta.summary,
        meta.entry,
        meta.order,
        lesson.origin.as_db(),
        &lesson.digest()[..],
        total,
        now_secs(),
        lesson.part.map(|h| h.0.to_vec()),
    ];
    let rowid = match existing {
        Some(rowid) => {
            conn.prepare_cached(
                "UPDATE lessons SET title = ?2, language = ?3, grade = ?4, subject = ?5, summary = ?6, entry = ?7,
                 sort_order = ?8, origin = ?9, digest = ?10, total_size = ?11, imported_at = ?12,
                 part = ?13 WHERE rowid = ?14",
            )?
            .execute(rusqlite::params_from_iter(
                values.iter().copied().chain([&rowid as &dyn rusqlite::ToSql]),
            ))?;
            rowid
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO lessons (id, title, language, grade, subject, summary, entry, sort_order, origin, digest, total_size, imported_at, part)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(values)?;
            conn.last_insert_rowid()
        }
    };
    conn.prepare_cached(
        "INSERT INTO lesson_seqs (lesson, seq) VALUES (?1, ?2) ON CONFLICT (lesson) DO UPDATE SET seq = excluded.seq",
    )?
    .execute(params![rowid, lesson.seq])?;
    let mut old: std::collections::HashMap<String, (Vec<u8>, u64, String)> = conn
        .prepare_cached("SELECT path, hash, size, media_type FROM files WHERE lesson = ?1")?
        .query_map([rowid], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?
        .collect::<rusqlite::Result<_>>()?;
    let mut insert =
        conn.prepare_cached("INSERT INTO files (lesson, path, hash, size, media_type) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut update =
        conn.prepare_cached("UPDATE files SET hash = ?3, size = ?4, media_type = ?5 WHERE lesson = ?1 AND path = ?2")?;
    let mut dropped = Vec::new();
    for file in &lesson.files {
        let args = params![rowid, file.path, &file.hash.0[..], file.size, file.media_type];
        match old.remove(&file.path) {
            Some((hash, size, media)) if hash == file.hash.0 && size == file.size && media == file.media_type => {}
            Some((hash, _, _)) => {
                update.execute(args)?;
                if hash != file.hash.0 {
                    dropped.extend(<[u8; 32]>::try_from(hash).ok().map(Hash));
                }
            }
            None => {
                insert.execute(args)?;
            }
        }
    }
    let mut delete = conn.prepare_cached("DELETE FROM files WHERE lesson = ?1 AND path = ?2")?;
    for (path, (hash, _, _)) in old {
        delete.execute(params![rowid, path])?;
        dropped.extend(<[u8; 32]>::try_from(hash).ok().map(Hash));
    }
    Ok((rowid, dropped))
}

/// Indexes `lesson`, whose rows `replace_lesson_rows` wrote at `rowid`, for search: in the
/// same transaction, so search shows exactly the lessons that are visible.
pub fn index_lesson(conn: &Connection, rowid: i64, lesson: &NewLesson, text: Option<IndexText>) -> Result<()> {
    let meta = &lesson.meta;
    super::search::index_lesson(
        conn,
        rowid,
        &meta.title,
        &meta.summary,
        &meta.entry,
        &lesson.files,
        text,
    )
}

/// The part hashes of publisher `key`'s visible lessons: lesson id -> part.
pub fn lesson_parts(conn: &Connection, key: &str) -> Result<std::collections::HashMap<String, Hash>> {
    let origin = Origin::Publisher(key.to_owned());
    let mut stmt = conn.prepare_cached("SELECT id, part FROM lessons WHERE origin = ?1 AND part IS NOT NULL")?;
    let rows = stmt.query_map([origin.as_db()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        let (id, part) = row?;
        if let Ok(part) = <[u8; 32]>::try_from(part) {
            out.insert(id, Hash(part));
        }
    }
    Ok(out)
}

/// Keeps a lesson part exactly as received (a duplicate is success).
pub fn put_part(conn: &Connection, hash: Hash, data: &[u8]) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO lesson_parts (hash, data) VALUES (?1, ?2)")?
        .execute(params![&hash.0[..], data])?;
    Ok(())
}

/// A stored lesson part, as it travels (zstd of the lesson's JSON).
pub fn get_part(conn: &Connection, hash: Hash) -> Result<Vec<u8>> {
    conn.prepare_cached("SELECT data FROM lesson_parts WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// Forgets the parts among `hashes` that no lesson comes from any more.
pub fn prune_parts(conn: &Connection, hashes: &[Hash]) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM lesson_parts WHERE hash = ?1 AND NOT EXISTS (SELECT 1 FROM lessons WHERE part = ?1)",
    )?;
    let mut pruned = 0;
    for hash in hashes {
        pruned += stmt.execute([&hash.0[..]])?;
    }
    Ok(pruned)
}

/// The part lesson `id` came in, if it came in one.
pub fn part_of(conn: &Connection, id: &str) -> Result<Option<Hash>> {
    let part: Option<Option<Vec<u8>>> = conn
        .prepare_cached("SELECT part FROM lessons WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(part.flatten().and_then(|p| <[u8; 32]>::try_from(p).ok()).map(Hash))
}

/// Moves an unchanged lesson to a publisher's newer package (and manifest).
pub fn set_seq(conn: &Connection, id: &str, seq: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE lesson_seqs SET seq = ?2 WHERE lesson = (SELECT rowid FROM lessons WHERE id = ?1) AND seq != ?2",
        params![id, seq],
    )? > 0)
}

/// Removes lesson `id` (and, by trigger, its search entry; and its part once no lesson names
/// it); returns whether it existed.
pub fn remove_lesson(conn: &Connection, id: &str) -> Result<bool> {
    let part = part_of(conn, id)?;
    let removed = conn.execute("DELETE FROM lessons WHERE id = ?1", [id])? > 0;
    prune_parts(conn, &part.into_iter().collect::<Vec<_>>())?;
    Ok(removed)
}

/// Finds a file of a visible lesson, with its blob's metadata, in one query.
pub fn find_file(conn: &Connection, lesson_id: &str, path: &str) -> Result<Option<FileHit>> {
    let sql = format!(
        "SELECT f.media_type, {BLOB_COLUMNS}
         FROM lessons l JOIN files f ON f.lesson = l.rowid JOIN blobs b ON b.hash = f.hash
         WHERE l.id = ?1 AND f.path = ?2 AND b.complete = 1 AND {NOT_HIDDEN}"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([lesson_id, path], |row| {
            Ok(FileHit {
                media_type: row.get(0)?,
                blob: blob_from_row(row, 1)?,
            })
        })
        .optional()?)
}

pub(super) const LESSON_COLUMNS: &str =
    "l.id, l.title, l.language, l.grade, l.subject, l.summary, l.entry, l.sort_order,
     l.origin, (SELECT s.seq FROM lesson_seqs s WHERE s.lesson = l.rowid), l.total_size, (SELECT count(*) FROM files f WHERE f.lesson = l.rowid), l.imported_at";

pub(super) fn lesson_row(row: &Row<'_>) -> rusqlite::Result<LessonRow> {
    Ok(LessonRow {
        meta: LessonMeta {
            id: row.get(0)?,
            title: row.get(1)?,
            language: row.get(2)?,
            grade: row.get(3)?,
            subject: row.get(4)?,
            summary: row.get(5)?,
            entry: row.get(6)?,
            order: row.get(7)?,
        },
        origin: Origin::from_db(&row.get::<_, String>(8)?),
        seq: row.get(9)?,
        size: row.get(10)?,
        files: row.get(11)?,
        imported_at: row.get(12)?,
    })
}

/// A lesson the console has hidden is neither listed to phones nor served.
pub(super) const NOT_HIDDEN: &str = "NOT EXISTS (SELECT 1 FROM hidden_lessons h WHERE h.id = l.id)";

/// Lessons shown to phones matching `filter` (hidden ones left out), ordered by language,
/// grade, subject, order and title.
pub fn list_lessons(conn: &Connection, filter: &LessonFilter) -> Result<Vec<LessonRow>> {
    list_where(conn, filter, NOT_HIDDEN)
}

/// Every lesson in the store, hidden ones included (for the console).
pub fn list_all_lessons(conn: &Connection) -> Result<Vec<LessonRow>> {
    list_where(conn, &LessonFilter::default(), "1")
}

fn list_where(conn: &Connection, filter: &LessonFilter, condition: &str) -> Result<Vec<LessonRow>> {
    let sql = format!(
        "SELECT {LESSON_COLUMNS} FROM lessons l
         WHERE (?1 IS NULL OR l.language = ?1) AND (?2 IS NULL OR l.grade = ?2) AND (?3 IS NULL OR l.subject = ?3)
         AND {condition}
         ORDER BY l.language, l.grade, l.subject, l.sort_order, l.title, l.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![filter.language, filter.grade, filter.subject], lesson_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One visible lesson.
pub fn get_lesson(conn: &Connection, id: &str) -> Result<LessonRow> {
    let sql = format!("SELECT {LESSON_COLUMNS} FROM lessons l WHERE l.id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id], lesson_row)
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// The files of a visible lesson, by path.
pub fn files_of(conn: &Connection, id: &str) -> Result<Vec<FileEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.path, f.hash, f.size, f.media_type FROM files f JOIN lessons l ON f.lesson = l.rowid
         WHERE l.id = ?1 ORDER BY f.path",
    )?;
    let rows = stmt.query_map([id], |row| {
        let hash: Vec<u8> = row.get(1)?;
        Ok(FileEntry {
            path: row.get(0)?,
            hash: Hash(hash.try_into().unwrap_or([0; 32])),
            size: row.get(2)?,
            media_type: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The (lesson id, path) pairs whose content is blob `hash`, for naming what is corrupt.
pub fn files_using(conn: &Connection, hash: Hash) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.id, f.path FROM files f JOIN lessons l ON f.lesson = l.rowid WHERE f.hash = ?1 ORDER BY l.id, f.path",
    )?;
    let rows = stmt.query_map([&hash.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Number of visible lessons.
pub fn count_lessons(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT count(*) FROM lessons", [], |r| r.get(0))?)
}

/// Deletes blobs no lesson uses, once they are older than `grace_secs` (so a concurrent
/// import's blobs, stored but not yet committed to a lesson, are left alone). Returns how
/// many went.
pub fn collect_garbage(conn: &Connection, grace_secs: i64) -> Result<usize> {
    let gone = conn.execute(
        "DELETE FROM blobs WHERE added_at < ?1 AND refs = 0",
        [now_secs() - grace_secs],
    )?;
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![GC_AT_KEY, now_secs().to_string()])?;
    Ok(gone)
}

/// How many blobs count their users wrongly (`refs` against the files that name them): zero
/// unless the database was edited by hand; for `dars verify`.
pub fn miscounted_blobs(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM blobs b LEFT JOIN (SELECT hash, count(*) AS n FROM files GROUP BY hash) AS used
         ON used.hash = b.hash WHERE b.refs != coalesce(used.n, 0)",
        [],
        |r| r.get(0),
    )?)
}

const GC_AT_KEY: &str = "garbage_collected_at";
/// A whole-store collection (which reads every blob's row) runs at most this often after
/// imports; in between, an import collects only the blobs its own lessons stopped using.
const FULL_GC_EVERY_SECS: i64 = 24 * 3600;

/// After an import: the blobs among `dropped` (contents the import's lessons no longer use)
/// that no lesson uses, and once a day everything `collect_garbage` would take (blobs left
/// by an import that was cut off). An update of a few lessons thus reads only their rows.
pub fn collect_garbage_after_import(conn: &Connection, dropped: &[Hash], grace_secs: i64) -> Result<usize> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([GC_AT_KEY], |r| r.get::<_, String>(0))
        .optional()?
        .and_then(|v| v.parse().ok());
    if last.is_none_or(|at| now_secs() - at >= FULL_GC_EVERY_SECS) {
        return collect_garbage(conn, grace_secs);
    }
    let mut stmt = conn.prepare_cached("DELETE FROM blobs WHERE hash = ?1 AND added_at < ?2 AND refs = 0")?;
    let mut gone = 0;
    for hash in dropped {
        gone += stmt.execute(params![&hash.0[..], now_secs() - grace_secs])?;
    }
    Ok(gone)
}

/// A manifest text is stored as a delta against the publisher's previous one up to this
/// many deltas deep; the next is stored whole, so reading one never decodes a long chain.
const MAX_DEPTH: i64 = 32;

/// Keeps a publisher's signed manifest exactly as received (a duplicate is success). The
/// text is stored as zstd with the publisher's latest stored text as its dictionary: a new
/// sequence that changes a few lessons costs a few kilobytes, not the whole manifest.
pub fn put_manifest(
    conn: &Connection,
    key: &str,
    seq: u64,
    publisher: &str,
    manifest: &[u8],
    signature: &[u8],
) -> Result<()> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM manifests WHERE key = ?1 AND seq = ?2")?
        .exists(params![key, seq])?;
    if exists {
        return Ok(());
    }
    let latest: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT m.text, t.depth FROM manifests m JOIN manifest_texts t ON t.id = m.text
             WHERE m.key = ?1 ORDER BY m.seq DESC LIMIT 1",
        )?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let base = match latest {
        Some((id, depth)) if depth < MAX_DEPTH => Some((id, depth, manifest_text(conn, id)?)),
        _ => None,
    };
    let (base_id, depth, data) = match &base {
        Some((id, depth, text)) => (Some(*id), depth + 1, compress_manifest(manifest, Some(text))),
        None => (None, 0, compress_manifest(manifest, None)),
    };
    conn.prepare_cached("INSERT INTO manifest_texts (base, depth, data) VALUES (?1, ?2, ?3)")?
        .execute(params![base_id, depth, data])?;
    let text = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO manifests (key, seq, publisher, text, signature, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![key, seq, publisher, text, signature, now_secs()])?;
    Ok(())
}

/// A stored signed manifest: (manifest bytes exactly as signed, signature bytes).
pub fn get_manifest(conn: &Connection, key: &str, seq: u64) -> Result<(Vec<u8>, Vec<u8>)> {
    let (text, signature): (i64, Vec<u8>) = conn
        .prepare_cached("SELECT text, signature FROM manifests WHERE key = ?1 AND seq = ?2")?
        .query_row(params![key, seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    Ok((manifest_text(conn, text)?, signature))
}

/// The bytes of stored manifest text `id`, decoding its chain of deltas from the whole text
/// at its root.
fn manifest_text(conn: &Connection, id: i64) -> Result<Vec<u8>> {
    let mut chain = Vec::new();
    let mut next = Some(id);
    let mut stmt = conn.prepare_cached("SELECT base, data FROM manifest_texts WHERE id = ?1")?;
    while let Some(at) = next {
        let (base, data): (Option<i64>, Vec<u8>) = stmt
            .query_row([at], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("manifest text {at}"), "it is missing".to_owned()))?;
        chain.push((at, data));
        next = base;
        if chain.len() as i64 > MAX_DEPTH + 1 {
            return Err(StoreError::Corrupt(
                format!("manifest text {id}"),
                "its chain is too long".to_owned(),
            ));
        }
    }
    let mut text: Option<Vec<u8>> = None;
    for (at, data) in chain.into_iter().rev() {
        text = Some(
            expand_manifest(&data, text.as_deref())
                .map_err(|e| StoreError::Corrupt(format!("manifest text {at}"), e))?,
        );
    }
    text.ok_or(StoreError::NotFound)
}

/// zstd frames start with these bytes; a JSON manifest never does.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Manifests are compressed at this zstd level: they are small next to the blobs.
const MANIFEST_LEVEL: i32 = 9;

/// Manifests are large JSON (megabytes for a big package) and compress tenfold; against
/// the previous text of the same publisher (`base`, a raw zstd dictionary) a hundredfold.
/// The bytes come back exactly as signed.
fn compress_manifest(manifest: &[u8], base: Option<&[u8]>) -> Vec<u8> {
    let packed = match base {
        None => zstd::bulk::compress(manifest, MANIFEST_LEVEL),
        Some(base) => delta_compress(manifest, base),
    };
    packed.unwrap_or_else(|_| manifest.to_vec())
}

fn delta_compress(manifest: &[u8], base: &[u8]) -> std::io::Result<Vec<u8>> {
    use zstd::stream::raw::CParameter;
    let mut compressor = zstd::bulk::Compressor::with_dictionary(MANIFEST_LEVEL, base)?;
    // The window must reach back over the whole base, as for `zstd --patch-from`.
    compressor.set_parameter(CParameter::WindowLog(window_log(base.len() + manifest.len())))?;
    compressor.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
    compressor.compress(manifest)
}

/// The smallest zstd window (as a power of two) covering `len` bytes, within zstd's limits.
fn window_log(len: usize) -> u32 {
    (usize::BITS - len.max(1).leading_zeros()).clamp(20, 30)
}

fn expand_manifest(stored: &[u8], base: Option<&[u8]>) -> std::result::Result<Vec<u8>, String> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Ok(stored.to_vec());
    }
    let mut out = Vec::new();
    let result = match base {
        None => zstd::stream::read::Decoder::new(stored).and_then(|mut d| {
            d.window_log_max(30)?;
            std::io::Read::read_to_end(&mut d, &mut out)
        }),
        Some(base) => zstd::stream::read::Decoder::with_dictionary(stored, base).and_then(|mut d| {
            d.window_log_max(30)?;
            std::io::Read::read_to_end(&mut d, &mut out)
        }),
    };
    result.map_err(|e| format!("cannot decompress: {e}"))?;
    Ok(out)
}

/// The highest sequence number installed from publisher `key`.
pub fn latest_seq(conn: &Connection, key: &str) -> Result<Option<u64>> {
    Ok(conn
        .prepare_cached("SELECT max(seq) FROM manifests WHERE key = ?1")?
        .query_row([key], |r| r.get(0))?)
}

/// Every publisher's latest sequence number: (key, publisher text, seq).
pub fn publishers(conn: &Connection) -> Result<Vec<(String, String, u64)>> {
    let mut stmt = conn.prepare_cached("SELECT key, publisher, max(seq) FROM manifests GROUP BY key ORDER BY key")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Forgets manifests no visible lesson comes from any more, except each publisher's latest
/// (which still records the sequence number reached), and the stored texts that neither a
/// manifest nor a later text (as its delta base) needs.
pub fn prune_manifests(conn: &Connection) -> Result<usize> {
    let pruned = conn.execute(
        "DELETE FROM manifests WHERE seq < (SELECT max(m.seq) FROM manifests m WHERE m.key = manifests.key)
         AND NOT EXISTS (SELECT 1 FROM lessons l JOIN lesson_seqs s ON s.lesson = l.rowid
                         WHERE l.origin = 'key:' || manifests.key AND s.seq = manifests.seq)",
        [],
    )?;
    // Chains are forgotten from their newest unneeded text back to their root.
    while conn.execute(
        "DELETE FROM manifest_texts WHERE id NOT IN (SELECT text FROM manifests)
         AND id NOT IN (SELECT base FROM manifest_texts WHERE base IS NOT NULL)",
        [],
    )? > 0
    {}
    Ok(pruned)
}

/// The last result of a sync from `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncResult {
    pub url: String,
    pub finished_at: i64,
    pub ok: bool,
    pub message: String,
}

pub fn record_sync(conn: &Connection, url: &str, ok: bool, message: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_results (url, finished_at, ok, message) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (url) DO UPDATE SET finished_at = excluded.finished_at, ok = excluded.ok, message = excluded.message",
    )?
    .execute(params![url, now_secs(), ok, message])?;
    Ok(())
}

pub fn sync_results(conn: &Connection) -> Result<Vec<SyncResult>> {
    let mut stmt = conn.prepare_cached("SELECT url, finished_at, ok, message FROM sync_results ORDER BY url")?;
    let rows = stmt.query_map([], |r| {
        Ok(SyncResult {
            url: r.get(0)?,
            finished_at: r.get(1)?,
            ok: r.get(2)?,
            message: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many visible lessons there are, and their bytes, for one language, grade and subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shelf {
    pub language: String,
    pub grade: u8,
    pub subject: String,
    pub lessons: u64,
    pub size: u64,
}

/// Every (language, grade, subject) with lessons, in that order.
pub fn shelves(conn: &Connection) -> Result<Vec<Shelf>> {
    let mut stmt = conn.prepare_cached(
        "SELECT language, grade, subject, count(*), sum(total_size) FROM lessons
         GROUP BY language, grade, subject ORDER BY language, grade, subject",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(Shelf {
            language: row.get(0)?,
            grade: row.get(1)?,
            subject: row.get(2)?,
            lessons: row.get(3)?,
            size: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrate;
    use std::path::Path;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
        migrate(&mut conn, Path::new(":memory:")).expect("migrate");
        conn
    }

    /// A manifest-like JSON text of `lessons` entries, `changed` of them edited for version `v`.
    fn manifest(v: u64, lessons: usize, changed: usize) -> Vec<u8> {
        let mut text = format!("{{\"seq\":{v},\"lessons\":[");
        for i in 0..lessons {
            let version = if i < changed { v } else { 0 };
            let hash = blake3::hash(format!("{i}-{version}").as_bytes()).to_hex();
            text.push_str(&format!(
                "{{\"id\":\"lesson-{i}\",\"hash\":\"{hash}\",\"size\":{}}},",
                i * 7
            ));
        }
        text.push_str("{}]}");
        text.into_bytes()
    }

    fn stored_bytes(conn: &Connection) -> (i64, i64) {
        conn.query_row(
            "SELECT count(*), coalesce(sum(length(data)), 0) FROM manifest_texts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("texts")
    }

    #[test]
    fn manifests_are_stored_as_deltas_and_come_back_byte_for_byte() {
        let conn = db();
        let first = manifest(1, 2000, 2000);
        put_manifest(&conn, "k", 1, "pub", &first, b"sig1").expect("put 1");
        let (_, whole) = stored_bytes(&conn);
        let mut texts = vec![first];
        for seq in 2..=40 {
            let text = manifest(seq, 2000, 20);
            put_manifest(&conn, "k", seq, "pub", &text, format!("sig{seq}").as_bytes()).expect("put");
            texts.push(text);
        }
        let (count, total) = stored_bytes(&conn);
        assert_eq!(count, 40);
        // 39 deltas of 1 % of the lessons each, and one text stored whole again at depth 33
        assert!(
            total < whole * 2 + 39 * whole / 20,
            "{total} bytes stored for 40 manifests, {whole} for the first"
        );
        for (i, text) in texts.iter().enumerate() {
            let seq = i as u64 + 1;
            let (bytes, sig) = get_manifest(&conn, "k", seq).expect("get");
            assert!(bytes == *text, "manifest {seq} differs");
            assert_eq!(sig, format!("sig{seq}").into_bytes());
        }
        let depth: i64 = conn
            .query_row("SELECT max(depth) FROM manifest_texts", [], |r| r.get(0))
            .expect("depth");
        assert_eq!(depth, MAX_DEPTH);
        // A duplicate is success and stores nothing.
        put_manifest(&conn, "k", 40, "pub", &texts[39], b"sig40").expect("again");
        assert_eq!(stored_bytes(&conn).0, 40);
    }

    /// Blob rows (no bytes) for the contents `lesson_with` names: a file names a stored content.
    fn store_contents(conn: &Connection, ns: &[u8]) {
        for n in ns {
            conn.execute(
                "INSERT OR IGNORE INTO blobs (hash, size, storage, complete, added_at) VALUES (?1, ?2, 0, 1, 0)",
                params![&[*n; 32][..], n],
            )
            .expect("blob row");
        }
    }

    fn lesson_with(files: &[(&str, u8)]) -> NewLesson {
        NewLesson {
            meta: LessonMeta {
                id: "l".to_owned(),
                title: "T".to_owned(),
                language: "az".to_owned(),
                grade: 3,
                subject: "S".to_owned(),
                summary: String::new(),
                entry: "index.html".to_owned(),
                order: 0,
            },
            origin: Origin::Local,
            seq: 0,
            part: None,
            files: files
                .iter()
                .map(|(path, n)| FileEntry {
                    path: (*path).to_owned(),
                    hash: Hash([*n; 32]),
                    size: u64::from(*n),
                    media_type: "text/html".to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_new_version_rewrites_only_the_rows_of_files_that_changed() {
        let conn = db();
        store_contents(&conn, &[1, 2, 3, 4, 5, 9]);
        let v1 = lesson_with(&[("index.html", 1), ("a.css", 2), ("old.txt", 3), ("same.svg", 4)]);
        replace_lesson(&conn, &v1).expect("v1");
        let v2 = lesson_with(&[("index.html", 9), ("a.css", 2), ("new.txt", 5), ("same.svg", 4)]);
        // Temporary triggers note every write to `files` (the search index is written too,
        // so the connection's change count would not tell).
        conn.execute_batch(
            "CREATE TEMP TABLE writes (what TEXT, path TEXT);
             CREATE TEMP TRIGGER w_ins AFTER INSERT ON files BEGIN INSERT INTO writes VALUES ('insert', new.path); END;
             CREATE TEMP TRIGGER w_upd AFTER UPDATE ON files BEGIN INSERT INTO writes VALUES ('update', new.path); END;
             CREATE TEMP TRIGGER w_del AFTER DELETE ON files BEGIN INSERT INTO writes VALUES ('delete', old.path); END;",
        )
        .expect("triggers");
        replace_lesson(&conn, &v2).expect("v2");
        // One file updated, one deleted, one inserted; the two that did not change untouched.
        let writes: Vec<(String, String)> = conn
            .prepare("SELECT what, path FROM writes ORDER BY what, path")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        let writes: Vec<(&str, &str)> = writes.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            writes,
            [("delete", "old.txt"), ("insert", "new.txt"), ("update", "index.html")]
        );
        let files = files_of(&conn, "l").expect("files");
        let mut want = v2.files.clone();
        want.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(files, want);
        assert_eq!(current_digest(&conn, "l").expect("digest"), Some(v2.digest()));
        assert_eq!(count_lessons(&conn).expect("count"), 1);
    }

    #[test]
    fn a_part_is_kept_while_a_lesson_names_it_and_replacing_reports_the_dropped_contents() {
        let conn = db();
        store_contents(&conn, &[1, 2, 3]);
        let (p1, p2) = (Hash([7; 32]), Hash([8; 32]));
        put_part(&conn, p1, b"part one").expect("put");
        put_part(&conn, p1, b"part one").expect("a duplicate is success");
        put_part(&conn, p2, b"part two").expect("put");
        let mut v1 = lesson_with(&[("index.html", 1), ("a.css", 2)]);
        v1.origin = Origin::Publisher("k".to_owned());
        v1.part = Some(p1);
        assert!(replace_lesson(&conn, &v1).expect("v1").is_empty());
        assert_eq!(lesson_parts(&conn, "k").expect("parts"), [("l".to_owned(), p1)].into());
        assert!(lesson_parts(&conn, "other").expect("parts").is_empty());
        // Both parts are named or not: only the unnamed one goes.
        assert_eq!(prune_parts(&conn, &[p1, p2]).expect("prune"), 1);
        assert_eq!(get_part(&conn, p1).expect("kept"), b"part one");
        assert!(matches!(get_part(&conn, p2), Err(StoreError::NotFound)));
        // A new version names its contents that the old one used and it does not.
        let mut v2 = lesson_with(&[("index.html", 3)]);
        v2.origin = v1.origin.clone();
        v2.part = Some(p2);
        let mut dropped = replace_lesson(&conn, &v2).expect("v2");
        dropped.sort();
        assert_eq!(dropped, [Hash([1; 32]), Hash([2; 32])]);
        assert_eq!(part_of(&conn, "l").expect("part"), Some(p2));
        // Removing the lesson drops the part it named.
        put_part(&conn, p2, b"part two").expect("put");
        assert!(remove_lesson(&conn, "l").expect("remove"));
        assert!(matches!(get_part(&conn, p2), Err(StoreError::NotFound)));
    }

    #[test]
    fn after_an_import_only_the_dropped_contents_go_and_the_whole_sweep_runs_once_a_day() {
        let conn = db();
        let blob = |n: u8| {
            let blob = crate::store::prepare_blob(vec![n; 100 + usize::from(n)], false, 3).expect("blob");
            crate::store::write_blob(&conn, &blob).expect("write");
            blob.hash
        };
        let (a, b, c) = (blob(1), blob(2), blob(3));
        // None is used by a lesson, all are old enough; `c` is new (inside the grace).
        conn.execute("UPDATE blobs SET added_at = 0 WHERE hash != ?1", [&c.0[..]])
            .expect("age");
        let left = |conn: &Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
                .expect("n")
        };
        // Never swept: the first import sweeps everything old.
        assert_eq!(collect_garbage_after_import(&conn, &[], 3600).expect("gc"), 2);
        assert_eq!(left(&conn), 1);
        // Swept just now: only what the import dropped goes, and only once old enough.
        let (d, e) = (blob(4), blob(5));
        conn.execute("UPDATE blobs SET added_at = 0", []).expect("age");
        assert_eq!(collect_garbage_after_import(&conn, &[d], 3600).expect("gc"), 1);
        assert!(crate::store::blob_exists(&conn, e).expect("e") && crate::store::blob_exists(&conn, c).expect("c"));
        assert!(!crate::store::blob_exists(&conn, a).expect("a") && !crate::store::blob_exists(&conn, b).expect("b"));
        // A day later the next import sweeps the whole store again.
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = ?2",
            params![(now_secs() - 2 * 86_400).to_string(), GC_AT_KEY],
        )
        .expect("a day ago");
        assert_eq!(collect_garbage_after_import(&conn, &[], 3600).expect("gc"), 2);
        assert_eq!(left(&conn), 0);
    }

    #[test]
    fn a_content_counts_the_files_that_use_it_and_stays_while_one_does() {
        let conn = db();
        store_contents(&conn, &[1, 2, 3]);
        let refs = |n: u8| -> i64 {
            conn.query_row("SELECT refs FROM blobs WHERE hash = ?1", [&[n; 32][..]], |r| r.get(0))
                .expect("refs")
        };
        replace_lesson(&conn, &lesson_with(&[("x", 1), ("y", 2)])).expect("l");
        let mut other = lesson_with(&[("x", 1)]);
        other.meta.id = "m".to_owned();
        replace_lesson(&conn, &other).expect("m");
        assert_eq!((refs(1), refs(2), refs(3)), (2, 1, 0));
        // A changed file moves its count from the old content to the new one.
        replace_lesson(&conn, &lesson_with(&[("x", 3), ("y", 2)])).expect("l again");
        assert_eq!((refs(1), refs(2), refs(3)), (1, 1, 1));
        let err = conn
            .execute("DELETE FROM blobs WHERE hash = ?1", [&[1u8; 32][..]])
            .expect_err("a content in use is not deleted");
        assert!(err.to_string().contains("still used"), "{err}");
        // A lesson removed (its files go by cascade) releases its contents.
        assert!(remove_lesson(&conn, "m").expect("remove"));
        assert_eq!(refs(1), 0);
        assert_eq!(collect_garbage(&conn, 3600).expect("gc"), 1);
        assert!(!crate::store::blob_exists(&conn, Hash([1; 32])).expect("1"));
        assert_eq!(miscounted_blobs(&conn).expect("count"), 0);
        conn.execute("UPDATE blobs SET refs = 5 WHERE hash = ?1", [&[2u8; 32][..]])
            .expect("by hand");
        assert_eq!(miscounted_blobs(&conn).expect("count"), 1);
        // A file cannot name a content that is not stored.
        let err = replace_lesson(&conn, &lesson_with(&[("x", 7)])).expect_err("missing content");
        assert!(err.to_string().contains("not stored"), "{err}");
    }

    #[test]
    fn pruning_keeps_the_texts_a_kept_manifest_is_decoded_from() {
        let conn = db();
        for seq in 1..=5 {
            put_manifest(&conn, "k", seq, "pub", &manifest(seq, 300, 3), b"s").expect("put");
        }
        // No lesson comes from any of them: only the latest manifest stays, with its chain.
        prune_manifests(&conn).expect("prune");
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM manifests", [], |r| r.get(0))
            .expect("count");
        assert_eq!(kept, 1);
        assert_eq!(stored_bytes(&conn).0, 5, "seq 5 is a delta over the four before it");
        assert_eq!(get_manifest(&conn, "k", 5).expect("get").0, manifest(5, 300, 3));
        // A later text stored whole (after a chain of MAX_DEPTH) frees the old chain.
        conn.execute("UPDATE manifest_texts SET depth = ?1", [MAX_DEPTH])
            .expect("depth");
        put_manifest(&conn, "k", 6, "pub", &manifest(6, 300, 3), b"s").expect("put 6");
        prune_manifests(&conn).expect("prune");
        assert_eq!(stored_bytes(&conn).0, 1);
        assert_eq!(get_manifest(&conn, "k", 6).expect("get").0, manifest(6, 300, 3));
        assert!(matches!(get_manifest(&conn, "k", 5), Err(StoreError::NotFound)));
    }
}
