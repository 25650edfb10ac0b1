//! Field reports: what a centre tells the ministry, written to a USB stick as JSON with a
//! detached Ed25519 signature by the centre's own key (made in the data folder on first use),
//! and read back, each signature checked, by `dars fleet`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::usage::{DayUse, day_text, today};
use super::{Library, ServiceError, io_error};
use crate::keys::{self, PublicKey, SecretKey};

/// The folder on a stick that holds reports.
pub const REPORTS_DIR: &str = "DARS-REPORTS";
/// The centre's secret key, in the data folder.
pub const CENTRE_KEY_FILE: &str = "centre.key";
/// What the `format` field of a report says.
pub const FORMAT: &str = "dars-report/1";

/// A centre's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub centre: String,
    /// When the report was made (Unix time) and its UTC date.
    pub created_at: i64,
    pub date: String,
    pub software_version: String,
    /// The public key that signed the report, and its fingerprint.
    pub centre_key: String,
    pub fingerprint: String,
    pub lessons: u64,
    pub publishers: Vec<PublisherSeq>,
    pub health: Health,
    pub disk: Disk,
    pub usage: UsageSummary,
    pub syncs: Vec<SyncLine>,
}

/// The newest package installed from one publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherSeq {
    pub fingerprint: String,
    pub key: String,
    pub seq: u64,
}

/// The store's health: the quick check, or a full verification when asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// "quick" (the database's check and missing blobs) or "full" (every blob re-hashed).
    pub check: String,
    pub ok: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Free and total bytes of the disk holding the data folder.
    pub free_bytes: u64,
    pub total_bytes: u64,
    pub store_bytes: u64,
}

/// One lesson's uses over the last 30 and 90 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonUsage {
    pub lesson: String,
    pub views_30d: u64,
    pub offline_saves_30d: u64,
    pub views_90d: u64,
    pub offline_saves_90d: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub per_lesson: Vec<LessonUsage>,
    /// Every day of the last 90, oldest first, the report's day last.
    pub per_day: Vec<DayUse>,
}

impl UsageSummary {
    /// Views on the last `days` days of the report.
    pub fn views_last(&self, days: usize) -> u64 {
        self.per_day.iter().rev().take(days).map(|d| d.views).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncLine {
    pub url: String,
    pub finished_at: i64,
    pub ok: bool,
    pub message: String,
}

/// Loads the centre's key from the data folder, making it on first use (mode 0600).
pub fn centre_key(data_dir: &Path) -> Result<SecretKey, ServiceError> {
    let path = data_dir.join(CENTRE_KEY_FILE);
    let parse = |text: &str| {
        SecretKey::parse_file(text).map_err(|e| {
            ServiceError::Internal(format!(
                "{}: {e}; move the damaged file away and a new key will be made",
                path.display()
            ))
        })
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => return parse(&text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&path, e)),
        Err(_) => {}
    }
    let key = SecretKey::generate().map_err(|e| io_error(&path, e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(key.to_file_text().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error(&path, e))?;
            tracing::info!("made this centre's report key {}", key.public().fingerprint());
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            parse(&std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?)
        }
        Err(e) => Err(io_error(&path, e)),
    }
}

impl Library {
    /// Uses of each lesson used in the 90 days up to `day` (that day included), over the last
    /// 30 and 90 days, most viewed in 90 days first: the report's figures and the console's.
    pub fn lesson_usage(&self, day: super::usage::Day) -> Result<Vec<LessonUsage>, ServiceError> {
        let totals_30 = self.usage_totals(day - 29, day)?;
        let totals_90 = self.usage_totals(day - 89, day)?;
        Ok(totals_90
            .into_iter()
            .map(|t| {
                let recent = totals_30.iter().find(|r| r.lesson == t.lesson);
                LessonUsage {
                    views_30d: recent.map_or(0, |r| r.views),
                    offline_saves_30d: recent.map_or(0, |r| r.offline_saves),
                    lesson: t.lesson,
                    views_90d: t.views,
                    offline_saves_90d: t.offline_saves,
                }
            })
            .collect())
    }

    /// What `dars report --out DIR` does, for the CLI and the console alike: makes this
    /// centre's report (signed by its key in the data folder, made on first use) and writes it
    /// into `out/DARS-REPORTS/`. `out` must be an existing folder (a stick's mount point): a
    /// stick pulled out is refused rather than a folder made in its place. Returns the JSON
    /// file written and the report.
    pub fn write_report(
        &self,
        centre: &str,
        out: &Path,
        full: bool,
        progress: &super::Progress,
    ) -> Result<(PathBuf, Report), ServiceError> {
        if !out.is_dir() {
            return Err(ServiceError::Refused(format!(
                "{} is not a folder: give the USB stick's folder (its mount point)",
                out.display()
            )));
        }
        let key = centre_key(self.data_dir())?;
        let report = self.report(centre, &key, full, progress)?;
        let json = write_signed(out, &report, &key)?;
        Ok((json, report))
    }

    /// The data folder: the one holding the database file (and the centre's key).
    pub fn data_dir(&self) -> &Path {
        match self.db_path().parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// Gathers this centre's report, signed by `key`; `full` re-hashes every blob for the
    /// health figure instead of the quick check.
    pub fn report(
        &self,
        centre: &str,
        key: &SecretKey,
        full: bool,
        progress: &super::Progress,
    ) -> Result<Report, ServiceError> {
        let health = if full {
            self.verify(progress)?
        } else {
            self.quick_check()?
        };
        let mut problems = health.database.clone();
        problems.extend(health.problems.iter().map(|p| format!("blob {}: {}", p.hash, p.what)));
        let status = self.status()?;
        let data_dir = self.data_dir();
        let now = crate::store::now_secs();
        let day = today();
        let per_lesson = self.lesson_usage(day)?;
        Ok(Report {
            format: FORMAT.to_owned(),
            centre: centre.to_owned(),
            created_at: now,
            date: day_text(day),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            centre_key: key.public().to_text(),
            fingerprint: key.public().fingerprint(),
            lessons: status.lessons,
            publishers: status
                .publishers
                .into_iter()
                .map(|(fingerprint, key, seq)| PublisherSeq { fingerprint, key, seq })
                .collect(),
            health: Health {
                check: if full { "full" } else { "quick" }.to_owned(),
                ok: health.is_clean(),
                problems,
            },
            disk: Disk {
                free_bytes: fs4::available_space(data_dir).map_err(|e| io_error(data_dir, e))?,
                total_bytes: fs4::total_space(data_dir).map_err(|e| io_error(data_dir, e))?,
                store_bytes: status.file_bytes,
            },
            usage: UsageSummary {
                per_lesson,
                per_day: self.usage_per_day(day - 89, day)?,
            },
            syncs: status
                .syncs
                .into_iter()
                .map(|s| SyncLine {
                    url: s.url,
                    finished_at: s.finished_at,
                    ok: s.ok,
                    message: s.message,
                })
                .collect(),
        })
    }
}

/// A FAT32-safe file name stem for a report: the centre's name in lower-case ASCII, the
/// start of its key's fingerprint (two centres of one name stay apart) and the date.
pub fn file_stem(report: &Report) -> String {
    let mut slug = String::new();
    for c in report.centre.to_lowercase().chars() {
        let c = match c {
            'ə' | 'ä' => 'e',
            'ş' => 's',
            'ç' => 'c',
            'ğ' => 'g',
            'ı' | 'i' => 'i',
            'ö' => 'o',
            'ü' => 'u',
            c if c.is_ascii_alphanumeric() => c,
            _ => '-',
        };
        if c != '-' || !(slug.is_empty() || slug.ends_with('-')) {
            slug.push(c);
        }
    }
    let mut slug: String = slug.trim_end_matches('-').chars().take(40).collect();
    if slug.is_empty() {
        slug.push_str("centre");
    }
    let fp: String = report.fingerprint.chars().take(4).collect();
    format!("{}-{fp}-{}", slug.trim_end_matches('-'), report.date)
}

/// Writes `report` signed by `key` into `dir/DARS-REPORTS/` as `<stem>.json` and `<stem>.sig`;
/// returns the JSON file's path. Each file is written to a temporary name, synced and renamed,
/// so a stick pulled out mid-write never holds half a report under the real name.
pub fn write_signed(dir: &Path, report: &Report, key: &SecretKey) -> Result<PathBuf, ServiceError> {
    let folder = dir.join(REPORTS_DIR);
    std::fs::create_dir_all(&folder).map_err(|e| io_error(&folder, e))?;
    let mut bytes = serde_json::to_vec_pretty(report).map_err(|e| ServiceError::Internal(e.to_string()))?;
    bytes.push(b'\n');
    let signature = keys::signature_to_text(&key.sign(&bytes));
    let stem = file_stem(report);
    let json = folder.join(format!("{stem}.json"));
    // The signature first: a report without its signature is flagged, never trusted.
    write_whole(&folder.join(format!("{stem}.sig")), signature.as_bytes())?;
    write_whole(&json, &bytes)?;
    Ok(json)
}

fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    let tmp = path.with_extension("tmp");
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, e)
    })
}

/// A report file found on a stick: the report when its signature holds, or why it is not
/// trusted.
#[derive(Debug, Clone)]
pub struct Found {
    pub file: PathBuf,
    pub report: Result<Report, String>,
}

/// Reads every report in each folder (its `DARS-REPORTS/` when it has one), checking each
/// signature against the key the report names.
pub fn read_reports(dirs: &[PathBuf]) -> Result<Vec<Found>, ServiceError> {
    let mut found = Vec::new();
    for dir in dirs {
        let folder = if dir.join(REPORTS_DIR).is_dir() {
            dir.join(REPORTS_DIR)
        } else {
            dir.clone()
        };
        let entries = std::fs::read_dir(&folder).map_err(|e| io_error(&folder, e))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("json")))
            .collect();
        files.sort();
        for file in files {
            let report = check_file(&file);
            found.push(Found { file, report });
        }
    }
    Ok(found)
}

fn check_file(file: &Path) -> Result<Report, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot be read: {e}"))?;
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| format!("is not a dars report: {e}"))?;
    if report.format != FORMAT {
        return Err(format!("has format {:?}; this dars reads {FORMAT}", report.format));
    }
    let key = PublicKey::parse(&report.centre_key).map_err(|e| format!("names no valid key: {e}"))?;
    let sig_path = file.with_extension("sig");
    let sig_text = std::fs::read_to_string(&sig_path)
        .map_err(|_| format!("has no signature ({} is missing)", sig_path.display()))?;
    let signature = keys::signature_from_text(&sig_text).map_err(|e| format!("signature file: {e}"))?;
    if !key.verify(&bytes, &signature) {
        return Err(
            "TAMPERED: its signature does not match its contents (changed after the centre signed it)".to_owned(),
        );
    }
    if key.fingerprint() != report.fingerprint {
        return Err("TAMPERED: its fingerprint is not that of its key".to_owned());
    }
    Ok(report)
}
