//! Logging in and out. The login form carries its own CSRF token (double submit: the same
//! random value in a cookie and in the form), since there is no session yet.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::auth::{Admin, LOGIN_COOKIE, Posted, SESSION_COOKIE, cookie, same_token, set_cookie};
use super::i18n::{Lang, S};
use super::layout::{page, send};
use crate::http::{AppState, HttpError};
use crate::service::ServiceError;
use crate::service::accounts::random_token;

fn login_page(lang: Lang, token: &str, status: StatusCode, message: Option<&str>) -> Response {
    let body = html! {
        p.muted { (lang.t(S::login_help)) }
        @if let Some(message) = message { p.err role="alert" { (message) } }
        form method="post" action="/admin/login" {
            input type="hidden" name="csrf" value=(token);
            label { (lang.t(S::account_name)) input type="text" name="name" autocomplete="username" autocapitalize="none" required; }
            label { (lang.t(S::password)) input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { (lang.t(S::log_in)) }
        }
    };
    let mut response = send(status, page(None, lang, lang.t(S::login_title), body));
    if let Ok(value) = HeaderValue::from_str(&set_cookie(LOGIN_COOKIE, token, 3600)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /admin/login`.
pub async fn form(parts: Parts) -> Result<Response, HttpError> {
    let token = random_token()?;
    Ok(login_page(Lang::of(&parts), &token, StatusCode::OK, None))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// `POST /admin/login`: 303 to the console with a session cookie, 401 with the form again on
/// a wrong password, 429 with `Retry-After` while the address or the account is locked out.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
    axum::Form(form): axum::Form<LoginForm>,
) -> Result<Response, HttpError> {
    let lang = Lang::of(&parts);
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if !same_token(&form.csrf, expected) {
        return Err(HttpError::Forbidden(
            "the login form's security token is missing or out of date; reload the login page".to_owned(),
        ));
    }
    let client = peer.ip();
    let result = state
        .blocking(move |lib| match lib.login(&form.name, &form.password, client) {
            Err(e @ (ServiceError::WrongPassword | ServiceError::Throttled(_))) => Ok(Err(e)),
            other => other.map(Ok),
        })
        .await?;
    let token = random_token()?;
    match result {
        Ok(new) => {
            let mut response = Redirect::to("/admin/lessons").into_response();
            let headers = response.headers_mut();
            append_cookie(headers, &set_cookie(SESSION_COOKIE, &new.token, new.max_age_secs));
            append_cookie(headers, &set_cookie(LOGIN_COOKIE, "", 0));
            Ok(response)
        }
        Err(ServiceError::Throttled(secs)) => {
            let message = lang.t(S::throttled).replace("{n}", &secs.to_string());
            let mut response = login_page(lang, &token, StatusCode::TOO_MANY_REQUESTS, Some(&message));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            Ok(response)
        }
        Err(_) => Ok(login_page(
            lang,
            &token,
            StatusCode::UNAUTHORIZED,
            Some(lang.t(S::wrong_password)),
        )),
    }
}

fn append_cookie(headers: &mut HeaderMap, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.append(header::SET_COOKIE, value);
    }
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// `POST /admin/logout`: ends the session server-side and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Posted<Nothing>,
) -> Result<Response, HttpError> {
    let Admin { .. } = posted.admin;
    if let Some(token) = cookie(&headers, SESSION_COOKIE).map(str::to_owned) {
        state.blocking(move |lib| lib.logout(&token)).await?;
    }
    let mut response = Redirect::to("/admin/login").into_response();
    append_cookie(response.headers_mut(), &set_cookie(SESSION_COOKIE, "", 0));
    Ok(response)
}
