//! Limits that protect the many from the few: the settings, the per-client-address bound on
//! requests in flight (a short queue, then 503), and response bodies that release their
//! connection's bookkeeping when done and pace large transfers through a token bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::conn::RequestGuard;

/// Limits that protect the server from slow or greedy clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a client has, from the first byte of a request, to send all of its headers.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may sit with no request before it is closed.
    pub idle_timeout: Duration,
    /// Time a response may wait for the client to take any byte before the connection is
    /// dropped (a phone that walked out of range).
    pub send_timeout: Duration,
    /// Time a handler has to produce a response (bodies may stream for longer).
    pub request_timeout: Duration,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Open connections at once; beyond it new connections get a 503 with `Retry-After`.
    pub max_connections: usize,
    /// Requests in flight at once from one client address (0: no bound).
    pub per_client_requests: usize,
    /// How long a request over that bound waits for a turn before it gets 503.
    pub per_client_wait: Duration,
    /// Bytes per second each connection may send of a large body (0: unpaced).
    pub bulk_rate: u64,
    /// Bodies of at least this many bytes are paced at `bulk_rate`.
    pub bulk_above: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_body: 64 * 1024,
            max_connections: 4096,
            per_client_requests: 16,
            per_client_wait: Duration::from_secs(2),
            bulk_rate: 1_000_000,
            bulk_above: 1_000_000,
        }
    }
}

/// Seconds a shed or queued-out client is told to wait before asking again.
pub(super) const RETRY_AFTER_SECS: u64 = 2;

/// The per-address bound: one semaphore per client address that has requests in flight.
#[derive(Debug)]
pub(super) struct Clients {
    per_client: usize,
    wait: Duration,
    /// Held only to look up or remove an entry (never across an await), so a std mutex.
    map: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// A turn for one request of one client address; given back when dropped.
#[derive(Debug)]
pub(super) struct ClientTurn {
    permit: Option<OwnedSemaphorePermit>,
    entry: Option<(Arc<Clients>, IpAddr, Arc<Semaphore>)>,
}

impl Clients {
    pub(super) fn new(limits: &Limits) -> Arc<Clients> {
        Arc::new(Clients {
            per_client: limits.per_client_requests,
            wait: limits.per_client_wait,
            map: Mutex::new(HashMap::new()),
        })
    }

    /// Waits (at most the configured time) for a turn for `ip`; `None` when none came.
    pub(super) async fn turn(self: &Arc<Self>, ip: IpAddr) -> Option<ClientTurn> {
        if self.per_client == 0 {
            return Some(ClientTurn {
                permit: None,
                entry: None,
            });
        }
        let semaphore = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(ip)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_client)))
                .clone()
        };
        let permit = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(self.wait, semaphore.clone().acquire_owned())
                .await
                .ok()?
                .ok()?,
        };
        Some(ClientTurn {
            permit: Some(permit),
            entry: Some((self.clone(), ip, semaphore)),
        })
    }

    /// Addresses with requests in flight or waiting (for tests and logs).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for ClientTurn {
    fn drop(&mut self) {
        drop(self.permit.take());
        if let Some((clients, ip, semaphore)) = self.entry.take() {
            let mut map = clients.map.lock().unwrap_or_else(|e| e.into_inner());
            // The map's reference and ours are the only ones left: nobody holds or awaits a
            // turn for this address, so forget it (memory stays bounded by active clients).
            if Arc::strong_count(&semaphore) == 2 && semaphore.available_permits() == clients.per_client {
                map.remove(&ip);
            }
        }
    }
}

/// Frames of a paced body are cut to this size, so the pacing is smooth rather than a
/// 256 KiB burst followed by a pause.
const PACED_FRAME: usize = 32 * 1024;
/// Bytes a paced body may send at once after a pause.
const PACED_BURST: f64 = 64.0 * 1024.0;

/// A token bucket for one response body.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer {
            rate: rate as f64,
            tokens: PACED_BURST,
            last: Instant::now(),
        }
    }

    /// Spends `n` bytes; returns how long to wait before the next frame.
    fn spend(&mut self, n: usize) -> Option<Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(PACED_BURST);
        self.last = now;
        self.tokens -= n as f64;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

/// A response body that carries its request's bookkeeping (released when the body ends or
/// is dropped) and, for large bodies, a pacer.
#[derive(Debug)]
pub(super) struct Metered {
    inner: Body,
    guards: Option<(RequestGuard, ClientTurn)>,
    pacer: Option<Pacer>,
    pending: Option<Bytes>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Metered {
    pub(super) fn new(inner: Body, guard: RequestGuard, turn: ClientTurn, pace_at: Option<u64>) -> Metered {
        Metered {
            inner,
            guards: Some((guard, turn)),
            pacer: pace_at.map(Pacer::new),
            pending: None,
            sleep: None,
        }
    }
}

impl hyper::body::Body for Metered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        let frame = match this.pending.take() {
            Some(data) => Frame::data(data),
            None => match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                other => {
                    this.guards = None;
                    return Poll::Ready(other);
                }
            },
        };
        let frame = match (this.pacer.as_mut(), frame.into_data()) {
            (Some(pacer), Ok(mut data)) => {
                if data.len() > PACED_FRAME {
                    this.pending = Some(data.split_off(PACED_FRAME));
                }
                if let Some(wait) = pacer.spend(data.len()) {
                    this.sleep = Some(Box::pin(tokio::time::sleep(wait)));
                }
                Frame::data(data)
            }
            (_, Ok(data)) => Frame::data(data),
            (_, Err(frame)) => frame,
        };
        if this.pending.is_none() && this.inner.is_end_stream() {
            this.guards = None;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.inner.size_hint();
        let extra = self.pending.as_ref().map_or(0, |p| p.len() as u64);
        let mut out = SizeHint::new();
        out.set_lower(hint.lower() + extra);
        if let Some(upper) = hint.upper() {
            out.set_upper(upper + extra);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_over_its_bound_waits_then_is_refused_and_is_forgotten_when_done() {
        let limits = Limits {
            per_client_requests: 2,
            per_client_wait: Duration::from_millis(50),
            ..Limits::default()
        };
        let clients = Clients::new(&limits);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = clients.turn(a).await.expect("first");
        let second = clients.turn(a).await.expect("second");
        assert!(clients.turn(a).await.is_none(), "a third turn for the same address");
        let other = clients.turn(b).await.expect("another address is served");
        drop(other);
        assert_eq!(clients.tracked(), 1);
        drop(first);
        let third = clients.turn(a).await.expect("a turn came free");
        drop((second, third));
        assert_eq!(clients.tracked(), 0, "no address is remembered once idle");
    }

    #[test]
    fn the_pacer_asks_for_waits_that_keep_to_its_rate() {
        let mut pacer = Pacer::new(100_000);
        let mut asked = None;
        for _ in 0..10 {
            asked = pacer.spend(PACED_FRAME);
        }
        // 320 KiB at 100 kB/s, less the 64 KiB burst: about 2.6 s of waiting asked for.
        let expected = (10.0 * PACED_FRAME as f64 - PACED_BURST) / 100_000.0;
        let asked = asked.expect("a wait").as_secs_f64();
        assert!((asked - expected).abs() < 0.05, "asked {asked}, expected {expected}");
        assert!(
            Pacer::new(100_000).spend(1000).is_none(),
            "a small body goes out at once"
        );
    }
}
