//! The head routes: read with an `ETag`, move by compare-and-swap.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use datoms_storage::{Head, Version};
use http_wire::PutHeadJson;

use crate::auth::{check, Access};
use crate::error::{body_error, head_json, parse_address, ApiError};
use crate::AppState;

/// A head as the response: its JSON and `ETag: "<version>"`.
pub(crate) fn head_response(head: &Head) -> Response {
    let mut response = Json(head_json(head)).into_response();
    if let Ok(v) = HeaderValue::from_str(&http_wire::etag(&head.version.0)) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /heads/{name}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check(&state.config, &headers, Access::Read)?;
    let head = state
        .storage
        .get_head(&name)
        .await?
        .ok_or(ApiError::NoHead(name))?;
    Ok(head_response(&head))
}

/// `GET /heads`: every head, in name order.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check(&state.config, &headers, Access::Read)?;
    let heads = state.storage.list_heads().await?;
    let listed = http_wire::HeadListJson {
        heads: heads
            .iter()
            .map(|(name, head)| http_wire::NamedHeadJson {
                name: name.clone(),
                commit: head.commit.to_hex(),
                version: head.version.0.clone(),
            })
            .collect(),
    };
    let mut response = Json(listed).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `DELETE /heads/{name}` with `If-Match: "<version>"`: the compare-and-delete. 204;
/// 412 with the current head (or `null`) on conflict.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check(&state.config, &headers, Access::Write)?;
    let Some(expected) = expected(&headers)? else {
        return Err(ApiError::BadRequest(
            "a head delete takes If-Match: \"<version>\", not If-None-Match".into(),
        ));
    };
    state.storage.delete_head(&name, &expected).await?;
    tracing::info!(head = %name, "head deleted");
    // Nobody listening is fine.
    let _ = state.moves.send(name);
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// What a `PUT /heads/{name}` expects.
fn expected(headers: &HeaderMap) -> Result<Option<Version>, ApiError> {
    let text = |h: header::HeaderName| {
        headers
            .get(h)
            .map(|v| {
                v.to_str().map_err(|_| {
                    ApiError::BadRequest("a precondition header that is not text".into())
                })
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(version), None) => Ok(Some(Version(http_wire::unquote(version).to_owned()))),
        (None, Some("*")) => Ok(None),
        (None, Some(other)) => Err(ApiError::BadRequest(format!(
            "If-None-Match on a head must be *, not {other:?}"
        ))),
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give If-Match or If-None-Match, not both".into(),
        )),
        (None, None) => Err(ApiError::PreconditionRequired),
    }
}

/// `PUT /heads/{name}`: body `{"commit": "<address>"}`, `If-Match: "<version>"` or
/// `If-None-Match: *`. 200 with the new head; 412 with the current one on conflict.
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check(&state.config, &headers, Access::Write)?;
    let expected = expected(&headers)?;
    let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
    let put: PutHeadJson = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be {{\"commit\": \"<64 hex digits>\"}}: {e}"
        ))
    })?;
    let commit = parse_address(&put.commit)?;
    let version = state
        .storage
        .cas_head(&name, expected.as_ref(), commit)
        .await?;
    tracing::info!(head = %name, %commit, version = %version, "head moved");
    // Nobody listening is fine.
    let _ = state.moves.send(name);
    Ok(head_response(&Head { commit, version }))
}
