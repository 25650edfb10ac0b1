//! `dars backup` and `dars restore`: what they print around the service's work.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::output::{self, human_bytes};
use crate::config::Config;
use crate::service::{self, Progress};

pub fn backup(config: &Config, dir: &Path) -> anyhow::Result<ExitCode> {
    let library = super::open(config)?;
    let progress = Progress::new();
    let started = Instant::now();
    let report = output::with_progress(&progress, "backing up", || {
        library.backup(dir, &config.centre_name, &progress)
    })?;
    say!(
        "backed up {} lessons into {} ({}) in {:.1} s",
        report.lessons,
        report.path.display(),
        human_bytes(report.bytes),
        started.elapsed().as_secs_f64()
    );
    say!("to put it back: dars restore {}", report.path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn restore(config: &Config, file: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let progress = Progress::new();
    let started = Instant::now();
    let report = output::with_progress(&progress, "restoring", || {
        service::restore(&config.data, file, force, &progress)
    })?;
    say!(
        "restored {} lessons from {} ({} files checked, backup schema version {}) in {:.1} s",
        report.lessons,
        file.display(),
        report.blobs_checked,
        report.backup_schema,
        started.elapsed().as_secs_f64()
    );
    if report.while_serving {
        say!("the running server serves the restored lessons now");
    }
    Ok(ExitCode::SUCCESS)
}
