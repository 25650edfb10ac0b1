//! In-memory caches in front of the store, so the pages every phone asks for at 9 o'clock are
//! answered without touching SQLite or leaving the async threads.
//!
//! - file lookups `(lesson, path) -> FileHit`, tagged with a generation that moves whenever
//!   any process commits to the store (seen through `PRAGMA data_version` within 0.2 s);
//! - whole small bodies `(blob, variant) -> Bytes`: blobs are immutable, so these never go
//!   stale and are only evicted for space.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache as QuickCache;

use crate::store::{FileHit, Hash, Variant};

/// Bodies up to this size are cached whole.
pub const BODY_LIMIT: u64 = 256 * 1024;
/// Memory for cached bodies; with the rest of the server this keeps RSS well under 64 MB.
const BODY_BUDGET: u64 = 16 * 1024 * 1024;
const FILE_ENTRIES: usize = 20_000;
const WATCH_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
struct BodyWeight;

impl Weighter<(Hash, Variant), Bytes> for BodyWeight {
    fn weight(&self, _key: &(Hash, Variant), body: &Bytes) -> u64 {
        body.len() as u64 + 64
    }
}

#[derive(Debug)]
pub struct Caches {
    /// File lookups are cached only while a watcher keeps them fresh.
    watching: std::sync::atomic::AtomicBool,
    generation: AtomicU64,
    files: QuickCache<(String, String), (u64, FileHit)>,
    bodies: QuickCache<(Hash, Variant), Bytes, BodyWeight>,
}

impl Caches {
    pub fn new() -> Self {
        Caches {
            watching: std::sync::atomic::AtomicBool::new(false),
            generation: AtomicU64::new(0),
            files: QuickCache::new(FILE_ENTRIES),
            bodies: QuickCache::with_weighter(4096, BODY_BUDGET, BodyWeight),
        }
    }

    /// Forgets every file lookup (the catalogue changed).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn file(&self, lesson: &str, path: &str) -> Option<FileHit> {
        if !self.watching.load(Ordering::Acquire) {
            return None;
        }
        let key = (lesson.to_owned(), path.to_owned());
        let (generation, hit) = self.files.get(&key)?;
        (generation == self.generation.load(Ordering::Acquire)).then_some(hit)
    }

    /// Remembers a lookup made when the generation was `generation`.
    pub fn put_file(&self, lesson: &str, path: &str, generation: u64, hit: FileHit) {
        self.files
            .insert((lesson.to_owned(), path.to_owned()), (generation, hit));
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn body(&self, hash: Hash, variant: Variant) -> Option<Bytes> {
        self.bodies.get(&(hash, variant))
    }

    pub fn put_body(&self, hash: Hash, variant: Variant, body: Bytes) {
        if body.len() as u64 <= BODY_LIMIT {
            self.bodies.insert((hash, variant), body);
        }
    }
}

/// Watches the store file for commits by any connection or process and invalidates file
/// lookups when one happens. The thread ends when the caches are dropped.
pub fn watch(caches: &Arc<Caches>, db: PathBuf) {
    caches.watching.store(true, Ordering::Release);
    let weak: Weak<Caches> = Arc::downgrade(caches);
    let spawned = std::thread::Builder::new()
        .name("dars-watch".to_owned())
        .spawn(move || {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = match rusqlite::Connection::open_with_flags(&db, flags) {
                Ok(conn) => conn,
                Err(e) => return tracing::warn!("cannot watch {} for changes: {e}", db.display()),
            };
            let version = |conn: &rusqlite::Connection| -> Option<i64> {
                conn.pragma_query_value(None, "data_version", |r| r.get(0)).ok()
            };
            let mut last = version(&conn);
            loop {
                std::thread::sleep(WATCH_EVERY);
                let Some(caches) = weak.upgrade() else { return };
                let now = version(&conn);
                if now != last {
                    caches.invalidate();
                    last = now;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the change watcher: {e}");
    }
}
