//! Lesson files as DESIGN.md §5 requires: stored variants chosen from `Accept-Encoding`,
//! strong ETags, 304, HEAD, single ranges (206/416), and chunked streaming of large bodies.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::negotiate::{Coding, RangeRequest, choose_coding, if_range_allows, none_match, parse_range};
use super::{AppState, HttpError};
use crate::lesson::{check_relative_path, valid_id};
use crate::service::{BODY_LIMIT, UseKind};
use crate::store::{BlobInfo, CHUNK_SIZE, FileHit, Storage, Variant};

/// Lesson files may change with a new version; phones keep them this long before asking.
const CACHE_CONTROL: &str = "public, max-age=600";
/// Bodies up to this size are read in one go; larger ones stream chunk by chunk.
const STREAM_ABOVE: u64 = 4 * CHUNK_SIZE as u64;
/// A streamed body is read in pieces of this size (a quarter of a stored chunk), so each slow
/// phone holds at most this much of the server's memory: 250 phones reading a big file at
/// 2 KB/s took 91 MB with whole 256 KiB chunks (bench/load.sh (a)).
const STREAM_STEP: u64 = CHUNK_SIZE as u64 / 4;

/// `/lessons/{id}`: relative links in the entry page need the trailing slash.
pub async fn no_slash(Path(id): Path<String>) -> Result<Response, HttpError> {
    if !valid_id(&id) {
        return Err(HttpError::NotFound);
    }
    Ok(Redirect::permanent(&format!("/lessons/{id}/")).into_response())
}

/// `/lessons/{id}/`: the entry page (redirecting when it lives in a sub-folder, so its
/// relative links resolve).
pub async fn entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    if !valid_id(&id) {
        return Err(HttpError::NotFound);
    }
    let lesson = id.clone();
    let entry = state.blocking(move |lib| lib.entry_of(&lesson)).await?;
    let counts = method == Method::GET;
    if entry.contains('/') {
        // An entry page in a sub-folder is counted here: the page it redirects to is served
        // as an ordinary file.
        if counts {
            state.library().record_use(&id, UseKind::View);
        }
        return Ok(Redirect::temporary(&format!("/lessons/{id}/{entry}")).into_response());
    }
    let lesson = id.clone();
    let response = serve_file(state.clone(), id, entry, method, headers).await?;
    if counts && matches!(response.status(), StatusCode::OK | StatusCode::NOT_MODIFIED) {
        state.library().record_use(&lesson, UseKind::View);
    }
    Ok(response)
}

/// `/lessons/{id}/{path}`.
pub async fn file(
    State(state): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    if !valid_id(&id) || check_relative_path(&path).is_err() {
        return Err(HttpError::NotFound);
    }
    serve_file(state, id, path, method, headers).await
}

async fn serve_file(
    state: AppState,
    id: String,
    path: String,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let hit = match state.library().cached_file(&id, &path) {
        Some(hit) => hit,
        None => state.blocking(move |lib| lib.find_file(&id, &path)).await?,
    };
    respond(&state, hit, &method, &headers).await
}

/// The header value of a request header, if it is valid text.
fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What a response will carry, before the conditional and range headers are applied.
pub(super) struct Representation {
    pub etag: String,
    pub len: u64,
    pub media_type: String,
    pub content_encoding: Option<&'static str>,
    pub vary: bool,
    pub cache_control: &'static str,
}

/// The headers of a response, and either the status and byte range to send or a finished
/// bodiless response (304, 416, HEAD).
pub(super) enum Prepared {
    Send(StatusCode, Range<u64>, HeaderMap),
    Done(Response),
}

fn header_value(text: &str) -> Result<HeaderValue, HttpError> {
    HeaderValue::from_str(text).map_err(|e| HttpError::Internal(e.to_string()))
}

/// Applies `If-None-Match`, `If-Range`, `Range` and `HEAD` to a representation.
pub(super) fn prepare(rep: &Representation, method: &Method, headers: &HeaderMap) -> Result<Prepared, HttpError> {
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, header_value(&rep.etag)?);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(rep.cache_control));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if rep.vary {
        out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if none_match(text(headers, header::IF_NONE_MATCH), &rep.etag) {
        return Ok(Prepared::Done((StatusCode::NOT_MODIFIED, out).into_response()));
    }
    let len = rep.len;
    let range = if if_range_allows(text(headers, header::IF_RANGE), &rep.etag) {
        parse_range(text(headers, header::RANGE), len)
    } else {
        RangeRequest::Full
    };
    let (status, range) = match range {
        RangeRequest::Full => (StatusCode::OK, 0..len),
        RangeRequest::Partial(r) => {
            out.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{len}", r.start, r.end - 1))?,
            );
            (StatusCode::PARTIAL_CONTENT, r)
        }
        RangeRequest::Unsatisfiable => {
            out.insert(header::CONTENT_RANGE, header_value(&format!("bytes */{len}"))?);
            return Ok(Prepared::Done((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response()));
        }
    };
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&rep.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Some(encoding) = rep.content_encoding {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    if method == Method::HEAD {
        return Ok(Prepared::Done((status, out).into_response()));
    }
    Ok(Prepared::Send(status, range, out))
}

/// Builds the response for one stored file.
pub(super) async fn respond(
    state: &AppState,
    hit: FileHit,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, HttpError> {
    let blob = hit.blob;
    let available: &[Coding] = match blob.storage {
        // A zstd variant made with a publisher's dictionary cannot be decoded by clients.
        Storage::Text if blob.dict_id != 0 => &[Coding::Gzip, Coding::Identity],
        Storage::Text => &[Coding::Zstd, Coding::Gzip, Coding::Identity],
        Storage::Raw => &[Coding::Identity],
    };
    let coding = choose_coding(text(headers, header::ACCEPT_ENCODING), available).ok_or(HttpError::NotAcceptable)?;
    let (variant, suffix, content_encoding) = match coding {
        Coding::Zstd => (Variant::Zstd, "-zst", Some("zstd")),
        Coding::Gzip => (Variant::Gzip, "-gz", Some("gzip")),
        Coding::Identity => (Variant::Raw, "", None),
    };
    // Text imported moments ago may not have its stored gzip variant yet: it is made now,
    // byte for byte what the background worker stores (see service::variants).
    let fresh = if variant == Variant::Gzip && !blob.has_gzip() {
        Some(match state.library().cached_body(blob.hash, variant) {
            Some(body) => body,
            None => state.blocking(move |lib| lib.body(&blob, Variant::Gzip)).await?,
        })
    } else {
        None
    };
    let rep = Representation {
        etag: format!("\"{}{suffix}\"", blob.hash.short()),
        len: fresh.as_ref().map_or(blob.variant_len(variant), |b| b.len() as u64),
        media_type: hit.media_type,
        content_encoding,
        vary: blob.storage == Storage::Text,
        cache_control: CACHE_CONTROL,
    };
    match prepare(&rep, method, headers)? {
        Prepared::Done(response) => Ok(response),
        Prepared::Send(status, range, out) => {
            let body = match fresh {
                Some(whole) => Body::from(whole.slice(to_usize(range.start)..to_usize(range.end))),
                None => body(state, blob, variant, range).await?,
            };
            let mut response = (status, out).into_response();
            *response.body_mut() = body;
            Ok(response)
        }
    }
}

pub(super) async fn body(
    state: &AppState,
    blob: BlobInfo,
    variant: Variant,
    range: Range<u64>,
) -> Result<Body, HttpError> {
    let len = blob.variant_len(variant);
    if len <= BODY_LIMIT || (blob.storage == Storage::Text && variant == Variant::Raw) {
        // Small bodies (and identity of text, bounded in size at import) are read whole,
        // from the cache when they are there, and sliced.
        let whole = match state.library().cached_body(blob.hash, variant) {
            Some(body) => body,
            None => state.blocking(move |lib| lib.body(&blob, variant)).await?,
        };
        let range = to_usize(range.start).min(whole.len())..to_usize(range.end).min(whole.len());
        return Ok(Body::from(whole.slice(range)));
    }
    if range.end - range.start <= STREAM_ABOVE {
        let bytes = state.blocking(move |lib| lib.read(blob.hash, variant, range)).await?;
        return Ok(Body::from(bytes));
    }
    // Large bodies stream a piece at a time, so memory stays flat however big the file.
    let state = state.clone();
    let step = STREAM_STEP;
    let stream = futures_util::stream::unfold(range.start, move |at| {
        let state = state.clone();
        let end = range.end;
        async move {
            if at >= end {
                return None;
            }
            let next = ((at / step + 1) * step).min(end);
            let piece = state.blocking(move |lib| lib.read(blob.hash, variant, at..next)).await;
            Some((piece.map_err(|e| std::io::Error::other(e.to_string())), next))
        }
    });
    Ok(Body::from_stream(stream))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
