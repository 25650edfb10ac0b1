//! `dars report` and `dars fleet` with the real binary: three centres report onto sticks, one
//! behind on content, one short of disk (its data folder on a small tmpfs, which needs root),
//! one unused; the fleet table and its HTML flag each. A tampered or unsigned report is
//! flagged, never trusted. Also: views counted by a real `dars serve` survive its SIGTERM, and
//! its debug log carries each request's route, status, bytes and latency.

use std::path::{Path, PathBuf};
use std::process::Command;

use dars::service::{Library, UseKind};

use crate::common::{Served, http_get};
use crate::common::{dars, run, run_ok, text, write_lesson};

/// A small tmpfs mounted for the test; unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (needs root): {}",
                text(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

struct Centre {
    data: PathBuf,
    config: PathBuf,
}

impl Centre {
    fn new(root: &Path, data: PathBuf, name: &str, trusted: &str) -> Centre {
        let config = root.join(format!("{}.toml", data.file_name().expect("name").to_string_lossy()));
        std::fs::write(
            &config,
            format!("centre_name = \"{name}\"\ntrusted_keys = [\"{trusted}\"]\n"),
        )
        .expect("config");
        Centre { data, config }
    }

    fn cmd(&self) -> Command {
        let mut cmd = dars();
        cmd.arg("--data").arg(&self.data).arg("--config").arg(&self.config);
        cmd
    }
}

/// The table line of `centre` in the fleet's output.
fn row<'a>(table: &'a str, centre: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(centre))
        .unwrap_or_else(|| panic!("no row for {centre} in\n{table}"))
}

/// The HTML table row of `centre`.
fn html_row<'a>(html: &'a str, centre: &str) -> &'a str {
    html.split("<tr")
        .find(|r| r.contains(&format!("<td>{centre}<br>")))
        .unwrap_or_else(|| panic!("no row for {centre} in\n{html}"))
}

#[test]
fn three_centres_report_and_the_fleet_flags_each() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let small = match SmallDisk::mount(&w.join("small")) {
        Ok(disk) => disk,
        Err(why) => {
            let required = std::env::var("DARS_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
            assert!(!required, "DARS_REQUIRE_TOOLS=1 but {why}");
            eprintln!("skipped: {why}");
            return;
        }
    };
    // The ministry publishes sequence 1, then 2.
    let public = run_ok(dars().arg("keygen").arg("--out").arg(w.join("ministry.key")));
    let public = public.trim();
    for seq in [1, 2] {
        let src = w.join(format!("v{seq}"));
        let body = format!("<h1>Water, edition {seq}</h1>");
        write_lesson(&src, "water-cycle", &[("index.html", body.as_bytes())]);
        write_lesson(&src, "fractions", &[("index.html", b"<h1>Fractions</h1>")]);
        run_ok(
            dars()
                .arg("publish")
                .arg(&src)
                .arg("--key")
                .arg(w.join("ministry.key"))
                .arg("--out")
                .arg(w.join(format!("pkg{seq}")))
                .args(["--seq", &seq.to_string(), "--no-dictionary"]),
        );
    }
    let seki = Centre::new(w, w.join("seki"), "Şəki mərkəzi", public);
    let lankaran = Centre::new(w, small.0.join("lankaran"), "Lənkəran", public);
    let ganca = Centre::new(w, w.join("ganca"), "Gəncə", public);
    run_ok(seki.cmd().arg("import").arg(w.join("pkg1")));
    run_ok(lankaran.cmd().arg("import").arg(w.join("pkg2")));
    run_ok(ganca.cmd().arg("import").arg(w.join("pkg2")));

    // Şəki's phones open a lesson twice on a real server, stopped by SIGTERM.
    let served = Served::start_with(&seki.data, |cmd| {
        cmd.env("DARS_LOG", "dars=debug").args(["--log-format", "json"]);
    });
    for _ in 0..2 {
        assert_eq!(http_get(served.addr, "/lessons/water-cycle/").0, 200);
    }
    let line = served.log_line(|l| l.contains("\"route\":\"/lessons/{id}/\""));
    let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let fields = &log["fields"];
    assert_eq!(fields["status"], 200, "{line}");
    assert!(fields["bytes"].as_u64().is_some_and(|b| b > 0), "{line}");
    assert!(fields["latency_ms"].as_f64().is_some(), "{line}");
    assert_eq!(log["level"], "DEBUG", "{line}");
    assert!(served.terminate().success());
    // Lənkəran's were counted by its library directly.
    let library = Library::open(&lankaran.data).expect("open");
    library.record_use("fractions", UseKind::View);
    library.record_use("fractions", UseKind::OfflineSave);
    drop(library);

    let stick = w.join("stick");
    let stick2 = w.join("stick2");
    std::fs::create_dir_all(&stick).expect("stick");
    std::fs::create_dir_all(&stick2).expect("stick2");
    let out = run_ok(seki.cmd().arg("report").arg("--out").arg(&stick));
    assert!(
        out.contains("report written") && out.contains("2 views in the last 30 days"),
        "{out}"
    );
    run_ok(lankaran.cmd().arg("report").arg("--out").arg(&stick2));
    run_ok(ganca.cmd().arg("report").arg("--out").arg(&stick));
    // A second report reuses the centre's key.
    let first = run_ok(ganca.cmd().arg("report").arg("--out").arg(&stick2));
    let again = run_ok(ganca.cmd().arg("report").arg("--out").arg(&stick2));
    let key_of = |s: &str| {
        s.split("(key ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .map(str::to_owned)
    };
    assert_eq!(key_of(&first), key_of(&again));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ganca.data.join("centre.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for dir in [&stick, &stick2] {
        for entry in std::fs::read_dir(dir.join("DARS-REPORTS")).expect("reports") {
            let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
            let (stem, ext) = name.rsplit_once('.').expect("extension");
            assert!(matches!(ext, "json" | "sig"), "{name}");
            assert!(
                stem.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && stem.len() < 64,
                "not FAT32-safe: {name}"
            );
        }
    }

    let html = w.join("fleet.html");
    let table = run_ok(
        dars()
            .arg("fleet")
            .arg(&stick)
            .arg(&stick2)
            .arg("--html")
            .arg(&html)
            .args(["--min-free", "1G"]),
    );
    let seki_row = row(&table, "Şəki mərkəzi");
    assert!(seki_row.contains("OUT OF DATE"), "{table}");
    assert!(
        !seki_row.contains("UNUSED") && !seki_row.contains("SHORT OF DISK"),
        "{table}"
    );
    let lankaran_row = row(&table, "Lənkəran");
    assert!(lankaran_row.contains("SHORT OF DISK"), "{table}");
    assert!(
        !lankaran_row.contains("OUT OF DATE") && !lankaran_row.contains("UNUSED"),
        "{table}"
    );
    let ganca_row = row(&table, "Gəncə");
    assert!(ganca_row.contains("UNUSED"), "{table}");
    assert!(
        !ganca_row.contains("OUT OF DATE") && !ganca_row.contains("SHORT OF DISK"),
        "{table}"
    );
    let rows_of = |c: &str| {
        table
            .lines()
            .filter(|l| l.starts_with(c) && l.contains("0.1.0"))
            .count()
    };
    assert_eq!(rows_of("Gəncə "), 1, "newest only:\n{table}");
    assert!(table.contains("sequence 1, newest seen 2"), "{table}");
    assert!(!table.contains("NOT TRUSTED"), "{table}");

    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    let flags_in = |centre: &str| {
        let r = html_row(&page, centre);
        ["OUT OF DATE", "SHORT OF DISK", "UNUSED"].map(|f| r.contains(f))
    };
    assert_eq!(flags_in("Şəki mərkəzi"), [true, false, false]);
    assert_eq!(flags_in("Lənkəran"), [false, true, false]);
    assert_eq!(flags_in("Gəncə"), [false, false, true]);
    assert!(html_row(&page, "Gəncə").contains("<svg"), "a sparkline per centre");

    // A report changed after signing (Şəki claims the newest content), and one without its
    // signature: both flagged, neither trusted.
    let stick3 = w.join("stick3");
    std::fs::create_dir_all(&stick3).expect("stick3");
    let seki_json = std::fs::read_dir(stick.join("DARS-REPORTS"))
        .expect("reports")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().contains("seki-") && p.extension().is_some_and(|x| x == "json"))
        .expect("Şəki's report");
    let original = std::fs::read_to_string(&seki_json).expect("read");
    let forged = original.replace("\"seq\": 1", "\"seq\": 2");
    assert_ne!(forged, original);
    let name = seki_json.file_name().expect("name");
    std::fs::write(stick3.join(name), forged).expect("forge");
    std::fs::copy(seki_json.with_extension("sig"), stick3.join(name).with_extension("sig")).expect("sig");
    std::fs::write(stick3.join("unsigned.json"), &original).expect("unsigned");
    let out = run(dars().arg("fleet").arg(&stick).arg(&stick2).arg(&stick3));
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{table}{}", text(&out.stderr));
    assert!(
        row(&table, "Şəki mərkəzi").contains("OUT OF DATE"),
        "the forgery was trusted:\n{table}"
    );
    let flagged: Vec<&str> = table.lines().filter(|l| l.starts_with("NOT TRUSTED")).collect();
    assert_eq!(flagged.len(), 2, "{table}");
    assert!(
        flagged
            .iter()
            .any(|l| l.contains(&name.to_string_lossy().into_owned()) && l.contains("TAMPERED")),
        "{table}"
    );
    assert!(
        flagged
            .iter()
            .any(|l| l.contains("unsigned.json") && l.contains("no signature")),
        "{table}"
    );
}
