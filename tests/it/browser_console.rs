//! The console in a real browser: Debian's headless Chromium, driven by playwright-core
//! (tests/browser/console.mjs), against the real `dars serve` in a network namespace at a LAN
//! address. A technician logs in and imports the package on a USB stick (a folder under a
//! configured usb root), with JavaScript off and on. Screenshots go to
//! target/browser-artifacts/.
//!
//! Needs root (`ip netns`), /usr/bin/chromium and `npm ci` in tests/browser. Without them the
//! test says why and passes, unless DARS_REQUIRE_BROWSER=1 (as in CI), when it fails.

use std::process::{Command, Stdio};

use dars::keys::SecretKey;
use dars::service::package::PublishOptions;
use dars::service::{Progress, Role};

use crate::browser::{artifacts_dir, browser_dir, lan_or_skip};

const PORT: u16 = 18091;

#[tokio::test(flavor = "multi_thread")]
async fn a_technician_logs_in_and_imports_from_a_stick_in_chromium() {
    let Some(lan) = lan_or_skip(&["playwright-core"], "co", 78) else {
        return;
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

    let (_server, base) = lan
        .serve(
            &data,
            &["--config".as_ref(), config.as_os_str()],
            PORT,
            &work.path().join("serve.log"),
        )
        .await;
    let artifacts = artifacts_dir();
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
