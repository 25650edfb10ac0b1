//! The console in a real browser: Debian's headless Chromium, driven by playwright-core
//! (tests/browser/console.mjs), against the real `dars serve` in a network namespace at a LAN
//! address. A technician logs in and imports the package on a USB stick (a folder under a
//! configured usb root), with JavaScript off and on. Screenshots go to
//! target/browser-artifacts/.
//!
//! Needs root (`ip netns`), /usr/bin/chromium and `npm ci` in tests/browser. Without them the
//! test says why and passes, unless DARS_REQUIRE_BROWSER=1 (as in CI), when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dars::keys::SecretKey;
use dars::service::package::PublishOptions;
use dars::service::{Progress, Role};

const PORT: u16 = 18091;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn missing() -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (apt-get install chromium fonts-liberation)".to_owned());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is missing".to_owned());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some("playwright-core is missing (run `npm ci` in tests/browser)".to_owned());
    }
    None
}

fn ip(args: &[&str]) -> Result<(), String> {
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

/// A network namespace for the server, joined to this host by a veth pair; dropping it kills
/// what runs inside (by process id) and deletes it with the pair.
struct Lan {
    name: String,
    server_ip: String,
}

impl Lan {
    fn new() -> Result<Lan, String> {
        let pid = std::process::id();
        let name = format!("dars-console-{pid}");
        let net = 20 + pid % 200;
        ip(&["netns", "add", &name]).map_err(|e| format!("cannot make a network namespace: {e}"))?;
        let lan = Lan {
            name: name.clone(),
            server_ip: format!("10.78.{net}.2"),
        };
        let (outside, inside) = (format!("dco{pid}"), format!("dci{pid}"));
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &name,
        ])?;
        ip(&["addr", "add", &format!("10.78.{net}.1/24"), "dev", &outside])?;
        ip(&["link", "set", &outside, "up"])?;
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{}/24", lan.server_ip),
            "dev",
            &inside,
        ])?;
        ip(&["-n", &name, "link", "set", &inside, "up"])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(lan)
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

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_technician_logs_in_and_imports_from_a_stick_in_chromium() {
    let required = std::env::var("DARS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let lan = match missing().map_or_else(Lan::new, Err) {
        Ok(lan) => lan,
        Err(why) => {
            assert!(!required, "DARS_REQUIRE_BROWSER=1 but {why}");
            eprintln!("skipped: {why} (set DARS_REQUIRE_BROWSER=1 to make this a failure)");
            return;
        }
    };
    let work = tempfile::tempdir().expect("work");
    let data = work.path().join("data");
    crate::admin::add_account(&data, "rauf", Role::Technician, "technician-pass-1");
    // A stick at <usb root>/KINGSTON holding a package signed by a trusted key.
    let src = work.path().join("src");
    crate::common::write_lesson(&src, "stick-water", &[("index.html", b"<h1>Su</h1>")]);
    crate::common::write_lesson(&src, "stick-sun", &[("index.html", b"<h1>Gunes</h1>")]);
    let key = SecretKey::generate().expect("key");
    let public = key.public();
    let usb = work.path().join("media");
    let scan = dars::service::scan_folder(&src).expect("scan");
    dars::service::package::publish(
        scan,
        &usb.join("KINGSTON/DARS"),
        &PublishOptions::new(key),
        &Progress::new(),
    )
    .expect("publish");
    let config = work.path().join("dars.toml");
    std::fs::write(
        &config,
        format!(
            "usb_roots = [{:?}]\ntrusted_keys = [{:?}]\n",
            usb.display().to_string(),
            public.to_text()
        ),
    )
    .expect("config");

    let log = std::fs::File::create(work.path().join("serve.log")).expect("log");
    let _server = Server(
        Command::new("ip")
            .args(["netns", "exec", &lan.name])
            .arg(env!("CARGO_BIN_EXE_dars"))
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", &format!("0.0.0.0:{PORT}")])
            .env_remove("DARS_LISTEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dars serve"),
    );
    let base = format!("http://{}:{PORT}", lan.server_ip);
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
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts");
    let status = Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .env("DARS_URL", &base)
        .env("DARS_USER", "rauf")
        .env("DARS_PASSWORD", "technician-pass-1")
        .env("DARS_STICK", "KINGSTON")
        .env("DARS_LESSON", "Lesson stick-water")
        .env("ARTIFACTS", &artifacts)
        .stdin(Stdio::null())
        .status()
        .expect("run node");
    let log = std::fs::read_to_string(work.path().join("serve.log")).unwrap_or_default();
    assert!(
        status.success(),
        "the console browser test failed (screenshots in {}); server log:\n{log}",
        artifacts.display()
    );
    drop(lan);
}
