//! The HTTP layer's error type, mapped to status codes in one place. Server errors say nothing
//! internal to the client; the cause is logged once here.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not acceptable")]
    NotAcceptable,
    /// The account's role does not allow this, or a form's CSRF token is wrong.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// This client already has as many requests in flight as it may; it should retry soon.
    #[error("busy")]
    Busy,
    #[error("{0}")]
    Internal(String),
}

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => HttpError::NotFound,
            ServiceError::Forbidden(why) => HttpError::Forbidden(why),
            ServiceError::Refused(why) => HttpError::BadRequest(why),
            other => HttpError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            HttpError::NotFound => return super::pages::not_found_page(),
            HttpError::BadRequest(why) => (StatusCode::BAD_REQUEST, why.clone()),
            HttpError::Forbidden(why) => (StatusCode::FORBIDDEN, why.clone()),
            HttpError::NotAcceptable => (StatusCode::NOT_ACCEPTABLE, "no acceptable content coding".to_owned()),
            HttpError::Busy => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [
                        (header::RETRY_AFTER, super::limits::RETRY_AFTER_SECS.to_string()),
                        (header::CACHE_CONTROL, "no-store".to_owned()),
                        (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
                    ],
                    super::pages::BUSY_TEXT,
                )
                    .into_response();
            }
            HttpError::Internal(cause) => {
                tracing::error!("internal error: {cause}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the server log has the details".to_owned(),
                )
            }
        };
        (status, [(header::CACHE_CONTROL, "no-store")], message).into_response()
    }
}
