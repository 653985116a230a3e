//! `datoms transact`: run Datascript tx data against the head and store the result as a
//! new commit, moving the head by compare-and-swap.

use std::collections::BTreeMap;
use std::io::Read;

use datoms::edn::parse_schema;
use datoms::{Db, Schema};
use serde::Serialize;

use super::access::{Create, Opened};
use super::output::{bytes, short, thousands, Ctx};
use super::{CliError, DbArgs};

/// Arguments of `datoms transact`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: datoms transact --db redb:people.datoms --schema schema.edn tx.edn\n\
tx.edn: [{:db/id -1 :person/name \"Ann\" :person/age 31} [:db/add -1 :person/friend 7]]"
)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// Tx data as EDN: a vector of entity maps and [:db/add …] forms; `-` reads stdin.
    #[arg(value_name = "FILE.edn|-")]
    file: String,

    /// Schema as EDN ({:attr {:db/valueType … :db/unique …}}), used when this transact
    /// creates the database; an existing database keeps its stored schema.
    #[arg(long, value_name = "FILE.edn")]
    schema: Option<String>,
}

#[derive(Serialize)]
struct Report {
    created: bool,
    tx: u64,
    datoms: usize,
    asserted: usize,
    retracted: usize,
    tempids: BTreeMap<String, u64>,
    commit: String,
    parent: Option<String>,
    head: String,
    nodes_written: u64,
    bytes_written: u64,
}

/// Reads a text file, or stdin for `-`.
///
/// # Errors
/// [`CliError::File`] naming the path.
pub fn read_text(path: &str) -> Result<String, CliError> {
    let file_error = |source| CliError::File {
        path: path.to_owned(),
        source,
    };
    if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(file_error)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(file_error)
}

/// Reads a schema file.
///
/// # Errors
/// [`CliError::File`] or [`CliError::Input`] naming the path.
pub fn read_schema(path: &str) -> Result<Schema, CliError> {
    parse_schema(&read_text(path)?).map_err(|source| CliError::Input {
        path: path.to_owned(),
        source,
    })
}

/// Runs `datoms transact`.
///
/// # Errors
/// Bad EDN (with line and column) or a rejected transaction, naming the file; a head
/// that moved meanwhile; storage errors. Nothing is stored on error.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    // Read and check every input before touching storage: a bad file changes nothing.
    let text = read_text(&args.file)?;
    let schema = args.schema.as_deref().map(read_schema).transpose()?;
    let opened = Opened::open(&args.db, Create::Yes, ctx).await?;
    let head = opened.get_head().await?;
    let db = match &head {
        None => Db::new(schema.unwrap_or_default()),
        Some(_) => {
            let db = opened.lazy_db().await?;
            if schema.as_ref().is_some_and(|s| s != db.schema()) {
                eprintln!(
                    "warning: --schema ignored: head {:?} exists and keeps its stored schema",
                    opened.head
                );
            }
            db
        }
    };
    let input = |source| CliError::Input {
        path: args.file.clone(),
        source,
    };
    let report = db.with_edn(&text).map_err(input)?;
    let stored = datoms::store(&report.db_after, &**opened.storage(), &opened.head).await?;
    let asserted = report.tx_data.iter().filter(|d| d.added).count();
    let out = Report {
        created: head.is_none(),
        tx: report.tx,
        datoms: report.tx_data.len(),
        asserted,
        retracted: report.tx_data.len() - asserted,
        tempids: report.tempids.clone(),
        commit: stored.commit.to_hex(),
        parent: head.as_ref().map(|h| h.commit.to_hex()),
        head: opened.head.clone(),
        nodes_written: stored.stats.nodes_written,
        bytes_written: stored.stats.bytes_written,
    };
    if ctx.json {
        return ctx.print_json(&out);
    }
    let mut text = format!(
        "tx {}: {} datom{} ({} asserted, {} retracted)\n",
        out.tx,
        thousands(out.datoms as u64),
        if out.datoms == 1 { "" } else { "s" },
        out.asserted,
        out.retracted
    );
    let tempids: Vec<String> = out
        .tempids
        .iter()
        .filter(|(k, _)| k.as_str() != datoms::tx::CURRENT_TX)
        .map(|(k, v)| format!("{k} → {v}"))
        .collect();
    if !tempids.is_empty() {
        text.push_str(&format!("tempids: {}\n", tempids.join(", ")));
    }
    text.push_str(&format!(
        "{} commit {} on head {} ({} nodes, {} written){}\n",
        if out.created {
            "created database with"
        } else {
            "stored"
        },
        short(&stored.commit),
        opened.head,
        thousands(out.nodes_written),
        bytes(out.bytes_written),
        head.map(|h| format!(", parent {}", short(&h.commit)))
            .unwrap_or_default()
    ));
    ctx.print(&text)
}
