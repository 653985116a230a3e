//! `datoms watch`: a live query on a head — the result, then the result's diff each time
//! the head moves and the result changes, until interrupted (or after `--limit`
//! updates). Built on follow: each followed commit updates the query by delta rules
//! where its shape allows (see `datoms_core::live`).

use std::time::Duration;

use datoms::live::{LiveInput, LiveUpdate};
use datoms::{FollowOptions, Follower, QueryValue};
use serde_json::json;

use super::follow::open_for_following;
use super::output::Ctx;
use super::{CliError, DbArgs};

/// Arguments of `datoms watch`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the query's result, then after each commit that changes it a \
`;;` line naming the commit and transaction, then `- row` and `+ row` lines (rows \
removed and added, as EDN). With --json, one JSON object per line and update: \
{\"commit\", \"tx\", \"full\", \"added\", \"removed\"}, the first one full."
)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// The query (EDN), e.g. '[:find ?n :where [?e :person/name ?n]]'.
    query: String,

    /// The query's inputs after `$`, as EDN, in `:in` order.
    inputs: Vec<String>,

    /// How often to look at the head, in milliseconds (backing off to 10× while idle).
    #[arg(long, value_name = "MS", default_value_t = 200)]
    poll_ms: u64,

    /// Stop after this many updates (the first, full result included).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

/// Runs `datoms watch`.
///
/// # Errors
/// A storage that cannot be opened or read, a query that does not parse or run, corrupt
/// blobs; interrupted.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let lock_wait = Duration::from_secs(args.db.lock_wait);
    let storage = open_for_following(&args.db.db, lock_wait, ctx).await?;
    let poll = Duration::from_millis(args.poll_ms.max(1));
    let options = FollowOptions {
        poll,
        max_poll: poll * 10,
        ..FollowOptions::default()
    };
    let mut follower = Follower::at_head(storage, &args.db.head, options).await?;
    let mut inputs = vec![LiveInput::Db];
    inputs.extend(args.inputs.iter().map(|i| LiveInput::Edn(i.clone())));
    let watch = follower.watch_query(&args.query, inputs)?;
    let mut delivered = 0;
    while args.limit.is_none_or(|n| delivered < n) {
        for update in watch.drain() {
            print_update(&update.map_err(CliError::Core)?, ctx)?;
            delivered += 1;
            if args.limit.is_some_and(|n| delivered >= n) {
                return Ok(());
            }
        }
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
            u = follower.next() => { u?; }
        }
    }
    Ok(())
}

fn row_edn(row: &[QueryValue]) -> String {
    QueryValue::Vector(row.to_vec()).to_edn().to_string()
}

fn row_json(row: &[QueryValue]) -> serde_json::Value {
    serde_json::from_str(&QueryValue::Vector(row.to_vec()).to_json()).unwrap_or_default()
}

fn print_update(u: &LiveUpdate, ctx: &Ctx) -> Result<(), CliError> {
    let commit = u.basis.commit.map(|c| c.to_hex());
    if ctx.json {
        let doc = json!({
            "commit": commit,
            "tx": u.basis.tx,
            "full": u.full,
            "added": u.added.iter().map(|r| row_json(r)).collect::<Vec<_>>(),
            "removed": u.removed.iter().map(|r| row_json(r)).collect::<Vec<_>>(),
        });
        // One line per update, so a reader can act on each as it comes.
        return ctx.print(&(doc.to_string() + "\n"));
    }
    let mut out = format!(
        ";; {} at commit {} (tx {}): {} added, {} removed\n",
        if u.full { "result" } else { "change" },
        commit.as_deref().unwrap_or("none"),
        u.basis.tx,
        u.added.len(),
        u.removed.len()
    );
    for r in &u.removed {
        out.push_str(&format!("- {}\n", row_edn(r)));
    }
    for r in &u.added {
        out.push_str(&format!("+ {}\n", row_edn(r)));
    }
    ctx.print(&out)
}
