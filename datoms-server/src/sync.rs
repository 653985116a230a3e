//! `GET /sync/{name}?have=COMMIT`: the head and every blob a replica at `have` lacks,
//! in one response ([`datoms_storage::bundle`]).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use serde::Deserialize;
use tracing::Span;

use crate::auth::{check, Access};
use crate::blobs::framed_response;
use crate::error::{parse_address, ApiError};
use crate::AppState;

/// The query of `GET /sync/{name}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SyncQuery {
    /// The commit the client's replica is at; absent for an empty replica.
    have: Option<String>,
}

/// `GET /sync/{name}?have=COMMIT`: a framed body of the blobs (the head's commit
/// first), the head in `Datoms-Head-Commit` / `Datoms-Head-Version` (and `ETag`), and
/// `Datoms-Sync-Complete: false` when the bundle was cut at the size limit.
pub(crate) async fn bundle(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<SyncQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    check(&state.config, &headers, Access::Read)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let have = query
        .have
        .as_deref()
        .filter(|h| !h.is_empty())
        .map(parse_address)
        .transpose()?;
    let bundle = state.bundles.bundle(&name, have).await?;
    let framed = http_wire::encode_frames(bundle.blobs.iter().map(|(a, b)| (*a, Some(&b[..]))))
        .map_err(|e| ApiError::Storage(e.to_string()))?;
    let span = Span::current();
    span.record("addresses", bundle.blobs.len());
    span.record("bytes", framed.len());
    let mut response = framed_response(framed);
    let h = response.headers_mut();
    let text = |s: &str| HeaderValue::from_str(s).map_err(|e| ApiError::Storage(e.to_string()));
    h.insert(
        HeaderName::from_static(http_wire::HEAD_COMMIT_HEADER),
        text(&bundle.head.commit.to_hex())?,
    );
    h.insert(
        HeaderName::from_static(http_wire::HEAD_VERSION_HEADER),
        text(&bundle.head.version.0)?,
    );
    h.insert(
        header::ETAG,
        text(&http_wire::etag(&bundle.head.version.0))?,
    );
    h.insert(
        HeaderName::from_static(http_wire::SYNC_COMPLETE_HEADER),
        HeaderValue::from_static(if bundle.complete { "true" } else { "false" }),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
