//! The fault soak: a long random history of stores, restores, syncs, verifies and peer
//! pushes through [`FaultyStorage`] around the backend, the faults redrawn before every
//! operation — random transient errors, latency and latency spikes, torn puts, CAS
//! requests that fail and CAS replies lost after the head moved, corrupt and truncated
//! reads.
//!
//! What must hold, checked against the backend read directly (no faults):
//! - every operation gives the right answer or a typed error: a restore, sync or verify
//!   that succeeds gives exactly the db at the head (same roots, counters and schema; a
//!   lazy restore also reads every datom of it right through the faults), a store that
//!   succeeds moved the head to the db it stored;
//! - the head always names a complete commit ([`verify()`] passes on the backend itself)
//!   holding either the db it held before or the db a store just tried to write (a
//!   store's error after its CAS was sent leaves either); a store refused as a conflict
//!   leaves it alone;
//! - an operation with no fault armed succeeds, and so does a read with only transient
//!   failures at up to [`RETRIED_RATE`] armed (the drivers retry them with bounded
//!   backoff, [`datoms_storage::batch::retry`]);
//! - a peer pushing to a second head through the same faults lands every acknowledged
//!   transaction exactly once ([`crate::exactly_once::check`]);
//! - nothing panics (a panic fails the test).
//!
//! Size: [`ops`] operations, [`DEFAULT_OPS`] in CI, `DATOMS_SOAK=N` for a long run. The
//! history comes from [`settings::seed`]; the faults themselves are drawn from a random
//! source of the process, so a rerun explores other fault timings. The case prints what
//! it ran and what it survived (`soak: …`; `--nocapture` shows it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use datoms_core::restore::Mode;
use datoms_core::{Address, Db};
use datoms_storage::{
    restore, restore_commit, restore_from, store, sync, verify, FaultyStorage, MemoryOutbox,
    Outbox, Peer, Storage, StorageError, SyncPolicy,
};

use crate::exactly_once::{self, id_of, Ledger};
use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::history::{Op, Rng, Tx};
use crate::settings;
use crate::support::{ensure_same, seeded, snapshot, Snapshot, HEAD};

use super::peers;

/// The environment variable giving the number of operations of the soak.
pub const OPS_VAR: &str = "DATOMS_SOAK";

/// Operations at CI size: a few seconds per backend in a debug build.
pub const DEFAULT_OPS: u64 = 60;

/// The highest rate of transient failures (per million requests) under which every read
/// must still succeed: five tries of a request all failing is then a one-in-three-million
/// event.
pub const RETRIED_RATE: u64 = 50_000;

/// The head the soak's peer pushes to.
const PEER_HEAD: &str = "soak-peer";

/// The snapshots of verified commits kept at once (a long run forgets older ones).
const TRUTHS: usize = 64;

/// The db values the history keeps at once.
const VALUES: usize = 6;

/// Operations of the soak: [`OPS_VAR`], or [`DEFAULT_OPS`].
pub fn ops() -> u64 {
    std::env::var(OPS_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_OPS)
}

/// A long random history under random faults gives right answers or typed errors, and
/// never a head on an incomplete commit (see the module docs).
pub async fn a_long_history_under_random_faults_gives_right_answers_or_typed_errors<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let seed = settings::seed();
    let ops = ops();
    let clean: Arc<dyn Storage> = Arc::new(factory.create().await.context("creating a store")?);
    let mut soak = Soak::new(clean, seed).await?;
    for step in 0..ops {
        soak.step(step).await.map_err(|f| {
            f.context(format_args!(
                "soak step {step} of {ops} (history seed {seed}: {}={seed})",
                settings::SEED_VAR
            ))
        })?;
    }
    soak.finish().await?;
    println!("soak: {}", soak.tally);
    Ok(())
}

/// What the soak did, for its report line.
#[derive(Default)]
struct Tally {
    ops: u64,
    /// Operation → (succeeded, typed errors).
    outcomes: BTreeMap<&'static str, (u64, u64)>,
    /// Error kind → count.
    errors: BTreeMap<String, u64>,
    faults: datoms_storage::InjectedFaults,
    requests: u64,
    /// Commits found at the head and verified there.
    head_moves: u64,
    moved_despite_error: u64,
}

impl Tally {
    /// Counts one operation: `Ok`, or the error it ended with.
    fn count<T, E: fmt::Debug>(&mut self, op: &'static str, result: &Result<T, E>) {
        self.ops += 1;
        let entry = self.outcomes.entry(op).or_default();
        match result {
            Ok(_) => entry.0 += 1,
            Err(e) => {
                entry.1 += 1;
                *self.errors.entry(kind_of(e)).or_default() += 1;
            }
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} operations (", self.ops)?;
        let mut first = true;
        for (op, (ok, err)) in &self.outcomes {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{op} {ok} ok/{err} err")?;
        }
        write!(
            f,
            "); {} requests; {} heads verified ({} moved by a store that reported an error); \
             {} faults injected: {:?}; errors: {:?}",
            self.requests,
            self.head_moves,
            self.moved_despite_error,
            self.faults.total(),
            self.faults,
            self.errors
        )
    }
}

/// A short name of an error's kind, for the tally: its variant, and the variant it wraps
/// (`Storage::Transient`, `Core::NodeUnavailable`).
fn kind_of(e: &impl fmt::Debug) -> String {
    let debug = format!("{e:?}");
    let mut names = Vec::new();
    let mut rest = debug.as_str();
    while names.len() < 2 {
        let end = rest
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        names.push(&rest[..end]);
        match rest[end..].strip_prefix('(') {
            Some(inner) => rest = inner,
            None => break,
        }
    }
    names.join("::")
}

/// The faults armed for one step, as far as the checks care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Armed {
    /// No fault: everything must succeed.
    Nothing,
    /// Latency and transient failures the drivers' retries cover: reads must succeed.
    Retried,
    /// Anything: typed errors are allowed.
    Anything,
}

struct Soak {
    clean: Arc<dyn Storage>,
    faulty: Arc<FaultyStorage<Arc<dyn Storage>>>,
    storage: Arc<dyn Storage>,
    rng: Rng,
    values: Vec<Db>,
    /// Commits `verify` passed on, and the snapshot of each one's db.
    truth: HashMap<Address, Snapshot>,
    peer: Peer,
    ledger: Ledger,
    peer_rng: fastrand::Rng,
    peer_txs: usize,
    tally: Tally,
}

impl Soak {
    async fn new(clean: Arc<dyn Storage>, seed: u64) -> Result<Soak, Failure> {
        let faulty = Arc::new(FaultyStorage::new(clean.clone()));
        let storage: Arc<dyn Storage> = faulty.clone();
        let (_, first) = seeded(seed, 16)?;
        let peer = Peer::open(
            storage.clone(),
            PEER_HEAD,
            Outbox::memory(&MemoryOutbox::new()).context("an outbox")?,
            peers::options(),
        )
        .await
        .context("opening the soak's peer")?;
        let mut ledger = Ledger::default();
        let ops = peers::parse(peers::COUNTER_TX)?;
        let report = peer.transact(&ops).context("the peer's counter")?;
        ledger.acknowledge(id_of(&report)?, ops);
        Ok(Soak {
            clean,
            faulty,
            storage,
            rng: Rng::new(seed ^ 0x50A4),
            values: vec![first],
            truth: HashMap::new(),
            peer,
            ledger,
            peer_rng: fastrand::Rng::with_seed(seed),
            peer_txs: 0,
            tally: Tally::default(),
        })
    }

    /// Draws the faults of the next step and arms them.
    fn arm(&mut self) -> Armed {
        let faults = self.faulty.faults();
        faults.heal();
        faults.set_latency(Duration::ZERO);
        let rng = &mut self.rng;
        if rng.chance(1, 4) {
            return Armed::Nothing;
        }
        if rng.chance(1, 3) {
            faults.set_latency(Duration::from_micros(rng.below(800)));
        }
        if rng.chance(1, 3) {
            faults.set_latency_spikes(20_000, Duration::from_millis(rng.between(1, 6)));
        }
        let transient = faults_rate(rng);
        if rng.chance(1, 3) {
            // Only latency and the drivers' retries stand between us and success.
            faults.set_transient_failures(transient.min(RETRIED_RATE));
            return Armed::Retried;
        }
        faults.set_transient_failures(transient);
        if rng.chance(1, 3) {
            faults.set_corrupt_reads(rng.between(5_000, 100_000));
        }
        if rng.chance(1, 3) {
            faults.set_truncated_reads(rng.between(5_000, 100_000));
        }
        if rng.chance(1, 4) {
            faults.tear_next_put();
        }
        if rng.chance(1, 6) {
            faults.fail_next_cas();
        } else if rng.chance(1, 5) {
            faults.lose_next_cas_reply();
        }
        Armed::Anything
    }

    async fn step(&mut self, step: u64) -> Result<(), Failure> {
        let armed = self.arm();
        // Mostly the newest value (stores then land and move the head), now and then an
        // older one (stores then conflict, restores start from further behind).
        let i = if self.rng.chance(2, 3) {
            self.values.len() - 1
        } else {
            self.rng.below(self.values.len() as u64) as usize
        };
        let op = self.rng.below(11);
        let head = self.clean.get_head(HEAD).await.context("get_head")?;
        match (op, head) {
            (0 | 1, _) => self.transact(i, armed)?,
            (2 | 3, _) => self.store(i, armed).await?,
            (4, Some(h)) => self.lazy_restore(h.commit, armed).await?,
            (5, Some(h)) => self.restore_from(i, h.commit, armed).await?,
            (6, Some(h)) => self.sync(i, h.commit, armed).await?,
            (7, Some(h)) => self.verify(h.commit, armed).await?,
            (8, _) => self.peer_transact(armed)?,
            (9, _) => self.peer_push(armed).await?,
            _ => self.store(i, armed).await?,
        }
        self.faulty.faults().heal();
        // Whatever happened, the head names a complete commit.
        if let Some(h) = self.clean.get_head(HEAD).await.context("get_head")? {
            self.truth_of(h.commit)
                .await
                .context(format_args!("step {step}: the head after the step"))?;
        }
        Ok(())
    }

    /// The snapshot of the db at `commit`, read from the backend itself after [`verify`]
    /// passed on it (once per commit).
    async fn truth_of(&mut self, commit: Address) -> Result<Snapshot, Failure> {
        if let Some(s) = self.truth.get(&commit) {
            return Ok(s.clone());
        }
        let head = self
            .clean
            .get_head(HEAD)
            .await
            .context("get_head")?
            .map(|h| h.commit);
        if head == Some(commit) {
            let verified = verify(&*self.clean, HEAD)
                .await
                .context(format_args!("the head {commit} must be complete: verify"))?;
            ensure_eq!(verified.commit, commit, "verify read another head");
        }
        let db = restore_commit(&*self.clean, commit, None, Mode::Eager)
            .await
            .context(format_args!("a full restore of {commit}"))?
            .db;
        let s = snapshot(&db)?;
        if self.truth.len() >= TRUTHS {
            self.truth.clear();
        }
        self.truth.insert(commit, s.clone());
        self.tally.head_moves += 1;
        Ok(s)
    }

    fn keep(&mut self, db: Db) {
        if self.values.len() == VALUES {
            let drop = self.rng.below(VALUES as u64) as usize;
            self.values.remove(drop);
        }
        self.values.push(db);
    }

    fn transact(&mut self, i: usize, armed: Armed) -> Result<(), Failure> {
        let tx = random_tx(&mut self.rng);
        // A lazy db reads the nodes the transaction touches through the faults.
        match tx.apply(&self.values[i]) {
            Ok(db) => {
                self.tally.count::<(), ()>("transact", &Ok(()));
                self.keep(db);
            }
            Err(e) => {
                ensure!(
                    armed == Armed::Anything,
                    "a transaction failed with no fault armed ({armed:?}): {e}"
                );
                self.tally.count::<(), _>("transact", &Err(e));
            }
        }
        Ok(())
    }

    async fn store(&mut self, i: usize, armed: Armed) -> Result<(), Failure> {
        // Mostly a new transaction first, so that most stores have something to commit.
        if self.rng.chance(3, 4) {
            self.transact(i, armed)?;
        }
        let i = if self.rng.chance(3, 4) {
            self.values.len() - 1
        } else {
            i.min(self.values.len() - 1)
        };
        let value = self.values[i].clone();
        let before = self.clean.get_head(HEAD).await.context("get_head")?;
        let result = store(&value, &*self.storage, HEAD).await;
        self.tally.count("store", &result);
        let after = self.clean.get_head(HEAD).await.context("get_head")?;
        let moved = after.as_ref().map(|h| h.commit) != before.as_ref().map(|h| h.commit);
        match result {
            Ok(stored) => {
                let head = after.ok_or_else(|| Failure::new("a store landed but no head"))?;
                ensure_eq!(head.commit, stored.commit, "the head after a store");
                let truth = self.truth_of(head.commit).await?;
                ensure_identity("the stored db", &stored.db, &truth)?;
                ensure_identity("the db given to store", &value, &truth)?;
                self.keep(stored.db);
            }
            Err(StorageError::HeadConflict { .. }) => {
                ensure_eq!(
                    after,
                    before,
                    "a store refused as a conflict moved the head"
                );
            }
            Err(e) => {
                ensure!(
                    armed == Armed::Anything || matches!(e, StorageError::Transient { .. }),
                    "a store failed with {armed:?} armed: {e}"
                );
                if moved {
                    // The CAS landed and its reply was lost: the head holds our db.
                    let head = after.ok_or_else(|| Failure::new("the head vanished"))?;
                    let truth = self.truth_of(head.commit).await?;
                    ensure_identity("a store whose reply was lost", &value, &truth)?;
                    self.tally.moved_despite_error += 1;
                }
            }
        }
        Ok(())
    }

    async fn lazy_restore(&mut self, head: Address, armed: Armed) -> Result<(), Failure> {
        let truth = self.truth_of(head).await?;
        let result = restore(self.storage.clone(), HEAD).await;
        let result = match result {
            // Every datom of the lazy db is read through the faults.
            Ok(r) => match snapshot(&r.db) {
                Ok(s) => Ok((r.db, s)),
                Err(f) => {
                    ensure!(
                        armed == Armed::Anything,
                        "reading a lazy db with {armed:?} armed: {f}"
                    );
                    self.tally
                        .count::<(), _>("lazy restore", &Err(format_args!("LazyRead")));
                    return Ok(());
                }
            },
            Err(e) => Err(e),
        };
        self.tally.count("lazy restore", &result);
        match result {
            Ok((db, s)) => {
                ensure_same("a lazy restore under faults", &s, &truth)?;
                self.keep(db);
            }
            Err(e) => ensure_read_error("a lazy restore", armed, &e)?,
        }
        Ok(())
    }

    async fn restore_from(&mut self, i: usize, head: Address, armed: Armed) -> Result<(), Failure> {
        let truth = self.truth_of(head).await?;
        let result = restore_from(&self.values[i], &*self.storage, HEAD).await;
        self.tally.count("restore_from", &result);
        match result {
            Ok(r) => {
                ensure_identity("an incremental restore under faults", &r.db, &truth)?;
                self.keep(r.db);
            }
            Err(e) => ensure_read_error("an incremental restore", armed, &e)?,
        }
        Ok(())
    }

    async fn sync(&mut self, i: usize, head: Address, armed: Armed) -> Result<(), Failure> {
        // A replica with local transactions is rebased by a sync; only stored values
        // are synced here, so the answer is the head.
        if self.values[i].pending_txs() > 0 {
            return self.restore_from(i, head, armed).await;
        }
        let truth = self.truth_of(head).await?;
        let policy = *self
            .rng
            .pick(&[SyncPolicy::Auto, SyncPolicy::Log, SyncPolicy::Tree])
            .unwrap_or(&SyncPolicy::Auto);
        let result = sync(&self.values[i], &*self.storage, HEAD, policy).await;
        self.tally.count("sync", &result);
        match result {
            Ok(s) => {
                ensure_identity(&format!("a sync ({policy:?}) under faults"), &s.db, &truth)?;
                self.keep(s.db);
            }
            Err(e) => ensure_read_error("a sync", armed, &e)?,
        }
        Ok(())
    }

    async fn verify(&mut self, head: Address, armed: Armed) -> Result<(), Failure> {
        let truth = self.truth_of(head).await?;
        let result = verify(&*self.storage, HEAD).await;
        self.tally.count("verify", &result);
        match result {
            Ok(v) => {
                ensure_eq!(v.commit, head, "verify read another commit");
                ensure_eq!(
                    v.datoms,
                    truth.datoms[0].len() as u64,
                    "the datoms verify counted"
                );
            }
            Err(e) => ensure_read_error("a verify", armed, &e)?,
        }
        Ok(())
    }

    fn peer_transact(&mut self, armed: Armed) -> Result<(), Failure> {
        for _ in 0..self.peer_rng.usize(1..4) {
            let text = peers::random_tx(&self.peer, &mut self.peer_rng, 0, self.peer_txs)?;
            self.peer_txs += 1;
            let ops = peers::parse(&text)?;
            let result = self.peer.transact(&ops);
            self.tally.count("peer transact", &result);
            match result {
                Ok(report) => self.ledger.acknowledge(id_of(&report)?, ops),
                Err(e) => ensure!(
                    armed == Armed::Anything,
                    "a local peer transaction failed with {armed:?} armed: {e}"
                ),
            }
        }
        Ok(())
    }

    async fn peer_push(&mut self, armed: Armed) -> Result<(), Failure> {
        let result = self.peer.push().await;
        self.tally.count("peer push", &result);
        match result {
            Ok(report) => self.ledger.reject(&report.rejected),
            Err(e) => ensure!(
                armed == Armed::Anything,
                "a push failed with {armed:?} armed: {e}"
            ),
        }
        Ok(())
    }

    /// Heals everything, lands what the peer holds, and checks exactly-once delivery.
    async fn finish(&mut self) -> Result<(), Failure> {
        self.faulty.faults().heal();
        self.faulty.faults().set_latency(Duration::ZERO);
        let report = self
            .peer
            .push_until_landed()
            .await
            .context("landing the peer's pending transactions")?;
        self.ledger.reject(&report.rejected);
        for r in self.peer.take_rejected().context("rejections")? {
            if !self.ledger.rejected.contains(&r.id) {
                self.ledger.rejected.push(r.id);
            }
        }
        exactly_once::check(&*self.clean, PEER_HEAD, &peers::schema(), &self.ledger)
            .await
            .context("the soak peer's head")?;
        let verified = verify(&*self.clean, PEER_HEAD)
            .await
            .context("verify of the peer's head")?;
        ensure!(verified.datoms > 0, "the peer's head holds nothing");
        self.tally.faults = self.faulty.injected();
        self.tally.requests = self.faulty.counters().requests();
        ensure!(
            self.tally.ops < 20 || self.tally.faults.total() > 0,
            "a soak of {} operations injected no fault",
            self.tally.ops
        );
        let distinct: HashSet<&str> = self.tally.outcomes.keys().copied().collect();
        ensure!(
            self.tally.ops < 60 || distinct.len() >= 6,
            "a soak of {} operations ran only {distinct:?}",
            self.tally.ops
        );
        Ok(())
    }
}

/// Rates of transient failures drawn for a step (per million requests).
fn faults_rate(rng: &mut Rng) -> u64 {
    *rng.pick(&[0, 10_000, RETRIED_RATE, 200_000]).unwrap_or(&0)
}

/// A read that failed: allowed only under faults the drivers do not retry away, and
/// never as a conflict.
fn ensure_read_error(what: &str, armed: Armed, e: &StorageError) -> Result<(), Failure> {
    ensure!(
        armed == Armed::Anything,
        "{what} failed with {armed:?} armed (retries must cover it): {e}"
    );
    ensure!(
        !matches!(
            e,
            StorageError::HeadConflict { .. } | StorageError::NoHead { .. }
        ),
        "{what} failed as if the head were not there: {e}"
    );
    Ok(())
}

/// Fails unless `db` is the db of `truth`: same roots (content-addressed, so the same
/// datoms), id counters and schema, without reading a lazy db's nodes.
fn ensure_identity(what: &str, db: &Db, truth: &Snapshot) -> Result<(), Failure> {
    ensure_eq!(db.root_addresses(), truth.roots, "{what}: roots");
    ensure_eq!(
        (db.max_eid(), db.max_tx()),
        (truth.max_eid, truth.max_tx),
        "{what}: max_eid/max_tx"
    );
    ensure!(db.schema() == &truth.schema, "{what}: the schema differs");
    Ok(())
}

/// A transaction valid on any db of the history's schema: upserts by unique name, some
/// with a friend.
fn random_tx(rng: &mut Rng) -> Tx {
    let n = rng.between(1, 5);
    let ops = (0..n)
        .map(|_| {
            let name = format!("p{}", rng.below(40));
            let age = rng.between(1, 99) as i64;
            if rng.chance(1, 3) {
                let friend = (format!("p{}", rng.below(40)), rng.between(1, 99) as i64);
                Op::UpsertWithFriends {
                    name,
                    age,
                    friends: vec![friend],
                }
            } else {
                Op::Upsert { name, age }
            }
        })
        .collect();
    Tx { ops }
}
