//! The command line: flags, subcommands, and what each prints. Calls the service layer only.

/// Prints a line to stdout; a closed pipe (`dars status | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod backup;
mod output;
mod packages;
mod report;
mod users;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::service::{ImportOptions, Library, Progress};

/// dars: an offline lesson server for school computer centres.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Start with `dars serve`, then open http://<this computer>:8080 on a phone."
)]
pub struct Args {
    /// Folder that holds the lesson store [default: ./dars-data]
    #[arg(long, global = true, env = "DARS_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Configuration file (TOML; see deploy/dars.toml)
    #[arg(long, global = true, env = "DARS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long, global = true, env = "DARS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve lessons to phones on the local network
    Serve {
        /// Address and port to listen on [default: 0.0.0.0:8080]
        #[arg(long, env = "DARS_LISTEN", value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Import lessons: a folder of lesson folders, one lesson folder, a signed package folder,
    /// or a USB stick holding DARS/
    Import {
        /// The folder to import
        path: PathBuf,
        /// Only check: verify signatures and every file, store nothing
        #[arg(long)]
        check: bool,
        /// Accept a package older than the one installed from the same publisher
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Fetch lessons from a package on the network: a published folder (nginx, CDN, bucket) or
    /// another dars (http://host:8080/mirror/)
    Sync {
        /// The package's address (the folder holding package.json)
        #[arg(required_unless_present = "peer")]
        url: Option<String>,
        /// Sync from a dars server found on the network instead (see `dars peers`)
        #[arg(long, value_name = "NAME", conflicts_with = "url")]
        peer: Option<String>,
        /// Cap the bandwidth, in bytes per second: 200k, 1.5M ...
        #[arg(long, value_name = "RATE", value_parser = crate::config::parse_rate)]
        max_rate: Option<u64>,
        /// Accept a package older than the one installed from the same publisher
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// List the dars servers announcing themselves on the local network
    Peers {
        /// Seconds to listen for answers
        #[arg(long, default_value_t = 3)]
        wait: u64,
    },
    /// Write lessons this centre holds as a package onto a USB stick (into DIR/DARS/)
    Export {
        /// The stick's folder (its mount point)
        dir: PathBuf,
        /// Only these lessons (repeat the flag); all lessons when left out
        #[arg(long = "lesson", value_name = "ID")]
        lessons: Vec<String>,
    },
    /// Make a new publisher key pair (the secret file is written once, readable only by you)
    Keygen {
        /// Where to write the secret key; the public key goes to FILE.pub
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Build a signed package from a folder of lesson folders
    Publish {
        /// The folder of lesson folders
        src: PathBuf,
        /// The secret key file made by `dars keygen`
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The package folder to write (created if needed)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Sequence number; must be higher than the last one published [default: date and time, YYYYMMDDHHMM]
        #[arg(long, value_name = "N")]
        seq: Option<u64>,
        /// Do not try a zstd dictionary trained on the package's own text
        #[arg(long)]
        no_dictionary: bool,
    },
    /// Copy the whole store into DIR (a USB stick) as one file named after the centre and the
    /// date; safe while the server serves and imports
    Backup {
        /// The folder to write the backup into
        dir: PathBuf,
    },
    /// Put a backup made by `dars backup` back in place of the store (checked whole first)
    Restore {
        /// The backup file (dars-....sqlite)
        file: PathBuf,
        /// Restore even while a dars server is using the store
        #[arg(long)]
        force: bool,
    },
    /// Print the settings in effect (defaults < config file < environment < flags) as TOML;
    /// fails, naming the key, when a setting is wrong
    Config,
    /// Show what the store holds
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Manage the accounts of the console at /admin (teachers and technicians)
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Write a signed report of this centre (version, content, health, disk, usage) onto a USB
    /// stick, into DIR/DARS-REPORTS/
    Report {
        /// The stick's folder (its mount point)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Re-hash every blob for the health figure (slow) instead of the quick check
        #[arg(long)]
        full: bool,
    },
    /// Read the reports of many centres from sticks or folders and show one table: which
    /// centre is out of date, short of disk or unused
    Fleet {
        /// Folders holding reports (a stick's root, its DARS-REPORTS/, or any folder)
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Also write the table as an HTML file
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Flag centres with less free disk than this
        #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = report::parse_size)]
        min_free: u64,
        /// Flag centres with no lesson opened in this many days
        #[arg(long, value_name = "DAYS", default_value_t = 14, value_parser = clap::value_parser!(u16).range(1..=90))]
        unused_days: u16,
    },
    /// Re-read and re-hash everything in the store, or in a package folder when PATH is given;
    /// exits nonzero if anything is damaged
    Verify {
        /// A package folder or USB stick to check instead of the store
        path: Option<PathBuf>,
    },
}

/// Runs the command line; the returned code is the process's exit code.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let listen = match &args.command {
        Command::Serve { listen } => *listen,
        _ => None,
    };
    let overrides = Overrides {
        data: args.data.clone(),
        listen,
    };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    match args.command {
        Command::Serve { .. } => serve(&config),
        Command::Import {
            path,
            check,
            allow_downgrade,
        } => {
            if crate::service::package::is_package(&path) {
                packages::import(&config, &path, check, allow_downgrade)
            } else {
                import(&config, &path, check)
            }
        }
        Command::Export { dir, lessons } => packages::export(&config, &dir, &lessons),
        Command::Sync {
            url,
            peer,
            max_rate,
            allow_downgrade,
        } => {
            let url = match (url, peer) {
                (Some(url), _) => url,
                (None, Some(name)) => packages::peer_url(&name)?,
                (None, None) => anyhow::bail!("give the package's address, or --peer NAME"),
            };
            packages::sync(&config, &url, max_rate, allow_downgrade)
        }
        Command::Peers { wait } => packages::peers(wait),
        Command::Keygen { out } => packages::keygen(&out),
        Command::Publish {
            src,
            key,
            out,
            seq,
            no_dictionary,
        } => packages::publish(&src, &key, &out, seq, no_dictionary),
        Command::Backup { dir } => backup::backup(&config, &dir),
        Command::Restore { file, force } => backup::restore(&config, &file, force),
        Command::Config => {
            say!("{}", toml::to_string(&config)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => status(&config, json),
        Command::User { command } => users::run(&config, command),
        Command::Report { out, full } => report::report(&config, &out, full),
        Command::Fleet {
            dirs,
            html,
            min_free,
            unused_days,
        } => report::fleet(
            &dirs,
            html.as_deref(),
            crate::service::fleet::FleetOptions {
                min_free_bytes: min_free,
                unused_days: usize::from(unused_days),
            },
        ),
        Command::Verify { path: Some(path) } => packages::verify(&config, &path),
        Command::Verify { path: None } => verify(&config),
    }
}

pub(crate) fn open(config: &Config) -> anyhow::Result<Library> {
    open_with(config, crate::store::Reads::AsUsual)
}

/// [`open`] for a command whose reads of the store are random from the first one.
pub(crate) fn open_with(config: &Config, reads: crate::store::Reads) -> anyhow::Result<Library> {
    Library::open_with(&config.data, reads)
        .with_context(|| format!("cannot open the store in {}", config.data.display()))
}

fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    // Held while serving, so `dars restore` knows the store is in use.
    let _serving = crate::service::hold_serving(&config.data)?;
    let library = open(config)?;
    if let Some(report) = library.load_samples_once()? {
        tracing::info!("loaded {} sample lessons into the new store", report.added.len());
        for error in &report.errors {
            tracing::warn!("sample lesson refused: {error}");
        }
    }
    // Blocking store work is bounded by the server itself; keep the pool small to match.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "cannot listen on {}; is another server using that port? Use --listen to choose another",
                config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        tracing::info!(
            "serving lessons from {} on {}",
            library.db_path().display(),
            crate::http::describe_listen(addr)
        );
        let library = std::sync::Arc::new(library);
        let _announcement = crate::discovery::announce(&announcement(config, &library, addr.port()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let schedule = schedule_syncs(config, &library, &stop)?;
        let limits = config.limits();
        let state = crate::http::AppState::with_console(library.clone(), config.console()?);
        let router = crate::http::router(state, &limits);
        crate::http::serve(listener, router, limits, crate::http::shutdown_signal()).await?;
        // The usage counts of the last minute; the library writes them when it closes too,
        // but not before every connection task has let go of it.
        if let Err(e) = library.flush_usage() {
            tracing::warn!("usage figures of the last minute were lost: {e}");
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(handle) = schedule {
            // A sync in progress stops at its next step; its work so far stays stored.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `dars serve` tells the network about itself.
fn announcement(config: &Config, library: &Library, port: u16) -> crate::discovery::Announce {
    let sequences = library
        .publishers()
        .unwrap_or_default()
        .into_iter()
        .map(|(fingerprint, _, seq)| format!("{fingerprint}:{seq}"))
        .collect();
    let trusted = crate::service::package::parse_trusted(&config.trusted_keys)
        .unwrap_or_default()
        .into_iter()
        .map(|k| k.fingerprint())
        .collect();
    crate::discovery::Announce {
        centre: config.centre_name.clone(),
        listen: Some(config.listen.ip()),
        port,
        sequences,
        trusted,
    }
}

/// Starts the scheduled syncs from the configured upstreams, if any.
fn schedule_syncs(
    config: &Config,
    library: &std::sync::Arc<Library>,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
    if config.upstreams.is_empty() {
        return Ok(None);
    }
    let opts = crate::service::sync::SyncOptions {
        package: crate::service::package::ImportPackageOptions {
            trusted: crate::service::package::parse_trusted(&config.trusted_keys)?,
            allow_downgrade: false,
        },
        max_rate: config.sync_rate()?,
        ..crate::service::sync::SyncOptions::default()
    };
    let every = config.sync_every()?;
    let upstreams = config.upstreams.clone();
    let library = std::sync::Arc::clone(library);
    let stop = std::sync::Arc::clone(stop);
    tracing::info!(
        "syncing from {} upstream(s) every {}",
        upstreams.len(),
        humantime::format_duration(every)
    );
    let handle = std::thread::Builder::new()
        .name("dars-sync".to_owned())
        .spawn(move || {
            crate::service::sync::run_schedule(&library, &upstreams, every, &opts, &stop);
        })?;
    Ok(Some(handle))
}

fn import(config: &Config, path: &Path, check: bool) -> anyhow::Result<ExitCode> {
    if !path.exists() {
        anyhow::bail!(
            "{} does not exist: check the path (is the USB stick plugged in?)",
            path.display()
        );
    }
    if !path.is_dir() {
        anyhow::bail!(
            "{} is not a folder: give the folder that holds the lesson folders",
            path.display()
        );
    }
    if check {
        let scan = crate::service::scan_folder(path).with_context(|| format!("cannot read {}", path.display()))?;
        for error in &scan.errors {
            eprintln!("error: {error}");
        }
        say!(
            "checked: {} lesson folders valid, {} refused; nothing was stored",
            scan.lessons.len(),
            scan.errors.len()
        );
        return Ok(if scan.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        });
    }
    let library = open(config)?;
    let progress = Progress::new();
    let started = Instant::now();
    let report = output::with_progress(&progress, "importing", || {
        library.import_folder(path, &ImportOptions::default(), &progress)
    })?;
    output::print_import(&report, started.elapsed());
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let status = open(config)?.status()?;
    if json {
        say!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        output::print_status(&status);
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(config: &Config) -> anyhow::Result<ExitCode> {
    let library = open(config)?;
    let progress = Progress::new();
    let report = output::with_progress(&progress, "verifying", || library.verify(&progress))?;
    output::print_verify(&report);
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
