//! Sync a replica to a head: by tx-log replay or by tree restore, whichever costs less.
//!
//! Log replay applies the tx datoms of the missing commits with the same write path a
//! transaction uses, then checks that the resulting roots equal the stored commit's: a
//! mismatch is [`StorageError::ReplayMismatch`], never a silently different db.

use datoms_core::restore::Mode;
use datoms_core::{Address, Commit, Db, Restore, RestoreStats, TX0};

use crate::batch::{get_all, retry};
use crate::bundle::Prefetched;
use crate::error::StorageError;
use crate::large::decode_fetching;
use crate::restore::{run_restore_from, run_restore_from_with};
use crate::storage::{Storage, SyncBundle};

/// How [`sync`] brings a replica up to date.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Replay the log when it can and it is cheap: the replica is one commit behind
    /// (or new and empty, and the head is the first commit), holds no transaction it has
    /// not stored, has the head's schema and tree configuration, and that commit's log is
    /// small ([`LOG_REPLAY_MAX_DATOMS`]). Restore trees otherwise. Never fails with
    /// [`StorageError::LogGap`].
    #[default]
    Auto,
    /// Always replay the log (fails with [`StorageError::LogGap`] when it cannot: the
    /// one policy that does).
    Log,
    /// Always restore trees.
    Tree,
}

/// The largest log (in datoms) [`SyncPolicy::Auto`] replays instead of restoring trees.
/// Replaying a datom costs a few tree edits in memory; fetching the nodes it changed
/// costs a round trip and a few KiB per level, so small logs replay faster, while a big
/// log (a bulk import) is cheaper to fetch as finished nodes.
pub const LOG_REPLAY_MAX_DATOMS: usize = 2048;

/// Which route a sync took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRoute {
    /// The replica was already at the head.
    Unchanged,
    /// The tx log was replayed.
    Log,
    /// The trees were restored incrementally.
    Tree,
}

/// A synced db, its I/O and the route taken.
#[derive(Clone, Debug)]
pub struct Synced {
    /// The db at the head.
    pub db: Db,
    /// I/O counters (the head read included).
    pub stats: RestoreStats,
    /// How it got there.
    pub route: SyncRoute,
}

/// Brings `db1` to head `name` by log replay or tree restore, as `policy` says.
///
/// Unless the policy is [`SyncPolicy::Log`], a storage that offers one-round-trip sync
/// ([`Storage::sync_bundle`]) is asked for the head and the blobs `db1` lacks in one
/// request, and the trees are restored over them ([`SyncRoute::Tree`]): with every blob
/// at hand, replaying the log would save no request.
///
/// # Errors
/// As [`sync_via_log`] (with [`SyncPolicy::Log`]) or
/// [`crate::restore_from`].
#[tracing::instrument(level = "info", skip_all, fields(head = name, policy = ?policy))]
pub async fn sync<S: Storage + ?Sized>(
    db1: &Db,
    storage: &S,
    name: &str,
    policy: SyncPolicy,
) -> Result<Synced, StorageError> {
    if policy != SyncPolicy::Log {
        if let Some(bundle) = retry(|| storage.sync_bundle(name, db1.base_commit())).await? {
            return sync_bundled(db1, storage, bundle).await;
        }
    }
    let head = crate::restore::read_head(storage, name).await?;
    let mut synced = sync_commit(db1, storage, head, None, policy).await?;
    synced.stats.round_trips += 1;
    Ok(synced)
}

/// [`sync()`] over a bundle: unchanged, or a tree restore over its blobs.
async fn sync_bundled<S: Storage + ?Sized>(
    db1: &Db,
    storage: &S,
    bundle: SyncBundle,
) -> Result<Synced, StorageError> {
    let head = bundle.head.commit;
    if db1.base_commit() == Some(head) && db1.pending_txs() == 0 {
        let stats = RestoreStats {
            round_trips: 1,
            ..RestoreStats::default()
        };
        return Ok(Synced {
            db: db1.clone(),
            stats,
            route: SyncRoute::Unchanged,
        });
    }
    let mut prefetched = Prefetched::new(bundle.blobs);
    let machine = Restore::with_mode(head, Some(db1), Mode::Eager);
    let r = run_restore_from_with(storage, machine, Some(db1), Some(&mut prefetched)).await?;
    Ok(Synced {
        db: r.db,
        stats: r.stats,
        route: SyncRoute::Tree,
    })
}

/// Brings `db1` to `commit` (any stored commit, not necessarily a head's) by log replay
/// or tree restore, as `policy` says: [`sync()`] without the head read. A follower uses
/// it to step through the commits between two heads one at a time.
///
/// # Errors
/// As [`sync()`].
pub async fn sync_to_commit<S: Storage + ?Sized>(
    db1: &Db,
    storage: &S,
    commit: Address,
    policy: SyncPolicy,
) -> Result<Synced, StorageError> {
    sync_commit(db1, storage, commit, None, policy).await
}

/// [`sync_to_commit`], given the target commit when the caller has it decoded already.
pub(crate) async fn sync_commit<S: Storage + ?Sized>(
    db1: &Db,
    storage: &S,
    head: Address,
    known: Option<Commit>,
    policy: SyncPolicy,
) -> Result<Synced, StorageError> {
    let mut stats = RestoreStats::default();
    if db1.base_commit() == Some(head) && db1.pending_txs() == 0 {
        return Ok(Synced {
            db: db1.clone(),
            stats,
            route: SyncRoute::Unchanged,
        });
    }
    let mut machine = Restore::with_mode(head, Some(db1), Mode::Eager);
    if policy != SyncPolicy::Tree {
        let commit = match known {
            Some(c) => c,
            None => fetch_commit(storage, head, &mut stats).await?,
        };
        // One commit behind (or a new replica at the first commit) with a small log, and
        // nothing that rules replay out. The log's datom count is in the commit; its
        // entries stay encoded until replay.
        let cheap = commit.parent == db1.base_commit()
            && commit.log.datoms() <= LOG_REPLAY_MAX_DATOMS
            && replay_obstacle(db1, &commit).is_none();
        if policy == SyncPolicy::Log || cheap {
            return replay(db1, storage, head, commit, stats).await;
        }
        machine.provide_commit(commit);
    }
    let r = run_restore_from(storage, machine, Some(db1)).await?;
    Ok(Synced {
        db: r.db,
        stats: add_stats(stats, r.stats),
        route: SyncRoute::Tree,
    })
}

/// Brings `db1` to head `name` by replaying the tx log of the commits since `db1`'s
/// commit, checking the result against the stored roots.
///
/// # Errors
/// [`StorageError::LogGap`] if `db1`'s commit is not a recent ancestor of the head, `db1`
/// has unstored transactions, or the schema changed; [`StorageError::ReplayMismatch`] if
/// replay does not reproduce the stored trees; [`datoms_core::Error::MalformedLog`] (as
/// [`StorageError::Core`]) if a commit's log cannot be decoded; fetch errors.
pub async fn sync_via_log<S: Storage + ?Sized>(
    db1: &Db,
    storage: &S,
    name: &str,
) -> Result<Synced, StorageError> {
    sync(db1, storage, name, SyncPolicy::Log).await
}

async fn replay<S: Storage + ?Sized>(
    db1: &Db,
    storage: &S,
    head: Address,
    commit: Commit,
    mut stats: RestoreStats,
) -> Result<Synced, StorageError> {
    let gap = |reason: &str| StorageError::LogGap {
        head,
        base: db1.base_commit(),
        reason: reason.to_owned(),
    };
    if let Some(reason) = replay_obstacle(db1, &commit) {
        return Err(gap(reason));
    }
    let lineage = commit.lineage(head);
    // The commits to replay, newest first, then the head itself last when applying.
    let between: Vec<Address> = match db1.base_commit() {
        Some(base) => {
            let k = lineage
                .iter()
                .position(|a| *a == base)
                .ok_or_else(|| gap("db1's commit is not a recent ancestor of the head"))?;
            lineage[1..k].to_vec()
        }
        // A new, empty replica replays the whole history, if the lineage reaches back to
        // the first commit (checked below once the commits are read).
        None => lineage[1..].to_vec(),
    };
    let mut commits = Vec::with_capacity(between.len());
    if !between.is_empty() {
        let blobs = get_all(storage, &between).await?;
        stats.round_trips += 1;
        for (a, b) in between.iter().zip(blobs) {
            stats.commits_fetched += 1;
            stats.bytes_fetched += b.len() as u64;
            commits.push(Commit::decode(*a, &b)?);
        }
    }
    commits.reverse();
    if db1.base_commit().is_none() {
        let first_parent = commits.first().unwrap_or(&commit).parent;
        if first_parent.is_some() {
            return Err(gap("the history is longer than the lineage a commit lists"));
        }
    }
    let mut db = db1.clone();
    for c in commits.iter().chain(std::iter::once(&commit)) {
        // A log references large values by address: those nobody here holds are
        // fetched (and held until replay put them in the trees).
        let (entries, fetched) = decode_fetching(storage, || c.log_entries()).await?;
        if !fetched.values.is_empty() {
            stats.round_trips += 1;
            stats.large_values_fetched += fetched.values.len() as u64;
            stats.bytes_fetched += fetched.bytes;
        }
        for entry in entries {
            db = db.apply_log_entry(entry)?;
        }
    }
    let replayed = db.root_addresses();
    // The log reproduces the trees and max-tx exactly; max-eid it can only reach (a
    // bulk-loaded db's highest entity may hold no datom), and the commit's is taken.
    if replayed != commit.roots || db.max_tx() != commit.max_tx || db.max_eid() > commit.max_eid {
        return Err(StorageError::ReplayMismatch {
            commit: head,
            replayed: Box::new(replayed),
            stored: Box::new(commit.roots),
        });
    }
    // The replayed trees are the stored ones, so every node is in storage.
    tracing::info!(commit = %head, txs_replayed = db.pending_txs(), "replayed the log");
    Ok(Synced {
        db: db.committed(head, &commit),
        stats,
        route: SyncRoute::Log,
    })
}

/// Why the log of `commit` cannot be replayed onto `db1` whatever lies between them, if
/// it cannot: the one list of these reasons, which [`SyncPolicy::Auto`] reads to choose
/// a tree restore and [`SyncPolicy::Log`] reports as [`StorageError::LogGap`].
fn replay_obstacle(db1: &Db, commit: &Commit) -> Option<&'static str> {
    if db1.pending_txs() > 0 {
        return Some("db1 has transactions that are not stored");
    }
    if commit.schema != *db1.schema() || commit.config != db1.config() {
        return Some("db1's schema or tree configuration differs from the head's");
    }
    if db1.base_commit().is_none() && !(db1.is_empty() && db1.max_tx() == TX0) {
        return Some("db1 has no commit but holds data");
    }
    None
}

/// Fetches and decodes the commit at `address`, counting the request in `stats`.
pub(crate) async fn fetch_commit<S: Storage + ?Sized>(
    storage: &S,
    address: Address,
    stats: &mut RestoreStats,
) -> Result<Commit, StorageError> {
    let bytes = get_all(storage, &[address])
        .await?
        .pop()
        .ok_or(StorageError::NotFound { address })?;
    stats.round_trips += 1;
    stats.commits_fetched += 1;
    stats.bytes_fetched += bytes.len() as u64;
    Ok(Commit::decode(address, &bytes)?)
}

pub(crate) fn add_stats(a: RestoreStats, b: RestoreStats) -> RestoreStats {
    RestoreStats {
        round_trips: a.round_trips + b.round_trips,
        nodes_fetched: a.nodes_fetched + b.nodes_fetched,
        large_values_fetched: a.large_values_fetched + b.large_values_fetched,
        commits_fetched: a.commits_fetched + b.commits_fetched,
        bytes_fetched: a.bytes_fetched + b.bytes_fetched,
        nodes_reused: a.nodes_reused + b.nodes_reused,
        nodes_unused: a.nodes_unused + b.nodes_unused,
        db1_nodes_examined: a.db1_nodes_examined + b.db1_nodes_examined,
        prefetch_skipped: a.prefetch_skipped || b.prefetch_skipped,
    }
}
