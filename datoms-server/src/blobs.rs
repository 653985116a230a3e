//! The blob routes: immutable, content-addressed, cached forever.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use datoms_core::Address;
use datoms_storage::batch::{get_batched, put_batched};
use datoms_storage::BlobStamp;
use datoms_storage::Storage;
use http_wire::{AddressList, BlobStampJson, BlobStampList, DeleteStaleJson};
use serde::Deserialize;
use tracing::Span;

use crate::auth::{check, Access};
use crate::error::{body_error, parse_address, ApiError};
use crate::AppState;

/// How browsers and CDNs may cache a blob: forever, it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Records what a request moved in its span.
fn record(addresses: usize, bytes: usize) {
    let span = Span::current();
    span.record("addresses", addresses);
    span.record("bytes", bytes);
}

/// `GET /blobs/{address}`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    Path(address): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check(&state.config, &headers, Access::Read)?;
    let address = parse_address(&address)?;
    let etag = http_wire::etag(&address.to_hex());
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || http_wire::unquote(t) == address.to_hex())
        });
    let blob = state
        .storage
        .get_many(&[address])
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| ApiError::BlobNotFound(address.to_hex()))?;
    let mut response = if cached {
        record(1, 0);
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        record(1, blob.len());
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            blob,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

/// A batched request's address list, checked against the batch limit.
fn address_list(body: &[u8], max_batch: usize) -> Result<Vec<Address>, ApiError> {
    let list: AddressList = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be {{\"addresses\": [\"<64 hex digits>\", …]}}: {e}"
        ))
    })?;
    if list.addresses.len() > max_batch {
        return Err(ApiError::BatchTooLarge {
            given: list.addresses.len(),
            max: max_batch,
        });
    }
    list.parse().map_err(ApiError::BadAddress)
}

/// `POST /blobs:get`: a framed response, one entry per address in request order.
pub(crate) async fn get_many(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check(&state.config, &headers, Access::Read)?;
    let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
    let addresses = address_list(&body, state.config.max_batch)?;
    let blobs = get_batched(&*state.storage, &addresses).await?;
    let framed = http_wire::encode_frames(
        addresses
            .iter()
            .zip(&blobs)
            .map(|(a, b)| (*a, b.as_deref())),
    )
    .map_err(|e| ApiError::Storage(e.to_string()))?;
    record(addresses.len(), framed.len());
    Ok(framed_response(framed))
}

/// A framed body as a response.
pub(crate) fn framed_response(body: bytes::Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(http_wire::FRAMED_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

/// `POST /blobs`: stores framed blobs, each checked against its address first (nothing
/// is written when one fails).
pub(crate) async fn put_many(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    check(&state.config, &headers, Access::Write)?;
    let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
    let size = body.len();
    let frames = http_wire::decode_frames(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if frames.len() > state.config.max_batch {
        return Err(ApiError::BatchTooLarge {
            given: frames.len(),
            max: state.config.max_batch,
        });
    }
    let mut blobs = Vec::with_capacity(frames.len());
    for (address, blob) in frames {
        let blob = blob.ok_or_else(|| {
            ApiError::BadRequest(format!("blob {address} is marked missing in a write"))
        })?;
        if address.verify(&blob).is_err() {
            return Err(ApiError::CorruptBlob(address.to_hex()));
        }
        blobs.push((address, blob));
    }
    record(blobs.len(), size);
    put_batched(&*state.storage, &blobs).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /blobs/{address}`: one blob, raw bytes.
pub(crate) async fn put_one(
    State(state): State<AppState>,
    Path(address): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    check(&state.config, &headers, Access::Write)?;
    let address = parse_address(&address)?;
    let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
    if address.verify(&body).is_err() {
        return Err(ApiError::CorruptBlob(address.to_hex()));
    }
    record(1, body.len());
    state.storage.put_many(&[(address, body)]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query of `GET /blobs`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /blobs?after=ADDRESS&limit=N`: a page of the listing, `{"addresses": […]}`
/// (an empty page ends it). `limit` is capped at the batch limit.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AddressList>, ApiError> {
    check(&state.config, &headers, Access::Read)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let after = query.after.as_deref().map(parse_address).transpose()?;
    let limit = query
        .limit
        .unwrap_or(state.config.max_batch)
        .min(state.config.max_batch);
    let page = state.storage.list_blobs(after, limit).await?;
    record(page.len(), 0);
    Ok(Json(AddressList::of(&page)))
}

/// `POST /blobs:delete`: deletes blobs (absent ones are ignored).
pub(crate) async fn delete_many(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    check(&state.config, &headers, Access::Write)?;
    let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
    let addresses = address_list(&body, state.config.max_batch)?;
    record(addresses.len(), 0);
    state.storage.delete_many(&addresses).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /blobs:stamps?after=ADDRESS&limit=N`: a page of the listing with write stamps and
/// sizes, for garbage collection (write token: only a collector needs it).
pub(crate) async fn list_stamps(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BlobStampList>, ApiError> {
    check(&state.config, &headers, Access::Write)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let after = query.after.as_deref().map(parse_address).transpose()?;
    let limit = query
        .limit
        .unwrap_or(state.config.max_batch)
        .min(state.config.max_batch);
    let page = state.storage.list_blob_stamps(after, limit).await?;
    record(page.len(), 0);
    Ok(Json(BlobStampList {
        blobs: page
            .iter()
            .map(|s| BlobStampJson {
                address: s.address.to_hex(),
                written_ms: BlobStamp::millis(s.written),
                len: s.len,
            })
            .collect(),
    }))
}

/// `POST /blobs:delete-stale`: deletes the listed blobs still written before the given
/// time, answering those it deleted.
pub(crate) async fn delete_stale(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AddressList>, ApiError> {
    check(&state.config, &headers, Access::Write)?;
    let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
    let request: DeleteStaleJson = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be {{\"addresses\": [\"<64 hex digits>\", …], \
             \"written_before_ms\": <milliseconds since the Unix epoch>}}: {e}"
        ))
    })?;
    if request.addresses.len() > state.config.max_batch {
        return Err(ApiError::BatchTooLarge {
            given: request.addresses.len(),
            max: state.config.max_batch,
        });
    }
    let addresses = AddressList {
        addresses: request.addresses,
    }
    .parse()
    .map_err(ApiError::BadAddress)?;
    record(addresses.len(), 0);
    let deleted = state
        .storage
        .delete_stale(
            &addresses,
            BlobStamp::from_millis(request.written_before_ms),
        )
        .await?;
    Ok(Json(AddressList::of(&deleted)))
}
