//! `datoms follow`: print each change of a head as it moves, one commit at a time — the
//! datoms each commit retracted and added — until interrupted (or after `--limit`
//! updates). A `redb:` or `rocksdb:` file is read through [`SharedFile`] (opened for
//! each request), so the writers of other processes still get it.

use std::sync::Arc;
use std::time::Duration;

use datoms::{FollowOptions, Follower, Storage, SyncRoute, Update};
use serde::Serialize;

use super::changes::{changes_json, changes_text, ChangesJson};
use super::lock::{is_locked_file, open_waiting, Access, SharedFile};
use super::output::{Ctx, StatsJson};
use super::{CliError, DbArgs};

/// Arguments of `datoms follow`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each update is one commit, in commit order: a `;;` line naming \
it, then the datoms it retracted and added as `#datom [e a v tx added]` lines. With \
--json, one JSON object per line and update. The first update is the first commit \
after the head as it is when the command starts (or after --from-commit)."
)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// Start after this commit instead of at the head (a full address: the last commit
    /// a previous run printed).
    #[arg(long, value_name = "COMMIT")]
    from_commit: Option<String>,

    /// How often to look at the head, in milliseconds (backing off to 10× while idle).
    #[arg(long, value_name = "MS", default_value_t = 200)]
    poll_ms: u64,

    /// Stop after this many updates.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

#[derive(Serialize)]
struct UpdateJson {
    head: String,
    commit: String,
    previous: Option<String>,
    commits: Option<u64>,
    route: &'static str,
    #[serde(flatten)]
    changes: ChangesJson,
    stats: StatsJson,
}

/// Opens the storage at `url` for a long-running reader: a locked file through
/// [`SharedFile`], anything else as usual.
///
/// # Errors
/// As [`open_waiting`].
pub async fn open_for_following(
    url: &str,
    lock_wait: Duration,
    ctx: &Ctx,
) -> Result<Arc<dyn Storage>, CliError> {
    if is_locked_file(url) {
        // Open once now, so a missing or damaged file is an error at once.
        drop(open_waiting(url, Access::Read, lock_wait, ctx).await?);
        return Ok(Arc::new(SharedFile::new(url, lock_wait)));
    }
    open_waiting(url, Access::Read, lock_wait, ctx).await
}

/// Runs `datoms follow`.
///
/// # Errors
/// A storage that cannot be opened or read, a bad commit, corrupt blobs; interrupted.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let lock_wait = Duration::from_secs(args.db.lock_wait);
    let storage = open_for_following(&args.db.db, lock_wait, ctx).await?;
    let poll = Duration::from_millis(args.poll_ms.max(1));
    let options = FollowOptions {
        poll,
        max_poll: poll * 10,
        ..FollowOptions::default()
    };
    let mut follower = match &args.from_commit {
        Some(text) => {
            let commit = text.trim().parse().map_err(CliError::Core)?;
            Follower::from_commit(storage, &args.db.head, commit, options).await?
        }
        None => Follower::at_head(storage, &args.db.head, options).await?,
    };
    let mut delivered = 0;
    while args.limit.is_none_or(|n| delivered < n) {
        let update = tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
            u = follower.next() => u?,
        };
        print_update(&args.db.head, &update, ctx)?;
        delivered += 1;
    }
    Ok(())
}

fn print_update(head: &str, u: &Update, ctx: &Ctx) -> Result<(), CliError> {
    let route = match u.route {
        SyncRoute::Log => "log",
        SyncRoute::Tree => "tree",
        SyncRoute::Unchanged => "unchanged",
    };
    if ctx.json {
        let doc = UpdateJson {
            head: head.to_owned(),
            commit: u.commit.to_hex(),
            previous: u.previous.map(|a| a.to_hex()),
            commits: u.commits,
            route,
            changes: changes_json(&u.added, &u.retracted)?,
            stats: u.stats.into(),
        };
        // One line per update, so a reader can act on each as it comes.
        return ctx.print(&(serde_json::to_string(&doc)? + "\n"));
    }
    let header = format!(
        ";; commit {} (head {head}, by {route}): {} added, {} retracted\n",
        u.commit,
        u.added.len(),
        u.retracted.len()
    );
    ctx.print(&(header + &changes_text(&u.added, &u.retracted)))
}
