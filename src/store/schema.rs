//! Schema migrations keyed on `PRAGMA user_version`: append-only, each in its own transaction.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

/// Each entry moves the schema from version `i` to `i + 1`. Never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: blobs, their chunks, and the catalogue.
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
    // 2: signed packages: the manifests as received (to re-export and mirror them verbatim),
    // zstd dictionaries, and which dictionary a stored zstd variant needs.
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
    // 3: the last result of each scheduled sync, for `dars status` and the console.
    r"
    CREATE TABLE sync_results (
        url TEXT PRIMARY KEY,
        finished_at INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        message TEXT NOT NULL
    ) WITHOUT ROWID;
    ",
    // 4: the console: accounts of teachers and technicians, their sessions, the audit log of
    // every change made through the console or `dars user`, and lessons hidden from phones
    // (kept by id, so a hidden lesson stays hidden when a new version of it arrives).
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
    // 5: full-text search. lesson_text keeps each lesson's visible text as written (for
    // snippets); lesson_fts indexes the folded title, summary and text (`ders` finds `dərs`)
    // and stores no copy of them. The trigger drops both with their lesson on every path that
    // deletes one, in the same transaction, so search never finds a lesson that is gone.
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
    // 6: usage figures, with nothing personal: how often each lesson was opened (kind 0)
    // and saved for offline use (kind 1) on each day (days since 1970-01-01, UTC).
    r"
    CREATE TABLE usage (
        day INTEGER NOT NULL,
        lesson TEXT NOT NULL,
        kind INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (day, lesson, kind)
    ) WITHOUT ROWID;
    ",
    // 7: manifest texts move to a rowid table of their own, each stored as zstd against the
    // previous text of its publisher (a delta), so an update that changes 1 % of the lessons
    // stores about 1 % of a manifest instead of all of it. Existing texts become the first
    // of their chains; their bytes are kept as they are (zstd, or JSON from version 2).
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
    // 8: lesson parts of signed roots (dars-manifest/2), kept by hash exactly as received
    // (to re-export and mirror them), and each lesson's part: an update whose root names the
    // same part for a lesson leaves that lesson unread and unwritten.
    r"
    CREATE TABLE lesson_parts (
        id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        data BLOB NOT NULL
    );
    ALTER TABLE lessons ADD COLUMN part BLOB;
    CREATE INDEX lessons_part ON lessons (part) WHERE part IS NOT NULL;
    ",
    // 9: each blob counts the files that use it (kept by triggers), so an update that changes
    // a file touches the rows of its old and new contents instead of two random pages of an
    // index of every file's hash; files is rebuilt without its foreign key to blobs (which
    // needed that index to check each deleted blob) and the triggers keep what it guaranteed:
    // a file names a stored content, and a content in use is never deleted.
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
    ",
    // 10: each lesson's sequence in a narrow table of its own: a new root moves the sequence of
    // every lesson it keeps, which rewrote every page of the wide lessons table (23 pages for
    // 312 lessons) and now rewrites one or two.
    r"
    CREATE TABLE lesson_seqs (
        lesson INTEGER PRIMARY KEY REFERENCES lessons(rowid) ON DELETE CASCADE,
        seq INTEGER NOT NULL
    );
    INSERT INTO lesson_seqs (lesson, seq) SELECT rowid, seq FROM lessons;
    ALTER TABLE lessons DROP COLUMN seq;
    ",
    // 11: the search index merges its segments only when a level holds 16 of them (FTS5's
    // crisis merge) instead of a little on every write: an update of a few lessons then writes
    // its own segment (about 50 pages for 3 lessons) instead of that plus 100-300 pages of
    // merging most of the time; a search reads a few more segments, of a small index.
    r"
    INSERT INTO lesson_fts (lesson_fts, rank) VALUES ('automerge', 0);
    ",
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
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        let to = i64::try_from(index + 1).unwrap_or(i64::MAX);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        for (i, sql) in MIGRATIONS.iter().take(3).enumerate() {
            conn.execute_batch(sql).expect("old migration");
            conn.pragma_update(None, "user_version", i + 1).expect("version");
        }
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
    fn a_newer_store_is_refused() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("set");
        let err = migrate(&mut conn, Path::new("x")).expect_err("too new");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
