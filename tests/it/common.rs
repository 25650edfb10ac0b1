//! Helpers shared by the integration tests: lesson folders on disk and a running server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server whose store already holds what `fill` put in it.
    pub async fn start(fill: impl FnOnce(&Path)) -> TestServer {
        TestServer::start_with(dars::http::Limits::default(), fill).await
    }

    /// The same, with the given limits.
    pub async fn start_with(limits: dars::http::Limits, fill: impl FnOnce(&Path)) -> TestServer {
        TestServer::start_at("127.0.0.1:0", limits, fill).await
    }

    /// The same, listening on `bind` (an address of this host with port 0).
    pub async fn start_at(bind: &str, limits: dars::http::Limits, fill: impl FnOnce(&Path)) -> TestServer {
        let data = tempfile::tempdir().expect("tempdir");
        fill(data.path());
        let library = Library::open(data.path()).expect("open");
        let router = dars::http::router(dars::http::AppState::new(library), &limits);
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(dars::http::serve(listener, router, limits, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            data,
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
    cmd.env("NO_COLOR", "1").stdin(std::process::Stdio::null());
    cmd
}

/// Waits for `child` for at most `limit`; kills it and panics when it takes longer.
pub fn wait_for(child: &mut std::process::Child, limit: std::time::Duration, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs `cmd` to the end (at most two minutes), capturing its output.
pub fn run(cmd: &mut std::process::Command) -> std::process::Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn dars");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).expect("read pipe");
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = wait_for(&mut child, std::time::Duration::from_secs(120), &format!("{cmd:?}"));
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
