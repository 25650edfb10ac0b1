//! `dars fleet`: many centres' reports merged into one row per centre (its newest signed
//! report), with what needs a technician's visit flagged: content behind the newest sequence
//! seen for a publisher, a disk running short, no lesson opened for days, a failing store or
//! sync, and reports that are not what their centre signed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::report::{Found, Report};

/// Where the flags start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetOptions {
    /// A centre with less free disk than this is short of disk.
    pub min_free_bytes: u64,
    /// A centre with no views in this many days (up to its report's date) is unused.
    pub unused_days: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            min_free_bytes: 2_000_000_000,
            unused_days: 14,
        }
    }
}

/// Something about a centre that needs attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    /// Its newest package from `publisher` is `have`, but `newest` was seen elsewhere
    /// (`have` is `None` when it has nothing from that publisher).
    OutOfDate {
        publisher: String,
        have: Option<u64>,
        newest: u64,
    },
    ShortOfDisk {
        free: u64,
        min: u64,
    },
    Unused {
        days: usize,
    },
    Unhealthy {
        problems: usize,
    },
    SyncFailed {
        url: String,
    },
    /// Another key reports under the same centre name.
    NameShared {
        other: String,
    },
}

impl Flag {
    /// The flag's name as shown in tables.
    pub fn word(&self) -> &'static str {
        match self {
            Flag::OutOfDate { .. } => "OUT OF DATE",
            Flag::ShortOfDisk { .. } => "SHORT OF DISK",
            Flag::Unused { .. } => "UNUSED",
            Flag::Unhealthy { .. } => "STORE DAMAGED",
            Flag::SyncFailed { .. } => "SYNC FAILED",
            Flag::NameShared { .. } => "NAME SHARED",
        }
    }

    /// The flag with its detail, in words.
    pub fn describe(&self) -> String {
        let gb = |b: u64| {
            if b >= 1_000_000_000 {
                format!("{:.1} GB", b as f64 / 1e9)
            } else {
                format!("{:.1} MB", b as f64 / 1e6)
            }
        };
        match self {
            Flag::OutOfDate {
                publisher,
                have: Some(have),
                newest,
            } => format!("OUT OF DATE: publisher {publisher} at sequence {have}, newest seen {newest}"),
            Flag::OutOfDate { publisher, newest, .. } => {
                format!("OUT OF DATE: nothing from publisher {publisher} (newest seen {newest})")
            }
            Flag::ShortOfDisk { free, min } => format!("SHORT OF DISK: {} free, under {}", gb(*free), gb(*min)),
            Flag::Unused { days } => format!("UNUSED: no lesson opened in the last {days} days"),
            Flag::Unhealthy { problems } => format!("STORE DAMAGED: {problems} problem(s); run dars verify there"),
            Flag::SyncFailed { url } => format!("SYNC FAILED: the last sync from {url} failed"),
            Flag::NameShared { other } => format!("NAME SHARED: key {other} also reports under this name"),
        }
    }
}

/// One centre: its newest report and what is flagged.
#[derive(Debug, Clone)]
pub struct CentreRow {
    pub report: Report,
    pub file: PathBuf,
    pub flags: Vec<Flag>,
    /// Views in the last `unused_days` days of its report.
    pub recent_views: u64,
}

/// The merged view of many reports.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub centres: Vec<CentreRow>,
    /// Report files that were not trusted, and why.
    pub rejected: Vec<(PathBuf, String)>,
    /// The newest sequence seen per publisher fingerprint.
    pub newest: BTreeMap<String, u64>,
    pub options: FleetOptions,
}

/// Merges reports: the newest trusted one per centre key, flagged against the others.
pub fn merge(found: Vec<Found>, options: FleetOptions) -> Fleet {
    let mut rejected = Vec::new();
    let mut newest: BTreeMap<String, u64> = BTreeMap::new();
    let mut latest: BTreeMap<String, (Report, PathBuf)> = BTreeMap::new();
    for Found { file, report } in found {
        let report = match report {
            Ok(report) => report,
            Err(why) => {
                rejected.push((file, why));
                continue;
            }
        };
        for p in &report.publishers {
            let n = newest.entry(p.fingerprint.clone()).or_insert(0);
            *n = (*n).max(p.seq);
        }
        match latest.get(&report.fingerprint) {
            Some((kept, _)) if kept.created_at >= report.created_at => {}
            _ => {
                latest.insert(report.fingerprint.clone(), (report, file));
            }
        }
    }
    let mut centres: Vec<CentreRow> = latest
        .values()
        .map(|(report, file)| {
            let mut flags = Vec::new();
            for (publisher, seq) in &newest {
                let have = report
                    .publishers
                    .iter()
                    .find(|p| &p.fingerprint == publisher)
                    .map(|p| p.seq);
                if have.is_none_or(|h| h < *seq) {
                    flags.push(Flag::OutOfDate {
                        publisher: publisher.clone(),
                        have,
                        newest: *seq,
                    });
                }
            }
            if report.disk.free_bytes < options.min_free_bytes {
                flags.push(Flag::ShortOfDisk {
                    free: report.disk.free_bytes,
                    min: options.min_free_bytes,
                });
            }
            let recent_views = report.usage.views_last(options.unused_days);
            if recent_views == 0 {
                flags.push(Flag::Unused {
                    days: options.unused_days,
                });
            }
            if !report.health.ok {
                flags.push(Flag::Unhealthy {
                    problems: report.health.problems.len().max(1),
                });
            }
            for sync in report.syncs.iter().filter(|s| !s.ok) {
                flags.push(Flag::SyncFailed { url: sync.url.clone() });
            }
            for (other, _) in latest
                .values()
                .filter(|(o, _)| o.centre == report.centre && o.fingerprint != report.fingerprint)
            {
                flags.push(Flag::NameShared {
                    other: other.fingerprint.clone(),
                });
            }
            CentreRow {
                report: report.clone(),
                file: file.clone(),
                flags,
                recent_views,
            }
        })
        .collect();
    centres.sort_by(|a, b| {
        a.report
            .centre
            .cmp(&b.report.centre)
            .then(a.report.fingerprint.cmp(&b.report.fingerprint))
    });
    Fleet {
        centres,
        rejected,
        newest,
        options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::report::{Disk, Health, PublisherSeq, UsageSummary};
    use crate::service::usage::DayUse;

    fn report(centre: &str, fingerprint: &str, created_at: i64, seq: u64, views: u64) -> Report {
        Report {
            format: crate::service::report::FORMAT.to_owned(),
            centre: centre.to_owned(),
            created_at,
            date: "2026-12-01".to_owned(),
            software_version: "0.1.0".to_owned(),
            centre_key: String::new(),
            fingerprint: fingerprint.to_owned(),
            lessons: 3,
            publishers: vec![PublisherSeq {
                fingerprint: "aaaa".to_owned(),
                key: String::new(),
                seq,
            }],
            health: Health {
                check: "quick".to_owned(),
                ok: true,
                problems: Vec::new(),
            },
            disk: Disk {
                free_bytes: 10_000_000_000,
                total_bytes: 20_000_000_000,
                store_bytes: 1,
            },
            usage: UsageSummary {
                per_lesson: Vec::new(),
                // Views only on the oldest of 20 days: none in the last 14.
                per_day: (0..20)
                    .map(|i| DayUse {
                        date: format!("d{i}"),
                        views: if i == 0 { views } else { 0 },
                        offline_saves: 0,
                    })
                    .collect(),
            },
            syncs: Vec::new(),
        }
    }

    fn found(report: Report) -> Found {
        Found {
            file: PathBuf::from(format!("{}-{}.json", report.fingerprint, report.created_at)),
            report: Ok(report),
        }
    }

    #[test]
    fn the_newest_report_per_key_is_kept_and_compared() {
        let fleet = merge(
            vec![
                found(report("Quba", "k1", 200, 7, 5)),
                found(report("Quba", "k1", 100, 9, 5)),
                found(report("Quba", "k2", 100, 9, 5)),
                Found {
                    file: PathBuf::from("bad.json"),
                    report: Err("TAMPERED".to_owned()),
                },
            ],
            FleetOptions::default(),
        );
        assert_eq!(fleet.centres.len(), 2);
        assert_eq!(fleet.rejected.len(), 1);
        let k1 = &fleet.centres[0];
        assert_eq!((k1.report.fingerprint.as_str(), k1.report.created_at), ("k1", 200));
        // Its older report saw sequence 9, which its newest is behind.
        assert_eq!(fleet.newest.get("aaaa"), Some(&9));
        assert!(k1.flags.contains(&Flag::OutOfDate {
            publisher: "aaaa".to_owned(),
            have: Some(7),
            newest: 9
        }));
        assert!(k1.flags.contains(&Flag::NameShared { other: "k2".to_owned() }));
        // Views 19 days back do not count for the last 14.
        assert!(k1.flags.contains(&Flag::Unused { days: 14 }));
        let longer = merge(
            vec![found(report("Quba", "k1", 200, 7, 5))],
            FleetOptions {
                unused_days: 20,
                ..FleetOptions::default()
            },
        );
        assert_eq!(longer.centres[0].recent_views, 5);
        assert!(longer.centres[0].flags.is_empty(), "{:?}", longer.centres[0].flags);
    }
}
