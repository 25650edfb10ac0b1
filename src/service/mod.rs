//! The operations that the command line and the web server share: import, lookup of lessons
//! and files, status and verification. No HTTP or CLI types in here; only this layer touches
//! the store.

pub mod accounts;
mod backup;
mod cache;
pub mod fleet;
mod health;
mod import;
pub mod jobs;
mod lessons;
mod logins;
mod media;
mod monitor;
pub mod offline;
pub mod package;
mod progress;
pub mod report;
mod scan;
mod search;
pub mod sticks;
pub mod sync;
pub mod upload;
pub mod usage;
mod variants;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

pub use accounts::{Account, NewSession, Role, Session};
pub use backup::{BackupReport, RestoreReport, backup_name};
pub use cache::BODY_LIMIT;
pub use health::{Disk, Health, disk_space};
pub use import::{ImportOptions, ImportReport};
pub use lessons::ConsoleLesson;
pub use media::{media_type, worth_compressing};
pub use monitor::Figures;
pub use offline::{OfflineFile, OfflineOptions, PackRequest, Separate};
pub use progress::{Progress, Snapshot};
pub use scan::{Scan, scan_folder, scan_memory};
pub use search::{MAX_RESULTS, SearchHit, SearchQuery, SnippetPart};
pub use usage::UseKind;
pub use verify::{Problem, VerifyReport};

use crate::lesson::LessonError;
use crate::store::{self, BlobInfo, FileEntry, FileHit, LessonFilter, LessonRow, Origin, Pool, StoreError, Variant};

/// Errors of the service layer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}{}", if source.kind() == std::io::ErrorKind::StorageFull { " (the disk is full; free some space and try again)" } else { "" })]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Lesson(Box<LessonError>),
    #[error("no lesson folders found in {0}: a lesson folder holds a lesson.toml (see README.md, \"Lesson format\")")]
    NothingToImport(PathBuf),
    #[error("{0}")]
    Package(Box<package::PackageError>),
    #[error("{0}")]
    Sync(Box<sync::SyncError>),
    #[error(
        "a running dars server is using the store in {0}; stop it first (sudo systemctl stop dars), or add --force to restore while it serves"
    )]
    InUse(PathBuf),
    #[error("{path} is not a dars backup: {reason}; nothing was changed")]
    NotABackup { path: PathBuf, reason: String },
    #[error("the backup {path} is damaged: {problems}; nothing was changed: restore an older backup")]
    BackupDamaged { path: PathBuf, problems: String },
    #[error("not found")]
    NotFound,
    /// Bad input from a console or `dars user` user: the message says what to change.
    #[error("{0}")]
    Refused(String),
    /// The account's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("wrong account name or password")]
    WrongPassword,
    /// Too many failed logins from this address or for this account: seconds to wait.
    #[error("too many failed logins; try again in {0} seconds")]
    Throttled(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for ServiceError {
    fn from(e: rusqlite::Error) -> Self {
        ServiceError::Store(StoreError::from(e))
    }
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> ServiceError {
    ServiceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn not_found(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound,
        other => ServiceError::Store(other),
    }
}

/// A lesson with its files, for the detail view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LessonDetail {
    #[serde(flatten)]
    pub lesson: LessonRow,
    pub file_list: Vec<FileEntry>,
}

/// What `dars status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub data_file: PathBuf,
    pub schema_version: i64,
    pub lessons: u64,
    pub blobs: u64,
    pub raw_bytes: u64,
    /// (encoding, blobs, stored bytes)
    pub stored: Vec<(String, u64, u64)>,
    pub file_bytes: u64,
    /// Text blobs whose gzip variant is still to be made (by `dars serve`, in the background).
    pub gzip_pending: u64,
    /// (fingerprint, public key, latest sequence installed)
    pub publishers: Vec<(String, String, u64)>,
    /// The last result of each scheduled sync.
    pub syncs: Vec<store::SyncResult>,
}

/// The lesson library: the store and the operations on it.
#[derive(Debug)]
pub struct Library {
    pool: Pool,
    caches: Arc<cache::Caches>,
    /// The package this store serves at /mirror/, with the cache generation it was made at.
    mirror: std::sync::Mutex<Option<(u64, Arc<package::Plan>)>>,
    /// Failed console logins, per client address and per account.
    logins: logins::Throttle,
    /// Saved files made lately (a pack's size is shown before it is downloaded, so the same
    /// file is asked for twice), by the cache generation they were made at.
    saved: quick_cache::sync::Cache<SavedKey, Arc<OfflineFile>, SavedWeight>,
    /// Usage counts not yet written to the store.
    usage: usage::Counter,
    /// The import or sync running now, for monitoring.
    work: monitor::CurrentWork,
    /// Wakes the background maker of gzip variants (see `variants`).
    wakeup: Arc<variants::Wakeup>,
}

type SavedKey = (u64, PackRequest, OfflineOptions);

/// Saved files kept in memory at most; bigger ones are made again when asked for.
const SAVED_BUDGET: u64 = 24 * 1024 * 1024;
const SAVED_ONE_MAX: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
struct SavedWeight;

impl quick_cache::Weighter<SavedKey, Arc<OfflineFile>> for SavedWeight {
    fn weight(&self, _key: &SavedKey, file: &Arc<OfflineFile>) -> u64 {
        file.html.len() as u64 + 256
    }
}

const SAMPLES_KEY: &str = "samples_loaded";
/// The lock file imports and syncs take, one writer at a time.
const WRITER_LOCK: &str = "dars.lock";

/// Marks the store in `data` as served by this process until the returned file is dropped, so
/// `dars restore` knows a server is using it. Waits while a restore is running.
pub fn hold_serving(data: &Path) -> Result<std::fs::File, ServiceError> {
    std::fs::create_dir_all(data).map_err(|e| io_error(data, e))?;
    if let Some(file) = backup::lock(data, backup::SERVING_LOCK, true, false)? {
        return Ok(file);
    }
    tracing::info!(
        "a restore is replacing the store in {}; waiting for it to finish",
        data.display()
    );
    backup::lock(data, backup::SERVING_LOCK, true, true)?
        .ok_or_else(|| ServiceError::Internal("the serving lock was not taken".to_owned()))
}

/// Restores the store in `data` from the backup `file`: the backup is copied, migrated and
/// verified whole first; then it replaces the store in one transaction. Refuses while a server
/// uses the store unless `force`; waits for a running import or sync.
pub fn restore(data: &Path, file: &Path, force: bool, progress: &Progress) -> Result<RestoreReport, ServiceError> {
    backup::restore(data, file, force, progress)
}

impl Drop for Library {
    /// Writes the usage counts still in memory, so a clean stop loses none.
    fn drop(&mut self) {
        if let Err(e) = self.flush_usage() {
            tracing::warn!("usage figures of the last minute were lost: {e}");
        }
    }
}

impl Library {
    /// Opens (creating or migrating) the store in `data_dir`.
    /// Lessons stored before search existed are indexed here, once.
    pub fn open(data_dir: &Path) -> Result<Self, ServiceError> {
        Self::open_with(data_dir, store::Reads::AsUsual)
    }

    /// [`Library::open`] whose store connections read their file as `reads` says.
    pub fn open_with(data_dir: &Path, reads: store::Reads) -> Result<Self, ServiceError> {
        let pool = Pool::open_with(data_dir, reads)?;
        let indexed = pool.with(store::index_missing)?;
        if indexed > 0 {
            tracing::info!("indexed {indexed} lessons for search");
        }
        Ok(Library {
            pool,
            caches: Arc::new(cache::Caches::new()),
            mirror: std::sync::Mutex::new(None),
            logins: logins::Throttle::default(),
            saved: quick_cache::sync::Cache::with_weighter(64, SAVED_BUDGET, SavedWeight),
            usage: usage::Counter::default(),
            work: monitor::CurrentWork::default(),
            wakeup: Arc::default(),
        })
    }

    /// Takes the store's writer lock for one import or sync, waiting while another process
    /// (or thread) holds it. Two writers fetching or storing the same content at once would
    /// trip over each other's half-written blobs; one after the other, the second skips what
    /// the first stored. The lock goes with the process, even when it is killed.
    fn writer_lock(&self) -> Result<std::fs::File, ServiceError> {
        let path = self.db_path().with_file_name(WRITER_LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!("another import or sync is writing to this store; waiting for it to finish");
                file.lock().map_err(|e| io_error(&path, e))?;
                Ok(file)
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
        }
    }

    /// Starts watching the store for commits by other processes (a concurrent `dars import`),
    /// so cached lookups follow them within 0.2 s. For long-running servers.
    pub fn watch_for_changes(&self) {
        cache::watch(&self.caches, self.db_path().to_path_buf());
    }

    /// The path of the database file.
    pub fn db_path(&self) -> &Path {
        self.pool.path()
    }

    /// Imports a folder of lesson folders (or one lesson folder) as local lessons.
    pub fn import_folder(
        &self,
        path: &Path,
        opts: &ImportOptions,
        progress: &Progress,
    ) -> Result<ImportReport, ServiceError> {
        let scan = scan_folder(path).map_err(|e| io_error(path, e))?;
        if scan.lessons.is_empty() && scan.errors.is_empty() {
            return Err(ServiceError::NothingToImport(path.to_path_buf()));
        }
        let _lock = self.writer_lock()?;
        let _work = self.work.begin("import", progress);
        let report = self
            .pool
            .with(|conn| Ok(import::import_scan(conn, scan, opts, progress)))?;
        self.caches.invalidate();
        report
    }

    /// On a store that has never held lessons, loads the sample lessons built into dars.
    /// Returns what was imported, or `None` when the store was already set up.
    pub fn load_samples_once(&self) -> Result<Option<ImportReport>, ServiceError> {
        let done = self.pool.with(|conn| {
            let flag: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [SAMPLES_KEY],
                |r| r.get(0),
            ))?;
            Ok(flag.is_some() || store::count_lessons(conn)? > 0)
        })?;
        let report = if done {
            None
        } else {
            let opts = ImportOptions {
                origin: Origin::Sample,
                ..ImportOptions::default()
            };
            let scan = crate::content::samples();
            let report = self
                .pool
                .with(|conn| Ok(import::import_scan(conn, scan, &opts, &Progress::new())))??;
            self.caches.invalidate();
            Some(report)
        };
        self.pool.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, '1')",
                [SAMPLES_KEY],
            )?;
            Ok(())
        })?;
        Ok(report)
    }

    /// Imports a package folder (or a USB stick holding `DARS/`): all its lessons or none.
    pub fn import_package(
        &self,
        path: &Path,
        opts: &package::ImportPackageOptions,
        progress: &Progress,
    ) -> Result<package::PackageReport, ServiceError> {
        let root = package::locate(path)?;
        let _lock = self.writer_lock()?;
        let _work = self.work.begin("import", progress);
        let report = self
            .pool
            .with(|conn| Ok(package::import_package(conn, &root, opts, progress)))?;
        self.caches.invalidate();
        report
    }

    /// Pulls the package at `url` (a published folder or a peer's /mirror/) into the store.
    pub fn sync(
        &self,
        url: &str,
        opts: &sync::SyncOptions,
        progress: &Progress,
    ) -> Result<sync::SyncReport, ServiceError> {
        let _lock = self.writer_lock()?;
        let _work = self.work.begin("sync", progress);
        let report = self.pool.with(|conn| Ok(sync::sync(conn, url, opts, progress)))?;
        self.caches.invalidate();
        report
    }

    /// Syncs from `url` and records the outcome for `dars status`.
    pub fn sync_and_record(
        &self,
        url: &str,
        opts: &sync::SyncOptions,
        progress: &Progress,
    ) -> Result<sync::SyncReport, ServiceError> {
        let result = self.sync(url, opts, progress);
        let (ok, message) = match &result {
            Ok(r) => (
                true,
                format!(
                    "{} new, {} updated, {} unchanged lessons; {} bytes downloaded",
                    r.package.added.len(),
                    r.package.updated.len(),
                    r.package.unchanged.len(),
                    r.bytes_downloaded
                ),
            ),
            Err(e) => (false, e.to_string()),
        };
        self.pool.with(|conn| store::record_sync(conn, url, ok, &message))?;
        result
    }

    /// Writes lessons (all when `ids` is empty) as a package into `dir/DARS/`.
    pub fn export(
        &self,
        dir: &Path,
        ids: &[String],
        progress: &Progress,
    ) -> Result<package::ExportReport, ServiceError> {
        self.pool.with(|conn| Ok(package::export(conn, dir, ids, progress)))?
    }

    /// Everything this store holds, as a package for peers; remade after any commit.
    pub fn mirror_plan(&self) -> Result<Arc<package::Plan>, ServiceError> {
        let generation = self.caches.generation();
        let lock = || self.mirror.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((made_at, plan)) = lock().as_ref()
            && *made_at == generation
        {
            return Ok(Arc::clone(plan));
        }
        let plan = Arc::new(self.pool.with(|conn| Ok(package::plan(conn, &[])))??);
        *lock() = Some((generation, Arc::clone(&plan)));
        Ok(plan)
    }

    /// A blob file of the mirror, in the encoding its manifest declares (`range` of it).
    pub fn mirror_blob(
        &self,
        info: &BlobInfo,
        encoding: crate::package::Encoding,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Vec<u8>, ServiceError> {
        self.pool
            .with(|conn| Ok(package::blob_bytes(conn, info, encoding, range)))?
    }

    /// Publishers whose packages are installed: (fingerprint, key, latest sequence).
    pub fn publishers(&self) -> Result<Vec<(String, String, u64)>, ServiceError> {
        Ok(self.pool.with(|conn| store::publishers(conn))?)
    }

    /// Visible lessons matching `filter`.
    pub fn lessons(&self, filter: &LessonFilter) -> Result<Vec<LessonRow>, ServiceError> {
        Ok(self.pool.with(|conn| store::list_lessons(conn, filter))?)
    }

    /// Every language, grade and subject that has lessons, with counts and sizes.
    pub fn shelves(&self) -> Result<Vec<store::Shelf>, ServiceError> {
        Ok(self.pool.with(|conn| store::shelves(conn))?)
    }

    /// One visible lesson, without its files.
    pub fn lesson_row(&self, id: &str) -> Result<LessonRow, ServiceError> {
        self.pool.with(|conn| store::get_lesson(conn, id)).map_err(not_found)
    }

    /// One lesson with its files.
    pub fn lesson(&self, id: &str) -> Result<LessonDetail, ServiceError> {
        self.pool
            .with(|conn| {
                if store::is_hidden(conn, id)? {
                    return Err(StoreError::NotFound);
                }
                let lesson = store::get_lesson(conn, id)?;
                let file_list = store::files_of(conn, id)?;
                Ok(LessonDetail { lesson, file_list })
            })
            .map_err(not_found)
    }

    /// The entry path of a visible lesson.
    pub fn entry_of(&self, id: &str) -> Result<String, ServiceError> {
        if self.hidden(id)? {
            return Err(ServiceError::NotFound);
        }
        self.pool
            .with(|conn| store::get_lesson(conn, id))
            .map(|l| l.meta.entry)
            .map_err(not_found)
    }

    /// A file of a visible lesson, if the lookup is cached (never blocks).
    pub fn cached_file(&self, id: &str, path: &str) -> Option<FileHit> {
        self.caches.file(id, path)
    }

    /// A file of a visible lesson.
    pub fn find_file(&self, id: &str, path: &str) -> Result<FileHit, ServiceError> {
        if let Some(hit) = self.caches.file(id, path) {
            return Ok(hit);
        }
        // Read the generation first: a commit during the query makes this entry stale at once.
        let generation = self.caches.generation();
        let hit = self
            .pool
            .with(|conn| store::find_file(conn, id, path))?
            .ok_or(ServiceError::NotFound)?;
        self.caches.put_file(id, path, generation, hit.clone());
        Ok(hit)
    }

    /// A whole variant of a blob, if cached (never blocks).
    pub fn cached_body(&self, hash: store::Hash, variant: Variant) -> Option<Bytes> {
        self.caches.body(hash, variant)
    }

    /// A whole variant of a blob (`Raw` of text is decompressed); small ones are cached.
    pub fn body(&self, info: &BlobInfo, variant: Variant) -> Result<Bytes, ServiceError> {
        if let Some(body) = self.caches.body(info.hash, variant) {
            return Ok(body);
        }
        if variant == Variant::Gzip && info.storage == store::Storage::Text && !info.has_gzip() {
            return self.gzip_on_the_fly(info);
        }
        let bytes = self.pool.with(|conn| match (info.storage, variant) {
            (store::Storage::Text, Variant::Raw) => store::read_raw(conn, info),
            _ => store::read_variant(conn, info.hash, variant, 0..info.variant_len(variant)),
        })?;
        let body = Bytes::from(bytes);
        self.caches.put_body(info.hash, variant, body.clone());
        Ok(body)
    }

    /// Bytes `range` of one stored variant of a blob.
    pub fn read(
        &self,
        hash: store::Hash,
        variant: Variant,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, ServiceError> {
        Ok(self.pool.with(|conn| store::read_variant(conn, hash, variant, range))?)
    }

    /// The raw bytes of a blob (decompressed when stored as text), read whole.
    pub fn read_raw(&self, info: &BlobInfo) -> Result<Vec<u8>, ServiceError> {
        Ok(self.pool.with(|conn| store::read_raw(conn, info))?)
    }

    /// The saved file (one self-contained HTML file) of a lesson or a pack of lessons.
    /// `NotFound` when a lesson is not there.
    pub fn offline_file(&self, request: &PackRequest, opts: &OfflineOptions) -> Result<Arc<OfflineFile>, ServiceError> {
        let key = (self.caches.generation(), request.clone(), opts.clone());
        if let Some(file) = self.saved.get(&key) {
            return Ok(file);
        }
        let file = Arc::new(self.pool.with(|conn| Ok(offline::build(conn, request, opts)))??);
        if file.html.len() <= SAVED_ONE_MAX {
            self.saved.insert(key, Arc::clone(&file));
        }
        Ok(file)
    }

    /// Number of visible lessons (for health checks).
    pub fn count_lessons(&self) -> Result<u64, ServiceError> {
        Ok(self.pool.with(|conn| store::count_lessons(conn))?)
    }

    /// Figures for `dars status`.
    pub fn status(&self) -> Result<Status, ServiceError> {
        let file_bytes = self.store_bytes();
        self.pool
            .with(|conn| {
                let (blobs, raw_bytes, per) = store::blob_stats(conn)?;
                Ok(Status {
                    data_file: self.db_path().to_path_buf(),
                    schema_version: store::schema_version(conn)?,
                    lessons: store::count_lessons(conn)?,
                    blobs,
                    raw_bytes,
                    stored: per.into_iter().map(|(v, n, b)| (v.name().to_owned(), n, b)).collect(),
                    file_bytes,
                    gzip_pending: store::count_missing_gzip(conn)?,
                    publishers: store::publishers(conn)?,
                    syncs: store::sync_results(conn)?,
                })
            })
            .map_err(ServiceError::from)
    }

    /// Writes a consistent copy of the store into `dir` (a USB stick), named after `centre`
    /// and the date; imports and the server go on meanwhile.
    pub fn backup(&self, dir: &Path, centre: &str, progress: &Progress) -> Result<BackupReport, ServiceError> {
        let name = backup_name(centre, std::time::SystemTime::now());
        let size = self.status().map(|s| s.file_bytes).unwrap_or(0);
        self.pool
            .with(|conn| Ok(backup::backup(conn, size, dir, &name, progress)))?
    }

    /// Re-hashes every blob and checks the database; names every lesson file that is damaged.
    pub fn verify(&self, progress: &Progress) -> Result<VerifyReport, ServiceError> {
        Ok(self.pool.with(|conn| verify::verify_store(conn, progress))?)
    }

    /// The database's quick check and missing blobs, without re-hashing every blob.
    pub fn quick_check(&self) -> Result<VerifyReport, ServiceError> {
        Ok(self.pool.with(|conn| verify::quick_check(conn))?)
    }
}
