//! Progress of long work (import, verify), shared as counters: the service updates them and
//! whoever shows progress (a terminal bar, log lines, the console) reads them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one long operation. Cheap to update from the working thread.
#[derive(Debug, Default)]
pub struct Progress {
    total_bytes: AtomicU64,
    done_bytes: AtomicU64,
    total_items: AtomicU64,
    done_items: AtomicU64,
    current: Mutex<String>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub total_bytes: u64,
    pub done_bytes: u64,
    pub total_items: u64,
    pub done_items: u64,
    pub current: String,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_totals(&self, items: u64, bytes: u64) {
        self.total_items.store(items, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn item_done(&self) {
        self.done_items.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a new stage of the work: the done counters go back to zero.
    pub fn begin(&self, what: &str) {
        self.done_bytes.store(0, Ordering::Relaxed);
        self.done_items.store(0, Ordering::Relaxed);
        self.set_current(what);
    }

    pub fn set_current(&self, what: &str) {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        current.clear();
        current.push_str(what);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            done_bytes: self.done_bytes.load(Ordering::Relaxed),
            total_items: self.total_items.load(Ordering::Relaxed),
            done_items: self.done_items.load(Ordering::Relaxed),
            current: self
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}
