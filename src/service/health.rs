//! What a technician checks first: the store answers, the disk it lives on has room, the
//! scheduled syncs worked.

use serde::Serialize;

use super::{Library, ServiceError, Status};

/// Free space below this is a problem: an import of a new package could fail.
const LOW_DISK: u64 = 1 << 30;

/// Free and total bytes of the file system holding the store.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Disk {
    pub free: u64,
    pub total: u64,
}

/// The store's figures, the disk, and the problems found (empty when all is well).
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: Status,
    pub disk: Option<Disk>,
    pub problems: Vec<String>,
}

/// Free and total space of the file system holding `path` (fs4: statvfs on Unix,
/// GetDiskFreeSpaceExW on Windows, where centres also run dars).
pub fn disk_space(path: &std::path::Path) -> std::io::Result<Disk> {
    Ok(Disk {
        free: fs4::available_space(path)?,
        total: fs4::total_space(path)?,
    })
}

impl Library {
    /// The store's status, the disk and any problems, for the console.
    pub fn health(&self) -> Result<Health, ServiceError> {
        let status = self.status()?;
        let disk = disk_space(self.db_path()).ok();
        let mut problems = Vec::new();
        if let Some(d) = disk
            && (d.free < LOW_DISK || d.free < d.total / 20)
        {
            problems.push(format!(
                "only {} MB free on the disk holding the store; free some space before the next import",
                d.free >> 20
            ));
        }
        for sync in status.syncs.iter().filter(|s| !s.ok) {
            problems.push(format!("the last sync from {} failed: {}", sync.url, sync.message));
        }
        Ok(Health { status, disk, problems })
    }
}
