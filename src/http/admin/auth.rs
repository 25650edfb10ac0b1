//! Who is asking: the session cookie, looked up server-side; the CSRF token every POST must
//! carry; the role a page needs. Requests without a session are refused here, before any
//! handler runs.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::i18n::Lang;
use crate::http::{AppState, HttpError};
use crate::service::{Role, Session};

/// The session cookie: HttpOnly, SameSite=Strict, only sent to /admin.
pub const SESSION_COOKIE: &str = "dars_session";
/// The login form's own CSRF token (there is no session yet): the same value in a cookie and
/// in the form (double submit).
pub const LOGIN_COOKIE: &str = "dars_login";
/// The console language chosen with `?lang=`.
pub const LANG_COOKIE: &str = "dars_lang";

/// A form body is at most this big (uploads are multipart and read separately).
const FORM_LIMIT: usize = 64 * 1024;

pub use crate::http::negotiate::cookie;

/// A `Set-Cookie` value for the console's cookies.
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A logged-in account, with the language its pages are shown in.
#[derive(Debug, Clone)]
pub struct Admin {
    pub session: Session,
    pub lang: Lang,
}

impl Admin {
    /// Refuses (403) unless the account has `role` (technicians also hold every teacher's right).
    pub fn require(&self, role: Role) -> Result<(), HttpError> {
        if self.session.role >= role {
            Ok(())
        } else {
            Err(HttpError::Forbidden(format!(
                "this needs a {} account; {} is a {}",
                role.as_str(),
                self.session.account,
                self.session.role.as_str()
            )))
        }
    }

    pub fn is_technician(&self) -> bool {
        self.session.role == Role::Technician
    }

    /// Refuses (403) unless `token` is this session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), HttpError> {
        if same_token(token, &self.session.csrf) {
            Ok(())
        } else {
            Err(HttpError::Forbidden(
                "the form's security token is missing or out of date; reload the page and try again".to_owned(),
            ))
        }
    }
}

/// Why a request has no session: GET pages go to the login page, anything else gets 401.
#[derive(Debug)]
pub enum NoSession {
    Redirect,
    Unauthorized,
    Failed(HttpError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::Redirect => Redirect::to("/admin/login").into_response(),
            NoSession::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::CACHE_CONTROL, "no-store")],
                "log in first at /admin/login",
            )
                .into_response(),
            NoSession::Failed(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = Lang::of(parts);
        let refuse = if parts.method == Method::GET || parts.method == Method::HEAD {
            NoSession::Redirect
        } else {
            NoSession::Unauthorized
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(refuse);
        };
        match state.blocking(move |lib| lib.session(&token)).await {
            Ok(Some(session)) => Ok(Admin { session, lang }),
            Ok(None) => Err(refuse),
            Err(e) => Err(NoSession::Failed(e)),
        }
    }
}

/// A POSTed form of a logged-in account whose CSRF token (field `csrf`) checked out.
#[derive(Debug)]
pub struct Posted<T> {
    pub admin: Admin,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| HttpError::BadRequest("the form is too large".to_owned()).into_response())?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let token = pairs.iter().find(|(k, _)| k == "csrf").map_or("", |(_, v)| v.as_str());
        admin.check_csrf(token).map_err(IntoResponse::into_response)?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| HttpError::BadRequest(format!("the form is incomplete: {e}")).into_response())?;
        Ok(Posted { admin, form })
    }
}
