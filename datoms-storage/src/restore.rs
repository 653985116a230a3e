//! Restore drivers: run `datoms-core`'s restore and materialize machines against a
//! `Storage`, one batched request per step.
//!
//! - [`restore`]: lazy full restore — head, commit and roots; every other node loads on
//!   demand through a [`StorageSource`] and its shared node cache with a memory budget.
//! - [`restore_from`]: Datascript's long-wished `restore(db1, storage)` — the new db,
//!   reusing everything `db1` holds and fetching only what changed.
//! - [`materialize`]: load every node of a lazily restored db, one request per level.

use std::sync::Arc;

use datoms_core::restore::{Machine, Materialize, Mode, Step};
use datoms_core::{Address, Db, Restore, RestoreStats};

use crate::batch::{get_batched, retry};
use crate::bundle::{run_prefetched, Prefetched};
use crate::error::StorageError;
use crate::source::StorageSource;
use crate::storage::Storage;

/// A restored db and the I/O it took.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The db.
    pub db: Db,
    /// Round trips (the head read included), nodes and bytes fetched, subtrees reused.
    pub stats: RestoreStats,
}

/// Default memory budget of the node cache of a lazily restored db: 256 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Lazily restores the db at head `name`: reads the head, the commit and the three roots;
/// other nodes load on demand through a node cache of [`DEFAULT_CACHE_BYTES`].
///
/// # Errors
/// [`StorageError::NoHead`], missing or corrupt blobs, backend errors.
pub async fn restore(storage: Arc<dyn Storage>, name: &str) -> Result<Restored, StorageError> {
    let head = read_head(&*storage, name).await?;
    let source = StorageSource::new(storage.clone(), DEFAULT_CACHE_BYTES)?;
    let mut r = restore_commit(&*storage, head, None, Mode::Lazy).await?;
    r.db = r.db.with_source(source);
    r.stats.round_trips += 1;
    Ok(r)
}

/// Restores the db at head `name` incrementally from `db1`: the same commit gives `db1`
/// itself with zero node reads; a few commits ahead, one batch of the nodes their delta
/// manifests name; farther, or on another lineage, a level-by-level walk that skips every
/// subtree `db1` holds. Unchanged subtrees are shared with `db1` in memory.
///
/// The result is fully loaded except for subtrees shared with a lazily restored `db1`,
/// which load through `db1`'s source.
///
/// # Errors
/// As [`restore`].
///
/// A storage that offers one-round-trip sync ([`Storage::sync_bundle`]) is asked for the
/// head and the blobs `db1` lacks in one request instead; the restore then runs over
/// them as over the storage (each blob verified), fetching what they lack, if anything.
pub async fn restore_from<S: Storage + ?Sized>(
    db1: &Db,
    storage: &S,
    name: &str,
) -> Result<Restored, StorageError> {
    if let Some(bundle) = retry(|| storage.sync_bundle(name, db1.base_commit())).await? {
        let mut prefetched = Prefetched::new(bundle.blobs);
        let machine = Restore::with_mode(bundle.head.commit, Some(db1), Mode::Eager);
        return run_restore_from_with(storage, machine, Some(db1), Some(&mut prefetched)).await;
    }
    let head = read_head(storage, name).await?;
    let mut r = restore_commit(storage, head, Some(db1), Mode::Eager).await?;
    r.stats.round_trips += 1;
    Ok(r)
}

/// Restores the db at `commit` (not necessarily a head), reusing `db1` if given.
///
/// # Errors
/// Missing or corrupt blobs, backend errors.
pub async fn restore_commit<S: Storage + ?Sized>(
    storage: &S,
    commit: Address,
    db1: Option<&Db>,
    mode: Mode,
) -> Result<Restored, StorageError> {
    run_restore_from(storage, Restore::with_mode(commit, db1, mode), db1).await
}

/// Runs `machine`, a restore reusing `db1`. A lazily restored `db1` that reads another
/// storage than `storage` shares only what it has in memory: a node it knows only by
/// address is fetched from `storage` (where the target commit is complete), never left
/// to load through `db1`'s source, which reads a storage that may not have it. Whatever
/// the shared nodes leave unloaded is then materialized from `storage`.
#[tracing::instrument(name = "restore", level = "info", skip_all, fields(db1 = ?db1.and_then(Db::base_commit)))]
pub(crate) async fn run_restore_from<S: Storage + ?Sized>(
    storage: &S,
    machine: Restore,
    db1: Option<&Db>,
) -> Result<Restored, StorageError> {
    run_restore_from_with(storage, machine, db1, None).await
}

/// [`run_restore_from`], taking blobs from a sync bundle before asking `storage`.
pub(crate) async fn run_restore_from_with<S: Storage + ?Sized>(
    storage: &S,
    machine: Restore,
    db1: Option<&Db>,
    prefetched: Option<&mut Prefetched>,
) -> Result<Restored, StorageError> {
    let foreign = db1.is_some_and(|d| d.source().is_some() && !reads(d, storage));
    let bundled = prefetched.is_some();
    let r = match (foreign, prefetched) {
        (true, prefetched) => restore_foreign(storage, machine, prefetched).await?,
        (false, Some(prefetched)) => run_prefetched(storage, machine, prefetched).await?,
        (false, None) => run_restore(storage, machine).await?,
    };
    tracing::info!(
        commit = ?r.db.base_commit(),
        round_trips = r.stats.round_trips,
        nodes = r.stats.nodes_fetched,
        bytes = r.stats.bytes_fetched,
        reused = r.stats.nodes_reused,
        walked = r.stats.prefetch_skipped,
        foreign,
        bundled,
        "restored"
    );
    Ok(r)
}

/// A restore reusing a `db1` that reads another storage (see [`run_restore_from`]).
async fn restore_foreign<S: Storage + ?Sized>(
    storage: &S,
    machine: Restore,
    prefetched: Option<&mut Prefetched>,
) -> Result<Restored, StorageError> {
    let machine = machine.db1_reads_another_storage();
    let mut r = match prefetched {
        Some(prefetched) => run_prefetched(storage, machine, prefetched).await?,
        None => run_restore(storage, machine).await?,
    };
    if r.db.has_unloaded_nodes() {
        let m = materialize(&r.db, storage).await?;
        r.stats.round_trips += m.stats.round_trips;
        r.stats.nodes_fetched += m.stats.nodes_fetched;
        r.stats.bytes_fetched += m.stats.bytes_fetched;
    }
    Ok(r)
}

/// True if `db` loads what it has not loaded from `storage` itself (the same object).
fn reads<S: Storage + ?Sized>(db: &Db, storage: &S) -> bool {
    db.source()
        .and_then(|s| s.as_any())
        .and_then(|a| a.downcast_ref::<StorageSource>())
        .is_some_and(|s| std::ptr::addr_eq(Arc::as_ptr(s.storage()), storage as *const S))
}

/// Drives a restore or materialize machine to the end, one batched request per step.
pub(crate) async fn run_restore<S: Storage + ?Sized, M: Machine>(
    storage: &S,
    mut machine: M,
) -> Result<Restored, StorageError> {
    loop {
        match machine.poll()? {
            Step::Need(addresses) => {
                let blobs = get_batched(storage, &addresses).await?;
                for (a, b) in addresses.iter().zip(blobs) {
                    machine.accept(*a, b.as_deref())?;
                }
            }
            Step::Done(db) => {
                return Ok(Restored {
                    db,
                    stats: machine.stats(),
                })
            }
        }
    }
}

/// Loads every node of `db` not in memory yet, one batched request per tree level.
///
/// # Errors
/// Missing or corrupt blobs, backend errors.
pub async fn materialize<S: Storage + ?Sized>(
    db: &Db,
    storage: &S,
) -> Result<Restored, StorageError> {
    run_restore(storage, Materialize::new(db)).await
}

/// The commit head `name` points to.
///
/// # Errors
/// [`StorageError::NoHead`] if it does not exist.
pub async fn read_head<S: Storage + ?Sized>(
    storage: &S,
    name: &str,
) -> Result<Address, StorageError> {
    retry(|| storage.get_head(name))
        .await?
        .map(|h| h.commit)
        .ok_or_else(|| StorageError::NoHead {
            name: name.to_owned(),
        })
}
