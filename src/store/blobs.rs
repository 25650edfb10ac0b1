//! Content-addressed blobs: hashing, compression into stored variants, chunked writes and
//! ranged reads, and verification.

use std::cell::RefCell;
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::rc::Rc;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, StoreError, now_secs};

/// The size of one stored chunk: a Range request reads whole chunks and no more.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// A chunk's row id is `(blob id << 24) | (variant << 22) | idx` (schema migration 12): a blob's
/// chunks are one range of rows, its variants side by side.
const IDX_BITS: u32 = 22;
const BLOB_SHIFT: u32 = 24;

/// The row id of chunk `idx` of `variant` of blob `blob`.
fn chunk_key(blob: i64, variant: Variant, idx: usize) -> i64 {
    (blob << BLOB_SHIFT) | ((variant as i64) << IDX_BITS) | i64::try_from(idx).unwrap_or(0)
}

/// The chunks of one variant of a blob, by its hash: `?1` hash, `?2` variant, `?3`..`?4` the
/// first and last chunk index; yields (idx, data) in order.
const VARIANT_CHUNKS: &str = "SELECT c.id & 4194303, c.data FROM blobs b JOIN chunks c
     ON c.id BETWEEN (b.id << 24) | (?2 << 22) | ?3 AND (b.id << 24) | (?2 << 22) | ?4
     WHERE b.hash = ?1 ORDER BY c.id";

/// The last chunk index a variant can have.
const LAST_IDX: i64 = (1 << IDX_BITS) - 1;

/// BLAKE3 hash of a file's raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub fn of(bytes: &[u8]) -> Self {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        blake3::Hash::from_hex(text).ok().map(|h| Hash(*h.as_bytes()))
    }

    /// A short form for ETags and log lines (128 bits is plenty to tell versions apart).
    pub fn short(self) -> String {
        self.to_hex()[..32].to_owned()
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

/// How a blob is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Media and anything that does not compress: the raw bytes, served as they are.
    Raw = 0,
    /// Text: a zstd variant (also the source of identity responses) and a gzip variant.
    Text = 1,
}

/// One stored form of a blob's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    Raw = 0,
    Zstd = 1,
    Gzip = 2,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Raw => "identity",
            Variant::Zstd => "zstd",
            Variant::Gzip => "gzip",
        }
    }

    fn from_i64(v: i64) -> Option<Self> {
        match v {
            0 => Some(Variant::Raw),
            1 => Some(Variant::Zstd),
            2 => Some(Variant::Gzip),
            _ => None,
        }
    }
}

/// What the store knows of a complete blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: Hash,
    pub size: u64,
    pub storage: Storage,
    pub zstd_size: u64,
    pub gzip_size: u64,
    /// The zstd dictionary the zstd variant needs (0: none). Such a variant is never sent
    /// as `Content-Encoding: zstd`, since clients do not have the dictionary.
    pub dict_id: u32,
}

/// The columns `blob_from_row` reads, for queries that join `blobs b`.
pub(crate) const BLOB_COLUMNS: &str =
    "b.hash, b.size, b.storage, coalesce(b.zstd_size, 0), coalesce(b.gzip_size, 0), b.dict_id";

/// A `BlobInfo` from the `BLOB_COLUMNS` of a row, starting at column `at`.
pub(crate) fn blob_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<BlobInfo> {
    let hash: Vec<u8> = row.get(at)?;
    Ok(BlobInfo {
        hash: Hash(hash.try_into().unwrap_or([0; 32])),
        size: row.get(at + 1)?,
        storage: if row.get::<_, i64>(at + 2)? == 1 {
            Storage::Text
        } else {
            Storage::Raw
        },
        zstd_size: row.get(at + 3)?,
        gzip_size: row.get(at + 4)?,
        dict_id: row.get(at + 5)?,
    })
}

impl BlobInfo {
    /// The length of a stored variant; `Raw` of a text blob is its decompressed size.
    pub fn variant_len(&self, variant: Variant) -> u64 {
        match variant {
            Variant::Raw => self.size,
            Variant::Zstd => self.zstd_size,
            Variant::Gzip => self.gzip_size,
        }
    }

    /// Whether the gzip variant of this text is stored yet. A package import stores text as
    /// zstd only; the gzip variant follows in the background (`missing_gzip`, `put_gzip`).
    pub fn has_gzip(&self) -> bool {
        self.storage == Storage::Text && self.gzip_size > 0
    }
}

/// A blob made ready for writing: hashing and compression done, outside any transaction.
#[derive(Debug)]
pub struct StoredBlob {
    pub hash: Hash,
    pub size: u64,
    pub storage: Storage,
    /// For `Raw`: one entry. For `Text`: zstd, then gzip unless it is to be made later.
    pub variants: Vec<(Variant, Vec<u8>)>,
    /// The dictionary the zstd variant was made with (0: none).
    pub dict_id: u32,
}

/// Text smaller than this share of its raw size after compression is worth keeping as text.
const TEXT_GAIN: f64 = 0.95;

/// Prepares `raw` for storing: text (when `compressible`) becomes zstd at `zstd_level` plus a
/// gzip variant from libdeflate level 9 (about 1 % smaller than `gzip -9` on documentation
/// HTML, at 60 MB/s where level 12 manages 4); anything else stays raw.
pub fn prepare_blob(raw: Vec<u8>, compressible: bool, zstd_level: i32) -> std::io::Result<StoredBlob> {
    let hash = Hash::of(&raw);
    let size = raw.len() as u64;
    if compressible && !raw.is_empty() {
        let zstd = zstd_compress(&raw, zstd_level)?;
        if (zstd.len() as f64) < size as f64 * TEXT_GAIN {
            let gzip = gzip(&raw);
            return Ok(StoredBlob {
                hash,
                size,
                storage: Storage::Text,
                variants: vec![(Variant::Zstd, zstd), (Variant::Gzip, gzip)],
                dict_id: 0,
            });
        }
    }
    Ok(StoredBlob {
        hash,
        size,
        storage: Storage::Raw,
        variants: vec![(Variant::Raw, raw)],
        dict_id: 0,
    })
}

thread_local! {
    // Compressor contexts are large (tens of MB for zstd); each import thread keeps one.
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DEFLATE: RefCell<Option<libdeflater::Compressor>> = const { RefCell::new(None) };
}

fn zstd_compress(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, compressor)) => compressor.compress(raw),
            None => zstd::bulk::compress(raw, level),
        }
    })
}

/// The gzip variant of text: libdeflate level 9.
pub fn gzip(raw: &[u8]) -> Vec<u8> {
    DEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = slot.get_or_insert_with(|| {
            let level = libdeflater::CompressionLvl::new(9).unwrap_or_else(|_| libdeflater::CompressionLvl::best());
            libdeflater::Compressor::new(level)
        });
        let mut out = vec![0; compressor.gzip_compress_bound(raw.len())];
        let written = compressor
            .gzip_compress(raw, &mut out)
            .unwrap_or_else(|_| unreachable!("the output buffer is sized by gzip_compress_bound"));
        out.truncate(written);
        out
    })
}

/// Whether a complete blob with this hash is stored.
pub fn blob_exists(conn: &Connection, hash: Hash) -> Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM blobs WHERE hash = ?1 AND complete = 1")?;
    Ok(stmt.exists([&hash.0[..]])?)
}

/// The metadata of a complete blob.
pub fn blob_info(conn: &Connection, hash: Hash) -> Result<BlobInfo> {
    let sql = format!("SELECT {BLOB_COLUMNS} FROM blobs b WHERE b.hash = ?1 AND b.complete = 1");
    conn.prepare_cached(&sql)?
        .query_row([&hash.0[..]], |row| blob_from_row(row, 0))
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// Forgets a half-written blob (its content turned out wrong).
pub fn discard_incomplete(conn: &Connection, hash: Hash) -> Result<()> {
    conn.execute("DELETE FROM blobs WHERE hash = ?1 AND complete = 0", [&hash.0[..]])?;
    Ok(())
}

/// Every complete blob, for verification.
pub fn all_blobs(conn: &Connection) -> Result<Vec<BlobInfo>> {
    let sql = format!("SELECT {BLOB_COLUMNS} FROM blobs b WHERE b.complete = 1");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |row| blob_from_row(row, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Writes a prepared blob in the caller's transaction. Returns false when it was already
/// stored (a duplicate write is success).
pub fn write_blob(conn: &Connection, blob: &StoredBlob) -> Result<bool> {
    // One lookup, and statements prepared once per connection: a big import writes 14,000
    // blobs on the one thread that can write, so each per-blob step counts.
    let complete: Option<bool> = conn
        .prepare_cached("SELECT complete FROM blobs WHERE hash = ?1")?
        .query_row([&blob.hash.0[..]], |r| r.get(0))
        .optional()?;
    match complete {
        Some(true) => return Ok(false),
        // A half-written blob left by a killed import is replaced whole (its chunks go with it).
        Some(false) => {
            conn.prepare_cached("DELETE FROM blobs WHERE hash = ?1 AND complete = 0")?
                .execute([&blob.hash.0[..]])?;
        }
        None => {}
    }
    let len_of = |variant| {
        blob.variants
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, b)| b.len() as u64)
    };
    conn.prepare_cached(
        "INSERT INTO blobs (hash, size, storage, zstd_size, gzip_size, complete, added_at, dict_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)",
    )?
    .execute(params![
        &blob.hash.0[..],
        blob.size,
        blob.storage as i64,
        len_of(Variant::Zstd),
        len_of(Variant::Gzip),
        now_secs(),
        blob.dict_id
    ])?;
    let id = conn.last_insert_rowid();
    for (variant, bytes) in &blob.variants {
        insert_chunks(conn, id, *variant, 0, bytes)?;
    }
    Ok(true)
}

/// Up to `limit` complete text blobs whose gzip variant is not stored yet, in the order they
/// were added, starting after store row `after` (pass 0 first, then the last `.0` seen).
pub fn missing_gzip(conn: &Connection, after: i64, limit: usize) -> Result<Vec<(i64, BlobInfo)>> {
    let sql = format!(
        "SELECT b.rowid, {BLOB_COLUMNS} FROM blobs b
         WHERE b.rowid > ?1 AND b.storage = 1 AND b.complete = 1 AND b.gzip_size IS NULL
         ORDER BY b.rowid LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after, i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
        Ok((row.get(0)?, blob_from_row(row, 1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many complete text blobs still lack their gzip variant (for `dars status`).
pub fn count_missing_gzip(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM blobs WHERE storage = 1 AND complete = 1 AND gzip_size IS NULL",
        [],
        |r| r.get(0),
    )?)
}

/// Stores the gzip variant `gz` of text blob `hash` in the caller's transaction. Returns
/// false when there is nothing to do: the blob is gone, is not text, or has one already.
pub fn put_gzip(conn: &Connection, hash: Hash, gz: &[u8]) -> Result<bool> {
    let updated: Option<i64> = conn
        .prepare_cached(
            "UPDATE blobs SET gzip_size = ?2 WHERE hash = ?1 AND storage = 1 AND complete = 1 AND gzip_size IS NULL
             RETURNING id",
        )?
        .query_row(params![&hash.0[..], gz.len() as u64], |r| r.get(0))
        .optional()?;
    let Some(id) = updated else {
        return Ok(false);
    };
    insert_chunks(conn, id, Variant::Gzip, 0, gz)?;
    Ok(true)
}

fn insert_chunks(conn: &Connection, blob: i64, variant: Variant, first: usize, bytes: &[u8]) -> Result<()> {
    let mut stmt = conn.prepare_cached("INSERT INTO chunks (id, data) VALUES (?1, ?2)")?;
    let pieces: Box<dyn Iterator<Item = &[u8]>> = if bytes.is_empty() {
        Box::new(std::iter::once(bytes))
    } else {
        Box::new(bytes.chunks(CHUNK_SIZE))
    };
    for (i, piece) in pieces.enumerate() {
        // Beyond it a chunk's index would run into the variant's bits of its key.
        if first + i > LAST_IDX as usize {
            return Err(StoreError::Corrupt(
                format!("blob {blob}"),
                format!(
                    "more than {} chunks ({} GiB): too large to store",
                    LAST_IDX + 1,
                    (LAST_IDX + 1) / 4096
                ),
            ));
        }
        stmt.execute(params![chunk_key(blob, variant, first + i), piece])?;
    }
    Ok(())
}

/// Writes a large raw blob whose hash is already known, chunk by chunk, over as many
/// transactions as the caller likes. Until `finish`, the blob is incomplete and invisible.
#[derive(Debug)]
pub struct BlobWriter {
    hash: Hash,
    /// The blob's row id (its chunks' keys start from it).
    id: i64,
    size: u64,
    next_idx: usize,
    written: u64,
    buffer: Vec<u8>,
}

impl BlobWriter {
    /// Starts (or restarts) writing blob `hash` of `size` raw bytes.
    pub fn start(conn: &Connection, hash: Hash, size: u64) -> Result<Self> {
        conn.execute("DELETE FROM blobs WHERE hash = ?1 AND complete = 0", [&hash.0[..]])?;
        conn.execute(
            "INSERT INTO blobs (hash, size, storage, complete, added_at) VALUES (?1, ?2, 0, 0, ?3)",
            params![&hash.0[..], size, now_secs()],
        )?;
        Ok(BlobWriter {
            hash,
            id: conn.last_insert_rowid(),
            size,
            next_idx: 0,
            written: 0,
            buffer: Vec::with_capacity(CHUNK_SIZE),
        })
    }

    /// Continues a blob left incomplete (a download killed half-way): the full chunks already
    /// stored are kept, and their bytes are fed to `hasher` so the final check covers them.
    /// Returns the writer and the offset to continue from; starts afresh when nothing usable
    /// is stored.
    pub fn resume(conn: &Connection, hash: Hash, size: u64, hasher: &mut blake3::Hasher) -> Result<(Self, u64)> {
        let existing: Option<(i64, u64)> = conn
            .query_row(
                "SELECT id, size FROM blobs WHERE hash = ?1 AND complete = 0",
                [&hash.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let id = match existing {
            Some((id, stored)) if stored == size => id,
            _ => return Ok((BlobWriter::start(conn, hash, size)?, 0)),
        };
        let first = chunk_key(id, Variant::Raw, 0);
        let mut stmt =
            conn.prepare_cached("SELECT id - ?1, data FROM chunks WHERE id BETWEEN ?1 AND ?2 ORDER BY id")?;
        let mut rows = stmt.query([first, first + LAST_IDX])?;
        let mut next_idx = 0usize;
        while let Some(row) = rows.next()? {
            let idx: usize = row.get(0)?;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            if idx != next_idx || data.len() != CHUNK_SIZE {
                break;
            }
            hasher.update(data);
            next_idx += 1;
        }
        drop(rows);
        conn.execute(
            "DELETE FROM chunks WHERE id BETWEEN ?1 AND ?2",
            [chunk_key(id, Variant::Raw, next_idx), first + LAST_IDX],
        )?;
        let written = (next_idx * CHUNK_SIZE) as u64;
        let writer = BlobWriter {
            hash,
            id,
            size,
            next_idx,
            written,
            buffer: Vec::with_capacity(CHUNK_SIZE),
        };
        Ok((writer, written))
    }

    /// Appends bytes, storing every full chunk.
    pub fn write(&mut self, conn: &Connection, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let take = (CHUNK_SIZE - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == CHUNK_SIZE {
                self.flush(conn)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, conn: &Connection) -> Result<()> {
        insert_chunks(conn, self.id, Variant::Raw, self.next_idx, &self.buffer)?;
        self.next_idx += 1;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Stores the last chunk and marks the blob complete. The caller has checked the hash.
    pub fn finish(mut self, conn: &Connection) -> Result<()> {
        if !self.buffer.is_empty() || self.next_idx == 0 {
            self.flush(conn)?;
        }
        if self.written != self.size {
            return Err(StoreError::Corrupt(
                self.hash.to_hex(),
                format!("{} bytes written, {} expected", self.written, self.size),
            ));
        }
        conn.execute("UPDATE blobs SET complete = 1 WHERE hash = ?1", [&self.hash.0[..]])?;
        Ok(())
    }
}

/// Reads `range` of one stored variant, touching only the chunks it covers.
pub fn read_variant(conn: &Connection, hash: Hash, variant: Variant, range: Range<u64>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
    if range.start >= range.end {
        return Ok(out);
    }
    let chunk = CHUNK_SIZE as u64;
    let first = range.start / chunk;
    let last = (range.end - 1) / chunk;
    let mut stmt = conn.prepare_cached(VARIANT_CHUNKS)?;
    let mut rows = stmt.query(params![&hash.0[..], variant as i64, first, last])?;
    let mut expect = first;
    while let Some(row) = rows.next()? {
        let idx: u64 = row.get(0)?;
        let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        if idx != expect {
            return Err(StoreError::Corrupt(
                hash.to_hex(),
                format!("chunk {expect} of {} is missing", variant.name()),
            ));
        }
        let base = idx * chunk;
        let from = usize::try_from(range.start.saturating_sub(base))
            .unwrap_or(usize::MAX)
            .min(data.len());
        let to = usize::try_from(range.end - base).unwrap_or(usize::MAX).min(data.len());
        out.extend_from_slice(&data[from..to]);
        expect += 1;
    }
    if out.len() as u64 != range.end - range.start {
        return Err(StoreError::Corrupt(
            hash.to_hex(),
            format!("{} variant is shorter than recorded", variant.name()),
        ));
    }
    Ok(out)
}

/// The raw bytes of a blob, decompressing text. Use for whole files of bounded size.
pub fn read_raw(conn: &Connection, info: &BlobInfo) -> Result<Vec<u8>> {
    match info.storage {
        Storage::Raw => read_variant(conn, info.hash, Variant::Raw, 0..info.size),
        Storage::Text => {
            let zstd = read_variant(conn, info.hash, Variant::Zstd, 0..info.zstd_size)?;
            let dict = if info.dict_id == 0 {
                None
            } else {
                Some(dictionary(conn, info.dict_id)?)
            };
            decompress(&zstd, info.size, dict.as_deref())
                .map_err(|e| StoreError::Corrupt(info.hash.to_hex(), format!("zstd: {e}")))
        }
    }
}

/// The dictionary a thread's cached decompressor was made with (compared whole: ~10 µs for
/// ~110 KB, against ~50 µs to load one), and the decompressor.
type DictDecoder = (Vec<u8>, zstd::bulk::Decompressor<'static>);

thread_local! {
    static DICT_DECODER: RefCell<Option<DictDecoder>> = const { RefCell::new(None) };
}

/// Decompresses zstd frames of a known raw size, with a dictionary when they need one.
pub fn decompress(zstd: &[u8], size: u64, dict: Option<&[u8]>) -> std::io::Result<Vec<u8>> {
    let capacity = usize::try_from(size).unwrap_or(usize::MAX);
    let out = match dict {
        Some(dict) => DICT_DECODER.with(|cell| -> std::io::Result<Vec<u8>> {
            // Loading a ~110 KB dictionary costs more than decoding most pages with it: each
            // thread keeps a decompressor for the dictionary it used last.
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(bytes, _)| bytes.as_slice() != dict) {
                *slot = Some((dict.to_vec(), zstd::bulk::Decompressor::with_dictionary(dict)?));
            }
            match slot.as_mut() {
                Some((_, decoder)) => decoder.decompress(zstd, capacity),
                None => zstd::bulk::Decompressor::with_dictionary(dict)?.decompress(zstd, capacity),
            }
        })?,
        None => zstd::bulk::decompress(zstd, capacity)?,
    };
    if out.len() as u64 != size {
        return Err(std::io::Error::other(format!(
            "{} bytes after decompression, {size} expected",
            out.len()
        )));
    }
    Ok(out)
}

/// The bytes of zstd dictionary `zstd_id`.
pub fn dictionary(conn: &Connection, zstd_id: u32) -> Result<Vec<u8>> {
    if let Some(bytes) = cached_dictionary(conn, zstd_id) {
        return Ok(bytes.to_vec());
    }
    let bytes: Vec<u8> = conn
        .prepare_cached("SELECT data FROM dicts WHERE zstd_id = ?1")?
        .query_row([zstd_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Corrupt(format!("dictionary {zstd_id}"), "the dictionary is missing".to_owned()))?;
    remember_dictionary(conn, zstd_id, &bytes);
    Ok(bytes)
}

/// (store file, zstd id, dictionary bytes)
type CachedDict = (String, u32, Rc<[u8]>);

thread_local! {
    /// The dictionaries this thread read last, by store file and zstd id: a stored dictionary
    /// never changes under its id, and reading a text blob needs its ~100 KB every time.
    static DICTS: RefCell<Vec<CachedDict>> =
        const { RefCell::new(Vec::new()) };
}
const CACHED_DICTS: usize = 4;

fn cached_dictionary(conn: &Connection, zstd_id: u32) -> Option<Rc<[u8]>> {
    let path = super::file_of(conn)?;
    DICTS.with(|d| {
        d.borrow()
            .iter()
            .find(|(p, id, _)| p == path && *id == zstd_id)
            .map(|(_, _, bytes)| Rc::clone(bytes))
    })
}

fn remember_dictionary(conn: &Connection, zstd_id: u32, bytes: &[u8]) {
    let Some(path) = super::file_of(conn) else {
        return;
    };
    DICTS.with(|d| {
        let mut d = d.borrow_mut();
        d.retain(|(p, id, _)| !(p == path && *id == zstd_id));
        if d.len() >= CACHED_DICTS {
            d.remove(0);
        }
        d.push((path.to_owned(), zstd_id, bytes.into()));
    });
}

/// A stored dictionary by the hash of its bytes.
pub fn dictionary_by_hash(conn: &Connection, hash: Hash) -> Result<Option<Vec<u8>>> {
    let found: Option<(u32, Vec<u8>)> = conn
        .prepare_cached("SELECT zstd_id, data FROM dicts WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(found.map(|(zstd_id, bytes)| {
        remember_dictionary(conn, zstd_id, &bytes);
        bytes
    }))
}

/// Stores a zstd dictionary (a duplicate is success).
pub fn put_dictionary(conn: &Connection, zstd_id: u32, hash: Hash, data: &[u8]) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO dicts (zstd_id, hash, data) VALUES (?1, ?2, ?3)")?
        .execute(params![zstd_id, &hash.0[..], data])?;
    Ok(())
}

/// Re-reads a blob and checks that every variant decodes to bytes with the recorded hash
/// and size. Returns a description of the first problem found.
pub fn verify_blob(conn: &Connection, info: &BlobInfo) -> Result<Option<String>> {
    let check = |label: &str, bytes: &[u8]| {
        if bytes.len() as u64 != info.size {
            Some(format!("{label} has {} bytes, {} expected", bytes.len(), info.size))
        } else if Hash::of(bytes) != info.hash {
            Some(format!("{label} does not match its hash"))
        } else {
            None
        }
    };
    match info.storage {
        Storage::Raw => {
            let mut hasher = blake3::Hasher::new();
            let mut len = 0u64;
            let mut stmt = conn.prepare_cached(VARIANT_CHUNKS)?;
            let mut rows = stmt.query(params![&info.hash.0[..], Variant::Raw as i64, 0, LAST_IDX])?;
            while let Some(row) = rows.next()? {
                let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                hasher.update(data);
                len += data.len() as u64;
            }
            if len != info.size {
                return Ok(Some(format!("raw bytes are {len} long, {} expected", info.size)));
            }
            Ok((Hash(*hasher.finalize().as_bytes()) != info.hash)
                .then(|| "raw bytes do not match their hash".to_owned()))
        }
        Storage::Text => {
            let raw = match read_raw(conn, info) {
                Ok(raw) => raw,
                Err(StoreError::Corrupt(_, why)) => return Ok(Some(why)),
                Err(e) => return Err(e),
            };
            if let Some(problem) = check("zstd variant", &raw) {
                return Ok(Some(problem));
            }
            if !info.has_gzip() {
                return Ok(None);
            }
            let gz = match read_variant(conn, info.hash, Variant::Gzip, 0..info.gzip_size) {
                Ok(gz) => gz,
                Err(StoreError::Corrupt(_, why)) => return Ok(Some(why)),
                Err(e) => return Err(e),
            };
            let mut decoder = libdeflater::Decompressor::new();
            let mut out = vec![0; raw.len()];
            match decoder.gzip_decompress(&gz, &mut out) {
                Ok(n) if n == out.len() => Ok(check("gzip variant", &out)),
                Ok(n) => Ok(Some(format!("gzip variant has {n} bytes, {} expected", info.size))),
                Err(e) => Ok(Some(format!("gzip variant does not decode: {e}"))),
            }
        }
    }
}

/// Counts for `dars status`: (blobs, raw bytes) and (variant, blobs, stored bytes).
pub type BlobStats = (u64, u64, Vec<(Variant, u64, u64)>);

/// Counts for `dars status`.
pub fn blob_stats(conn: &Connection) -> Result<BlobStats> {
    let (count, raw): (u64, u64) = conn.query_row(
        "SELECT count(*), coalesce(sum(size), 0) FROM blobs WHERE complete = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt =
        conn.prepare("SELECT (id >> 22) & 3, count(DISTINCT id >> 24), sum(length(data)) FROM chunks GROUP BY 1")?;
    let per = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?
        .filter_map(|row| row.ok().and_then(|(v, n, b)| Variant::from_i64(v).map(|v| (v, n, b))))
        .collect();
    Ok((count, raw, per))
}

/// Hashes a reader in one streaming pass, returning the hash and the length.
pub fn hash_reader(mut reader: impl Read) -> std::io::Result<(Hash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Hash(*hasher.finalize().as_bytes()), len))
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

    #[test]
    fn text_round_trips_through_both_variants() {
        let conn = db();
        let raw = "<p>Salam, dünya! Dərs başlayır.</p>\n".repeat(2000).into_bytes();
        let blob = prepare_blob(raw.clone(), true, 3).expect("prepare");
        assert_eq!(blob.storage, Storage::Text);
        assert!(write_blob(&conn, &blob).expect("write"));
        assert!(
            !write_blob(&conn, &blob).expect("again"),
            "a duplicate write stores nothing"
        );
        let info = blob_info(&conn, blob.hash).expect("info");
        assert_eq!(read_raw(&conn, &info).expect("raw"), raw);
        assert_eq!(verify_blob(&conn, &info).expect("verify"), None);
        let gz = read_variant(&conn, info.hash, Variant::Gzip, 0..info.gzip_size).expect("gzip");
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn each_dictionary_decodes_its_own_frames_when_a_thread_alternates_between_them() {
        // Raw-content dictionaries of the same length and ends, different in the middle, where
        // each text finds its match: the thread's cached decompressor must be the right one.
        let base = "<p>Dərs: kəsrlər və onların toplanması</p>".repeat(200);
        let piece = |seed: u8| {
            (0..96u8)
                .map(|i| b'a' + (i.wrapping_mul(seed).wrapping_add(seed) % 26))
                .collect::<Vec<u8>>()
        };
        let (p1, p2) = (piece(7), piece(11));
        let dict = |p: &[u8]| [base.as_bytes(), p, base.as_bytes()].concat();
        let (one, two) = (dict(&p1), dict(&p2));
        let text = |p: &[u8]| [b"<b>".as_slice(), p, b"</b>".as_slice()].concat();
        let pack = |dict: &[u8], raw: &[u8]| {
            zstd::bulk::Compressor::with_dictionary(3, dict)
                .expect("compressor")
                .compress(raw)
                .expect("compress")
        };
        let (a, b) = (text(&p1), text(&p2));
        let (za, zb) = (pack(&one, &a), pack(&two, &b));
        assert!(za.len() < a.len() / 2, "the frame refers to the dictionary's middle");
        for _ in 0..2 {
            assert_eq!(decompress(&za, a.len() as u64, Some(&one)).expect("a"), a);
            assert_eq!(decompress(&zb, b.len() as u64, Some(&two)).expect("b"), b);
        }
        // With the other dictionary the same frame decodes to other bytes: the check above
        // would fail if the thread kept the first decompressor.
        assert_ne!(decompress(&za, a.len() as u64, Some(&two)).ok(), Some(a.clone()));
        assert_eq!(
            decompress(&zstd::bulk::compress(&a, 3).expect("plain"), a.len() as u64, None).expect("plain"),
            a
        );
    }

    #[test]
    fn a_chunk_index_beyond_its_bits_is_refused_not_stored_under_another_variant() {
        let conn = db();
        let err = insert_chunks(&conn, 1, Variant::Raw, LAST_IDX as usize + 1, b"x").expect_err("too many chunks");
        assert!(err.to_string().contains("too large"), "{err}");
        insert_chunks(&conn, 1, Variant::Raw, LAST_IDX as usize, b"x").expect("the last index fits");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
            .expect("n");
        assert_eq!(n, 1);
    }

    #[test]
    fn ranged_reads_cross_chunk_boundaries() {
        let conn = db();
        let raw: Vec<u8> = (0..CHUNK_SIZE * 3 + 17).map(|i| (i % 251) as u8).collect();
        let blob = prepare_blob(raw.clone(), false, 3).expect("prepare");
        write_blob(&conn, &blob).expect("write");
        let start = CHUNK_SIZE as u64 - 5;
        let end = 2 * CHUNK_SIZE as u64 + 9;
        let got = read_variant(&conn, blob.hash, Variant::Raw, start..end).expect("read");
        assert_eq!(got, &raw[start as usize..end as usize]);
    }

    #[test]
    fn an_unfinished_writer_leaves_no_visible_blob() {
        let conn = db();
        let raw = vec![7u8; CHUNK_SIZE + 10];
        let hash = Hash::of(&raw);
        let mut writer = BlobWriter::start(&conn, hash, raw.len() as u64).expect("start");
        writer.write(&conn, &raw[..CHUNK_SIZE]).expect("write");
        assert!(!blob_exists(&conn, hash).expect("exists"));
        let mut writer = BlobWriter::start(&conn, hash, raw.len() as u64).expect("restart");
        writer.write(&conn, &raw).expect("write");
        writer.finish(&conn).expect("finish");
        let info = blob_info(&conn, hash).expect("info");
        assert_eq!(verify_blob(&conn, &info).expect("verify"), None);
    }

    #[test]
    fn a_half_written_blob_is_replaced_whole_and_a_complete_one_kept() {
        let conn = db();
        let raw = vec![9u8; 2 * CHUNK_SIZE + 10];
        let hash = Hash::of(&raw);
        // A killed import's leftover: two chunks of the blob, incomplete.
        let mut writer = BlobWriter::start(&conn, hash, raw.len() as u64).expect("start");
        writer.write(&conn, &raw[..2 * CHUNK_SIZE]).expect("write");
        let chunks = |conn: &Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(chunks(&conn), 2);
        let blob = prepare_blob(raw.clone(), false, 3).expect("prepare");
        assert!(write_blob(&conn, &blob).expect("write"));
        assert_eq!(chunks(&conn), 3, "the leftover's chunks went with it");
        let info = blob_info(&conn, hash).expect("info");
        assert_eq!(verify_blob(&conn, &info).expect("verify"), None);
        assert_eq!(read_raw(&conn, &info).expect("read"), raw);
        // Written again: already there, nothing changes.
        assert!(!write_blob(&conn, &blob).expect("again"));
        assert_eq!(chunks(&conn), 3);
    }

    #[test]
    fn a_flipped_byte_is_found_by_verify() {
        let conn = db();
        let blob = prepare_blob(
            b"plain text that compresses well well well well well".repeat(50),
            true,
            3,
        )
        .expect("p");
        write_blob(&conn, &blob).expect("write");
        conn.execute(
            "UPDATE chunks SET data = zeroblob(length(data)) WHERE (id >> 22) & 3 = 2",
            [],
        )
        .expect("corrupt");
        let info = blob_info(&conn, blob.hash).expect("info");
        let problem = verify_blob(&conn, &info).expect("verify");
        assert!(problem.is_some_and(|p| p.contains("gzip")));
    }
}
