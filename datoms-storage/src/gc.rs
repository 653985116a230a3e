//! Garbage collection: delete the blobs no retained commit reaches.
//!
//! [`gc()`] runs in three phases, each a `tracing` span reporting progress:
//!
//! 1. **List** every blob with its write stamp and size ([`Storage::list_blob_stamps`]).
//! 2. **Mark** from every head: walk each head's lineage ([`Retention`] says how far:
//!    the last `keep_last` commits and/or those younger than `keep_younger`), and mark
//!    each retained commit, every node of its three trees, and every large value its
//!    nodes and tx log reference.
//! 3. **Sweep**: read the heads again and mark from any that moved meanwhile, then delete
//!    the blobs that are unmarked **and** whose write stamp is older than the grace period
//!    ([`GcOptions::grace`]), with [`Storage::delete_stale`], which re-checks each stamp as
//!    it deletes.
//!
//! # Why readers and writers never find a node missing
//! - A **store in flight** writes its new nodes before it moves the head: they are young,
//!   so the grace period protects them until the head names them. A node it *reuses*
//!   without writing comes from the commit it is based on, which is the head (or its
//!   CAS fails): marked. A node it writes that happens to exist already (an old,
//!   unreachable blob with the same bytes) gets its stamp refreshed by the put, and
//!   `delete_stale` never deletes a blob stamped after the cutoff: either the delete comes
//!   first and the put writes it again, or the put comes first and the delete skips it.
//! - A **replica restoring** a commit that just fell out of retention: a commit stays
//!   retained for the grace period after it stops being one of the last `keep_last`
//!   (measured from the write stamp of the commit that pushed it out) and for the grace
//!   period past `keep_younger`.
//!
//! The rule: **the grace period must be longer than the longest store, restore or GC
//! run** (see `docs/design.md`, "Garbage collection"). The default is an hour.
//!
//! # Resumable
//! GC keeps no state between runs: a run that is killed has deleted only unreachable,
//! stale blobs, so the store is consistent, and the next run marks again and finishes
//! the sweep.
//!
//! # Dry run
//! [`GcOptions::dry_run`] lists and marks, then reports what the sweep would delete and
//! deletes nothing.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use datoms_core::tree::Node;
use datoms_core::{Address, Commit, IndexKind};

use crate::batch::{get_batched, retry};
use crate::error::StorageError;
use crate::large::decode_fetching;
use crate::storage::{BlobStamp, Storage};

/// The grace period of [`GcOptions::default`]: one hour.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// Blobs listed per page.
const LIST_PAGE: usize = 1000;

/// Which commits GC keeps, besides what they reach. Each head's lineage is walked from
/// the head; a commit is retained while either rule keeps it (and for the grace period
/// after both stopped keeping it); the walk of a path stops at the first commit neither
/// keeps. The head itself is always retained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Keep the last this many commits of every head (the head is 1; 0 counts as 1).
    pub keep_last: usize,
    /// Also keep every commit younger than this (by its write stamp).
    pub keep_younger: Option<Duration>,
}

impl Default for Retention {
    /// The heads alone.
    fn default() -> Retention {
        Retention {
            keep_last: 1,
            keep_younger: None,
        }
    }
}

/// How [`gc_with`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// Which commits to keep.
    pub retention: Retention,
    /// Unreachable blobs younger than this stay; see the module docs for the rule.
    pub grace: Duration,
    /// Report what would be deleted, delete nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            retention: Retention::default(),
            grace: DEFAULT_GRACE,
            dry_run: false,
        }
    }
}

/// A phase of a GC run, as progress reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcPhase {
    /// Listing blobs; `done` counts blobs listed.
    Listing,
    /// Marking; `done` counts blobs marked.
    Marking,
    /// Deleting; `done` counts candidates handled, of `total`.
    Sweeping,
}

/// Progress of a GC run, reported after each page or batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcProgress {
    /// The phase.
    pub phase: GcPhase,
    /// Units done in this phase.
    pub done: u64,
    /// Units this phase has in all, when known.
    pub total: Option<u64>,
}

/// What a GC run found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Whether this was a dry run (nothing deleted).
    pub dry_run: bool,
    /// Blobs listed.
    pub blobs: u64,
    /// Bytes of the blobs listed.
    pub bytes: u64,
    /// Heads marked from.
    pub heads: u64,
    /// Commits retained (counted once however many heads reach them).
    pub retained_commits: u64,
    /// Listed blobs a retained commit reaches.
    pub reachable: u64,
    /// Unreachable blobs kept because they are younger than the grace period.
    pub young: u64,
    /// Blobs deleted (on a dry run: that would be deleted).
    pub collected: u64,
    /// Bytes of the blobs deleted (on a dry run: that would be).
    pub collected_bytes: u64,
    /// Candidates left because they were gone already or were written again meanwhile.
    pub skipped: u64,
}

/// [`gc_with`] with the default grace period and no progress reports.
///
/// # Errors
/// As [`gc_with`].
pub async fn gc<S: Storage + ?Sized>(
    storage: &S,
    retention: Retention,
) -> Result<GcReport, StorageError> {
    let options = GcOptions {
        retention,
        ..GcOptions::default()
    };
    gc_with(storage, &options, &mut |_| {}).await
}

/// Collects garbage in `storage` as the module docs describe, calling `progress` after
/// each page listed, level marked and batch deleted.
///
/// # Errors
/// Backend errors (transient ones are retried); [`StorageError::NotFound`] for a blob a
/// retained commit reaches that is missing (the store is damaged: nothing is deleted);
/// a corrupt or malformed retained commit or node. A failure during the sweep leaves
/// the store consistent, and a later run finishes it.
#[tracing::instrument(level = "info", skip_all, fields(
    keep_last = options.retention.keep_last,
    keep_younger = ?options.retention.keep_younger,
    grace = ?options.grace,
    dry_run = options.dry_run,
))]
pub async fn gc_with<S: Storage + ?Sized>(
    storage: &S,
    options: &GcOptions,
    progress: &mut (dyn FnMut(GcProgress) + Send),
) -> Result<GcReport, StorageError> {
    let now = SystemTime::now();
    let cutoff = now
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };

    let listed = list_all(storage, progress).await?;
    report.blobs = listed.len() as u64;
    report.bytes = listed.values().map(|s| s.len).sum();

    let mut marker = Marker {
        storage,
        listed: &listed,
        now,
        options,
        marked: HashSet::new(),
        retained: HashSet::new(),
        walked_heads: HashSet::new(),
    };
    let heads = retry(|| storage.list_heads()).await?;
    report.heads = heads.len() as u64;
    for (_, head) in &heads {
        marker.mark_head(head.commit, progress).await?;
    }
    // Heads that moved since: their new commits are young, but the nodes they reuse
    // from an older commit (a branch made at an old commit meanwhile) may not be.
    for (_, head) in retry(|| storage.list_heads()).await? {
        marker.mark_head(head.commit, progress).await?;
    }
    report.retained_commits = marker.retained.len() as u64;

    let mut candidates: Vec<&BlobStamp> = Vec::new();
    for stamp in listed.values() {
        if marker.marked.contains(&stamp.address) {
            report.reachable += 1;
        } else if stamp.written < cutoff {
            candidates.push(stamp);
        } else {
            report.young += 1;
        }
    }
    candidates.sort_unstable_by_key(|s| s.address);
    tracing::info!(
        blobs = report.blobs,
        reachable = report.reachable,
        young = report.young,
        candidates = candidates.len(),
        retained_commits = report.retained_commits,
        "marked"
    );

    if options.dry_run {
        report.collected = candidates.len() as u64;
        report.collected_bytes = candidates.iter().map(|s| s.len).sum();
        return Ok(report);
    }
    sweep(storage, &candidates, cutoff, &mut report, progress).await?;
    tracing::info!(
        collected = report.collected,
        collected_bytes = report.collected_bytes,
        skipped = report.skipped,
        "swept"
    );
    Ok(report)
}

/// Every blob of `storage`, by address.
#[tracing::instrument(level = "info", skip_all)]
async fn list_all<S: Storage + ?Sized>(
    storage: &S,
    progress: &mut (dyn FnMut(GcProgress) + Send),
) -> Result<HashMap<Address, BlobStamp>, StorageError> {
    let mut listed = HashMap::new();
    let mut after = None;
    loop {
        let page = retry(|| storage.list_blob_stamps(after, LIST_PAGE)).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.address);
        listed.extend(page.into_iter().map(|s| (s.address, s)));
        progress(GcProgress {
            phase: GcPhase::Listing,
            done: listed.len() as u64,
            total: None,
        });
    }
    tracing::info!(blobs = listed.len(), "listed");
    Ok(listed)
}

/// Deletes `candidates` in batches, each only if still stale.
#[tracing::instrument(level = "info", skip_all, fields(candidates = candidates.len()))]
async fn sweep<S: Storage + ?Sized>(
    storage: &S,
    candidates: &[&BlobStamp],
    cutoff: SystemTime,
    report: &mut GcReport,
    progress: &mut (dyn FnMut(GcProgress) + Send),
) -> Result<(), StorageError> {
    let batch = storage.capabilities().max_batch.max(1);
    let total = candidates.len() as u64;
    let mut done = 0;
    for chunk in candidates.chunks(batch) {
        let addresses: Vec<Address> = chunk.iter().map(|s| s.address).collect();
        let deleted: HashSet<Address> = retry(|| storage.delete_stale(&addresses, cutoff))
            .await?
            .into_iter()
            .collect();
        for stamp in chunk {
            if deleted.contains(&stamp.address) {
                report.collected += 1;
                report.collected_bytes += stamp.len;
            } else {
                report.skipped += 1;
            }
        }
        done += chunk.len() as u64;
        progress(GcProgress {
            phase: GcPhase::Sweeping,
            done,
            total: Some(total),
        });
    }
    Ok(())
}

/// The mark phase's state.
struct Marker<'a, S: ?Sized> {
    storage: &'a S,
    listed: &'a HashMap<Address, BlobStamp>,
    now: SystemTime,
    options: &'a GcOptions,
    /// Every blob marked reachable.
    marked: HashSet<Address>,
    /// Every commit retained.
    retained: HashSet<Address>,
    /// Head commits already walked (a head read twice is walked once).
    walked_heads: HashSet<Address>,
}

impl<S: Storage + ?Sized> Marker<'_, S> {
    /// When the blob at `address` was written; one listed after the listing is young.
    fn written(&self, address: &Address) -> SystemTime {
        self.listed.get(address).map_or(self.now, |s| s.written)
    }

    /// How long ago `time` was (zero for a time in the future).
    fn age(&self, time: SystemTime) -> Duration {
        self.now.duration_since(time).unwrap_or(Duration::ZERO)
    }

    /// Marks the retained lineage of the head at `head` and everything it reaches.
    #[tracing::instrument(level = "info", skip(self, progress))]
    async fn mark_head(
        &mut self,
        head: Address,
        progress: &mut (dyn FnMut(GcProgress) + Send),
    ) -> Result<(), StorageError> {
        if !self.walked_heads.insert(head) {
            return Ok(());
        }
        for (address, commit) in self.retained_lineage(head).await? {
            if self.retained.insert(address) {
                self.mark_commit(address, &commit, progress).await?;
            }
        }
        Ok(())
    }

    /// The commits of `head`'s lineage that the retention keeps, walked breadth-first by
    /// depth from the head (depth 0) through each commit's parents. The one place that
    /// knows where a commit's parents are.
    async fn retained_lineage(
        &self,
        head: Address,
    ) -> Result<Vec<(Address, Commit)>, StorageError> {
        let retention = self.options.retention;
        let keep_last = retention.keep_last.max(1);
        let grace = self.options.grace;
        let mut out = Vec::new();
        let mut seen = HashSet::from([head]);
        // The newest write stamp among the commits at each depth: when a commit `keep_last`
        // deeper fell out of `keep_last`.
        let mut newest_at_depth: Vec<SystemTime> = Vec::new();
        let mut level = vec![head];
        while !level.is_empty() {
            let depth = newest_at_depth.len();
            let blobs = get_batched(self.storage, &level).await?;
            let mut next = Vec::new();
            let mut newest = SystemTime::UNIX_EPOCH;
            for (address, blob) in level.iter().zip(blobs) {
                let Some(bytes) = blob else {
                    // The head's commit must be there; an older one may have been
                    // collected by an earlier run with a shorter retention.
                    if depth == 0 {
                        return Err(StorageError::NotFound { address: *address });
                    }
                    continue;
                };
                let commit = Commit::decode(*address, &bytes)?;
                let written = self.written(address);
                newest = newest.max(written);
                let kept_by_count =
                    depth < keep_last || self.age(newest_at_depth[depth - keep_last]) < grace;
                let kept_by_age = retention
                    .keep_younger
                    .is_some_and(|young| self.age(written) < young.saturating_add(grace));
                if !(kept_by_count || kept_by_age) {
                    continue;
                }
                // Every parent: the first, then a merge commit's others.
                for parent in commit.parents() {
                    if seen.insert(parent) {
                        next.push(parent);
                    }
                }
                out.push((*address, commit));
            }
            newest_at_depth.push(newest);
            level = next;
        }
        Ok(out)
    }

    /// Marks `commit` (at `address`), the large values its log references, and every
    /// node of its trees with the large values they reference, level by level, skipping
    /// subtrees already marked.
    async fn mark_commit(
        &mut self,
        address: Address,
        commit: &Commit,
        progress: &mut (dyn FnMut(GcProgress) + Send),
    ) -> Result<(), StorageError> {
        self.marked.insert(address);
        self.marked.extend(commit.log_large_references()?);
        // (address, index, whether it is known to be a leaf)
        let mut level: Vec<(Address, IndexKind, bool)> = IndexKind::ALL
            .iter()
            .zip(commit.roots)
            .map(|(kind, root)| (root, *kind, false))
            .collect();
        while !level.is_empty() {
            level.retain(|(a, _, _)| self.marked.insert(*a));
            let addresses: Vec<Address> = level.iter().map(|(a, _, _)| *a).collect();
            let blobs = get_batched(self.storage, &addresses).await?;
            let mut next = Vec::new();
            for ((address, kind, leaf), blob) in level.iter().zip(blobs) {
                let bytes = blob.ok_or(StorageError::NotFound { address: *address })?;
                self.marked
                    .extend(Node::large_references(*address, &bytes)?);
                if *leaf {
                    continue;
                }
                let (node, _held) =
                    decode_fetching(self.storage, || Node::decode(*address, &bytes, *kind)).await?;
                let leaf_below = node.level() == 1;
                for child in node.children() {
                    next.push((child.address(), *kind, leaf_below));
                }
            }
            progress(GcProgress {
                phase: GcPhase::Marking,
                done: self.marked.len() as u64,
                total: None,
            });
            level = next;
        }
        Ok(())
    }
}
