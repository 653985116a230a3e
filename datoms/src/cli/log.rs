//! `datoms log`: the commits of a head, newest first, each with what it recorded.

use datoms::storage::large::decode_fetching;
use serde::Serialize;

use super::access::{CommitWalk, Create, Opened};
use super::output::{bytes, short, thousands, Ctx, RootsJson};
use super::{CliError, DbArgs};

/// Arguments of `datoms log`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// Show at most this many commits.
    #[arg(long, short = 'n', value_name = "N")]
    limit: Option<usize>,
}

#[derive(Serialize)]
struct Entry {
    commit: String,
    max_tx: u64,
    max_eid: u64,
    txs: usize,
    datoms: usize,
    manifest_nodes: usize,
    commit_bytes: u64,
    parent: Option<String>,
    /// The index roots: equal roots, equal db.
    roots: RootsJson,
}

/// Runs `datoms log`.
///
/// # Errors
/// [`CliError::NoDatabase`]; a missing or corrupt commit, or one whose tx log cannot be
/// decoded, named by address.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let head = opened.head_commit().await?;
    let mut walk = CommitWalk::new(head);
    let mut entries = Vec::new();
    while entries.len() < args.limit.unwrap_or(usize::MAX) {
        let Some((address, commit, size)) = walk.next(&opened).await? else {
            break;
        };
        // Decoded (not just counted) so a commit whose log is damaged is reported here.
        let (log, _) = decode_fetching(&**opened.storage(), || commit.log_entries()).await?;
        entries.push(Entry {
            commit: address.to_hex(),
            max_tx: commit.max_tx,
            max_eid: commit.max_eid,
            txs: log.len(),
            datoms: log.iter().map(|e| e.datoms.len()).sum(),
            manifest_nodes: commit.manifest.len(),
            commit_bytes: size,
            parent: commit.parent.map(|p| p.to_hex()),
            roots: RootsJson::of(&commit.roots),
        });
    }
    if ctx.json {
        return ctx.print_json(&entries);
    }
    let mut out = format!(
        "{:<12}  {:>10}  {:>4}  {:>8}  {:>14}  {:>10}  {}\n",
        "commit", "max-tx", "txs", "datoms", "manifest nodes", "size", "parent"
    );
    for e in &entries {
        let parent = e.parent.as_deref().map_or("-", |p| &p[..12]);
        out.push_str(&format!(
            "{:<12}  {:>10}  {:>4}  {:>8}  {:>14}  {:>10}  {}\n",
            &e.commit[..12],
            e.max_tx,
            e.txs,
            thousands(e.datoms as u64),
            thousands(e.manifest_nodes as u64),
            bytes(e.commit_bytes),
            parent
        ));
    }
    out.push_str(&format!(
        "{} commit{} from head {} ({})\n",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        opened.head,
        short(&head)
    ));
    ctx.print(&out)
}
