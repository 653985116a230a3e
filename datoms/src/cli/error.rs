//! The one error type of the CLI. Its `Display` is the whole message a user sees after
//! `error: `, so each variant names the file, URL, head, line or node at fault.

use datoms::Address;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The storage URL could not be opened (unknown scheme, missing feature, bad file).
    #[error(transparent)]
    Open(#[from] datoms::OpenError),
    /// A storage request or driver failed; names the blob, head or commit at fault.
    #[error(transparent)]
    Storage(#[from] datoms::StorageError),
    /// A database error: a bad transaction, a corrupt node, bad index components.
    #[error(transparent)]
    Core(#[from] datoms::Error),
    /// A database error caused by an input file; `path` says which.
    #[error("{path}: {source}")]
    Input {
        /// The file (`-` for stdin).
        path: String,
        /// What is wrong with it.
        source: datoms::Error,
    },
    /// A bad line of an import file.
    #[error("{path}: line {line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, with the column where there is one.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing to stdout failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// The storage is reachable but holds no database under this head.
    #[error("no database in {url}: head {head:?} does not exist (create one with `datoms transact` or `datoms import`)")]
    NoDatabase {
        /// The storage URL.
        url: String,
        /// The head asked for.
        head: String,
    },
    /// A read-only command named a redb file that does not exist.
    #[error("no database in {url}: {path} does not exist")]
    NoFile {
        /// The storage URL.
        url: String,
        /// The missing file.
        path: String,
    },
    /// A command that creates a database found one already there.
    #[error("{url} already has head {head:?} (at commit {commit}): import builds a new database, pick another --head or file")]
    AlreadyExists {
        /// The storage URL.
        url: String,
        /// The head.
        head: String,
        /// Where it points.
        commit: Address,
    },
    /// Arguments that parse but make no sense together.
    #[error("{0}")]
    Usage(String),
    /// A node or commit failed verification; `context` says how it was reached.
    #[error("{source} ({context})")]
    Verify {
        /// Where in the trees the node sits.
        context: String,
        /// The failure, naming the node's address.
        source: Box<CliError>,
    },
    /// The demo's replica differs from its primary.
    #[error("replica differs from primary {when}: {detail}")]
    Diverged {
        /// After which step.
        when: String,
        /// What differs.
        detail: String,
    },
    /// JSON output could not be produced.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl CliError {
    /// Wraps an error about a node with where it was reached from.
    pub fn at(self, context: impl Into<String>) -> CliError {
        CliError::Verify {
            context: context.into(),
            source: Box::new(self),
        }
    }
}
