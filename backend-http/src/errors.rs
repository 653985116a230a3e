//! HTTP answers and transport failures as [`StorageError`]s.

use datoms_storage::{Head, StorageError, Version};
use http_wire::{ErrorBody, HeadJson};
use reqwest::StatusCode;

/// A head from its JSON.
pub(crate) fn head_of(json: &HeadJson) -> Result<Head, StorageError> {
    Ok(Head {
        commit: json.commit.parse().map_err(|_| {
            StorageError::backend(format!(
                "the server named commit {:?}, not a 64-digit hex address",
                json.commit
            ))
        })?,
        version: Version(json.version.clone()),
    })
}

/// A request that did not get an answer: a timeout or a failed connection is worth
/// retrying, anything else (a URL the client cannot build…) is not.
pub(crate) fn transport(what: &str, e: &reqwest::Error) -> StorageError {
    if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() || e.is_decode() {
        StorageError::Transient {
            reason: format!("{what}: {e}"),
        }
    } else {
        StorageError::backend(format!("{what}: {e}"))
    }
}

/// True for the failures a repeatable request is repeated after.
pub(crate) fn worth_repeating(result: &Result<reqwest::Response, reqwest::Error>) -> bool {
    match result {
        Ok(r) => r.status().is_server_error(),
        Err(e) => e.is_timeout() || e.is_connect() || e.is_request(),
    }
}

/// The status and typed body of an answer that is not a success (`None` when the body
/// is not the server's JSON: a proxy's page, a cut connection).
pub(crate) async fn read_error(response: reqwest::Response) -> (StatusCode, Option<ErrorBody>) {
    let status = response.status();
    (status, response.json().await.ok())
}

/// The error of an answer that is not a success: the server's typed body mapped to the
/// storage error it stands for.
pub(crate) async fn answer_error(
    what: &str,
    base: &str,
    response: reqwest::Response,
) -> StorageError {
    let (status, body) = read_error(response).await;
    map_error(what, base, status, body)
}

/// [`answer_error`] of a read answer.
pub(crate) fn map_error(
    what: &str,
    base: &str,
    status: StatusCode,
    body: Option<ErrorBody>,
) -> StorageError {
    let (kind, message) = match &body {
        Some(b) => (b.error.as_str(), b.message.clone()),
        None => ("", format!("HTTP {status}")),
    };
    let reason = format!("{what}: {message} (HTTP {}, {base})", status.as_u16());
    match (status, kind) {
        (StatusCode::PRECONDITION_FAILED, "head_conflict") => {
            let current = body.and_then(|b| b.current).flatten();
            match current.as_ref().map(head_of).transpose() {
                Ok(current) => StorageError::HeadConflict {
                    name: what.to_owned(),
                    current,
                },
                Err(e) => e,
            }
        }
        (StatusCode::FORBIDDEN, "read_only") => StorageError::ReadOnly {
            what: format!("the server at {base}"),
            operation: what.to_owned(),
        },
        (_, "corrupt_storage") => StorageError::Corrupt {
            what: format!("the storage of the server at {base}"),
            reason: message,
        },
        (s, _) if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            StorageError::Transient { reason }
        }
        _ => StorageError::backend(reason),
    }
}
