//! `dars report` (a signed field report onto a stick) and `dars fleet` (many centres' reports
//! as one table on the terminal and in an HTML file).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use maud::{DOCTYPE, Markup, html};

use super::output::{human_bytes, with_progress};
use crate::config::Config;
use crate::service::Progress;
use crate::service::fleet::{Fleet, FleetOptions, merge};
use crate::service::report::read_reports;

pub fn report(config: &Config, out: &Path, full: bool) -> anyhow::Result<ExitCode> {
    if !out.is_dir() {
        anyhow::bail!(
            "{} is not a folder: give the USB stick's folder (its mount point)",
            out.display()
        );
    }
    let library = super::open(config)?;
    let progress = Progress::new();
    let (path, report) = with_progress(&progress, "checking", || {
        library.write_report(&config.centre_name, out, full, &progress)
    })
    .with_context(|| format!("cannot write the report to {}", out.display()))?;
    say!("report written: {}", path.display());
    say!(
        "centre {} (key {}), {} lessons, store {}, {} free on disk, {} views in the last 30 days",
        report.centre,
        report.fingerprint,
        report.lessons,
        if report.health.ok { "healthy" } else { "DAMAGED" },
        human_bytes(report.disk.free_bytes),
        report.usage.views_last(30)
    );
    Ok(ExitCode::SUCCESS)
}

/// A size such as `2G` or `500M` (k = 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    crate::config::parse_rate(text).map_err(|_| format!("{text:?} is not a size: write bytes such as 500M or 2G"))
}

pub fn fleet(dirs: &[PathBuf], html_out: Option<&Path>, options: FleetOptions) -> anyhow::Result<ExitCode> {
    let found = read_reports(dirs)?;
    if found.is_empty() {
        anyhow::bail!(
            "no reports found in {}: reports are the .json files that `dars report --out` writes into DARS-REPORTS/",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let fleet = merge(found, options);
    print_table(&fleet);
    if let Some(path) = html_out {
        std::fs::write(path, page(&fleet).into_string()).with_context(|| format!("cannot write {}", path.display()))?;
        say!("HTML written: {}", path.display());
    }
    Ok(if fleet.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The content column: `ok`, or each publisher the centre is behind on.
fn content(row: &crate::service::fleet::CentreRow) -> String {
    let seqs: Vec<String> = row
        .report
        .publishers
        .iter()
        .map(|p| format!("{}:{}", &p.fingerprint[..p.fingerprint.len().min(9)], p.seq))
        .collect();
    if seqs.is_empty() {
        "none".to_owned()
    } else {
        seqs.join(" ")
    }
}

fn flag_words(row: &crate::service::fleet::CentreRow) -> String {
    let mut words: Vec<&str> = row.flags.iter().map(|f| f.word()).collect();
    words.dedup();
    if words.is_empty() {
        "ok".to_owned()
    } else {
        words.join(", ")
    }
}

fn print_table(fleet: &Fleet) {
    let days = fleet.options.unused_days;
    let header = [
        "CENTRE".to_owned(),
        "REPORT".to_owned(),
        "VERSION".to_owned(),
        "LESSONS".to_owned(),
        "CONTENT".to_owned(),
        "DISK FREE".to_owned(),
        format!("VIEWS {days}d"),
        "FLAGS".to_owned(),
    ];
    let mut rows: Vec<Vec<String>> = vec![header.to_vec()];
    for row in &fleet.centres {
        let r = &row.report;
        rows.push(vec![
            r.centre.clone(),
            r.date.clone(),
            r.software_version.clone(),
            r.lessons.to_string(),
            content(row),
            human_bytes(r.disk.free_bytes),
            row.recent_views.to_string(),
            flag_words(row),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        say!("{}", cells.join("  ").trim_end());
    }
    for row in fleet.centres.iter().filter(|r| !r.flags.is_empty()) {
        say!("");
        say!("{} ({}):", row.report.centre, row.report.fingerprint);
        for flag in &row.flags {
            say!("  {}", flag.describe());
        }
    }
    for (file, why) in &fleet.rejected {
        say!("");
        say!("NOT TRUSTED: {} {why}", file.display());
    }
}

/// The HTML file: the same table, flags in words, and a sparkline of each centre's views.
fn page(fleet: &Fleet) -> Markup {
    let days = fleet.options.unused_days;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "dars fleet" }
                style { (STYLE) }
            }
            body {
                h1 { "dars fleet: " (fleet.centres.len()) " centres" }
                @if !fleet.rejected.is_empty() {
                    section.rejected {
                        h2 { "Reports not trusted" }
                        ul { @for (file, why) in &fleet.rejected { li { strong { (file.display().to_string()) } " " (why) } } }
                    }
                }
                table {
                    thead { tr {
                        th { "Centre" } th { "Report" } th { "Version" } th { "Lessons" } th { "Content (publisher:sequence)" }
                        th { "Disk free" } th { "Views, last " (days) " days" } th { "Views, 90 days" } th { "Flags" }
                    } }
                    tbody {
                        @for row in &fleet.centres {
                            @let r = &row.report;
                            tr.flagged[!row.flags.is_empty()] {
                                td { (r.centre) br; small { (r.fingerprint) } }
                                td { (r.date) }
                                td { (r.software_version) }
                                td.n { (r.lessons) }
                                td { (content(row)) }
                                td.n { (human_bytes(r.disk.free_bytes)) }
                                td.n { (row.recent_views) }
                                td { (crate::http::charts::sparkline(&format!("{}: views per day", r.centre),
                                        &r.usage.per_day.iter().map(|d| d.views).collect::<Vec<_>>())) }
                                td {
                                    @if row.flags.is_empty() { "ok" }
                                    @for flag in &row.flags { div.flag { strong { (flag.word()) } " " (flag.describe().split_once(": ").map_or("", |p| p.1)) } }
                                }
                            }
                        }
                    }
                }
                p { "Newest sequence seen per publisher: "
                    @for (publisher, seq) in &fleet.newest { code { (publisher) ":" (seq) } " " } }
            }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1rem}table{border-collapse:collapse}\
th,td{border:1px solid #bbb;padding:.3rem .5rem;text-align:left;vertical-align:top}td.n{text-align:right}\
tr.flagged{background:#fff4e5}.flag strong,.rejected strong{color:#a00}small{color:#555}";
