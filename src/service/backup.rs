//! Backup and restore of the store with SQLite's online backup API: a backup taken while the
//! server serves and imports is one consistent snapshot; a restore is checked whole before it
//! replaces the store, and replaces it in one transaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::progress::Progress;
use super::{ServiceError, io_error, verify};
use crate::store::{self, StoreError};

/// Pages copied per step (4 MiB with SQLite's 4 KiB pages), so progress moves smoothly.
const PAGES_PER_STEP: i32 = 1024;
/// Files on a FAT32 stick cannot reach 4 GiB.
const FAT32_LIMIT: u64 = 4 * 1024 * 1024 * 1024 - 1;
/// Where a restore puts the backup's copy while it checks it, inside the data folder.
const RESTORE_TEMP: &str = "dars-restore.sqlite";
/// The lock file a running server holds shared; a restore takes it exclusive.
pub(super) const SERVING_LOCK: &str = "dars.serving";

/// What `dars backup` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub lessons: u64,
}

/// What `dars restore` put back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub lessons: u64,
    /// The schema version the backup was made with (it is migrated to today's).
    pub backup_schema: i64,
    pub blobs_checked: u64,
    /// True when a server was using the store and `--force` let the restore go ahead.
    pub while_serving: bool,
}

/// A FAT32-safe file name for a backup of `centre` taken at `now`:
/// `dars-<centre>-YYYY-MM-DD-HHMMSS.sqlite`, lowercase ASCII letters, digits and dashes.
pub fn backup_name(centre: &str, now: std::time::SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(now).to_string(); // 2026-12-01T07:51:30Z
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = digits.split_at(8.min(digits.len()));
    let date = format!(
        "{}-{}-{}",
        &date[..4.min(date.len())],
        date.get(4..6).unwrap_or("00"),
        date.get(6..8).unwrap_or("00")
    );
    let slug = slug(centre);
    if slug.is_empty() || slug == "dars" {
        format!("dars-{date}-{time}.sqlite")
    } else {
        format!("dars-{slug}-{date}-{time}.sqlite")
    }
}

/// The centre's name in lowercase ASCII (Azerbaijani and Russian letters transliterated
/// roughly), other characters as single dashes, at most 32 characters.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        let mapped = match c {
            'a'..='z' | '0'..='9' => c.to_string(),
            'ə' | 'ä' => "e".to_owned(),
            'ş' => "s".to_owned(),
            'ç' => "c".to_owned(),
            'ğ' => "g".to_owned(),
            'ı' => "i".to_owned(),
            '\u{307}' => String::new(), // the dot that lowercasing İ leaves
            'ö' => "o".to_owned(),
            'ü' => "u".to_owned(),
            c => cyrillic(c).unwrap_or("-").to_owned(),
        };
        for m in mapped.chars() {
            if m == '-' && (out.is_empty() || out.ends_with('-')) {
                continue;
            }
            out.push(m);
        }
    }
    out.truncate(32);
    out.trim_end_matches('-').to_owned()
}

fn cyrillic(c: char) -> Option<&'static str> {
    const TABLE: &[(char, &str)] = &[
        ('а', "a"),
        ('б', "b"),
        ('в', "v"),
        ('г', "g"),
        ('д', "d"),
        ('е', "e"),
        ('ё', "e"),
        ('ж', "zh"),
        ('з', "z"),
        ('и', "i"),
        ('й', "i"),
        ('к', "k"),
        ('л', "l"),
        ('м', "m"),
        ('н', "n"),
        ('о', "o"),
        ('п', "p"),
        ('р', "r"),
        ('с', "s"),
        ('т', "t"),
        ('у', "u"),
        ('ф', "f"),
        ('х', "h"),
        ('ц', "c"),
        ('ч', "ch"),
        ('ш', "sh"),
        ('щ', "sh"),
        ('ы', "y"),
        ('э', "e"),
        ('ю', "yu"),
        ('я', "ya"),
    ];
    TABLE.iter().find(|(k, _)| *k == c).map(|(_, v)| *v)
}

/// Copies `src` into `dst` page by page, reporting pages as bytes to `progress`. `src` must be
/// inside a read transaction for the copy to be one snapshot while others write.
fn copy(src: &Connection, dst: &mut Connection, progress: &Progress) -> Result<(), rusqlite::Error> {
    let page_size: i64 = src.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let page_size = u64::try_from(page_size).unwrap_or(4096);
    let backup = Backup::new(src, dst)?;
    let mut counted = false;
    loop {
        let step = backup.step(PAGES_PER_STEP)?;
        let p = backup.progress();
        let total = u64::try_from(p.pagecount).unwrap_or(0);
        let done = total.saturating_sub(u64::try_from(p.remaining).unwrap_or(0));
        if !counted {
            progress.set_totals(1, total * page_size);
            counted = true;
        }
        let already = progress.snapshot().done_bytes;
        progress.add_bytes((done * page_size).saturating_sub(already));
        match step {
            StepResult::Done => break,
            StepResult::More => {}
            // Another connection holds a lock the copy needs for a moment: wait for it.
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    progress.item_done();
    Ok(())
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> ServiceError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::DiskFull => ServiceError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        },
        other => ServiceError::Store(other),
    }
}

/// Writes a consistent copy of the store open on `conn` into `dir` as `name`: first as
/// `name.part`, checked, synced, then renamed, so a pulled stick never holds a half backup
/// under the real name.
pub(super) fn backup(
    conn: &mut Connection,
    db_size: u64,
    dir: &Path,
    name: &str,
    progress: &Progress,
) -> Result<BackupReport, ServiceError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let mut path = dir.join(name);
    let mut n = 2;
    while path.exists() {
        path = dir.join(name.replace(".sqlite", &format!("-{n}.sqlite")));
        n += 1;
    }
    let part = path.with_extension("sqlite.part");
    let result = write_backup(conn, &part, progress);
    let report = match result {
        Ok(lessons) => lessons,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            if db_size > FAT32_LIMIT {
                return Err(ServiceError::Internal(format!(
                    "{e} (the store is {db_size} bytes; a FAT32 stick holds files only up to 4 GiB: use a stick formatted as exFAT or NTFS)"
                )));
            }
            return Err(e);
        }
    };
    std::fs::rename(&part, &path).map_err(|e| io_error(&path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all(); // some file systems (FAT over FUSE) cannot sync a folder
    }
    let bytes = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?.len();
    Ok(BackupReport {
        path,
        bytes,
        lessons: report,
    })
}

fn write_backup(conn: &mut Connection, part: &Path, progress: &Progress) -> Result<u64, ServiceError> {
    let _ = std::fs::remove_file(part);
    let mut dst = Connection::open(part).map_err(sqlite(part))?;
    {
        // The read transaction pins one snapshot for the whole copy: imports and syncs go on
        // committing to the WAL meanwhile, and the copy neither sees them nor restarts.
        let tx = conn.transaction()?;
        tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))?;
        copy(&tx, &mut dst, progress).map_err(sqlite(part))?;
        tx.rollback()?;
    }
    // A backup is one self-contained file: no -wal beside it on the stick.
    dst.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))
        .map_err(sqlite(part))?;
    let problems = quick_check(&dst).map_err(sqlite(part))?;
    if !problems.is_empty() {
        return Err(ServiceError::Internal(format!(
            "the backup written to {} does not read back correctly ({}); the stick may be failing: try another",
            part.display(),
            problems.join("; ")
        )));
    }
    let lessons: i64 = dst.query_row("SELECT count(*) FROM lessons", [], |r| r.get(0))?;
    drop(dst);
    std::fs::File::open(part)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error(part, e))?;
    Ok(u64::try_from(lessons).unwrap_or(0))
}

fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let lines: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(lines.into_iter().filter(|l| l != "ok").collect())
}

/// Takes a lock file in the data folder: exclusive, or shared; waits when `wait`.
pub(super) fn lock(data: &Path, name: &str, shared: bool, wait: bool) -> Result<Option<std::fs::File>, ServiceError> {
    let path = data.join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    let tried = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match tried {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) if wait => {
            if shared { file.lock_shared() } else { file.lock() }.map_err(|e| io_error(&path, e))?;
            Ok(Some(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
    }
}

/// Restores the store in `data` from the backup `file`. See [`super::Library`] for the locks.
pub(super) fn restore(
    data: &Path,
    file: &Path,
    force: bool,
    progress: &Progress,
) -> Result<RestoreReport, ServiceError> {
    if !file.is_file() {
        return Err(ServiceError::NotABackup {
            path: file.to_path_buf(),
            reason: "there is no such file (is the USB stick plugged in?)".to_owned(),
        });
    }
    std::fs::create_dir_all(data).map_err(|e| io_error(data, e))?;
    // No import or sync may write while the store is replaced.
    let _writer = lock(data, super::WRITER_LOCK, false, true)?;
    // Held exclusive, this also keeps a server from starting halfway through.
    let serving = lock(data, SERVING_LOCK, false, false)?;
    if serving.is_none() && !force {
        return Err(ServiceError::InUse(data.to_path_buf()));
    }
    let temp = data.join(RESTORE_TEMP);
    let result = check_copy(file, &temp, progress).and_then(|(schema, checked)| {
        let lessons = swap_in(data, &temp, serving.is_some())?;
        Ok(RestoreReport {
            lessons,
            backup_schema: schema,
            blobs_checked: checked,
            while_serving: serving.is_none(),
        })
    });
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", temp.display()));
    }
    result
}

/// Opens a backup file for reading without writing anything beside it (a stick may be read
/// only): as immutable, unless a `-wal` beside it (a copied live store) holds part of it.
fn open_backup(file: &Path) -> rusqlite::Result<Connection> {
    if Path::new(&format!("{}-wal", file.display())).exists() {
        return Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY);
    }
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let mut uri = String::from("file:");
    for byte in absolute.to_string_lossy().bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    Connection::open_with_flags(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI)
}

/// Copies the backup into `temp`, brings its schema up to date and verifies every blob.
/// Returns the backup's own schema version and the number of blobs checked.
fn check_copy(file: &Path, temp: &Path, progress: &Progress) -> Result<(i64, u64), ServiceError> {
    let not_a_backup = |reason: String| ServiceError::NotABackup {
        path: file.to_path_buf(),
        reason,
    };
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", temp.display()));
    }
    let src = open_backup(file).map_err(|e| not_a_backup(e.to_string()))?;
    let schema = store::schema_version(&src).map_err(|e| not_a_backup(e.to_string()))?;
    let has_lessons: bool = src
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'lessons'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| not_a_backup(e.to_string()))?;
    if schema < 1 || !has_lessons {
        return Err(not_a_backup("it holds no dars store".to_owned()));
    }
    if schema > store::SCHEMA_VERSION {
        return Err(ServiceError::Store(StoreError::TooNew {
            path: file.to_path_buf(),
            found: schema,
            supported: store::SCHEMA_VERSION,
        }));
    }
    let mut copy_conn = Connection::open(temp).map_err(sqlite(temp))?;
    progress.begin("reading the backup");
    copy(&src, &mut copy_conn, progress).map_err(|e| not_a_backup(format!("it cannot be read whole: {e}")))?;
    drop(src);
    drop(copy_conn);
    let conn = store::open_file(temp)?;
    progress.begin("checking every file of the backup");
    let report = verify::verify_store(&conn, progress)?;
    if !report.is_clean() {
        let mut what: Vec<String> = report.database.clone();
        what.extend(report.problems.iter().map(|p| {
            let files: Vec<String> = p.files.iter().map(|(l, f)| format!("{l}/{f}")).collect();
            format!("{} ({})", p.what, files.join(", "))
        }));
        what.truncate(5);
        return Err(ServiceError::BackupDamaged {
            path: file.to_path_buf(),
            problems: what.join("; "),
        });
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok((schema, report.blobs_checked))
}

/// Puts the checked copy in place of the store, in one transaction of the live database, so a
/// running server (and a power cut) sees either the old store or the restored one.
fn swap_in(data: &Path, temp: &Path, alone: bool) -> Result<u64, ServiceError> {
    let db = data.join(store::DB_FILE);
    let src = Connection::open_with_flags(temp, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(temp))?;
    let opened = if db.exists() {
        store::open_file(&db)
    } else {
        store::open(data)
    };
    let mut live = match opened {
        Ok(live) => live,
        // The store is too damaged to open: with no server using it, move it aside and put
        // the copy in its place with a rename.
        Err(e) if alone => {
            drop(src);
            tracing::warn!(
                "the store in {} cannot be opened ({e}); moving it aside",
                data.display()
            );
            let aside = data.join(format!("dars-damaged-{}.sqlite", store::now_secs()));
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::rename(
                    format!("{}{suffix}", db.display()),
                    format!("{}{suffix}", aside.display()),
                );
            }
            std::fs::rename(&db, &aside).map_err(|e| io_error(&db, e))?;
            std::fs::rename(temp, &db).map_err(|e| io_error(&db, e))?;
            let conn = store::open(data)?;
            return Ok(store::count_lessons(&conn)?);
        }
        Err(e) => return Err(e.into()),
    };
    copy(&src, &mut live, &Progress::new()).map_err(sqlite(&db))?;
    // Readers may still hold the old pages; a checkpoint that cannot finish now runs later.
    let _ = live.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(store::count_lessons(&live)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_are_fat32_safe_and_dated() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_796_111_490); // 2026-12-01T07:51:30Z
        assert_eq!(
            backup_name("Quba computer centre", at),
            "dars-quba-computer-centre-2026-12-01-075130.sqlite"
        );
        assert_eq!(backup_name("dars", at), "dars-2026-12-01-075130.sqlite");
        assert_eq!(
            backup_name("Şəki: İnformatika", at),
            "dars-seki-informatika-2026-12-01-075130.sqlite"
        );
        assert_eq!(backup_name("Гянджа №2", at), "dars-gyandzha-2-2026-12-01-075130.sqlite");
        assert_eq!(backup_name("***", at), "dars-2026-12-01-075130.sqlite");
        let long = backup_name(&"Lənkəran ".repeat(10), at);
        assert!(long.len() <= 5 + 32 + 25, "{long}");
        assert!(
            long.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        );
    }
}
