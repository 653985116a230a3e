//! `Follower`: a change feed of a head, through the backend. Every commit is delivered
//! once, in commit order, with the datoms it added and retracted, while a writer stores
//! commits with random pauses and the follower's reads fail now and then; a follower
//! restarted from the last commit it delivered goes on with the next one; a follower
//! far behind jumps to the head in one update whose changes are the whole difference.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use datoms_core::{Address, Datom, Db, IndexKind};
use datoms_storage::{FailOn, FollowOptions, Follower, Storage, Update};

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::history::Rng;
use crate::support::{advance, ensure_same, seeded, snapshot, store_ok, Rig, HEAD};

/// The seed of these cases.
const SEED: u64 = 0xF0_11_0E;

/// Commits the writer stores after the follower's start.
const COMMITS: usize = 24;

/// Polls fast: the cases wait for the writer, not for timers.
fn options() -> FollowOptions {
    FollowOptions {
        poll: Duration::from_millis(5),
        max_poll: Duration::from_millis(20),
        ..FollowOptions::default()
    }
}

/// The current datoms of `db` (EAVT), each with `added` true.
fn datom_set(db: &Db) -> Result<HashSet<Datom>, Failure> {
    let mut out = HashSet::new();
    for d in db.datoms(IndexKind::Eavt, &[])? {
        out.insert(d?);
    }
    Ok(out)
}

/// Applies an update's changes to `set`, failing on a retraction of a datom the set
/// lacks or an addition of one it has (a change delivered twice, or one missed).
fn apply_changes(set: &mut HashSet<Datom>, update: &Update) -> Result<(), Failure> {
    for d in &update.retracted {
        let mut d = d.clone();
        d.added = true;
        ensure!(
            set.remove(&d),
            "update {}: retracts {d:?}, which the previous updates never added",
            update.commit
        );
    }
    for d in &update.added {
        ensure!(
            set.insert(d.clone()),
            "update {}: adds {d:?}, which the previous updates had already added",
            update.commit
        );
    }
    Ok(())
}

/// A store and a writer that stores `COMMITS` commits after `start`, each with a
/// random pause: the dbs by commit, in commit order.
struct Written {
    order: Vec<Address>,
    dbs: HashMap<Address, Db>,
}

async fn write_commits(
    storage: Arc<dyn Storage>,
    mut generator: crate::history::Generator,
    start: Db,
    seed: u64,
) -> Result<Written, Failure> {
    let mut rng = Rng::new(seed);
    let mut db = start;
    let mut written = Written {
        order: Vec::new(),
        dbs: HashMap::new(),
    };
    for i in 0..COMMITS {
        let txs = 1 + rng.below(3) as usize;
        let next = advance(&mut generator, &db, txs)?;
        let stored = store_ok(&next, &*storage, &format!("commit {i} of the writer")).await?;
        written.order.push(stored.commit);
        written.dbs.insert(stored.commit, stored.db.clone());
        db = stored.db;
        tokio::time::sleep(Duration::from_millis(rng.below(8))).await;
    }
    Ok(written)
}

/// Checks the updates against what the writer stored: exactly its commits after
/// `start`, in order, each update's db the stored one, and the changes, applied one
/// after another to `start`'s datoms, giving each commit's datoms.
fn check_feed(
    what: &str,
    start: &Db,
    updates: &[Update],
    written: &Written,
) -> Result<(), Failure> {
    let delivered: Vec<Address> = updates.iter().map(|u| u.commit).collect();
    ensure_eq!(
        delivered,
        written.order,
        "{what}: the commits delivered, in order (none missed, none twice)"
    );
    let mut set = datom_set(start)?;
    let mut previous = start.base_commit();
    for u in updates {
        ensure_eq!(
            u.previous,
            previous,
            "{what}: update {}: previous commit",
            u.commit
        );
        ensure_eq!(
            u.commits,
            Some(1),
            "{what}: update {}: commits advanced",
            u.commit
        );
        let want = written
            .dbs
            .get(&u.commit)
            .ok_or_else(|| Failure::new(format_args!("{what}: {} was never stored", u.commit)))?;
        ensure_same(
            &format!("{what}: the db of update {}", u.commit),
            &snapshot(&u.db)?,
            &snapshot(want)?,
        )?;
        apply_changes(&mut set, u)?;
        ensure!(
            set == datom_set(want)?,
            "{what}: the changes up to update {} do not give its datoms",
            u.commit
        );
        previous = Some(u.commit);
    }
    Ok(())
}

/// A follower delivers every commit a concurrent writer stores, once and in order,
/// with the datoms each added and retracted, while its reads go through faults: 20 ms
/// of latency on every request, and failing reads at random points (each failure is
/// returned, and the next call goes on where the follower was).
pub async fn follow_delivers_every_commit_once_in_order_under_faults<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let store: Arc<dyn Storage> = Arc::new(factory.create().await.context("creating a store")?);
    let (generator, db) = seeded(SEED, 30)?;
    let start = store_ok(&db, &*store, "the first commit").await?.db;
    // The follower reads through faults; the writer writes to the store itself.
    let rig = Rig::over(store.clone());
    rig.faulty.faults().set_latency(Duration::from_millis(2));
    let mut follower = Follower::new(rig.storage.clone(), HEAD, start.clone(), options());
    let writer = tokio::spawn(write_commits(store.clone(), generator, start.clone(), SEED));

    let mut rng = Rng::new(SEED + 1);
    let mut updates = Vec::new();
    let mut failures = 0;
    while updates.len() < COMMITS {
        if rng.chance(1, 4) {
            rig.faulty.faults().fail_after(rng.below(4), FailOn::Gets);
        }
        let next = tokio::time::timeout(Duration::from_secs(60), follower.next())
            .await
            .map_err(|_| {
                Failure::new(format_args!(
                    "the follower waited 60 s for update {} of {COMMITS}",
                    updates.len() + 1
                ))
            })?;
        match next {
            Ok(u) => updates.push(u),
            Err(e) => {
                failures += 1;
                ensure!(
                    failures < 1000,
                    "the follower keeps failing after healing: {e}"
                );
            }
        }
        rig.faulty.faults().heal();
    }
    let written = writer
        .await
        .map_err(|e| Failure::new(format_args!("the writer task: {e}")))??;
    ensure!(
        failures > 0,
        "the faults never made a step fail (the case tests nothing)"
    );
    check_feed("a follower under faults", &start, &updates, &written)?;
    ensure_eq!(
        follower.commit(),
        written.order.last().copied(),
        "the follower's commit at the end"
    );
    Ok(())
}

/// A follower stopped after some updates and restarted from the last commit it
/// delivered (as a new process would, knowing only that address) delivers the rest:
/// together, every commit once, in order.
pub async fn a_restarted_follower_resumes_after_its_last_commit<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let store: Arc<dyn Storage> = Arc::new(factory.create().await.context("creating a store")?);
    let (generator, db) = seeded(SEED + 2, 30)?;
    let start = store_ok(&db, &*store, "the first commit").await?.db;
    let mut follower = Follower::new(store.clone(), HEAD, start.clone(), options());
    let writer = tokio::spawn(write_commits(
        store.clone(),
        generator,
        start.clone(),
        SEED + 2,
    ));
    let mut updates = Vec::new();
    while updates.len() < COMMITS / 3 {
        updates.push(follower.next().await.context("following, first run")?);
    }
    let last = follower
        .commit()
        .ok_or_else(|| Failure::new("the follower has no commit"))?;
    drop(follower);
    let mut follower = Follower::from_commit(store.clone(), HEAD, last, options())
        .await
        .context("restarting the follower")?;
    while updates.len() < COMMITS {
        let u = tokio::time::timeout(Duration::from_secs(60), follower.next())
            .await
            .map_err(|_| Failure::new("the restarted follower waited 60 s for an update"))?
            .context("following, after the restart")?;
        updates.push(u);
    }
    let written = writer
        .await
        .map_err(|e| Failure::new(format_args!("the writer task: {e}")))??;
    check_feed("a restarted follower", &start, &updates, &written)
}

/// A follower more commits behind than `max_steps` reaches the head in one update
/// whose changes are the whole difference; within `max_steps`, each commit comes on its
/// own even when the head moved many commits at once (and past a lineage's reach).
pub async fn a_follower_far_behind_jumps_and_one_near_steps_through<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let store: Arc<dyn Storage> = Arc::new(factory.create().await.context("creating a store")?);
    let (generator, db) = seeded(SEED + 3, 30)?;
    let start = store_ok(&db, &*store, "the first commit").await?.db;
    let written = write_commits(store.clone(), generator, start.clone(), SEED + 3).await?;

    // 24 commits at once, past the 9 a lineage lists: stepped through one by one.
    let mut near = Follower::new(store.clone(), HEAD, start.clone(), options());
    let mut updates = Vec::new();
    while let Some(u) = near.try_next().await.context("stepping through")? {
        updates.push(u);
    }
    check_feed("a follower 24 commits behind", &start, &updates, &written)?;

    let far_options = FollowOptions {
        max_steps: 4,
        ..options()
    };
    let mut far = Follower::new(store.clone(), HEAD, start.clone(), far_options);
    let jump = far
        .try_next()
        .await
        .context("jumping")?
        .ok_or_else(|| Failure::new("a follower behind the head saw no update"))?;
    let head = written.order.last().copied();
    ensure_eq!(Some(jump.commit), head, "the jump's commit");
    ensure_eq!(jump.commits, None, "a jump's distance is not counted");
    let mut set = datom_set(&start)?;
    apply_changes(&mut set, &jump)?;
    let end = written
        .dbs
        .get(&jump.commit)
        .ok_or_else(|| Failure::new("no head db"))?;
    ensure!(
        set == datom_set(end)?,
        "the jump's changes do not give the head's datoms"
    );
    ensure!(
        far.try_next().await.context("after the jump")?.is_none(),
        "a follower at the head saw another update"
    );
    Ok(())
}
