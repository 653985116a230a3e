//! What can go wrong in a replica, by cause.

use datoms_core::Address;

/// An error of the replica: a request that failed, a remote answer that is not what the
/// HTTP API promises, a bad query or input, or a blob that fails verification (reported by
/// datoms-core's restore machine as [`datoms_core::Error::Corrupt`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// Restore, verification, query, pull or EDN errors from datoms-core.
    #[error(transparent)]
    Core(#[from] datoms_core::Error),
    /// The request could not be made or did not complete (network down, CORS, DNS…).
    #[error("GET {url} failed: {reason}")]
    Fetch {
        /// The URL requested.
        url: String,
        /// What the runtime said.
        reason: String,
    },
    /// The server answered with a status other than 200 or 404.
    #[error("GET {url} answered HTTP {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// A head document that is not `{"commit": "<address>", "version": "…"}`.
    #[error("head document at {url} is malformed: {reason}")]
    BadHead {
        /// The URL requested.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A sync answer that is not what `datoms serve` sends: a missing or malformed
    /// header, a cut frame, a blob marked absent.
    #[error("sync answer from {url} is malformed: {reason}")]
    BadSync {
        /// The URL requested.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The head does not exist on the server.
    #[error("no head {name:?} at {base}")]
    NoHead {
        /// The head's name.
        name: String,
        /// The replica's base URL.
        base: String,
    },
    /// A read before the first restore finished.
    #[error("the replica has not restored a db yet: call restore() first")]
    NotRestored,
    /// A restore was asked for while another one of the same replica runs.
    #[error("a restore of this replica is already running (towards {target})")]
    Busy {
        /// The commit the running restore goes to, if known yet.
        target: String,
    },
    /// An argument that is not what the method takes.
    #[error("bad argument: {reason}")]
    Argument {
        /// What is wrong.
        reason: String,
    },
}

impl ReplicaError {
    /// The error for a malformed argument.
    pub fn argument(reason: impl Into<String>) -> ReplicaError {
        ReplicaError::Argument {
            reason: reason.into(),
        }
    }

    /// The error for a running restore.
    pub(crate) fn busy(target: Option<Address>) -> ReplicaError {
        ReplicaError::Busy {
            target: target.map_or_else(|| "the head".to_owned(), |a| a.to_string()),
        }
    }
}
