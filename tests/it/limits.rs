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

#[tokio::test]
async fn a_big_download_does_not_hold_up_a_small_page() {
    let server = server(Limits {
        bulk_rate: 1_000_000,
        ..Limits::default()
    })
    .await;
    let addr = server.addr;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let seen = progress.clone();
    let download = tokio::spawn(async move {
        // A client that reads as fast as it can: without pacing it would have the whole
        // file in moments (on a shared Wi-Fi link: the whole link, queueing everyone else).
        let mut stream = connect_from([127, 0, 0, 1], addr).await;
        stream
            .write_all(request("/lessons/demo/video.mp4").as_bytes())
            .await
            .expect("write");
        let mut chunk = [0u8; 64 * 1024];
        let mut started = Some(started_tx);
        loop {
            match stream.read(&mut chunk).await.expect("read") {
                0 => break,
                n => seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed),
            };
            if let Some(tx) = started.take() {
                let _ = tx.send(());
            }
        }
    });
    started_rx.await.expect("the download began");
    // The same client address and another one each load the page while the download runs,
    // and get it while the download has sent only a small part of the file.
    for from in [[127, 0, 0, 1], [127, 0, 0, 2]] {
        let mut page = connect_from(from, addr).await;
        page.write_all(request("/lessons/demo/index.html").as_bytes())
            .await
            .expect("write");
        let response = read_response(&mut page).await;
        assert_eq!(response.status, 200);
        let sent = progress.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            sent < BIG / 4,
            "the download had taken {sent} of {BIG} bytes before the page came"
        );
    }
    download.abort();
    server.stop().await;
}
