//! The web server: routes, limits, and the accept loop with graceful shutdown. Handlers are
//! thin: extract, call the service (off the async threads), render.

pub mod admin;
mod api;
pub mod charts;
mod conn;
mod error;
mod files;
mod limits;
mod metrics;
mod mirror;
pub mod negotiate;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::Semaphore;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use conn::serve;
pub use error::HttpError;
pub use limits::Limits;

use crate::service::{Library, ServiceError};

/// Where a connection came in: the listener's address and the address the client reached
/// (a request extension, for the poster and for links back to this server).
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub bound: SocketAddr,
    pub local: SocketAddr,
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    library: Arc<Library>,
    /// The console at /admin: its settings and jobs.
    console: admin::Console,
    /// Bounds store work running at once: enough to keep a disk and two cores busy, few
    /// enough that 500 waiting phones do not open 500 SQLite connections (each with its own
    /// page cache) or 500 threads.
    store_slots: Semaphore,
    /// Request counters for `/metrics`.
    metrics: metrics::Metrics,
}

/// Store reads running at once.
const STORE_SLOTS: usize = 8;

impl AppState {
    /// State for a long-running server: the library also watches for other processes' commits.
    pub fn new(library: Library) -> Self {
        Self::shared(Arc::new(library))
    }

    /// The same, for a library that other parts of the server (the sync schedule) also use.
    pub fn shared(library: Arc<Library>) -> Self {
        Self::with_console(library, admin::ConsoleSettings::default())
    }

    /// The same, with the console's settings from the configuration.
    pub fn with_console(library: Arc<Library>, settings: admin::ConsoleSettings) -> Self {
        library.watch_for_changes();
        Library::start_usage_flusher(&library, crate::service::usage::FLUSH_EVERY);
        library.make_variants_in_background();
        AppState {
            inner: Arc::new(Inner {
                library,
                console: admin::Console::new(settings),
                store_slots: Semaphore::new(STORE_SLOTS),
                metrics: metrics::Metrics::default(),
            }),
        }
    }

    /// The library itself, for long work on threads of its own (console jobs).
    fn library_arc(&self) -> Arc<Library> {
        Arc::clone(&self.inner.library)
    }

    fn console(&self) -> &admin::Console {
        &self.inner.console
    }

    /// For non-blocking calls only (cache probes); store work goes through `blocking`.
    fn library(&self) -> &Library {
        &self.inner.library
    }

    fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Runs blocking store work on tokio's blocking pool: the one place sync meets async.
    async fn blocking<T, F>(&self, f: F) -> Result<T, HttpError>
    where
        F: FnOnce(&Library) -> Result<T, ServiceError> + Send + 'static,
        T: Send + 'static,
    {
        let _slot = self
            .inner
            .store_slots
            .acquire()
            .await
            .map_err(|e| HttpError::Internal(format!("store slots closed: {e}")))?;
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(&state.inner.library))
            .await
            .map_err(|e| HttpError::Internal(format!("blocking task failed: {e}")))?
            .map_err(HttpError::from)
    }
}

/// All routes, with the limits applied.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let console = admin::router(&state);
    Router::new()
        .route("/", get(pages::home))
        .route("/browse", get(pages::browse))
        .route("/card/{id}", get(pages::card))
        .route("/lessons/{id}/offline.html", get(pages::lesson_file))
        .route("/packs", get(pages::pack_confirm))
        .route("/packs/offline.html", get(pages::pack_file))
        .route("/poster", get(pages::poster))
        .route("/search", get(pages::search))
        .route("/static/{name}", get(pages::script))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/lessons", get(api::list))
        .route("/api/v1/lessons/{id}", get(api::detail))
        .route("/api/v1/search", get(api::search))
        .route("/lessons/{id}", get(files::no_slash))
        .route("/lessons/{id}/", get(files::entry))
        .route("/lessons/{id}/{*path}", get(files::file))
        .route("/mirror/{*path}", get(mirror::mirror))
        .fallback(pages::not_found)
        .layer(RequestBodyLimitLayer::new(limits.max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .merge(console)
        // Outermost, so requests that time out are counted too; still after routing (every
        // `Router::layer` is), so the matched route is known.
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

/// The addresses phones can reach the server on: the bound address, or, when bound to all
/// interfaces, every IPv4 address of this machine's network cards that are up (not loopback).
pub fn lan_addresses(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut found: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback() && !i.is_link_local() && i.ip().is_ipv4() && i.is_oper_up())
        .map(|i| SocketAddr::new(i.ip(), bound.port()))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The URLs to show a technician when the server starts.
pub fn describe_listen(bound: SocketAddr) -> String {
    let urls: Vec<String> = lan_addresses(bound).iter().map(|a| format!("http://{a}/")).collect();
    if urls.is_empty() {
        format!("http://{bound}/ (no network card is up yet)")
    } else {
        urls.join(" and ")
    }
}
