//! The SQLite store: one file in WAL mode holding the catalogue of lessons and the
//! content-addressed blobs they point to. Synchronous; callers cross into async themselves.

mod accounts;
mod blobs;
mod catalogue;
mod readahead;
mod schema;
mod search;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use accounts::{
    AccountRow, AuditEntry, SessionRow, append_audit, count_role, delete_account, delete_session, get_account,
    get_session, hidden_ids, insert_account, insert_session, is_hidden, list_accounts, recent_audit, set_hidden,
    set_password_hash,
};
pub use blobs::{
    BlobInfo, BlobWriter, CHUNK_SIZE, Hash, Storage, StoredBlob, Variant, all_blobs, blob_exists, blob_info,
    blob_stats, count_missing_gzip, decompress, dictionary, dictionary_by_hash, discard_incomplete, gzip, hash_reader,
    missing_gzip, prepare_blob, put_dictionary, put_gzip, read_raw, read_variant, verify_blob, write_blob,
};
pub use catalogue::{
    FileEntry, FileHit, LessonFilter, LessonRow, NewLesson, Origin, Shelf, SyncResult, collect_garbage,
    collect_garbage_after_import, count_lessons, current_digest, files_of, files_using, find_file, get_lesson,
    get_manifest, get_part, index_lesson, latest_seq, lesson_parts, list_all_lessons, list_lessons, miscounted_blobs,
    part_of, prune_manifests, prune_parts, publishers, put_manifest, put_part, record_sync, remove_lesson,
    replace_lesson, replace_lesson_rows, set_seq, shelves, sync_results,
};
pub use readahead::{RandomReads, Reads};
pub use schema::{SCHEMA_VERSION, migrate, schema_version};
pub use search::{Found, IndexText, index_missing, lesson_text, search_index, settle_index};
pub use usage::{UsageRow, add_usage, usage_between};

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error(
        "the disk holding the store is full; free some space (or move the data folder to a bigger disk) and try again. Nothing already stored was lost"
    )]
    DiskFull,
    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "the store at {path} has schema version {found}, newer than this dars understands ({supported}); install a newer dars"
    )]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("blob {0} is corrupt: {1}")]
    Corrupt(String, String),
    #[error("not found")]
    NotFound,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull,
            _ => StoreError::Sqlite(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The name of the database file inside the data folder.
pub const DB_FILE: &str = "dars.sqlite";

/// Opens (creating if needed) the store in `data_dir` and brings its schema up to date.
pub fn open(data_dir: &Path) -> Result<Connection> {
    open_with(data_dir, Reads::AsUsual)
}

fn open_with(data_dir: &Path, reads: Reads) -> Result<Connection> {
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
        path: data_dir.to_path_buf(),
        source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
    })?;
    open_file_with(&data_dir.join(DB_FILE), reads)
}

/// Opens (creating if needed) the store file at `path` and brings its schema up to date.
pub fn open_file(path: &Path) -> Result<Connection> {
    open_file_with(path, Reads::AsUsual)
}

fn open_file_with(path: &Path, reads: Reads) -> Result<Connection> {
    let mut conn = connect(path, OpenFlags::default(), reads)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Opens an existing, migrated store for reading and writing without running migrations.
fn connect(path: &Path, flags: OpenFlags, reads: Reads) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if reads == Reads::Random {
        readahead::advise_random(path);
    }
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL lets readers (phones) go on while an import writes; synchronous=FULL makes every
    // commit durable before it returns, so a power cut never loses a committed lesson.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The file a connection's store lives in; None for an in-memory database (tests).
pub fn file_of(conn: &Connection) -> Option<&str> {
    conn.path().filter(|p| !p.is_empty())
}

/// A connection that only reads an existing, migrated store (for work spread over threads).
pub fn open_reader(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Log pages after which a commit checkpoints (SQLite's default; an import turns it off while
/// a [`Checkpointer`] does the work and back to this after).
pub const AUTOCHECKPOINT_PAGES: i64 = 1000;

/// Copies a store's write-ahead log into its database from a thread of its own, each time
/// [`Checkpointer::nudge`] is called, while the writer goes on appending to the log.
///
/// A big import writes every page twice (log, then database). SQLite's automatic checkpoint
/// does the second write on the writer's thread after every commit, so the writer stopped
/// for it (a third of a 200 MB import). A passive checkpoint never blocks the writer or a
/// reader; one that cannot finish is simply taken up again by the next nudge or by the
/// writer's own checkpoint once automatic checkpoints are back on.
#[derive(Debug)]
pub struct Checkpointer {
    nudge: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own read-write connection to the store file at `path`.
    pub fn start(path: &Path) -> Result<Self> {
        let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE, Reads::AsUsual)?;
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("dars-checkpoint".to_owned())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!("background checkpoint failed (the import's own checkpoint will do it): {e}");
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint of what the log holds now; a no-op while one is pending.
    pub fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            let _ = nudge.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    /// Waits for a checkpoint under way: the writer's next one then has little left to copy.
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A small pool of connections for the server's blocking readers. A `std::sync::Mutex` is
/// right here: it is held only to push or pop a connection, never across an await.
#[derive(Debug)]
pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    reads: Reads,
}

impl Pool {
    /// Opens the store (migrating it) and keeps that first connection for reuse.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, Reads::AsUsual)
    }

    /// [`Pool::open`] for connections that read their file as `reads` says, from their start.
    pub fn open_with(data_dir: &Path, reads: Reads) -> Result<Self> {
        let conn = open_with(data_dir, reads)?;
        Ok(Pool {
            path: data_dir.join(DB_FILE),
            idle: Mutex::new(vec![conn]),
            reads,
        })
    }

    /// The database file this pool reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with a connection from the pool, opening a new one when none is idle.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut conn = match taken {
            Some(conn) => conn,
            None => connect(&self.path, OpenFlags::default(), self.reads)?,
        };
        let result = f(&mut conn);
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < 16 {
            idle.push(conn);
        }
        result
    }
}

/// Seconds since the Unix epoch, for timestamps kept in the store.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_is_built_without_memory_statistics() {
        // Set in .cargo/config.toml (LIBSQLITE3_FLAGS): with the statistics, every allocation
        // of every connection takes one global mutex.
        let conn = Connection::open_in_memory().expect("memory database");
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
            .expect("compile options");
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "SQLite keeps memory statistics: {options:?}"
        );
    }

    #[test]
    fn a_nudged_checkpointer_copies_the_log_into_the_database() {
        let dir = tempfile::tempdir().expect("dir");
        let conn = open(dir.path()).expect("open");
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no automatic checkpoints");
        let db = dir.path().join(DB_FILE);
        let size = || std::fs::metadata(&db).expect("database file").len();
        let before = size();
        conn.execute_batch(
            "CREATE TABLE scratch (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO scratch SELECT randomblob(4000) FROM n;",
        )
        .expect("write 2 MB");
        assert_eq!(size(), before, "the commit went into the database, not the log");

        let checkpointer = Checkpointer::start(&db).expect("start");
        checkpointer.nudge();
        checkpointer.nudge(); // one already pending: not queued twice, never blocks
        drop(checkpointer); // waits for the checkpoint asked for
        assert!(
            size() >= before + 500 * 4000,
            "{} bytes: the log was not copied",
            size()
        );
        let rows: i64 = open_reader(&db)
            .expect("reader")
            .query_row("SELECT count(*) FROM scratch", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 500);
    }
}
