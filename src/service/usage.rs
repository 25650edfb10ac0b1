//! Usage figures: lesson views and offline saves, counted in memory on the request path and
//! written to the store once a minute and when the library closes, so serving costs no SQLite
//! write and a power cut loses at most a minute of counts. Only (day, lesson, kind, count) is
//! kept: nothing that could tell who opened a lesson.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{Library, ServiceError};
use crate::store::{self, UsageRow};

/// How often a running server writes its counts to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// What a use of a lesson was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UseKind {
    /// The lesson's entry page was opened (answered 200 or 304).
    View,
    /// The lesson was saved on a phone for use without the network.
    OfflineSave,
}

impl UseKind {
    fn index(self) -> usize {
        match self {
            UseKind::View => 0,
            UseKind::OfflineSave => 1,
        }
    }
}

/// A day as days since 1970-01-01 (UTC).
pub type Day = i64;

/// Today (UTC). Azerbaijan's school day (08:00-18:00, UTC+4) falls inside one UTC day.
pub fn today() -> Day {
    store::now_secs().div_euclid(86_400)
}

/// `2026-12-01` for a day.
pub fn day_text(day: Day) -> String {
    let secs = u64::try_from(day.max(0)).unwrap_or(0) * 86_400;
    let text = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
    text[..10].to_owned()
}

/// The day of a `2026-12-01` text.
pub fn parse_day(text: &str) -> Option<Day> {
    let time = humantime::parse_rfc3339(&format!("{}T00:00:00Z", text.trim())).ok()?;
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs / 86_400).ok()
}

/// Uses of one lesson on one day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LessonDayUse {
    pub day: Day,
    pub lesson: String,
    pub views: u64,
    pub offline_saves: u64,
}

/// Uses of one lesson over a range of days.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LessonUse {
    pub lesson: String,
    pub views: u64,
    pub offline_saves: u64,
}

/// Uses of every lesson on one day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayUse {
    pub date: String,
    pub views: u64,
    pub offline_saves: u64,
}

/// Counts not yet written to the store. A `std::sync::Mutex` is right: it is held for one map
/// update (no await, no I/O), and phones are counted far more often than it is contended.
#[derive(Debug, Default)]
pub(super) struct Counter {
    pending: Mutex<HashMap<Day, HashMap<String, [u64; 2]>>>,
}

impl Counter {
    pub(super) fn add(&self, day: Day, lesson: &str, kind: UseKind, n: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let lessons = pending.entry(day).or_default();
        // Look up by &str first so a counted lesson costs no allocation.
        match lessons.get_mut(lesson) {
            Some(counts) => counts[kind.index()] += n,
            None => {
                let mut counts = [0; 2];
                counts[kind.index()] = n;
                lessons.insert(lesson.to_owned(), counts);
            }
        }
    }

    fn rows(map: HashMap<Day, HashMap<String, [u64; 2]>>) -> Vec<UsageRow> {
        let mut rows = Vec::new();
        for (day, lessons) in map {
            for (lesson, counts) in lessons {
                for (kind, count) in counts.into_iter().enumerate() {
                    if count > 0 {
                        rows.push(UsageRow {
                            day,
                            lesson: lesson.clone(),
                            kind: kind as u8,
                            count,
                        });
                    }
                }
            }
        }
        rows
    }

    /// Takes every pending count, leaving none.
    pub(super) fn take(&self) -> Vec<UsageRow> {
        let map = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        Self::rows(map)
    }

    /// Puts counts back (their write failed), to be written with the next flush.
    pub(super) fn put_back(&self, rows: &[UsageRow]) {
        for row in rows {
            let kind = if row.kind == 0 {
                UseKind::View
            } else {
                UseKind::OfflineSave
            };
            self.add(row.day, &row.lesson, kind, row.count);
        }
    }

    /// A copy of the pending counts.
    fn snapshot(&self) -> Vec<UsageRow> {
        let map = self.pending.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Self::rows(map)
    }
}

impl Library {
    /// Counts one use of a lesson. Never blocks on the store and never fails.
    pub fn record_use(&self, lesson_id: &str, kind: UseKind) {
        self.usage.add(today(), lesson_id, kind, 1);
    }

    /// Writes the counts made so far to the store; on failure they stay pending for the next
    /// try. Returns how many (day, lesson, kind) figures were written.
    pub fn flush_usage(&self) -> Result<usize, ServiceError> {
        let rows = self.usage.take();
        if rows.is_empty() {
            return Ok(0);
        }
        match self.pool.with(|conn| store::add_usage(conn, &rows)) {
            Ok(()) => Ok(rows.len()),
            Err(e) => {
                self.usage.put_back(&rows);
                Err(e.into())
            }
        }
    }

    /// Starts a thread that flushes the counts every `every`, until the library is dropped
    /// (which flushes the rest).
    pub fn start_usage_flusher(library: &Arc<Library>, every: Duration) {
        let weak: Weak<Library> = Arc::downgrade(library);
        let spawned = std::thread::Builder::new()
            .name("dars-usage".to_owned())
            .spawn(move || {
                let mut next = Instant::now() + every;
                while weak.strong_count() > 0 {
                    std::thread::sleep(Duration::from_millis(200).min(every));
                    if Instant::now() < next {
                        continue;
                    }
                    next = Instant::now() + every;
                    let Some(library) = weak.upgrade() else { break };
                    if let Err(e) = library.flush_usage() {
                        tracing::warn!("could not write usage figures (will try again): {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("usage figures will be written only at shutdown: {e}");
        }
    }

    /// Stored and pending counts for days `from..=to`, merged, by (day, lesson).
    fn usage_map(&self, from: Day, to: Day) -> Result<BTreeMap<(Day, String), [u64; 2]>, ServiceError> {
        let mut rows = self.pool.with(|conn| store::usage_between(conn, from, to))?;
        rows.extend(
            self.usage
                .snapshot()
                .into_iter()
                .filter(|r| (from..=to).contains(&r.day)),
        );
        let mut map: BTreeMap<(Day, String), [u64; 2]> = BTreeMap::new();
        for row in rows {
            map.entry((row.day, row.lesson)).or_default()[usize::from(row.kind.min(1))] += row.count;
        }
        Ok(map)
    }

    /// Uses per lesson per day for days `from..=to` (days with no use are left out).
    pub fn usage_by_day(&self, from: Day, to: Day) -> Result<Vec<LessonDayUse>, ServiceError> {
        Ok(self
            .usage_map(from, to)?
            .into_iter()
            .map(|((day, lesson), [views, offline_saves])| LessonDayUse {
                day,
                lesson,
                views,
                offline_saves,
            })
            .collect())
    }

    /// Uses per lesson over days `from..=to`, most viewed first.
    pub fn usage_totals(&self, from: Day, to: Day) -> Result<Vec<LessonUse>, ServiceError> {
        let mut totals: BTreeMap<String, [u64; 2]> = BTreeMap::new();
        for ((_, lesson), [views, saves]) in self.usage_map(from, to)? {
            let t = totals.entry(lesson).or_default();
            t[0] += views;
            t[1] += saves;
        }
        let mut out: Vec<LessonUse> = totals
            .into_iter()
            .map(|(lesson, [views, offline_saves])| LessonUse {
                lesson,
                views,
                offline_saves,
            })
            .collect();
        out.sort_by(|a, b| b.views.cmp(&a.views).then_with(|| a.lesson.cmp(&b.lesson)));
        Ok(out)
    }

    /// Uses of all lessons on each day `from..=to`, days without use included as zeros.
    pub fn usage_per_day(&self, from: Day, to: Day) -> Result<Vec<DayUse>, ServiceError> {
        let map = self.usage_map(from, to)?;
        Ok((from..=to)
            .map(|day| {
                let (views, offline_saves) = map
                    .range((day, String::new())..(day + 1, String::new()))
                    .fold((0, 0), |(v, s), (_, c)| (v + c[0], s + c[1]));
                DayUse {
                    date: day_text(day),
                    views,
                    offline_saves,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_read_and_write_as_dates() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(parse_day("2026-12-01").map(day_text).as_deref(), Some("2026-12-01"));
        assert_eq!(parse_day("1970-01-02"), Some(1));
        assert_eq!(parse_day("yesterday"), None);
        assert!(today() > parse_day("2025-01-01").unwrap_or(i64::MAX));
    }

    #[test]
    fn pending_counts_are_taken_once_and_can_be_put_back() {
        let counter = Counter::default();
        counter.add(5, "a", UseKind::View, 1);
        counter.add(5, "a", UseKind::View, 1);
        counter.add(5, "a", UseKind::OfflineSave, 1);
        counter.add(6, "b", UseKind::View, 1);
        let mut rows = counter.take();
        rows.sort_by_key(|r| (r.day, r.kind));
        let flat: Vec<(i64, &str, u8, u64)> = rows
            .iter()
            .map(|r| (r.day, r.lesson.as_str(), r.kind, r.count))
            .collect();
        assert_eq!(flat, vec![(5, "a", 0, 2), (5, "a", 1, 1), (6, "b", 0, 1)]);
        assert!(counter.take().is_empty());
        counter.put_back(&rows);
        assert_eq!(counter.take().len(), 3);
    }
}
