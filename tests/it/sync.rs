//! `dars sync` end to end: a published package served by a real nginx, another dars's
//! `/mirror/` (also named by its package.json), a sync killed half-way and resumed with Range
//! requests (or again whole from a mirror without Range), two syncs into one store at once,
//! refusals that leave the store as it was (tampered blob or manifest, unknown key, downgrade,
//! 404, 500, a mirror that never answers or trickles), the `--max-rate` cap, and HTTP proxies
//! taken from the environment.
//!
//! nginx (Debian `nginx-light`) runs as a child process with its own config in a temp folder;
//! without it those tests are skipped, unless `DARS_REQUIRE_TOOLS=1` (CI) makes that a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dars::keys::{PublicKey, SecretKey};
use dars::package::{Signed, blob_path, lesson_part_path};
use dars::service::package::{ImportPackageOptions, PublishOptions, PublishReport};
use dars::service::sync::{SyncOptions, SyncReport};
use dars::service::{Library, Progress, ServiceError};
use dars::store::{Hash, LessonFilter, Origin};
use tempfile::TempDir;

use crate::common::{TestServer, client, pseudo_random_bytes, pseudo_random_text, write_lesson};

// ---------------------------------------------------------------------------------------------
// Lessons and packages

/// A lesson's files: path -> bytes.
type Files = BTreeMap<String, Vec<u8>>;
/// Lessons by id.
type Lessons = BTreeMap<String, Files>;

fn files(list: &[(&str, Vec<u8>)]) -> Files {
    list.iter().map(|(p, b)| ((*p).to_owned(), b.clone())).collect()
}

/// Writes every lesson as a folder under `root`.
fn write_lessons(root: &Path, lessons: &Lessons) {
    for (id, files) in lessons {
        let list: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
        write_lesson(root, id, &list);
    }
}

/// A page of HTML-ish text: `len` bytes, different for every `seed`.
fn page(len: usize, seed: u64) -> Vec<u8> {
    let mut out = b"<!doctype html><meta charset=utf-8><title>page</title>\n".to_vec();
    out.extend(pseudo_random_text(len, seed));
    out
}

/// `SecretKey` is not `Clone`; its file text is.
fn copy_key(key: &SecretKey) -> SecretKey {
    SecretKey::parse_file(&key.to_file_text()).expect("key round trip")
}

/// Publishes the lesson folders in `src` into `out`, signed by `key`.
fn publish(src: &Path, out: &Path, key: &SecretKey, seq: u64, part_size: Option<u64>) -> PublishReport {
    let scan = dars::service::scan_folder(src).expect("scan lessons");
    let mut opts = PublishOptions::new(copy_key(key));
    opts.seq = Some(seq);
    if let Some(size) = part_size {
        opts.part_size = size;
    }
    dars::service::package::publish(scan, out, &opts, &Progress::new()).expect("publish")
}

/// Writes `lessons` into a fresh source folder and publishes them into `out`.
fn publish_lessons(work: &Path, out: &Path, lessons: &Lessons, key: &SecretKey, seq: u64) -> PublishReport {
    let src = work.join(format!(
        "src-{}",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    write_lessons(&src, lessons);
    publish(&src, out, key, seq, None)
}

/// Every file of a package folder that a sync fetches: relative path -> size. A manifest
/// with a compressed copy beside it is fetched as that copy.
fn package_files(root: &Path) -> BTreeMap<String, u64> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.expect("walk package"))
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let mut compressed = e.path().as_os_str().to_owned();
            compressed.push(".zst");
            !(e.path().extension().is_some_and(|x| x == "json") && Path::new(&compressed).exists())
        })
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("inside")
                .to_string_lossy()
                .replace('\\', "/");
            (rel, e.metadata().expect("metadata").len())
        })
        .collect()
}

/// The package-relative path of the blob file holding `content` (unsplit).
fn blob_of(content: &[u8]) -> String {
    blob_path(Hash::of(content), None)
}

/// Flips one byte in the middle of a file.
fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read file to tamper");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(path, bytes).expect("write tampered file");
}

fn sync_opts(trusted: &[PublicKey]) -> SyncOptions {
    SyncOptions {
        package: ImportPackageOptions {
            trusted: trusted.to_vec(),
            allow_downgrade: false,
        },
        ..SyncOptions::default()
    }
}

/// `Library::sync` drives its own tokio runtime, so it must not run on a runtime's thread.
fn sync_on_own_thread(data: &Path, url: &str, opts: &SyncOptions) -> Result<SyncReport, ServiceError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            Library::open(data)
                .expect("open store")
                .sync(url, opts, &Progress::new())
        })
        .join()
        .expect("sync thread")
    })
}

/// Checks that the store in `lib` holds every file of `lessons` byte for byte.
fn assert_store_holds(lib: &Library, lessons: &Lessons) {
    for (id, files) in lessons {
        let stored = lib
            .lesson(id)
            .unwrap_or_else(|e| panic!("lesson {id} is not in the store: {e}"));
        // lesson.toml may or may not be kept as a file; everything else must be there.
        let paths: BTreeSet<&str> = stored
            .file_list
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| *p != "lesson.toml")
            .collect();
        let expected: BTreeSet<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(paths, expected, "files of lesson {id}");
        for (path, bytes) in files {
            let hit = lib.find_file(id, path).unwrap_or_else(|e| panic!("{id}/{path}: {e}"));
            let got = lib
                .read_raw(&hit.blob)
                .unwrap_or_else(|e| panic!("read {id}/{path}: {e}"));
            assert!(
                got == *bytes,
                "{id}/{path}: stored bytes differ ({} vs {} bytes)",
                got.len(),
                bytes.len()
            );
        }
    }
}

/// What a refused sync must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// (id, origin, seq, title)
    lessons: Vec<(String, String, i64, String)>,
    /// (lesson, path, hash)
    files: Vec<(String, String, String)>,
    complete_blobs: u64,
    publishers: Vec<(String, String, u64)>,
}

fn snapshot(data: &Path) -> Snapshot {
    let lib = Library::open(data).expect("open store");
    let rows = lib.lessons(&LessonFilter::default()).expect("lessons");
    let mut files = Vec::new();
    for row in &rows {
        for f in lib.lesson(&row.meta.id).expect("lesson").file_list {
            files.push((row.meta.id.clone(), f.path, f.hash.to_hex()));
        }
    }
    Snapshot {
        lessons: rows
            .iter()
            .map(|r| (r.meta.id.clone(), r.origin.as_db(), r.seq, r.meta.title.clone()))
            .collect(),
        files,
        complete_blobs: lib.status().expect("status").blobs,
        publishers: lib.publishers().expect("publishers"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tools, processes, nginx

/// Whether a test that needs a system tool must fail instead of skipping.
fn tools_required() -> bool {
    std::env::var("DARS_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Finds `tool` on the PATH or in the sbin folders; `None` (after saying why) means skip.
fn find_tool(tool: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    if found.is_none() {
        let why = format!("{tool} is not installed (apt-get install -y {package})");
        assert!(!tools_required(), "{why}; DARS_REQUIRE_TOOLS=1, so this test must run");
        eprintln!("SKIPPED: {why}; set DARS_REQUIRE_TOOLS=1 to make this a failure");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Proxy settings that would send the binary's requests elsewhere.
const PROXY_VARS: [&str; 5] = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"];

/// The binary on store `data`, with no `DARS_*` or proxy settings inherited from whoever runs
/// the tests.
fn dars(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dars"));
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy().to_ascii_uppercase();
        if name.starts_with("DARS_") || PROXY_VARS.contains(&name.as_str()) {
            cmd.env_remove(&key);
        }
    }
    cmd.env("DARS_DATA", data).env("NO_COLOR", "1").stdin(Stdio::null());
    cmd
}

fn trusted_env(keys: &[PublicKey]) -> String {
    serde_json::to_string(&keys.iter().map(|k| k.to_text()).collect::<Vec<_>>()).expect("json")
}

/// A spawned binary whose output goes to anonymous temp files (no pipe can fill up).
struct Running {
    child: Child,
    stdout: std::fs::File,
    stderr: std::fs::File,
    started: Instant,
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn spawn(cmd: &mut Command) -> Running {
    let stdout = tempfile::tempfile().expect("temp file");
    let stderr = tempfile::tempfile().expect("temp file");
    let started = Instant::now();
    let child = cmd
        .stdout(stdout.try_clone().expect("clone"))
        .stderr(stderr.try_clone().expect("clone"))
        .spawn()
        .expect("spawn dars");
    Running {
        child,
        stdout,
        stderr,
        started,
    }
}

fn read_back(file: &mut std::fs::File) -> String {
    let mut text = String::new();
    file.rewind().expect("rewind");
    file.read_to_string(&mut text).expect("read output");
    text
}

impl Running {
    /// Waits for the process (at most `limit` from now, then kills it and panics).
    fn finish(mut self, limit: Duration) -> Finished {
        let waiting = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if waiting.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "dars did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    read_back(&mut self.stdout),
                    read_back(&mut self.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Finished {
            status,
            elapsed: self.started.elapsed(),
            stdout: read_back(&mut self.stdout),
            stderr: read_back(&mut self.stderr),
        }
    }
}

impl Finished {
    fn assert_ok(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// A blob a sync has started but not finished, as another reader of the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    hash: String,
    committed: u64,
    size: u64,
}

/// What a running sync has committed so far: raw bytes in the store, and the incomplete blob
/// with the most of its chunks committed. `None` while the store is not there yet.
fn committed_progress(db: &Path) -> Option<(u64, Option<Partial>)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.busy_timeout(Duration::from_secs(2)).ok()?;
    let total: u64 = conn
        .query_row(
            "SELECT coalesce(sum(length(data)), 0) FROM chunks WHERE (id >> 22) & 3 = 0",
            [],
            |r| r.get(0),
        )
        .ok()?;
    let partial = conn
        .query_row(
            "SELECT lower(hex(b.hash)), b.size,
                    (SELECT coalesce(sum(length(c.data)), 0) FROM chunks c
                     WHERE c.id BETWEEN b.id << 24 AND (b.id << 24) + 4194303) AS got
             FROM blobs b WHERE b.complete = 0 ORDER BY got DESC LIMIT 1",
            [],
            |r| {
                Ok(Partial {
                    hash: r.get(0)?,
                    size: r.get(1)?,
                    committed: r.get(2)?,
                })
            },
        )
        .ok();
    Some((total, partial))
}

/// One line of nginx's access log.
#[derive(Debug, Clone)]
struct Hit {
    status: u16,
    bytes_sent: u64,
    body_bytes: u64,
    request: String,
    range: Option<String>,
}

impl Hit {
    fn path(&self) -> &str {
        self.request.split(' ').nth(1).unwrap_or("")
    }
}

/// nginx as a child process, serving `root` on a free port of 127.0.0.1.
struct Nginx {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx on `root`; `location` is extra directives for `location /` (such as
    /// `limit_rate 4m;`). `None` means nginx is not installed and the test is skipped.
    fn start(root: &Path, location: &str) -> Option<Nginx> {
        let binary = find_tool("nginx", "nginx-light")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        for _ in 0..5 {
            let port = free_port();
            let conf = format!(
                "master_process off;\n\
                 pid {d}/nginx.pid;\n\
                 error_log {d}/error.log warn;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                   default_type application/octet-stream;\n\
                   log_format sync '$status $bytes_sent $body_bytes_sent \"$request\" \"$http_range\"';\n\
                   access_log {d}/access.log sync;\n\
                   client_body_temp_path {d}/body;\n\
                   proxy_temp_path {d}/proxy;\n\
                   fastcgi_temp_path {d}/fastcgi;\n\
                   uwsgi_temp_path {d}/uwsgi;\n\
                   scgi_temp_path {d}/scgi;\n\
                   server {{\n\
                     listen 127.0.0.1:{port};\n\
                     root {root};\n\
                     location / {{ {location} }}\n\
                   }}\n\
                 }}\n",
                root = root.display()
            );
            let conf_path = dir.path().join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("write nginx.conf");
            let stderr = std::fs::File::create(dir.path().join("stderr.txt")).expect("stderr file");
            let mut child = Command::new(&binary)
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn nginx");
            let deadline = Instant::now() + Duration::from_secs(10);
            let ready = loop {
                if let Some(status) = child.try_wait().expect("try_wait nginx") {
                    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
                        + &std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
                    if log.contains("Address already in use") {
                        break false;
                    }
                    panic!("nginx exited with {status}:\n{log}");
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("nginx did not listen on port {port} within 10 s");
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            if ready {
                return Some(Nginx { child, port, dir });
            }
        }
        panic!("nginx found no free port in 5 tries");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The access log so far.
    fn hits(&self) -> Vec<Hit> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .map(|line| {
                let parts: Vec<&str> = line.split('"').collect();
                assert!(parts.len() >= 4, "unexpected access log line: {line}");
                let mut numbers = parts[0].split_whitespace().map(|n| n.parse::<u64>().expect("number"));
                let mut next = || numbers.next().expect("log field");
                Hit {
                    status: u16::try_from(next()).expect("status"),
                    bytes_sent: next(),
                    body_bytes: next(),
                    request: parts[1].to_owned(),
                    range: Some(parts[3].to_owned()).filter(|r| r != "-" && !r.is_empty()),
                }
            })
            .collect()
    }

    /// Polls the access log until `done` holds (nginx writes a line when a request ends,
    /// which can be a moment after the client has the last byte).
    fn hits_when(&self, what: &str, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "nginx's access log never showed {what}:\n{hits:#?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Tiny HTTP servers for the failure cases and the proxy

/// How a [`TinyServer`] treats each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answers 500 to everything.
    Fails,
    /// Reads the request and never answers.
    Silent,
    /// Sends the headers and a tenth of a 1000-byte body, then nothing.
    Stalls,
    /// Sends a status line, then one byte of a header every 200 ms, never finishing the head.
    Trickles,
    /// A forward proxy for `http://127.0.0.1:*` (one request per connection).
    Proxy,
}

/// A `std::net` server on a thread: records every request line; stops on drop.
struct TinyServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Reads a request head (up to the blank line).
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Forwards one proxied request to its origin on 127.0.0.1 and relays the answer.
fn forward(client: &mut TcpStream, head: &str) {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let bad_gateway = |client: &mut TcpStream| {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    // Only loopback origins: this proxy never sends anything off the machine.
    let Some(rest) = target.strip_prefix("http://127.0.0.1:") else {
        return bad_gateway(client);
    };
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut origin) = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap_or(0))) else {
        return bad_gateway(client);
    };
    let mut out = format!("{method} {} {version}\r\n", if path.is_empty() { "/" } else { path });
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        if name != "connection" && name != "proxy-connection" && name != "keep-alive" {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    if origin.write_all(out.as_bytes()).is_err() {
        return bad_gateway(client);
    }
    let _ = std::io::copy(&mut origin, client);
}

impl TinyServer {
    fn start(behaviour: Behaviour) -> TinyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                // Connections left open on purpose (silent, stalled) until the server stops.
                let mut held = Vec::new();
                let mut workers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(_) => break,
                    };
                    let requests = Arc::clone(&requests);
                    let stopping = Arc::clone(&stop);
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let work = move |mut stream: TcpStream| {
                        let head = read_head(&mut stream)?;
                        requests
                            .lock()
                            .expect("requests lock")
                            .push(head.lines().next().unwrap_or("").to_owned());
                        match behaviour {
                            Behaviour::Fails => {
                                let _ = stream.write_all(
                                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops\n",
                                );
                                None
                            }
                            Behaviour::Silent => Some(stream),
                            Behaviour::Stalls => {
                                let _ = stream.write_all(
                                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"format\":",
                                );
                                let _ = stream.flush();
                                Some(stream)
                            }
                            Behaviour::Trickles => {
                                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ");
                                let deadline = Instant::now() + Duration::from_secs(60);
                                while !stopping.load(Ordering::SeqCst) && Instant::now() < deadline {
                                    if stream.write_all(b"a").and_then(|()| stream.flush()).is_err() {
                                        break;
                                    }
                                    std::thread::sleep(Duration::from_millis(200));
                                }
                                None
                            }
                            Behaviour::Proxy => {
                                forward(&mut stream, &head);
                                None
                            }
                        }
                    };
                    if matches!(behaviour, Behaviour::Proxy | Behaviour::Trickles) {
                        workers.push(std::thread::spawn(move || {
                            work(stream);
                        }));
                    } else if let Some(stream) = work(stream) {
                        held.push(stream);
                    }
                }
                drop(held);
                for worker in workers {
                    let _ = worker.join();
                }
            })
        };
        TinyServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A published package on a real nginx

/// Lessons that exercise every path of a sync: text with a trained dictionary, a large media
/// file split into parts and streamed, a mid-size media file fetched whole, an empty file, a
/// file shared by two lessons, a non-ASCII path.
fn varied_lessons() -> Lessons {
    // Pages that share a boilerplate block, so a dictionary trained on them pays.
    let boilerplate = pseudo_random_text(10_000, 999);
    let mut water = Files::new();
    let mut fractions = Files::new();
    for n in 0..80u64 {
        let mut html = boilerplate.clone();
        html.extend(pseudo_random_text(3000, 1000 + n));
        let target = if n % 2 == 0 { &mut water } else { &mut fractions };
        target.insert(format!("pages/p{n:02}.html"), html);
    }
    let shared = pseudo_random_bytes(200_000, 5);
    water.insert("index.html".to_owned(), page(3000, 1));
    water.insert("video/cycle.mp4".to_owned(), pseudo_random_bytes(7_000_000, 2));
    water.insert("img/şəkil.jpg".to_owned(), shared.clone());
    water.insert("empty.txt".to_owned(), Vec::new());
    fractions.insert("index.html".to_owned(), page(3000, 3));
    fractions.insert("book.txt".to_owned(), pseudo_random_text(600_000, 4));
    fractions.insert("img/pie.jpg".to_owned(), shared);
    fractions.insert("audio/intro.mp3".to_owned(), pseudo_random_bytes(900_000, 6));
    let mut lessons = Lessons::new();
    lessons.insert("water-cycle".to_owned(), water);
    lessons.insert("fractions".to_owned(), fractions);
    lessons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_from_nginx_serves_every_file_byte_identical() {
    let work = tempfile::tempdir().expect("tempdir");
    let (src, pkg) = (work.path().join("src"), work.path().join("pkg"));
    let lessons = varied_lessons();
    write_lessons(&src, &lessons);
    let key = SecretKey::generate().expect("key");
    // Parts of 3 MB: the 7 MB video travels as three part files.
    let published = publish(&src, &pkg, &key, 7, Some(3_000_000));
    assert!(
        published.dictionary.is_some_and(|(_, _, used)| used),
        "the pages share enough for a dictionary to pay, so the sync fetches one: {:?}",
        published.dictionary
    );
    let Some(nginx) = Nginx::start(&pkg, "") else { return };

    let url = nginx.url("/");
    let opts = sync_opts(&[key.public()]);
    let mut outcome = None;
    let server = TestServer::start(|data| outcome = Some(sync_on_own_thread(data, &url, &opts))).await;
    let report = outcome.expect("sync ran").expect("sync from nginx");

    let ids: Vec<&str> = lessons.keys().map(String::as_str).collect();
    let mut added: Vec<&str> = report.package.added.iter().map(String::as_str).collect();
    added.sort_unstable();
    assert_eq!(added, ids, "every lesson is new");
    assert_eq!(report.resumed, 0);

    // nginx saw each file of the package requested once, whole, and nothing else.
    let on_disk = package_files(&pkg);
    let hits = nginx.hits_when("every file of the package", |hits| hits.len() >= on_disk.len());
    let mut requested: Vec<String> = hits
        .iter()
        .map(|h| h.path().trim_start_matches('/').to_owned())
        .collect();
    requested.sort();
    let expected: Vec<String> = on_disk.keys().cloned().collect();
    assert_eq!(requested, expected, "each package file fetched exactly once");
    assert!(hits.iter().all(|h| h.status == 200 && h.range.is_none()), "{hits:#?}");
    assert!(
        on_disk.keys().any(|p| p.ends_with(".3")),
        "the video was split into parts: {on_disk:?}"
    );
    let body_bytes: u64 = hits.iter().map(|h| h.body_bytes).sum();
    assert_eq!(body_bytes, on_disk.values().sum::<u64>(), "nginx sent the package once");
    assert_eq!(report.bytes_downloaded, body_bytes, "the report counts what nginx sent");

    // The lessons are the publisher's, at the published sequence.
    let lib = Library::open(server.data.path()).expect("open");
    for row in lib.lessons(&LessonFilter::default()).expect("lessons") {
        assert_eq!(
            row.origin,
            Origin::Publisher(key.public().fingerprint()),
            "{}",
            row.meta.id
        );
        assert_eq!(row.seq, 7);
        assert_eq!(row.meta.title, format!("Lesson {}", row.meta.id));
    }
    assert_store_holds(&lib, &lessons);

    // And the server serves every file as it was written.
    let http = client();
    for (id, files) in &lessons {
        for (path, bytes) in files {
            let resp = http
                .get(server.url(&format!("/lessons/{id}/{path}")))
                .send()
                .await
                .expect("GET lesson file");
            assert_eq!(resp.status(), 200, "{id}/{path}");
            let body = resp.bytes().await.expect("body");
            assert!(body == bytes[..], "{id}/{path}: served bytes differ");
        }
    }
    let report = lib.verify(&Progress::new()).expect("verify");
    assert!(report.is_clean(), "{report:?}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Another dars's /mirror/

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_from_a_peer_mirror_keeps_lessons_and_origins() {
    let work = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::generate().expect("key");
    let mut packaged = Lessons::new();
    packaged.insert(
        "geo-rivers".to_owned(),
        files(&[
            ("index.html", page(5000, 11)),
            ("map.png", pseudo_random_bytes(1_500_000, 12)),
        ]),
    );
    // Pages sharing a block, so the publisher's package uses a zstd dictionary that the peer
    // must pass on.
    let mut maps = files(&[
        ("index.html", page(4000, 13)),
        ("style.css", b"body { margin: 0 }\n".repeat(200)),
        ("atlas.txt", pseudo_random_text(400_000, 17)),
    ]);
    let boilerplate = pseudo_random_text(10_000, 18);
    for n in 0..60u64 {
        let mut html = boilerplate.clone();
        html.extend(pseudo_random_text(3000, 500 + n));
        maps.insert(format!("maps/m{n:02}.html"), html);
    }
    let shared_page = maps["maps/m00.html"].clone();
    packaged.insert("geo-maps".to_owned(), maps);
    let pkg = work.path().join("pkg");
    let published = publish_lessons(work.path(), &pkg, &packaged, &key, 42);
    assert!(
        published.dictionary.is_some_and(|(_, _, used)| used),
        "the package uses a dictionary: {:?}",
        published.dictionary
    );
    let mut local = Lessons::new();
    local.insert(
        "teacher-quiz".to_owned(),
        files(&[
            ("index.html", page(6000, 14)),
            ("quiz.js", pseudo_random_text(30_000, 15)),
            ("photo.jpg", pseudo_random_bytes(1_200_000, 16)),
            // The same content as a publisher's page, kept compressed with its dictionary.
            ("copied.html", shared_page),
        ]),
    );
    let local_src = work.path().join("local");
    write_lessons(&local_src, &local);

    let trusted = [key.public()];
    let source = TestServer::start(|data| {
        let lib = Library::open(data).expect("open source");
        let opts = ImportPackageOptions {
            trusted: trusted.to_vec(),
            allow_downgrade: false,
        };
        lib.import_package(&pkg, &opts, &Progress::new())
            .expect("import package");
        crate::common::import(data, &local_src);
    })
    .await;

    let target = tempfile::tempdir().expect("tempdir");
    let url = source.url("/mirror/");
    let opts = sync_opts(&trusted);
    let (data, url2, opts2) = (target.path().to_path_buf(), url.clone(), opts.clone());
    let report = tokio::task::spawn_blocking(move || sync_on_own_thread(&data, &url2, &opts2))
        .await
        .expect("join")
        .expect("sync from the mirror");
    let mut added = report.package.added.clone();
    added.sort();
    assert_eq!(added, ["geo-maps", "geo-rivers", "teacher-quiz"]);

    let src_lib = Library::open(source.data.path()).expect("open source");
    let dst_lib = Library::open(target.path()).expect("open target");
    let fingerprint = key.public().fingerprint();
    let src_rows = src_lib.lessons(&LessonFilter::default()).expect("lessons");
    let dst_rows = dst_lib.lessons(&LessonFilter::default()).expect("lessons");
    assert_eq!(src_rows.len(), 3);
    assert_eq!(dst_rows.len(), src_rows.len());
    for (src_row, dst_row) in src_rows.iter().zip(&dst_rows) {
        let id = &src_row.meta.id;
        let expected_origin = if packaged.contains_key(id) {
            Origin::Publisher(fingerprint.clone())
        } else {
            Origin::Local
        };
        assert_eq!(src_row.origin, expected_origin, "{id} on the source");
        assert_eq!(dst_row.origin, expected_origin, "{id} after the sync");
        assert_eq!(dst_row.meta, src_row.meta, "{id}");
        assert_eq!(dst_row.seq, src_row.seq, "{id}");
        if packaged.contains_key(id) {
            assert_eq!(dst_row.seq, 42, "{id} keeps the publisher's sequence");
        }
        let (src_files, dst_files) = (
            src_lib.lesson(id).expect("lesson").file_list,
            dst_lib.lesson(id).expect("lesson").file_list,
        );
        assert_eq!(dst_files, src_files, "{id}: file list");
    }
    assert_eq!(dst_lib.publishers().expect("p"), src_lib.publishers().expect("p"));
    assert_store_holds(&dst_lib, &packaged);
    assert_store_holds(&dst_lib, &local);

    // The mirror serves each lesson part exactly as published, cacheable for good (its name
    // is its hash).
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("package.json")).expect("index")).expect("index json");
    let root = std::fs::read(pkg.join(index["manifests"][0]["manifest"].as_str().expect("manifest"))).expect("root");
    let Ok(Signed::Root(root)) = Signed::parse(&root) else {
        panic!("publish writes a root");
    };
    let rel = lesson_part_path(root.lessons[0].part().expect("part hash"));
    let response = client()
        .get(source.url(&format!("/mirror/{rel}")))
        .send()
        .await
        .expect("part");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .expect("cc")
            .contains("immutable")
    );
    let body = response.bytes().await.expect("body");
    assert!(
        body == std::fs::read(pkg.join(&rel)).expect("published part"),
        "{rel} differs"
    );

    // Syncing again fetches only the documents: every content is already here.
    let data = target.path().to_path_buf();
    let again = tokio::task::spawn_blocking(move || sync_on_own_thread(&data, &url, &opts))
        .await
        .expect("join")
        .expect("second sync");
    assert_eq!(again.package.unchanged.len(), 3, "{again:?}");
    assert_eq!(again.package.blobs_written, 0, "{again:?}");
    assert!(again.bytes_downloaded < 100_000, "{again:?}");
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_naming_package_json_itself_works() {
    let source = TestServer::start(|data| {
        let src = data.join("lessons");
        write_lesson(&src, "hello", &[("index.html", b"<p>salam</p>")]);
        crate::common::import(data, &src);
    })
    .await;
    let target = tempfile::tempdir().expect("tempdir");
    let (data, url) = (target.path().to_path_buf(), source.url("/mirror/package.json"));
    let outcome = tokio::task::spawn_blocking(move || sync_on_own_thread(&data, &url, &sync_opts(&[])))
        .await
        .expect("join");
    source.stop().await;
    let report = outcome.expect("sync from .../mirror/package.json");
    assert_eq!(report.package.added, ["hello"]);
}

// ---------------------------------------------------------------------------------------------
// 3. Killed half-way, resumed with Range

/// Where the first run of [`kill_and_resume`] is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// Once half the films are stored whole.
    AfterHalfTheFilms,
    /// Once half the media is stored and a film is in the middle of its download.
    MidFilm,
    /// The same, from a mirror that ignores Range (nginx `max_ranges 0`, like simple static
    /// servers): the second run must fetch that film again whole, and finish.
    MidFilmNoRanges,
}

/// Six 8 MB films from nginx at 4 MiB/s per request (about 12 s in all); `dars sync` is
/// SIGKILLed at `point`, then run again to the end.
fn kill_and_resume(point: KillPoint) {
    const FILES: u64 = 6;
    const SIZE: usize = 8_000_000;
    let work = tempfile::tempdir().expect("tempdir");
    let mut lessons = Lessons::new();
    for n in 0..FILES {
        lessons.insert(
            format!("film-{n}"),
            files(&[
                ("index.html", page(2000, 300 + n)),
                ("film.mp4", pseudo_random_bytes(SIZE, 400 + n)),
            ]),
        );
    }
    let src = work.path().join("src");
    write_lessons(&src, &lessons);
    // The real flow: keygen and publish by the binary.
    let key_file = work.path().join("publisher.key");
    let keygen = spawn(
        dars(&work.path().join("unused"))
            .arg("keygen")
            .arg("--out")
            .arg(&key_file),
    )
    .finish(Duration::from_secs(60));
    keygen.assert_ok("dars keygen");
    let public = PublicKey::parse(keygen.stdout.lines().next().unwrap_or("")).expect("keygen prints the key");
    let pkg = work.path().join("pkg");
    spawn(
        dars(&work.path().join("unused"))
            .arg("publish")
            .arg(&src)
            .arg("--key")
            .arg(&key_file)
            .arg("--out")
            .arg(&pkg)
            .args(["--seq", "3"]),
    )
    .finish(Duration::from_secs(120))
    .assert_ok("dars publish");
    let package_size: u64 = package_files(&pkg).values().sum();
    let media_total = FILES * SIZE as u64;
    let chunk = dars::store::CHUNK_SIZE as u64;

    let location = match point {
        KillPoint::MidFilmNoRanges => "limit_rate 4m; max_ranges 0;",
        _ => "limit_rate 4m;",
    };
    let Some(nginx) = Nginx::start(&pkg, location) else {
        return;
    };
    let data = work.path().join("store");
    let sync = |data: &Path| {
        let mut cmd = dars(data);
        cmd.env("DARS_TRUSTED_KEYS", trusted_env(&[public]))
            .arg("sync")
            .arg(nginx.url("/"));
        spawn(&mut cmd)
    };

    // Watch the store from outside, as any reader sees it, and kill at `point`.
    let mut first = sync(&data);
    let db = data.join("dars.sqlite");
    let mut most_seen: Option<Partial> = None;
    let cut = loop {
        if let Some(status) = first.child.try_wait().expect("try_wait") {
            panic!(
                "the first sync ended ({status}) before it could be killed at {point:?}; the most of an unfinished \
                 film the store ever showed was {most_seen:?}. If that is never a film half-way, the chunks of a \
                 download in progress are not committed: a kill loses the whole film and nothing can resume it"
            );
        }
        if let Some((total, partial)) = committed_progress(&db) {
            let partial = partial.filter(|p| p.committed > 0);
            if let Some(p) = &partial
                && most_seen.as_ref().is_none_or(|m| p.committed > m.committed)
            {
                most_seen = Some(p.clone());
            }
            let whole = total - partial.as_ref().map_or(0, |p| p.committed);
            match point {
                KillPoint::AfterHalfTheFilms if whole >= media_total / 2 => break partial,
                // At least one chunk in, and at least two still to come: the transfer is going
                // on (a film missing only its last chunk is merely being finished).
                KillPoint::MidFilm | KillPoint::MidFilmNoRanges
                    if total >= media_total * 4 / 10
                        && partial
                            .as_ref()
                            .is_some_and(|p| p.committed >= chunk && p.committed + 2 * chunk <= p.size) =>
                {
                    break partial;
                }
                _ => {}
            }
        }
        assert!(
            first.started.elapsed() < Duration::from_secs(60),
            "the first sync stalled"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    first.child.kill().expect("SIGKILL");
    let killed = first.finish(Duration::from_secs(10));
    assert!(!killed.status.success());
    let full = |h: &Hit| h.path().contains("/blobs/") && h.body_bytes >= SIZE as u64;
    // nginx logs a cut-off request once it notices; wait for it before the second run.
    let cut_path = cut
        .as_ref()
        .map(|p| format!("/{}", blob_path(Hash::from_hex(&p.hash).expect("hash"), None)));
    let before = nginx.hits_when("the killed request", |hits| {
        cut_path.as_ref().is_none_or(|cut| hits.iter().any(|h| h.path() == cut))
    });
    let first_run_films = before.iter().filter(|h| full(h)).count();
    assert!(first_run_films >= 3 - usize::from(cut.is_some()), "{before:#?}");
    assert_eq!(
        Library::open(&data).expect("open").count_lessons().expect("count"),
        0,
        "nothing is visible after the kill"
    );

    let second = sync(&data).finish(Duration::from_secs(120));
    second.assert_ok("the second dars sync");
    let hits = nginx.hits_when("every film fetched", |hits| {
        hits.iter().filter(|h| h.path().ends_with("package.json")).count() >= 2
            && lessons.values().all(|f| {
                let blob = format!("/{}", blob_of(&f["film.mp4"]));
                hits.iter()
                    .filter(|h| h.path() == blob)
                    .map(|h| h.body_bytes)
                    .sum::<u64>()
                    >= SIZE as u64
            })
    });
    let second_run = &hits[before.len()..];
    let sent: u64 = hits.iter().map(|h| h.bytes_sent).sum();
    eprintln!(
        "{point:?}: killed after {first_run_films} whole films, with {cut:?} stored of the next; sent over both \
         runs: {sent} bytes for a {package_size}-byte package ({:.3}x)\nsecond run's requests:\n{second_run:#?}\n\
         second run said: {}",
        sent as f64 / package_size as f64,
        second.stdout
    );
    // Without Range, what was stored of the cut-off film is fetched again: allow for it.
    let refetch = match (point, &cut) {
        (KillPoint::MidFilmNoRanges, Some(p)) => p.committed,
        _ => 0,
    };
    assert!(
        sent as f64 <= package_size as f64 * 1.15 + refetch as f64,
        "only what was missing was fetched again: {sent} bytes sent for {package_size}"
    );
    assert!(
        second_run.iter().filter(|h| full(h)).count() <= FILES as usize - first_run_films,
        "films finished before the kill were not fetched again: {second_run:#?}"
    );
    if point == KillPoint::MidFilm {
        let (cut, cut_path) = (
            cut.as_ref().expect("a film was cut"),
            cut_path.as_ref().expect("cut path"),
        );
        let resumed_from: Vec<u64> = second_run
            .iter()
            .filter(|h| h.path() == cut_path.as_str() && h.status == 206)
            .filter_map(|h| {
                h.range
                    .as_deref()?
                    .strip_prefix("bytes=")?
                    .strip_suffix('-')?
                    .parse()
                    .ok()
            })
            .collect();
        assert!(
            resumed_from.iter().any(|&from| from >= cut.committed),
            "the cut-off film resumed with a Range request after the {} bytes stored before the kill: {second_run:#?}",
            cut.committed
        );
        assert!(
            second.stdout.contains("resumed"),
            "dars says it resumed: {}",
            second.stdout
        );
    }
    if point == KillPoint::MidFilmNoRanges {
        let cut_path = cut_path.as_ref().expect("cut path");
        assert!(
            second_run
                .iter()
                .any(|h| h.path() == cut_path.as_str() && h.status == 200 && h.body_bytes == SIZE as u64),
            "the cut-off film came again whole: {second_run:#?}"
        );
    }

    spawn(dars(&data).arg("verify"))
        .finish(Duration::from_secs(120))
        .assert_ok("dars verify");
    assert_store_holds(&Library::open(&data).expect("open"), &lessons);
}

#[test]
fn a_sync_killed_after_half_the_films_fetches_only_the_rest() {
    kill_and_resume(KillPoint::AfterHalfTheFilms);
}

#[test]
fn a_sync_killed_mid_film_resumes_with_a_range_request() {
    kill_and_resume(KillPoint::MidFilm);
}

#[test]
fn a_sync_killed_mid_film_finishes_from_a_mirror_without_range_support() {
    kill_and_resume(KillPoint::MidFilmNoRanges);
}

#[test]
fn two_syncs_into_one_store_at_once_both_end_well() {
    const SIZE: usize = 16_000_000;
    let work = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::generate().expect("key");
    let lessons = Lessons::from([(
        "long-film".to_owned(),
        files(&[
            ("index.html", page(2000, 51)),
            ("film.mp4", pseudo_random_bytes(SIZE, 52)),
        ]),
    )]);
    let pkg = work.path().join("pkg");
    publish_lessons(work.path(), &pkg, &lessons, &key, 1);
    let Some(nginx) = Nginx::start(&pkg, "limit_rate 4m;") else {
        return;
    };
    let data = work.path().join("store");
    let sync = || {
        spawn(
            dars(&data)
                .env("DARS_TRUSTED_KEYS", trusted_env(&[key.public()]))
                .arg("sync")
                .arg(nginx.url("/")),
        )
    };
    // A scheduled sync is streaming the film when a technician starts one by hand.
    let mut first = sync();
    loop {
        assert!(
            first.child.try_wait().expect("try_wait").is_none(),
            "the first sync ended too soon"
        );
        let partial = committed_progress(&data.join("dars.sqlite")).and_then(|(_, p)| p);
        if partial.is_some_and(|p| p.committed > 0) {
            break;
        }
        assert!(
            first.started.elapsed() < Duration::from_secs(30),
            "the first sync stalled"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = sync();
    let results = [
        first.finish(Duration::from_secs(60)),
        second.finish(Duration::from_secs(60)),
    ];
    for (n, run) in results.iter().enumerate() {
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            run.status.success() || (!all.contains("database error") && all.contains("another sync")),
            "sync {n} failed without saying why it could not go on:\n{all}"
        );
    }
    assert!(results.iter().any(|r| r.status.success()), "at least one sync finished");
    spawn(dars(&data).arg("verify"))
        .finish(Duration::from_secs(60))
        .assert_ok("dars verify");
    assert_store_holds(&Library::open(&data).expect("open"), &lessons);
}

// ---------------------------------------------------------------------------------------------
// 4. Refusals leave the store as it was

#[test]
fn refused_syncs_leave_the_store_unchanged() {
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("www");
    let key = SecretKey::generate().expect("key");
    let stranger = SecretKey::generate().expect("key");
    let v1_page = page(20_000, 21);
    let v2_page = page(20_000, 22);
    let clip = pseudo_random_bytes(2_500_000, 23);
    let lesson = |list: &[(&str, Vec<u8>)]| Lessons::from([("topic-a".to_owned(), files(list))]);

    publish_lessons(
        work.path(),
        &root.join("v1"),
        &lesson(&[("index.html", v1_page.clone())]),
        &key,
        5,
    );
    // An older package of the same publisher.
    publish_lessons(
        work.path(),
        &root.join("old"),
        &lesson(&[("index.html", page(20_000, 25))]),
        &key,
        4,
    );
    // Version 2, three ways: a new page whose blob is then damaged; a new clip (streamed) whose
    // blob is damaged; the new page with its manifest edited after signing.
    publish_lessons(
        work.path(),
        &root.join("v2text"),
        &lesson(&[("index.html", v2_page.clone())]),
        &key,
        6,
    );
    flip_byte(&root.join("v2text").join(blob_of(&v2_page)));
    publish_lessons(
        work.path(),
        &root.join("v2media"),
        &lesson(&[("a-clip.mp4", clip.clone()), ("index.html", v1_page.clone())]),
        &key,
        6,
    );
    flip_byte(&root.join("v2media").join(blob_of(&clip)));
    publish_lessons(
        work.path(),
        &root.join("v2sig"),
        &lesson(&[("index.html", v2_page)]),
        &key,
        6,
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("v2sig/package.json")).expect("index")).expect("json");
    let manifest = root
        .join("v2sig")
        .join(index["manifests"][0]["manifest"].as_str().expect("manifest path"));
    // The signed root names the lesson; one letter of it edited breaks the signature.
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    assert!(text.contains("\"topic-a\""));
    let edited = text.replacen("\"topic-a\"", "\"topic-A\"", 1);
    std::fs::write(&manifest, &edited).expect("edit");
    publish_lessons(
        work.path(),
        &root.join("stranger"),
        &Lessons::from([("topic-z".to_owned(), files(&[("index.html", page(3000, 24))]))]),
        &stranger,
        1,
    );
    let Some(nginx) = Nginx::start(&root, "") else { return };

    // The store: version 1 from the publisher and a teacher's local lesson.
    let data = work.path().join("store");
    let opts = sync_opts(&[key.public()]);
    sync_on_own_thread(&data, &nginx.url("/v1/"), &opts).expect("sync v1");
    let local = work.path().join("local");
    write_lesson(&local, "my-notes", &[("index.html", b"<p>notes</p>")]);
    crate::common::import(&data, &local);
    let before = snapshot(&data);
    assert_eq!(before.lessons.len(), 2);

    let refuse = |url: &str, opts: &SyncOptions| -> String {
        let err = sync_on_own_thread(&data, url, opts).expect_err(&format!("sync of {url} must fail"));
        let message = err.to_string();
        assert_eq!(snapshot(&data), before, "the store changed after: {message}");
        message
    };

    let m = refuse(&nginx.url("/v2text/"), &opts);
    assert!(
        m.contains("topic-a") && m.contains("index.html") && m.contains("damaged"),
        "tampered text blob: {m}"
    );
    let m = refuse(&nginx.url("/v2media/"), &opts);
    assert!(
        m.contains("topic-a") && m.contains("a-clip.mp4") && (m.contains("damaged") || m.contains("altered")),
        "tampered streamed blob: {m}"
    );
    let m = refuse(&nginx.url("/v2sig/"), &opts);
    assert!(
        m.contains("signature") && m.contains("does not match"),
        "tampered manifest: {m}"
    );
    let m = refuse(&nginx.url("/stranger/"), &opts);
    let stranger_key = stranger.public();
    assert!(
        m.contains(&stranger_key.fingerprint())
            && m.contains(&format!("trusted_keys = [\"{}\"]", stranger_key.to_text())),
        "unknown key: {m}"
    );
    let m = refuse(&nginx.url("/old/"), &opts);
    assert!(
        m.contains("sequence 4") && m.contains("sequence 5") && m.contains("--allow-downgrade"),
        "downgrade: {m}"
    );
    let m = refuse(&nginx.url("/nowhere/"), &opts);
    assert!(m.contains("404") && m.contains("does not have"), "404: {m}");
    assert!(m.contains("/nowhere/package.json"), "404 names the address: {m}");

    // A mirror failing with 500: retried, then given up with the status in the message.
    let failing = TinyServer::start(Behaviour::Fails);
    let quick = SyncOptions {
        attempts: 2,
        ..opts.clone()
    };
    let m = refuse(&failing.url("/pkg/"), &quick);
    assert!(m.contains("500") && m.contains("2 tries"), "500: {m}");
    assert_eq!(
        failing.requests(),
        ["GET /pkg/package.json HTTP/1.1", "GET /pkg/package.json HTTP/1.1"],
        "two attempts"
    );

    // A mirror that never answers, and one that stops in the middle of a body.
    for behaviour in [Behaviour::Silent, Behaviour::Stalls] {
        let slow = TinyServer::start(behaviour);
        let patient = SyncOptions {
            attempts: 2,
            timeout: Duration::from_secs(1),
            ..opts.clone()
        };
        let started = Instant::now();
        let m = refuse(&slow.url("/"), &patient);
        let took = started.elapsed();
        assert!(m.contains("did not answer in time"), "{behaviour:?}: {m}");
        assert!(m.contains("2 tries"), "{behaviour:?}: {m}");
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(10),
            "{behaviour:?}: gave up after {took:?}"
        );
        assert_eq!(slow.requests().len(), 2, "{behaviour:?}: two attempts");
    }

    // A downgrade asked for on purpose goes through.
    let downgrade = SyncOptions {
        package: ImportPackageOptions {
            trusted: vec![key.public()],
            allow_downgrade: true,
        },
        ..SyncOptions::default()
    };
    let report = sync_on_own_thread(&data, &nginx.url("/old/"), &downgrade).expect("downgrade on purpose");
    assert_eq!(report.package.updated, ["topic-a"]);
    let after = snapshot(&data);
    assert!(
        after.lessons.iter().any(|(id, _, seq, _)| id == "topic-a" && *seq == 4),
        "{after:?}"
    );
}

#[test]
fn a_mirror_trickling_its_answer_fails_in_bounded_time() {
    let data = tempfile::tempdir().expect("tempdir");
    let slow = TinyServer::start(Behaviour::Trickles);
    let opts = SyncOptions {
        attempts: 1,
        timeout: Duration::from_secs(1),
        ..SyncOptions::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let (path, url) = (data.path().to_path_buf(), slow.url("/"));
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(
            sync_on_own_thread(&path, &url, &opts)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        );
    });
    // Stopping the server (on drop) ends the trickle, so a hung sync ends with the test.
    let outcome = rx.recv_timeout(Duration::from_secs(10));
    let took = started.elapsed();
    drop(slow);
    let message = match outcome {
        Ok(Err(message)) => message,
        Ok(Ok(())) => panic!("the sync succeeded from a mirror that never finished its answer"),
        Err(_) => panic!("the sync was still waiting after {took:?} with a 1 s timeout"),
    };
    assert!(message.contains("did not answer in time"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// 5. --max-rate

#[test]
fn max_rate_holds_the_average_within_twenty_percent() {
    let work = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::generate().expect("key");
    let mut lessons = Lessons::new();
    lessons.insert(
        "slow-lane".to_owned(),
        files(&[
            ("index.html", page(2000, 31)),
            ("a.mp4", pseudo_random_bytes(1_500_000, 32)),
            ("b.mp4", pseudo_random_bytes(1_500_000, 33)),
            ("c.jpg", pseudo_random_bytes(1_000_000, 34)),
        ]),
    );
    let pkg = work.path().join("pkg");
    publish_lessons(work.path(), &pkg, &lessons, &key, 1);
    let Some(nginx) = Nginx::start(&pkg, "") else { return };
    let data = work.path().join("store");
    let done = spawn(
        dars(&data)
            .env("DARS_TRUSTED_KEYS", trusted_env(&[key.public()]))
            .arg("sync")
            .arg(nginx.url("/"))
            .args(["--max-rate", "1M"]),
    )
    .finish(Duration::from_secs(60));
    done.assert_ok("dars sync --max-rate 1M");
    let files = package_files(&pkg);
    let hits = nginx.hits_when("every file", |hits| hits.len() >= files.len());
    let bytes: u64 = hits.iter().map(|h| h.body_bytes).sum();
    let rate = bytes as f64 / done.elapsed.as_secs_f64();
    eprintln!(
        "--max-rate 1M: {bytes} bytes in {:.2} s = {:.0} bytes/s ({:.1} % of the cap); dars said: {}",
        done.elapsed.as_secs_f64(),
        rate,
        rate / 1e6 * 100.0,
        done.stdout.trim()
    );
    assert!(bytes >= 4_000_000, "the package was fetched: {bytes}");
    assert!(rate <= 1.2e6, "faster than the cap allows: {rate:.0} bytes/s");
    assert!(rate >= 0.8e6, "much slower than the cap: {rate:.0} bytes/s");
    assert_store_holds(&Library::open(&data).expect("open"), &lessons);
}

// ---------------------------------------------------------------------------------------------
// 6. HTTP proxies from the environment

#[test]
fn http_proxy_from_the_environment_is_used() {
    let work = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::generate().expect("key");
    let lessons = Lessons::from([(
        "via-proxy".to_owned(),
        files(&[
            ("index.html", page(3000, 41)),
            ("clip.mp4", pseudo_random_bytes(1_200_000, 42)),
        ]),
    )]);
    let pkg = work.path().join("pkg");
    publish_lessons(work.path(), &pkg, &lessons, &key, 1);
    let Some(nginx) = Nginx::start(&pkg, "") else { return };
    let proxy = TinyServer::start(Behaviour::Proxy);
    let sync = |data: &Path, no_proxy: &str| {
        spawn(
            dars(data)
                .env("DARS_TRUSTED_KEYS", trusted_env(&[key.public()]))
                .env("HTTP_PROXY", format!("http://{}", proxy.addr))
                .env("NO_PROXY", no_proxy)
                .arg("sync")
                .arg(nginx.url("/")),
        )
        .finish(Duration::from_secs(60))
    };

    let data = work.path().join("store");
    sync(&data, "").assert_ok("dars sync through the proxy");
    let seen = proxy.requests();
    let index = format!("GET {} HTTP/1.1", nginx.url("/package.json"));
    assert!(seen.contains(&index), "the proxy saw {index:?}: {seen:#?}");
    let files = package_files(&pkg);
    let hits = nginx.hits_when("every file", |hits| hits.len() >= files.len());
    assert_eq!(
        seen.len(),
        hits.len(),
        "every request went through the proxy: {seen:#?}"
    );
    assert!(
        seen.iter().all(|r| r.starts_with(&format!("GET {}", nginx.url("/")))),
        "{seen:#?}"
    );
    assert_store_holds(&Library::open(&data).expect("open"), &lessons);

    // NO_PROXY naming the mirror sends the requests straight to it.
    sync(&work.path().join("store2"), "127.0.0.1").assert_ok("dars sync with NO_PROXY");
    assert_eq!(proxy.requests().len(), seen.len(), "NO_PROXY bypasses the proxy");
}

/// `dars serve` with upstreams configured syncs from them by itself, and `dars status` shows
/// each one's last result (here: one that works, one that does not).
#[tokio::test(flavor = "multi_thread")]
async fn serve_syncs_its_upstreams_on_schedule_and_status_shows_the_results() {
    let source = TestServer::with_samples().await;
    let work = tempfile::tempdir().expect("work");
    let data = work.path().join("data");
    let good = source.url("/mirror/");
    let bad = source.url("/no-such-mirror/");
    let config = work.path().join("dars.toml");
    std::fs::write(
        &config,
        format!("upstreams = [\"{good}\", \"{bad}\"]\nsync_interval = \"1h\"\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("config");
    // An empty store of its own would get the samples; give it one lesson so it does not.
    let seed = work.path().join("seed");
    write_lesson(&seed, "own-lesson", &[("index.html", b"<p>own</p>")]);
    crate::common::import(&data, &seed);
    let mut server = dars(&data)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .spawn()
        .expect("serve");
    let status = |data: &Path| -> serde_json::Value {
        let out = dars(data).arg("status").arg("--json").output().expect("status");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        last = status(&data);
        if last["syncs"].as_array().is_some_and(|s| s.len() == 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = server.kill();
    let _ = server.wait();
    let syncs = last["syncs"]
        .as_array()
        .unwrap_or_else(|| panic!("no sync results: {last}"))
        .clone();
    let result = |url: &str| {
        syncs
            .iter()
            .find(|s| s["url"] == url)
            .cloned()
            .expect("a result per upstream")
    };
    assert_eq!(result(&good)["ok"], true, "{last}");
    assert!(
        result(&good)["message"].as_str().expect("message").contains("16 new"),
        "{last}"
    );
    assert_eq!(result(&bad)["ok"], false, "{last}");
    assert!(
        result(&bad)["message"].as_str().expect("message").contains("404"),
        "{last}"
    );
    assert_eq!(
        last["lessons"], 17,
        "the samples from the upstream plus its own lesson: {last}"
    );
    let text = dars(&data).arg("status").output().expect("status");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains(&format!("last sync:      {good}")) && text.contains("FAILED"),
        "{text}"
    );
    source.stop().await;
}
