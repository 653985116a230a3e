//! Databases stored through the backend: what a primary, its replicas and competing
//! writers rely on. Every case compares against the primary's in-memory db (every datom
//! of every index, the schema, the id counters and the roots), and counts I/O with a
//! recording wrapper over the backend, so a backend that loses, mixes up or re-fetches
//! data fails here even when it passes the contract cases.
//!
//! Faults (torn puts, a failure before the head CAS, corrupt reads) are injected by
//! wrapping the backend in `FaultyStorage`, so every backend runs these cases too.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use datoms_core::commit::ANCESTORS;
use datoms_core::restore::Mode;
use datoms_core::{Address, Db, Error, IndexKind, Value};
use datoms_storage::{
    materialize, restore, restore_commit, restore_from, store, sync, sync_via_log, MemoryStorage,
    Storage, StorageError, StoreStats, Stored, SyncPolicy, SyncRoute,
};
use tokio::sync::Barrier;

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::history::{self, Generator, Params, Tx, NAME};
use crate::settings;
use crate::support::{
    advance, apply, ensure_same, expect_err, list_everything, max_level, node_addresses,
    restore_ok, seeded, snapshot, store_ok, Log, Rig, Snapshot, HEAD,
};

/// The seed of the deterministic (non-property) cases.
const SEED: u64 = 0x00C0_FFEE;

/// The node addresses a log read, leaving out the commit addresses in `commits`.
fn fetched_nodes(log: &Log, commits: &HashSet<Address>) -> Vec<Address> {
    log.fetched()
        .into_iter()
        .filter(|a| !commits.contains(a))
        .collect()
}

fn describe(set: &BTreeSet<Address>) -> String {
    let shown: Vec<String> = set.iter().take(6).map(|a| format!("{a:?}")).collect();
    format!(
        "{} ({}{})",
        set.len(),
        shown.join(" "),
        if set.len() > 6 { " …" } else { "" }
    )
}

/// Fails unless every address of `got` is in `allowed`.
fn ensure_within(
    what: &str,
    got: &HashSet<Address>,
    allowed: &HashSet<Address>,
) -> Result<(), Failure> {
    let extra: BTreeSet<Address> = got.difference(allowed).copied().collect();
    ensure!(
        extra.is_empty(),
        "{what}: {} nodes read that are not new since db1's commit: {}",
        extra.len(),
        describe(&extra)
    );
    Ok(())
}

/// Fails unless every address of `needed` is in `got`.
fn ensure_covers(
    what: &str,
    got: &HashSet<Address>,
    needed: &HashSet<Address>,
) -> Result<(), Failure> {
    let missing: BTreeSet<Address> = needed.difference(got).copied().collect();
    ensure!(
        missing.is_empty(),
        "{what}: {} new nodes were not read: {}",
        missing.len(),
        describe(&missing)
    );
    Ok(())
}

/// One stored version of the primary.
struct Point {
    commit: Address,
    snapshot: Snapshot,
    nodes: HashSet<Address>,
    level: u64,
}

impl Point {
    fn of(stored: &Stored) -> Result<Point, Failure> {
        Ok(Point {
            commit: stored.commit,
            snapshot: snapshot(&stored.db)?,
            nodes: node_addresses(&stored.db),
            level: max_level(&stored.db),
        })
    }
}

/// A replica restores incrementally at random points of a random history, and gets
/// exactly the primary's db — the same db a full lazy restore (read through its source,
/// then materialized), log replay and `sync` give. Along the way: each store writes only
/// new nodes and a re-store writes nothing; `restore_from` reads only nodes that are new
/// since db1's commit, all of them, in at most three round trips when a few commits
/// behind and one per level otherwise; restoring the same commit again reads no node;
/// older commits restore by address from a newer db.
///
/// Runs `DATOMS_CONFORMANCE_CASES` histories (default
/// [`settings::DEFAULT_CASES`]) from seed `DATOMS_CONFORMANCE_SEED` onwards; a failure
/// names the seed that reproduces it alone.
pub async fn incremental_restore_equals_full_restore_and_log_replay<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let base = settings::seed();
    for i in 0..settings::cases() {
        let seed = base.wrapping_add(u64::from(i));
        check_history(factory, seed).await.map_err(|f| {
            f.context(format_args!(
                "random history {seed} (rerun just this one with {}={seed} {}=1)",
                settings::SEED_VAR,
                settings::CASES_VAR
            ))
        })?;
    }
    Ok(())
}

async fn check_history<F: Factory>(factory: &F, seed: u64) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    // Small enough that a slow backend (an S3 emulator at several milliseconds a
    // request) runs a history in seconds; the small nodes of `history::tree_config` still
    // make the trees four levels deep.
    let mut generator = Generator::new(
        seed,
        Params {
            initial_people: 25,
            name_space: 50,
            ..Params::default()
        },
    );
    let steps = generator.rng().between(5, 12);
    let mut primary = history::empty_db();
    let mut points: Vec<Point> = Vec::new();
    let mut replica = history::empty_db();
    let mut replica_at: Option<usize> = None;
    for step in 0..steps {
        let at = |f: Failure| f.context(format_args!("step {step}"));
        let txs: Vec<Tx> = if step == 0 {
            vec![generator.initial_tx()]
        } else {
            let n = generator.rng().between(1, 3);
            (0..n).map(|_| generator.next_tx()).collect()
        };
        for tx in &txs {
            primary = apply(tx, &primary).map_err(at)?;
        }
        let stored = store_primary(&rig, &primary, points.last())
            .await
            .map_err(at)?;
        primary = stored.db.clone();
        points.push(Point::of(&stored)?);
        let last = step + 1 == steps;
        if last || generator.rng().chance(2, 5) {
            replica = check_replica(&rig, &replica, replica_at, &points, last, generator.rng())
                .await
                .map_err(|f| {
                    at(f).context(format_args!(
                        "replica at commit {replica_at:?} syncing to commit {}",
                        points.len() - 1
                    ))
                })?;
            replica_at = Some(points.len() - 1);
        }
    }
    Ok(())
}

/// Stores the primary: checks what the store wrote, and that storing it again writes
/// nothing.
async fn store_primary(
    rig: &Rig,
    primary: &Db,
    previous: Option<&Point>,
) -> Result<Stored, Failure> {
    rig.recorder.take();
    let stored = store_ok(primary, &*rig.storage, "the primary").await?;
    let log = rig.recorder.take();
    ensure!(
        stored.stats.committed,
        "a store of new transactions must commit"
    );
    ensure_eq!(
        rig.storage.get_head(HEAD).await?.map(|h| h.commit),
        Some(stored.commit),
        "after a store the head points at its commit"
    );
    let nodes = node_addresses(&stored.db);
    let written: Vec<Address> = log.written();
    let written_nodes: HashSet<Address> = written
        .iter()
        .copied()
        .filter(|a| *a != stored.commit)
        .collect();
    ensure!(
        written.contains(&stored.commit),
        "the store did not write its commit"
    );
    let new: HashSet<Address> = match previous {
        Some(p) => nodes.difference(&p.nodes).copied().collect(),
        None => nodes.clone(),
    };
    ensure_covers("the store", &written_nodes, &new)?;
    let strays: BTreeSet<Address> = written_nodes.difference(&nodes).copied().collect();
    ensure!(
        strays.is_empty(),
        "the store wrote nodes that are not in the db: {}",
        describe(&strays)
    );
    ensure_eq!(
        stored.stats.nodes_written,
        written_nodes.len() as u64,
        "StoreStats::nodes_written must count the nodes written"
    );
    let again = store_ok(&stored.db, &*rig.storage, "the primary again").await?;
    let log = rig.recorder.take();
    ensure_eq!(
        again.stats,
        StoreStats::default(),
        "storing a db that is already stored must write nothing"
    );
    ensure_eq!(again.commit, stored.commit, "a re-store keeps the commit");
    ensure!(
        log.puts() == 0 && log.cas() == 0,
        "a re-store sent {} puts and {} CASes",
        log.puts(),
        log.cas()
    );
    Ok(stored)
}

/// Brings `db1` (at point `db1_at`, or a db without commit) to the last point every way
/// there is, checks each against the primary, and returns the replica's next db.
async fn check_replica(
    rig: &Rig,
    db1: &Db,
    db1_at: Option<usize>,
    points: &[Point],
    last: bool,
    rng: &mut history::Rng,
) -> Result<Db, Failure> {
    let t = points.len() - 1;
    let target = &points[t];
    let gap = db1_at.map(|r| t - r);
    let commits: HashSet<Address> = points.iter().map(|p| p.commit).collect();
    let held: HashSet<Address> = match db1_at {
        Some(r) => points[r].nodes.clone(),
        None => node_addresses(db1),
    };
    let since = db1_at.map_or(0, |r| r + 1);
    // Restore reads nodes of the new commits, never a node only older commits have. It
    // finds what db1 holds by position (key and level), and a manifest names nodes
    // without their keys: a node that left the trees and came back is in a later
    // commit's manifest and may be read although db1 holds it. An eager db1 counts such
    // reads as unused; a lazily restored db1 has loaded only its roots, so it cannot tell
    // either way (and a new root may be an old inner node).
    let lazy = db1.source().is_some();
    let allowed: HashSet<Address> = points[since..]
        .iter()
        .flat_map(|p| p.nodes.iter().copied())
        .collect();
    let needed: HashSet<Address> = target.nodes.difference(&held).copied().collect();

    // Incremental restore.
    rig.recorder.take();
    let inc = restore_from(db1, &*rig.storage, HEAD)
        .await
        .context("restore_from")?;
    let log = rig.recorder.take();
    ensure_same("restore_from", &snapshot(&inc.db)?, &target.snapshot)?;
    ensure_eq!(
        inc.db.base_commit(),
        Some(target.commit),
        "restore_from's db must know its commit"
    );
    let fetched = fetched_nodes(&log, &commits);
    let fetched_set: HashSet<Address> = fetched.iter().copied().collect();
    let db1_kind = if db1.source().is_some() {
        "restore_from a lazily restored db1"
    } else {
        "restore_from"
    };
    ensure_within(db1_kind, &fetched_set, &allowed)?;
    if !lazy {
        let held_read = fetched_set.intersection(&held).count() as u64;
        ensure!(
            held_read <= inc.stats.nodes_unused,
            "{db1_kind}: {held_read} nodes read that db1 holds, only {} counted unused",
            inc.stats.nodes_unused
        );
        // A lazily restored db1 gives a lazily restored db: what it does not fetch now it
        // loads on demand (the snapshot comparison above read it all).
        ensure_covers(db1_kind, &fetched_set, &needed)?;
    }
    ensure_eq!(
        inc.stats.nodes_fetched,
        fetched.len() as u64,
        "RestoreStats::nodes_fetched must count the nodes read"
    );
    ensure_eq!(log.head_reads(), 1, "restore_from reads the head once");
    // Never more nodes than a full restore of the target fetches (all of its nodes):
    // past that, the manifests of superseded commits give way to the tree walk.
    ensure!(
        inc.stats.nodes_fetched <= target.nodes.len() as u64,
        "{db1_kind} fetched {} nodes; a full restore fetches {}",
        inc.stats.nodes_fetched,
        target.nodes.len()
    );
    let bound = match gap {
        Some(g) if g <= ANCESTORS && !inc.stats.prefetch_skipped => 3,
        _ => 3 + target.level,
    };
    ensure!(
        inc.stats.round_trips <= bound,
        "restore_from took {} round trips {} commits behind (trees {} levels high), at \
         most {bound} expected",
        inc.stats.round_trips,
        gap.map_or("from no".to_owned(), |g| g.to_string()),
        target.level + 1
    );

    // The same commit again reads no node. (Comparing a lazily restored db above may
    // have loaded nodes through its source: those reads are not this restore's.)
    rig.recorder.take();
    let again = restore_from(&inc.db, &*rig.storage, HEAD)
        .await
        .context("restore_from at the same commit")?;
    let log = rig.recorder.take();
    ensure_eq!(
        (log.gets(), again.stats.nodes_fetched),
        (0, 0),
        "restoring the commit db1 already is must read no blob"
    );
    ensure_eq!(
        again.db.root_addresses(),
        target.snapshot.roots,
        "restoring the same commit"
    );

    // Log replay.
    match sync_via_log(db1, &*rig.storage, HEAD).await {
        Ok(synced) => {
            ensure_eq!(synced.route, SyncRoute::Log, "sync_via_log's route");
            ensure_same("sync_via_log", &snapshot(&synced.db)?, &target.snapshot)?;
            ensure_eq!(
                synced.db.base_commit(),
                Some(target.commit),
                "sync_via_log's commit"
            );
        }
        Err(StorageError::LogGap { .. }) if gap.is_none_or(|g| g > ANCESTORS) => {}
        Err(e) => {
            return Err(Failure::from(e).context(format_args!(
                "sync_via_log {} commits behind",
                gap.map_or("from no".to_owned(), |g| g.to_string())
            )))
        }
    }

    // Whatever route `sync` picks.
    let synced = sync(db1, &*rig.storage, HEAD, SyncPolicy::Auto)
        .await
        .context("sync")?;
    ensure_same(
        &format!("sync (by {:?})", synced.route),
        &snapshot(&synced.db)?,
        &target.snapshot,
    )?;

    // A full, lazy restore, read through its source, then materialized.
    let lazy_next = rng.chance(1, 4);
    let mut next = inc.db.clone();
    if last || lazy_next || rng.chance(1, 3) {
        rig.recorder.take();
        let lazy = restore(rig.storage.clone(), HEAD)
            .await
            .context("restore (lazy)")?;
        ensure!(
            lazy.stats.nodes_fetched <= 3 && lazy.stats.round_trips <= 3,
            "a lazy restore reads the head, the commit and the three roots, nothing more: {:?}",
            lazy.stats
        );
        if last || lazy_next {
            // One request per node: done when it matters, not at every check.
            ensure_same(
                "restore (lazy), read through its source",
                &snapshot(&lazy.db)?,
                &target.snapshot,
            )?;
        }
        let full = materialize(&lazy.db, &*rig.storage)
            .await
            .context("materialize")?;
        ensure!(
            full.stats.round_trips <= target.level + 1,
            "materialize took {} round trips for trees {} levels high",
            full.stats.round_trips,
            target.level + 1
        );
        rig.recorder.take();
        ensure_same("materialize", &snapshot(&full.db)?, &target.snapshot)?;
        ensure_eq!(
            rig.recorder.take().gets(),
            0,
            "reading a materialized db must read no blob"
        );
        if lazy_next {
            // The replica goes on from a lazy db: the next restore_from must still read
            // only what is new.
            next = restore(rig.storage.clone(), HEAD)
                .await
                .context("restore (lazy)")?
                .db;
        }
    }

    // Back in time: an older commit, by address, reusing the newer db.
    if t > 0 && rng.chance(1, 3) {
        let j = usize::try_from(rng.below(t as u64)).unwrap_or(0);
        let old = restore_commit(&*rig.storage, points[j].commit, Some(&inc.db), Mode::Eager)
            .await
            .context(format_args!("restore_commit of commit {j}"))?;
        ensure_same(
            &format!("restore_commit of commit {j} from a newer db"),
            &snapshot(&old.db)?,
            &points[j].snapshot,
        )?;
    }
    Ok(next)
}

/// After one small transaction, `restore_from` reads exactly the nodes that differ from
/// db1's, once each; a few commits behind, only nodes new in those commits and all that
/// the head needs; far behind, exactly the nodes db1 lacks.
pub async fn restore_fetches_only_nodes_new_since_db1<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (mut generator, db) = seeded(SEED, 120)?;
    let stored = store_ok(&db, &*rig.storage, "the first commit").await?;
    let mut points = vec![Point::of(&stored)?];
    let mut commits: HashSet<Address> = HashSet::from([stored.commit]);
    let mut primary = stored.db;
    let mut replica = restore_ok(&history::empty_db(), &*rig.storage, "a new replica").await?;

    // One datom changes: p7's age.
    let age = primary
        .entity_attr(
            primary
                .entity_by_value(&NAME.into(), &Value::from("p7"))?
                .ok_or_else(|| Failure::new("p7 is missing from the initial history"))?,
            &history::AGE.into(),
        )?
        .first()
        .and_then(|d| match d.v {
            Value::Long(n) => Some(n),
            _ => None,
        })
        .unwrap_or(0);
    primary = primary
        .with_edn(&format!(
            "[{{{NAME} \"p7\" {} {}}}]",
            history::AGE,
            age + 1000
        ))?
        .db_after;
    let stored = store_ok(&primary, &*rig.storage, "one changed datom").await?;
    commits.insert(stored.commit);
    points.push(Point::of(&stored)?);
    primary = stored.db;
    rig.recorder.take();
    let next = restore_ok(&replica, &*rig.storage, "one changed datom").await?;
    let log = rig.recorder.take();
    let fetched = fetched_nodes(&log, &commits);
    let fetched_set: HashSet<Address> = fetched.iter().copied().collect();
    let new: HashSet<Address> = points[1]
        .nodes
        .difference(&points[0].nodes)
        .copied()
        .collect();
    ensure_covers("one changed datom", &fetched_set, &new)?;
    ensure_within("one changed datom", &fetched_set, &new)?;
    ensure_eq!(
        fetched.len(),
        fetched_set.len(),
        "restore_from read a node twice"
    );
    let paths = 4 * (points[1].level + 1);
    ensure!(
        (new.len() as u64) <= 2 * paths,
        "one changed datom gave {} new nodes in trees {} levels high: the I/O is not \
         proportional to the change",
        new.len(),
        points[1].level + 1
    );
    ensure_same("one changed datom", &snapshot(&next)?, &points[1].snapshot)?;
    replica = next;

    // A few commits behind, then far behind.
    for (what, n) in [("3 commits behind", 3usize), ("12 commits behind", 12)] {
        let base = points.len() - 1;
        for _ in 0..n {
            primary = advance(&mut generator, &primary, 1)?;
            let stored = store_ok(&primary, &*rig.storage, what).await?;
            commits.insert(stored.commit);
            points.push(Point::of(&stored)?);
            primary = stored.db;
        }
        let target = &points[points.len() - 1];
        rig.recorder.take();
        let next = restore_ok(&replica, &*rig.storage, what).await?;
        let log = rig.recorder.take();
        let fetched = fetched_nodes(&log, &commits);
        let fetched_set: HashSet<Address> = fetched.iter().copied().collect();
        let held = &points[base].nodes;
        let allowed: HashSet<Address> = points[base + 1..]
            .iter()
            .flat_map(|p| p.nodes.iter().copied())
            .filter(|a| !held.contains(a))
            .collect();
        let needed: HashSet<Address> = target.nodes.difference(held).copied().collect();
        ensure_covers(what, &fetched_set, &needed)?;
        if n > ANCESTORS + 1 {
            // Too far behind for the manifests: the walk reads exactly what db1 lacks.
            ensure_within(what, &fetched_set, &needed)?;
        } else {
            ensure_within(what, &fetched_set, &allowed)?;
        }
        ensure_eq!(
            fetched.len(),
            fetched_set.len(),
            "{what}: a node was read twice"
        );
        ensure_same(what, &snapshot(&next)?, &target.snapshot)?;
        replica = next;
    }
    Ok(())
}

/// An incremental restore never fetches more nodes than a full restore of the target:
/// after commits that each rewrite every age, the manifests since the replica's commit
/// name each superseded node again, and their union is larger than the target's trees,
/// so the restore walks the trees instead (and says so in its stats).
pub async fn an_incremental_restore_never_fetches_more_than_a_full_restore<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let people = 200;
    let everyone = |age: i64| {
        let maps: Vec<String> = (0..people)
            .map(|i| format!("{{{NAME} \"p{i}\" {} {}}}", history::AGE, age + i))
            .collect();
        format!("[{}]", maps.join(" "))
    };
    let db = history::empty_db().with_edn(&everyone(0))?.db_after;
    let first = store_ok(&db, &*rig.storage, "the first commit").await?;
    let mut primary = first.db.clone();
    for round in 1..=4 {
        primary = primary.with_edn(&everyone(round * 1000))?.db_after;
        primary = store_ok(&primary, &*rig.storage, "a commit rewriting every age")
            .await?
            .db;
    }
    let full = restore_ok(&history::empty_db(), &*rig.storage, "a full restore").await?;
    let full_nodes = node_addresses(&full).len() as u64;
    let inc = restore_from(&first.db, &*rig.storage, HEAD)
        .await
        .context("restore_from the first commit")?;
    ensure_same(
        "restore_from the first commit",
        &snapshot(&inc.db)?,
        &snapshot(&primary)?,
    )?;
    ensure!(
        inc.stats.nodes_fetched <= full_nodes,
        "an incremental restore fetched {} nodes, a full restore fetches {full_nodes}: {:?}",
        inc.stats.nodes_fetched,
        inc.stats
    );
    ensure!(
        inc.stats.prefetch_skipped,
        "the manifests since the first commit exceed the trees: the walk must be taken"
    );
    Ok(())
}

/// A replica one to eight commits behind (1, 2, 3, 5 and 8 here) restores in at most three round trips, the
/// head read included (head, commits, nodes); one commit behind with a small log, `sync`
/// replays it in two (head, commit). (The db is large enough that the manifests of eight
/// small commits name fewer nodes than its trees have: past that, restore walks the
/// trees rather than fetch more than a full restore would.)
pub async fn a_replica_a_few_commits_behind_restores_in_three_round_trips<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (mut generator, db) = seeded(SEED + 1, 400)?;
    let mut primary = store_ok(&db, &*rig.storage, "the first commit").await?.db;
    let mut replica = restore_ok(&history::empty_db(), &*rig.storage, "a new replica").await?;
    for behind in [1, 2, 3, 5, ANCESTORS] {
        for _ in 0..behind {
            primary = advance(&mut generator, &primary, 1)?;
            primary = store_ok(&primary, &*rig.storage, "the primary").await?.db;
        }
        rig.recorder.take();
        let r = restore_from(&replica, &*rig.storage, HEAD)
            .await
            .context(format_args!("restore_from {behind} commits behind"))?;
        let log = rig.recorder.take();
        ensure!(
            r.stats.round_trips <= 3,
            "{behind} commits behind, restore_from took {} round trips: {:?}",
            r.stats.round_trips,
            r.stats
        );
        ensure_eq!(log.head_reads(), 1, "{behind} commits behind: head reads");
        ensure_same(
            &format!("{behind} commits behind"),
            &snapshot(&r.db)?,
            &snapshot(&primary)?,
        )?;
        replica = r.db;
    }
    primary = advance(&mut generator, &primary, 1)?;
    primary = store_ok(&primary, &*rig.storage, "the primary").await?.db;
    let synced = sync(&replica, &*rig.storage, HEAD, SyncPolicy::Auto)
        .await
        .context("sync one commit behind")?;
    ensure_eq!(
        synced.route,
        SyncRoute::Log,
        "one small commit behind, sync must replay the log"
    );
    ensure!(
        synced.stats.round_trips <= 2 && synced.stats.nodes_fetched == 0,
        "replaying one commit reads the head and the commit, no node: {:?}",
        synced.stats
    );
    ensure_same("sync by log", &snapshot(&synced.db)?, &snapshot(&primary)?)?;
    Ok(())
}

/// A replica already at the head — restored there, or the writer that stored it —
/// restores by reading the head alone; `sync` says it is unchanged.
pub async fn restoring_the_same_commit_reads_no_node<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 2, 60)?;
    let stored = store_ok(&db, &*rig.storage, "the db").await?;
    let replica = restore_ok(&history::empty_db(), &*rig.storage, "a new replica").await?;
    for (what, db1) in [("a restored replica", &replica), ("the writer", &stored.db)] {
        rig.recorder.take();
        let r = restore_from(db1, &*rig.storage, HEAD)
            .await
            .context(format_args!("restore_from for {what}"))?;
        let log = rig.recorder.take();
        ensure_eq!(
            (log.head_reads(), log.gets()),
            (1, 0),
            "{what} at the head: restore_from must read the head and no blob"
        );
        ensure_eq!(
            (r.stats.nodes_fetched, r.stats.commits_fetched),
            (0, 0),
            "{what}: RestoreStats"
        );
        ensure_same(what, &snapshot(&r.db)?, &snapshot(&stored.db)?)?;
        let synced = sync(db1, &*rig.storage, HEAD, SyncPolicy::Auto)
            .await
            .context("sync")?;
        let log = rig.recorder.take();
        ensure_eq!(synced.route, SyncRoute::Unchanged, "{what}: sync's route");
        ensure_eq!(log.gets(), 0, "{what}: sync at the head must read no blob");
    }
    Ok(())
}

/// Storing a db that has no transaction since its commit — the writer's own, a restored
/// replica, a lazily restored one — writes nothing and leaves the head's version alone.
pub async fn storing_an_unchanged_db_writes_nothing<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 3, 60)?;
    let stored = store_ok(&db, &*rig.storage, "the db").await?;
    let head = rig.storage.get_head(HEAD).await?;
    let replica = restore_ok(&history::empty_db(), &*rig.storage, "a replica").await?;
    let lazy = restore(rig.storage.clone(), HEAD)
        .await
        .context("restore")?
        .db;
    for (what, db) in [
        ("the stored db", &stored.db),
        ("a restored replica", &replica),
        ("a lazily restored db", &lazy),
    ] {
        rig.recorder.take();
        let again = store_ok(db, &*rig.storage, what).await?;
        let log = rig.recorder.take();
        ensure_eq!(again.stats, StoreStats::default(), "storing {what} again");
        ensure_eq!(again.commit, stored.commit, "storing {what} again");
        ensure_eq!(
            (log.puts(), log.cas()),
            (0, 0),
            "storing {what} again must send no put and no CAS"
        );
        ensure_eq!(
            rig.storage.get_head(HEAD).await?,
            head,
            "storing {what} again must not move the head"
        );
    }
    Ok(())
}

/// A store whose node put is torn (half written, then an error) leaves the head on the
/// previous commit, which still restores; storing the same db again completes, and the
/// store holds exactly the blobs of the two commits, no strays.
pub async fn store_is_idempotent_after_a_torn_put<F: Factory>(factory: &F) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (mut generator, db) = seeded(SEED + 4, 80)?;
    let first = store_ok(&db, &*rig.storage, "the first commit").await?;
    let head = rig.storage.get_head(HEAD).await?;
    let db2 = advance(&mut generator, &first.db, 6)?;
    rig.faulty.faults().tear_next_put();
    rig.recorder.take();
    let torn = store(&db2, &*rig.storage, HEAD).await;
    let log = rig.recorder.take();
    rig.faulty.faults().heal();
    expect_err("a store whose put is torn", torn)?;
    ensure!(
        log.cas() == 0,
        "a store whose node put failed must not move the head"
    );
    ensure_eq!(
        rig.storage.get_head(HEAD).await?,
        head,
        "after a torn put the head is where it was"
    );
    let previous = restore_ok(&history::empty_db(), &*rig.storage, "after a torn put").await?;
    ensure_same(
        "the previous db after a torn put",
        &snapshot(&previous)?,
        &snapshot(&first.db)?,
    )?;

    let second = store_ok(&db2, &*rig.storage, "the same db after the torn put").await?;
    ensure!(second.stats.committed, "the retried store must commit");
    let restored = restore_ok(&history::empty_db(), &*rig.storage, "after the retry").await?;
    ensure_same(
        "after the retried store",
        &snapshot(&restored)?,
        &snapshot(&second.db)?,
    )?;
    let mut want: BTreeSet<Address> = node_addresses(&first.db).into_iter().collect();
    want.extend(node_addresses(&second.db));
    want.extend([first.commit, second.commit]);
    let listed: BTreeSet<Address> = list_everything(&*rig.storage, 500)
        .await?
        .into_iter()
        .collect();
    // The torn store's commit was never written (nodes come first), so there are no
    // strays; a backend that invents or loses blobs shows here.
    ensure_eq!(
        listed,
        want,
        "the store must hold exactly the nodes and commits of the two stored versions"
    );
    Ok(())
}

/// A writer that dies between writing its nodes and commit and moving the head leaves
/// the head on the previous commit: replicas restore it (and see nothing new), and the
/// same db stores fine afterwards.
pub async fn failure_before_head_cas_leaves_previous_db_restorable<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (mut generator, db) = seeded(SEED + 5, 80)?;
    let first = store_ok(&db, &*rig.storage, "the first commit").await?;
    let head = rig.storage.get_head(HEAD).await?;
    let replica = restore_ok(&history::empty_db(), &*rig.storage, "a replica").await?;
    let db2 = advance(&mut generator, &first.db, 4)?;
    rig.faulty.faults().fail_next_cas();
    let failed = store(&db2, &*rig.storage, HEAD).await;
    rig.faulty.faults().heal();
    expect_err("a store whose head CAS fails", failed)?;
    ensure_eq!(
        rig.storage.get_head(HEAD).await?,
        head,
        "a failed CAS must leave the head (and its version) alone"
    );
    let fresh = restore_ok(&history::empty_db(), &*rig.storage, "a new replica").await?;
    ensure_same("a new replica", &snapshot(&fresh)?, &snapshot(&first.db)?)?;
    rig.recorder.take();
    let same = restore_ok(&replica, &*rig.storage, "the old replica").await?;
    ensure_eq!(
        rig.recorder.take().gets(),
        0,
        "the old replica is at the head and must read no blob"
    );
    ensure_same("the old replica", &snapshot(&same)?, &snapshot(&first.db)?)?;
    let lazy = restore(rig.storage.clone(), HEAD)
        .await
        .context("restore")?;
    ensure_same(
        "a lazy restore",
        &snapshot(&lazy.db)?,
        &snapshot(&first.db)?,
    )?;

    let second = store_ok(&db2, &*rig.storage, "the db again").await?;
    let caught_up = restore_ok(&replica, &*rig.storage, "the replica after the retry").await?;
    ensure_same(
        "after the retry",
        &snapshot(&caught_up)?,
        &snapshot(&second.db)?,
    )?;
    Ok(())
}

/// The first leaf of EAVT and the branch above it, if the tree has one.
fn eavt_leaf_and_branch(db: &Db) -> Result<(Address, Option<Address>), Failure> {
    let mut node = db.tree(IndexKind::Eavt).root().clone();
    let mut parent = None;
    while node.level() > 0 {
        let child = node
            .children()
            .first()
            .and_then(|c| c.loaded().cloned())
            .ok_or_else(|| Failure::new("the primary's EAVT has a branch without a child"))?;
        parent = Some(node.address());
        node = child;
    }
    Ok((node.address(), parent))
}

/// Bytes that do not hash to their address — of a leaf, a branch, a commit — fail the
/// restore with `Error::Corrupt` naming that address, eager, lazy and materializing
/// alike; nothing bad is kept, so once the reads heal the db restores.
pub async fn corrupt_node_bytes_give_a_typed_error<F: Factory>(factory: &F) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 6, 80)?;
    let stored = store_ok(&db, &*rig.storage, "the db").await?;
    let (leaf, branch) = eavt_leaf_and_branch(&stored.db)?;
    let branch = branch.ok_or_else(|| Failure::new("the test db's EAVT is a single leaf"))?;
    let faults = rig.faulty.faults();
    for (what, address) in [
        ("a leaf", leaf),
        ("a branch", branch),
        ("the commit", stored.commit),
    ] {
        faults.corrupt_reads_of(address);
        let result = restore_from(&history::empty_db(), &*rig.storage, HEAD).await;
        faults.heal();
        match expect_err(&format!("restoring with {what} corrupt"), result)? {
            StorageError::Core(Error::Corrupt { address: a, .. }) if a == address => {}
            other => {
                return Err(Failure::new(format_args!(
                    "restoring with {what} ({address:?}) corrupt must fail with \
                     StorageError::Core(Error::Corrupt {{ address: {address:?}, .. }}), got {other:?}"
                )))
            }
        }
    }

    let lazy = restore(rig.storage.clone(), HEAD)
        .await
        .context("restore")?;
    faults.corrupt_reads_of(leaf);
    let read: Result<Vec<_>, Error> = lazy
        .db
        .datoms(IndexKind::Eavt, &[])
        .and_then(|c| c.collect::<Result<Vec<_>, Error>>());
    let materialized = materialize(&lazy.db, &*rig.storage).await;
    faults.heal();
    match read {
        Err(Error::Corrupt { address, .. }) if address == leaf => {}
        other => {
            return Err(Failure::new(format_args!(
                "reading a lazy db whose leaf {leaf:?} is corrupt must fail with \
                 Error::Corrupt naming it, got {:?}",
                other.map(|d| d.len())
            )))
        }
    }
    match expect_err("materializing with a corrupt leaf", materialized)? {
        StorageError::Core(Error::Corrupt { address, .. }) if address == leaf => {}
        other => {
            return Err(Failure::new(format_args!(
                "materializing with leaf {leaf:?} corrupt must fail with Error::Corrupt naming \
                 it, got {other:?}"
            )))
        }
    }
    ensure_same(
        "the lazy db once reads heal",
        &snapshot(&lazy.db)?,
        &snapshot(&stored.db)?,
    )?;
    let healed = restore_ok(&history::empty_db(), &*rig.storage, "once reads heal").await?;
    ensure_same(
        "once reads heal",
        &snapshot(&healed)?,
        &snapshot(&stored.db)?,
    )?;
    Ok(())
}

/// A node deleted from the store fails the restore with an error naming its address,
/// eager and lazy; stored again, it restores.
pub async fn missing_node_gives_a_typed_error_naming_it<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 7, 80)?;
    let stored = store_ok(&db, &*rig.storage, "the db").await?;
    let (leaf, _) = eavt_leaf_and_branch(&stored.db)?;
    let lazy = restore(rig.storage.clone(), HEAD)
        .await
        .context("restore")?;
    let bytes = rig
        .storage
        .get_many(&[leaf])
        .await?
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| Failure::new("a stored leaf is missing"))?;
    rig.storage.delete_many(&[leaf]).await.context("delete")?;
    let names = |e: &StorageError| match e {
        StorageError::NotFound { address } => *address == leaf,
        StorageError::Core(Error::NodeUnavailable { address, .. }) => *address == leaf,
        _ => false,
    };
    let eager = restore_from(&history::empty_db(), &*rig.storage, HEAD).await;
    let e = expect_err("restoring without a leaf", eager)?;
    ensure!(
        names(&e),
        "restoring without leaf {leaf:?} must fail naming it (NotFound or NodeUnavailable), \
         got {e:?}"
    );
    let read: Result<Vec<_>, Error> = lazy
        .db
        .datoms(IndexKind::Eavt, &[])
        .and_then(|c| c.collect::<Result<Vec<_>, Error>>());
    match read {
        Err(Error::NodeUnavailable { address, .. }) if address == leaf => {}
        other => {
            return Err(Failure::new(format_args!(
                "reading a lazy db without leaf {leaf:?} must fail with \
                 Error::NodeUnavailable naming it, got {:?}",
                other.map(|d| d.len())
            )))
        }
    }
    rig.storage
        .put_many(&[(leaf, bytes)])
        .await
        .context("put the leaf back")?;
    let back = restore_ok(&history::empty_db(), &*rig.storage, "with the leaf back").await?;
    ensure_same(
        "with the leaf back",
        &snapshot(&back)?,
        &snapshot(&stored.db)?,
    )?;
    ensure_same(
        "the lazy db with the leaf back",
        &snapshot(&lazy.db)?,
        &snapshot(&stored.db)?,
    )?;
    Ok(())
}

fn person_tx(name: &str, age: i64) -> String {
    format!("[{{{NAME} {name:?} {} {age}}}]", history::AGE)
}

fn has_person(db: &Db, name: &str) -> Result<bool, Failure> {
    Ok(db
        .entity_by_value(&NAME.into(), &Value::from(name))?
        .is_some())
}

/// Two writers start from the same commit; the first stores; the second's store fails
/// with `HeadConflict` showing the first's commit and writes nothing; it restores from
/// its db, re-applies its transaction and stores; both transactions are in the result.
pub async fn two_writers_from_one_base_second_retries_and_both_land<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 8, 40)?;
    let base = store_ok(&db, &*rig.storage, "the base").await?;
    let a = restore_ok(&history::empty_db(), &*rig.storage, "writer a").await?;
    let b = restore_ok(&history::empty_db(), &*rig.storage, "writer b").await?;
    let a2 = a.with_edn(&person_tx("writer-a", 1))?.db_after;
    let stored_a = store_ok(&a2, &*rig.storage, "writer a's transaction").await?;
    let tx_b = person_tx("writer-b", 2);
    let b2 = b.with_edn(&tx_b)?.db_after;
    rig.recorder.take();
    let conflict = store(&b2, &*rig.storage, HEAD).await;
    let log = rig.recorder.take();
    match expect_err("the second writer's store", conflict)? {
        StorageError::HeadConflict {
            current: Some(head),
            ..
        } if head.commit == stored_a.commit => {}
        other => {
            return Err(Failure::new(format_args!(
                "the second writer's store must fail with HeadConflict showing the first \
                 writer's commit {:?}, got {other:?}",
                stored_a.commit
            )))
        }
    }
    ensure_eq!(
        (log.puts(), log.cas()),
        (0, 0),
        "a store that finds the head moved must write nothing"
    );
    ensure_eq!(
        rig.storage.get_head(HEAD).await?.map(|h| h.commit),
        Some(stored_a.commit),
        "the conflict must leave the first writer's head"
    );
    let rebased = restore_ok(&b, &*rig.storage, "the second writer's rebase").await?;
    ensure_same("the rebase", &snapshot(&rebased)?, &snapshot(&stored_a.db)?)?;
    let b3 = rebased.with_edn(&tx_b)?.db_after;
    let stored_b = store_ok(&b3, &*rig.storage, "the second writer's retry").await?;
    let last = restore_ok(&history::empty_db(), &*rig.storage, "a new replica").await?;
    ensure_same("the final db", &snapshot(&last)?, &snapshot(&stored_b.db)?)?;
    ensure!(
        has_person(&last, "writer-a")? && has_person(&last, "writer-b")?,
        "both writers' transactions must be in the final db"
    );
    ensure_eq!(
        last.max_tx(),
        base.db.max_tx() + 2,
        "the final db has exactly the two transactions on top of the base"
    );
    Ok(())
}

/// Writers racing from one commit, each retrying on conflict (restore, re-apply, store),
/// all land exactly once: every transaction is in the final db, none twice.
pub async fn racing_writers_each_land_exactly_once_after_retries<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    const WRITERS: usize = 4;
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 9, 40)?;
    let base = store_ok(&db, &*rig.storage, "the base").await?;
    // The writers run interleaved on this task, and every request waits a little, so
    // that each store is overtaken between reading the head and moving it on every
    // backend, however fast.
    rig.faulty.faults().set_latency(Duration::from_micros(200));
    let barrier = Barrier::new(WRITERS);
    let writers = (0..WRITERS).map(|w| {
        let (storage, barrier, start) = (&rig.storage, &barrier, base.db.clone());
        async move {
            let tx = person_tx(&format!("racer-{w}"), w as i64);
            let mut db = start;
            barrier.wait().await;
            for _ in 0..100 {
                let next = db.with_edn(&tx)?.db_after;
                match store(&next, &**storage, HEAD).await {
                    Ok(_) => return Ok(()),
                    Err(StorageError::HeadConflict { .. }) => {
                        db = restore_from(&db, &**storage, HEAD).await?.db;
                    }
                    Err(e) => return Err(Failure::from(e)),
                }
            }
            Err(Failure::new(format_args!(
                "writer {w} did not land in 100 tries"
            )))
        }
    });
    for (w, result) in futures::future::join_all(writers)
        .await
        .into_iter()
        .enumerate()
    {
        result.map_err(|f: Failure| f.context(format_args!("writer {w}")))?;
    }
    let last = restore_ok(&history::empty_db(), &*rig.storage, "a new replica").await?;
    for w in 0..WRITERS {
        ensure!(
            has_person(&last, &format!("racer-{w}"))?,
            "writer {w}'s transaction is missing"
        );
    }
    ensure_eq!(
        last.max_tx(),
        base.db.max_tx() + WRITERS as u64,
        "each writer's transaction must land exactly once"
    );
    ensure_eq!(
        last.len(),
        // The name, the age and their composite tuple.
        base.db.len() + 3 * WRITERS as u64,
        "each writer adds three datoms, once"
    );
    Ok(())
}

/// A lazy restore reads the head, the commit and the roots; a lookup then reads about
/// one node per level; reading everything gives the primary's datoms; `materialize` reads
/// every other node once, one request per level, after which reading reads nothing. A
/// lazy db stores unchanged for free, and its transactions store and restore.
pub async fn lazy_restore_loads_on_demand_and_materializes<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (mut generator, db) = seeded(SEED + 10, 100)?;
    let stored = store_ok(&db, &*rig.storage, "the db").await?;
    let primary = stored.db.clone();
    let nodes = node_addresses(&primary);
    let roots: HashSet<Address> = primary.root_addresses().into_iter().collect();
    let levels = max_level(&primary) + 1;
    let commits = HashSet::from([stored.commit]);

    rig.recorder.take();
    let lazy = restore(rig.storage.clone(), HEAD)
        .await
        .context("restore")?;
    let log = rig.recorder.take();
    let read: HashSet<Address> = fetched_nodes(&log, &commits).into_iter().collect();
    ensure_eq!(
        read,
        roots,
        "a lazy restore reads the three roots and no other node"
    );
    ensure!(
        log.head_reads() == 1 && lazy.stats.round_trips <= 3,
        "a lazy restore reads the head, the commit, the roots: {:?}",
        lazy.stats
    );

    let who = Value::from("p5");
    let e = lazy
        .db
        .entity_by_value(&NAME.into(), &who)?
        .ok_or_else(|| Failure::new("p5 is missing from the lazy db"))?;
    ensure_eq!(
        Some(e),
        primary.entity_by_value(&NAME.into(), &who)?,
        "an AVET lookup in the lazy db"
    );
    ensure_eq!(
        lazy.db.entity_datoms(e)?,
        primary.entity_datoms(e)?,
        "an entity's datoms read from the lazy db"
    );
    let log = rig.recorder.take();
    let read = fetched_nodes(&log, &commits);
    ensure!(
        read.len() as u64 <= 2 * levels,
        "two lookups in trees {levels} levels high read {} nodes: loads are not on demand",
        read.len()
    );
    ensure!(
        read.iter().all(|a| nodes.contains(a)),
        "a lazy read fetched a blob that is no node of the db"
    );

    ensure_same("the lazy db", &snapshot(&lazy.db)?, &snapshot(&primary)?)?;

    let fresh = restore(rig.storage.clone(), HEAD)
        .await
        .context("restore")?;
    rig.recorder.take();
    let full = materialize(&fresh.db, &*rig.storage)
        .await
        .context("materialize")?;
    let log = rig.recorder.take();
    let read = fetched_nodes(&log, &commits);
    let read_set: HashSet<Address> = read.iter().copied().collect();
    let rest: HashSet<Address> = nodes.difference(&roots).copied().collect();
    ensure_eq!(read.len(), read_set.len(), "materialize read a node twice");
    ensure!(
        read_set == rest,
        "materialize must read every node but the roots, and nothing else: read {}, \
         expected {}",
        read_set.len(),
        rest.len()
    );
    ensure!(
        full.stats.round_trips < levels,
        "materialize took {} round trips for {} levels below the roots",
        full.stats.round_trips,
        levels - 1
    );
    ensure_same(
        "the materialized db",
        &snapshot(&full.db)?,
        &snapshot(&primary)?,
    )?;
    ensure_eq!(
        rig.recorder.take().gets(),
        0,
        "reading a materialized db must read no blob"
    );

    let unchanged = store_ok(&lazy.db, &*rig.storage, "the unchanged lazy db").await?;
    ensure_eq!(
        unchanged.stats,
        StoreStats::default(),
        "an unchanged lazy db stores for free"
    );
    let changed = advance(&mut generator, &fresh.db, 3)?;
    let stored2 = store_ok(&changed, &*rig.storage, "a lazy db's transactions").await?;
    let back = restore_ok(&history::empty_db(), &*rig.storage, "a new replica").await?;
    ensure_same(
        "a lazy db's transactions, stored and restored",
        &snapshot(&back)?,
        &snapshot(&stored2.db)?,
    )?;
    Ok(())
}

/// Every stored commit restores by its address, from nothing and from a newer db.
pub async fn any_stored_commit_restores_by_address<F: Factory>(factory: &F) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (mut generator, db) = seeded(SEED + 11, 50)?;
    let mut primary = db;
    let mut points = Vec::new();
    for _ in 0..5 {
        let stored = store_ok(&primary, &*rig.storage, "the primary").await?;
        points.push(Point::of(&stored)?);
        primary = advance(&mut generator, &stored.db, 2)?;
    }
    let newest = restore_ok(&history::empty_db(), &*rig.storage, "the newest").await?;
    for (j, p) in points.iter().enumerate() {
        for (from, db1) in [("from nothing", None), ("from the newest", Some(&newest))] {
            let old = restore_commit(&*rig.storage, p.commit, db1, Mode::Eager)
                .await
                .context(format_args!("restore_commit of commit {j} {from}"))?;
            ensure_same(
                &format!("restore_commit of commit {j} {from}"),
                &snapshot(&old.db)?,
                &p.snapshot,
            )?;
            ensure_eq!(old.db.base_commit(), Some(p.commit), "commit {j} {from}");
        }
    }
    Ok(())
}

/// A db stored in another storage stores here in full; it then goes on storing
/// incrementally, and replicas that followed the other storage can follow this one.
pub async fn a_db_from_another_storage_stores_completely<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let elsewhere = MemoryStorage::new();
    let (mut generator, db) = seeded(SEED + 12, 60)?;
    let mut primary = store(&db, &elsewhere, HEAD)
        .await
        .context("storing elsewhere")?
        .db;
    let follower = restore_from(&history::empty_db(), &elsewhere, HEAD)
        .await
        .context("restoring elsewhere")?
        .db;
    for _ in 0..2 {
        primary = advance(&mut generator, &primary, 2)?;
        primary = store(&primary, &elsewhere, HEAD)
            .await
            .context("storing elsewhere")?
            .db;
    }
    let moved = store_ok(&primary, &*rig.storage, "a db from another storage").await?;
    ensure!(moved.stats.committed, "the move must commit");
    ensure_eq!(
        moved.stats.nodes_written,
        node_addresses(&primary).len() as u64,
        "a db from another storage must store every node"
    );
    let here = restore_ok(&history::empty_db(), &*rig.storage, "a new replica").await?;
    ensure_same("the moved db", &snapshot(&here)?, &snapshot(&primary)?)?;

    let next = advance(&mut generator, &moved.db, 1)?;
    let stored = store_ok(&next, &*rig.storage, "the moved db's next commit").await?;
    ensure!(
        stored.stats.nodes_written < moved.stats.nodes_written,
        "after the move, stores are incremental again ({} nodes for one transaction)",
        stored.stats.nodes_written
    );
    // The follower is three commits behind the moved head, and the head's lineage
    // names manifests of commits whose replaced nodes were never written here: restore
    // must treat those as hints, not as nodes it needs.
    for (what, db1) in [
        ("a replica of this storage", &here),
        ("a replica that followed the other storage", &follower),
    ] {
        let caught_up = restore_ok(db1, &*rig.storage, what).await?;
        ensure_same(what, &snapshot(&caught_up)?, &snapshot(&stored.db)?)?;
    }
    Ok(())
}

/// A stored database, restored after the store is closed and opened again, is the
/// primary's; it goes on storing from there, and that survives another reopen.
pub async fn stored_db_survives_reopen<F: Factory>(factory: &F) -> Result<(), Failure> {
    let (mut generator, db) = seeded(SEED + 13, 60)?;
    let s = factory.create().await.context("create")?;
    let stored = store(&db, &s, HEAD).await.context("store")?;
    let s = factory.reopen(s).await.context("reopen")?;
    let restored = restore_from(&history::empty_db(), &s, HEAD)
        .await
        .context("restore_from after reopening")?
        .db;
    ensure_same(
        "after reopening",
        &snapshot(&restored)?,
        &snapshot(&stored.db)?,
    )?;

    let shared = Arc::new(s);
    let lazy = restore(shared.clone(), HEAD)
        .await
        .context("lazy restore after reopening")?;
    ensure_same(
        "a lazy restore after reopening",
        &snapshot(&lazy.db)?,
        &snapshot(&stored.db)?,
    )?;
    drop(lazy);
    let next = advance(&mut generator, &restored, 3)?;
    let stored2 = store(&next, &*shared, HEAD)
        .await
        .context("storing on after reopening")?;
    let s = Arc::try_unwrap(shared)
        .map_err(|_| Failure::new("the case still shares the store it must reopen"))?;
    let s = factory.reopen(s).await.context("second reopen")?;
    let again = restore_from(&restored, &s, HEAD)
        .await
        .context("restore_from after the second reopen")?
        .db;
    ensure_same(
        "after the second reopen",
        &snapshot(&again)?,
        &snapshot(&stored2.db)?,
    )?;
    Ok(())
}

/// `sync` brings every replica to the head by whichever route is cheaper: it is unchanged
/// at the head, replays the log one small commit behind, restores trees far behind — and
/// a new replica (a db without commit) syncs too, whatever commit the head is.
pub async fn sync_brings_any_replica_to_the_head<F: Factory>(factory: &F) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (mut generator, db) = seeded(SEED + 14, 40)?;
    let first = store_ok(&db, &*rig.storage, "the first commit").await?;
    let mut primary = first.db.clone();
    let replica = restore_ok(&history::empty_db(), &*rig.storage, "a replica").await?;
    let synced = sync(&replica, &*rig.storage, HEAD, SyncPolicy::Auto)
        .await
        .context("sync at the head")?;
    ensure_eq!(synced.route, SyncRoute::Unchanged, "sync at the head");

    primary = advance(&mut generator, &primary, 1)?;
    primary = store_ok(&primary, &*rig.storage, "one more commit")
        .await?
        .db;
    let synced = sync(&replica, &*rig.storage, HEAD, SyncPolicy::Auto)
        .await
        .context("sync one commit behind")?;
    ensure_eq!(synced.route, SyncRoute::Log, "sync one small commit behind");
    ensure_same(
        "sync one commit behind",
        &snapshot(&synced.db)?,
        &snapshot(&primary)?,
    )?;
    let replica = synced.db;

    for _ in 0..ANCESTORS + 3 {
        primary = advance(&mut generator, &primary, 1)?;
        primary = store_ok(&primary, &*rig.storage, "the primary").await?.db;
    }
    let synced = sync(&replica, &*rig.storage, HEAD, SyncPolicy::Auto)
        .await
        .context("sync far behind")?;
    ensure_eq!(synced.route, SyncRoute::Tree, "sync far behind");
    ensure_same(
        "sync far behind",
        &snapshot(&synced.db)?,
        &snapshot(&primary)?,
    )?;
    let synced = sync(&history::empty_db(), &*rig.storage, HEAD, SyncPolicy::Auto)
        .await
        .context("sync of a new replica")?;
    ensure_same(
        "sync of a new replica",
        &snapshot(&synced.db)?,
        &snapshot(&primary)?,
    )?;

    // The head's parent (none) is db1's commit (none): one small commit "behind", so
    // Auto may replay the log onto the empty db, or restore trees; either must work.
    let fresh = Rig::new(factory).await?;
    let only = store_ok(&db, &*fresh.storage, "a store's only commit").await?;
    let synced = sync(
        &history::empty_db(),
        &*fresh.storage,
        HEAD,
        SyncPolicy::Auto,
    )
    .await
    .context("sync of a new replica to a store's first commit")?;
    ensure_same(
        "sync of a new replica to a store's first commit",
        &snapshot(&synced.db)?,
        &snapshot(&only.db)?,
    )?;
    Ok(())
}

/// A replica that restored lazily (only the roots in memory) restores the next commit
/// reading only the nodes new since its commit: the subtrees it has not loaded are
/// unchanged, in storage, and shared, not fetched again.
pub async fn restore_from_a_lazy_replica_reads_only_new_nodes<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (mut generator, db) = seeded(SEED + 15, 120)?;
    let first = store_ok(&db, &*rig.storage, "the first commit").await?;
    let lazy = restore(rig.storage.clone(), HEAD)
        .await
        .context("restore")?
        .db;
    let second = advance(&mut generator, &first.db, 1)?;
    let second = store_ok(&second, &*rig.storage, "the next commit").await?;
    let commits = HashSet::from([first.commit, second.commit]);
    let old = node_addresses(&first.db);
    let new: HashSet<Address> = node_addresses(&second.db)
        .difference(&old)
        .copied()
        .collect();
    rig.recorder.take();
    let next = restore_ok(&lazy, &*rig.storage, "the lazy replica").await?;
    let read: HashSet<Address> = fetched_nodes(&rig.recorder.take(), &commits)
        .into_iter()
        .collect();
    // Counting only db1's loaded nodes as held would read the whole database here.
    ensure_within("restore_from a lazily restored db1", &read, &new)?;
    ensure_same(
        "the lazy replica, restored on",
        &snapshot(&next)?,
        &snapshot(&second.db)?,
    )?;
    Ok(())
}

/// Restoring, lazily restoring or syncing a head that does not exist fails with
/// `NoHead` naming it, and reads no blob.
pub async fn restoring_a_missing_head_is_a_typed_error<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 16, 10)?;
    store_ok(&db, &*rig.storage, "another head").await?;
    let is_no_head =
        |e: &StorageError| matches!(e, StorageError::NoHead { name } if name == "absent");
    rig.recorder.take();
    let e = expect_err(
        "restore_from of a missing head",
        restore_from(&history::empty_db(), &*rig.storage, "absent").await,
    )?;
    ensure!(is_no_head(&e), "restore_from of a missing head: got {e:?}");
    let e = expect_err(
        "restore of a missing head",
        restore(rig.storage.clone(), "absent")
            .await
            .map(|r| r.stats),
    )?;
    ensure!(is_no_head(&e), "restore of a missing head: got {e:?}");
    let e = expect_err(
        "sync of a missing head",
        sync(&db, &*rig.storage, "absent", SyncPolicy::Auto)
            .await
            .map(|s| s.route),
    )?;
    ensure!(is_no_head(&e), "sync of a missing head: got {e:?}");
    ensure_eq!(
        rig.recorder.take().gets(),
        0,
        "a missing head reads no blob"
    );
    Ok(())
}

/// A head that names a commit the storage does not hold (lost, or deleted by hand) gives
/// a typed error naming that commit on every read path — restore, restore_from, sync —
/// never a panic or an empty db, and leaves the head where it is; with the commit back
/// everything restores.
pub async fn a_head_on_a_missing_commit_is_a_typed_error_naming_it<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 17, 30)?;
    let stored = store_ok(&db, &*rig.storage, "the db").await?;
    let commit = stored.commit;
    let bytes = rig
        .storage
        .get_many(&[commit])
        .await?
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| Failure::new("the stored commit is missing"))?;
    rig.storage.delete_many(&[commit]).await.context("delete")?;
    let names = |e: &StorageError| match e {
        StorageError::NotFound { address } => *address == commit,
        StorageError::Core(Error::NodeUnavailable { address, .. }) => *address == commit,
        _ => false,
    };
    let e = expect_err(
        "restore_from onto a missing commit",
        restore_from(&history::empty_db(), &*rig.storage, HEAD).await,
    )?;
    ensure!(
        names(&e),
        "restore_from: expected an error naming {commit:?}, got {e:?}"
    );
    let e = expect_err(
        "restore onto a missing commit",
        restore(rig.storage.clone(), HEAD).await.map(|r| r.stats),
    )?;
    ensure!(
        names(&e),
        "restore: expected an error naming {commit:?}, got {e:?}"
    );
    let e = expect_err(
        "sync onto a missing commit",
        sync(&history::empty_db(), &*rig.storage, HEAD, SyncPolicy::Auto)
            .await
            .map(|s| s.route),
    )?;
    ensure!(
        names(&e),
        "sync: expected an error naming {commit:?}, got {e:?}"
    );
    let head = rig.storage.get_head(HEAD).await?.map(|h| h.commit);
    ensure_eq!(head, Some(commit), "the head stays where it was");
    rig.storage
        .put_many(&[(commit, bytes)])
        .await
        .context("put the commit back")?;
    let back = restore_ok(&history::empty_db(), &*rig.storage, "with the commit back").await?;
    ensure_same(
        "with the commit back",
        &snapshot(&back)?,
        &snapshot(&stored.db)?,
    )?;
    Ok(())
}

/// A db that was never stored (no commit) stored under a head that exists fails with
/// `HeadConflict` showing that head, writes nothing, and leaves the stored db whole.
pub async fn a_new_db_never_overwrites_an_existing_head<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let (_, db) = seeded(SEED + 17, 30)?;
    let stored = store_ok(&db, &*rig.storage, "the db").await?;
    let (_, other) = seeded(SEED + 18, 30)?;
    rig.recorder.take();
    let result = store(&other, &*rig.storage, HEAD).await;
    let log = rig.recorder.take();
    match expect_err("storing a new db over an existing head", result)? {
        StorageError::HeadConflict {
            current: Some(head),
            ..
        } if head.commit == stored.commit => {}
        other => {
            return Err(Failure::new(format_args!(
                "storing a new db over an existing head must fail with HeadConflict showing \
                 {:?}, got {other:?}",
                stored.commit
            )))
        }
    }
    ensure_eq!(
        (log.puts(), log.cas()),
        (0, 0),
        "a refused store writes nothing"
    );
    let back = restore_ok(&history::empty_db(), &*rig.storage, "the stored db").await?;
    ensure_same("the stored db", &snapshot(&back)?, &snapshot(&stored.db)?)?;
    Ok(())
}
