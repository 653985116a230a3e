//! What a run measured: plain data (serializable, so `--json` can save it and the quick
//! test can read it back), the performance targets derived from it, a markdown
//! rendering, and [`Report::check`], the internal-consistency checks the CI test runs.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::measure::Machine;

/// Everything one run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: String,
    /// The command line that produced it.
    pub command: String,
    /// Where it ran.
    pub machine: Machine,
    /// The workload seed.
    pub seed: u64,
    /// The generated workload and its checksums.
    pub workload: WorkloadFigures,
    /// Transact throughput of datoms.
    pub transact: TransactFigures,
    /// The join query and the pull on the base db.
    pub query: QueryFigures,
    /// The Datascript (JS) peer on the same workload, if it ran.
    pub peer: Option<PeerFigures>,
    /// What the full store wrote, by kind of node, and the node size distribution.
    pub store_size: StoreSize,
    /// Store and restore figures, one entry per backend.
    pub backends: Vec<BackendFigures>,
    /// Restore cost as the delta grows (first backend).
    pub deltas: Vec<DeltaFigures>,
    /// A replica several commits behind (first backend).
    pub behind: Vec<BehindFigures>,
    /// Restore cost as the db grows (memory backend).
    pub growth: Vec<GrowthFigures>,
    /// Resident memory of a materialized db, measured in a child process.
    pub memory: Option<MemoryFigures>,
    /// The performance targets, evaluated on the figures above.
    pub targets: Vec<Target>,
    /// Wall time of the whole run, seconds.
    pub elapsed_s: f64,
}

/// The generated workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadFigures {
    /// Datoms in the base workload.
    pub datoms: u64,
    /// People (entities) in it.
    pub people: u64,
    /// Transactions in it.
    pub txs: usize,
    /// People per transaction.
    pub batch: usize,
    /// FNV-1a of the generated base transactions.
    pub workload_checksum: String,
    /// FNV-1a of the deltas generated after the base (sizes as in the delta table).
    pub delta_checksum: String,
    /// FNV-1a of the transacted db's datoms, EAVT order.
    pub db_checksum: String,
}

/// Transact throughput of datoms (`Db::with`, tx data built beforehand).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TransactFigures {
    /// Datoms transacted in the base workload.
    pub datoms: u64,
    /// Transactions.
    pub txs: usize,
    /// Median wall time, ms.
    pub ms: f64,
    /// Datoms per second.
    pub datoms_per_s: f64,
    /// Datoms of the small-transaction workload (one person per transaction).
    pub small_datoms: u64,
    /// Its transactions.
    pub small_txs: usize,
    /// Its median wall time, ms.
    pub small_ms: f64,
    /// Its datoms per second.
    pub small_datoms_per_s: f64,
    /// FNV-1a of the small workload's db.
    pub small_db_checksum: String,
    /// The small workload merging each transaction into the trees at once
    /// (`Db::with_edit_buffer(0)`): median wall time, ms.
    pub small_eager_ms: f64,
    /// One `:db/add` per transaction on the small workload's db ([`crate::small::adds`]).
    pub adds: SmallFigures,
    /// The UI-like mix on the small workload's db ([`crate::small::mix`]).
    pub mix: SmallFigures,
}

/// A small-transaction workload run on the small workload's db.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SmallFigures {
    /// Transactions.
    pub txs: usize,
    /// Datoms of their tx data.
    pub datoms: u64,
    /// Median wall time, ms.
    pub ms: f64,
    /// FNV-1a of the resulting db.
    pub db_checksum: String,
}

/// The join query and the pull of the peer comparison (`workload::JOIN_QUERY`,
/// `workload::PULL_PATTERN`) on the base db.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryFigures {
    /// The join: median ms.
    pub join_ms: f64,
    /// The join: result rows.
    pub join_rows: u64,
    /// The pull: median ms.
    pub pull_ms: f64,
    /// Entities pulled.
    pub pull_entities: u64,
}

/// The Datascript (JS) peer on the same workload, in the same run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerFigures {
    /// Datascript version (from its package.json).
    pub datascript: String,
    /// Node version.
    pub node: String,
    /// Its workload checksum (must equal ours).
    pub workload_checksum: String,
    /// Its delta checksum (must equal ours).
    pub delta_checksum: String,
    /// Its db checksum (must equal ours).
    pub db_checksum: String,
    /// Its small-workload db checksum (must equal ours).
    pub small_db_checksum: String,
    /// Datoms in its db.
    pub datoms: u64,
    /// Median transact wall time, ms.
    pub transact_ms: f64,
    /// Datoms per second.
    pub datoms_per_s: f64,
    /// Small-transaction workload: median wall time, ms.
    pub small_transact_ms: f64,
    /// Small-transaction workload: datoms per second.
    pub small_datoms_per_s: f64,
    /// One `:db/add` per transaction ([`crate::small::adds`]): median wall time, ms.
    pub adds_transact_ms: f64,
    /// Its db checksum (must equal ours).
    pub adds_db_checksum: String,
    /// The UI-like mix ([`crate::small::mix`]): median wall time, ms.
    pub mix_transact_ms: f64,
    /// Its db checksum (must equal ours).
    pub mix_db_checksum: String,
    /// JS heap held by the db (after a full GC), bytes.
    pub heap_bytes: u64,
    /// The join query: median ms.
    pub join_ms: f64,
    /// The join query: result rows.
    pub join_rows: u64,
    /// The pull of 1000 entities: median ms.
    pub pull_ms: f64,
    /// Entities pulled.
    pub pull_entities: u64,
}

/// Sizes of one tree level of one index.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelSizes {
    /// `eavt`, `aevt` or `avet`.
    pub index: String,
    /// 0 for leaves.
    pub level: u8,
    /// Nodes.
    pub nodes: u64,
    /// Encoded bytes, all nodes.
    pub bytes: u64,
    /// Smallest node, bytes.
    pub min: u64,
    /// Median node, bytes.
    pub median: u64,
    /// 90th percentile, bytes.
    pub p90: u64,
    /// Largest node, bytes.
    pub max: u64,
    /// Median items (datoms or children) per node.
    pub items_median: u64,
}

/// What the full store wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreSize {
    /// Index entries: EAVT, AEVT, AVET.
    pub entries: [u64; 3],
    /// The msgpack encoding of those entries (`[e a v tx]` each), summed per index: the
    /// payload the trees cannot do without.
    pub encoded_datom_bytes: [u64; 3],
    /// Bytes of leaves.
    pub leaf_bytes: u64,
    /// Bytes of branches.
    pub branch_bytes: u64,
    /// Bytes of the commit record (its tx log is the whole base workload).
    pub commit_bytes: u64,
    /// What the store reported writing.
    pub bytes_written: u64,
    /// Node size distribution.
    pub levels: Vec<LevelSizes>,
}

impl StoreSize {
    /// All encoded index entries.
    pub fn datom_bytes(&self) -> u64 {
        self.encoded_datom_bytes.iter().sum()
    }
}

/// I/O of one restore.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Io {
    /// Logical round trips (batched requests, the head read included).
    pub round_trips: u64,
    /// Backend requests actually made (a round trip may split into several batches).
    pub requests: u64,
    /// Tree nodes fetched.
    pub nodes: u64,
    /// Bytes fetched (nodes and commits).
    pub bytes: u64,
}

/// One backend: full store, full restore, incremental restore of the target delta.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendFigures {
    /// Backend name.
    pub name: String,
    /// Full store: wall time, ms.
    pub store_ms: f64,
    /// Full store: bytes written.
    pub store_bytes: u64,
    /// Full store: nodes written.
    pub store_nodes: u64,
    /// Full store: backend requests.
    pub store_requests: u64,
    /// The first restore from nothing, right after the full store: I/O (one batch, as
    /// the first commit's manifest names every node).
    pub first: Io,
    /// Full restore (from nothing) of the version after the delta, a level-by-level
    /// walk: median ms.
    pub full_ms: f64,
    /// That full restore's I/O.
    pub full: Io,
    /// The delta: datoms of tx data.
    pub delta_datoms: u64,
    /// The delta's store: nodes written (the nodes that actually changed).
    pub changed_nodes: u64,
    /// The delta's store: bytes written.
    pub delta_store_bytes: u64,
    /// Incremental restore of the delta (1 commit behind): median ms.
    pub incremental_ms: f64,
    /// Incremental restore I/O.
    pub incremental: Io,
    /// The nodes the incremental restore had to fetch (new since the replica's version),
    /// by tree level, all indexes together.
    pub incremental_levels: Vec<LevelCount>,
    /// The per-request latency of the latency runs, ms.
    pub latency_ms: f64,
    /// Incremental restore with that latency: median ms.
    pub incremental_latency_ms: f64,
    /// Full restore with that latency: ms.
    pub full_latency_ms: f64,
    /// Every replica equalled its primary (roots, counters, datom count).
    pub replicas_equal: bool,
}

/// Nodes and encoded bytes at one tree level (0: leaves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelCount {
    /// The level.
    pub level: u8,
    /// Nodes.
    pub nodes: u64,
    /// Encoded bytes.
    pub bytes: u64,
}

/// One delta size on the first backend: restore by tree and by log replay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaFigures {
    /// Datoms of tx data.
    pub datoms: u64,
    /// Nodes the store wrote (changed nodes).
    pub changed_nodes: u64,
    /// Bytes the store wrote.
    pub store_bytes: u64,
    /// The store onto the head the db came from: ms (one run).
    #[serde(default)]
    pub store_ms: f64,
    /// Backend requests of that store (head read, batched puts, CAS).
    #[serde(default)]
    pub store_requests: u64,
    /// Incremental tree restore: median ms.
    pub tree_ms: f64,
    /// Incremental tree restore I/O.
    pub tree: Io,
    /// Log replay (`sync` with `SyncPolicy::Log`): median ms.
    pub log_ms: f64,
    /// Log replay I/O.
    pub log: Io,
    /// Tree restore with the latency of the latency runs: median ms.
    pub tree_latency_ms: f64,
    /// Log replay with that latency: median ms.
    pub log_latency_ms: f64,
}

/// A replica `commits` commits behind the head.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BehindFigures {
    /// Commits behind.
    pub commits: u64,
    /// Restore I/O.
    pub io: Io,
    /// Nodes of the head's trees the replica did not hold (the least any restore
    /// must fetch).
    pub nodes_needed: u64,
    /// Wall time, ms.
    pub ms: f64,
    /// The manifests since the replica's commit named more nodes than the head's trees
    /// have, so the restore walked the trees level by level (never fetching more than a
    /// full restore) instead of prefetching in three round trips.
    #[serde(default)]
    pub walked: bool,
}

/// One db size (memory backend).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrowthFigures {
    /// Datoms.
    pub datoms: u64,
    /// Transact (bulk): ms.
    pub transact_ms: f64,
    /// Full store: ms.
    pub store_ms: f64,
    /// Full store: bytes.
    pub store_bytes: u64,
    /// Full restore: median ms.
    pub full_ms: f64,
    /// Full restore I/O.
    pub full: Io,
    /// Incremental restore of the target delta: median ms.
    pub incremental_ms: f64,
    /// Incremental restore I/O.
    pub incremental: Io,
    /// Nodes the delta changed.
    pub changed_nodes: u64,
}

/// Resident memory of a materialized db, from `/proc/self/status` of a child process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// Datoms in the restored db.
    pub datoms: u64,
    /// VmRSS at the child's start, bytes.
    pub baseline: u64,
    /// VmRSS with the storage loaded (before the restore), bytes.
    pub with_storage: u64,
    /// VmRSS right after the eager restore, bytes.
    pub after_restore: u64,
    /// VmRSS after dropping the storage (only the db left), bytes.
    pub db_only: u64,
    /// VmHWM (peak), bytes.
    pub peak: u64,
    /// (db_only − baseline) / datoms.
    pub bytes_per_datom: f64,
}

/// One performance target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// `<=` or `>=`.
    pub op: String,
    /// The bound.
    pub goal: f64,
    /// The measured value, if measured.
    pub value: Option<f64>,
    /// Whether it is met (`None`: not measured).
    pub met: Option<bool>,
    /// How it was measured, or why it was not.
    pub note: String,
}

impl Target {
    fn new(name: &str, op: &str, goal: f64, value: Option<f64>, note: String) -> Target {
        let met = value.map(|v| if op == "<=" { v <= goal } else { v >= goal });
        Target {
            name: name.to_owned(),
            op: op.to_owned(),
            goal,
            value,
            met,
            note,
        }
    }

    /// How far from the goal: the factor the value must improve by (1.0 when met).
    pub fn miss_factor(&self) -> Option<f64> {
        let v = self.value?;
        Some(match (self.met?, self.op.as_str()) {
            (true, _) => 1.0,
            (false, "<=") => v / self.goal,
            (false, _) => self.goal / v,
        })
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl Report {
    /// Evaluates the targets on the figures (fills [`Report::targets`]).
    pub fn evaluate_targets(&mut self) {
        let first = self.backends.first();
        let size = format!("{} datoms", self.workload.datoms);
        let mut t = Vec::new();
        t.push(Target::new(
            "incremental restore: nodes fetched / nodes changed",
            "<=",
            1.1,
            first.and_then(|b| ratio(b.incremental.nodes as f64, b.changed_nodes as f64)),
            first.map_or_else(String::new, |b| {
                format!(
                    "{size}, delta of {} datoms, 1 commit behind, {}",
                    b.delta_datoms, b.name
                )
            }),
        ));
        t.push(Target::new(
            "bytes of full restore / bytes of incremental restore",
            ">=",
            200.0,
            first.and_then(|b| ratio(b.full.bytes as f64, b.incremental.bytes as f64)),
            first.map_or_else(String::new, |b| {
                format!("{size}, same delta ({} datoms), {}", b.delta_datoms, b.name)
            }),
        ));
        let within: Vec<&BehindFigures> = self.behind.iter().filter(|b| b.commits <= 8).collect();
        t.push(Target::new(
            "round trips, replica <= 8 commits behind",
            "<=",
            3.0,
            within
                .iter()
                .map(|b| b.io.round_trips as f64)
                .reduce(f64::max),
            format!(
                "{size}, worst of 1..8 commits behind (head read included), {}",
                first.map_or("", |b| b.name.as_str())
            ),
        ));
        t.push(Target::new(
            "incremental restore with 20 ms per request, ms",
            "<=",
            100.0,
            first.map(|b| b.incremental_latency_ms),
            first.map_or_else(String::new, |b| {
                format!(
                    "{size}, delta of {} datoms, FaultyStorage latency {} ms over {}",
                    b.delta_datoms, b.latency_ms, b.name
                )
            }),
        ));
        let s = &self.store_size;
        t.push(Target::new(
            "full store: bytes written / encoded datom bytes",
            "<=",
            1.3,
            ratio(s.bytes_written as f64, s.datom_bytes() as f64),
            format!(
                "{size}; datom bytes = msgpack of every index entry (EAVT + AEVT + AVET); \
                 written = nodes + commit (the commit carries the whole tx log)"
            ),
        ));
        t.push(Target::new(
            "resident memory of a materialized db, bytes/datom",
            "<=",
            100.0,
            self.memory.as_ref().map(|m| m.bytes_per_datom),
            self.memory.as_ref().map_or_else(
                || "not measured (--no-rss)".to_owned(),
                |m| {
                    format!(
                        "{} datoms, VmRSS delta in a child process after an eager restore, storage dropped",
                        m.datoms
                    )
                },
            ),
        ));
        t.push(Target::new(
            "transact throughput vs Datascript (JS), ×",
            ">=",
            3.0,
            self.peer
                .as_ref()
                .and_then(|p| ratio(self.transact.datoms_per_s, p.datoms_per_s)),
            self.peer.as_ref().map_or_else(
                || "not measured (--no-peer)".to_owned(),
                |p| {
                    format!(
                        "{size}, {} txs of {} people, datascript {} on node {}",
                        self.workload.txs, self.workload.batch, p.datascript, p.node
                    )
                },
            ),
        ));
        let qf = &self.query;
        let join = self
            .peer
            .as_ref()
            .and_then(|p| ratio(p.join_ms, qf.join_ms));
        let pull = self
            .peer
            .as_ref()
            .and_then(|p| ratio(p.pull_ms, qf.pull_ms));
        t.push(Target::new(
            "join query and pull vs Datascript (JS), × (the lesser)",
            ">=",
            2.0,
            join.zip(pull).map(|(j, p)| j.min(p)),
            self.peer.as_ref().map_or_else(
                || "not measured (--no-peer)".to_owned(),
                |p| {
                    format!(
                        "{size}; join ({} rows): {:.2} ms vs {:.2} ms = {}×; pull of {} entities: {:.2} ms vs {:.2} ms = {}×",
                        qf.join_rows,
                        qf.join_ms,
                        p.join_ms,
                        join.map_or("—".into(), |r| format!("{r:.1}")),
                        qf.pull_entities,
                        qf.pull_ms,
                        p.pull_ms,
                        pull.map_or("—".into(), |r| format!("{r:.1}")),
                    )
                },
            ),
        ));
        self.targets = t;
    }

    /// The internal-consistency checks: what must hold whatever the machine's speed.
    /// Returns every violation (empty when consistent). No check involves wall time.
    pub fn check(&self) -> Vec<String> {
        let mut bad = Vec::new();
        let w = &self.workload;
        if w.datoms == 0 || self.transact.datoms != w.datoms {
            bad.push(format!(
                "workload has {} datoms, transact counted {}",
                w.datoms, self.transact.datoms
            ));
        }
        if let Some(p) = &self.peer {
            for (what, ours, theirs) in [
                ("workload", &w.workload_checksum, &p.workload_checksum),
                ("delta", &w.delta_checksum, &p.delta_checksum),
                ("db", &w.db_checksum, &p.db_checksum),
                (
                    "small db",
                    &self.transact.small_db_checksum,
                    &p.small_db_checksum,
                ),
                (
                    "adds db",
                    &self.transact.adds.db_checksum,
                    &p.adds_db_checksum,
                ),
                ("mix db", &self.transact.mix.db_checksum, &p.mix_db_checksum),
            ] {
                if ours != theirs {
                    bad.push(format!(
                        "{what} checksum: datoms {ours}, Datascript {theirs}"
                    ));
                }
            }
            if p.join_rows != self.query.join_rows || p.pull_entities != self.query.pull_entities {
                bad.push(format!(
                    "query results differ: join rows {} vs Datascript {}, pulled {} vs {}",
                    self.query.join_rows, p.join_rows, self.query.pull_entities, p.pull_entities
                ));
            }
            if p.datoms != w.datoms {
                bad.push(format!(
                    "Datascript has {} datoms, datoms {}",
                    p.datoms, w.datoms
                ));
            }
        }
        if self.backends.is_empty() {
            bad.push("no backend was measured".into());
        }
        for b in &self.backends {
            let n = &b.name;
            if !b.replicas_equal {
                bad.push(format!("{n}: a replica differs from its primary"));
            }
            if b.incremental.bytes == 0 || b.incremental.bytes >= b.full.bytes {
                bad.push(format!(
                    "{n}: incremental restore fetched {} bytes, full restore {}",
                    b.incremental.bytes, b.full.bytes
                ));
            }
            if b.incremental.nodes < b.changed_nodes {
                bad.push(format!(
                    "{n}: incremental restore fetched {} nodes, but {} changed",
                    b.incremental.nodes, b.changed_nodes
                ));
            }
            let needed: u64 = b.incremental_levels.iter().map(|l| l.nodes).sum();
            if needed != b.incremental.nodes {
                bad.push(format!(
                    "{n}: the replica lacked {needed} nodes, the incremental restore fetched {}",
                    b.incremental.nodes
                ));
            }
            if b.incremental.round_trips > 3 {
                bad.push(format!(
                    "{n}: incremental restore 1 commit behind took {} round trips",
                    b.incremental.round_trips
                ));
            }
            if b.store_nodes != b.first.nodes {
                bad.push(format!(
                    "{n}: the full store wrote {} nodes, the first restore fetched {}",
                    b.store_nodes, b.first.nodes
                ));
            }
        }
        for b in &self.behind {
            if b.commits <= 8 && !b.walked && b.io.round_trips > 3 {
                bad.push(format!(
                    "{} commits behind took {} round trips (the design's bound is 3)",
                    b.commits, b.io.round_trips
                ));
            }
            if b.io.nodes < b.nodes_needed {
                bad.push(format!(
                    "{} commits behind: fetched {} nodes, {} were needed",
                    b.commits, b.io.nodes, b.nodes_needed
                ));
            }
        }
        for d in &self.deltas {
            if d.tree.nodes < d.changed_nodes {
                bad.push(format!(
                    "delta {}: tree restore fetched {} nodes, {} changed",
                    d.datoms, d.tree.nodes, d.changed_nodes
                ));
            }
        }
        let s = &self.store_size;
        if s.leaf_bytes + s.branch_bytes + s.commit_bytes != s.bytes_written {
            bad.push(format!(
                "store size: leaves {} + branches {} + commit {} != written {}",
                s.leaf_bytes, s.branch_bytes, s.commit_bytes, s.bytes_written
            ));
        }
        if s.datom_bytes() == 0 || s.leaf_bytes < s.datom_bytes() {
            bad.push(format!(
                "store size: leaves hold {} bytes, less than their {} datom bytes",
                s.leaf_bytes,
                s.datom_bytes()
            ));
        }
        if let Some(m) = &self.memory {
            // The child restores the base version.
            if m.datoms != w.datoms {
                bad.push(format!(
                    "memory: the child restored {} datoms, the workload has {}",
                    m.datoms, w.datoms
                ));
            }
        }
        bad
    }

    /// The report as markdown: tables of every figure, then the targets.
    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let w = &self.workload;
        let _ = writeln!(
            o,
            "## Run: {} mode, {} datoms, seed {}\n",
            self.mode, w.datoms, self.seed
        );
        let _ = writeln!(o, "- command: `{}`", self.command);
        let _ = writeln!(
            o,
            "- machine: {} ({} CPUs available), {:.1} GiB RAM, Linux {}, {} build",
            m.cpu,
            m.cpus,
            m.mem_gib,
            m.kernel,
            if m.optimized {
                "optimized"
            } else {
                "debug (figures are not meaningful)"
            }
        );
        let _ = writeln!(
            o,
            "- load average (1 min) at start / end: {:.2} / {:.2}; run took {:.0} s",
            m.load_start, m.load_end, self.elapsed_s
        );
        let _ = writeln!(
            o,
            "- workload: {} people, {} txs of {} people; checksums: workload `{}`, deltas `{}`, db `{}`",
            w.people, w.txs, w.batch, w.workload_checksum, w.delta_checksum, w.db_checksum
        );
        if let Some(p) = &self.peer {
            let same = p.workload_checksum == w.workload_checksum
                && p.db_checksum == w.db_checksum
                && p.delta_checksum == w.delta_checksum
                && p.small_db_checksum == self.transact.small_db_checksum
                && p.adds_db_checksum == self.transact.adds.db_checksum
                && p.mix_db_checksum == self.transact.mix.db_checksum;
            let _ = writeln!(
                o,
                "- Datascript {} on node {}: checksums {}",
                p.datascript,
                p.node,
                if same {
                    "equal to ours (same workload, same db)"
                } else {
                    "DIFFER"
                }
            );
        }

        let _ = writeln!(o, "\n### Targets\n");
        let _ = writeln!(o, "| target | goal | measured | met | how |");
        let _ = writeln!(o, "|---|---|---|---|---|");
        for t in &self.targets {
            let value = t.value.map_or("—".to_owned(), fmt_num);
            let met = match (t.met, t.miss_factor()) {
                (Some(true), _) => "yes".to_owned(),
                (Some(false), Some(f)) => format!("no ({f:.1}× off)"),
                _ => "not measured".to_owned(),
            };
            let op = if t.op == "<=" { "≤" } else { "≥" };
            let _ = writeln!(
                o,
                "| {} | {op} {} | {value} | {met} | {} |",
                t.name,
                fmt_num(t.goal),
                t.note
            );
        }

        let t = &self.transact;
        let _ = writeln!(o, "\n### Transact throughput (same workload, same run)\n");
        let _ = writeln!(o, "| workload | datoms | txs | datoms ms | datoms/s | Datascript ms | Datascript datoms/s | ratio |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        let peer = self.peer.as_ref();
        let _ = writeln!(
            o,
            "| bulk ({} people/tx) | {} | {} | {:.0} | {} | {} | {} | {} |",
            w.batch,
            t.datoms,
            t.txs,
            t.ms,
            fmt_rate(t.datoms_per_s),
            peer.map_or("—".into(), |p| format!("{:.0}", p.transact_ms)),
            peer.map_or("—".into(), |p| fmt_rate(p.datoms_per_s)),
            peer.and_then(|p| ratio(t.datoms_per_s, p.datoms_per_s))
                .map_or("—".into(), |r| format!("{r:.2}×")),
        );
        let _ = writeln!(
            o,
            "| small (1 person/tx) | {} | {} | {:.0} | {} | {} | {} | {} |",
            t.small_datoms,
            t.small_txs,
            t.small_ms,
            fmt_rate(t.small_datoms_per_s),
            peer.map_or("—".into(), |p| format!("{:.0}", p.small_transact_ms)),
            peer.map_or("—".into(), |p| fmt_rate(p.small_datoms_per_s)),
            peer.and_then(|p| ratio(t.small_datoms_per_s, p.small_datoms_per_s))
                .map_or("—".into(), |r| format!("{r:.2}×")),
        );
        let eager_per_s = t.small_datoms as f64 / (t.small_eager_ms / 1e3).max(1e-9);
        let _ = writeln!(
            o,
            "| small, each tx merged at once (no edit buffer) | {} | {} | {:.0} | {} | {} | {} | {} |",
            t.small_datoms,
            t.small_txs,
            t.small_eager_ms,
            fmt_rate(eager_per_s),
            peer.map_or("—".into(), |p| format!("{:.0}", p.small_transact_ms)),
            peer.map_or("—".into(), |p| fmt_rate(p.small_datoms_per_s)),
            peer.and_then(|p| ratio(eager_per_s, p.small_datoms_per_s))
                .map_or("—".into(), |r| format!("{r:.2}×")),
        );
        for (what, f, theirs) in [
            ("1 `:db/add`/tx", &t.adds, peer.map(|p| p.adds_transact_ms)),
            (
                "UI mix: upsert, cas, add, retract",
                &t.mix,
                peer.map(|p| p.mix_transact_ms),
            ),
        ] {
            let per_s = |ms: f64| f.datoms as f64 / (ms / 1e3).max(1e-9);
            let _ = writeln!(
                o,
                "| {what} | {} | {} | {:.0} | {} | {} | {} | {} |",
                f.datoms,
                f.txs,
                f.ms,
                fmt_rate(per_s(f.ms)),
                theirs.map_or("—".into(), |ms| format!("{ms:.0}")),
                theirs.map_or("—".into(), |ms| fmt_rate(per_s(ms))),
                theirs
                    .and_then(|ms| ratio(per_s(f.ms), per_s(ms)))
                    .map_or("—".into(), |r| format!("{r:.2}×")),
            );
        }
        let _ = writeln!(
            o,
            "\ndatoms on the base db: join query {:.2} ms ({} rows), pull of {} entities {:.2} ms.",
            self.query.join_ms, self.query.join_rows, self.query.pull_entities, self.query.pull_ms
        );
        if let Some(p) = peer {
            let _ = writeln!(
                o,
                "Datascript on the same db: join query {:.1} ms ({} rows), pull of {} entities {:.1} ms, \
                 JS heap held by the db {:.0} bytes/datom.",
                p.join_ms,
                p.join_rows,
                p.pull_entities,
                p.pull_ms,
                p.heap_bytes as f64 / p.datoms.max(1) as f64
            );
        }

        let _ = writeln!(o, "\n### Backends side by side (full store, full restore, incremental restore of a {}-datom delta)\n",
            self.backends.first().map_or(0, |b| b.delta_datoms));
        let _ = writeln!(o, "| backend | store ms | store MB | store requests | full restore ms | full RT | full MB | delta: changed nodes | incr. ms | incr. RT | incr. requests | incr. nodes | incr. KB | incr. ms @{} ms/request | full ms @{} ms/request |",
            self.backends.first().map_or(0.0, |b| b.latency_ms), self.backends.first().map_or(0.0, |b| b.latency_ms));
        let _ = writeln!(
            o,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for b in &self.backends {
            let _ = writeln!(
                o,
                "| {} | {:.0} | {:.1} | {} | {:.0} | {} | {:.1} | {} | {:.2} | {} | {} | {} | {:.1} | {:.0} | {:.0} |",
                b.name,
                b.store_ms,
                mb(b.store_bytes),
                b.store_requests,
                b.full_ms,
                b.full.round_trips,
                mb(b.full.bytes),
                b.changed_nodes,
                b.incremental_ms,
                b.incremental.round_trips,
                b.incremental.requests,
                b.incremental.nodes,
                kb(b.incremental.bytes),
                b.incremental_latency_ms,
                b.full_latency_ms,
            );
        }
        if let Some(b) = self.backends.first() {
            let _ = writeln!(
                o,
                "\nFull restore = a replica with nothing restores the version after the delta: a \
                 level-by-level walk. (The first restore, right after the full store, took {} round \
                 trips: that commit's manifest names every node, so they come with the roots.) \
                 RT = logical round trips, the head read included; requests = backend calls \
                 (a round trip splits into batches of at most `max_batch` addresses).",
                b.first.round_trips
            );
        }
        if let Some(b) = self.backends.first() {
            let levels: Vec<String> = b
                .incremental_levels
                .iter()
                .map(|l| {
                    format!(
                        "level {}: {} nodes, {:.1} KB",
                        l.level,
                        l.nodes,
                        kb(l.bytes)
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                "\nWhat the incremental restore of the {}-datom delta fetched ({}), by tree level, \
                 all indexes: {}.",
                b.delta_datoms,
                b.name,
                levels.join("; ")
            );
        }

        let s = &self.store_size;
        let _ = writeln!(o, "\n### What the full store writes\n");
        let _ = writeln!(o, "| part | bytes | per datom | × datom bytes |");
        let _ = writeln!(o, "|---|---|---|---|");
        let db_bytes = s.datom_bytes() as f64;
        for (name, bytes) in [
            ("encoded datoms, EAVT", s.encoded_datom_bytes[0]),
            ("encoded datoms, AEVT", s.encoded_datom_bytes[1]),
            ("encoded datoms, AVET", s.encoded_datom_bytes[2]),
            ("leaves (all indexes)", s.leaf_bytes),
            ("branches (all indexes)", s.branch_bytes),
            ("commit record (with the tx log)", s.commit_bytes),
            ("written in all", s.bytes_written),
        ] {
            let _ = writeln!(
                o,
                "| {name} | {bytes} | {:.1} | {:.3} |",
                bytes as f64 / w.datoms.max(1) as f64,
                bytes as f64 / db_bytes.max(1.0)
            );
        }
        let _ = writeln!(o, "\nNode sizes (encoded bytes) by index and level:\n");
        let _ = writeln!(
            o,
            "| index | level | nodes | MB | min | median | p90 | max | median items |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
        for l in &s.levels {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} |",
                l.index,
                l.level,
                l.nodes,
                mb(l.bytes),
                l.min,
                l.median,
                l.p90,
                l.max,
                l.items_median
            );
        }

        if !self.deltas.is_empty() {
            let lat = self.backends.first().map_or(0.0, |b| b.latency_ms);
            let _ = writeln!(o, "\n### Restore cost as the delta grows ({} datoms, {}; log replay vs tree restore)\n",
                w.datoms, self.backends.first().map_or("", |b| b.name.as_str()));
            let _ = writeln!(o, "| delta datoms | changed nodes | tree: nodes | tree: KB | tree: RT | tree ms | log: KB | log: RT | log ms | tree ms @{lat} ms | log ms @{lat} ms | faster |");
            let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
            for d in &self.deltas {
                let faster = if d.log_ms < d.tree_ms { "log" } else { "tree" };
                let faster_lat = if d.log_latency_ms < d.tree_latency_ms {
                    "log"
                } else {
                    "tree"
                };
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {:.1} | {} | {:.2} | {:.1} | {} | {:.2} | {:.1} | {:.1} | {faster} / {faster_lat} @{lat} ms |",
                    d.datoms, d.changed_nodes, d.tree.nodes, kb(d.tree.bytes), d.tree.round_trips, d.tree_ms,
                    kb(d.log.bytes), d.log.round_trips, d.log_ms, d.tree_latency_ms, d.log_latency_ms
                );
            }
        }

        if !self.deltas.is_empty() {
            let _ = writeln!(
                o,
                "\n### What storing each delta costs (onto the head the db came from, {})\n",
                self.backends.first().map_or("", |b| b.name.as_str())
            );
            let _ = writeln!(
                o,
                "| delta datoms | nodes written | KB written | requests | store ms |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|");
            for d in &self.deltas {
                let _ = writeln!(
                    o,
                    "| {} | {} | {:.1} | {} | {:.2} |",
                    d.datoms,
                    d.changed_nodes,
                    kb(d.store_bytes),
                    d.store_requests,
                    d.store_ms
                );
            }
        }

        if !self.behind.is_empty() {
            let _ = writeln!(
                o,
                "\n### A replica k commits behind (each commit a {}-datom delta)\n",
                self.backends.first().map_or(0, |b| b.delta_datoms)
            );
            let _ = writeln!(o, "| commits behind | round trips | requests | nodes fetched | nodes needed | fetched / needed | KB | ms | route |");
            let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
            for b in &self.behind {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {:.1} | {:.2} | {} |",
                    b.commits,
                    b.io.round_trips,
                    b.io.requests,
                    b.io.nodes,
                    b.nodes_needed,
                    ratio(b.io.nodes as f64, b.nodes_needed as f64)
                        .map_or("—".into(), |r| format!("{r:.3}")),
                    kb(b.io.bytes),
                    b.ms,
                    if b.walked {
                        "tree walk (manifests > trees)"
                    } else {
                        "manifests"
                    }
                );
            }
        }

        if !self.growth.is_empty() {
            let _ = writeln!(
                o,
                "\n### Restore cost as the db grows (mem backend, delta of {} datoms)\n",
                self.backends.first().map_or(0, |b| b.delta_datoms)
            );
            let _ = writeln!(o, "| datoms | transact ms | store ms | store MB | full restore ms | full RT | full MB | incr. ms | incr. RT | incr. nodes | incr. KB | full / incr. bytes |");
            let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
            for g in &self.growth {
                let _ = writeln!(
                    o,
                    "| {} | {:.0} | {:.0} | {:.1} | {:.0} | {} | {:.1} | {:.2} | {} | {} | {:.1} | {} |",
                    g.datoms, g.transact_ms, g.store_ms, mb(g.store_bytes), g.full_ms, g.full.round_trips, mb(g.full.bytes),
                    g.incremental_ms, g.incremental.round_trips, g.incremental.nodes, kb(g.incremental.bytes),
                    ratio(g.full.bytes as f64, g.incremental.bytes as f64).map_or("—".into(), |r| format!("{r:.0}"))
                );
            }
        }

        if let Some(mem) = &self.memory {
            let _ = writeln!(
                o,
                "\n### Resident memory of a materialized db (child process, /proc/self/status)\n"
            );
            let _ = writeln!(o, "| datoms | baseline MB | + storage MB | after restore MB | db only MB | peak MB | bytes/datom |");
            let _ = writeln!(o, "|---|---|---|---|---|---|---|");
            let _ = writeln!(
                o,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
                mem.datoms,
                mb(mem.baseline),
                mb(mem.with_storage),
                mb(mem.after_restore),
                mb(mem.db_only),
                mb(mem.peak),
                mem.bytes_per_datom
            );
        }
        o
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn kb(bytes: u64) -> f64 {
    bytes as f64 / 1e3
}

fn fmt_num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else {
        format!("{:.0} k", x / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_target_says_by_how_much() {
        let t = Target::new("x", "<=", 100.0, Some(250.0), String::new());
        assert_eq!(t.met, Some(false));
        assert!((t.miss_factor().unwrap() - 2.5).abs() < 1e-9);
        let t = Target::new("y", ">=", 200.0, Some(50.0), String::new());
        assert!((t.miss_factor().unwrap() - 4.0).abs() < 1e-9);
        let t = Target::new("z", ">=", 2.0, None, String::new());
        assert_eq!((t.met, t.miss_factor()), (None, None));
    }

    #[test]
    fn an_empty_report_is_inconsistent() {
        assert!(!Report::default().check().is_empty());
    }
}
