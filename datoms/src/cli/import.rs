//! `datoms import`: build a new database from `#datom [e a v tx added]` lines (what
//! `datoms export` writes) and store it as the first commit of a head.
//!
//! The datoms are applied with `Db::apply_log_entry`, one log entry per transaction id in
//! ascending order — the write path every transaction and log replay takes — so the trees
//! are exactly those any other way of building the same datom set gives.

use std::collections::BTreeMap;

use datoms::edn::{datom_from_edn, parse, schema_from_edn, Edn};
use datoms::{Datom, Db, Schema, TxLogEntry, TX0};
use serde::Serialize;

use super::access::{Create, Opened};
use super::export::SCHEMA_TAG;
use super::output::{bytes, short, thousands, Ctx};
use super::transact::{read_schema, read_text};
use super::{CliError, DbArgs};

/// Arguments of `datoms import`.
#[derive(Debug, clap::Args)]
#[command(after_help = "The file holds one form per line: an optional \
`#datoms/schema {…}` line first, then `#datom [e a v tx added]` lines (added must be \
true: an import holds current datoms). Blank lines and ;-comments are skipped.")]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// The datoms file (`-` reads stdin).
    #[arg(value_name = "FILE|-")]
    file: String,

    /// Schema as EDN, for files without a `#datoms/schema` line (the file's line wins).
    #[arg(long, value_name = "FILE.edn")]
    schema: Option<String>,
}

#[derive(Serialize)]
struct Report {
    datoms: u64,
    txs: usize,
    max_eid: u64,
    max_tx: u64,
    commit: String,
    head: String,
    nodes_written: u64,
    bytes_written: u64,
}

/// Runs `datoms import`.
///
/// # Errors
/// A bad line (named with its number and column), an existing head, storage errors.
/// Nothing is stored unless the whole file reads.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let text = read_text(&args.file)?;
    let schema = args.schema.as_deref().map(read_schema).transpose()?;
    let (schema, txs, count) = read_datoms(&args.file, &text, schema, ctx)?;

    let opened = Opened::open(&args.db, Create::Yes).await?;
    if let Some(head) = opened.get_head().await? {
        return Err(CliError::AlreadyExists {
            url: opened.url.clone(),
            head: opened.head.clone(),
            commit: head.commit,
        });
    }
    let bar = ctx.bar(count, "datoms");
    bar.set_message("indexing");
    let tx_count = txs.len();
    let mut db = Db::new(schema);
    for (tx, datoms) in txs {
        let n = datoms.len() as u64;
        db = db.apply_log_entry(TxLogEntry { tx, datoms })?;
        bar.inc(n);
    }
    bar.finish_and_clear();
    let spinner = ctx.spinner("storing");
    let stored = datoms::store(&db, &**opened.storage(), &opened.head).await?;
    spinner.finish_and_clear();
    let report = Report {
        datoms: db.len(),
        txs: tx_count,
        max_eid: db.max_eid(),
        max_tx: db.max_tx(),
        commit: stored.commit.to_hex(),
        head: opened.head.clone(),
        nodes_written: stored.stats.nodes_written,
        bytes_written: stored.stats.bytes_written,
    };
    if ctx.json {
        return ctx.print_json(&report);
    }
    ctx.print(&format!(
        "imported {} datoms in {} transactions; commit {} on head {} ({} nodes, {} written)\n",
        thousands(report.datoms),
        thousands(tx_count as u64),
        short(&stored.commit),
        opened.head,
        thousands(report.nodes_written),
        bytes(report.bytes_written)
    ))
}

/// Datoms grouped by transaction id, ascending.
type Txs = BTreeMap<u64, Vec<Datom>>;

/// Reads the file line by line, so an error names its line.
fn read_datoms(
    path: &str,
    text: &str,
    schema: Option<Schema>,
    ctx: &Ctx,
) -> Result<(Schema, Txs, u64), CliError> {
    let bad = |line: usize, reason: String| CliError::Line {
        path: path.to_owned(),
        line,
        reason,
    };
    let bar = ctx.bar(text.len() as u64, "bytes");
    bar.set_message("reading");
    let mut schema = schema;
    let mut seen_datom = false;
    let mut txs = Txs::new();
    let mut count = 0u64;
    let mut offset = 0u64;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        offset += line.len() as u64 + 1;
        if number % 4096 == 0 {
            bar.set_position(offset);
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        let form = parse(line).map_err(|e| match e {
            // The reader saw one line: its line 1 is this line.
            datoms::Error::EdnSyntax {
                column, message, ..
            } => bad(
                number,
                format!("EDN syntax error at column {column}: {message}"),
            ),
            other => bad(number, other.to_string()),
        })?;
        if let Edn::Tagged(tag, body) = &form {
            if tag == SCHEMA_TAG {
                if seen_datom {
                    return Err(bad(
                        number,
                        "the schema line must come before the datoms".into(),
                    ));
                }
                schema = Some(schema_from_edn(body).map_err(|e| bad(number, e.to_string()))?);
                continue;
            }
        }
        seen_datom = true;
        let datom =
            datom_from_edn(&form, schema.as_ref()).map_err(|e| bad(number, e.to_string()))?;
        if !datom.added {
            return Err(bad(
                number,
                "a retraction (added false): an import holds only current datoms".into(),
            ));
        }
        if datom.tx <= TX0 {
            return Err(bad(
                number,
                format!(
                    "tx {} is not a transaction id (they start at {})",
                    datom.tx,
                    TX0 + 1
                ),
            ));
        }
        txs.entry(datom.tx).or_default().push(datom);
        count += 1;
    }
    bar.finish_and_clear();
    Ok((schema.unwrap_or_default(), txs, count))
}
