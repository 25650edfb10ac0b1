//! What the commands print: progress (a bar on a terminal, log lines otherwise) and reports.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::service::{ImportReport, Progress, Status, VerifyReport};

/// Runs `work` while showing `progress`: a bar with MB/s and time left on a terminal, or a
/// log line every few seconds otherwise.
pub fn with_progress<T>(progress: &Progress, label: &str, work: impl FnOnce() -> T) -> T {
    /// Stops the display even if `work` panics, so the scope can end.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            if std::io::stderr().is_terminal() {
                show_bar(progress, label, &done);
            } else {
                show_lines(progress, label, &done);
            }
        });
        let _stop = Stop(&done);
        work()
    })
}

fn show_bar(progress: &Progress, label: &str, done: &AtomicBool) {
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_owned());
    while !done.load(Ordering::Acquire) {
        let snap = progress.snapshot();
        bar.set_length(snap.total_bytes);
        bar.set_position(snap.done_bytes);
        bar.set_message(format!("{}/{} {}", snap.done_items, snap.total_items, snap.current));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

fn show_lines(progress: &Progress, label: &str, done: &AtomicBool) {
    let started = Instant::now();
    let mut last = Instant::now();
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < Duration::from_secs(5) {
            continue;
        }
        last = Instant::now();
        let snap = progress.snapshot();
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rate = snap.done_bytes as f64 / secs;
        let left = snap.total_bytes.saturating_sub(snap.done_bytes) as f64 / rate.max(1.0);
        tracing::info!(
            "{label}: {}/{} items, {} of {} ({}/s, about {:.0} s left) {}",
            snap.done_items,
            snap.total_items,
            human_bytes(snap.done_bytes),
            human_bytes(snap.total_bytes),
            human_bytes(rate as u64),
            left,
            snap.current
        );
    }
}

/// Bytes in the units people read: 1.2 MB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn print_import(report: &ImportReport, took: Duration) {
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    say!(
        "imported: {} new, {} updated, {} unchanged lessons; {} new blobs ({} stored) from {} read in {:.1} s",
        report.added.len(),
        report.updated.len(),
        report.unchanged.len(),
        report.blobs_written,
        human_bytes(report.bytes_stored),
        human_bytes(report.bytes_read),
        took.as_secs_f64()
    );
    if !report.errors.is_empty() {
        say!(
            "{} lesson folder(s) were refused; fix them as shown above and run the import again",
            report.errors.len()
        );
    }
}

pub fn print_status(status: &Status) {
    say!("store:          {}", status.data_file.display());
    say!("schema version: {}", status.schema_version);
    say!("lessons:        {}", status.lessons);
    say!(
        "blobs:          {} ({} of files)",
        status.blobs,
        human_bytes(status.raw_bytes)
    );
    for (encoding, blobs, bytes) in &status.stored {
        say!("  {encoding:<9} {blobs:>7} blobs {:>10} stored", human_bytes(*bytes));
    }
    say!("database size:  {}", human_bytes(status.file_bytes));
    if status.gzip_pending > 0 {
        say!(
            "gzip variants:  {} text files still to compress (dars serve does it in the background)",
            status.gzip_pending
        );
    }
    for (fingerprint, _, seq) in &status.publishers {
        say!("publisher:      {fingerprint} (sequence {seq})");
    }
    for sync in &status.syncs {
        let when = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(sync.finished_at).unwrap_or(0));
        say!(
            "last sync:      {} at {}: {} {}",
            sync.url,
            humantime::format_rfc3339_seconds(when),
            if sync.ok { "ok," } else { "FAILED:" },
            sync.message
        );
    }
}

pub fn print_verify(report: &VerifyReport) {
    for line in &report.database {
        say!("DATABASE: {line}");
    }
    for problem in &report.problems {
        say!("DAMAGED blob {}: {}", problem.hash, problem.what);
        for (lesson, path) in &problem.files {
            say!("  used by lesson {lesson}, file {path}");
        }
    }
    if report.is_clean() {
        say!(
            "ok: {} blobs ({}) verified",
            report.blobs_checked,
            human_bytes(report.bytes_checked)
        );
    } else {
        say!(
            "{} damaged blob(s), {} database problem(s); re-import the lessons named above (or restore a backup)",
            report.problems.len(),
            report.database.len()
        );
    }
}
