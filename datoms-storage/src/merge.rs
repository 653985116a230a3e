//! `merge(storage, ours, theirs, strategy)`: merges a commit into a head (issue #19).
//!
//! The common ancestor is found through lineage: both histories are walked back a
//! generation at a time, every parent of a merge commit included, one batched request per
//! generation and side, until a commit is reached from both (any distance back). Then:
//! - `theirs` is an ancestor of the head (or the head itself): nothing to do;
//! - the head is an ancestor of `theirs`: a fast-forward, the head moves to `theirs` by
//!   CAS and no commit is made;
//! - otherwise the three dbs are restored — the head lazily, the ancestor and `theirs`
//!   incrementally from it, so only the nodes that differ are fetched — merged by
//!   [`datoms_core::merge::merge`], and the result stored onto the head as a merge commit
//!   whose parents are the head and `theirs`. The store's CAS moves the head only if no
//!   other writer moved it meanwhile ([`StorageError::HeadConflict`] otherwise).

use std::collections::HashSet;
use std::sync::Arc;

use datoms_core::merge::{Conflict, Side, Strategy};
use datoms_core::{Address, Commit, Diff, RestoreStats};

use crate::as_of::lazy;
use crate::batch::{get_all, retry};
use crate::error::StorageError;
use crate::storage::Storage;
use crate::store::{store_with, StoreOptions, StoreStats};

/// What a merge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeKind {
    /// `theirs` was already in the head's history: nothing changed.
    UpToDate,
    /// The head was in `theirs`' history: the head moved to `theirs`.
    FastForward,
    /// A merge commit with two parents was stored and the head moved to it.
    Merged,
}

/// The result of [`merge`].
#[derive(Clone, Debug)]
pub struct MergeOutcome {
    /// What happened.
    pub kind: MergeKind,
    /// The commit the head is at now.
    pub commit: Address,
    /// The common ancestor the merge was computed against.
    pub base: Address,
    /// What the merge changed in the head's db (empty unless [`MergeKind::Merged`]).
    pub applied: Diff,
    /// The conflicts met and the side taken for each.
    pub resolved: Vec<(Conflict, Side)>,
    /// The datoms each side changed since the base (ours, theirs).
    pub changes: (usize, usize),
    /// How far their new entities were renumbered ([`datoms_core::merge::Merged`]).
    pub renumbered: u64,
    /// Reads: commits walked, nodes fetched, round trips.
    pub read: RestoreStats,
    /// Writes of the merge commit.
    pub written: StoreStats,
}

/// Merges commit `theirs` into head `ours`: see the module docs.
///
/// Runs in a `merge` tracing span; an info event reports the outcome.
///
/// # Errors
/// [`StorageError::NoHead`]; [`StorageError::Unrelated`] when the two share no commit;
/// [`datoms_core::Error::MergeConflicts`] (as [`StorageError::Core`]) under
/// [`Strategy::Fail`] when changes conflict — nothing is written then;
/// [`StorageError::HeadConflict`] if another writer moved the head; fetch and write
/// errors. On any error the head is unchanged.
#[tracing::instrument(name = "merge", level = "info", skip(storage, strategy), fields(head = ours))]
pub async fn merge(
    storage: Arc<dyn Storage>,
    ours: &str,
    theirs: Address,
    strategy: Strategy<'_>,
    options: StoreOptions,
) -> Result<MergeOutcome, StorageError> {
    let head = retry(|| storage.get_head(ours))
        .await?
        .ok_or_else(|| StorageError::NoHead { name: ours.into() })?;
    let mut read = RestoreStats {
        round_trips: 1,
        ..RestoreStats::default()
    };
    let outcome = |kind, commit, base, read| MergeOutcome {
        kind,
        commit,
        base,
        applied: Diff::default(),
        resolved: Vec::new(),
        changes: (0, 0),
        renumbered: 0,
        read,
        written: StoreStats::default(),
    };
    if head.commit == theirs {
        return Ok(outcome(MergeKind::UpToDate, theirs, theirs, read));
    }
    let base = common_ancestor(&*storage, head.commit, theirs, &mut read)
        .await?
        .ok_or_else(|| StorageError::Unrelated {
            name: ours.into(),
            ours: head.commit,
            theirs,
        })?;
    if base == theirs {
        tracing::info!(commit = %head.commit, "up to date");
        return Ok(outcome(MergeKind::UpToDate, head.commit, base, read));
    }
    if base == head.commit {
        storage.cas_head(ours, Some(&head.version), theirs).await?;
        tracing::info!(from = %head.commit, to = %theirs, "fast-forward");
        return Ok(outcome(MergeKind::FastForward, theirs, base, read));
    }
    let ours_db = lazy(&storage, head.commit, None, &mut read).await?;
    let base_db = lazy(&storage, base, Some(&ours_db), &mut read).await?;
    let theirs_db = lazy(&storage, theirs, Some(&ours_db), &mut read).await?;
    let merged = datoms_core::merge::merge(&base_db, &ours_db, &theirs_db, strategy)?;
    let stored = store_with(&merged.db, &*storage, ours, options).await?;
    tracing::info!(
        commit = %stored.commit,
        base = %base,
        added = merged.applied.added.len(),
        retracted = merged.applied.retracted.len(),
        conflicts = merged.resolved.len(),
        "merged"
    );
    Ok(MergeOutcome {
        kind: MergeKind::Merged,
        commit: stored.commit,
        base,
        applied: merged.applied,
        resolved: merged.resolved,
        changes: merged.changes,
        renumbered: merged.renumbered,
        read,
        written: stored.stats,
    })
}

/// A commit both `a` and `b` descend from (either may be it), the nearest found walking
/// both histories back a generation at a time through every parent; `None` when they
/// share none.
///
/// # Errors
/// Missing or corrupt commits, backend errors.
pub async fn common_ancestor(
    storage: &dyn Storage,
    a: Address,
    b: Address,
    stats: &mut RestoreStats,
) -> Result<Option<Address>, StorageError> {
    let (mut x, mut y) = (Walk::new(a), Walk::new(b));
    loop {
        // A commit one side just reached that the other has seen is a common ancestor,
        // and no nearer one exists on the side that reached it.
        let met = x
            .frontier
            .iter()
            .find(|c| y.seen.contains(c))
            .or_else(|| y.frontier.iter().find(|c| x.seen.contains(c)));
        if let Some(found) = met {
            return Ok(Some(*found));
        }
        if x.frontier.is_empty() && y.frontier.is_empty() {
            return Ok(None);
        }
        x.step(storage, stats).await?;
        y.step(storage, stats).await?;
    }
}

/// One side of [`common_ancestor`]: every commit reached so far, and the generation to
/// read next.
struct Walk {
    seen: HashSet<Address>,
    frontier: Vec<Address>,
}

impl Walk {
    fn new(start: Address) -> Walk {
        Walk {
            seen: HashSet::from([start]),
            frontier: vec![start],
        }
    }

    /// Reads the frontier's commits (one batched request) and makes their unseen
    /// parents the next frontier.
    async fn step(
        &mut self,
        storage: &dyn Storage,
        stats: &mut RestoreStats,
    ) -> Result<(), StorageError> {
        if self.frontier.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.frontier);
        let blobs = get_all(storage, &batch).await?;
        stats.round_trips += 1;
        for (address, bytes) in batch.iter().zip(blobs) {
            stats.commits_fetched += 1;
            stats.bytes_fetched += bytes.len() as u64;
            let commit = Commit::decode(*address, &bytes)?;
            for p in commit.parents() {
                if self.seen.insert(p) {
                    self.frontier.push(p);
                }
            }
        }
        Ok(())
    }
}
