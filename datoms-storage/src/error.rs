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
    #[error("head {name:?} moved: {}", where_now(.current.as_ref()))]
    HeadConflict {
        /// The head's name.
        name: String,
        /// Where it is now (`None`: it does not exist).
        current: Option<Head>,
    },
    /// A replication whose source head does not descend from the target's head: moving
    /// the target's head would leave the target's own commits behind.
    #[error("head {name:?} of the target is at commit {target}, and the source's head (commit {source_head}) does not descend from it: replicating would drop the target's commits (force it to overwrite them)")]
    Diverged {
        /// The head's name.
        name: String,
        /// The target's head commit.
        target: Address,
        /// The source's head commit.
        source_head: Address,
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
    /// The backend's own files are damaged: it cannot read what it stored (a page
    /// overwritten or zeroed, a truncated file, a file written by another program). The
    /// stored state is left as it is; restore the file from a copy.
    #[error("{what} is damaged: {reason}")]
    Corrupt {
        /// The file or place at fault (e.g. `redb file /data/people.datoms`).
        what: String,
        /// What the backend found.
        reason: String,
    },
    /// A write (`operation`) to a storage opened read-only.
    #[error("{what} is open read-only: {operation} is not allowed")]
    ReadOnly {
        /// The storage (e.g. `redb file /data/people.datoms`).
        what: String,
        /// The refused operation (`put_many`, `cas_head`, `delete_many`).
        operation: String,
    },
    /// Another process (or another handle in this one) holds the storage in a way that
    /// excludes this open, e.g. a writer holds a redb file that a reader asks for.
    #[error("{what} is in use: {reason}")]
    InUse {
        /// The storage (e.g. `redb file /data/people.datoms`).
        what: String,
        /// Who holds it and what to do.
        reason: String,
    },
    /// Log replay produced a tree different from the stored one.
    #[error("log replay of {commit} gave roots {}, the commit has {}", roots(.replayed), roots(.stored))]
    ReplayMismatch {
        /// The commit replayed to.
        commit: Address,
        /// The roots replay produced.
        replayed: Box<[Address; 3]>,
        /// The roots the commit records.
        stored: Box<[Address; 3]>,
    },
    /// The tx log cannot bridge db1 to the head (db1's commit is not a recent ancestor).
    #[error("the tx log cannot reach {head} from {}: {reason}", .base.map_or_else(|| "an empty db".to_owned(), |a| format!("commit {a}")))]
    LogGap {
        /// The head commit.
        head: Address,
        /// db1's commit.
        base: Option<Address>,
        /// Why.
        reason: String,
    },
    /// A time view of a point the head's history does not reach (an instant before its
    /// first commit).
    #[error("head {name:?} has no commit at {at}")]
    NothingAt {
        /// The head's name.
        name: String,
        /// The point asked for, in words.
        at: String,
    },
    /// A merge of two commits that share no ancestor.
    #[error("commit {theirs} shares no history with head {name:?} (at commit {ours}): nothing to merge against")]
    Unrelated {
        /// Our head's name.
        name: String,
        /// Our head's commit.
        ours: Address,
        /// The commit asked to merge.
        theirs: Address,
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

/// Where a moved head is now, for messages.
fn where_now(current: Option<&Head>) -> String {
    match current {
        Some(h) => format!("now at commit {} (version {})", h.commit, h.version),
        None => "it no longer exists".to_owned(),
    }
}

/// Three root addresses, for messages: `EAVT …, AEVT …, AVET …`.
fn roots(r: &[Address; 3]) -> String {
    format!("EAVT {}, AEVT {}, AVET {}", r[0], r[1], r[2])
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Version;

    #[test]
    fn messages_hold_no_rust_debug_text() {
        let a = Address::of(b"commit");
        let moved = StorageError::HeadConflict {
            name: "main".into(),
            current: Some(Head {
                commit: a,
                version: Version("7".into()),
            }),
        };
        assert_eq!(
            moved.to_string(),
            format!("head \"main\" moved: now at commit {a} (version 7)")
        );
        let gone = StorageError::HeadConflict {
            name: "main".into(),
            current: None,
        };
        assert_eq!(gone.to_string(), "head \"main\" moved: it no longer exists");
        let gap = StorageError::LogGap {
            head: a,
            base: None,
            reason: "x".into(),
        };
        let mismatch = StorageError::ReplayMismatch {
            commit: a,
            replayed: Box::new([a; 3]),
            stored: Box::new([a; 3]),
        };
        for e in [moved, gap, mismatch] {
            let text = e.to_string();
            for debug in ["Some(", "None", "Head {", "v\"", "[#"] {
                assert!(!text.contains(debug), "{text}");
            }
        }
    }
}
