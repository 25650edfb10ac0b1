//! The console for teachers and technicians at `/admin`: login, lessons (upload, hide, show,
//! delete), usage figures, USB sticks (verify, import, export), sync, health, trusted keys,
//! field reports, accounts and the audit log. Every route but the login page needs a session;
//! every POST a CSRF token.

mod auth;
mod i18n;
mod layout;
mod lessons;
mod login;
mod sticks;
mod system;
mod usage;

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::AppState;
use crate::keys::PublicKey;
use crate::service::jobs::Jobs;
use crate::service::sync::SyncOptions;
use crate::service::upload::UnpackLimits;

/// What the console needs from the configuration.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub centre_name: String,
    /// Where USB sticks appear when plugged in.
    pub usb_roots: Vec<PathBuf>,
    pub trusted_keys: Vec<PublicKey>,
    /// The upstreams `sync now` syncs from, with the options of the scheduled syncs.
    pub upstreams: Vec<String>,
    pub sync: SyncOptions,
    /// Largest upload body accepted.
    pub max_upload: usize,
    pub unpack: UnpackLimits,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            centre_name: "dars".to_owned(),
            usb_roots: crate::config::Config::default().usb_roots,
            trusted_keys: Vec::new(),
            upstreams: Vec::new(),
            sync: SyncOptions::default(),
            max_upload: 256 << 20,
            unpack: UnpackLimits::default(),
        }
    }
}

/// The console's own state: its settings and the long jobs started from it.
#[derive(Debug, Default)]
pub struct Console {
    pub settings: ConsoleSettings,
    pub jobs: std::sync::Arc<Jobs>,
}

impl Console {
    pub fn new(settings: ConsoleSettings) -> Self {
        Console {
            settings,
            jobs: std::sync::Arc::default(),
        }
    }
}

/// The `/admin` routes, with their own body limit (uploads) and a longer timeout (an upload
/// over school Wi-Fi, then its import).
pub fn router(state: &AppState) -> Router<AppState> {
    let max_upload = state.console().settings.max_upload;
    Router::new()
        .route("/admin", get(lessons::home))
        .route("/admin/", get(lessons::home))
        .route("/admin/login", get(login::form).post(login::submit))
        .route("/admin/logout", post(login::logout))
        .route("/admin/lessons", get(lessons::list))
        .route("/admin/lessons/upload", post(lessons::upload))
        .route("/admin/lessons/{id}/hide", post(lessons::hide))
        .route("/admin/lessons/{id}/show", post(lessons::show))
        .route("/admin/lessons/{id}/delete", post(lessons::delete))
        .route("/admin/usage", get(usage::page))
        .route("/admin/sticks", get(sticks::list))
        .route("/admin/sticks/verify", post(sticks::verify))
        .route("/admin/sticks/import", post(sticks::import))
        .route("/admin/sticks/export", post(sticks::export))
        .route("/admin/jobs/{id}", get(sticks::job_page))
        .route("/admin/api/jobs/{id}", get(sticks::job_json))
        .route("/admin/progress.js", get(sticks::script))
        .route("/admin/system", get(system::page))
        .route("/admin/system/sync", post(system::sync_now))
        .route("/admin/system/verify", post(system::verify_store))
        .route("/admin/system/report", post(system::write_report))
        .route("/admin/accounts", get(system::accounts))
        .route("/admin/accounts/add", post(system::add_account))
        .route("/admin/accounts/{name}/remove", post(system::remove_account))
        .route("/admin/accounts/{name}/password", post(system::reset_password))
        .route("/admin/audit", get(system::audit))
        .route("/admin/{*rest}", get(layout::not_found).post(layout::not_found))
        .layer(axum::middleware::from_fn(remember_language))
        .layer(RequestBodyLimitLayer::new(max_upload.saturating_add(1 << 20)))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(600),
        ))
}

/// `?lang=xx` on any console page also sets the language cookie, so the choice sticks.
async fn remember_language(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let asked = i18n::Lang::asked(&parts);
    let mut response = next.run(axum::extract::Request::from_parts(parts, body)).await;
    if let Some(lang) = asked
        && let Ok(value) =
            axum::http::HeaderValue::from_str(&auth::set_cookie(auth::LANG_COOKIE, lang.code(), 365 * 86400))
    {
        response.headers_mut().append(axum::http::header::SET_COOKIE, value);
    }
    response
}
