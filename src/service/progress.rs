//! Progress of long work (import, verify), shared as counters: the service updates them and
//! whoever shows progress (a terminal bar, log lines, the console, `/metrics`) reads them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one long operation. Cheap to update from the working thread; a clone shares
/// the same counters, so the library can show the progress of work a caller started.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    total_bytes: AtomicU64,
    done_bytes: AtomicU64,
    total_items: AtomicU64,
    done_items: AtomicU64,
    current: Mutex<String>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
        self.inner.total_items.store(items, Ordering::Relaxed);
        self.inner.total_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.inner.done_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn item_done(&self) {
        self.inner.done_items.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a new stage of the work: the done counters go back to zero.
    pub fn begin(&self, what: &str) {
        self.inner.done_bytes.store(0, Ordering::Relaxed);
        self.inner.done_items.store(0, Ordering::Relaxed);
        self.set_current(what);
    }

    pub fn set_current(&self, what: &str) {
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current.clear();
        current.push_str(what);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            total_bytes: self.inner.total_bytes.load(Ordering::Relaxed),
            done_bytes: self.inner.done_bytes.load(Ordering::Relaxed),
            total_items: self.inner.total_items.load(Ordering::Relaxed),
            done_items: self.inner.done_items.load(Ordering::Relaxed),
            current: self
                .inner
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}
