//! The phone experience in a real browser: Debian's headless Chromium, driven by
//! playwright-core (tests/browser/run.mjs) with Pixel 7 emulation, and Lighthouse, against the
//! real `dars serve` in a network namespace at a LAN address (not loopback: a LAN page is not a
//! secure context, and Chromium offers it only gzip). Screenshots and reports go to
//! target/browser-artifacts/.
//!
//! Needs root (`ip netns`), /usr/bin/chromium and `npm ci` in tests/browser. Without them the
//! test says why and passes, unless DARS_REQUIRE_BROWSER=1 (as in CI), when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 18080;

pub(crate) fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where screenshots, saved files and Lighthouse reports go.
pub(crate) fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts")
}

/// What is missing to run a browser test here (Chromium, node, these npm `modules`), if anything.
fn missing(modules: &[&str]) -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (apt-get install chromium fonts-liberation)".to_owned());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is missing".to_owned());
    }
    for module in modules {
        if !browser_dir().join("node_modules").join(module).exists() {
            return Some(format!("{module} is missing (run `npm ci` in tests/browser)"));
        }
    }
    None
}

/// The LAN for a browser test; `None` when this machine cannot run one and
/// DARS_REQUIRE_BROWSER is not 1 (it says why), a failure when it is.
pub(crate) fn lan_or_skip(modules: &[&str], tag: &str, octet: u8) -> Option<Lan> {
    let required = std::env::var("DARS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    match missing(modules).map_or_else(|| Lan::new(tag, octet), Err) {
        Ok(lan) => Some(lan),
        Err(why) => {
            assert!(!required, "DARS_REQUIRE_BROWSER=1 but {why}");
            eprintln!("skipped: {why} (set DARS_REQUIRE_BROWSER=1 to make this a failure)");
            None
        }
    }
}

fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace holding the server, joined to this host by a veth pair; dropping it
/// ends what runs inside (by process id) and deletes it, with the pair.
pub(crate) struct Lan {
    name: String,
    server_ip: String,
}

impl Lan {
    /// A namespace `dars-<tag>-<pid>` on 10.`octet`.x.0/24: each test its own `tag` (two
    /// letters, for the veth names) and `octet`, since the tests of one binary share a pid.
    fn new(tag: &str, octet: u8) -> Result<Lan, String> {
        let pid = std::process::id();
        let name = format!("dars-{tag}-{pid}");
        let net = 20 + pid % 200;
        let lan = Lan {
            name: name.clone(),
            server_ip: format!("10.{octet}.{net}.2"),
        };
        run_ip(&["netns", "add", &name]).map_err(|e| format!("cannot make a network namespace: {e}"))?;
        let (outside, inside) = (format!("d{tag}o{pid}"), format!("d{tag}i{pid}"));
        run_ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &name,
        ])?;
        run_ip(&["addr", "add", &format!("10.{octet}.{net}.1/24"), "dev", &outside])?;
        run_ip(&["link", "set", &outside, "up"])?;
        run_ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{}/24", lan.server_ip),
            "dev",
            &inside,
        ])?;
        run_ip(&["-n", &name, "link", "set", &inside, "up"])?;
        run_ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(lan)
    }

    /// Starts `dars GLOBAL... --data DATA serve` inside on `port`, logging to `log`, and waits
    /// for /healthz; returns the server (killed when dropped) and its base URL.
    pub(crate) async fn serve(
        &self,
        data: &Path,
        global: &[&std::ffi::OsStr],
        port: u16,
        log: &Path,
    ) -> (Server, String) {
        let log = std::fs::File::create(log).expect("log");
        let server = Server(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .arg(env!("CARGO_BIN_EXE_dars"))
                .args(global)
                .arg("--data")
                .arg(data)
                .args(["serve", "--listen", &format!("0.0.0.0:{port}")])
                .env_remove("DARS_LISTEN")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("dars serve"),
        );
        let base = format!("http://{}:{port}", self.server_ip);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = crate::common::client()
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "no /healthz at {base} after 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (server, base)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A `dars serve` in a [`Lan`], killed when dropped.
pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(script: &str, args: &[String], base: &str, artifacts: &Path) -> std::process::ExitStatus {
    Command::new("node")
        .arg(browser_dir().join(script))
        .args(args)
        .env("DARS_URL", base)
        .env("ARTIFACTS", artifacts)
        .stdin(Stdio::null())
        .status()
        .expect("run node")
}

#[tokio::test(flavor = "multi_thread")]
async fn phones_browse_save_and_read_offline_in_chromium() {
    let Some(lan) = lan_or_skip(&["playwright-core", "lighthouse"], "ph", 77) else {
        return;
    };
    // The samples, and a lesson that points at pictures in every way a page can.
    let work = tempfile::tempdir().expect("work");
    let data = work.path().join("data");
    dars::service::Library::open(&data)
        .expect("open")
        .load_samples_once()
        .expect("samples");
    let src = work.path().join("src");
    crate::offline::rich_lesson(&src);
    crate::common::run_ok(crate::common::dars().arg("--data").arg(&data).arg("import").arg(&src));

    let (_server, base) = lan.serve(&data, &[], PORT, &work.path().join("serve.log")).await;

    let artifacts = artifacts_dir();
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("artifacts");
    println!(
        "browser artifacts (screenshots, saved files, Lighthouse reports): {}",
        artifacts.display()
    );
    let played = node("run.mjs", &[], &base, &artifacts);
    assert!(
        played.success(),
        "the browser tests failed (see above; screenshots in {})",
        artifacts.display()
    );
    let pages = [
        format!("{base}/?lang=az"),
        format!("{base}/browse?language=az&grade=4&subject=Riyaziyyat"),
        format!("{base}/card/math-4-fractions-az"),
    ];
    let scored = node("lighthouse.mjs", &pages, &base, &artifacts);
    assert!(
        scored.success(),
        "a Lighthouse score is under 0.95 (see above; reports in {})",
        artifacts.display()
    );
    drop(lan);
}
