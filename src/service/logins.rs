//! Slowing down password guessing: failed logins are counted in memory per client address and
//! per account name; past a threshold the key is locked out for a window that doubles with each
//! further failure. A success clears both counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per account name before it is locked out.
pub const ACCOUNT_LIMIT: u32 = 5;
/// Failures allowed per client address (across account names) before it is locked out.
pub const ADDRESS_LIMIT: u32 = 10;
/// The first lockout; each further failure doubles it, up to `MAX_LOCK`.
const FIRST_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// A key with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Entries kept before old ones are swept, so guessing from many addresses cannot fill memory.
const SWEEP_ABOVE: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// The failure counters. A `std::sync::Mutex`: held only for a map lookup, never across an
/// await or a password hash.
#[derive(Debug, Default)]
pub struct Throttle {
    entries: Mutex<HashMap<String, Failures>>,
}

impl Throttle {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` when any of `keys` is locked out now: how long until all of them open.
    pub fn check(&self, keys: &[&str]) -> Result<(), Duration> {
        let now = Instant::now();
        let entries = self.entries();
        let wait = keys
            .iter()
            .filter_map(|k| entries.get(*k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failure against `key`, locking it once `limit` failures are reached.
    pub fn fail(&self, key: &str, limit: u32) {
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        }
        let entry = entries.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        if entry.count >= limit {
            let doublings = (entry.count - limit).min(10);
            let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
            entry.locked_until = Some(now + lock);
        }
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        self.entries().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_at_the_limit_and_clears_on_success() {
        let t = Throttle::default();
        for _ in 0..ACCOUNT_LIMIT - 1 {
            t.fail("a", ACCOUNT_LIMIT);
            assert!(t.check(&["a"]).is_ok());
        }
        t.fail("a", ACCOUNT_LIMIT);
        let wait = t.check(&["b", "a"]).expect_err("locked");
        assert!(wait <= FIRST_LOCK, "{wait:?}");
        t.fail("a", ACCOUNT_LIMIT);
        assert!(t.check(&["a"]).expect_err("locked longer") > FIRST_LOCK);
        assert!(t.check(&["b"]).is_ok());
        t.clear("a");
        assert!(t.check(&["a"]).is_ok());
    }
}
