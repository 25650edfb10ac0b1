//! Helpers shared by the integration tests: lesson folders on disk and a running server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dars::service::{ImportOptions, ImportReport, Library, Progress};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// Writes a lesson folder `root/dir` with a lesson.toml for `id` and the given files.
pub fn write_lesson(root: &Path, id: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).expect("lesson dir");
    let toml = format!(
        "id = \"{id}\"\ntitle = \"Lesson {id}\"\nlanguage = \"en\"\ngrade = 5\nsubject = \"Science\"\nsummary = \"About {id}\"\n"
    );
    std::fs::write(dir.join("lesson.toml"), toml).expect("toml");
    for (path, bytes) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("subdir");
        std::fs::write(file, bytes).expect("file");
    }
    dir
}

/// Imports `path` into the store at `data`.
pub fn import(data: &Path, path: &Path) -> ImportReport {
    Library::open(data)
        .expect("open store")
        .import_folder(path, &ImportOptions::default(), &Progress::new())
        .expect("import")
}

/// The repository's sample lessons folder.
pub fn content_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("content")
}

/// A dars server on 127.0.0.1:0 over a store in a temp folder.
pub struct TestServer {
    pub addr: SocketAddr,
    pub data: TempDir,
    /// The library the server serves, shared with the test.
    pub library: std::sync::Arc<Library>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server whose store already holds what `fill` put in it.
    pub async fn start(fill: impl FnOnce(&Path)) -> TestServer {
        TestServer::start_at("127.0.0.1:0", dars::http::Limits::default(), fill).await
    }

    /// The same, with the console at /admin set up as given.
    pub async fn start_with_console(
        fill: impl FnOnce(&Path),
        console: dars::http::admin::ConsoleSettings,
    ) -> TestServer {
        TestServer::start_full("127.0.0.1:0", dars::http::Limits::default(), console, fill).await
    }

    /// The same, with the given limits.
    pub async fn start_with(limits: dars::http::Limits, fill: impl FnOnce(&Path)) -> TestServer {
        TestServer::start_at("127.0.0.1:0", limits, fill).await
    }

    /// The same, listening on `bind` (an address of this host with port 0).
    pub async fn start_at(bind: &str, limits: dars::http::Limits, fill: impl FnOnce(&Path)) -> TestServer {
        TestServer::start_full(bind, limits, dars::http::admin::ConsoleSettings::default(), fill).await
    }

    /// A server on `bind` with these limits and console settings.
    pub async fn start_full(
        bind: &str,
        limits: dars::http::Limits,
        console: dars::http::admin::ConsoleSettings,
        fill: impl FnOnce(&Path),
    ) -> TestServer {
        let data = tempfile::tempdir().expect("tempdir");
        fill(data.path());
        let library = std::sync::Arc::new(Library::open(data.path()).expect("open"));
        let state = dars::http::AppState::with_console(library.clone(), console);
        let router = dars::http::router(state, &limits);
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(dars::http::serve(listener, router, limits, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            data,
            library,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A server holding the embedded sample lessons.
    pub async fn with_samples() -> TestServer {
        TestServer::start(|data| {
            Library::open(data).expect("open").load_samples_once().expect("samples");
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("serve");
        }
    }
}

/// A plain HTTP client: no automatic decompression, so tests see the bytes sent.
pub fn client() -> reqwest::Client {
    dars::service::sync::install_crypto();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

pub fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).expect("unzstd")
}

/// A small deterministic PRNG (xorshift64*), so generated test files are the same every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `len` bytes that do not compress, the same for the same `seed`.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// About `len` bytes of HTML-ish text from a small vocabulary (compresses like real pages),
/// the same for the same `seed`.
pub fn pseudo_random_text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &str = "dərs kəsr su bitki günəş torpaq hesab say xətt bucaq урок вода число растение lesson \
        water number plant angle line the and of is a to in we see how why <b> </b> <p> </p> <li> </li> 1/2 3/4 100%";
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        out.extend_from_slice(words[rng.below(words.len() as u64) as usize].as_bytes());
        out.push(if rng.below(12) == 0 { b'\n' } else { b' ' });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running the binary (CLI tests only)

/// The binary, with no `DARS_*` settings inherited from whoever runs the tests.
pub fn dars() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dars"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DARS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1").stdin(Stdio::null());
    cmd
}

/// Waits for `child` for at most `limit`; kills it and panics when it takes longer.
pub fn wait_for(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` to the end (at most two minutes), capturing its output.
pub fn run(cmd: &mut std::process::Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dars");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).expect("read pipe");
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = wait_for(&mut child, Duration::from_secs(120), &format!("{cmd:?}"));
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout thread"),
        stderr: stderr.join().expect("stderr thread"),
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` and checks it succeeded; returns stdout.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A running `dars serve`; killed if the test fails before stopping it.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    /// The log lines after the one naming the address, as they come.
    log: mpsc::Receiver<String>,
}

impl Served {
    /// Starts `dars serve` on port 0 and reads the bound address from its log as it streams.
    pub fn start(data: &Path) -> Served {
        Served::start_with(data, |_| {})
    }

    /// The same, with more settings (environment, global flags) given by `extra`.
    pub fn start_with(data: &Path, extra: impl FnOnce(&mut std::process::Command)) -> Served {
        let mut cmd = dars();
        extra(&mut cmd);
        let mut child = cmd
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut served = Served {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log: rx,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut log = Vec::new();
        while served.addr.port() == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match served.log.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = bound_address(&line) {
                        assert!(line.contains("serving lessons from"), "{line}");
                        served.addr = addr;
                    }
                    log.push(line);
                }
                Err(e) => panic!("no \"serving lessons\" line ({e}); log so far:\n{}", log.join("\n")),
            }
        }
        served
    }

    /// The first log line that `wanted` accepts, waiting up to 30 s for it.
    pub fn log_line(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("no such log line ({e}); log so far:\n{}", seen.join("\n")),
            }
        }
    }

    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success());
        wait_for(&mut self.child, Duration::from_secs(10), "dars serve after SIGTERM")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in "serving lessons from ... on http://127.0.0.1:PORT".
pub fn bound_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("on http://")? + "on http://".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':' || c == '[' || c == ']'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let response = text(&response);
    let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (code, body.to_owned())
}

pub fn healthz_lessons(addr: SocketAddr) -> u64 {
    let (code, body) = http_get(addr, "/healthz");
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("healthz JSON");
    assert_eq!(json["status"], "ok", "{json}");
    json["lessons"].as_u64().expect("lessons count")
}
