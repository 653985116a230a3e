//! `datoms sync`: copy a head from one storage to another with `datoms::replicate_with`
//! — only the nodes and commits the target lacks relative to its own head, each checked
//! against its address, the target's head moved last — with a progress bar and the
//! nodes and bytes copied. `--follow` copies again each time the source's head moves.

use std::time::Duration;

use datoms::{HeadWatch, ReplicateOptions, ReplicateStats, Replicated};
use serde::Serialize;

use super::follow::open_for_following;
use super::lock::{open_waiting, Access, DEFAULT_LOCK_WAIT_SECONDS};
use super::output::{bytes, short, thousands, Ctx};
use super::CliError;

/// Arguments of `datoms sync`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The target gets what it lacks relative to its own head: the \
commits since (the whole history for a new target, unless --no-history) and the nodes \
those commits made. An interrupted copy resumes where it stopped. A target whose head \
the source does not descend from is refused unless --force."
)]
pub struct Args {
    /// The storage to copy from, e.g. redb:./people.datoms.
    #[arg(long, value_name = "URL")]
    from: String,

    /// The storage to copy to, e.g. s3://bucket/backups/people.
    #[arg(long, value_name = "URL")]
    to: String,

    /// The head to copy.
    #[arg(long, value_name = "NAME", default_value = "main", value_parser = super::head_name)]
    head: String,

    /// Keep running: copy again each time the source's head moves.
    #[arg(long)]
    follow: bool,

    /// How often --follow looks at the source's head, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    poll_ms: u64,

    /// Copy only the head's commit, not the commits before it.
    #[arg(long)]
    no_history: bool,

    /// Move the target's head even if the source's head does not descend from it.
    #[arg(long)]
    force: bool,

    /// How long to wait for a file another process holds.
    #[arg(long, value_name = "SECONDS", env = "DATOMS_LOCK_WAIT", default_value_t = DEFAULT_LOCK_WAIT_SECONDS)]
    lock_wait: u64,
}

#[derive(Serialize)]
struct Report<'a> {
    head: &'a str,
    commit: String,
    previous: Option<String>,
    moved: bool,
    nodes_copied: u64,
    commits_copied: u64,
    bytes_copied: u64,
    blobs_present: u64,
    blobs_verified: u64,
    round_trips: u64,
    seconds: f64,
}

/// Runs `datoms sync`.
///
/// # Errors
/// Storages that cannot be opened, a source without the head, a diverged target, a
/// corrupt blob, storage errors; interrupted (under `--follow`).
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    if args.from == args.to {
        return Err(CliError::Usage(format!(
            "--from and --to are both {}: a storage cannot be copied onto itself",
            args.from
        )));
    }
    let lock_wait = Duration::from_secs(args.lock_wait);
    let from = if args.follow {
        open_for_following(&args.from, lock_wait, ctx).await?
    } else {
        open_waiting(&args.from, Access::Read, lock_wait, ctx).await?
    };
    let to = open_waiting(&args.to, Access::Write, lock_wait, ctx).await?;
    let options = ReplicateOptions {
        history: !args.no_history,
        force: args.force,
    };
    let mut replicated = copy_once(&args, &*from, &*to, options, ctx).await?;
    if !args.follow {
        return Ok(());
    }
    let poll = Duration::from_millis(args.poll_ms.max(1));
    let mut watch = HeadWatch::new(
        from.clone(),
        &args.head,
        datoms::FollowOptions {
            poll,
            max_poll: poll * 10,
            ..datoms::FollowOptions::default()
        },
    );
    loop {
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
            moved = watch.next_move(Some(replicated.commit)) => { moved?; }
        }
        replicated = copy_once(&args, &*from, &*to, options, ctx).await?;
    }
}

async fn copy_once(
    args: &Args,
    from: &dyn datoms::Storage,
    to: &dyn datoms::Storage,
    options: ReplicateOptions,
    ctx: &Ctx,
) -> Result<Replicated, CliError> {
    let started = std::time::Instant::now();
    let bar = ctx.bar(0, "nodes");
    bar.set_message("copying");
    let mut progress = |s: &ReplicateStats| {
        bar.set_length(s.nodes_in_head.max(s.nodes_copied + s.blobs_present));
        bar.set_position(s.nodes_copied + s.blobs_present);
    };
    let done = datoms::replicate_with(from, to, &args.head, options, &mut progress).await;
    bar.finish_and_clear();
    let r = done?;
    let s = r.stats;
    if ctx.json {
        let doc = Report {
            head: &args.head,
            commit: r.commit.to_hex(),
            previous: r.previous.map(|a| a.to_hex()),
            moved: r.moved,
            nodes_copied: s.nodes_copied,
            commits_copied: s.commits_copied,
            bytes_copied: s.bytes_copied,
            blobs_present: s.blobs_present,
            blobs_verified: s.blobs_verified,
            round_trips: s.round_trips,
            seconds: started.elapsed().as_secs_f64(),
        };
        // One line per copy, so `--follow` gives one object per line.
        ctx.print(&(serde_json::to_string(&doc)? + "\n"))?;
        return Ok(r);
    }
    let text = if r.moved {
        let resumed = if s.blobs_present > 0 {
            format!(", {} found there already", thousands(s.blobs_present))
        } else {
            String::new()
        };
        format!(
            "head {} of {} at commit {}: copied {} nodes and {} commits ({}){resumed} in {:.2} s\n",
            args.head,
            args.to,
            short(&r.commit),
            thousands(s.nodes_copied),
            thousands(s.commits_copied),
            bytes(s.bytes_copied),
            started.elapsed().as_secs_f64()
        )
    } else {
        format!(
            "head {} of {} is already at commit {}: nothing to copy\n",
            args.head,
            args.to,
            short(&r.commit)
        )
    };
    ctx.print(&text)?;
    Ok(r)
}
