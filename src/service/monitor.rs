//! What a running server tells its monitoring (`/metrics`): lessons, store size, the last sync
//! of each upstream, and the progress of the import or sync this process is running.

use std::sync::{Mutex, PoisonError};

use super::{Library, Progress, ServiceError, Snapshot};
use crate::store::{self, SyncResult};

/// The import or sync this library is running, if any. Imports and syncs take the writer lock,
/// so there is at most one at a time.
#[derive(Debug, Default)]
pub(super) struct CurrentWork(Mutex<Option<(&'static str, Progress)>>);

/// Clears the current work when it ends, however it ends.
pub(super) struct WorkGuard<'a>(&'a CurrentWork);

impl Drop for WorkGuard<'_> {
    fn drop(&mut self) {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl CurrentWork {
    /// Marks `progress` as the running `kind` of work ("import", "sync") until the guard drops.
    pub(super) fn begin(&self, kind: &'static str, progress: &Progress) -> WorkGuard<'_> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((kind, progress.clone()));
        WorkGuard(self)
    }

    fn snapshot(&self) -> Option<(&'static str, Snapshot)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(kind, progress)| (*kind, progress.snapshot()))
    }
}

/// The figures `/metrics` shows beside the request counters.
#[derive(Debug, Clone)]
pub struct Figures {
    pub lessons: u64,
    /// The database file and its write-ahead log, in bytes.
    pub store_bytes: u64,
    pub syncs: Vec<SyncResult>,
    /// The kind ("import", "sync") and progress of the work running now.
    pub work: Option<(&'static str, Snapshot)>,
}

impl Library {
    /// Bytes the store takes on disk (the database file and its write-ahead log).
    pub fn store_bytes(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", self.db_path().display())).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The import or sync this process runs now, with its progress.
    pub fn current_work(&self) -> Option<(&'static str, Snapshot)> {
        self.work.snapshot()
    }

    /// Figures for monitoring.
    pub fn figures(&self) -> Result<Figures, ServiceError> {
        let (lessons, syncs) = self
            .pool
            .with(|conn| Ok((store::count_lessons(conn)?, store::sync_results(conn)?)))?;
        Ok(Figures {
            lessons,
            store_bytes: self.store_bytes(),
            syncs,
            work: self.current_work(),
        })
    }
}
