//! Gzip variants made after an import. A package import stores text as the publisher's zstd
//! only, so the stick is read at disk speed; the gzip variant each text file needs for phones
//! is made afterwards, one batch at a time, by a background thread of `dars serve`. Until a
//! blob's variant is stored, a phone that takes only gzip gets it compressed on the fly, with
//! the same bytes (libdeflate level 9 is deterministic) that are stored later.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::TransactionBehavior;

use super::{Library, ServiceError};
use crate::store::{self, BlobInfo, Hash, Variant};

/// Blobs looked at per query for missing variants.
const SCAN_ROWS: usize = 64;
/// A batch of new variants is committed once it holds about this many bytes.
const COMMIT_BYTES: usize = 4 * 1024 * 1024;
/// The worker looks for work this often even when nothing wakes it.
const IDLE_WAIT: Duration = Duration::from_secs(2);
/// After an error (a full disk, a busy store) the worker waits this long before trying again.
const RETRY_WAIT: Duration = Duration::from_secs(30);
/// Blobs asked for on the fly are remembered (to be done first) up to this many.
const WANTED_MAX: usize = 256;

/// Wakes the worker; blobs that phones asked for go first.
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    wanted: Mutex<Vec<Hash>>,
    signal: Condvar,
    running: AtomicBool,
}

impl Wakeup {
    /// Asks for `hash`'s variant soon (a phone is waiting for it now).
    pub(crate) fn want(&self, hash: Hash) {
        let mut wanted = self.wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if wanted.len() < WANTED_MAX && !wanted.contains(&hash) {
            wanted.push(hash);
        }
        self.signal.notify_one();
    }

    /// Waits up to `timeout` for a wake-up; returns the blobs asked for meanwhile.
    fn wait(&self, timeout: Duration) -> Vec<Hash> {
        let wanted = self.wanted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut wanted, _) = self
            .signal
            .wait_timeout_while(wanted, timeout, |w| w.is_empty())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *wanted)
    }
}

impl Library {
    /// The gzip variant of a text blob whose variant is not stored yet, made now. Small ones
    /// are kept in the body cache, and the worker is told to store it.
    pub(crate) fn gzip_on_the_fly(&self, info: &BlobInfo) -> Result<Bytes, ServiceError> {
        if let Some(body) = self.caches.body(info.hash, Variant::Gzip) {
            return Ok(body);
        }
        let raw = self.pool.with(|conn| store::read_raw(conn, info))?;
        let body = Bytes::from(store::gzip(&raw));
        self.caches.put_body(info.hash, Variant::Gzip, body.clone());
        self.wakeup.want(info.hash);
        Ok(body)
    }

    /// Makes every gzip variant still missing, in batches, until there are none or `stop`
    /// says so. Returns how many were stored. Safe to run beside imports and other servers:
    /// a blob that got its variant meanwhile, or went away, is skipped.
    pub fn make_gzip_variants(&self, stop: &dyn Fn() -> bool) -> Result<u64, ServiceError> {
        let mut made = 0;
        let mut after = 0;
        while !stop() {
            let todo = self.pool.with(|conn| store::missing_gzip(conn, after, SCAN_ROWS))?;
            let Some(&(last, _)) = todo.last() else { break };
            after = last;
            let infos: Vec<BlobInfo> = todo.into_iter().map(|(_, info)| info).collect();
            made += self.gzip_batch(&infos, stop)?;
        }
        Ok(made)
    }

    /// Makes and stores the variants of `infos`, committing every `COMMIT_BYTES`.
    fn gzip_batch(&self, infos: &[BlobInfo], stop: &dyn Fn() -> bool) -> Result<u64, ServiceError> {
        let mut made = 0;
        let mut pending: Vec<(Hash, Bytes)> = Vec::new();
        let mut pending_bytes = 0;
        for info in infos {
            if stop() {
                break;
            }
            let body = match self.caches.body(info.hash, Variant::Gzip) {
                Some(body) => body,
                None => match self.pool.with(|conn| store::read_raw(conn, info)) {
                    Ok(raw) => Bytes::from(store::gzip(&raw)),
                    // Collected by an import meanwhile: nothing to do.
                    Err(store::StoreError::NotFound) => continue,
                    Err(e) => return Err(e.into()),
                },
            };
            pending_bytes += body.len();
            pending.push((info.hash, body));
            if pending_bytes >= COMMIT_BYTES {
                made += self.store_gzip(&mut pending)?;
                pending_bytes = 0;
            }
        }
        made += self.store_gzip(&mut pending)?;
        Ok(made)
    }

    fn store_gzip(&self, pending: &mut Vec<(Hash, Bytes)>) -> Result<u64, ServiceError> {
        if pending.is_empty() {
            return Ok(0);
        }
        let made = self.pool.with(|conn| {
            // A variant lost to a power cut is simply made again: no need to wait for the disk.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            let result = (|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut made = 0;
                for (hash, body) in pending.iter() {
                    made += u64::from(store::put_gzip(&tx, *hash, body)?);
                }
                tx.commit()?;
                Ok(made)
            })();
            conn.pragma_update(None, "synchronous", "FULL")?;
            result
        })?;
        pending.clear();
        Ok(made)
    }

    /// The blobs phones asked for first, then every other missing variant.
    fn variant_pass(&self, wanted: &[Hash], stop: &dyn Fn() -> bool) -> Result<u64, ServiceError> {
        let infos = self.pool.with(|conn| {
            let mut infos = Vec::new();
            for &hash in wanted {
                match store::blob_info(conn, hash) {
                    Ok(info) if info.storage == store::Storage::Text && !info.has_gzip() => infos.push(info),
                    Ok(_) | Err(store::StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(infos)
        })?;
        Ok(self.gzip_batch(&infos, stop)? + self.make_gzip_variants(stop)?)
    }

    /// Starts the thread that makes missing gzip variants: at once, after every commit any
    /// process makes to the store, and first for blobs phones asked for. It ends when the
    /// library is dropped.
    pub fn make_variants_in_background(self: &Arc<Self>) {
        if self.wakeup.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Library> = Arc::downgrade(self);
        let wakeup = Arc::clone(&self.wakeup);
        let spawned = std::thread::Builder::new()
            .name("dars-variants".to_owned())
            .spawn(move || {
                let mut seen = None;
                let mut wanted = Vec::new();
                loop {
                    let Some(library) = weak.upgrade() else { return };
                    let generation = library.caches.generation();
                    if seen != Some(generation) || !wanted.is_empty() {
                        // Stop between blobs once the server is shutting down.
                        let stop = || Weak::strong_count(&weak) <= 1;
                        match library.variant_pass(&wanted, &stop) {
                            Ok(made) => {
                                if made > 0 {
                                    tracing::info!("stored the gzip variant of {made} text files");
                                }
                                seen = Some(generation);
                            }
                            Err(e) => {
                                tracing::warn!(
                                    "cannot store gzip variants now ({e}); phones get them compressed on the fly meanwhile"
                                );
                                drop(library);
                                wanted = wakeup.wait(RETRY_WAIT);
                                continue;
                            }
                        }
                    }
                    drop(library);
                    wanted = wakeup.wait(IDLE_WAIT);
                }
            });
        if let Err(e) = spawned {
            self.wakeup.running.store(false, Ordering::Release);
            tracing::warn!("cannot start the gzip variant worker: {e}");
        }
    }
}
