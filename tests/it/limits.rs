//! The server's limits against raw TCP clients: trickled headers and idle connections are
//! closed, an address over its bound waits or gets 503 while another is served, connections
//! beyond the bound are answered 503, and a big download does not hold up a small page.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dars::http::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{TestServer, import, pseudo_random_bytes, write_lesson};

/// Longest any step here may take before the test gives up (a hang is a failure, not a
/// measurement: nothing below asserts on how long things took).
const HANG: Duration = Duration::from_secs(60);

const BIG: usize = 8_000_000;

async fn server(limits: Limits) -> TestServer {
    TestServer::start_with(limits, |data| {
        let src = tempfile::tempdir().expect("src");
        let big = pseudo_random_bytes(BIG, 7);
        write_lesson(
            src.path(),
            "demo",
            &[
                ("index.html", b"<!doctype html><p>small page</p>\n"),
                ("video.mp4", &big),
            ],
        );
        let report = import(data, src.path());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    })
    .await
}

/// A TCP connection to `server` from the local address `from`.
async fn connect_from(from: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::from(from), 0))
        .expect("bind the client address");
    socket.connect(server).await.expect("connect")
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// A response read off a raw connection: status, head, and the body (by Content-Length).
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

async fn read_response(stream: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(HANG, stream.read(&mut chunk))
            .await
            .expect("response head in time")
            .expect("read");
        assert!(
            n > 0,
            "connection closed before a response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head[9..12].parse().expect("status");
    let len: usize = header(&head, "content-length").map_or(0, |v| v.parse().expect("length"));
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let n = tokio::time::timeout(HANG, stream.read(&mut chunk))
            .await
            .expect("body in time")
            .expect("read");
        assert!(n > 0, "connection closed inside a body");
        body.extend_from_slice(&chunk[..n]);
    }
    Response { status, head, body }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Waits until the server closes `stream` (a read of 0 or a reset), reading past any bytes.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(HANG, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn quick(limits: Limits) -> Limits {
    Limits {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..limits
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let server = server(quick(Limits::default())).await;
    let mut stream = connect_from([127, 0, 0, 1], server.addr).await;
    stream
        .write_all(b"GET /lessons/demo/ HTTP/1.1\r\nHost: test\r\n")
        .await
        .expect("write");
    // One header byte every 100 ms: a request that would never end.
    let mut sent = 0;
    let cut = loop {
        if stream.write_all(b"X").await.is_err() {
            break true;
        }
        sent += 1;
        if sent > 600 {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => panic!("the server answered a request whose headers never ended"),
            Err(_) => {}
        }
    };
    assert!(cut, "the connection was still open after 60 s of trickled headers");
    // Others are still served.
    let mut other = connect_from([127, 0, 0, 1], server.addr).await;
    other
        .write_all(request("/lessons/demo/index.html").as_bytes())
        .await
        .expect("write");
    assert_eq!(read_response(&mut other).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = server(quick(Limits::default())).await;
    let mut stream = connect_from([127, 0, 0, 1], server.addr).await;
    stream
        .write_all(request("/lessons/demo/index.html").as_bytes())
        .await
        .expect("write");
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200);
    assert!(header(&response.head, "connection").is_none_or(|v| !v.eq_ignore_ascii_case("close")));
    // Kept alive: a second request on the same connection is answered.
    stream
        .write_all(request("/lessons/demo/index.html").as_bytes())
        .await
        .expect("write");
    assert_eq!(read_response(&mut stream).await.status, 200);
    // Then nothing: the server closes it.
    assert!(closed_by_server(&mut stream).await, "an idle connection stayed open");
    server.stop().await;
}

#[tokio::test]
async fn a_client_over_its_bound_gets_503_while_another_address_is_served() {
    let limits = Limits {
        per_client_requests: 1,
        per_client_wait: Duration::from_millis(300),
        bulk_rate: 200_000,
        ..Limits::default()
    };
    let server = server(limits).await;
    // The first client's one turn: a paced download that it reads slowly.
    let mut download = connect_from([127, 0, 0, 1], server.addr).await;
    download
        .write_all(request("/lessons/demo/video.mp4").as_bytes())
        .await
        .expect("write");
    let mut first = [0u8; 1024];
    let n = download.read(&mut first).await.expect("read");
    assert!(
        n > 0 && first.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first[..n])
    );
    // Its second request waits, then is refused politely.
    let mut again = connect_from([127, 0, 0, 1], server.addr).await;
    again
        .write_all(request("/lessons/demo/index.html").as_bytes())
        .await
        .expect("write");
    let refused = read_response(&mut again).await;
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(header(&refused.head, "retry-after").is_some(), "{}", refused.head);
    assert!(String::from_utf8_lossy(&refused.body).contains("busy"));
    // Another address is served at once.
    let mut other = connect_from([127, 0, 0, 2], server.addr).await;
    other
        .write_all(request("/lessons/demo/index.html").as_bytes())
        .await
        .expect("write");
    let served = read_response(&mut other).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, b"<!doctype html><p>small page</p>\n");
    // Once the download is given up, the first address is served again.
    drop(download);
    let mut later = 0;
    loop {
        let mut retry = connect_from([127, 0, 0, 1], server.addr).await;
        retry
            .write_all(request("/lessons/demo/index.html").as_bytes())
            .await
            .expect("write");
        if read_response(&mut retry).await.status == 200 {
            break;
        }
        later += 1;
        assert!(later < 100, "the first address was never served again");
    }
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_bound_get_503_and_retry_after() {
    let server = server(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from([127, 0, 0, 1], server.addr).await;
        stream
            .write_all(request("/lessons/demo/index.html").as_bytes())
            .await
            .expect("write");
        assert_eq!(read_response(&mut stream).await.status, 200);
        held.push(stream);
    }
    let mut third = connect_from([127, 0, 0, 3], server.addr).await;
    third
        .write_all(request("/lessons/demo/index.html").as_bytes())
        .await
        .expect("write");
    let shed = read_response(&mut third).await;
    assert_eq!(shed.status, 503, "{}", shed.head);
    assert!(header(&shed.head, "retry-after").is_some(), "{}", shed.head);
    assert!(closed_by_server(&mut third).await, "a shed connection is closed");
    // A held connection is still served, and when one closes, its slot serves a new one.
    held[0]
        .write_all(request("/lessons/demo/index.html").as_bytes())
        .await
        .expect("write");
    assert_eq!(read_response(&mut held[0]).await.status, 200);
    drop(held.pop());
    let mut tries = 0;
    loop {
        let mut fresh = connect_from([127, 0, 0, 3], server.addr).await;
        fresh
            .write_all(request("/lessons/demo/index.html").as_bytes())
            .await
            .expect("write");
        if read_response(&mut fresh).await.status == 200 {
            break;
        }
        tries += 1;
        assert!(tries < 100, "the freed slot never served anyone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

/// A namespace joined to this host by a veth pair whose host side (server to phone) is a
/// 20 Mbit/s link with a 300 ms queue, like a school access point; deleted on drop.
struct ShapedLink {
    ns: String,
    host_dev: String,
    host_ip: String,
}

impl ShapedLink {
    fn new() -> Result<ShapedLink, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let net = format!("10.203.{}", (std::process::id() % 200 + n) % 250);
        let link = ShapedLink {
            ns: format!("dars-limits-{tag}"),
            host_dev: format!("lmh{tag}"),
            host_ip: format!("{net}.1"),
        };
        let phone_dev = format!("lmp{tag}");
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip is missing ({e})"))?;
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        };
        ip(&["netns", "add", &link.ns])?;
        ip(&[
            "link",
            "add",
            &link.host_dev,
            "type",
            "veth",
            "peer",
            "name",
            &phone_dev,
        ])?;
        ip(&["link", "set", &phone_dev, "netns", &link.ns])?;
        ip(&["addr", "add", &format!("{net}.1/24"), "dev", &link.host_dev])?;
        ip(&["link", "set", &link.host_dev, "up"])?;
        ip(&["-n", &link.ns, "addr", "add", &format!("{net}.2/24"), "dev", &phone_dev])?;
        ip(&["-n", &link.ns, "link", "set", &phone_dev, "up"])?;
        ip(&["-n", &link.ns, "link", "set", "lo", "up"])?;
        let tc = std::process::Command::new("tc")
            .args([
                "qdisc",
                "add",
                "dev",
                &link.host_dev,
                "root",
                "tbf",
                "rate",
                "20mbit",
                "burst",
                "32kbit",
                "latency",
                "300ms",
            ])
            .output()
            .map_err(|e| format!("tc is missing ({e})"))?;
        if !tc.status.success() {
            return Err(format!("tc tbf: {}", String::from_utf8_lossy(&tc.stderr).trim()));
        }
        Ok(link)
    }
}

impl Drop for ShapedLink {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_dev])
            .output();
    }
}

/// The phone's side, run in the namespace: starts the download, reads its first megabyte,
/// then loads the page while the download goes on, and says how many bytes of the download
/// arrived while the page loaded.
const PHONE: &str = r#"
import json, socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
d = socket.create_connection((host, port))
d.sendall(b"GET /lessons/demo/video.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
got = [0]
while got[0] < 1_000_000:
    got[0] += len(d.recv(65536))
def drain():
    while True:
        data = d.recv(65536)
        if not data:
            return
        got[0] += len(data)
threading.Thread(target=drain, daemon=True).start()
before = got[0]
p = socket.create_connection((host, port))
p.sendall(b"GET /lessons/demo/index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
page = b""
while True:
    data = p.recv(65536)
    if not data:
        break
    page += data
print(json.dumps({"status": int(page[9:12]), "page_ends": page.endswith(b"small page</p>\n"), "during": got[0] - before}))
"#;

#[tokio::test]
async fn a_big_download_does_not_hold_up_a_small_page() {
    let required = std::env::var("DARS_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    let link = match ShapedLink::new() {
        Ok(link) => link,
        Err(why) => {
            assert!(!required, "DARS_REQUIRE_TOOLS=1 but {why}");
            eprintln!("skipped: {why} (needs root, ip and tc; DARS_REQUIRE_TOOLS=1 makes this a failure)");
            return;
        }
    };
    let server = TestServer::start_at(
        &format!("{}:0", link.host_ip),
        Limits {
            bulk_rate: 1_000_000,
            ..Limits::default()
        },
        |data| {
            let src = tempfile::tempdir().expect("src");
            let big = pseudo_random_bytes(BIG, 7);
            write_lesson(
                src.path(),
                "demo",
                &[
                    ("index.html", b"<!doctype html><p>small page</p>\n"),
                    ("video.mp4", &big),
                ],
            );
            assert!(import(data, src.path()).errors.is_empty());
        },
    )
    .await;
    let (ns, host, port) = (link.ns.clone(), link.host_ip.clone(), server.addr.port().to_string());
    let out = tokio::time::timeout(
        HANG,
        tokio::process::Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", PHONE, &host, &port])
            .output(),
    )
    .await
    .expect("the phone finished in time")
    .expect("python3 in the namespace");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the phone's report");
    assert_eq!(report["status"], 200, "{report}");
    assert_eq!(report["page_ends"], true, "{report}");
    // Unpaced, the download keeps a queue at the access point and the page waits behind it
    // for each round trip: 165-182 kB of video arrived while the page loaded (bulk_rate 0,
    // on the machine this was written on). Paced at 1 MB/s, below the link's 2.5 MB/s, the
    // queue stays short: 15 kB.
    let during = report["during"].as_u64().expect("bytes");
    assert!(
        during < 80_000,
        "{during} bytes of the download arrived while the page loaded"
    );
    server.stop().await;
    drop(link);
}
