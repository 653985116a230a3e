//! What a failed S3 request means for us: absent, precondition failed, worth retrying,
//! or permanent. The SDK's own retries are off; [`crate::S3Storage`] retries by this
//! classification, so the request counters see every attempt.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use datoms_storage::StorageError;

/// The classes of failure the storage treats differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 404 `NoSuchKey`: the object is absent.
    NotFound,
    /// 412: a conditional write's precondition does not hold.
    Precondition,
    /// Throttling, 5xx, timeouts, dropped connections: retry later.
    Transient,
    /// Anything else (403, 400, `NoSuchBucket`…): retrying will not help.
    Permanent,
}

/// One failed attempt, classified, with what the server said.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub kind: Kind,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub detail: String,
}

/// S3 error codes that mean "slow down" or "try again", whatever their status.
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
    // Two conditional writes on one key in flight at once (AWS answers one with 409):
    // the retry gets a definite 200 or 412.
    "ConditionalRequestConflict",
];

impl Failure {
    /// Classifies an SDK error.
    pub fn from_sdk<E>(err: &SdkError<E>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let detail = DisplayErrorContext(err).to_string();
        let kind = match err {
            SdkError::ConstructionFailure(_) => Kind::Permanent,
            SdkError::TimeoutError(_) => Kind::Transient,
            SdkError::DispatchFailure(d) if d.is_user() => Kind::Permanent,
            SdkError::DispatchFailure(_) => Kind::Transient,
            // A response that could not be read or parsed: a connection cut mid-body,
            // or a proxy's garbled answer. The status, if any, decides; else retry.
            SdkError::ResponseError(_) => match status {
                Some(s) => classify_status(s, code.as_deref()),
                None => Kind::Transient,
            },
            SdkError::ServiceError(_) => match status {
                Some(s) => classify_status(s, code.as_deref()),
                None => Kind::Permanent,
            },
            _ => Kind::Permanent,
        };
        Failure {
            kind,
            status,
            code,
            detail,
        }
    }

    /// A transient failure outside the SDK (a response body cut short).
    pub fn transient(detail: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Transient,
            status: None,
            code: None,
            detail: detail.into(),
        }
    }

    /// A permanent failure outside the SDK (a response that breaks the protocol).
    pub fn permanent(detail: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Permanent,
            status: None,
            code: None,
            detail: detail.into(),
        }
    }

    /// The storage error for this failure of `op` on `location` (`s3://bucket/key`),
    /// after `attempts` tries.
    pub fn into_storage_error(self, op: &str, location: &str, attempts: u32) -> StorageError {
        let what = match (self.status, &self.code) {
            (Some(s), Some(c)) => format!("HTTP {s} {c}"),
            (Some(s), None) => format!("HTTP {s}"),
            (None, Some(c)) => c.clone(),
            (None, None) => "no response".to_owned(),
        };
        let reason = format!("S3 {op} {location}: {what}: {}", self.detail);
        match self.kind {
            Kind::Transient => StorageError::Transient {
                reason: format!("{reason} (gave up after {attempts} attempts)"),
            },
            _ => StorageError::Backend { reason },
        }
    }
}

/// The class of an HTTP status and S3 error code.
pub(crate) fn classify_status(status: u16, code: Option<&str>) -> Kind {
    if code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
        return Kind::Transient;
    }
    match status {
        // A 404 on a missing bucket is a configuration error, not an absent object.
        404 if code.is_none_or(|c| c == "NoSuchKey" || c == "NotFound") => Kind::NotFound,
        412 => Kind::Precondition,
        408 | 429 => Kind::Transient,
        s if s >= 500 => Kind::Transient,
        _ => Kind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient() {
        for (status, code) in [
            (503, Some("SlowDown")),
            (503, None),
            (500, Some("InternalError")),
            (502, None),
            (504, None),
            (429, None),
            (408, None),
            (400, Some("RequestTimeout")),
            (400, Some("ThrottlingException")),
            (409, Some("ConditionalRequestConflict")),
            (409, Some("OperationAborted")),
        ] {
            assert_eq!(
                classify_status(status, code),
                Kind::Transient,
                "{status} {code:?}"
            );
        }
    }

    #[test]
    fn other_client_errors_are_permanent() {
        for (status, code) in [
            (403, Some("AccessDenied")),
            (403, Some("SignatureDoesNotMatch")),
            (400, Some("InvalidArgument")),
            (400, Some("InvalidBucketName")),
            (404, Some("NoSuchBucket")),
            (409, Some("BucketAlreadyExists")),
            (301, Some("PermanentRedirect")),
            (501, Some("NotImplemented")),
        ] {
            let expected = if status >= 500 {
                Kind::Transient
            } else {
                Kind::Permanent
            };
            assert_eq!(classify_status(status, code), expected, "{status} {code:?}");
        }
    }

    #[test]
    fn missing_keys_and_failed_preconditions_have_their_own_class() {
        assert_eq!(classify_status(404, Some("NoSuchKey")), Kind::NotFound);
        assert_eq!(classify_status(404, None), Kind::NotFound);
        assert_eq!(
            classify_status(412, Some("PreconditionFailed")),
            Kind::Precondition
        );
    }

    #[test]
    fn storage_errors_name_the_key_and_the_status() {
        let f = Failure {
            kind: Kind::Permanent,
            status: Some(403),
            code: Some("AccessDenied".into()),
            detail: "denied".into(),
        };
        match f.into_storage_error("GET", "s3://b/p/nodes/ab", 1) {
            StorageError::Backend { reason } => {
                assert!(reason.contains("s3://b/p/nodes/ab"), "{reason}");
                assert!(reason.contains("403 AccessDenied"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let t = Failure::transient("reset").into_storage_error("PUT", "s3://b/k", 5);
        assert!(t.is_transient());
        assert!(t.to_string().contains("after 5 attempts"), "{t}");
    }
}
