//! A head's history ([`datoms_core::History`]: every assertion and retraction, with its
//! tx and `added` flag), built from its commits' tx logs and kept current incrementally.
//!
//! The history of a commit is the fold of the logs of its lineage (first parents, oldest
//! first; a merge commit contributes its own log, the changes the merge applied). Given
//! the history of an older commit of the same lineage, [`history`] reads only the commits
//! after it and extends that value ([`datoms_core::History::with_entries`] shares
//! everything with it), so a follower or a long-lived process pays for each commit's log
//! once, never for a fold of the whole history on every use. A cached history whose
//! commit is not in the head's lineage (a branch moved away, a head reset) is ignored and
//! the history rebuilt from the first commit.
//!
//! Cost: one head read, then the lineage walk back to the cached commit, which reads the
//! commits ten at a time (a commit lists its ancestors), plus the large values their logs
//! reference; no tree node is read. A db built without transactions (a bulk load) has
//! no log for its datoms, so its history starts at its first transaction.

use datoms_core::{Address, Commit, History, RestoreStats, TxLogEntry};

use crate::as_of::Lineage;
use crate::error::StorageError;
use crate::large::decode_fetching;
use crate::restore::read_head;
use crate::storage::Storage;

/// The history of one commit of a head.
#[derive(Clone, Debug)]
pub struct HeadHistory {
    /// Every assertion and retraction of the commit's lineage.
    pub history: History,
    /// The commit it is the history of.
    pub commit: Address,
    /// What building or extending it read: commits, large values, round trips (the head
    /// read included).
    pub stats: RestoreStats,
    /// Commits whose logs were folded in by this call (0 when the cached history was
    /// current).
    pub commits_folded: usize,
}

/// The history of head `name`, extending `cached` (the history of an older commit of
/// its lineage, typically the previous result) when it can.
///
/// # Errors
/// [`StorageError::NoHead`]; missing or corrupt commits or large values; backend errors.
#[tracing::instrument(level = "info", skip(storage, cached), fields(head = name))]
pub async fn history(
    storage: &dyn Storage,
    name: &str,
    cached: Option<&HeadHistory>,
) -> Result<HeadHistory, StorageError> {
    let head = read_head(storage, name).await?;
    let stats = RestoreStats {
        round_trips: 1,
        ..RestoreStats::default()
    };
    history_at(storage, head, cached, stats).await
}

/// The history of `commit` (any stored commit), extending `cached` when it is the
/// history of an ancestor of `commit`.
///
/// # Errors
/// As [`history`], [`StorageError::NoHead`] aside.
pub async fn history_of_commit(
    storage: &dyn Storage,
    commit: Address,
    cached: Option<&HeadHistory>,
) -> Result<HeadHistory, StorageError> {
    history_at(storage, commit, cached, RestoreStats::default()).await
}

async fn history_at(
    storage: &dyn Storage,
    head: Address,
    cached: Option<&HeadHistory>,
    mut stats: RestoreStats,
) -> Result<HeadHistory, StorageError> {
    if let Some(c) = cached.filter(|c| c.commit == head) {
        return Ok(HeadHistory {
            history: c.history.clone(),
            commit: head,
            stats,
            commits_folded: 0,
        });
    }
    // Newest first, back to the cached commit (never fetched) or the first one.
    let mut walk = match cached {
        Some(c) => Lineage::until(head, c.commit),
        None => Lineage::new(head),
    };
    let mut newer: Vec<(Address, Commit)> = Vec::new();
    while let Some(found) = walk.next(storage, &mut stats).await? {
        newer.push(found);
    }
    let mut history = match cached {
        Some(c) if walk.reached() => c.history.clone(),
        // Not in the lineage: the walk went back to the first commit; fold it all.
        _ => History::new(),
    };
    let commits_folded = newer.len();
    for (_, commit) in newer.iter().rev() {
        let (entries, fetched): (Vec<TxLogEntry>, _) =
            decode_fetching(storage, || commit.log_entries()).await?;
        if !fetched.values.is_empty() {
            stats.round_trips += 1;
            stats.large_values_fetched += fetched.values.len() as u64;
            stats.bytes_fetched += fetched.bytes;
        }
        history = history.with_entries(&entries);
    }
    Ok(HeadHistory {
        history,
        commit: head,
        stats,
        commits_folded,
    })
}
