//! `datoms export`: every datom of the head as `#datom [e a v tx added]` lines (EAVT
//! order), between a header that carries what `datoms import` needs to rebuild the same
//! database — the datom count, the id counters, the tree configuration and the schema —
//! and a closing checksum line, so that a partial or altered file is refused, never
//! imported silently. A file is written atomically (see [`super::files`]) and never over
//! the database's own file.
//!
//! The format, one form per line:
//! ```text
//! ;; datoms export of head main at commit 8f3a…: 6 datoms
//! #datoms/export {:format 1 :datoms 6 :max-eid 2 :max-tx 536870914 :leaf-target 64 :branch-target 24}
//! #datoms/schema {:person/name {:db/unique :db.unique/identity} …}
//! #datom [1 :person/name "Ann" 536870913 true]
//! …
//! #datoms/blake3 "…64 hex digits: BLAKE3 of every byte before this line…"
//! ```

use std::io::Write;

use datoms::edn::{datom_to_edn, schema_to_edn};
use datoms::{Db, IndexKind};
use serde::Serialize;

use super::access::{Create, Opened};
use super::files::{refuse_database_target, AtomicFile};
use super::output::{bytes, short, thousands, Ctx};
use super::{CliError, DbArgs};

/// The tag of the schema line.
pub const SCHEMA_TAG: &str = "datoms/schema";
/// The tag of the header line: format version, datom count, id counters, tree config.
pub const HEADER_TAG: &str = "datoms/export";
/// The tag of the closing line: the BLAKE3 (hex) of every byte before it.
pub const CHECKSUM_TAG: &str = "datoms/blake3";
/// The export format this build writes and reads.
pub const FORMAT: i64 = 1;

/// Arguments of `datoms export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Output format, one form per line:\n  \
;; datoms export of head main at commit …: N datoms\n  \
#datoms/export {:format 1 :datoms N :max-eid E :max-tx T :leaf-target 64 :branch-target 24}\n  \
#datoms/schema {:person/name {:db/unique :db.unique/identity} …}\n  \
#datom [1 :person/name \"Ann\" 536870913 true]\n  …\n  \
#datoms/blake3 \"BLAKE3 of every byte before this line\"\n\
A FILE is written to a temporary file beside it and renamed into place when complete; \
it cannot be the database's own file. Without FILE the datoms go to stdout and the \
summary (or --json report) to stderr.")]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// Where to write; stdout when left out.
    #[arg(value_name = "FILE")]
    file: Option<String>,
}

#[derive(Serialize)]
struct Report {
    commit: String,
    head: String,
    datoms: u64,
    file: Option<String>,
    bytes_fetched: u64,
    round_trips: u64,
}

/// Runs `datoms export`.
///
/// # Errors
/// [`CliError::NoDatabase`], missing or corrupt nodes, an unwritable file,
/// [`CliError::TargetIsDatabase`]. A failed export leaves no file behind.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let path = match args.file.as_deref() {
        None | Some("-") => None,
        Some(p) => Some(p),
    };
    if let Some(p) = path {
        refuse_database_target(std::path::Path::new(p), &[&args.db.db])?;
    }
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let head = opened.head_commit().await?;
    // Lazy restore, then load every node level by level in batched requests: far fewer
    // round trips than letting the cursor load one leaf at a time.
    let spinner = ctx.spinner("loading the trees");
    let lazy = opened.lazy_db().await?;
    let db = datoms::materialize(&lazy, &**opened.storage()).await?.db;
    spinner.finish_and_clear();

    let bar = ctx.bar(db.len(), "datoms");
    bar.set_message("exporting");
    let header = format!(
        ";; datoms export of head {} at commit {}: {} datoms\n",
        opened.head,
        head,
        db.len()
    );
    let count = match path {
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let count = write_export(&mut out, &header, &db, &bar, &CliError::Output)?;
            out.flush().map_err(CliError::Output)?;
            count
        }
        Some(target) => {
            let mut file = AtomicFile::create(target)?;
            let io_error = |source| CliError::File {
                path: target.to_owned(),
                source,
            };
            let count = write_export(file.writer(), &header, &db, &bar, &io_error)?;
            file.commit()?;
            count
        }
    };
    bar.finish_and_clear();

    let io = opened.io();
    let report = Report {
        commit: head.to_hex(),
        head: opened.head.clone(),
        datoms: count,
        file: path.map(str::to_owned),
        bytes_fetched: io.bytes_read,
        round_trips: io.requests(),
    };
    let text = if ctx.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        format!(
            "exported {} datoms of commit {} ({} read in {} requests){}\n",
            thousands(count),
            short(&head),
            bytes(io.bytes_read),
            io.requests(),
            path.map(|p| format!(" to {p}")).unwrap_or_default()
        )
    };
    // Stdout carries the datoms when no file is given: the report goes to stderr then.
    if path.is_some() {
        ctx.print(&text)
    } else {
        eprint!("{text}");
        Ok(())
    }
}

/// A writer that hashes everything it passes on.
struct Hashing<'w, W: Write> {
    inner: &'w mut W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The header line: format, datom count, id counters and tree configuration.
pub fn header_line(db: &Db) -> String {
    let config = db.config();
    format!(
        "#{HEADER_TAG} {{:format {FORMAT} :datoms {} :max-eid {} :max-tx {} :leaf-target {} :branch-target {}}}",
        db.len(),
        db.max_eid(),
        db.max_tx(),
        config.leaf_target,
        config.branch_target
    )
}

/// Writes the whole export of `db` to `out`, the checksum line last; returns the number
/// of datoms written. `io_error` names where a failed write went.
fn write_export<W: Write>(
    out: &mut W,
    comment: &str,
    db: &Db,
    bar: &indicatif::ProgressBar,
    io_error: &dyn Fn(std::io::Error) -> CliError,
) -> Result<u64, CliError> {
    let mut hashing = Hashing {
        inner: out,
        hasher: blake3::Hasher::new(),
    };
    hashing.write_all(comment.as_bytes()).map_err(io_error)?;
    writeln!(hashing, "{}", header_line(db)).map_err(io_error)?;
    writeln!(hashing, "#{SCHEMA_TAG} {}", schema_to_edn(db.schema())).map_err(io_error)?;
    let mut count = 0u64;
    for datom in db.datoms(IndexKind::Eavt, &[])? {
        writeln!(hashing, "{}", datom_to_edn(&datom?)).map_err(io_error)?;
        count += 1;
        if count % 4096 == 0 {
            bar.set_position(count);
        }
    }
    let digest = hashing.hasher.finalize().to_hex();
    writeln!(hashing.inner, "#{CHECKSUM_TAG} \"{digest}\"").map_err(io_error)?;
    Ok(count)
}
