//! [`ApiError`]: every failure of a request, answered as a typed JSON body
//! `{"error": "<kind>", "message": "…"}` with a fitting status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use datoms_storage::{Head, StorageError};
use http_wire::{ErrorBody, HeadJson};

/// Why a request failed. Each variant is one `error` kind of the JSON body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// `not_found` (404): the blob is not stored.
    #[error("blob {0} is not stored")]
    BlobNotFound(String),
    /// `no_route` (404): no such route.
    #[error("{0}")]
    NotFound(String),
    /// `method_not_allowed` (405): the route exists, not with this method.
    #[error("this route does not take that method")]
    MethodNotAllowed,
    /// `no_head` (404): the head does not exist.
    #[error("head {0:?} does not exist")]
    NoHead(String),
    /// `bad_address` (400): text that is not a 64-digit lowercase-hex address.
    #[error("{0:?} is not a 64-digit hex address")]
    BadAddress(String),
    /// `bad_request` (400): a malformed body, query or header.
    #[error("{0}")]
    BadRequest(String),
    /// `corrupt_blob` (400): uploaded bytes that do not hash to their address.
    #[error("the bytes given for blob {0} do not hash to it")]
    CorruptBlob(String),
    /// `batch_too_large` (413): more addresses or blobs than the server takes at once.
    #[error("{given} entries in one request; the most is {max}")]
    BatchTooLarge {
        /// Entries given.
        given: usize,
        /// The limit.
        max: usize,
    },
    /// `body_too_large` (413): a body over the limit.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// `unauthorized` (401): no or a wrong bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// `read_only` (403): a write to a server started without a token file.
    #[error("this server takes no writes (it was started without --token-file)")]
    ReadOnly,
    /// `precondition_required` (428): a head PUT without `If-Match` or `If-None-Match: *`.
    #[error("moving a head needs If-Match: <version> or If-None-Match: *")]
    PreconditionRequired,
    /// `head_conflict` (412): the head is not at the version the CAS named.
    #[error("head {name:?} is not at the expected version")]
    HeadConflict {
        /// The head.
        name: String,
        /// Where it is now.
        current: Option<Head>,
    },
    /// `unavailable` (503): the storage failed in a way worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// `storage` (500): the storage failed.
    #[error("storage failure: {0}")]
    Storage(String),
    /// `corrupt_storage` (500): the server's own storage holds damaged data.
    #[error("{0}")]
    CorruptStorage(String),
}

/// A head as JSON.
pub(crate) fn head_json(h: &Head) -> HeadJson {
    HeadJson {
        commit: h.commit.to_hex(),
        version: h.version.0.clone(),
    }
}

impl ApiError {
    /// The `error` kind and the status.
    pub fn kind(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::BlobNotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            ApiError::NotFound(_) => ("no_route", StatusCode::NOT_FOUND),
            ApiError::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            ApiError::NoHead(_) => ("no_head", StatusCode::NOT_FOUND),
            ApiError::BadAddress(_) => ("bad_address", StatusCode::BAD_REQUEST),
            ApiError::BadRequest(_) => ("bad_request", StatusCode::BAD_REQUEST),
            ApiError::CorruptBlob(_) => ("corrupt_blob", StatusCode::BAD_REQUEST),
            ApiError::BatchTooLarge { .. } => ("batch_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::BodyTooLarge(_) => ("body_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::Unauthorized(_) => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::ReadOnly => ("read_only", StatusCode::FORBIDDEN),
            ApiError::PreconditionRequired => {
                ("precondition_required", StatusCode::PRECONDITION_REQUIRED)
            }
            ApiError::HeadConflict { .. } => ("head_conflict", StatusCode::PRECONDITION_FAILED),
            ApiError::Unavailable(_) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Storage(_) => ("storage", StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::CorruptStorage(_) => ("corrupt_storage", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::NoHead { name } => ApiError::NoHead(name),
            StorageError::NotFound { address } => ApiError::BlobNotFound(address.to_hex()),
            StorageError::HeadConflict { name, current } => {
                ApiError::HeadConflict { name, current }
            }
            StorageError::ReadOnly { .. } => ApiError::ReadOnly,
            e @ StorageError::Transient { .. } => ApiError::Unavailable(e.to_string()),
            e @ (StorageError::Corrupt { .. } | StorageError::Core(_)) => {
                ApiError::CorruptStorage(e.to_string())
            }
            e => ApiError::Storage(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (kind, status) = self.kind();
        if status.is_server_error() {
            tracing::warn!(error = kind, message = %self, "request failed");
        } else {
            tracing::debug!(error = kind, message = %self, "request refused");
        }
        let current = match &self {
            ApiError::HeadConflict { current, .. } => Some(current.as_ref().map(head_json)),
            _ => None,
        };
        let body = ErrorBody {
            error: kind.to_owned(),
            message: self.to_string(),
            current,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// A body the `Bytes` extractor refused: too large, or not readable.
pub(crate) fn body_error(e: axum::extract::rejection::BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::BodyTooLarge(limit)
    } else {
        ApiError::BadRequest(format!("cannot read the request body: {e}"))
    }
}

/// An address from its text.
pub(crate) fn parse_address(text: &str) -> Result<datoms_core::Address, ApiError> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::BadAddress(text.to_owned()));
    }
    text.parse()
        .map_err(|_| ApiError::BadAddress(text.to_owned()))
}
