//! `datoms diff`: the datoms added and retracted between two commits. Both commits are
//! restored lazily through one node source and compared by `datoms::diff`, which skips
//! every subtree the two share by address without loading it: the cost follows the
//! change (times the tree depth), not the size of the db.

use std::sync::Arc;

use datoms::storage::restore::DEFAULT_CACHE_BYTES;
use datoms::storage::StorageSource;
use datoms::{Address, Db, Mode, Storage};
use serde::Serialize;

use super::access::{Create, Opened};
use super::changes::{changes_json, changes_text, ChangesJson};
use super::output::{io_since, short, Ctx, IoJson};
use super::{CliError, DbArgs};

/// Arguments of `datoms diff`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints a `;;` line with the counts, then the datoms of C1 that \
C2 lacks and the datoms C2 added, as `#datom [e a v tx added]` lines (EAVT order). Commits are full addresses or unique \
prefixes of the head's history, as `datoms log` prints them."
)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// The older commit.
    #[arg(value_name = "C1")]
    from: String,

    /// The newer commit (default: the head's, so `datoms diff C1` is what changed since
    /// C1).
    #[arg(value_name = "C2")]
    to: Option<String>,
}

#[derive(Serialize)]
struct Report {
    from: String,
    to: String,
    #[serde(flatten)]
    changes: ChangesJson,
    io: IoJson,
}

/// Runs `datoms diff`.
///
/// # Errors
/// An unknown commit, missing or corrupt nodes, storage errors.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let (c1, c2) = (
        opened.resolve_commit(&args.from).await?,
        match &args.to {
            Some(to) => opened.resolve_commit(to).await?,
            None => opened.head_commit().await?,
        },
    );
    let before = opened.io();
    let source = StorageSource::new(opened.storage().clone(), DEFAULT_CACHE_BYTES)?;
    let db1 = lazy(opened.storage(), c1, &source).await?;
    let db2 = lazy(opened.storage(), c2, &source).await?;
    let changes = datoms::diff(&db1, &db2)?;
    if ctx.json {
        return ctx.print_json(&Report {
            from: c1.to_hex(),
            to: c2.to_hex(),
            changes: changes_json(&changes.added, &changes.retracted)?,
            io: io_since(before, opened.io()).into(),
        });
    }
    let header = format!(
        ";; {} -> {}: {} added, {} retracted\n",
        short(&c1),
        short(&c2),
        changes.added.len(),
        changes.retracted.len()
    );
    ctx.print(&(header + &changes_text(&changes.added, &changes.retracted)))
}

/// The db at `commit`, loading nodes on demand through `source`.
async fn lazy(
    storage: &Arc<dyn Storage>,
    commit: Address,
    source: &Arc<StorageSource>,
) -> Result<Db, CliError> {
    let restored = datoms::restore_commit(&**storage, commit, None, Mode::Lazy).await?;
    Ok(restored.db.with_source(source.clone()))
}
