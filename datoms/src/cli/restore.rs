//! `datoms restore`: restore the head as a replica would — fully, or incrementally from
//! an older commit it already holds — and report what it fetched.

use std::time::Instant;

use serde::Serialize;

use super::access::{full_restore, Create, Opened};
use super::output::{bytes, io_since, thousands, Ctx, IoJson, StatsJson};
use super::{CliError, DbArgs};

/// Arguments of `datoms restore`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "With --from-commit C, commit C is restored first (not counted), \
then the head is restored from it with `restore_from`, which fetches only the nodes C \
lacks; compare its nodes and bytes with a plain `datoms restore`."
)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// Restore incrementally from this commit of the head's history: a full address or
    /// a unique prefix of one, as `datoms log` prints them.
    #[arg(long, value_name = "COMMIT")]
    from_commit: Option<String>,
}

#[derive(Serialize)]
struct Report {
    mode: &'static str,
    head: String,
    commit: String,
    from_commit: Option<String>,
    datoms: u64,
    stats: StatsJson,
    io: IoJson,
    seconds: f64,
    base_stats: Option<StatsJson>,
}

/// Runs `datoms restore`.
///
/// # Errors
/// [`CliError::NoDatabase`], an unknown commit, missing or corrupt nodes.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let storage = opened.storage().clone();
    let report = match &args.from_commit {
        None => {
            let before = opened.io();
            let started = Instant::now();
            let head = opened.head_commit().await?;
            let bar = ctx.bar(0, "nodes");
            bar.set_message("restoring");
            let restored = full_restore(&*storage, head, &bar).await;
            bar.finish_and_clear();
            let mut restored = restored?;
            // Count the head read, as `restore_from` does, so the two compare alike.
            restored.stats.round_trips += 1;
            Report {
                mode: "full",
                head: opened.head.clone(),
                commit: head.to_hex(),
                from_commit: None,
                datoms: restored.db.len(),
                stats: restored.stats.into(),
                io: io_since(before, opened.io()).into(),
                seconds: started.elapsed().as_secs_f64(),
                base_stats: None,
            }
        }
        Some(text) => {
            let base = opened.resolve_commit(text).await?;
            let bar = ctx.bar(0, "nodes");
            bar.set_message("base");
            let db1 = full_restore(&*storage, base, &bar).await;
            bar.finish_and_clear();
            let db1 = db1?;
            let before = opened.io();
            let started = Instant::now();
            let restored = datoms::restore_from(&db1.db, &*storage, &opened.head).await?;
            let head = restored.db.base_commit().unwrap_or(base);
            Report {
                mode: "incremental",
                head: opened.head.clone(),
                commit: head.to_hex(),
                from_commit: Some(base.to_hex()),
                datoms: restored.db.len(),
                stats: restored.stats.into(),
                io: io_since(before, opened.io()).into(),
                seconds: started.elapsed().as_secs_f64(),
                base_stats: Some(db1.stats.into()),
            }
        }
    };
    if ctx.json {
        return ctx.print_json(&report);
    }
    let s = &report.stats;
    let mut text = match &report.from_commit {
        None => format!(
            "full restore of commit {} (head {}): {} datoms\n",
            &report.commit[..12],
            report.head,
            thousands(report.datoms)
        ),
        Some(from) => format!(
            "incremental restore of commit {} (head {}) from commit {}: {} datoms\n",
            &report.commit[..12],
            report.head,
            &from[..12],
            thousands(report.datoms)
        ),
    };
    text.push_str(&format!(
        "  nodes fetched   {}\n  commits fetched {}\n  bytes fetched   {}\n  round trips     {}\n  subtrees reused {}\n  storage I/O     {} requests, {} read\n  time            {:.3} s\n",
        thousands(s.nodes_fetched),
        s.commits_fetched,
        bytes(s.bytes_fetched),
        s.round_trips,
        thousands(s.nodes_reused),
        report.io.requests,
        bytes(report.io.bytes_read),
        report.seconds
    ));
    ctx.print(&text)
}
