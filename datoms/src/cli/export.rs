//! `datoms export`: every datom of the head as `#datom [e a v tx added]` lines (EAVT
//! order), after a `#datoms/schema {…}` line, so `datoms import` rebuilds the same trees.

use std::io::Write;

use datoms::edn::{datom_to_edn, schema_to_edn};
use datoms::IndexKind;
use serde::Serialize;

use super::access::{Create, Opened};
use super::output::{bytes, short, thousands, Ctx};
use super::{CliError, DbArgs};

/// The tag of the schema line that starts an export.
pub const SCHEMA_TAG: &str = "datoms/schema";

/// Arguments of `datoms export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Output format, one form per line:\n  \
#datoms/schema {:person/name {:db/unique :db.unique/identity} …}\n  \
#datom [1 :person/name \"Ann\" 536870913 true]\n  …\n\
Without FILE the datoms go to stdout and the summary (or --json report) to stderr.")]
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
/// [`CliError::NoDatabase`], missing or corrupt nodes, an unwritable file.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(&args.db, Create::No).await?;
    let head = opened.head_commit().await?;
    // Lazy restore, then load every node level by level in batched requests: far fewer
    // round trips than letting the cursor load one leaf at a time.
    let spinner = ctx.spinner("loading the trees");
    let lazy = opened.lazy_db().await?;
    let db = datoms::materialize(&lazy, &**opened.storage()).await?.db;
    spinner.finish_and_clear();

    let (sink, path): (Box<dyn Write>, Option<&str>) = match args.file.as_deref() {
        None | Some("-") => (Box::new(std::io::stdout().lock()), None),
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|source| CliError::File {
                path: path.to_owned(),
                source,
            })?;
            (Box::new(file), Some(path))
        }
    };
    let write_error = |source: std::io::Error| match path {
        Some(p) => CliError::File {
            path: p.to_owned(),
            source,
        },
        None => CliError::Output(source),
    };
    let mut out = std::io::BufWriter::new(sink);
    writeln!(
        out,
        ";; datoms export of head {} at commit {}: {} datoms",
        opened.head,
        head,
        db.len()
    )
    .map_err(write_error)?;
    writeln!(out, "#{SCHEMA_TAG} {}", schema_to_edn(db.schema())).map_err(write_error)?;
    let bar = ctx.bar(db.len(), "datoms");
    bar.set_message("exporting");
    let mut count = 0u64;
    for datom in db.datoms(IndexKind::Eavt, &[])? {
        writeln!(out, "{}", datom_to_edn(&datom?)).map_err(write_error)?;
        count += 1;
        if count % 4096 == 0 {
            bar.set_position(count);
        }
    }
    out.flush().map_err(write_error)?;
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
