//! mDNS between hosts: `dars serve` in one network namespace, `dars peers`, python-zeroconf and
//! avahi in another, joined by a veth pair or a bridge. Multicast never leaves the namespaces
//! these tests make (every server and browser runs under `ip netns exec`), and each namespace is
//! deleted, with whatever still runs in it, when its guard drops, even after a failure.
//!
//! Needs root (`ip netns`); the third-party clients need `python3` with `zeroconf` and
//! `avahi-daemon`, `avahi-utils` and `dbus`. Without them a test says why and returns, unless
//! `DARS_REQUIRE_TOOLS=1` (as in CI), when it fails.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dars::service::Library;
use dars::store::LessonFilter;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Each namespace has its own ports, so a fixed one cannot clash with anything.
const PORT: u16 = 18080;
/// How long to keep looking for an announcement before failing.
const BROWSE_FOR: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Tools present or not

fn tools_required() -> bool {
    std::env::var("DARS_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Says why a test cannot run here; fails instead when the tools are required.
fn unavailable(why: &str) {
    assert!(!tools_required(), "DARS_REQUIRE_TOOLS=1 but {why}");
    eprintln!("skipped: {why} (set DARS_REQUIRE_TOOLS=1 to make this a failure)");
}

/// Unwraps a setup step, or skips the test (see [`unavailable`]) when it failed.
macro_rules! need {
    ($step:expr) => {
        match $step {
            Ok(value) => value,
            Err(why) => {
                unavailable(&why);
                return;
            }
        }
    };
}

fn have_zeroconf() -> Result<(), String> {
    match Command::new("python3").args(["-c", "import zeroconf"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(_) => Err("python-zeroconf is missing (python3 -m pip install zeroconf)".to_owned()),
        Err(e) => Err(format!("python3 is missing ({e})")),
    }
}

fn have_avahi() -> Result<(), String> {
    for (program, package) in [
        ("avahi-daemon", "avahi-daemon"),
        ("avahi-browse", "avahi-utils"),
        ("dbus-daemon", "dbus"),
        ("unshare", "util-linux"),
    ] {
        if Command::new(program).arg("--version").output().is_err() {
            return Err(format!("{program} is missing (apt-get install -y {package})"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Network namespaces

static NEXT: AtomicU32 = AtomicU32::new(0);

fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace of this test process; dropping it kills what runs in it and deletes it.
#[derive(Debug)]
struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace with `lo` up (or down, for a host with no network at all).
    fn new(tag: &str, lo_up: bool) -> Result<Netns, String> {
        let name = format!(
            "dars-mdns-{}-{}{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_ip(&["netns", "add", &name]).map_err(|e| format!("cannot make a network namespace: {e}"))?;
        let ns = Netns { name };
        if lo_up {
            ns.ip(&["link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }

    /// `ip -n NAME args...`
    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// `program` run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// `dars` run inside the namespace, with none of the caller's DARS_* settings.
    fn dars(&self) -> Command {
        self.dars_on_host(None)
    }

    /// `dars` run inside the namespace, on a machine called `host` (its own UTS namespace)
    /// when given, else on one named like this machine.
    fn dars_on_host(&self, host: Option<&str>) -> Command {
        let dars = env!("CARGO_BIN_EXE_dars");
        let mut command = match host {
            None => self.command(dars),
            Some(host) => {
                let mut command = self.command("unshare");
                command.args(["--uts", "sh", "-c", r#"hostname "$0" && exec "$@""#, host, dars]);
                command
            }
        };
        for var in ["DARS_DATA", "DARS_CONFIG", "DARS_LISTEN", "DARS_LOG", "DARS_LOG_FORMAT"] {
            command.env_remove(var);
        }
        command.stdin(Stdio::null());
        command
    }

    /// Adds an address to one of its interfaces and brings the interface up.
    fn up(&self, dev: &str, cidr: &str) -> Result<(), String> {
        self.ip(&["addr", "add", cidr, "dev", dev])?;
        self.ip(&["link", "set", dev, "up"])
    }

    /// Waits until `dev` has carrier (operstate UP), as on a machine whose network is ready:
    /// the kernel reports a veth's carrier up to a second after both ends are up, and mdns-sd
    /// only looks for new interfaces every 5 s.
    fn wait_running(&self, dev: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("ip")
                .args(["-n", &self.name, "-o", "link", "show", "dev", dev])
                .output()
                .map_err(|e| format!("cannot run ip: {e}"))?;
            let line = String::from_utf8_lossy(&out.stdout).into_owned();
            if line.contains(" state UP ") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{dev} in {} has no carrier after 10 s: {line}", self.name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Only processes this test started run in its namespace; end them by id.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Two hosts joined by a cable: A at 10.199.`net`.1, B at 10.199.`net`.2, each on `lan0`.
fn cable(net: u8) -> Result<(Netns, Netns), String> {
    let a = Netns::new("a", true)?;
    let b = Netns::new("b", true)?;
    a.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", &b.name,
    ])
    .map_err(|e| format!("cannot make a veth pair: {e}"))?;
    a.up("lan0", &format!("10.199.{net}.1/24"))?;
    b.up("lan0", &format!("10.199.{net}.2/24"))?;
    a.wait_running("lan0")?;
    b.wait_running("lan0")?;
    Ok((a, b))
}

/// A switch: `hub` holds a bridge (at 10.199.`net`.1 on `br0`) and each of `hosts` hosts is
/// plugged into it by its `lan0`, at 10.199.`net`.11, .12 ...
fn switch(net: u8, hosts: usize) -> Result<(Netns, Vec<Netns>), String> {
    let hub = Netns::new("hub", true)?;
    hub.ip(&["link", "add", "br0", "type", "bridge"])
        .map_err(|e| format!("cannot make a bridge: {e}"))?;
    hub.up("br0", &format!("10.199.{net}.1/24"))?;
    let mut plugged = Vec::new();
    for i in 0..hosts {
        let host = Netns::new(&format!("h{i}"), true)?;
        let port = format!("port{i}");
        host.ip(&[
            "link", "add", "lan0", "type", "veth", "peer", "name", &port, "netns", &hub.name,
        ])
        .map_err(|e| format!("cannot make a veth pair: {e}"))?;
        hub.ip(&["link", "set", &port, "master", "br0"])?;
        hub.ip(&["link", "set", &port, "up"])?;
        host.up("lan0", &format!("10.199.{net}.{}/24", 11 + i))?;
        plugged.push(host);
    }
    for host in &plugged {
        host.wait_running("lan0")?;
    }
    hub.wait_running("br0")?;
    Ok((hub, plugged))
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A background process writing to a log file; killed when dropped.
#[derive(Debug)]
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut command: Command, log: PathBuf) -> Proc {
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn");
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls until `ready` holds for the log, failing if the process ends or time runs out.
    fn wait_for_log(&mut self, what: &str, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if ready(&log) {
                return;
            }
            assert!(self.running(), "{what} ended early: {log}");
            assert!(Instant::now() < deadline, "{what} is not ready after 20 s: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` from inside `ns` (bash's /dev/tcp, so no HTTP client has to be installed):
/// the status code and body.
fn http_get(ns: &Netns, host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let out = ns
        .command("timeout")
        .args([
            "5",
            "bash",
            "-c",
            r#"exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3 && cat <&3"#,
            "get",
            host,
            &port.to_string(),
            path,
        ])
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text}{}", String::from_utf8_lossy(&out.stderr)))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    Ok((status, body.to_owned()))
}

/// `dars serve` in `ns` with `centre_name = centre`, over a fresh store in `work/name`
/// (so it loads the sample lessons), listening on `listen`.
fn serve(ns: &Netns, work: &Path, name: &str, centre: &str, listen: &str) -> Proc {
    serve_on_host(ns, None, work, name, centre, listen)
}

/// [`serve`] on a machine called `host` (see [`Netns::dars_on_host`]).
fn serve_on_host(ns: &Netns, host: Option<&str>, work: &Path, name: &str, centre: &str, listen: &str) -> Proc {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir).expect("server dir");
    let config = dir.join("dars.toml");
    std::fs::write(&config, format!("centre_name = \"{centre}\"\n")).expect("config");
    let mut command = ns.dars_on_host(host);
    command
        .current_dir(&dir)
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(dir.join("data"))
        .args(["serve", "--listen", listen]);
    Proc::spawn(command, dir.join("serve.log"))
}

/// Polls /healthz from inside `ns` on `port` until it answers 200.
fn wait_healthy(server: &mut Proc, ns: &Netns, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = http_get(ns, "127.0.0.1", port, "/healthz") {
            return;
        }
        assert!(server.running(), "dars serve ended: {}", server.log());
        assert!(Instant::now() < deadline, "no /healthz after 20 s: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server in `ns` on 0.0.0.0:PORT, answering.
fn serve_ready(ns: &Netns, work: &Path, name: &str, centre: &str) -> Proc {
    let mut server = serve(ns, work, name, centre, &format!("0.0.0.0:{PORT}"));
    wait_healthy(&mut server, ns, PORT);
    server
}

// ---------------------------------------------------------------------------------------------
// `dars peers`

/// One line of `dars peers`: `NAME\tADDRS:PORT\tcentre=..\tversion=..\tcontent=..`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerLine {
    name: String,
    addresses: Vec<String>,
    port: u16,
    centre: String,
    version: String,
    content: String,
}

fn parse_peer(line: &str) -> Option<PeerLine> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [name, at, centre, version, content] = fields[..] else {
        return None;
    };
    // Each address is printed with its port: 10.0.0.1:8080,[fe80::1]:8080
    let sockets: Vec<std::net::SocketAddr> = at.split(',').map(|a| a.parse().ok()).collect::<Option<_>>()?;
    let port = sockets.first()?.port();
    Some(PeerLine {
        name: name.to_owned(),
        addresses: sockets.iter().map(|a| a.ip().to_string()).collect(),
        port,
        centre: centre.strip_prefix("centre=")?.to_owned(),
        version: version.strip_prefix("version=")?.to_owned(),
        content: content.strip_prefix("content=")?.to_owned(),
    })
}

/// One `dars peers --wait SECS` in `ns`: what it lists and what it printed.
fn peers_once(ns: &Netns, work: &Path, secs: u64) -> (Vec<PeerLine>, String) {
    let out = ns
        .dars()
        .current_dir(work)
        .arg("--data")
        .arg(work.join("browser-data"))
        .args(["peers", "--wait", &secs.to_string()])
        .output()
        .expect("run dars peers");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dars peers failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout.lines().filter_map(parse_peer).collect(), stdout)
}

/// Runs `dars peers --wait 3` in `ns` until `done` holds for what it lists, or [`BROWSE_FOR`]
/// has passed; returns the last listing and all that was printed, for messages.
fn peers_until(ns: &Netns, work: &Path, done: impl Fn(&[PeerLine]) -> bool) -> (Vec<PeerLine>, String) {
    let deadline = Instant::now() + BROWSE_FOR;
    let mut printed = String::new();
    loop {
        let (peers, stdout) = peers_once(ns, work, 3);
        printed.push_str(&stdout);
        if done(&peers) || Instant::now() >= deadline {
            return (peers, printed);
        }
    }
}

/// Some server is listed with `address` among its addresses.
fn listed_at(peers: &[PeerLine], address: &str) -> bool {
    peers.iter().any(|p| p.addresses.iter().any(|a| a == address))
}

// ---------------------------------------------------------------------------------------------
// 1. dars finds dars

#[test]
fn peers_lists_a_server_on_another_host() {
    let (a, b) = need!(cable(1));
    let work = tempfile::tempdir().expect("work");
    let _server = serve_ready(&a, work.path(), "a", "Quba");
    // Right after it starts a listing may hold its IPv6 link-local address only: see
    // `a_server_just_switched_on_is_listed_with_its_ipv4_address`.
    let (peers, printed) = peers_until(&b, work.path(), |p| listed_at(p, "10.199.1.1"));
    assert_eq!(peers.len(), 1, "dars peers printed: {printed}");
    let quba = &peers[0];
    assert_eq!(quba.name, "Quba", "{printed}");
    assert_eq!(quba.centre, "Quba", "{printed}");
    assert_eq!(quba.version, VERSION, "{printed}");
    assert_eq!(quba.port, PORT, "{printed}");
    assert_eq!(quba.content, "-", "samples come from no publisher: {printed}");
    assert!(quba.addresses.iter().any(|a| a == "10.199.1.1"), "{printed}");
    assert!(
        !quba.addresses.iter().any(|a| a == "10.199.1.2"),
        "the browser's own address: {printed}"
    );
}

/// A browser that asks while the server is still announcing itself (it just started).
#[test]
fn a_server_just_switched_on_is_listed_with_its_ipv4_address() {
    let (a, b) = need!(cable(10));
    let work = tempfile::tempdir().expect("work");
    let _server = serve(&a, work.path(), "a", "Quba", &format!("0.0.0.0:{PORT}"));
    let (peers, printed) = peers_until(&b, work.path(), |p| !p.is_empty());
    assert_eq!(peers.len(), 1, "{printed}");
    assert!(
        listed_at(&peers, "10.199.10.1"),
        "listed without its IPv4 address: {printed}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Third-party browsers find it too

/// Browses the given service types with python-zeroconf for up to `secs` seconds and prints
/// `TYPE\tNAME\tADDRS\tPORT\tcentre=..\tversion=..\tpath=..` for each resolved service.
const ZEROCONF_BROWSE: &str = r#"
import sys, time, threading
from zeroconf import Zeroconf, ServiceBrowser, IPVersion

secs, types = float(sys.argv[1]), sys.argv[2:]
zc = Zeroconf(ip_version=IPVersion.V4Only)
lock, lines, seen = threading.Lock(), [], set()

class Listener:
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is None:
            return
        txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        with lock:
            lines.append("\t".join([type_, name, ",".join(info.parsed_addresses()), str(info.port),
                "centre=" + txt.get("centre", ""), "version=" + txt.get("version", ""),
                "path=" + txt.get("path", "")]))
            seen.add(type_)
    def update_service(self, *args):
        pass
    def remove_service(self, *args):
        pass

browsers = [ServiceBrowser(zc, t, Listener()) for t in types]
deadline = time.time() + secs
while time.time() < deadline:
    with lock:
        if seen >= set(types):
            break
    time.sleep(0.05)
zc.close()
with lock:
    print("\n".join(lines), flush=True)
"#;

#[test]
fn python_zeroconf_finds_the_dars_and_http_services() {
    need!(have_zeroconf());
    let (a, b) = need!(cable(2));
    let work = tempfile::tempdir().expect("work");
    let _server = serve_ready(&a, work.path(), "a", "Quba");
    let out = b
        .command("python3")
        .args(["-c", ZEROCONF_BROWSE, &BROWSE_FOR.as_secs().to_string()])
        .args(["_dars._tcp.local.", "_http._tcp.local."])
        .output()
        .expect("run python3");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "zeroconf browser failed: {printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (service, path) in [("_dars._tcp.local.", "/mirror/"), ("_http._tcp.local.", "/")] {
        let line = printed
            .lines()
            .find(|l| l.starts_with(&format!("{service}\t")))
            .unwrap_or_else(|| panic!("zeroconf did not resolve {service}: {printed}"));
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[1], format!("Quba.{service}"), "{line}");
        assert_eq!(fields[2], "10.199.2.1", "{line}");
        assert_eq!(fields[3], PORT.to_string(), "{line}");
        assert_eq!(fields[4], "centre=Quba", "{line}");
        assert_eq!(fields[5], format!("version={VERSION}"), "{line}");
        assert_eq!(fields[6], format!("path={path}"), "{line}");
    }
}

/// A private system bus: its own socket, anyone may own any name (only avahi connects).
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// avahi-daemon on `lan0` only, browsing only: it publishes nothing, not even its host name.
const AVAHI_CONFIG: &str = "[server]\nhost-name=dars-mdns-test-browser\nuse-ipv4=yes\nuse-ipv6=no\n\
    allow-interfaces=lan0\nenable-dbus=yes\n[publish]\ndisable-publishing=yes\n[wide-area]\n\
    enable-wide-area=no\n";

/// Runs `avahi-browse -rtp SERVICE` in `ns` until a resolved (`=`) line satisfies `done`.
fn avahi_browse_until(ns: &Netns, bus: &str, service: &str, done: impl Fn(&str) -> bool) -> (Option<String>, String) {
    let deadline = Instant::now() + BROWSE_FOR;
    let mut printed = String::new();
    loop {
        let out = ns
            .command("timeout")
            .args(["10", "avahi-browse", "-rtp", service])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .output()
            .expect("run avahi-browse");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        printed.push_str(&stdout);
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
        if let Some(line) = stdout.lines().find(|l| l.starts_with("=;") && done(l)) {
            return (Some(line.to_owned()), printed);
        }
        if Instant::now() >= deadline {
            return (None, printed);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn avahi_finds_the_dars_and_http_services() {
    need!(have_avahi());
    let (a, b) = need!(cable(3));
    let work = tempfile::tempdir().expect("work");
    let _server = serve_ready(&a, work.path(), "a", "Quba");

    // A private system bus in a file of our own: nothing of the machine's /run/dbus is used.
    let socket = work.path().join("system_bus_socket");
    let bus_conf = work.path().join("bus.conf");
    std::fs::write(&bus_conf, bus_config(&socket)).expect("bus config");
    let mut dbus = b.command("dbus-daemon");
    dbus.arg(format!("--config-file={}", bus_conf.display()))
        .args(["--nofork", "--nopidfile"]);
    let mut dbus = Proc::spawn(dbus, work.path().join("dbus.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(dbus.running(), "dbus-daemon ended: {}", dbus.log());
        assert!(Instant::now() < deadline, "no bus socket after 10 s: {}", dbus.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let bus = format!("unix:path={}", socket.display());

    // avahi writes /run/avahi-daemon: give it a /run of its own in a private mount namespace.
    let avahi_conf = work.path().join("avahi-daemon.conf");
    std::fs::write(&avahi_conf, AVAHI_CONFIG).expect("avahi config");
    let mut avahi = b.command("unshare");
    avahi
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs tmpfs /run && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f "$1""#)
        .arg("avahi")
        .arg(&avahi_conf)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus);
    let mut avahi = Proc::spawn(avahi, work.path().join("avahi.log"));
    avahi.wait_for_log("avahi-daemon", |log| log.contains("Server startup complete"));

    // `=;IFACE;IPv4;NAME;TYPE;DOMAIN;HOST;ADDRESS;PORT;"k=v" "k=v" ...`
    let at = format!(";10.199.3.1;{PORT};");
    let version = format!("\"version={VERSION}\"");
    let (dars, printed) = avahi_browse_until(&b, &bus, "_dars._tcp", |l| l.contains(";Quba;_dars._tcp;"));
    let dars = dars.unwrap_or_else(|| panic!("avahi-browse did not resolve _dars._tcp: {printed}\n{}", avahi.log()));
    assert!(dars.starts_with("=;lan0;IPv4;Quba;_dars._tcp;local;"), "{dars}");
    assert!(dars.contains(&at), "{dars}");
    for txt in [
        "\"centre=Quba\"",
        "\"path=/mirror/\"",
        &version,
        "\"seq=\"",
        "\"keys=\"",
    ] {
        assert!(dars.contains(txt), "{txt} missing: {dars}");
    }
    let (http, printed) = avahi_browse_until(&b, &bus, "_http._tcp", |l| l.contains(";Quba;"));
    let http = http.unwrap_or_else(|| panic!("avahi-browse did not resolve _http._tcp: {printed}"));
    assert!(http.contains(&at), "{http}");
    assert!(http.contains("\"path=/\""), "{http}");
    assert!(http.contains("\"centre=Quba\""), "{http}");
}

// ---------------------------------------------------------------------------------------------
// 3. Two centres with the same name

/// Starts two servers called Quba on one switch at 10.199.`net`.11 and .12, on machines called
/// `hosts` (none: named like this one): the second once the first is seen on the network, or
/// both at once if `together`. Then `check`s the first listing of `dars peers` on the switch
/// for which `until` holds (or the last one, when time is up).
fn two_quba(
    net: u8,
    hosts: [Option<&str>; 2],
    together: bool,
    until: fn(&[PeerLine], u8) -> bool,
    check: impl FnOnce(&[PeerLine], &str, [&Proc; 2]),
) {
    let (hub, machines) = need!(switch(net, 2));
    let work = tempfile::tempdir().expect("work");
    let listen = format!("0.0.0.0:{PORT}");
    let mut first = serve_on_host(&machines[0], hosts[0], work.path(), "first", "Quba", &listen);
    if !together {
        wait_healthy(&mut first, &machines[0], PORT);
        let (peers, printed) = peers_until(&hub, work.path(), |p| !p.is_empty());
        assert_eq!(peers.len(), 1, "the first server is not seen: {printed}");
    }
    let mut second = serve_on_host(&machines[1], hosts[1], work.path(), "second", "Quba", &listen);
    wait_healthy(&mut first, &machines[0], PORT);
    wait_healthy(&mut second, &machines[1], PORT);
    let (peers, printed) = peers_until(&hub, work.path(), |p| until(p, net));
    check(&peers, &printed, [&first, &second]);
}

/// The addresses of the two servers of [`two_quba`].
fn quba_addresses(net: u8) -> [String; 2] {
    [format!("10.199.{net}.11"), format!("10.199.{net}.12")]
}

/// Two listed.
fn two_listed(peers: &[PeerLine], _net: u8) -> bool {
    peers.len() >= 2
}

/// Two listed, each at one server's IPv4 address and not at the other's: what browsers see once
/// the newcomer has finished renaming itself (see [`two_servers_switched_on_together_are_both_listed`]).
fn two_settled(peers: &[PeerLine], net: u8) -> bool {
    let servers = quba_addresses(net);
    let mut seen: Vec<&String> = peers
        .iter()
        .filter_map(|p| {
            let theirs: Vec<&String> = p.addresses.iter().filter(|a| servers.contains(a)).collect();
            (theirs.len() == 1).then(|| theirs[0])
        })
        .collect();
    seen.sort();
    seen.dedup();
    peers.len() == 2 && seen.len() == 2
}

/// Both are listed under their own names, each with its own address and no other's.
fn assert_two_quba(peers: &[PeerLine], printed: &str, net: u8) {
    let mut names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Quba", "Quba (2)"], "dars peers printed: {printed}");
    assert!(peers.iter().all(|p| p.centre == "Quba" && p.port == PORT), "{printed}");
    let servers = quba_addresses(net);
    let mut seen = Vec::new();
    for peer in peers {
        let theirs: Vec<&String> = peer.addresses.iter().filter(|a| servers.contains(a)).collect();
        assert_eq!(
            theirs.len(),
            1,
            "{} is not at one server's address: {printed}",
            peer.name
        );
        seen.push(theirs[0].clone());
    }
    seen.sort();
    assert_eq!(seen, servers, "both names lead to one server: {printed}");
}

/// Two centres that both kept the default name, on machines with their own host names; the
/// second is switched on after the first.
#[test]
fn two_servers_with_one_name_are_both_listed() {
    two_quba(
        4,
        [Some("alpha"), Some("gamma")],
        false,
        two_settled,
        |peers, printed, _| {
            assert_two_quba(peers, printed, 4);
        },
    );
}

/// The same on two machines cloned from one image: same host name, same port, same TXT.
#[test]
fn two_cloned_servers_with_one_name_are_both_listed() {
    two_quba(8, [None, None], false, two_settled, |peers, printed, _| {
        assert_two_quba(peers, printed, 8);
    });
}

/// Both switched on at once, as a lab is when the power comes back, and a browser asking at
/// once: the first listing that shows both must already be right.
#[test]
#[ignore = "known limitation of mdns-sd 0.21.7: two servers with one name switched on at the same \
            moment: while the newcomer is still probing, its answers for the old name reach browsers, so \
            a browse in the first seconds can list both names at the newcomer's address. Browsing again a \
            few seconds later is right (see two_servers_with_one_name_are_both_listed)"]
fn two_servers_switched_on_together_are_both_listed() {
    two_quba(
        9,
        [Some("alpha"), Some("gamma")],
        true,
        two_listed,
        |peers, printed, _| {
            assert_two_quba(peers, printed, 9);
        },
    );
}

/// The server that had to take "Quba (2)" says so in its log, for the technician.
#[test]
fn a_renamed_server_says_its_new_name() {
    two_quba(
        7,
        [Some("alpha"), Some("gamma")],
        false,
        two_settled,
        |peers, printed, servers| {
            assert_eq!(peers.len(), 2, "{printed}");
            // Whoever is "Quba (2)" has known it since its probe was answered: its log must say so.
            let logs = [servers[0].log(), servers[1].log()];
            assert!(
                logs.iter().any(|l| l.contains("Quba (2)")),
                "neither server logged its new name \"Quba (2)\":\n{}\n{}",
                logs[0],
                logs[1]
            );
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Sync from a peer found by name

#[test]
fn sync_from_a_peer_by_name_copies_its_lessons() {
    let (a, b) = need!(cable(5));
    let work = tempfile::tempdir().expect("work");
    let _server = serve_ready(&a, work.path(), "a", "Quba");
    // `sync --peer` browses for 3 s once; make sure the server is visible first.
    let (peers, printed) = peers_until(&b, work.path(), |p| listed_at(p, "10.199.5.1"));
    assert_eq!(peers.len(), 1, "{printed}");

    let data = work.path().join("b-store");
    let out = b
        .dars()
        .current_dir(work.path())
        .arg("--data")
        .arg(&data)
        .args(["sync", "--peer", "Quba"])
        .output()
        .expect("run dars sync");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dars sync --peer Quba failed: {said}");
    assert!(said.contains("synced: "), "{said}");

    // What the server lists, asked over the LAN from B.
    let (status, body) = http_get(&b, "10.199.5.1", PORT, "/api/v1/lessons").expect("lessons from the server");
    assert_eq!(status, 200, "{body}");
    let listing: serde_json::Value = serde_json::from_str(&body).expect("lessons JSON");
    let mut served: Vec<String> = listing["lessons"]
        .as_array()
        .expect("lessons array")
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect();
    served.sort();
    assert_eq!(Some(served.len() as u64), listing["count"].as_u64(), "{body}");
    assert!(!served.is_empty(), "the server holds the sample lessons: {body}");

    let mut synced: Vec<String> = Library::open(&data)
        .expect("open synced store")
        .lessons(&LessonFilter::default())
        .expect("list synced lessons")
        .into_iter()
        .map(|l| l.meta.id)
        .collect();
    synced.sort();
    assert_eq!(synced, served);

    let status = b
        .dars()
        .arg("--data")
        .arg(&data)
        .args(["status", "--json"])
        .output()
        .expect("dars status");
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["lessons"].as_u64(), Some(served.len() as u64), "{status}");
}

// ---------------------------------------------------------------------------------------------
// 5. No multicast: a warning, never fatal

/// Waits (up to 5 s) for a warning about mDNS in the server's log.
fn mdns_warning(server: &mut Proc) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| l.contains("WARN") && l.contains("mDNS")) {
            return Some(line.to_owned());
        }
        if Instant::now() >= deadline || !server.running() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A host with no network at all (even `lo` down): mdns-sd has no interface to send on.
/// The server warns, stays up, and answers once `lo` comes up.
#[test]
fn serve_keeps_serving_when_it_cannot_announce() {
    let ns = need!(Netns::new("solo", false));
    let work = tempfile::tempdir().expect("work");
    let mut server = serve(&ns, work.path(), "solo", "Quba", &format!("0.0.0.0:{PORT}"));
    server.wait_for_log("dars serve", |log| log.contains("serving lessons"));
    let warning = mdns_warning(&mut server);
    assert!(
        warning.is_some(),
        "no mDNS warning without any network: {}",
        server.log()
    );
    // It must still run a while after that.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert!(
            server.running(),
            "dars serve stopped without a network: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("announced on the local network"), "{log}");

    need!(ns.ip(&["link", "set", "lo", "up"]));
    wait_healthy(&mut server, &ns, PORT);
    let (status, body) = http_get(&ns, "127.0.0.1", PORT, "/healthz").expect("healthz");
    assert_eq!(status, 200);
    assert!(body.contains("\"ok\""), "{body}");
    assert!(server.running(), "{}", server.log());
}

/// Holds UDP port 5353 (IPv4 and IPv6) without SO_REUSEPORT, as a foreign mDNS stack may, so
/// mdns-sd cannot bind it; prints `ready` and waits until killed.
const HOLD_MDNS_PORT: &str = r#"
import socket, sys, time
v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v4.bind(("0.0.0.0", 5353))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
v6.bind(("::", 5353))
print("ready", flush=True)
while True:
    time.sleep(60)
"#;

/// Port 5353 held by another program that does not share it: a warning, and serving goes on.
#[test]
fn serve_warns_when_the_mdns_port_is_taken() {
    if let Err(e) = Command::new("python3").arg("--version").output() {
        unavailable(&format!("python3 is missing ({e})"));
        return;
    }
    let ns = need!(Netns::new("held", true));
    let work = tempfile::tempdir().expect("work");
    let mut holder = ns.command("python3");
    holder.args(["-c", HOLD_MDNS_PORT]);
    let mut holder = Proc::spawn(holder, work.path().join("holder.log"));
    holder.wait_for_log("the port 5353 holder", |log| log.contains("ready"));

    let mut server = serve(&ns, work.path(), "held", "Quba", &format!("0.0.0.0:{PORT}"));
    wait_healthy(&mut server, &ns, PORT);
    let warning = mdns_warning(&mut server);
    assert!(
        warning.is_some(),
        "no mDNS warning although port 5353 is taken: {}",
        server.log()
    );
    assert!(server.running(), "{}", server.log());
    let log = server.log();
    assert!(
        !log.contains("announced on the local network"),
        "claims to be announced although it cannot send: {log}"
    );
    let (status, _) = http_get(&ns, "127.0.0.1", PORT, "/healthz").expect("healthz");
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------------------------
// Only reachable addresses are announced

/// A server listening on 127.0.0.1 only must not send LAN peers to an address where nothing
/// answers.
#[test]
fn a_loopback_only_server_is_not_announced_on_the_lan() {
    let (a, b) = need!(cable(6));
    let work = tempfile::tempdir().expect("work");
    let mut server = serve(&a, work.path(), "a", "Quba", &format!("127.0.0.1:{PORT}"));
    wait_healthy(&mut server, &a, PORT);
    // It announces as soon as it listens, so one browse is enough to see what it says.
    let (peers, printed) = peers_once(&b, work.path(), 4);
    let elsewhere = |p: &PeerLine| p.addresses.iter().any(|a| !a.starts_with("127.") && a != "::1");
    assert!(
        !peers.iter().any(elsewhere),
        "announced at addresses it does not listen on: {printed}"
    );
}
