//! `dars verify`: the database's own integrity check, then every blob re-read and re-hashed.

use rusqlite::Connection;

use super::progress::Progress;
use crate::store::{self, Result};

/// A damaged blob and the lesson files that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub hash: String,
    pub what: String,
    pub files: Vec<(String, String)>,
}

/// What verification found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub database: Vec<String>,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.database.is_empty() && self.problems.is_empty()
    }
}

pub(super) fn verify_store(conn: &Connection, progress: &Progress) -> Result<VerifyReport> {
    let mut report = quick_check(conn)?;
    rehash_blobs(conn, progress, &mut report)?;
    Ok(report)
}

/// The database's own quick check and files whose blobs are missing, without re-reading every
/// blob: seconds instead of the minutes a full verification takes on a big store.
pub(super) fn quick_check(conn: &Connection) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let lines: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    report.database = lines.into_iter().filter(|l| l != "ok").collect();
    let miscounted = store::miscounted_blobs(conn)?;
    if miscounted > 0 {
        report.database.push(format!(
            "{miscounted} contents count the lesson files that use them wrongly (the database was edited by hand?)"
        ));
    }
    // A file that points at a blob that is not complete would be served as missing.
    let mut stmt = conn.prepare(
        "SELECT l.id, f.path, hex(f.hash) FROM files f JOIN lessons l ON l.rowid = f.lesson
         LEFT JOIN blobs b ON b.hash = f.hash WHERE b.hash IS NULL OR b.complete = 0",
    )?;
    let missing: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (lesson, path, hash) in missing {
        report.problems.push(Problem {
            hash: hash.to_lowercase(),
            what: "the blob is missing".to_owned(),
            files: vec![(lesson, path)],
        });
    }
    Ok(report)
}

fn rehash_blobs(conn: &Connection, progress: &Progress, report: &mut VerifyReport) -> Result<()> {
    let infos = store::all_blobs(conn)?;
    progress.set_totals(infos.len() as u64, infos.iter().map(|i| i.size).sum());
    for info in infos {
        if let Some(what) = store::verify_blob(conn, &info)? {
            report.problems.push(Problem {
                hash: info.hash.to_hex(),
                what,
                files: store::files_using(conn, info.hash)?,
            });
        }
        report.blobs_checked += 1;
        report.bytes_checked += info.size;
        progress.add_bytes(info.size);
        progress.item_done();
    }
    Ok(())
}
