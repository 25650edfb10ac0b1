//! Commands for signed packages: keygen, publish, export, and importing or checking a
//! package folder or USB stick.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use super::output::{human_bytes, with_progress};
use crate::config::Config;
use crate::keys::{PublicKey, SecretKey};
use crate::service::Progress;
use crate::service::package::{self, DictionaryChoice, ImportPackageOptions, PublishOptions};

fn trusted(config: &Config) -> anyhow::Result<Vec<PublicKey>> {
    package::parse_trusted(&config.trusted_keys)
        .context("a key in trusted_keys (config file or DARS_TRUSTED_KEYS) is wrong")
}

pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let key = SecretKey::generate()?;
    let public_path = {
        let mut name = out.as_os_str().to_owned();
        name.push(".pub");
        std::path::PathBuf::from(name)
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists; a key file is never overwritten. Choose another name",
                out.display()
            )
        } else {
            anyhow::anyhow!("cannot create {}: {e}", out.display())
        }
    })?;
    file.write_all(key.to_file_text().as_bytes())?;
    file.sync_all()?;
    let public = key.public();
    std::fs::write(&public_path, format!("{}\n", public.to_text()))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    say!("{}", public.to_text());
    eprintln!("secret key: {} (keep it safe and private)", out.display());
    eprintln!(
        "public key: {} (fingerprint {})",
        public_path.display(),
        public.fingerprint()
    );
    eprintln!("centres that should accept your packages add this line to their config:");
    eprintln!("  trusted_keys = [\"{}\"]", public.to_text());
    Ok(ExitCode::SUCCESS)
}

pub fn publish(src: &Path, key: &Path, out: &Path, seq: Option<u64>, no_dictionary: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(key).with_context(|| format!("cannot read the key file {}", key.display()))?;
    let secret = SecretKey::parse_file(&text).with_context(|| format!("{} is not a secret key", key.display()))?;
    let scan = crate::service::scan_folder(src).with_context(|| format!("cannot read {}", src.display()))?;
    if !scan.errors.is_empty() {
        for error in &scan.errors {
            eprintln!("error: {error}");
        }
        anyhow::bail!(
            "{} lesson folder(s) are not valid; nothing was published",
            scan.errors.len()
        );
    }
    let mut opts = PublishOptions::new(secret);
    opts.seq = seq;
    if no_dictionary {
        opts.dictionary = DictionaryChoice::Never;
    }
    let progress = Progress::new();
    let started = Instant::now();
    let report = with_progress(&progress, "publishing", || {
        package::publish(scan, out, &opts, &progress)
    })?;
    if let Some((size, saving, _)) = report.dictionary.filter(|_| report.dictionary_reused) {
        say!(
            "zstd dictionary ({}) of the previous package in {}: still {:.0} % smaller on this text; reused, so unchanged text keeps its blob files",
            human_bytes(size as u64),
            out.display(),
            saving * 100.0
        );
    } else if let Some((size, saving, used)) = report.dictionary {
        say!(
            "zstd dictionary ({}) measured on the package's own text: {:.0} % smaller{}",
            human_bytes(size as u64),
            saving * 100.0,
            if used { "; used" } else { "; not worth it, not used" }
        );
    }
    say!(
        "published sequence {}: {} lessons ({} new or changed descriptions), {} files, {} distinct contents ({} new files) in {:.1} s",
        report.seq,
        report.lessons,
        report.parts_written,
        report.files,
        report.blobs,
        report.blobs_written,
        started.elapsed().as_secs_f64()
    );
    say!(
        "package: {} ({} from {} of lesson files)",
        out.display(),
        human_bytes(report.package_bytes),
        human_bytes(report.raw_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn export(config: &Config, dir: &Path, lessons: &[String]) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a folder: give the USB stick's folder (where it is mounted)",
            dir.display()
        );
    }
    let library = super::open(config)?;
    let progress = Progress::new();
    let started = Instant::now();
    let report = with_progress(&progress, "exporting", || library.export(dir, lessons, &progress))?;
    say!(
        "exported {} lessons to {}: {} files written ({}), {} already there, in {:.1} s",
        report.lessons,
        report.dir.display(),
        report.blobs_written,
        human_bytes(report.bytes_written),
        report.blobs_present,
        started.elapsed().as_secs_f64()
    );
    say!("the stick can be removed once your computer says it is safe to do so");
    Ok(ExitCode::SUCCESS)
}

pub fn import(config: &Config, path: &Path, check: bool, allow_downgrade: bool) -> anyhow::Result<ExitCode> {
    let trusted = trusted(config)?;
    let progress = Progress::new();
    let started = Instant::now();
    if check {
        return verify_package(path, &trusted, &progress, started);
    }
    // This process only imports: its reads of the store are random from the first one.
    let library = super::open_with(config, crate::store::Reads::Random)?;
    let opts = ImportPackageOptions {
        trusted,
        allow_downgrade,
    };
    let report = with_progress(&progress, "importing", || {
        library.import_package(path, &opts, &progress)
    })?;
    for (who, seq) in &report.manifests {
        say!("from {who}, sequence {seq}");
    }
    say!(
        "imported: {} new, {} updated, {} unchanged lessons; {} contents stored ({} read), {} already here{}; {:.1} s",
        report.added.len(),
        report.updated.len(),
        report.unchanged.len(),
        report.blobs_written,
        human_bytes(report.bytes_read),
        report.blobs_skipped,
        match report.collected {
            0 => String::new(),
            n => format!(", {n} no longer used removed"),
        },
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify(config: &Config, path: &Path) -> anyhow::Result<ExitCode> {
    let trusted = trusted(config)?;
    verify_package(path, &trusted, &Progress::new(), Instant::now())
}

fn verify_package(
    path: &Path,
    trusted: &[PublicKey],
    progress: &Progress,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let root = package::locate(path)?;
    let report = with_progress(progress, "checking", || {
        package::check_package(&root, trusted, progress)
    })?;
    for (who, seq, lessons) in &report.manifests {
        if who == "local" {
            say!("local lessons (unsigned): {lessons}");
        } else {
            say!("signed by {who}, sequence {seq}: {lessons} lessons");
        }
    }
    say!(
        "ok: {} lessons, {} contents ({}) verified in {:.1} s; nothing was stored",
        report.lessons,
        report.blobs_checked,
        human_bytes(report.bytes_checked),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn sync(config: &Config, url: &str, max_rate: Option<u64>, allow_downgrade: bool) -> anyhow::Result<ExitCode> {
    let trusted = trusted(config)?;
    // This process only syncs: its reads of the store are random from the first one.
    let library = super::open_with(config, crate::store::Reads::Random)?;
    let opts = crate::service::sync::SyncOptions {
        package: ImportPackageOptions {
            trusted,
            allow_downgrade,
        },
        max_rate,
        ..crate::service::sync::SyncOptions::default()
    };
    let progress = Progress::new();
    let started = Instant::now();
    let report = with_progress(&progress, "syncing", || library.sync_and_record(url, &opts, &progress))?;
    let secs = started.elapsed().as_secs_f64();
    for (who, seq) in &report.package.manifests {
        say!("from {who}, sequence {seq}");
    }
    say!(
        "synced: {} new, {} updated, {} unchanged lessons; downloaded {} ({}/s) in {:.1} s; {} contents already here{}",
        report.package.added.len(),
        report.package.updated.len(),
        report.package.unchanged.len(),
        human_bytes(report.bytes_downloaded),
        human_bytes((report.bytes_downloaded as f64 / secs.max(0.001)) as u64),
        secs,
        report.package.blobs_skipped,
        if report.resumed > 0 {
            format!("; resumed after {} fetched earlier", human_bytes(report.resumed))
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn peers(wait: u64) -> anyhow::Result<ExitCode> {
    let peers = crate::discovery::browse(std::time::Duration::from_secs(wait))?;
    if peers.is_empty() {
        say!("no dars servers answered within {wait} s (they must be on this network, with multicast allowed)");
        return Ok(ExitCode::SUCCESS);
    }
    for peer in &peers {
        let addresses: Vec<String> = peer
            .addresses
            .iter()
            .map(|a| std::net::SocketAddr::new(*a, peer.port).to_string())
            .collect();
        say!(
            "{}\t{}\tcentre={}\tversion={}\tcontent={}",
            peer.name,
            addresses.join(","),
            peer.centre,
            peer.version,
            if peer.sequences.is_empty() {
                "-"
            } else {
                &peer.sequences
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The mirror address of the peer called `name` (its instance name or centre name).
pub fn peer_url(name: &str) -> anyhow::Result<String> {
    let peers = crate::discovery::browse(std::time::Duration::from_secs(3))?;
    let peer = peers
        .iter()
        .find(|p| p.name == name || p.centre == name)
        .or_else(|| {
            peers
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(name) || p.centre.eq_ignore_ascii_case(name))
        })
        .ok_or_else(|| {
            let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
            anyhow::anyhow!(
                "no dars server called {name:?} answered on the network; found: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })?;
    peer.mirror_url()
        .ok_or_else(|| anyhow::anyhow!("{name} announced no address"))
}
