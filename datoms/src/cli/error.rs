//! The one error type of the CLI. Its `Display` is the whole message a user sees after
//! `error: `, so each variant names the file, URL, head, line or node at fault.

use datoms::{Address, Keyword, Violation};

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
    /// `branch create` found the branch there already.
    #[error("{url} already has branch {name:?} (at commit {commit}); delete it first or pick another name")]
    BranchExists {
        /// The storage URL.
        url: String,
        /// The branch.
        name: String,
        /// Where it points.
        commit: Address,
    },
    /// `branch fast-forward` onto a commit that does not descend from the branch's.
    #[error("branch {name:?} (at commit {from}) is not an ancestor of {to_name:?} (at commit {to}): a fast-forward only moves a branch forward along its own history")]
    NotFastForward {
        /// The branch to move.
        name: String,
        /// Where it points.
        from: Address,
        /// The branch it was to move to.
        to_name: String,
        /// Where that points.
        to: Address,
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
    /// A command would write a file over the file of an open database.
    #[error(
        "{path} is the file of database {url}: writing there would destroy it; pick another file"
    )]
    TargetIsDatabase {
        /// The file named for writing.
        path: String,
        /// The database's storage URL.
        url: String,
    },
    /// An export file that is not whole: cut short, altered, or inconsistent with its
    /// header. Nothing is stored.
    #[error("{path}: {problem}; nothing was stored")]
    BadExport {
        /// The file.
        path: String,
        /// What is wrong.
        problem: ExportProblem,
    },
    /// `[:avet :attr …]` on an attribute AVET does not hold.
    #[error("{attr} is not in AVET, which holds only :db/index, :db/unique and ref attributes: read it with [:aevt {attr} …] or declare it :db/index true")]
    NotInAvet {
        /// The attribute.
        attr: Keyword,
    },
    /// `datoms verify` found datoms that break the schema or the id invariants; every
    /// one is listed in the report (stdout, or the JSON error's `violations`).
    #[error("head {head:?} at commit {commit}: {} violation{} of the schema or the id invariants{}", .violations.len(), if .violations.len() == 1 { "" } else { "s" }, first_violation(.violations))]
    Violations {
        /// The head.
        head: String,
        /// Its commit.
        commit: Address,
        /// Every violation found.
        violations: Vec<Violation>,
    },
    /// The command was interrupted (Ctrl-C) and cleaned up after itself.
    #[error("interrupted")]
    Interrupted,
    /// Another process kept the storage's file for longer than the command waits.
    #[error("{url} is still in use after waiting {seconds} s (--lock-wait): {source}")]
    StillInUse {
        /// The storage URL.
        url: String,
        /// How long the command waited.
        seconds: u64,
        /// The backend's error.
        source: Box<datoms::StorageError>,
    },
    /// JSON output could not be produced.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What is wrong with an export file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportProblem {
    /// The file ends before its closing checksum line.
    Truncated {
        /// The datoms its header declares (0 if the header itself is cut).
        declared: u64,
        /// The datoms read before the file ended.
        read: u64,
    },
    /// The content does not hash to the checksum line's BLAKE3.
    Altered {
        /// The BLAKE3 (hex) the checksum line holds.
        expected: String,
        /// The BLAKE3 (hex) of the content.
        actual: String,
    },
    /// The header's datom count differs from the datoms the file holds.
    Count {
        /// The datoms its header declares.
        declared: u64,
        /// The datoms it holds.
        found: u64,
    },
    /// A line after the checksum line, which must be the last.
    AfterChecksum {
        /// The 1-based line number of the first such line.
        line: usize,
    },
    /// A checksum line without the `#datoms/export` header it closes.
    NoHeader,
    /// No form at all: an empty file, or one cut inside its first (comment) line.
    Empty,
}

impl std::fmt::Display for ExportProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportProblem::Truncated { declared, read } => write!(
                f,
                "the export is cut short: it ends after {read} datoms without its closing #datoms/blake3 checksum line (its header declares {declared})"
            ),
            ExportProblem::Altered { expected, actual } => write!(
                f,
                "the export was altered: its content hashes to BLAKE3 {actual}, its checksum line says {expected}"
            ),
            ExportProblem::Count { declared, found } => write!(
                f,
                "the export's header declares {declared} datoms, the file holds {found}"
            ),
            ExportProblem::AfterChecksum { line } => write!(
                f,
                "line {line} comes after the #datoms/blake3 checksum line, which must be the last"
            ),
            ExportProblem::Empty => f.write_str(
                "the file holds no datoms and no #datoms/export header: nothing to import (an export cut short?)",
            ),
            ExportProblem::NoHeader => f.write_str(
                "a #datoms/blake3 checksum line without the #datoms/export header line it closes",
            ),
        }
    }
}

/// `: ` and the first violation, for a one-line message.
fn first_violation(vs: &[Violation]) -> String {
    match vs {
        [] => String::new(),
        [one] => format!(": {one}"),
        [first, ..] => format!(": {first}; …"),
    }
}

impl CliError {
    /// A short stable name of the kind of error, for the JSON error object
    /// (`{"error": {"kind": …, "message": …}}`).
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Open(_) => "open",
            CliError::Storage(e) => match e {
                datoms::StorageError::NotFound { .. } => "not_found",
                datoms::StorageError::NoHead { .. } => "no_database",
                datoms::StorageError::HeadConflict { .. } => "head_conflict",
                datoms::StorageError::InUse { .. } => "in_use",
                datoms::StorageError::Diverged { .. } => "diverged",
                datoms::StorageError::Unrelated { .. } => "unrelated",
                datoms::StorageError::NothingAt { .. } => "nothing_at",
                datoms::StorageError::Core(e) => core_kind(e),
                _ => "storage",
            },
            CliError::Core(e) | CliError::Input { source: e, .. } => core_kind(e),
            CliError::Line { .. } => "bad_line",
            CliError::File { .. } => "file",
            CliError::Output(_) => "output",
            CliError::NoDatabase { .. } | CliError::NoFile { .. } => "no_database",
            CliError::AlreadyExists { .. } | CliError::BranchExists { .. } => "already_exists",
            CliError::NotFastForward { .. } => "not_fast_forward",
            CliError::Usage(_) => "usage",
            CliError::Verify { source, .. } => source.kind(),
            CliError::Diverged { .. } => "diverged",
            CliError::TargetIsDatabase { .. } => "target_is_database",
            CliError::BadExport { .. } => "bad_export",
            CliError::NotInAvet { .. } => "not_in_avet",
            CliError::Violations { .. } => "violations",
            CliError::Interrupted => "interrupted",
            CliError::StillInUse { .. } => "in_use",
            CliError::Json(_) => "json",
            CliError::Runtime(_) => "runtime",
        }
    }

    /// The violations this error lists, if it lists any (a refused import, a failed
    /// verify).
    pub fn violations(&self) -> Option<&[Violation]> {
        match self {
            CliError::Violations { violations, .. } => Some(violations),
            CliError::Core(datoms::Error::Invariants { violations })
            | CliError::Input {
                source: datoms::Error::Invariants { violations },
                ..
            } => Some(violations),
            _ => None,
        }
    }

    /// The conflicts of a merge that failed on them (`datoms merge --strategy fail`).
    pub fn conflicts(&self) -> Option<&[datoms::merge::Conflict]> {
        match self {
            CliError::Storage(datoms::StorageError::Core(datoms::Error::MergeConflicts {
                conflicts,
            }))
            | CliError::Core(datoms::Error::MergeConflicts { conflicts }) => Some(conflicts),
            _ => None,
        }
    }

    /// Wraps an error about a node with where it was reached from.
    pub fn at(self, context: impl Into<String>) -> CliError {
        CliError::Verify {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// The kind of a database error (see [`CliError::kind`]).
fn core_kind(e: &datoms::Error) -> &'static str {
    use datoms::Error as E;
    match e {
        E::Corrupt { .. } => "corrupt",
        E::Malformed { .. } | E::UnsupportedVersion { .. } => "malformed",
        E::MalformedLog { .. } => "malformed_log",
        E::NodeUnavailable { .. } => "node_unavailable",
        E::Invariants { .. } => "invariants",
        E::EdnSyntax { .. } => "edn_syntax",
        E::MalformedTx { .. } => "malformed_tx",
        E::WrongValueType { .. } => "wrong_value_type",
        E::UniqueConflict { .. } => "unique_conflict",
        E::UpsertConflict { .. } => "upsert_conflict",
        E::CasMismatch { .. } => "cas_mismatch",
        E::UnknownLookupRef { .. } => "unknown_lookup_ref",
        E::UnknownAttribute { .. } => "unknown_attribute",
        E::BadSchema { .. } => "bad_schema",
        E::InvalidValue { .. } => "invalid_value",
        E::InvalidEntityId { .. } => "invalid_entity_id",
        E::QueryParse { .. }
        | E::UnboundVariable { .. }
        | E::WrongArity { .. }
        | E::UnknownFunction { .. }
        | E::UnknownRule { .. } => "query",
        E::QueryInput { .. } => "query_input",
        E::QueryEval { .. } => "query_eval",
        E::PullPattern { .. } => "pull_pattern",
        E::MergeConflicts { .. } => "merge_conflicts",
        E::MergeSchemaDiffers => "merge_schema_differs",
        _ => "database",
    }
}
