//! The measurements, in the order a run makes them: the workload and transact throughput,
//! the JS peer, each backend (full store, full restore, incremental restore of a delta,
//! the same with per-request latency), then on the first backend the delta-size curve
//! (tree restore vs log replay) and a replica several commits behind, then the db-size
//! curve, then resident memory in a child process.
//!
//! Every restored replica is compared with its primary (roots, counters, datom count);
//! a difference stops the run with [`BenchError::Inconsistent`].

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datoms_core::query::{q, Input};
use datoms_core::tree::Node;
use datoms_core::tx::TxOp;
use datoms_core::{Address, Db, IndexKind, Schema};
use datoms_storage::{
    restore_from, store, sync, FaultyStorage, IoCounters, MemoryStorage, RestoreStats, Storage,
    SyncPolicy,
};

use crate::backends::{self, Backend, Opened};
use crate::error::BenchError;
use crate::measure::{self, median_time, ms, Machine};
use crate::peer::{self, PeerRun};
use crate::report::{
    BackendFigures, BehindFigures, DeltaFigures, GrowthFigures, Io, LevelCount, LevelSizes,
    MemoryFigures, QueryFigures, Report, SmallFigures, StoreSize, TransactFigures, WorkloadFigures,
};
use crate::workload::{self, db_checksum, workload_checksum, GenTx, Generator, Op, Person};

/// What a run measures, and how hard.
#[derive(Clone, Debug)]
pub struct Config {
    /// `quick` or `full` (a label for the report).
    pub mode: String,
    /// The command line, for the report.
    pub command: String,
    /// Workload seed (the JS peer gets the same one).
    pub seed: u64,
    /// Datoms of the base workload (the targets are defined at 1M).
    pub datoms: u64,
    /// People per transaction of the base workload.
    pub batch: usize,
    /// Datoms of the one-person-per-transaction workload.
    pub small_datoms: u64,
    /// The delta the targets are about (100 datoms).
    pub target_delta: usize,
    /// Delta sizes of the delta curve.
    pub deltas: Vec<usize>,
    /// Commits-behind counts to measure (each commit a `target_delta` delta).
    pub behind: Vec<usize>,
    /// Db sizes of the growth curve.
    pub growth: Vec<u64>,
    /// Per-request latency of the latency runs.
    pub latency: Duration,
    /// Runs of each restore timing (the median is reported).
    pub repeats: usize,
    /// Runs of each transact timing, ours and the peer's.
    pub transact_repeats: usize,
    /// Backends, in report order (the first one also runs the curves).
    pub backends: Vec<Backend>,
    /// The JS peer's folder, or `None` to leave the peer out.
    pub peer: Option<PathBuf>,
    /// This harness's executable, run as a child to measure resident memory; `None` to
    /// leave memory out.
    pub rss_exe: Option<PathBuf>,
    /// Where scratch folders go (`None`: the system's temp dir).
    pub scratch: Option<PathBuf>,
    /// Keep the dump the memory child restores here (to profile the child by hand).
    pub keep_dump: Option<PathBuf>,
    /// Print progress to stderr.
    pub verbose: bool,
}

impl Config {
    /// The CI mode: small sizes, one run each, every part exercised (a few seconds in a
    /// debug build). Its figures mean nothing; its consistency checks do.
    pub fn quick() -> Config {
        Config {
            mode: "quick".into(),
            command: "datoms-bench --quick".into(),
            seed: 42,
            datoms: 4_000,
            batch: 100,
            small_datoms: 300,
            target_delta: 100,
            deltas: vec![1, 10, 100, 1000],
            behind: vec![1, 2, 3, 8, 9],
            growth: vec![1_000, 4_000],
            latency: Duration::from_millis(20),
            repeats: 1,
            transact_repeats: 1,
            backends: backends::all(),
            peer: Some(peer::default_dir()),
            rss_exe: None,
            scratch: None,
            keep_dump: None,
            verbose: false,
        }
    }

    /// The real figures: 1M datoms, medians of several runs.
    pub fn full() -> Config {
        Config {
            mode: "full".into(),
            command: "datoms-bench --full".into(),
            datoms: 1_000_000,
            batch: 1000,
            small_datoms: 20_000,
            deltas: vec![1, 10, 100, 1000, 10_000],
            behind: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 20],
            growth: vec![10_000, 100_000, 1_000_000],
            repeats: 5,
            transact_repeats: 3,
            verbose: true,
            ..Config::quick()
        }
    }

    fn log(&self, what: impl AsRef<str>) {
        if self.verbose {
            eprintln!("[datoms-bench] {}", what.as_ref());
        }
    }
}

/// Runs every measurement `config` asks for and returns the report, targets evaluated.
///
/// # Errors
/// A failing transaction, store or restore; a replica that differs from its primary; a
/// peer that cannot run (when asked for) or disagrees on a checksum.
pub async fn run(config: &Config) -> Result<Report, BenchError> {
    let started = Instant::now();
    let mut report = Report {
        mode: config.mode.clone(),
        command: config.command.clone(),
        machine: Machine::probe(),
        seed: config.seed,
        ..Report::default()
    };
    let schema = workload::schema()?;
    let scratch = match &config.scratch {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|e| BenchError::io("creating a scratch folder", e))?;

    // ---- workload and transact throughput ---------------------------------------------
    config.log(format!(
        "generating {} datoms (seed {})",
        config.datoms, config.seed
    ));
    let mut gen = Generator::new(config.seed);
    let base = gen.base(config.datoms, config.batch);
    let after_base = gen.clone();
    let deltas_generated: Vec<GenTx> = config.deltas.iter().map(|k| gen.delta(*k)).collect();
    let ops: Vec<Vec<TxOp>> = base.iter().map(GenTx::to_tx_ops).collect();
    let base_datoms: u64 = base.iter().map(|t| t.datoms() as u64).sum();
    config.log("transacting");
    let (primary, t) = median_time(config.transact_repeats, || async {
        transact_all(&schema, &ops)
    })
    .await?;
    let (db_sum, n) = db_checksum(&primary)?;
    if n != base_datoms {
        return Err(BenchError::Inconsistent(format!(
            "the workload counts {base_datoms} datoms, the db holds {n}"
        )));
    }
    report.workload = WorkloadFigures {
        datoms: n,
        people: after_base.people(),
        txs: base.len(),
        batch: config.batch,
        workload_checksum: workload_checksum(&base),
        delta_checksum: workload_checksum(&deltas_generated),
        db_checksum: db_sum,
    };
    drop(ops);
    drop(base);
    report.query = measure_queries(config, &primary).await?;
    let small = Generator::new(config.seed).base(config.small_datoms, 1);
    let small_ops: Vec<Vec<TxOp>> = small.iter().map(GenTx::to_tx_ops).collect();
    let (small_db, small_t) = median_time(config.transact_repeats, || async {
        transact_all(&schema, &small_ops)
    })
    .await?;
    let (small_sum, small_n) = db_checksum(&small_db)?;
    // The same, merging every transaction into the trees at once (no edit buffer): what
    // a small transaction cost before, measured in this run.
    let (eager_db, eager_t) = median_time(config.transact_repeats, || async {
        transact_onto(&Db::new(schema.clone()).with_edit_buffer(0), &small_ops)
    })
    .await?;
    if eager_db.root_addresses() != small_db.root_addresses() {
        return Err(BenchError::Inconsistent(
            "merging each small transaction at once gave other roots".into(),
        ));
    }
    drop(eager_db);
    let people: Vec<Person> = small
        .iter()
        .flat_map(|t| &t.ops)
        .filter_map(|op| match op {
            Op::New(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let follow_ons = [
        crate::small::adds(&people, people.len()),
        crate::small::mix(&people, people.len()),
    ];
    let mut follow_on = Vec::new();
    for txs in &follow_ons {
        let (db, t) = median_time(config.transact_repeats, || async {
            transact_onto(&small_db, txs)
        })
        .await?;
        let (sum, _) = db_checksum(&db)?;
        let datoms: usize = db.pending_log()[small.len()..]
            .iter()
            .map(|e| e.datoms.len())
            .sum();
        follow_on.push(SmallFigures {
            txs: txs.len(),
            datoms: datoms as u64,
            ms: ms(t),
            db_checksum: sum,
        });
    }
    let [adds, mix]: [SmallFigures; 2] = follow_on
        .try_into()
        .map_err(|_| BenchError::Inconsistent("two follow-on workloads".into()))?;
    report.transact = TransactFigures {
        datoms: n,
        txs: report.workload.txs,
        ms: ms(t),
        datoms_per_s: n as f64 / t.as_secs_f64().max(1e-9),
        small_datoms: small_n,
        small_txs: small.len(),
        small_ms: ms(small_t),
        small_datoms_per_s: small_n as f64 / small_t.as_secs_f64().max(1e-9),
        small_db_checksum: small_sum,
        small_eager_ms: ms(eager_t),
        adds,
        mix,
    };
    drop((small_db, small_ops, small));

    // ---- the JS peer -------------------------------------------------------------------
    if let Some(dir) = &config.peer {
        config.log("running the Datascript peer");
        let what = PeerRun {
            seed: config.seed,
            datoms: config.datoms,
            batch: config.batch,
            small_datoms: config.small_datoms,
            deltas: config.deltas.clone(),
            repeats: config.transact_repeats,
        };
        let dir = dir.clone();
        let figures = tokio::task::spawn_blocking(move || peer::run(&dir, &what))
            .await
            .map_err(|e| BenchError::Peer(format!("the peer task failed: {e}")))??;
        report.peer = Some(figures);
    }

    // ---- backends side by side ---------------------------------------------------------
    let mut first: Option<Live> = None;
    for (i, backend) in config.backends.iter().enumerate() {
        config.log(format!("backend {}", backend.name));
        let (figures, live) =
            measure_backend(config, backend, &primary, &after_base, scratch.path()).await?;
        if i == 0 {
            report.store_size = store_size(&live).await?;
            first = Some(live);
        }
        report.backends.push(figures);
    }
    drop(primary);

    // ---- resident memory (child process) -----------------------------------------------
    if let (Some(exe), Some(live)) = (&config.rss_exe, &first) {
        config.log("measuring resident memory in a child process");
        let dump = scratch.path().join("db.dump");
        write_dump(&live.storage, live.base_commit, &dump).await?;
        report.memory = Some(run_rss_child(exe, &dump)?);
        match &config.keep_dump {
            Some(keep) => std::fs::rename(&dump, keep)
                .or_else(|_| std::fs::copy(&dump, keep).map(|_| ()))
                .map_err(|e| {
                    BenchError::io(format!("keeping the dump at {}", keep.display()), e)
                })?,
            None => {
                std::fs::remove_file(&dump).map_err(|e| BenchError::io("removing the dump", e))?
            }
        }
    }

    // ---- the curves on the first backend -----------------------------------------------
    if let Some(mut live) = first.take() {
        for k in &config.deltas {
            config.log(format!("delta of {k} datoms"));
            report
                .deltas
                .push(measure_delta(config, &mut live, *k).await?);
        }
        config.log("replicas behind");
        report.behind = measure_behind(config, &mut live).await?;
    }

    // ---- the db-size curve (memory backend) --------------------------------------------
    let mem = backends::all().into_iter().find(|b| b.name == "mem");
    for size in &config.growth {
        let reuse = (*size == config.datoms)
            .then(|| report.backends.iter().find(|b| b.name == "mem"))
            .flatten();
        let g = match (reuse, &mem) {
            (Some(b), _) => growth_from(b, report.transact.ms, report.workload.datoms),
            (None, Some(mem)) => {
                config.log(format!("growth: {size} datoms"));
                let mut gen = Generator::new(config.seed);
                let base = gen.base(*size, config.batch);
                let ops: Vec<Vec<TxOp>> = base.iter().map(GenTx::to_tx_ops).collect();
                let start = Instant::now();
                let db = transact_all(&schema, &ops)?;
                let transact_ms = ms(start.elapsed());
                drop(ops);
                let datoms = db.len();
                let (b, _) = measure_backend(config, mem, &db, &gen, scratch.path()).await?;
                growth_from(&b, transact_ms, datoms)
            }
            (None, None) => continue,
        };
        report.growth.push(g);
    }

    report.machine.load_end = measure::load_average();
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.evaluate_targets();
    Ok(report)
}

/// The join query and the pull of the peer comparison, on the base db.
async fn measure_queries(config: &Config, db: &Db) -> Result<QueryFigures, BenchError> {
    config.log("join query and pull");
    let (rows, join_t) = median_time(config.transact_repeats, || async {
        Ok::<_, BenchError>(q(workload::JOIN_QUERY, &[Input::Db(db)])?.len() as u64)
    })
    .await?;
    let people = db.max_eid().min(workload::PULL_ENTITIES);
    let eids: Vec<u64> = (1..=people).collect();
    let (pulled, pull_t) = median_time(config.transact_repeats, || async {
        Ok::<_, BenchError>(db.pull_many(workload::PULL_PATTERN, &eids)?.len() as u64)
    })
    .await?;
    Ok(QueryFigures {
        join_ms: ms(join_t),
        join_rows: rows,
        pull_ms: ms(pull_t),
        pull_entities: pulled,
    })
}

fn growth_from(b: &BackendFigures, transact_ms: f64, datoms: u64) -> GrowthFigures {
    GrowthFigures {
        datoms,
        transact_ms,
        store_ms: b.store_ms,
        store_bytes: b.store_bytes,
        full_ms: b.full_ms,
        full: b.full,
        incremental_ms: b.incremental_ms,
        incremental: b.incremental,
        changed_nodes: b.changed_nodes,
    }
}

/// Transacts `txs` into an empty db, one `Db::with` each.
pub(crate) fn transact_all(schema: &Schema, txs: &[Vec<TxOp>]) -> Result<Db, BenchError> {
    transact_onto(&Db::new(schema.clone()), txs)
}

/// `txs` transacted one by one onto `db`, then the three trees observed, so the time
/// includes merging whatever the transactions buffered (not encoding nodes: no address
/// is computed, as none was before the edit buffer).
fn transact_onto(db: &Db, txs: &[Vec<TxOp>]) -> Result<Db, BenchError> {
    let mut db = db.clone();
    for ops in txs {
        db = db.with(ops)?.db_after;
    }
    for kind in IndexKind::ALL {
        db.tree(kind);
    }
    Ok(db)
}

/// The same db built again from its pending log (same trees by history independence),
/// with none of its nodes marked as stored: what a store into a new backend needs.
fn fresh_copy(db: &Db) -> Result<Db, BenchError> {
    let mut out = Db::with_config(db.schema().clone(), db.config());
    for entry in db.pending_log() {
        out = out.apply_log_entry((*entry).clone())?;
    }
    if out.root_addresses() != db.root_addresses() {
        return Err(BenchError::Inconsistent(
            "replaying a db's log gave other roots".into(),
        ));
    }
    Ok(out)
}

/// Fails unless `replica` is `primary`: same roots, counters and size.
fn same(replica: &Db, primary: &Db, what: &str) -> Result<(), BenchError> {
    if replica.root_addresses() != primary.root_addresses()
        || replica.max_tx() != primary.max_tx()
        || replica.max_eid() != primary.max_eid()
        || replica.len() != primary.len()
    {
        return Err(BenchError::Inconsistent(format!(
            "{what}: the replica ({replica:?}) differs from the primary ({primary:?})"
        )));
    }
    Ok(())
}

type Counted = FaultyStorage<Arc<dyn Storage>>;

/// A backend kept open after its measurements: the first one runs the curves.
struct Live {
    storage: Counted,
    /// The primary at the head.
    primary: Db,
    /// A replica at the head.
    replica: Db,
    /// The generator, positioned after what `primary` holds.
    gen: Generator,
    /// The commit of the base workload (what the memory child restores).
    base_commit: Address,
    /// The db of the base commit.
    base_db: Db,
    /// What the base store reported writing.
    base_store_bytes: u64,
    _opened: Opened,
    _dir: tempfile::TempDir,
}

fn requests(before: IoCounters, after: IoCounters) -> u64 {
    (after.gets + after.head_reads) - (before.gets + before.head_reads)
}

fn io(stats: RestoreStats, requests: u64) -> Io {
    Io {
        round_trips: stats.round_trips,
        requests,
        nodes: stats.nodes_fetched,
        bytes: stats.bytes_fetched,
    }
}

/// Full store, full restore, a `target_delta` delta stored and restored incrementally,
/// then both restores again with per-request latency.
async fn measure_backend(
    config: &Config,
    backend: &Backend,
    base: &Db,
    after_base: &Generator,
    scratch: &Path,
) -> Result<(BackendFigures, Live), BenchError> {
    let repeats = config.repeats;
    let dir = tempfile::tempdir_in(scratch)
        .map_err(|e| BenchError::io("creating a backend folder", e))?;
    let opened = (backend.open)(dir.path().to_path_buf()).await?;
    let storage: Counted = FaultyStorage::new(opened.storage.clone());
    let db0 = fresh_copy(base)?;
    let empty = Db::with_config(db0.schema().clone(), db0.config());

    let start = Instant::now();
    let s0 = store(&db0, &storage, "main").await?;
    let store_ms = ms(start.elapsed());
    let store_requests = storage.counters().requests();
    drop(db0);

    // The first restore: its commit's manifest names every node, so it is one batch.
    let before = storage.counters();
    let first = restore_from(&empty, &storage, "main").await?;
    let first_io = io(first.stats, requests(before, storage.counters()));
    same(&first.db, &s0.db, "first full restore")?;

    let mut gen = after_base.clone();
    let delta = gen.delta(config.target_delta);
    let report = s0.db.with(&delta.to_tx_ops())?;
    let delta_datoms = report.tx_data.len() as u64;
    let s1 = store(&report.db_after, &storage, "main").await?;

    let r0 = first.db;
    let before = storage.counters();
    let (incr, incr_t) = median_time(repeats, || restore_from(&r0, &storage, "main")).await?;
    let incr_io = io(
        incr.stats,
        requests(before, storage.counters()) / repeats.max(1) as u64,
    );
    same(&incr.db, &s1.db, "incremental restore")?;
    let incremental_levels = missing_by_level(&s1.db, &addresses(&r0));

    // A full restore of the same version: the tree walk, level by level.
    let before = storage.counters();
    let (full, full_t) = median_time(repeats, || restore_from(&empty, &storage, "main")).await?;
    let full_io = io(
        full.stats,
        requests(before, storage.counters()) / repeats.max(1) as u64,
    );
    same(&full.db, &s1.db, "full restore")?;
    drop(full);

    storage.faults().set_latency(config.latency);
    let (_, incr_lat) = median_time(repeats, || restore_from(&r0, &storage, "main")).await?;
    let start = Instant::now();
    let full_lat = restore_from(&empty, &storage, "main").await?;
    let full_lat_t = start.elapsed();
    storage.faults().set_latency(Duration::ZERO);
    same(&full_lat.db, &s1.db, "full restore with latency")?;
    drop(full_lat);

    let figures = BackendFigures {
        name: backend.name.to_owned(),
        store_ms,
        store_bytes: s0.stats.bytes_written,
        store_nodes: s0.stats.nodes_written,
        store_requests,
        first: first_io,
        full_ms: ms(full_t),
        full: full_io,
        delta_datoms,
        changed_nodes: s1.stats.nodes_written,
        delta_store_bytes: s1.stats.bytes_written,
        incremental_ms: ms(incr_t),
        incremental: incr_io,
        incremental_levels,
        latency_ms: ms(config.latency),
        incremental_latency_ms: ms(incr_lat),
        full_latency_ms: ms(full_lat_t),
        replicas_equal: true,
    };
    let live = Live {
        storage,
        primary: s1.db,
        replica: incr.db,
        gen,
        base_commit: s0.commit,
        base_store_bytes: s0.stats.bytes_written,
        base_db: s0.db,
        _opened: opened,
        _dir: dir,
    };
    Ok((figures, live))
}

/// One delta of `k` datoms on the live backend: stored, then restored by tree and by
/// log replay, without and with latency.
async fn measure_delta(
    config: &Config,
    live: &mut Live,
    k: usize,
) -> Result<DeltaFigures, BenchError> {
    let repeats = config.repeats;
    let tx = live.gen.delta(k);
    let report = live.primary.with(&tx.to_tx_ops())?;
    let before = live.storage.counters();
    let start = Instant::now();
    let stored = store(&report.db_after, &live.storage, "main").await?;
    let store_ms = ms(start.elapsed());
    let store_requests = requests(before, live.storage.counters());
    let storage = &live.storage;
    let replica = &live.replica;

    let before = storage.counters();
    let (tree, tree_t) = median_time(repeats, || restore_from(replica, storage, "main")).await?;
    let tree_io = io(
        tree.stats,
        requests(before, storage.counters()) / repeats.max(1) as u64,
    );
    same(&tree.db, &stored.db, "tree restore")?;

    let before = storage.counters();
    let (log, log_t) =
        median_time(repeats, || sync(replica, storage, "main", SyncPolicy::Log)).await?;
    let log_io = io(
        log.stats,
        requests(before, storage.counters()) / repeats.max(1) as u64,
    );
    same(&log.db, &stored.db, "log replay")?;

    storage.faults().set_latency(config.latency);
    let (_, tree_lat) = median_time(repeats, || restore_from(replica, storage, "main")).await?;
    let (_, log_lat) =
        median_time(repeats, || sync(replica, storage, "main", SyncPolicy::Log)).await?;
    storage.faults().set_latency(Duration::ZERO);

    live.primary = stored.db;
    live.replica = tree.db;
    Ok(DeltaFigures {
        datoms: report.tx_data.len() as u64,
        changed_nodes: stored.stats.nodes_written,
        store_bytes: stored.stats.bytes_written,
        store_ms,
        store_requests,
        tree_ms: ms(tree_t),
        tree: tree_io,
        log_ms: ms(log_t),
        log: log_io,
        tree_latency_ms: ms(tree_lat),
        log_latency_ms: ms(log_lat),
    })
}

/// The primary commits `max(behind)` deltas of `target_delta` datoms; a replica at the
/// starting point restores each of the requested commits, named by a head of its own.
async fn measure_behind(
    config: &Config,
    live: &mut Live,
) -> Result<Vec<BehindFigures>, BenchError> {
    let Some(max) = config.behind.iter().max().copied() else {
        return Ok(Vec::new());
    };
    let replica = live.replica.clone();
    let held = addresses(&replica);
    let mut versions = Vec::with_capacity(max);
    for _ in 0..max {
        let tx = live.gen.delta(config.target_delta);
        let report = live.primary.with(&tx.to_tx_ops())?;
        let stored = store(&report.db_after, &live.storage, "main").await?;
        live.primary = stored.db.clone();
        versions.push((stored.commit, stored.db));
    }
    let mut out = Vec::new();
    for k in &config.behind {
        let Some((commit, db)) = versions.get(k.saturating_sub(1)) else {
            continue;
        };
        let head = format!("behind-{k}");
        live.storage.cas_head(&head, None, *commit).await?;
        let before = live.storage.counters();
        let start = Instant::now();
        let r = restore_from(&replica, &live.storage, &head).await?;
        let t = start.elapsed();
        same(&r.db, db, &format!("{k} commits behind"))?;
        out.push(BehindFigures {
            commits: *k as u64,
            io: io(r.stats, requests(before, live.storage.counters())),
            nodes_needed: missing_by_level(db, &held).iter().map(|l| l.nodes).sum(),
            ms: ms(t),
            walked: r.stats.prefetch_skipped,
        });
    }
    live.replica = live.primary.clone();
    Ok(out)
}

/// Every node address reachable through loaded nodes of `db`.
fn addresses(db: &Db) -> HashSet<Address> {
    db.loaded_nodes().iter().map(|n| n.address()).collect()
}

/// Nodes of `db` whose address is not in `held` (a held subtree is skipped whole: by
/// content addressing, all of it is held), counted per tree level with their encoded
/// bytes, leaves first.
fn missing_by_level(db: &Db, held: &HashSet<Address>) -> Vec<LevelCount> {
    let mut levels: Vec<LevelCount> = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<Arc<Node>> = IndexKind::ALL
        .iter()
        .map(|k| db.tree(*k).root().clone())
        .collect();
    while let Some(node) = stack.pop() {
        let a = node.address();
        if held.contains(&a) || !seen.insert(a) {
            continue;
        }
        let level = usize::from(node.level());
        while levels.len() <= level {
            levels.push(LevelCount {
                level: levels.len() as u8,
                ..LevelCount::default()
            });
        }
        levels[level].nodes += 1;
        levels[level].bytes += node.encode().len() as u64;
        stack.extend(node.children().iter().filter_map(|c| c.loaded().cloned()));
    }
    levels
}

/// Counts bytes written to it.
#[derive(Default)]
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the base store wrote, split by kind, with the node size distribution.
async fn store_size(live: &Live) -> Result<StoreSize, BenchError> {
    let db = &live.base_db;
    let mut size = StoreSize::default();
    for (slot, kind) in IndexKind::ALL.iter().enumerate() {
        let mut count = ByteCount::default();
        let mut entries = 0;
        for d in db.datoms(*kind, &[])? {
            rmp_serde::encode::write(&mut count, &d?)
                .map_err(|e| BenchError::Inconsistent(format!("encoding a datom: {e}")))?;
            entries += 1;
        }
        size.entries[slot] = entries;
        size.encoded_datom_bytes[slot] = count.0;

        // Per level: (encoded size, items) of every node.
        let mut levels: Vec<Vec<(u64, u64)>> = Vec::new();
        let mut stack = vec![db.tree(*kind).root().clone()];
        while let Some(node) = stack.pop() {
            let level = usize::from(node.level());
            if levels.len() <= level {
                levels.resize(level + 1, Vec::new());
            }
            levels[level].push((node.encode().len() as u64, node.len() as u64));
            stack.extend(node.children().iter().filter_map(|c| c.loaded().cloned()));
        }
        for (level, mut nodes) in levels.into_iter().enumerate() {
            let bytes: u64 = nodes.iter().map(|n| n.0).sum();
            if level == 0 {
                size.leaf_bytes += bytes;
            } else {
                size.branch_bytes += bytes;
            }
            let mut items: Vec<u64> = nodes.iter().map(|n| n.1).collect();
            items.sort_unstable();
            nodes.sort_unstable();
            let at = |q: f64| nodes[((nodes.len() - 1) as f64 * q) as usize].0;
            size.levels.push(LevelSizes {
                index: format!("{kind:?}").to_lowercase(),
                level: level as u8,
                nodes: nodes.len() as u64,
                bytes,
                min: at(0.0),
                median: at(0.5),
                p90: at(0.9),
                max: at(1.0),
                items_median: items[items.len() / 2],
            });
        }
    }
    let commit = live.storage.get_many(&[live.base_commit]).await?;
    size.commit_bytes = commit
        .first()
        .and_then(|b| b.as_ref())
        .map_or(0, |b| b.len() as u64);
    size.bytes_written = live.base_store_bytes;
    Ok(size)
}

const DUMP_MAGIC: &[u8; 8] = b"DBDUMP01";

/// Writes every blob of `storage` and the commit to restore to `path`: the magic, the
/// commit address, then `[address, u32 LE length, bytes]` per blob.
async fn write_dump(storage: &Counted, commit: Address, path: &Path) -> Result<(), BenchError> {
    let file = std::fs::File::create(path).map_err(|e| BenchError::io("creating the dump", e))?;
    let mut out = std::io::BufWriter::new(file);
    let werr = |e| BenchError::io("writing the dump", e);
    out.write_all(DUMP_MAGIC).map_err(werr)?;
    out.write_all(&commit.0).map_err(werr)?;
    let mut after = None;
    loop {
        let page = storage.list_blobs(after, 1024).await?;
        let Some(last) = page.last().copied() else {
            break;
        };
        let blobs = storage.get_many(&page).await?;
        for (a, b) in page.iter().zip(blobs) {
            let b = b.ok_or(datoms_storage::StorageError::NotFound { address: *a })?;
            let len = u32::try_from(b.len())
                .map_err(|_| BenchError::Inconsistent(format!("blob {a:?} over 4 GiB")))?;
            out.write_all(&a.0).map_err(werr)?;
            out.write_all(&len.to_le_bytes()).map_err(werr)?;
            out.write_all(&b).map_err(werr)?;
        }
        after = Some(last);
    }
    out.flush().map_err(werr)
}

/// Loads a dump into a memory storage (blobs share the one buffer) with head `main`.
async fn read_dump(data: Bytes) -> Result<MemoryStorage, BenchError> {
    let bad = || BenchError::Inconsistent("malformed dump".into());
    if data.len() < 40 || &data[..8] != DUMP_MAGIC {
        return Err(bad());
    }
    let commit = Address(data[8..40].try_into().map_err(|_| bad())?);
    let storage = MemoryStorage::new();
    let mut at = 40;
    let mut batch = Vec::new();
    while at < data.len() {
        let header = data.get(at..at + 36).ok_or_else(bad)?;
        let address = Address(header[..32].try_into().map_err(|_| bad())?);
        let len = u32::from_le_bytes(header[32..36].try_into().map_err(|_| bad())?) as usize;
        let end = at + 36 + len;
        if end > data.len() {
            return Err(bad());
        }
        batch.push((address, data.slice(at + 36..end)));
        at = end;
    }
    storage.put_many(&batch).await?;
    storage.cas_head("main", None, commit).await?;
    Ok(storage)
}

/// The memory child: restores the dump eagerly and reports `/proc/self/status` figures.
/// Run by `datoms-bench rss-child DUMP` in a process of its own, so nothing else the
/// harness built is resident.
///
/// # Errors
/// A malformed dump, or a failing restore.
pub async fn rss_child(dump: &Path) -> Result<MemoryFigures, BenchError> {
    let baseline = measure::rss_bytes();
    let data = std::fs::read(dump).map_err(|e| BenchError::io("reading the dump", e))?;
    let storage = read_dump(Bytes::from(data)).await?;
    let with_storage = measure::rss_bytes();
    let restored = restore_from(&Db::new(Schema::new()), &storage, "main").await?;
    let after_restore = measure::rss_bytes();
    drop(storage);
    let db_only = measure::rss_bytes();
    let datoms = restored.db.len();
    Ok(MemoryFigures {
        datoms,
        baseline,
        with_storage,
        after_restore,
        db_only,
        peak: measure::peak_rss_bytes(),
        bytes_per_datom: db_only.saturating_sub(baseline) as f64 / datoms.max(1) as f64,
    })
}

fn run_rss_child(exe: &Path, dump: &Path) -> Result<MemoryFigures, BenchError> {
    let output = std::process::Command::new(exe)
        .arg("rss-child")
        .arg(dump)
        .output()
        .map_err(|e| BenchError::io(format!("running {}", exe.display()), e))?;
    if !output.status.success() {
        return Err(BenchError::Inconsistent(format!(
            "the memory child failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| BenchError::Inconsistent(format!("the memory child's output: {e}")))
}
