//! `/mirror/`: everything this server holds, in the package format (DESIGN.md §4), so another
//! dars syncs from it exactly as from a published folder: signed manifests as received,
//! blobs as stored, with Range and ETag and no recompression.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};

use super::files::{Prepared, Representation, body, prepare};
use super::{AppState, HttpError};
use crate::package::{Encoding, INDEX_FILE};
use crate::store::{Hash, Storage, Variant};

/// The index changes with every import; blobs never change under their name.
const INDEX_CACHE: &str = "no-cache";
const BLOB_CACHE: &str = "public, max-age=31536000, immutable";

pub async fn mirror(
    State(state): State<AppState>,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let plan = state.blocking(|lib| lib.mirror_plan()).await?;
    let document = if path == INDEX_FILE {
        Some(plan.index_bytes())
    } else {
        plan.documents.get(&path).or_else(|| plan.dicts.get(&path)).cloned()
    };
    if let Some(bytes) = document {
        let rep = Representation {
            etag: format!("\"{}\"", Hash::of(&bytes).short()),
            len: bytes.len() as u64,
            media_type: if path.ends_with(".json") {
                "application/json"
            } else {
                "application/octet-stream"
            }
            .to_owned(),
            content_encoding: None,
            vary: false,
            // Lesson parts are named by their hash, like blobs: they never change.
            cache_control: if path.starts_with("lessons/") {
                BLOB_CACHE
            } else {
                INDEX_CACHE
            },
        };
        return Ok(match prepare(&rep, &method, &headers)? {
            Prepared::Done(response) => response,
            Prepared::Send(status, range, out) => {
                let slice = bytes[to_usize(range.start)..to_usize(range.end)].to_vec();
                (status, out, slice).into_response()
            }
        });
    }
    let (hash, part) = parse_blob_path(&path).ok_or(HttpError::NotFound)?;
    let (info, encoding) = *plan.blobs.get(&hash).ok_or(HttpError::NotFound)?;
    // Parts exist on FAT32 sticks; over HTTP a peer may also ask for them by name.
    let part_size = plan.index.part_size;
    let direct = match (encoding, info.storage) {
        (Encoding::Zstd, Storage::Text) => Some((Variant::Zstd, info.zstd_size)),
        (Encoding::Raw, Storage::Raw) => Some((Variant::Raw, info.size)),
        _ => None,
    };
    let total = match direct {
        Some((_, len)) => len,
        None => state
            .blocking(move |lib| lib.mirror_blob(&info, encoding, None))
            .await?
            .len() as u64,
    };
    let parts = crate::package::part_count(total, part_size);
    let (offset, len) = match part {
        None if parts == 1 => (0, total),
        Some(n) if parts > 1 && (1..=parts).contains(&n) => {
            let start = (n - 1) * part_size;
            (start, part_size.min(total - start))
        }
        _ => return Err(HttpError::NotFound),
    };
    let rep = Representation {
        etag: format!(
            "\"{}-{}-{}\"",
            hash.short(),
            if encoding == Encoding::Zstd { "z" } else { "r" },
            part.unwrap_or(0)
        ),
        len,
        media_type: "application/octet-stream".to_owned(),
        content_encoding: None,
        vary: false,
        cache_control: BLOB_CACHE,
    };
    match prepare(&rep, &method, &headers)? {
        Prepared::Done(response) => Ok(response),
        Prepared::Send(status, range, out) => {
            let absolute = offset + range.start..offset + range.end;
            let body = match direct {
                Some((variant, _)) => body(&state, info, variant, absolute).await?,
                None => Body::from(
                    state
                        .blocking(move |lib| lib.mirror_blob(&info, encoding, Some(absolute)))
                        .await?,
                ),
            };
            let mut response = (status, out).into_response();
            *response.body_mut() = body;
            Ok(response)
        }
    }
}

/// `blobs/ab/<64 hex>` or `blobs/ab/<64 hex>.<n>`.
fn parse_blob_path(path: &str) -> Option<(Hash, Option<u64>)> {
    let rest = path.strip_prefix("blobs/")?;
    let (prefix, name) = rest.split_once('/')?;
    let (hex, part) = match name.split_once('.') {
        Some((hex, n)) => (hex, Some(n.parse::<u64>().ok().filter(|n| *n > 0)?)),
        None => (name, None),
    };
    let hash = Hash::from_hex(hex).filter(|_| hex.len() == 64 && hex.starts_with(prefix) && prefix.len() == 2)?;
    Some((hash, part))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
