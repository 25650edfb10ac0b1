//! Schema migrations keyed on `PRAGMA user_version`: append-only, each in its own transaction.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{Result, StoreError};

/// The triggers that keep `blobs.refs`: made by migration 9, made again by 12 on the rebuilt
/// `blobs` (a macro, so both migrations' SQL can include the one text).
macro_rules! refs_triggers {
    () => {
        r"
    CREATE TRIGGER files_use AFTER INSERT ON files BEGIN
        SELECT RAISE(ABORT, 'a lesson file names a content that is not stored')
            WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE hash = new.hash);
        UPDATE blobs SET refs = refs + 1 WHERE hash = new.hash;
    END;
    CREATE TRIGGER files_unuse AFTER DELETE ON files BEGIN
        UPDATE blobs SET refs = refs - 1 WHERE hash = old.hash;
    END;
    CREATE TRIGGER files_reuse AFTER UPDATE OF hash ON files WHEN new.hash != old.hash BEGIN
        SELECT RAISE(ABORT, 'a lesson file names a content that is not stored')
            WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE hash = new.hash);
        UPDATE blobs SET refs = refs + 1 WHERE hash = new.hash;
        UPDATE blobs SET refs = refs - 1 WHERE hash = old.hash;
    END;
    CREATE TRIGGER blobs_in_use BEFORE DELETE ON blobs WHEN old.refs > 0 BEGIN
        SELECT RAISE(ABORT, 'a content still used by a lesson cannot be deleted');
    END;
    "
    };
}

/// One migration: SQL run in one transaction, or code that commits its own steps (to move
/// much data without one huge transaction) and sets the version in its last one.
enum Step {
    Sql(&'static str),
    Code(fn(&mut Connection, i64) -> Result<()>),
}

/// Each entry moves the schema from version `i` to `i + 1`. Never edit one that has shipped.
const MIGRATIONS: &[Step] = &[
    // 1: blobs, their chunks, and the catalogue.
    Step::Sql(
        r"
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    -- A blob is the content of one file, addressed by the BLAKE3 hash of its raw bytes.
    -- storage 0: raw (media), one variant; storage 1: text, kept as zstd plus a gzip variant.
    -- A blob is usable only once complete = 1: big blobs are written over several transactions
    -- and a half-written one (after a kill) is resumed or collected, never served.
    CREATE TABLE blobs (
        hash BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        storage INTEGER NOT NULL,
        zstd_size INTEGER,
        gzip_size INTEGER,
        complete INTEGER NOT NULL,
        added_at INTEGER NOT NULL
    );

    -- The stored bytes of each variant (0 raw, 1 zstd, 2 gzip) cut into CHUNK_SIZE pieces,
    -- so a Range request or a resumed transfer reads only the pieces it needs.
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL REFERENCES blobs(hash) ON DELETE CASCADE,
        variant INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        data BLOB NOT NULL,
        UNIQUE (hash, variant, idx)
    );

    -- One row per visible lesson; a new version replaces the row in one transaction.
    CREATE TABLE lessons (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        language TEXT NOT NULL,
        grade INTEGER NOT NULL,
        subject TEXT NOT NULL,
        summary TEXT NOT NULL,
        entry TEXT NOT NULL,
        sort_order INTEGER NOT NULL,
        origin TEXT NOT NULL,
        seq INTEGER NOT NULL,
        digest BLOB NOT NULL,
        total_size INTEGER NOT NULL,
        imported_at INTEGER NOT NULL
    );
    CREATE INDEX lessons_browse ON lessons (language, grade, subject, sort_order);

    CREATE TABLE files (
        lesson INTEGER NOT NULL REFERENCES lessons(rowid) ON DELETE CASCADE,
        path TEXT NOT NULL,
        hash BLOB NOT NULL REFERENCES blobs(hash),
        size INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        PRIMARY KEY (lesson, path)
    ) WITHOUT ROWID;
    CREATE INDEX files_hash ON files (hash);
    ",
    ),
    // 2: signed packages: the manifests as received (to re-export and mirror them verbatim),
    // zstd dictionaries, and which dictionary a stored zstd variant needs.
    Step::Sql(
        r"
    CREATE TABLE manifests (
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        publisher TEXT NOT NULL,
        manifest BLOB NOT NULL,
        signature BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (key, seq)
    ) WITHOUT ROWID;

    CREATE TABLE dicts (
        zstd_id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        data BLOB NOT NULL
    );

    ALTER TABLE blobs ADD COLUMN dict_id INTEGER NOT NULL DEFAULT 0;
    ",
    ),
    // 3: the last result of each scheduled sync, for `dars status` and the console.
    Step::Sql(
        r"
    CREATE TABLE sync_results (
        url TEXT PRIMARY KEY,
        finished_at INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        message TEXT NOT NULL
    ) WITHOUT ROWID;
    ",
    ),
    // 4: the console: accounts of teachers and technicians, their sessions, the audit log of
    // every change made through the console or `dars user`, and lessons hidden from phones
    // (kept by id, so a hidden lesson stays hidden when a new version of it arrives).
    Step::Sql(
        r"
    CREATE TABLE accounts (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Only a hash of each session token is kept: a copy of the database opens no session.
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,
        account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_expiry ON sessions (expires_at);

    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        account TEXT NOT NULL,
        action TEXT NOT NULL,
        details TEXT NOT NULL
    );

    CREATE TABLE hidden_lessons (
        id TEXT PRIMARY KEY,
        hidden_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    ),
    // 5: full-text search. lesson_text keeps each lesson's visible text as written (for
    // snippets); lesson_fts indexes the folded title, summary and text (`ders` finds `dərs`)
    // and stores no copy of them. The trigger drops both with their lesson on every path that
    // deletes one, in the same transaction, so search never finds a lesson that is gone.
    Step::Sql(
        r"
    CREATE TABLE lesson_text (
        lesson INTEGER PRIMARY KEY,
        body TEXT NOT NULL
    );
    CREATE VIRTUAL TABLE lesson_fts USING fts5(
        title, summary, body,
        content = '', contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 2',
        prefix = '2 3'
    );
    CREATE TRIGGER lessons_unindex AFTER DELETE ON lessons BEGIN
        DELETE FROM lesson_fts WHERE rowid = old.rowid;
        DELETE FROM lesson_text WHERE lesson = old.rowid;
    END;
    ",
    ),
    // 6: usage figures, with nothing personal: how often each lesson was opened (kind 0)
    // and saved for offline use (kind 1) on each day (days since 1970-01-01, UTC).
    Step::Sql(
        r"
    CREATE TABLE usage (
        day INTEGER NOT NULL,
        lesson TEXT NOT NULL,
        kind INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (day, lesson, kind)
    ) WITHOUT ROWID;
    ",
    ),
    // 7: manifest texts move to a rowid table of their own, each stored as zstd against the
    // previous text of its publisher (a delta), so an update that changes 1 % of the lessons
    // stores about 1 % of a manifest instead of all of it. Existing texts become the first
    // of their chains; their bytes are kept as they are (zstd, or JSON from version 2).
    Step::Sql(
        r"
    CREATE TABLE manifest_texts (
        id INTEGER PRIMARY KEY,
        base INTEGER REFERENCES manifest_texts(id),
        depth INTEGER NOT NULL,
        data BLOB NOT NULL
    );

    CREATE TABLE manifests_new (
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        publisher TEXT NOT NULL,
        text INTEGER NOT NULL REFERENCES manifest_texts(id),
        signature BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (key, seq)
    ) WITHOUT ROWID;

    INSERT INTO manifest_texts (id, base, depth, data)
        SELECT row_number() OVER (ORDER BY key, seq), NULL, 0, manifest FROM manifests;
    INSERT INTO manifests_new (key, seq, publisher, text, signature, received_at)
        SELECT key, seq, publisher, row_number() OVER (ORDER BY key, seq), signature, received_at FROM manifests;
    DROP TABLE manifests;
    ALTER TABLE manifests_new RENAME TO manifests;
    ",
    ),
    // 8: lesson parts of signed roots (dars-manifest/2), kept by hash exactly as received
    // (to re-export and mirror them), and each lesson's part: an update whose root names the
    // same part for a lesson leaves that lesson unread and unwritten.
    Step::Sql(
        r"
    CREATE TABLE lesson_parts (
        id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        data BLOB NOT NULL
    );
    ALTER TABLE lessons ADD COLUMN part BLOB;
    CREATE INDEX lessons_part ON lessons (part) WHERE part IS NOT NULL;
    ",
    ),
    // 9: each blob counts the files that use it (kept by triggers), so an update that changes
    // a file touches the rows of its old and new contents instead of two random pages of an
    // index of every file's hash; files is rebuilt without its foreign key to blobs (which
    // needed that index to check each deleted blob) and the triggers keep what it guaranteed:
    // a file names a stored content, and a content in use is never deleted.
    Step::Sql(concat!(
        r"
    ALTER TABLE blobs ADD COLUMN refs INTEGER NOT NULL DEFAULT 0;
    UPDATE blobs SET refs = used.n FROM (SELECT hash, count(*) AS n FROM files GROUP BY hash) AS used
        WHERE used.hash = blobs.hash;
    CREATE TABLE files_new (
        lesson INTEGER NOT NULL REFERENCES lessons(rowid) ON DELETE CASCADE,
        path TEXT NOT NULL,
        hash BLOB NOT NULL,
        size INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        PRIMARY KEY (lesson, path)
    ) WITHOUT ROWID;
    INSERT INTO files_new (lesson, path, hash, size, media_type)
        SELECT lesson, path, hash, size, media_type FROM files;
    DROP TABLE files;
    ALTER TABLE files_new RENAME TO files;
    ",
        refs_triggers!()
    )),
    // 10: each lesson's sequence in a narrow table of its own: a new root moves the sequence of
    // every lesson it keeps, which rewrote every page of the wide lessons table (23 pages for
    // 312 lessons) and now rewrites one or two.
    Step::Sql(
        r"
    CREATE TABLE lesson_seqs (
        lesson INTEGER PRIMARY KEY REFERENCES lessons(rowid) ON DELETE CASCADE,
        seq INTEGER NOT NULL
    );
    INSERT INTO lesson_seqs (lesson, seq) SELECT rowid, seq FROM lessons;
    ALTER TABLE lessons DROP COLUMN seq;
    ",
    ),
    // 11: the search index is rebuilt without its 2- and 3-letter prefix indexes, which made
    // it twice as big (15.8 MB against 7.3 MB for the benchmark's 312 lessons) and an update
    // write as much more; a short prefix now scans the terms it covers (14 ms at worst there
    // for two letters, 2 ms before). It also merges its segments only when a level holds 16
    // of them (FTS5's crisis merge) instead of a little on every write, which added 100-600
    // pages of merging to most updates of a few lessons. Emptying lesson_text and the index
    // version makes the next open index every lesson again (`index_missing`).
    Step::Sql(
        r"
    DROP TABLE lesson_fts;
    CREATE VIRTUAL TABLE lesson_fts USING fts5(
        title, summary, body,
        content = '', contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO lesson_fts (lesson_fts, rank) VALUES ('automerge', 0);
    DELETE FROM lesson_text;
    DELETE FROM meta WHERE key = 'search_index_version';
    ",
    ),
    // 12: chunks keyed by their blob: the row id of chunk `idx` of a variant is
    // (blob id << 24) | (variant << 22) | idx, so a blob's chunks are one range of the table
    // (its variants side by side) and a new blob's go at its end, with no index of
    // (hash, variant, idx) to update at a random page per chunk written or deleted. blobs get
    // an explicit id (their row ids, kept) for that. The bytes are moved a batch at a time.
    Step::Code(key_chunks_by_blob),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema version of an open store.
pub fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// Applies every migration the store has not seen yet. Running it twice is a no-op.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found = schema_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, step) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        let to = i64::try_from(index + 1).unwrap_or(i64::MAX);
        let sql = match step {
            Step::Sql(sql) => sql,
            Step::Code(run) => {
                run(conn, to)?;
                continue;
            }
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the write lock.
        if schema_version(&tx)? >= to {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
    }
    Ok(())
}

/// From migration 12 on: the `blobs.refs` triggers, and the one that deletes a blob's chunks
/// with it.
const BLOB_TRIGGERS: &str = concat!(
    refs_triggers!(),
    r"
    CREATE TRIGGER blobs_chunks AFTER DELETE ON blobs BEGIN
        DELETE FROM chunks WHERE id >= old.id << 24 AND id < (old.id + 1) << 24;
    END;
    "
);

/// Chunks moved per transaction by migration 12 (at most 64 MB): the WAL stays small and the
/// pages each batch frees are reused by the next, so the file does not grow.
const MOVE_BATCH: i64 = 256;

/// Migration 12 (see `MIGRATIONS`). Killed half-way, it continues where it stopped: each batch
/// moves its chunks and deletes the old rows in one transaction.
fn key_chunks_by_blob(conn: &mut Connection, to: i64) -> Result<()> {
    move_chunks(conn, to, MOVE_BATCH, usize::MAX).map(|_| ())
}

/// Migration 12 in batches of `batch` chunks, stopping after `max_batches` (for the test of a
/// migration cut off half-way). Returns whether it finished.
fn move_chunks(conn: &mut Connection, to: i64, batch: i64, max_batches: usize) -> Result<bool> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if schema_version(&tx)? >= to {
        return Ok(true);
    }
    let started = tx
        .prepare("SELECT 1 FROM sqlite_schema WHERE name = 'blobs_v12'")?
        .exists([])?;
    if !started {
        tx.execute_batch(
            r"
            CREATE TABLE blobs_v12 (
                id INTEGER PRIMARY KEY,
                hash BLOB NOT NULL UNIQUE,
                size INTEGER NOT NULL,
                storage INTEGER NOT NULL,
                zstd_size INTEGER,
                gzip_size INTEGER,
                complete INTEGER NOT NULL,
                added_at INTEGER NOT NULL,
                dict_id INTEGER NOT NULL DEFAULT 0,
                refs INTEGER NOT NULL DEFAULT 0
            );
            INSERT INTO blobs_v12 (id, hash, size, storage, zstd_size, gzip_size, complete, added_at, dict_id, refs)
                SELECT rowid, hash, size, storage, zstd_size, gzip_size, complete, added_at, dict_id, refs
                FROM blobs ORDER BY rowid;
            CREATE TABLE chunks_v12 (
                id INTEGER PRIMARY KEY,
                data BLOB NOT NULL
            );
            ",
        )?;
    }
    let total: i64 = tx.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))?;
    tx.commit()?;
    let mut moved = 0;
    for done in 1.. {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let upto: i64 = tx
            .query_row(
                "SELECT id FROM chunks ORDER BY id LIMIT 1 OFFSET ?1",
                [batch - 1],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO chunks_v12 (id, data)
             SELECT (b.id << 24) | (c.variant << 22) | c.idx, c.data
             FROM chunks c JOIN blobs_v12 b ON b.hash = c.hash WHERE c.id <= ?1",
            [upto],
        )?;
        moved += tx.execute("DELETE FROM chunks WHERE id <= ?1", [upto])?;
        tx.commit()?;
        if total > batch {
            tracing::info!("new store layout: {moved} of {total} stored pieces moved");
        }
        if upto == i64::MAX {
            break;
        }
        if done >= max_batches {
            return Ok(false);
        }
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if schema_version(&tx)? >= to {
        return Ok(true);
    }
    tx.execute_batch(
        r"
        DROP TRIGGER files_use;
        DROP TRIGGER files_unuse;
        DROP TRIGGER files_reuse;
        DROP TRIGGER blobs_in_use;
        DROP TABLE chunks;
        DROP TABLE blobs;
        ALTER TABLE blobs_v12 RENAME TO blobs;
        ALTER TABLE chunks_v12 RENAME TO chunks;
        ",
    )?;
    tx.execute_batch(BLOB_TRIGGERS)?;
    tx.pragma_update(None, "user_version", to)?;
    tx.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// Brings an empty store to version `n` as a build of that version would (SQL steps only).
    fn apply_old_migrations(conn: &Connection, n: usize) {
        for (i, step) in MIGRATIONS.iter().take(n).enumerate() {
            let Step::Sql(sql) = step else {
                unreachable!("migration {} is code, not SQL", i + 1)
            };
            conn.execute_batch(sql).expect("old migration");
            conn.pragma_update(None, "user_version", i + 1).expect("version");
        }
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        migrate(&mut conn, Path::new(":memory:")).expect("first");
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .expect("count");
        migrate(&mut conn, Path::new(":memory:")).expect("second");
        let again: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .expect("count");
        assert_eq!(tables, again);
        assert_eq!(schema_version(&conn).expect("version"), SCHEMA_VERSION);
    }

    #[test]
    fn manifests_of_a_version_3_store_survive_the_move_to_their_own_table() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        apply_old_migrations(&conn, 3);
        let json = br#"{"seq":7,"lessons":[{"id":"a"}]}"#.repeat(40);
        let packed = zstd::bulk::compress(&json, 9).expect("zstd");
        let plain = br#"{"seq":3}"#.to_vec();
        let insert = "INSERT INTO manifests (key, seq, publisher, manifest, signature, received_at) VALUES (?1, ?2, 'p', ?3, ?4, 1)";
        conn.execute(insert, rusqlite::params!["k", 7, packed, b"sig7".to_vec()])
            .expect("zstd row");
        conn.execute(insert, rusqlite::params!["j", 3, plain, b"sig3".to_vec()])
            .expect("json row");
        migrate(&mut conn, Path::new(":memory:")).expect("migrate");
        assert_eq!(schema_version(&conn).expect("version"), SCHEMA_VERSION);
        let got = crate::store::get_manifest(&conn, "k", 7).expect("k 7");
        assert_eq!(got, (json.clone(), b"sig7".to_vec()));
        let got = crate::store::get_manifest(&conn, "j", 3).expect("j 3");
        assert_eq!(got, (plain, b"sig3".to_vec()));
        assert_eq!(crate::store::latest_seq(&conn, "k").expect("latest"), Some(7));
        // The next sequence is stored as a delta against the migrated text.
        let next = br#"{"seq":8,"lessons":[{"id":"a"}]}"#.repeat(40);
        crate::store::put_manifest(&conn, "k", 8, "p", &next, b"sig8").expect("put");
        assert_eq!(crate::store::get_manifest(&conn, "k", 8).expect("k 8").0, next);
        let base: Option<i64> = conn
            .query_row(
                "SELECT t.base FROM manifests m JOIN manifest_texts t ON t.id = m.text WHERE m.key = 'k' AND m.seq = 8",
                [],
                |r| r.get(0),
            )
            .expect("base");
        assert!(base.is_some(), "seq 8 is a delta");
    }

    #[test]
    fn chunks_move_to_keys_by_blob_even_when_the_move_is_cut_off() {
        use crate::store::{Variant, blob_info, read_raw, read_variant, verify_blob};
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
        apply_old_migrations(&conn, 11);
        // The layout of version 11: chunks by (hash, variant, idx). A raw blob of three chunks,
        // a text blob with zstd and gzip variants, written interleaved as a sync and the
        // variant worker would.
        let raw: Vec<u8> = (0..2 * crate::store::CHUNK_SIZE + 99)
            .map(|i| (i % 253) as u8)
            .collect();
        let text = "<p>Dərs başlayır, şagirdlər!</p>".repeat(300).into_bytes();
        let (rh, th) = (crate::store::Hash::of(&raw), crate::store::Hash::of(&text));
        let zstd = zstd::bulk::compress(&text, 3).expect("zstd");
        let gzip = crate::store::gzip(&text);
        let blob = "INSERT INTO blobs (hash, size, storage, zstd_size, gzip_size, complete, added_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, 0)";
        conn.execute(blob, params![&rh.0[..], raw.len(), 0, None::<i64>, None::<i64>])
            .expect("raw blob");
        conn.execute(blob, params![&th.0[..], text.len(), 1, zstd.len(), gzip.len()])
            .expect("text blob");
        let chunk = "INSERT INTO chunks (hash, variant, idx, data) VALUES (?1, ?2, ?3, ?4)";
        let pieces: Vec<&[u8]> = raw.chunks(crate::store::CHUNK_SIZE).collect();
        conn.execute(chunk, params![&rh.0[..], 0, 0, pieces[0]]).expect("c");
        conn.execute(chunk, params![&th.0[..], 1, 0, &zstd]).expect("c");
        conn.execute(chunk, params![&rh.0[..], 0, 1, pieces[1]]).expect("c");
        conn.execute(chunk, params![&th.0[..], 2, 0, &gzip]).expect("c");
        conn.execute(chunk, params![&rh.0[..], 0, 2, pieces[2]]).expect("c");
        conn.execute_batch(
            "INSERT INTO lessons (id, title, language, grade, subject, summary, entry, sort_order, origin, digest, total_size, imported_at)
             VALUES ('l', 'T', 'az', 1, 's', '', 'index.html', 0, 'local', x'00', 0, 0);",
        )
        .expect("lesson");
        conn.execute(
            "INSERT INTO files (lesson, path, hash, size, media_type) VALUES (1, 'index.html', ?1, 1, 'text/html')",
            [&th.0[..]],
        )
        .expect("file");
        // Cut off after two batches of one chunk: the version stays, the rest moves on the next open.
        assert!(!move_chunks(&mut conn, 12, 1, 2).expect("partial"));
        assert_eq!(schema_version(&conn).expect("version"), 11);
        migrate(&mut conn, Path::new(":memory:")).expect("migrate");
        assert_eq!(schema_version(&conn).expect("version"), SCHEMA_VERSION);
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM chunks ORDER BY id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("ids");
        assert_eq!(
            ids,
            [
                1 << 24,
                (1 << 24) | 1,
                (1 << 24) | 2,
                (2 << 24) | (1 << 22),
                (2 << 24) | (2 << 22)
            ]
        );
        let info = blob_info(&conn, rh).expect("raw info");
        assert_eq!(read_raw(&conn, &info).expect("raw"), raw);
        assert_eq!(verify_blob(&conn, &info).expect("verify"), None);
        let info = blob_info(&conn, th).expect("text info");
        assert_eq!(read_raw(&conn, &info).expect("text"), text);
        assert_eq!(
            read_variant(&conn, th, Variant::Gzip, 0..info.gzip_size).expect("gzip"),
            gzip
        );
        assert_eq!(verify_blob(&conn, &info).expect("verify"), None);
        // The counts and the triggers came along: the used text stays, the raw blob goes with
        // its chunks.
        assert_eq!(crate::store::miscounted_blobs(&conn).expect("refs"), 0);
        assert!(conn.execute("DELETE FROM blobs WHERE hash = ?1", [&th.0[..]]).is_err());
        conn.execute("DELETE FROM blobs WHERE hash = ?1", [&rh.0[..]])
            .expect("unused");
        let left: i64 = conn
            .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
            .expect("n");
        assert_eq!(left, 2);
    }

    #[test]
    fn a_newer_store_is_refused() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("set");
        let err = migrate(&mut conn, Path::new("x")).expect_err("too new");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
