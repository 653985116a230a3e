//! `datoms gc`: delete the blobs no retained commit reaches ([`datoms::storage::gc`]),
//! with a progress bar and a summary.

use std::time::{Duration, Instant};

use datoms::storage::gc::{gc_with, GcOptions, GcPhase, GcProgress, GcReport, Retention};
use serde::Serialize;

use super::access::{Create, Opened};
use super::output::{bytes, thousands, Ctx};
use super::{lock, CliError, DbArgs};

/// Arguments of `datoms gc`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Marks from every head, keeping the last K commits of each \
(--keep-last, default 1: the heads alone) and/or those younger than a duration \
(--keep-younger), then deletes the blobs none of them reaches that were written longer \
ago than the grace period. The grace period must be longer than any store or restore \
that may run meanwhile (a writer's new nodes are unreachable until its head moves). \
Durations: a number and a unit, s, m, h, d or w (90s, 15m, 36h, 7d). Safe beside \
writers and readers; a killed run leaves a consistent store, and running again \
finishes the job."
)]
pub struct Args {
    /// Storage URL, e.g. redb:./people.datoms.
    #[arg(long, value_name = "URL", env = "DATOMS_DB")]
    db: String,

    /// Keep the last K commits of every head (1: the heads alone).
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    keep_last: u64,

    /// Also keep every commit younger than this.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    keep_younger: Option<Duration>,

    /// Unreachable blobs younger than this stay.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "1h")]
    grace: Duration,

    /// Report what would be deleted, and delete nothing.
    #[arg(long)]
    dry_run: bool,

    /// How long to wait for a file another process holds (see `datoms transact`).
    #[arg(long, value_name = "SECONDS", env = "DATOMS_LOCK_WAIT", default_value_t = lock::DEFAULT_LOCK_WAIT_SECONDS)]
    lock_wait: u64,
}

/// A duration: a whole number and a unit (`s`, `m`, `h`, `d`, `w`), e.g. `36h`.
fn duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        format!(
            "{text:?} is no duration: write a whole number and a unit, s, m, h, d or w \
             (90s, 15m, 36h, 7d)"
        )
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long a duration"))
}

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    gc: GcReport,
    keep_last: u64,
    keep_younger_seconds: Option<u64>,
    grace_seconds: u64,
    seconds: f64,
}

/// Runs `datoms gc`.
///
/// # Errors
/// Open errors; storage errors; a blob a retained commit reaches that is missing (the
/// store is damaged: nothing is deleted).
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let started = Instant::now();
    let db_args = DbArgs {
        db: args.db.clone(),
        head: "main".to_owned(),
        lock_wait: args.lock_wait,
    };
    let opened = Opened::open(&db_args, Create::Existing, ctx).await?;
    let options = GcOptions {
        retention: Retention {
            keep_last: usize::try_from(args.keep_last).unwrap_or(usize::MAX),
            keep_younger: args.keep_younger,
        },
        grace: args.grace,
        dry_run: args.dry_run,
    };
    let bar = ctx.bar(0, "blobs");
    let shown = bar.clone();
    let mut progress = move |p: GcProgress| {
        let message = match p.phase {
            GcPhase::Listing => "listing",
            GcPhase::Marking => "marking",
            GcPhase::Sweeping => "deleting",
        };
        shown.set_message(message);
        shown.set_length(p.total.unwrap_or(p.done));
        shown.set_position(p.done);
    };
    let report = gc_with(&**opened.storage(), &options, &mut progress).await;
    bar.finish_and_clear();
    let report = report?;
    if ctx.json {
        return ctx.print_json(&Report {
            gc: report,
            keep_last: args.keep_last,
            keep_younger_seconds: args.keep_younger.map(|d| d.as_secs()),
            grace_seconds: args.grace.as_secs(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let verb = if report.dry_run {
        "dry run: would delete"
    } else {
        "deleted"
    };
    ctx.print(&format!(
        "{verb} {} blobs ({}) of {} ({}), {:.2} s\n    \
         reachable: {} blobs from {} head{} ({} commit{} retained); \
         unreachable but younger than the grace period: {}{}\n",
        thousands(report.collected),
        bytes(report.collected_bytes),
        thousands(report.blobs),
        bytes(report.bytes),
        started.elapsed().as_secs_f64(),
        thousands(report.reachable),
        report.heads,
        if report.heads == 1 { "" } else { "s" },
        thousands(report.retained_commits),
        if report.retained_commits == 1 {
            ""
        } else {
            "s"
        },
        thousands(report.young),
        if report.skipped > 0 {
            format!(
                "; {} left (written again or gone meanwhile)",
                thousands(report.skipped)
            )
        } else {
            String::new()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit_and_nothing_else() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "h",
            "10",
            "1.5h",
            "-1h",
            "10 h",
            "10x",
            "99999999999999999999w",
        ] {
            assert!(duration(bad).is_err(), "{bad:?} parsed");
        }
    }
}
