//! `dars sync URL`: pulls a package from any plain HTTP(S) location (a published folder on
//! nginx, a CDN or bucket, a peer's `/mirror/`). Signatures are checked first; only missing
//! blobs are fetched, each checked against its hash; large blobs are written into the store as
//! they arrive and resume with a Range request after a kill or power cut; the lessons become
//! visible in one transaction. Bandwidth can be capped, transient errors are retried.

use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use super::package::{
    Dicts, ImportPackageOptions, PackageError, PackageReport, check_sequences, commit, decode_blob, flush,
    load_dictionaries, needed_blobs, stored_first, stored_parts, verify_manifests,
};
use super::{Progress, ServiceError};
use crate::package::{Encoding, INDEX_FILE, Index, ManifestFile, blob_path, check_index, part_count, part_path};
use crate::store::{self, BlobWriter, Hash, StoredBlob};

/// Text (zstd) blobs are fetched whole; raw blobs above this are streamed into the store.
const STREAM_ABOVE: u64 = 1024 * 1024;
/// Text blobs are committed (as unreferenced blobs) at least this often, so a killed sync
/// fetches them again only if they arrived in the last moments.
const COMMIT_EVERY: Duration = Duration::from_secs(2);
const COMMIT_BYTES: u64 = 4 * 1024 * 1024;
/// Streamed blobs are committed every this many bytes, the most a killed sync refetches.
const RESUME_STEP: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub package: ImportPackageOptions,
    /// Bytes per second, or `None` for no cap.
    pub max_rate: Option<u64>,
    /// Attempts per request for transient errors (connection lost, timeouts, 5xx).
    pub attempts: u32,
    /// How long to wait for the mirror to answer (and between bytes of a body).
    pub timeout: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            package: ImportPackageOptions::default(),
            max_rate: None,
            attempts: 5,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
pub struct SyncReport {
    pub package: PackageReport,
    pub bytes_downloaded: u64,
    pub resumed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "{url} answered {status}: the mirror does not have this file. Check the address (it should be the folder holding {INDEX_FILE}); nothing was changed"
    )]
    NotThere { url: String, status: u16 },
    #[error(
        "{url} failed after {attempts} tries: {last}. Nothing already stored was lost; run the sync again later to continue"
    )]
    GaveUp { url: String, attempts: u32, last: String },
    #[error("{0} is not an http:// or https:// address")]
    BadUrl(String),
}

/// Receives a body piece by piece: (offset in the file, bytes).
type Sink<'a> = dyn FnMut(u64, &[u8]) -> Result<(), ServiceError> + 'a;

/// One HTTP client for a sync: timeouts, retries with backoff, the rate cap.
struct Fetcher {
    /// The store side is synchronous; one small runtime drives the HTTP client.
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
    opts: SyncOptions,
    limiter: Limiter,
    downloaded: u64,
}

/// A token bucket for `--max-rate`: sleeps so that the average stays under the cap.
struct Limiter {
    rate: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Limiter {
    fn take(&mut self, n: usize) {
        let Some(rate) = self.rate else { return };
        self.bytes += n as u64;
        let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        // Do not let a long idle pause build up a burst.
        if elapsed > due + Duration::from_secs(1) {
            self.started = Instant::now();
            self.bytes = 0;
        }
    }
}

impl Fetcher {
    fn new(url: &str, opts: &SyncOptions) -> Result<Self, ServiceError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ServiceError::Sync(Box::new(SyncError::BadUrl(url.to_owned()))));
        }
        // Either the folder holding package.json, or the address of package.json itself.
        let folder = url.strip_suffix(INDEX_FILE).unwrap_or(url);
        let base = if folder.ends_with('/') {
            folder.to_owned()
        } else {
            format!("{folder}/")
        };
        install_crypto();
        // Proxies come from HTTP_PROXY / HTTPS_PROXY / NO_PROXY, as reqwest does by default.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(opts.timeout)
            .user_agent(concat!("dars/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ServiceError::Internal(format!("HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ServiceError::Internal(format!("runtime: {e}")))?;
        Ok(Fetcher {
            runtime,
            client,
            base,
            opts: opts.clone(),
            limiter: Limiter {
                rate: opts.max_rate,
                started: Instant::now(),
                bytes: 0,
            },
            downloaded: 0,
        })
    }

    fn url(&self, rel: &str) -> String {
        format!("{}{rel}", self.base)
    }

    /// GETs `rel` (from byte `from` on), retrying transient failures with backoff, and feeds
    /// the body to `sink` in pieces. `sink` is told where each attempt starts again.
    fn get(&mut self, rel: &str, from: u64, sink: &mut Sink<'_>) -> Result<(), ServiceError> {
        let url = self.url(rel);
        let mut at = from;
        let mut last = String::new();
        for attempt in 0..self.opts.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 * (1 << attempt.min(5))));
            }
            let mut request = self.client.get(&url);
            if at > 0 {
                request = request.header(reqwest::header::RANGE, format!("bytes={at}-"));
            }
            let mut response = match self.runtime.block_on(async { request.send().await }) {
                Ok(r) => r,
                Err(e) => {
                    last = describe(&e);
                    continue;
                }
            };
            let status = response.status();
            if status.as_u16() == 404 || status.as_u16() == 410 || status.as_u16() == 403 {
                return Err(ServiceError::Sync(Box::new(SyncError::NotThere {
                    url,
                    status: status.as_u16(),
                })));
            }
            if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                last = format!("HTTP {status}");
                continue;
            }
            if !status.is_success() {
                return Err(ServiceError::Sync(Box::new(SyncError::NotThere {
                    url,
                    status: status.as_u16(),
                })));
            }
            if at > 0 && status.as_u16() != 206 {
                // The server ignored the Range: start over from the beginning.
                at = 0;
            }
            let outcome = loop {
                match self.runtime.block_on(response.chunk()) {
                    Ok(None) => break Ok(()),
                    Ok(Some(bytes)) => {
                        // Small pieces keep the rate cap smooth.
                        for piece in bytes.chunks(16 * 1024) {
                            self.limiter.take(piece.len());
                            self.downloaded += piece.len() as u64;
                            sink(at, piece)?;
                            at += piece.len() as u64;
                        }
                    }
                    Err(e) => break Err(describe(&e)),
                }
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(ServiceError::Sync(Box::new(SyncError::GaveUp {
            url,
            attempts: self.opts.attempts.max(1),
            last,
        })))
    }

    fn get_all(&mut self, rel: &str) -> Result<Vec<u8>, ServiceError> {
        let mut body = Vec::new();
        self.get(rel, 0, &mut |at, piece| {
            body.truncate(usize::try_from(at).unwrap_or(usize::MAX));
            body.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(body)
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the mirror did not answer in time".to_owned()
    } else if e.is_connect() {
        format!("cannot connect ({e})")
    } else {
        e.to_string()
    }
}

/// rustls needs a process-wide crypto provider (HTTP clients in tests call this too); ring
/// builds quickly and needs no C toolchain
/// beyond what SQLite already needs.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Pulls the package at `url` into the store.
pub fn sync(
    conn: &mut Connection,
    url: &str,
    opts: &SyncOptions,
    progress: &Progress,
) -> Result<SyncReport, ServiceError> {
    // The store is read at random from here on, as in a package import.
    let _reads = store::RandomReads::start(conn);
    let mut fetcher = Fetcher::new(url, opts)?;
    progress.set_current("package.json");
    let index_bytes = fetcher.get_all(INDEX_FILE)?;
    let index: Index = serde_json::from_slice(&index_bytes)
        .map_err(|e| super::package::document_error(&fetcher.url(INDEX_FILE), &e))?;
    check_index(&index).map_err(|problem| PackageError::BadDocument {
        file: fetcher.url(INDEX_FILE),
        problem,
    })?;
    let mut fetch_error = None;
    let mut read = |rel: &str| -> Result<Vec<u8>, PackageError> {
        fetcher.get_all(rel).map_err(|e| {
            let message = e.to_string();
            fetch_error = Some(e);
            PackageError::BadDocument {
                file: rel.to_owned(),
                problem: message,
            }
        })
    };
    let verified = verify_manifests(&index, &mut read, &opts.package.trusted, true, &stored_parts(conn));
    let manifests = match verified {
        Ok(m) => m,
        Err(e) => return Err(fetch_error.take().unwrap_or_else(|| e.into())),
    };
    let loaded = load_dictionaries(&manifests, &mut stored_first(conn, &mut read));
    let dicts = match loaded {
        Ok(d) => d,
        Err(e) => return Err(fetch_error.take().unwrap_or_else(|| e.into())),
    };
    check_sequences(conn, &manifests, opts.package.allow_downgrade)?;
    let mut report = SyncReport::default();
    let needed = needed_blobs(conn, &manifests, &mut report.package)?;
    progress.set_totals(needed.len() as u64, needed.iter().map(|(_, f)| f.stored_size).sum());

    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = fetch_blobs(
        conn,
        &mut fetcher,
        &needed,
        index.part_size,
        &dicts,
        progress,
        &mut report,
    )
    .and_then(|mut last| commit(conn, &manifests, &dicts, &mut last, &mut report.package));
    conn.pragma_update(None, "synchronous", "FULL")?;
    report.bytes_downloaded = fetcher.downloaded;
    result?;
    Ok(report)
}

fn fetch_blobs(
    conn: &mut Connection,
    fetcher: &mut Fetcher,
    needed: &[(&str, &ManifestFile)],
    part_size: u64,
    dicts: &Dicts,
    progress: &Progress,
    report: &mut SyncReport,
) -> Result<Vec<StoredBlob>, ServiceError> {
    let mut batch: Vec<StoredBlob> = Vec::new();
    let mut batch_bytes = 0u64;
    let mut last_commit = Instant::now();
    for (lesson, file) in needed {
        progress.set_current(lesson);
        let hash = file.hash().unwrap_or(Hash([0; 32]));
        if file.encoding == Encoding::Raw && file.size > STREAM_ABOVE {
            // Commit what is waiting first: a long download must not hold it hostage.
            flush(conn, &mut batch, dicts)?;
            batch_bytes = 0;
            report.resumed += stream_blob(conn, fetcher, lesson, file, part_size, progress)?;
        } else {
            let parts = part_count(file.stored_size, part_size);
            let mut bytes = Vec::with_capacity(usize::try_from(file.stored_size).unwrap_or(0));
            for n in 0..parts {
                let rel = part_path(hash, n, parts);
                bytes.extend(fetcher.get_all(&rel)?);
            }
            let blob = decode_blob(lesson, file, bytes, dicts)?;
            batch_bytes += blob.variants.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
            batch.push(blob);
            progress.add_bytes(file.stored_size);
        }
        report.package.blobs_written += 1;
        report.package.bytes_read += file.stored_size;
        progress.item_done();
        if batch_bytes >= COMMIT_BYTES || last_commit.elapsed() >= COMMIT_EVERY {
            flush(conn, &mut batch, dicts)?;
            batch_bytes = 0;
            last_commit = Instant::now();
        }
    }
    Ok(batch)
}

/// Streams a large raw blob into the store, resuming after what an earlier, killed sync
/// stored. Returns how many bytes were already there.
fn stream_blob(
    conn: &mut Connection,
    fetcher: &mut Fetcher,
    lesson: &str,
    file: &ManifestFile,
    part_size: u64,
    progress: &Progress,
) -> Result<u64, ServiceError> {
    let hash = file.hash().unwrap_or(Hash([0; 32]));
    let mut hasher = blake3::Hasher::new();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mut writer, resumed) = BlobWriter::resume(&tx, hash, file.size, &mut hasher)?;
    tx.commit()?;
    progress.add_bytes(resumed);
    let parts = part_count(file.size, part_size);
    let mut done = resumed;
    // Plain BEGIN/COMMIT on a shared connection, so the body's sink can commit every few MB:
    // what has arrived survives a kill and the next sync asks only for the rest.
    let conn: &Connection = conn;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut since_commit = 0u64;
    let mut fetched = Ok(());
    for n in 0..parts {
        let start = n * part_size;
        let end = (start + part_size).min(file.size);
        if done >= end {
            continue;
        }
        let rel = part_path(hash, n, parts);
        let offset = done - start;
        let mut sink = |at: u64, piece: &[u8]| -> Result<(), ServiceError> {
            let mut absolute = start + at;
            let mut piece = piece;
            if absolute < done {
                // A mirror that ignores Range sends the file from its start again: skip what
                // is already stored.
                let skip = usize::try_from(done - absolute).unwrap_or(usize::MAX).min(piece.len());
                piece = &piece[skip..];
                absolute += skip as u64;
                if piece.is_empty() {
                    return Ok(());
                }
            }
            if absolute != done {
                return Err(ServiceError::Internal(format!(
                    "{rel}: the mirror sent byte {absolute} where byte {done} was expected"
                )));
            }
            hasher.update(piece);
            writer.write(conn, piece)?;
            done += piece.len() as u64;
            since_commit += piece.len() as u64;
            progress.add_bytes(piece.len() as u64);
            if since_commit >= RESUME_STEP {
                conn.execute_batch("COMMIT; BEGIN IMMEDIATE")?;
                since_commit = 0;
            }
            Ok(())
        };
        fetched = fetcher.get(&rel, offset, &mut sink);
        if fetched.is_err() {
            break;
        }
    }
    // Keep what arrived, even when the transfer failed: the next sync resumes from it.
    conn.execute_batch("COMMIT")?;
    fetched?;
    if done != file.size || Hash(*hasher.finalize().as_bytes()) != hash {
        // Nothing of it can be trusted: the next sync starts this blob afresh.
        store::discard_incomplete(conn, hash)?;
        return Err(PackageError::DamagedBlob {
            lesson: lesson.to_owned(),
            path: file.path.clone(),
            file: blob_path(hash, None),
            problem: "what the mirror sent does not match the manifest's hash; it was altered or damaged there"
                .to_owned(),
        }
        .into());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let finished = writer.finish(conn);
    conn.execute_batch(if finished.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    finished?;
    Ok(resumed)
}

/// Syncs from each upstream now and then every `every`, until `stop` is set; each result is
/// recorded for `dars status`. Failures are logged and tried again at the next round.
pub fn run_schedule(
    library: &super::Library,
    upstreams: &[String],
    every: Duration,
    opts: &SyncOptions,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    // Let the server answer its first phones before the first sync.
    let mut next = Instant::now() + Duration::from_secs(5);
    while !stop.load(Ordering::Acquire) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        for url in upstreams {
            if stop.load(Ordering::Acquire) {
                return;
            }
            match library.sync_and_record(url, opts, &Progress::new()) {
                Ok(report) => tracing::info!(
                    "sync from {url}: {} new, {} updated lessons, {} bytes downloaded",
                    report.package.added.len(),
                    report.package.updated.len(),
                    report.bytes_downloaded
                ),
                Err(e) => tracing::warn!("sync from {url} failed: {e}"),
            }
        }
        next = Instant::now() + every;
    }
}
