//! The harness's error type.

use std::path::PathBuf;

/// What can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The database layer failed (a transaction, a decode).
    #[error("datoms: {0}")]
    Core(#[from] datoms_core::Error),
    /// A storage driver or backend failed.
    #[error("storage: {0}")]
    Storage(#[from] datoms_storage::StorageError),
    /// A file or process could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The JS peer could not be run or said something unexpected.
    #[error("the Datascript peer (bench/peer): {0}")]
    Peer(String),
    /// The peer's folder has no `node_modules`: its setup script has not run.
    #[error(
        "the Datascript peer is not installed in {}: run `bash scripts/setup/bench-peer.sh` \
         (needs node and npm)",
        .0.display()
    )]
    PeerNotInstalled(PathBuf),
    /// A measurement contradicted another (e.g. a replica differs from its primary).
    #[error("inconsistent result: {0}")]
    Inconsistent(String),
    /// Bad command-line arguments.
    #[error("usage: {0}")]
    Usage(String),
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }
}
