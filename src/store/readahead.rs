//! How much of the store file the kernel reads around each page SQLite asks for.
//!
//! An import or a sync reads the store at random: B-tree lookups of the contents it lacks, the
//! pages of the old versions it frees, a stored dictionary. From a cold page cache (a centre
//! just back from a power cut) the kernel reads ahead around such reads, up to the disk's
//! read-ahead (128 KB by default, 8 MB on some virtual disks), and keeps ramping up while SQLite
//! walks a chain of pages. Measured on the benchmark's update of 1 % of the lessons: 7.36 MB read
//! from disk for the 2.11 MB dars asked for; 2.25 MB with [`RandomReads`]
//! (bench/PACKAGES.md). Serving keeps the kernel's read-ahead: a phone reads a content's pages
//! in order, and one read of many pages is what an old disk does best.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// While alive, the kernel reads only the pages asked for from the store file, on every
/// descriptor this process has open on it; normal read-ahead comes back when it is dropped.
/// Connections opened meanwhile (the search texts' readers) read ahead as usual.
#[derive(Debug)]
pub struct RandomReads {
    file: Option<PathBuf>,
}

impl RandomReads {
    /// Advises the kernel for the file `conn` lives in (nothing for an in-memory database).
    pub fn start(conn: &Connection) -> Self {
        match super::file_of(conn) {
            Some(file) => Self::on_file(Path::new(file)),
            None => RandomReads { file: None },
        }
    }

    /// Advises the kernel for `file`, on the descriptors open on it now.
    pub fn on_file(file: &Path) -> Self {
        advise_random(file);
        RandomReads {
            file: Some(file.to_path_buf()),
        }
    }
}

impl Drop for RandomReads {
    fn drop(&mut self) {
        let Some(file) = &self.file else { return };
        for fd in descriptors_of(file) {
            if let Err(e) = advise(fd, 0, 0, Advice::Normal) {
                tracing::debug!("normal read-ahead advice on {}: {e}", file.display());
            }
        }
    }
}

/// How a store connection reads its file, from the moment it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// With the kernel's read-ahead (`dars serve`: phones read a content's pages in order).
    AsUsual,
    /// Only the pages asked for: for a command that opens the store only to import or sync.
    /// Its reads before the import proper (the schema check) would otherwise start
    /// read-ahead windows that the import then runs into.
    Random,
}

/// Advises random reads on every descriptor this process has open on `file`.
pub(super) fn advise_random(file: &Path) {
    let fds = descriptors_of(file);
    for fd in &fds {
        if let Err(e) = advise(*fd, 0, 0, Advice::Random) {
            tracing::debug!("random-read advice on {}: {e}", file.display());
        }
    }
    // SQLite reads the file's header as a connection opens, before any advice: the kernel's
    // first window (four pages) leaves a mark that starts read-ahead again, growing, the first
    // time SQLite reads past it. Those pages are dropped from the cache instead (each read
    // again alone when next asked for).
    if let Some(fd) = fds.first() {
        let _ = advise(*fd, 0, HEAD_BYTES, Advice::DontNeed);
    }
}

/// The bytes the kernel's first read of a file brings in (four pages of 4 KB).
const HEAD_BYTES: i64 = 16 * 1024;

#[derive(Clone, Copy)]
enum Advice {
    Normal,
    Random,
    DontNeed,
}

/// This process's descriptors open on `file` (the same device and inode).
#[cfg(target_os = "linux")]
fn descriptors_of(file: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(want) = std::fs::metadata(file) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse::<i32>().ok()?;
            // Follows the descriptor's link to the open file itself, wherever it was opened.
            let meta = std::fs::metadata(entry.path()).ok()?;
            (meta.dev() == want.dev() && meta.ino() == want.ino()).then_some(fd)
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn descriptors_of(_file: &Path) -> Vec<i32> {
    Vec::new()
}

/// `posix_fadvise` on a descriptor found by [`descriptors_of`]. One closed since (and its
/// number reused) only gets advice meant for another file, or EBADF.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise(fd: i32, offset: i64, len: i64, advice: Advice) -> std::io::Result<()> {
    let advice = match advice {
        Advice::Normal => libc::POSIX_FADV_NORMAL,
        Advice::Random => libc::POSIX_FADV_RANDOM,
        Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
    };
    // SAFETY: posix_fadvise takes plain integers and touches no memory of this process; a
    // descriptor that is not open gives EBADF.
    let rc = unsafe { libc::posix_fadvise(fd, offset, len, advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_fd: i32, _offset: i64, _len: i64, _advice: Advice) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;

    use super::*;

    const PAGE: u64 = 4096;

    /// Bytes this thread has made the kernel read from a disk so far.
    fn read_bytes() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
        io.lines()
            .find_map(|l| l.strip_prefix("read_bytes: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("read_bytes line")
    }

    /// A 4 MB file on a real disk (tmpfs keeps files in memory: nothing would be read).
    fn cold_file() -> (tempfile::TempDir, PathBuf) {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).expect("target folder");
        let dir = tempfile::tempdir_in(&target).expect("temp dir");
        let path = dir.path().join("store.bin");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&vec![7u8; 4 << 20]).expect("write");
        f.sync_all().expect("sync");
        advise(f.as_raw_fd(), 0, 0, Advice::DontNeed).expect("drop the file from the cache");
        (dir, path)
    }

    /// Reads pages `from..to` one at a time, as SQLite walks a chain of overflow pages, and
    /// returns what the kernel read from disk meanwhile.
    fn walk(file: &std::fs::File, from: u64, to: u64) -> u64 {
        let before = read_bytes();
        let mut page = vec![0; PAGE as usize];
        for n in from..to {
            file.read_at(&mut page, n * PAGE).expect("read");
        }
        read_bytes() - before
    }

    /// The way a store connection starts: SQLite reads the 100-byte header as it opens.
    fn open_like_sqlite(path: &Path) -> std::fs::File {
        let file = std::fs::File::open(path).expect("open");
        let mut header = [0; 100];
        file.read_at(&mut header, 0).expect("header");
        file
    }

    #[test]
    fn only_the_pages_asked_for_are_read_while_advised_and_read_ahead_comes_back_after() {
        let (_dir, path) = cold_file();
        let file = open_like_sqlite(&path);
        let advised = {
            let _reads = RandomReads::on_file(&path);
            walk(&file, 1, 65)
        };
        assert_eq!(
            advised,
            64 * PAGE,
            "64 pages read one by one while advised: the kernel read {advised} bytes"
        );

        // Without the advice (after the guard, and for comparison on the same file) the kernel
        // reads ahead: the test would not notice the advice missing otherwise.
        let (_dir2, path2) = cold_file();
        let plain = open_like_sqlite(&path2);
        let unadvised = walk(&plain, 1, 65);
        assert!(
            unadvised > 64 * PAGE,
            "this kernel reads ahead by default ({unadvised} bytes for 64 pages)"
        );
        let after = walk(&file, 200, 264);
        assert!(after > 64 * PAGE, "read-ahead is back once dropped: {after} bytes");
    }

    /// A migrated store holding a 1 MB blob and, after it in the file, a 4 MB one, dropped
    /// from the page cache.
    fn cold_store() -> tempfile::TempDir {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).expect("target folder");
        let dir = tempfile::tempdir_in(&target).expect("temp dir");
        let conn = super::super::open(dir.path()).expect("store");
        conn.execute_batch(
            "CREATE TABLE t (b BLOB);
             INSERT INTO t VALUES (randomblob(1048576));
             INSERT INTO t VALUES (randomblob(4194304));",
        )
        .expect("blobs");
        drop(conn); // the last connection: the log is copied into the database and removed
        let file = std::fs::File::open(dir.path().join(super::super::DB_FILE)).expect("db");
        file.sync_all().expect("sync");
        advise(file.as_raw_fd(), 0, 0, Advice::DontNeed).expect("drop the store from the cache");
        dir
    }

    /// What opening the store's pool and reading the 1 MB blob makes the kernel read.
    fn open_and_read_first_blob(dir: &Path, reads: Reads) -> u64 {
        let before = read_bytes();
        let pool = super::super::Pool::open_with(dir, reads).expect("pool");
        let blob: Vec<u8> = pool
            .with(|c| Ok(c.query_row("SELECT b FROM t WHERE rowid = 1", [], |r| r.get(0))?))
            .expect("blob");
        assert_eq!(blob.len(), 1 << 20);
        read_bytes() - before
    }

    #[test]
    fn a_pool_opened_for_random_reads_reads_only_what_sqlite_asks_for() {
        let random = open_and_read_first_blob(cold_store().path(), Reads::Random);
        // The blob, the schema's and the migration check's pages, the header read twice.
        assert!(
            random <= (1 << 20) + 128 * 1024,
            "opening and reading 1 MB read {random} bytes"
        );
        let usual = open_and_read_first_blob(cold_store().path(), Reads::AsUsual);
        assert!(
            usual > random,
            "with read-ahead the kernel reads into the next blob ({usual} bytes, random: {random})"
        );
    }

    #[test]
    fn every_descriptor_on_the_file_is_found_and_no_other() {
        let (_dir, path) = cold_file();
        let a = std::fs::File::open(&path).expect("open");
        let b = std::fs::File::open(&path).expect("open");
        let other = tempfile::tempfile().expect("other file");
        let found = descriptors_of(&path);
        assert!(
            found.contains(&a.as_raw_fd()) && found.contains(&b.as_raw_fd()),
            "{found:?}"
        );
        assert!(!found.contains(&other.as_raw_fd()), "{found:?}");
    }
}
