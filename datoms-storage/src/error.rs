//! Errors of storage backends and of the drivers.

use datoms_core::Address;

use crate::storage::Head;

/// An error of a storage backend or driver. Each variant names what is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A blob the database needs is not in storage.
    #[error("blob {address} is missing from storage")]
    NotFound {
        /// The missing address.
        address: Address,
    },
    /// A head that does not exist.
    #[error("head {name:?} does not exist")]
    NoHead {
        /// The head's name.
        name: String,
    },
    /// The head is not where the caller expected: another writer moved it. Restore
    /// (`restore_from`), re-apply, and store again.
    #[error("head {name:?} moved: now at {current:?}")]
    HeadConflict {
        /// The head's name.
        name: String,
        /// Where it is now (`None`: it does not exist).
        current: Option<Head>,
    },
    /// A failure that may succeed if retried (timeout, throttling, a 5xx).
    #[error("transient storage failure: {reason}")]
    Transient {
        /// What failed.
        reason: String,
    },
    /// A permanent backend failure (permission, disk full, bad configuration…).
    #[error("storage backend failure: {reason}")]
    Backend {
        /// What failed.
        reason: String,
    },
    /// Log replay produced a tree different from the stored one.
    #[error("log replay of {commit} gave roots {replayed:?}, the commit has {stored:?}")]
    ReplayMismatch {
        /// The commit replayed to.
        commit: Address,
        /// The roots replay produced.
        replayed: Box<[Address; 3]>,
        /// The roots the commit records.
        stored: Box<[Address; 3]>,
    },
    /// The tx log cannot bridge db1 to the head (db1's commit is not a recent ancestor).
    #[error("the tx log cannot reach {head} from {base:?}: {reason}")]
    LogGap {
        /// The head commit.
        head: Address,
        /// db1's commit.
        base: Option<Address>,
        /// Why.
        reason: String,
    },
    /// A place that cannot hold a database as given, e.g. an S3 key prefix that would
    /// mix its keys with another database's.
    #[error("bad storage location {location}: {reason}")]
    BadLocation {
        /// The location as given (`s3://bucket/prefix`, a path…).
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A database-level error: corrupt or malformed bytes, a bad transaction…
    #[error(transparent)]
    Core(#[from] datoms_core::Error),
}

impl StorageError {
    /// True for errors worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }

    /// A backend failure with this reason.
    pub fn backend(reason: impl std::fmt::Display) -> StorageError {
        StorageError::Backend {
            reason: reason.to_string(),
        }
    }
}
