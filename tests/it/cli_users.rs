//! `dars user ...` through the real binary: passwords from stdin, accounts that log in, and
//! the audit log naming the command line.

use std::io::Write;
use std::process::Stdio;

use dars::service::Library;

use crate::common::{dars, text};

/// Runs `dars --data DATA user ARGS` with `stdin` piped in.
fn user(data: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = dars()
        .arg("--data")
        .arg(data)
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dars");
    // A command that needs no password may exit before reading its input (the tests assert
    // its output and status instead): a closed pipe is not an error here.
    let written = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("wait")
}

#[test]
fn accounts_are_added_listed_changed_and_removed_from_the_command_line() {
    let data = tempfile::tempdir().expect("data");
    let out = user(data.path(), &["add", "amina", "--role", "teacher"], "teacher-pass-1\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("added teacher account amina"));
    let out = user(data.path(), &["add", "amina", "--role", "teacher"], "teacher-pass-1\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already an account named amina"),
        "{}",
        text(&out.stderr)
    );
    let out = user(data.path(), &["add", "rauf", "--role", "technician"], "short\n");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("too short"), "{}", text(&out.stderr));
    let out = user(data.path(), &["add", "rauf", "--role", "admin"], "long enough pass\n");
    assert!(!out.status.success(), "unknown role");
    let out = user(data.path(), &["add", "rauf", "--role", "technician"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no password on stdin"),
        "{}",
        text(&out.stderr)
    );
    let out = user(
        data.path(),
        &["add", "rauf", "--role", "technician"],
        "technician-pass-1\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = user(data.path(), &["list"], "");
    let listed = text(&out.stdout);
    assert!(listed.contains("amina") && listed.contains("teacher"), "{listed}");
    assert!(listed.contains("rauf") && listed.contains("technician"), "{listed}");

    let out = user(data.path(), &["passwd", "amina"], "a new password\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lib = Library::open(data.path()).expect("open");
    let here = std::net::IpAddr::from([127, 0, 0, 1]);
    assert!(lib.login("amina", "teacher-pass-1", here).is_err(), "old password");
    assert!(lib.login("amina", "a new password", here).is_ok(), "new password");
    let out = user(data.path(), &["passwd", "nobody"], "a new password\n");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no account named nobody"));

    let out = user(data.path(), &["remove", "amina"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = user(data.path(), &["list"], "");
    assert!(!text(&out.stdout).contains("amina"));

    let log = lib.audit_log(20).expect("audit");
    let changes: Vec<&str> = log
        .iter()
        .filter(|e| e.account.starts_with("command line"))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        changes,
        ["account removed", "password set", "account added", "account added"]
    );
}
