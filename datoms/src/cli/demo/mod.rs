//! `datoms demo`: a primary and a replica sharing one redb file. The primary loads a
//! generated data set and then makes small changes; after each, the replica catches up
//! with `restore_from` and the demo shows what that fetched next to what a full restore
//! of the same commit fetches — and checks, datom by datom, that the replica equals the
//! primary (a difference fails the command).

mod data;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datoms::{Db, IndexKind, RedbStorage};
use datoms_core::restore::Mode;
use serde::Serialize;

use super::access::Opened;
use super::output::{bytes, io_since, short, thousands, Ctx, IoJson, StatsJson};
use super::CliError;
use data::World;

/// Arguments of `datoms demo`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Columns: Δdatoms = datoms the round's transaction asserted or \
retracted; nodes / bytes / RT = tree nodes, bytes and batched round trips the restore \
fetched (RestoreStats); req / io bytes = requests and bytes the storage really served \
(counted by FaultyStorage); incr/full = incremental bytes as a share of the full \
restore's; equal = replica roots, max-eid, max-tx and every EAVT datom match the primary."
)]
pub struct Args {
    /// Directory for the redb file (kept afterwards); default: a fresh temporary
    /// directory (named on the first line of output), removed at the end — also when
    /// the demo fails or is interrupted with Ctrl-C.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// About how many datoms the primary loads before the rounds.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    datoms: usize,

    /// Rounds of small changes, each followed by an incremental restore.
    #[arg(long, value_name = "R", default_value_t = 5)]
    rounds: u32,

    /// Datoms per load transaction (at least 1).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = at_least_one())]
    batch: usize,

    /// Store a commit after every K load transactions (1: one commit per transaction).
    /// Each store ends in durable writes (an fsync on redb), so fewer, larger commits
    /// load faster; the rounds always store one commit each.
    #[arg(long, value_name = "K", default_value_t = 10, value_parser = at_least_one())]
    store_every: usize,

    /// Seed of the data generator: the same seed gives the same data and addresses.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
}

const HEAD: &str = "main";

/// A count that must be at least 1.
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

#[derive(Serialize)]
struct Load {
    datoms: u64,
    people: usize,
    companies: usize,
    commits: u64,
    nodes_written: u64,
    bytes_written: u64,
    seconds: f64,
}

#[derive(Serialize)]
struct Measured {
    stats: StatsJson,
    io: IoJson,
    seconds: f64,
}

#[derive(Serialize)]
struct Round {
    round: u32,
    commit: String,
    datoms_changed: usize,
    nodes_written: u64,
    incremental: Measured,
    full: Measured,
    bytes_ratio: f64,
    equal: bool,
    datoms_compared: u64,
}

#[derive(Serialize)]
struct Summary {
    incremental_bytes: u64,
    full_bytes: u64,
    incremental_nodes: u64,
    full_nodes: u64,
    incremental_requests: u64,
    full_requests: u64,
    bytes_ratio: f64,
    equal: bool,
}

#[derive(Serialize)]
struct Report {
    url: String,
    seed: u64,
    load: Load,
    initial_restore: Measured,
    rounds: Vec<Round>,
    summary: Summary,
    seconds: f64,
}

/// Runs `datoms demo`.
///
/// # Errors
/// [`CliError::Diverged`] if the replica ever differs from the primary; storage errors;
/// [`CliError::Interrupted`] on Ctrl-C (SIGINT). A temporary directory is removed in
/// every case.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    // Declared first so it is dropped last, after the storage has closed the file.
    let (_tempdir, dir) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| CliError::File {
                path: dir.display().to_string(),
                source,
            })?;
            (None, dir.clone())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("datoms-demo-")
                .tempdir()
                .map_err(|source| CliError::File {
                    path: std::env::temp_dir().display().to_string(),
                    source,
                })?;
            let path = t.path().to_path_buf();
            (Some(t), path)
        }
    };
    // On Ctrl-C the demo's future is dropped (closing the storage) and the temporary
    // directory goes with `_tempdir`; the signal is awaited on the runtime, so it is
    // seen at the demo's next await (every store, every restore).
    tokio::select! {
        // The signal branch is polled first, so the handler is in place before the demo
        // prints the directory or creates anything in it.
        biased;
        () = interrupted() => Err(CliError::Interrupted),
        outcome = demo(&args, ctx, &dir) => outcome,
    }
}

/// Completes on Ctrl-C (SIGINT); never, if the signal cannot be listened to.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The demo itself, in `dir`.
async fn demo(args: &Args, ctx: &Ctx, dir: &std::path::Path) -> Result<(), CliError> {
    let started = Instant::now();
    let path = dir.join("demo.redb");
    if path.exists() {
        return Err(CliError::Usage(format!(
            "{} exists: the demo starts from an empty file; remove it or pick another --dir",
            path.display()
        )));
    }
    let url = format!("redb:{}", path.display());
    let opened = Opened::wrap(
        url.clone(),
        HEAD.into(),
        Arc::new(RedbStorage::open(&path)?),
    );
    let storage = opened.storage().clone();
    let say = |text: String| -> Result<(), CliError> {
        if ctx.json {
            Ok(())
        } else {
            ctx.print(&text)
        }
    };

    say(format!(
        "datoms demo: a primary and a replica on {url}\n\
         loading ~{} datoms (people, emails, ages, friends, companies; seed {:#x}) in transactions of ~{}, storing a commit every {}\n",
        thousands(args.datoms as u64),
        args.seed,
        args.batch,
        args.store_every
    ))?;
    let (mut primary, mut world, load) = load(args, ctx, &opened).await?;
    say(format!(
        "primary: {} datoms ({} people, {} companies) in {} commits, {} nodes / {} written, {:.1} s\n",
        thousands(load.datoms),
        thousands(load.people as u64),
        thousands(load.companies as u64),
        load.commits,
        thousands(load.nodes_written),
        bytes(load.bytes_written),
        load.seconds
    ))?;

    // The replica starts from nothing: one full restore.
    let (replica, initial) = measure(&opened, || async {
        let head = opened.head_commit().await?;
        let mut r = datoms::restore_commit(&*storage, head, None, Mode::Eager).await?;
        r.stats.round_trips += 1;
        Ok(r)
    })
    .await?;
    let mut replica = replica;
    let compared = compare(&replica, &primary).map_err(|detail| CliError::Diverged {
        when: "after the initial full restore".into(),
        detail,
    })?;
    say(format!(
        "replica: full restore fetched {} nodes, {} in {} round trips ({} requests) in {:.2} s; equal to primary: yes ({} datoms compared)\n\n",
        thousands(initial.stats.nodes_fetched),
        bytes(initial.stats.bytes_fetched),
        initial.stats.round_trips,
        initial.io.requests,
        initial.seconds,
        thousands(compared)
    ))?;
    say(header())?;

    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let ops = world.round_tx();
        let report = primary.with(&ops)?;
        world.record(&report);
        let stored = datoms::store(&report.db_after, &*storage, HEAD).await?;
        primary = stored.db;

        let (caught_up, incremental) = measure(&opened, || async {
            Ok(datoms::restore_from(&replica, &*storage, HEAD).await?)
        })
        .await?;
        replica = caught_up;
        let (full_db, full) = measure(&opened, || async {
            // What a replica without db1 pays for the same commit: the head read, then
            // every node.
            let head = opened.head_commit().await?;
            let mut r = datoms::restore_commit(&*storage, head, None, Mode::Eager).await?;
            r.stats.round_trips += 1;
            Ok(r)
        })
        .await?;

        let check = compare(&replica, &primary).and_then(|n| {
            if full_db.root_addresses() == primary.root_addresses() {
                Ok(n)
            } else {
                Err("the full restore of the same commit has other roots".to_owned())
            }
        });
        let row = Round {
            round,
            commit: stored.commit.to_hex(),
            datoms_changed: report.tx_data.len(),
            nodes_written: stored.stats.nodes_written,
            bytes_ratio: ratio(incremental.stats.bytes_fetched, full.stats.bytes_fetched),
            incremental,
            full,
            equal: check.is_ok(),
            datoms_compared: *check.as_ref().unwrap_or(&0),
        };
        say(render_row(&row, &short(&stored.commit)))?;
        rounds.push(row);
        if let Err(detail) = check {
            return Err(CliError::Diverged {
                when: format!("after round {round}"),
                detail,
            });
        }
    }

    let summary = summarize(&rounds);
    let report = Report {
        url,
        seed: args.seed,
        load,
        initial_restore: initial,
        rounds,
        summary,
        seconds: started.elapsed().as_secs_f64(),
    };
    if ctx.json {
        return ctx.print_json(&report);
    }
    say(format!("\n{}\n", paragraph(&report)))
}

/// Loads the data set into the primary, storing a commit every `store_every`
/// transactions and after the last.
async fn load(args: &Args, ctx: &Ctx, opened: &Opened) -> Result<(Db, World, Load), CliError> {
    let started = Instant::now();
    let storage = opened.storage().clone();
    let mut world = World::new(args.seed);
    let mut db = Db::new(data::schema()?);
    let bar = ctx.bar(args.datoms as u64, "datoms");
    bar.set_message("loading");
    let (mut commits, mut nodes, mut written) = (0u64, 0u64, 0u64);
    // One company per ~400 datoms of people: a few hundred employers for 100k datoms.
    let companies = (args.datoms / 400).max(4);
    let mut ops = world.companies_tx(companies);
    let mut txs = 0usize;
    // At least the companies are transacted and stored, whatever --datoms says, so the
    // replica always has a head to restore.
    loop {
        let report = db.with(&ops)?;
        world.record(&report);
        db = report.db_after;
        txs += 1;
        let done = db.len() as usize >= args.datoms;
        if txs % args.store_every == 0 || done {
            let stored = datoms::store(&db, &*storage, HEAD).await?;
            db = stored.db;
            commits += 1;
            nodes += stored.stats.nodes_written;
            written += stored.stats.bytes_written;
        }
        bar.set_position(db.len());
        if done {
            break;
        }
        let left = args.datoms.saturating_sub(db.len() as usize);
        ops = world.people_tx(args.batch.min(left.max(1)));
    }
    world.discard_pending();
    bar.finish_and_clear();
    let load = Load {
        datoms: db.len(),
        people: world.people(),
        companies: world.companies(),
        commits,
        nodes_written: nodes,
        bytes_written: written,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((db, world, load))
}

/// Runs a restore, timing it and counting the storage I/O it caused.
async fn measure<F, Fut>(opened: &Opened, restore: F) -> Result<(Db, Measured), CliError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<datoms::Restored, CliError>>,
{
    let before = opened.io();
    let started = Instant::now();
    let restored = restore().await?;
    let seconds = started.elapsed().as_secs_f64();
    let io = io_since(before, opened.io());
    Ok((
        restored.db,
        Measured {
            stats: restored.stats.into(),
            io: io.into(),
            seconds,
        },
    ))
}

/// Checks the replica holds exactly the primary's database: the same roots (which by
/// content addressing means the same trees), the same id counters, and — checked
/// directly rather than trusted to the hashes — the same EAVT datoms, tx included.
/// Returns the number of datoms compared, or what differs.
fn compare(replica: &Db, primary: &Db) -> Result<u64, String> {
    if replica.root_addresses() != primary.root_addresses() {
        return Err(format!(
            "root addresses {:?} vs {:?}",
            replica.root_addresses(),
            primary.root_addresses()
        ));
    }
    if (replica.max_eid(), replica.max_tx()) != (primary.max_eid(), primary.max_tx()) {
        return Err(format!(
            "max-eid/max-tx {}/{} vs {}/{}",
            replica.max_eid(),
            replica.max_tx(),
            primary.max_eid(),
            primary.max_tx()
        ));
    }
    let datoms = |db: &Db| db.datoms(IndexKind::Eavt, &[]).map_err(|e| e.to_string());
    let mut theirs = datoms(primary)?;
    let mut count = 0u64;
    for ours in datoms(replica)? {
        let ours = ours.map_err(|e| e.to_string())?;
        match theirs.next() {
            Some(Ok(d)) if d == ours => count += 1,
            Some(Ok(d)) => return Err(format!("datom {count}: {ours:?} vs {d:?}")),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err(format!("the replica has extra datom {ours:?}")),
        }
    }
    if let Some(extra) = theirs.next() {
        return Err(format!("the replica lacks datom {extra:?}"));
    }
    Ok(count)
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn header() -> String {
    format!(
        "{:>5}  {:<12} {:>7} │ {:^37} │ {:^37} │ {:>9}  {}\n{:>5}  {:<12} {:>7} │ {:>6} {:>10} {:>3} {:>4} {:>10} │ {:>6} {:>10} {:>3} {:>4} {:>10} │ {:>9}  {}\n",
        "", "", "", "incremental restore_from", "full restore of the same commit", "bytes", "replica",
        "round", "commit", "Δdatoms", "nodes", "bytes", "RT", "req", "io bytes", "nodes", "bytes", "RT", "req", "io bytes", "incr/full", "= primary"
    )
}

fn render_row(r: &Round, commit: &str) -> String {
    let side = |m: &Measured| {
        format!(
            "{:>6} {:>10} {:>3} {:>4} {:>10}",
            thousands(m.stats.nodes_fetched),
            bytes(m.stats.bytes_fetched),
            m.stats.round_trips,
            m.io.requests,
            bytes(m.io.bytes_read)
        )
    };
    format!(
        "{:>5}  {:<12} {:>7} │ {} │ {} │ {:>8.2}%  {}\n",
        r.round,
        commit,
        r.datoms_changed,
        side(&r.incremental),
        side(&r.full),
        r.bytes_ratio * 100.0,
        if r.equal { "yes" } else { "NO" }
    )
}

fn summarize(rounds: &[Round]) -> Summary {
    let sum = |f: &dyn Fn(&Round) -> u64| rounds.iter().map(f).sum::<u64>();
    let incremental_bytes = sum(&|r| r.incremental.stats.bytes_fetched);
    let full_bytes = sum(&|r| r.full.stats.bytes_fetched);
    Summary {
        incremental_bytes,
        full_bytes,
        incremental_nodes: sum(&|r| r.incremental.stats.nodes_fetched),
        full_nodes: sum(&|r| r.full.stats.nodes_fetched),
        incremental_requests: sum(&|r| r.incremental.io.requests),
        full_requests: sum(&|r| r.full.io.requests),
        bytes_ratio: ratio(incremental_bytes, full_bytes),
        equal: rounds.iter().all(|r| r.equal),
    }
}

fn paragraph(r: &Report) -> String {
    let s = &r.summary;
    let n = r.rounds.len();
    let changed: usize = r.rounds.iter().map(|x| x.datoms_changed).sum();
    let factor = if s.incremental_bytes == 0 {
        String::from("nothing fetched")
    } else {
        format!(
            "{:.0}x fewer bytes",
            s.full_bytes as f64 / s.incremental_bytes as f64
        )
    };
    let datoms = r.rounds.last().map_or(r.load.datoms, |x| x.datoms_compared);
    format!(
        "Summary: over {n} round{} changing {} datoms of a {}-datom database, the replica \
         caught up with restore_from by fetching {} ({} nodes, {} storage requests), where \
         full restores of the same commits would have fetched {} ({} nodes, {} requests): \
         {:.2}% of the bytes, {factor}. After every round the replica's root addresses, \
         max-eid, max-tx and all {} EAVT datoms equalled the primary's — equality check {}. \
         Total time {:.1} s.",
        if n == 1 { "" } else { "s" },
        thousands(changed as u64),
        thousands(datoms),
        bytes(s.incremental_bytes),
        thousands(s.incremental_nodes),
        thousands(s.incremental_requests),
        bytes(s.full_bytes),
        thousands(s.full_nodes),
        thousands(s.full_requests),
        s.bytes_ratio * 100.0,
        thousands(datoms),
        if s.equal { "passed" } else { "FAILED" },
        r.seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datoms::{Datom, TxLogEntry, TX0};

    fn db(datoms: &[(u64, i64)], tx: u64) -> Db {
        let entry = TxLogEntry {
            tx,
            datoms: datoms
                .iter()
                .map(|(e, v)| Datom::new(*e, ":person/age", *v, tx))
                .collect(),
            id: None,
        };
        Db::new(data::schema().unwrap())
            .apply_log_entry(entry)
            .unwrap()
    }

    #[test]
    fn compare_accepts_equal_dbs_and_names_what_differs() {
        let a = db(&[(1, 30), (2, 40)], TX0 + 1);
        assert_eq!(compare(&a, &db(&[(1, 30), (2, 40)], TX0 + 1)), Ok(2));
        // A different value changes the roots.
        assert!(compare(&a, &db(&[(1, 30), (2, 41)], TX0 + 1))
            .unwrap_err()
            .contains("root addresses"));
        // The same trees after an empty transaction: only max-tx tells them apart.
        let later = a
            .apply_log_entry(TxLogEntry {
                tx: TX0 + 2,
                datoms: Vec::new(),
                id: None,
            })
            .unwrap();
        assert_eq!(later.root_addresses(), a.root_addresses());
        assert!(compare(&a, &later).unwrap_err().contains("max-eid/max-tx"));
    }
}
