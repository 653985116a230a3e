//! Many writers on one head: what a peer's rebase costs, how fast a peer with a long
//! outbox opens, and how many transactions per second 1, 2, 4 and 8 writers land with
//! and without group commit — all in one run, on the same storage, side by side.
//!
//! The storage is the in-memory backend behind [`FaultyStorage`] with a fixed latency
//! per request (1 ms by default), so round trips cost what they cost against a nearby
//! remote store and the figures do not depend on a disk.
//!
//! `datoms-bench writers [--quick]`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datoms_core::tx::TxOp;
use datoms_core::{Db, Schema};
use datoms_storage::{
    store, FaultyStorage, MemoryOutbox, MemoryStorage, Outbox, Peer, PeerOptions, Storage,
};

use crate::error::BenchError;

/// Sizes of one run.
#[derive(Clone, Debug)]
pub struct WritersConfig {
    /// Pending transactions of the rebase rows.
    pub pending: Vec<usize>,
    /// How many commits (of 10 transactions each) the head moves before a rebase.
    pub moved: Vec<usize>,
    /// Pending transactions of the open row.
    pub open_pending: usize,
    /// Writer counts of the throughput rows.
    pub writers: Vec<usize>,
    /// Transactions each writer makes in a throughput row.
    pub txs_per_writer: usize,
    /// Latency of every storage request.
    pub latency: Duration,
}

impl WritersConfig {
    /// The figures of docs/benchmarks.md.
    pub fn full() -> WritersConfig {
        WritersConfig {
            pending: vec![1, 10, 100, 1000],
            moved: vec![1, 10],
            open_pending: 20_000,
            writers: vec![1, 2, 4, 8],
            txs_per_writer: 200,
            latency: Duration::from_millis(1),
        }
    }

    /// Small sizes, every row exercised.
    pub fn quick() -> WritersConfig {
        WritersConfig {
            pending: vec![1, 10],
            moved: vec![1],
            open_pending: 500,
            writers: vec![1, 2],
            txs_per_writer: 20,
            latency: Duration::from_millis(1),
        }
    }
}

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:person/email {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :person/name {:db/valueType :db.type/string}
          :person/visits {:db/valueType :db.type/long}}",
    )
    .unwrap_or_default()
}

fn tx(writer: usize, n: usize) -> Result<Vec<TxOp>, BenchError> {
    datoms_core::parse_tx(
        &format!(
            "[{{:person/email \"w{writer}-{n}@x\" :person/name \"w{writer}\" :person/visits {n}}}]"
        ),
        &schema(),
    )
    .map_err(|e| BenchError::Inconsistent(e.to_string()))
}

fn options(max_batch: usize) -> PeerOptions {
    PeerOptions {
        schema: schema(),
        max_batch,
        max_attempts: u32::MAX,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(50),
        ..PeerOptions::default()
    }
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Inconsistent(e.to_string())
}

type Faulty = Arc<FaultyStorage<Arc<MemoryStorage>>>;

/// A storage with a 10,000-entity db at its head.
async fn seeded(latency: Duration) -> Result<(Arc<MemoryStorage>, Faulty), BenchError> {
    let inner = Arc::new(MemoryStorage::new());
    let mut db = Db::new(schema());
    for chunk in 0..10 {
        let ops: Vec<TxOp> = (0..1000)
            .map(|i| tx(99, chunk * 1000 + i))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        db = db.with(&ops).map_err(err)?.db_after;
    }
    store(&db, &*inner, "main").await.map_err(err)?;
    let faulty = Arc::new(FaultyStorage::new(inner.clone()));
    faulty.faults().set_latency(latency);
    Ok((inner, faulty))
}

async fn open(storage: &Faulty, max_batch: usize) -> Result<Peer, BenchError> {
    let s: Arc<dyn Storage> = storage.clone();
    Peer::open(
        s,
        "main",
        Outbox::memory(&MemoryOutbox::new()).map_err(err)?,
        options(max_batch),
    )
    .await
    .map_err(err)
}

/// One rebase row.
#[derive(Clone, Debug)]
pub struct RebaseRow {
    /// Pending transactions rebased.
    pub pending: usize,
    /// Commits the head moved.
    pub moved: usize,
    /// Wall time of the pull (restore, walk, rebase).
    pub ms: f64,
    /// Requests.
    pub round_trips: u64,
    /// Bytes fetched.
    pub bytes: u64,
    /// Commits read for landed ids.
    pub commits_walked: u64,
}

/// One throughput row.
#[derive(Clone, Debug)]
pub struct ThroughputRow {
    /// Writers.
    pub writers: usize,
    /// Group commit on.
    pub group_commit: bool,
    /// Transactions landed per second.
    pub tps: f64,
    /// Commits written.
    pub commits: u64,
    /// Rebases (conflicts) per landed commit.
    pub conflicts_per_commit: f64,
    /// Transactions found twice or missing (must be 0).
    pub lost_or_duplicated: u64,
}

/// Opening a peer with a long outbox.
#[derive(Clone, Debug, Default)]
pub struct OpenRow {
    /// Pending transactions in the outbox.
    pub pending: usize,
    /// Opening onto the head the pending transactions were resolved on: their recorded
    /// datoms are replayed.
    pub replay_ms: f64,
    /// Opening after another writer moved the head by one commit: the commit is read
    /// for landed ids and every pending transaction is resolved again.
    pub resolve_ms: f64,
}

/// The whole run.
#[derive(Clone, Debug, Default)]
pub struct WritersReport {
    /// Rebase cost rows.
    pub rebase: Vec<RebaseRow>,
    /// Opening a peer with `open_pending` pending transactions.
    pub open: OpenRow,
    /// Throughput rows.
    pub throughput: Vec<ThroughputRow>,
}

async fn rebase_row(
    c: &WritersConfig,
    pending: usize,
    moved: usize,
) -> Result<RebaseRow, BenchError> {
    let (_, storage) = seeded(c.latency).await?;
    let a = open(&storage, 1024).await?;
    let b = open(&storage, 1024).await?;
    for n in 0..pending {
        a.transact(&tx(1, n)?).map_err(err)?;
    }
    for m in 0..moved {
        for n in 0..10 {
            b.transact(&tx(2, m * 10 + n)?).map_err(err)?;
        }
        b.push().await.map_err(err)?;
    }
    let start = Instant::now();
    let r = a.pull().await.map_err(err)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if r.stats.reapplied != pending as u64 || !r.rejected.is_empty() {
        return Err(err(format!("rebase of {pending}: {r:?}")));
    }
    Ok(RebaseRow {
        pending,
        moved,
        ms,
        round_trips: r.stats.round_trips,
        bytes: r.stats.bytes_fetched,
        commits_walked: r.stats.commits_walked,
    })
}

async fn open_row(c: &WritersConfig) -> Result<OpenRow, BenchError> {
    let (_, storage) = seeded(c.latency).await?;
    let dir = tempfile::tempdir().map_err(|e| BenchError::io("a temporary directory", e))?;
    let path = dir.path().join("peer.outbox");
    {
        let s: Arc<dyn Storage> = storage.clone();
        let outbox = Outbox::open(&path).map_err(err)?;
        let p = Peer::open(s, "main", outbox, options(1024))
            .await
            .map_err(err)?;
        for n in 0..c.open_pending {
            p.transact(&tx(1, n)?).map_err(err)?;
        }
    }
    let reopen = || async {
        let start = Instant::now();
        let s: Arc<dyn Storage> = storage.clone();
        let p = Peer::open(s, "main", Outbox::open(&path).map_err(err)?, options(1024))
            .await
            .map_err(err)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if p.pending().len() != c.open_pending {
            return Err(err("the reopened peer lost pending transactions"));
        }
        Ok::<_, BenchError>((p.db().root_addresses(), ms))
    };
    let (replayed, replay_ms) = reopen().await?;
    // The replayed db is the one resolving every transaction again gives.
    let s: Arc<dyn Storage> = storage.clone();
    let mut expected = datoms_storage::restore(s, "main").await.map_err(err)?.db;
    for n in 0..c.open_pending {
        expected = expected.with(&tx(1, n)?).map_err(err)?.db_after;
    }
    if expected.root_addresses() != replayed {
        return Err(err("the replayed db differs from a fresh resolution"));
    }
    // Another writer lands one commit: the recorded datoms no longer stand on the head.
    let other = open(&storage, 1024).await?;
    other.transact(&tx(2, 0)?).map_err(err)?;
    other.push().await.map_err(err)?;
    let (_, resolve_ms) = reopen().await?;
    Ok(OpenRow {
        pending: c.open_pending,
        replay_ms,
        resolve_ms,
    })
}

async fn throughput_row(
    c: &WritersConfig,
    writers: usize,
    group_commit: bool,
) -> Result<ThroughputRow, BenchError> {
    let (inner, storage) = seeded(c.latency).await?;
    let commits = Arc::new(AtomicU64::new(0));
    let rebases = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let peer = Arc::new(open(&storage, if group_commit { 1024 } else { 1 }).await?);
        let done = Arc::new(AtomicBool::new(false));
        let (commits, rebases) = (commits.clone(), rebases.clone());
        let pusher = {
            let (peer, done) = (peer.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    if peer.pending().is_empty() {
                        if finished {
                            return Ok::<_, BenchError>(());
                        }
                        tokio::time::sleep(Duration::from_micros(200)).await;
                        continue;
                    }
                    let r = peer.push_until_landed().await.map_err(err)?;
                    commits.fetch_add(r.commits.len() as u64, Ordering::Relaxed);
                    rebases.fetch_add(u64::from(r.rebases), Ordering::Relaxed);
                }
            })
        };
        let txs = c.txs_per_writer;
        tasks.push(tokio::spawn(async move {
            for n in 0..txs {
                peer.transact(&tx(w, n)?).map_err(err)?;
                // A busy app writes every few hundred microseconds.
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
            done.store(true, Ordering::SeqCst);
            pusher.await.map_err(err)??;
            Ok::<_, BenchError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(err)??;
    }
    let secs = start.elapsed().as_secs_f64();
    let total = (writers * c.txs_per_writer) as u64;
    // Every transaction exactly once: one entity per email, 10,000 seeded plus these.
    let s: Arc<dyn Storage> = inner;
    let head = datoms_storage::restore(s, "main").await.map_err(err)?.db;
    let people = head
        .datoms(
            datoms_core::IndexKind::Aevt,
            &[datoms_core::Component::A(":person/email".into())],
        )
        .map_err(err)?
        .count() as u64;
    let visits = head
        .datoms(
            datoms_core::IndexKind::Aevt,
            &[datoms_core::Component::A(":person/visits".into())],
        )
        .map_err(err)?
        .count() as u64;
    let expected = 10_000 + total;
    let commits = commits.load(Ordering::Relaxed);
    Ok(ThroughputRow {
        writers,
        group_commit,
        tps: total as f64 / secs,
        commits,
        conflicts_per_commit: rebases.load(Ordering::Relaxed) as f64 / commits.max(1) as f64,
        lost_or_duplicated: expected.abs_diff(people) + expected.abs_diff(visits),
    })
}

/// Runs every row.
///
/// # Errors
/// A failed peer operation, or a row whose result is inconsistent.
pub async fn run_writers(c: &WritersConfig) -> Result<WritersReport, BenchError> {
    let mut report = WritersReport::default();
    for &moved in &c.moved {
        for &pending in &c.pending {
            report.rebase.push(rebase_row(c, pending, moved).await?);
        }
    }
    report.open = open_row(c).await?;
    for &writers in &c.writers {
        for group in [false, true] {
            report
                .throughput
                .push(throughput_row(c, writers, group).await?);
        }
    }
    Ok(report)
}

impl WritersReport {
    /// The report as markdown tables.
    pub fn to_markdown(&self, c: &WritersConfig) -> String {
        let mut out = format!(
            "### Rebase cost (10,000-entity db, {} ms per request)\n\n| pending txs | head moved (commits) | ms | round trips | bytes fetched | commits walked |\n|---:|---:|---:|---:|---:|---:|\n",
            c.latency.as_millis()
        );
        for r in &self.rebase {
            out.push_str(&format!(
                "| {} | {} | {:.1} | {} | {} | {} |\n",
                r.pending, r.moved, r.ms, r.round_trips, r.bytes, r.commits_walked
            ));
        }
        let o = &self.open;
        out.push_str(&format!(
            "\n### Opening a peer with {} pending transactions (file outbox)\n\n| head | ms | what runs |\n|---|---:|---|\n| unchanged | {:.0} | read the outbox, restore the head lazily, replay the recorded datoms |\n| moved one commit | {:.0} | the same, then read the commit for landed ids and resolve every transaction again |\n\nresolve / replay: {:.1}×\n",
            o.pending,
            o.replay_ms,
            o.resolve_ms,
            o.resolve_ms / o.replay_ms.max(1e-9)
        ));
        out.push_str(&format!(
            "\n### Throughput, {} transactions per writer\n\n| writers | group commit | txs/s landed | commits | conflicts per commit | lost or duplicated | group / no group |\n|---:|---|---:|---:|---:|---:|---:|\n",
            c.txs_per_writer
        ));
        for r in &self.throughput {
            let ratio = self
                .throughput
                .iter()
                .find(|o| o.writers == r.writers && !o.group_commit)
                .filter(|_| r.group_commit)
                .map(|o| format!("{:.1}×", r.tps / o.tps))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | {} | {:.0} | {} | {:.2} | {} | {} |\n",
                r.writers,
                if r.group_commit { "on" } else { "off" },
                r.tps,
                r.commits,
                r.conflicts_per_commit,
                r.lost_or_duplicated,
                ratio
            ));
        }
        out
    }

    /// Problems that make the report inconsistent.
    pub fn check(&self) -> Vec<String> {
        self.throughput
            .iter()
            .filter(|r| r.lost_or_duplicated > 0)
            .map(|r| {
                format!(
                    "{} writers (group commit {}): {} transactions lost or duplicated",
                    r.writers, r.group_commit, r.lost_or_duplicated
                )
            })
            .collect()
    }
}
