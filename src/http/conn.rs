//! The accept loop and each connection's life: a bound on open connections (beyond it a short
//! 503 with `Retry-After`, never a hang), and a watchdog per connection that closes it when
//! its headers trickle, when it idles between requests, or when its client stops reading.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::limits::{Clients, Limits, Metered, RETRY_AFTER_SECS};
use super::{HttpError, Listening};

/// Milliseconds since the first call: a cheap clock for the watchdog's bookkeeping.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// What one connection's watchdog knows, updated by its socket and its requests.
#[derive(Debug, Default)]
pub(super) struct ConnWatch {
    in_flight: AtomicU32,
    /// When the connection last became idle (no request in flight).
    idle_since: AtomicU64,
    /// When the first byte of the next request came while idle; 0: none yet.
    head_since: AtomicU64,
    /// When a byte last moved either way while a request was in flight.
    progress_at: AtomicU64,
}

/// Why the watchdog ends a connection.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Fine,
    Idle,
    HeaderTimeout,
    Stalled,
}

impl ConnWatch {
    fn new() -> Arc<ConnWatch> {
        let watch = ConnWatch::default();
        watch.idle_since.store(now_ms(), Ordering::Relaxed);
        Arc::new(watch)
    }

    fn on_bytes(&self, read: bool) {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            self.progress_at.store(now_ms(), Ordering::Relaxed);
        } else if read && self.head_since.load(Ordering::Relaxed) == 0 {
            self.head_since.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// A request's headers have arrived; the guard marks its end (the body's last byte).
    fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
        self.progress_at.store(now_ms(), Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    fn verdict(&self, limits: &Limits) -> Verdict {
        let now = now_ms();
        let older = |at: u64, limit: Duration| at != 0 && now.saturating_sub(at) > limit.as_millis() as u64;
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            if older(self.progress_at.load(Ordering::Relaxed), limits.send_timeout) {
                return Verdict::Stalled;
            }
        } else if self.head_since.load(Ordering::Relaxed) != 0 {
            if older(self.head_since.load(Ordering::Relaxed), limits.header_timeout) {
                return Verdict::HeaderTimeout;
            }
        } else if older(self.idle_since.load(Ordering::Relaxed), limits.idle_timeout) {
            return Verdict::Idle;
        }
        Verdict::Fine
    }
}

/// Marks one request in flight on its connection.
#[derive(Debug)]
pub(super) struct RequestGuard(Arc<ConnWatch>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since.store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// A socket that tells its watchdog when bytes move.
struct Watched {
    io: TcpStream,
    watch: Arc<ConnWatch>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.on_bytes(true);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_bytes(false);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_bytes(false);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Connections answered with a 503 at once, beyond the bound; more than this are closed.
const SHED_AT_ONCE: usize = 256;

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish
/// (for at most 10 s) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let bound = listener.local_addr()?;
    let limits = Arc::new(limits);
    let max = u32::try_from(limits.max_connections).unwrap_or(u32::MAX >> 3);
    let slots = Arc::new(Semaphore::new(max as usize));
    let shed_slots = Arc::new(Semaphore::new(SHED_AT_ONCE));
    let clients = Clients::new(&limits);
    // Read by each connection on its watchdog's tick, not on every wake-up: a channel's
    // waiter list would be one lock shared by every connection on the hot path.
    let stopping = Arc::new(AtomicBool::new(false));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if let Ok(shed) = shed_slots.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(shed);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let listening = Listening {
            bound,
            local: stream.local_addr().unwrap_or(bound),
        };
        let watch = ConnWatch::new();
        let service = {
            let (app, watch, clients, limits) = (router.clone(), watch.clone(), clients.clone(), limits.clone());
            hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                let (app, watch, clients, limits) = (app.clone(), watch.clone(), clients.clone(), limits.clone());
                async move {
                    let guard = watch.request_started();
                    let Some(turn) = clients.turn(peer.ip()).await else {
                        return Ok::<_, std::convert::Infallible>(axum::response::IntoResponse::into_response(
                            HttpError::Busy,
                        ));
                    };
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req.extensions_mut().insert(listening);
                    let response = app.oneshot(req.map(Body::new)).await?;
                    let large = response
                        .headers()
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .is_some_and(|len| len >= limits.bulk_above);
                    let pace = (large && limits.bulk_rate > 0).then_some(limits.bulk_rate);
                    Ok(response.map(|body| Body::new(Metered::new(body, guard, turn, pace))))
                }
            })
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .max_buf_size(64 * 1024)
            .serve_connection(
                TokioIo::new(Watched {
                    io: stream,
                    watch: watch.clone(),
                }),
                service,
            );
        let limits = limits.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let every = (limits.header_timeout.min(limits.idle_timeout).min(limits.send_timeout) / 4)
                .clamp(Duration::from_millis(50), Duration::from_secs(1));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut closing = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!("connection from {peer}: {e}");
                        }
                        break;
                    }
                    _ = tick.tick() => match watch.verdict(&limits) {
                        Verdict::Fine | Verdict::Idle if !closing && stopping.load(Ordering::Relaxed) => {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        Verdict::Fine => {}
                        Verdict::Idle if !closing => {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        verdict => {
                            tracing::debug!("closing the connection from {peer}: {verdict:?}");
                            break;
                        }
                    },
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    stopping.store(true, Ordering::Relaxed);
    if tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(max))
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open at shutdown");
    }
    Ok(())
}

/// Answers a connection beyond the bound: reads its request head (briefly), says 503 with
/// `Retry-After`, and closes, so a phone retries instead of hanging in the backlog.
async fn refuse(mut stream: TcpStream) {
    let head = async {
        let mut buf = [0u8; 4096];
        let mut seen = 0usize;
        while seen < buf.len() {
            match stream.read(&mut buf[seen..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen += n,
            }
            if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), head).await;
    let body = super::pages::BUSY_TEXT;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECS}\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_knows_idle_from_trickling_from_stalled() {
        let limits = Limits {
            header_timeout: Duration::from_millis(30),
            idle_timeout: Duration::from_millis(60),
            send_timeout: Duration::from_millis(30),
            ..Limits::default()
        };
        let watch = ConnWatch::new();
        assert_eq!(watch.verdict(&limits), Verdict::Fine);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(watch.verdict(&limits), Verdict::Idle);
        watch.on_bytes(true);
        assert_eq!(watch.verdict(&limits), Verdict::Fine, "a request has begun");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(watch.verdict(&limits), Verdict::HeaderTimeout);
        let guard = watch.request_started();
        assert_eq!(watch.verdict(&limits), Verdict::Fine);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(watch.verdict(&limits), Verdict::Stalled);
        watch.on_bytes(false);
        assert_eq!(watch.verdict(&limits), Verdict::Fine, "the client took a byte");
        drop(guard);
        assert_eq!(watch.verdict(&limits), Verdict::Fine, "idle again, from now");
    }
}
