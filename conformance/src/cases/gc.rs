//! Garbage collection ([`datoms_storage::gc()`]): what no retained commit reaches goes once
//! it is older than the grace period; every retained commit stays whole, restores and
//! verifies, also while writers store and replicas restore during the collection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use datoms_core::restore::Mode;
use datoms_core::{Address, Db};
use datoms_storage::{
    gc_with, restore_commit, verify, GcOptions, GcReport, Retention, Storage, Stored,
};

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::history::Generator;
use crate::support::{
    advance, ensure_same, list_everything, seeded, snapshot, until_every_stamp_is_past, HEAD,
};

/// The seed of the deterministic cases.
const SEED: u64 = 0x6C_0119;

/// A branch beside [`HEAD`].
const BRANCH: &str = "gc-branch";

/// Blobs no commit references.
fn junk(tag: &str, n: usize) -> Vec<(Address, Bytes)> {
    (0..n)
        .map(|i| {
            let bytes = Bytes::from(format!("gc conformance junk {tag} {i}").repeat(1 + i % 5));
            (Address::of(&bytes), bytes)
        })
        .collect()
}

/// A store with history: `commits` stores on [`HEAD`] (each a few transactions of
/// churn), a branch [`BRANCH`] at the third, and `junk` unreachable blobs. Returns every
/// stored commit of [`HEAD`], oldest first, the generator, and the next db (the last
/// stored one advanced by the generator, not stored).
async fn history_with_garbage(
    storage: &dyn Storage,
    commits: usize,
) -> Result<(Vec<Stored>, Generator, Db), Failure> {
    let (mut generator, mut db) = seeded(SEED, 12)?;
    let mut stored = Vec::new();
    for i in 0..commits {
        let s = datoms_storage::store(&db, storage, HEAD)
            .await
            .context(format_args!("storing commit {i}"))?;
        db = advance(&mut generator, &s.db, 2)?;
        stored.push(s);
    }
    storage
        .cas_head(BRANCH, None, stored[2].commit)
        .await
        .context("creating a branch at the third commit")?;
    storage
        .put_many(&junk("old", 12))
        .await
        .context("storing unreachable blobs")?;
    Ok((stored, generator, db))
}

/// Runs GC with `keep_last`, `grace` and `dry_run`.
async fn run_gc(
    storage: &dyn Storage,
    keep_last: usize,
    grace: Duration,
    dry_run: bool,
) -> Result<GcReport, Failure> {
    let options = GcOptions {
        retention: Retention {
            keep_last,
            keep_younger: None,
        },
        grace,
        dry_run,
    };
    gc_with(storage, &options, &mut |_| {})
        .await
        .context(format_args!("gc keeping {keep_last}, dry run {dry_run}"))
}

/// Fails unless commit `stored` restores eagerly (every node read) to its db.
async fn ensure_restores(
    storage: &dyn Storage,
    stored: &Stored,
    what: &str,
) -> Result<(), Failure> {
    let restored = restore_commit(storage, stored.commit, None, Mode::Eager)
        .await
        .context(format_args!("restoring {what}"))?;
    ensure_same(what, &snapshot(&restored.db)?, &snapshot(&stored.db)?)
}

/// Fails unless every blob of `blobs` reads as present (`true`) or absent (`false`).
async fn ensure_presence(
    storage: &dyn Storage,
    blobs: &[Address],
    present: bool,
    what: &str,
) -> Result<(), Failure> {
    let got = storage.get_many(blobs).await.context("get_many")?;
    for (a, g) in blobs.iter().zip(got) {
        ensure!(
            g.is_some() == present,
            "{what}: {a:?} should be {}",
            if present { "there" } else { "gone" }
        );
    }
    Ok(())
}

/// After GC keeping the last 3 commits of each head: those commits restore to their dbs
/// and `verify` passes on both heads; the older commit of `HEAD` and the unreachable
/// blobs older than the grace period are gone; what remains is only what the retained
/// commits reach, so a second run collects nothing.
pub async fn gc_keeps_retained_commits_whole_and_collects_the_rest<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let storage: Arc<dyn Storage> = Arc::new(factory.create().await.context("create")?);
    let (stored, _, _) = history_with_garbage(&*storage, 7).await?;
    until_every_stamp_is_past(&*storage).await?;
    let before = list_everything(&*storage, 1000).await?;

    let report = run_gc(&*storage, 3, Duration::ZERO, false).await?;
    ensure_eq!(report.heads, 2, "heads marked from");
    ensure_eq!(
        report.retained_commits,
        6,
        "the last 3 of the head and of the branch (commits 4–6 and 0–2)"
    );
    ensure!(
        report.collected > 12 && report.collected_bytes > 0,
        "the junk and commit 3 (with nodes only it reaches) go: {report:?}"
    );
    let after = list_everything(&*storage, 1000).await?;
    ensure_eq!(
        after.len() as u64,
        before.len() as u64 - report.collected,
        "listed blobs after GC"
    );
    for (i, s) in stored.iter().enumerate() {
        let retained = i != 3;
        if retained {
            ensure_restores(&*storage, s, &format!("retained commit {i}")).await?;
        }
        ensure_presence(
            &*storage,
            &[s.commit],
            retained,
            &format!("commit {i} itself"),
        )
        .await?;
    }
    let junk: Vec<Address> = junk("old", 12).iter().map(|(a, _)| *a).collect();
    ensure_presence(&*storage, &junk, false, "old unreachable blobs").await?;
    for head in [HEAD, BRANCH] {
        verify(&*storage, head)
            .await
            .context(format_args!("verify {head} after GC"))?;
    }

    let again = run_gc(&*storage, 3, Duration::ZERO, false).await?;
    ensure_eq!(
        (again.collected, again.skipped),
        (0, 0),
        "a second run finds nothing left to collect"
    );
    ensure_eq!(
        again.reachable,
        after.len() as u64,
        "everything left is reachable"
    );
    Ok(())
}

/// A dry run reports what a real run then deletes, and deletes nothing itself.
pub async fn gc_dry_run_deletes_nothing<F: Factory>(factory: &F) -> Result<(), Failure> {
    let storage: Arc<dyn Storage> = Arc::new(factory.create().await.context("create")?);
    history_with_garbage(&*storage, 5).await?;
    until_every_stamp_is_past(&*storage).await?;
    let before = list_everything(&*storage, 1000).await?;
    let dry = run_gc(&*storage, 1, Duration::ZERO, true).await?;
    ensure!(dry.dry_run && dry.collected > 0, "the dry run: {dry:?}");
    ensure_eq!(
        list_everything(&*storage, 1000).await?,
        before,
        "blobs after a dry run"
    );
    let real = run_gc(&*storage, 1, Duration::ZERO, false).await?;
    ensure_eq!(
        (real.collected, real.collected_bytes),
        (dry.collected, dry.collected_bytes),
        "the real run deletes what the dry run reported"
    );
    Ok(())
}

/// Unreachable blobs younger than the grace period stay (and are reported as young);
/// once past it, the next run deletes them.
pub async fn gc_keeps_unreachable_blobs_younger_than_the_grace_period<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let storage: Arc<dyn Storage> = Arc::new(factory.create().await.context("create")?);
    let (stored, _, _) = history_with_garbage(&*storage, 3).await?;
    let young = junk("young", 10);
    storage.put_many(&young).await.context("storing junk")?;
    let young: Vec<Address> = young.iter().map(|(a, _)| *a).collect();

    let report = run_gc(&*storage, 1, Duration::from_secs(3600), false).await?;
    ensure_eq!(
        report.collected,
        0,
        "nothing is older than an hour: {report:?}"
    );
    ensure!(
        report.young >= 10 + 12,
        "the junk counts as young: {report:?}"
    );
    ensure_presence(&*storage, &young, true, "young unreachable blobs").await?;

    until_every_stamp_is_past(&*storage).await?;
    let report = run_gc(&*storage, 1, Duration::ZERO, false).await?;
    ensure!(report.collected >= 22, "past the grace period: {report:?}");
    ensure_presence(&*storage, &young, false, "unreachable blobs past the grace").await?;
    ensure_restores(&*storage, &stored[2], "the head").await?;
    Ok(())
}

/// Writers store and replicas restore (every node, eagerly) while GC runs again and
/// again, with a grace period that covers every store of the run and none of the older
/// history: no restore of a commit the replica read as a head ever finds a node missing,
/// every store lands, and afterwards the retained commits restore and `verify` passes.
pub async fn gc_concurrent_with_stores_and_restores_never_breaks_a_retained_commit<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    const STORES: usize = 5;
    let storage: Arc<dyn Storage> = Arc::new(factory.create().await.context("create")?);
    let (stored, mut generator, next) = history_with_garbage(&*storage, 4).await?;
    until_every_stamp_is_past(&*storage).await?;
    // Every blob so far is older than `history_ends`; the writer starts 20 ms after it,
    // and each GC's cutoff falls 10 ms after it: all the history is old, every write of
    // the writer young.
    let history_ends = SystemTime::now();
    let cutoff = history_ends + Duration::from_millis(10);
    while SystemTime::now() < history_ends + Duration::from_millis(20) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dbs: Arc<Mutex<HashMap<Address, Db>>> = Arc::new(Mutex::new(
        stored.iter().map(|s| (s.commit, s.db.clone())).collect(),
    ));

    let writer = {
        let (storage, dbs) = (storage.clone(), dbs.clone());
        let mut db = next;
        tokio::spawn(async move {
            let mut landed = Vec::new();
            for i in 0..STORES {
                if i > 0 {
                    db = advance(&mut generator, &db, 3)?;
                }
                let s = datoms_storage::store(&db, &*storage, HEAD)
                    .await
                    .context(format_args!("store {i} during GC"))?;
                if let Ok(mut dbs) = dbs.lock() {
                    dbs.insert(s.commit, s.db.clone());
                }
                db = s.db.clone();
                landed.push(s);
            }
            Ok::<_, Failure>(landed)
        })
    };
    let reader = {
        let (storage, dbs) = (storage.clone(), dbs.clone());
        tokio::spawn(async move {
            let mut restores = 0u32;
            loop {
                let head = storage
                    .get_head(HEAD)
                    .await
                    .context("reading the head")?
                    .ok_or_else(|| Failure::new("the head is gone"))?;
                let restored = restore_commit(&*storage, head.commit, None, Mode::Eager)
                    .await
                    .context(format_args!(
                        "restore {restores} of {:?} during GC",
                        head.commit
                    ))?;
                let want = dbs.lock().ok().and_then(|d| d.get(&head.commit).cloned());
                if let Some(want) = want {
                    ensure_same(
                        "a replica restored during GC",
                        &snapshot(&restored.db)?,
                        &snapshot(&want)?,
                    )?;
                }
                restores += 1;
                if restores > 3 && dbs.lock().map_or(true, |d| d.len() >= 4 + STORES) {
                    return Ok::<_, Failure>(restores);
                }
            }
        })
    };
    let mut runs = 0u32;
    let mut collected = 0;
    while !writer.is_finished() || runs < 2 {
        let grace = SystemTime::now()
            .duration_since(cutoff)
            .unwrap_or(Duration::ZERO);
        let report = run_gc(&*storage, 2, grace, false).await?;
        collected += report.collected;
        runs += 1;
    }
    let landed = writer
        .await
        .map_err(|e| Failure::new(format_args!("the writer task: {e}")))??;
    reader
        .await
        .map_err(|e| Failure::new(format_args!("the reader task: {e}")))??;
    ensure!(
        collected > 0,
        "GC collected old history while the writer stored ({runs} runs)"
    );
    for (i, s) in landed.iter().rev().take(2).enumerate() {
        ensure_restores(&*storage, s, &format!("retained commit {i} back")).await?;
    }
    verify(&*storage, HEAD).await.context("verify after GC")?;
    verify(&*storage, BRANCH)
        .await
        .context("verify the branch after GC")?;
    Ok(())
}
