//! `store`: write what storage lacks, then the commit, then move the head by CAS.
//!
//! The order is what makes it crash-safe: the nodes and the commit that names them (in
//! one batched write: a commit is unreachable until the head names it), and only then the
//! head. A crash or error at any point
//! before the CAS leaves the head on the previous, complete commit; what was written is
//! content-addressed, so a retry rewrites nothing harmful.

use std::collections::HashSet;

use bytes::Bytes;

use datoms_core::addressing::{all_nodes, commit_for_at, NewNodes};
use datoms_core::{Address, Db};

use crate::batch::{put_batched, retry};
use crate::error::StorageError;
use crate::storage::Storage;

/// What a store wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Tree nodes written.
    pub nodes_written: u64,
    /// Large values written (stored out of line, see [`datoms_core::large`]): those
    /// new in this commit, never one the storage's head already references.
    pub large_values_written: u64,
    /// Bytes written: nodes, large values and commit.
    pub bytes_written: u64,
    /// True if a commit was written and the head moved.
    pub committed: bool,
}

/// What a store takes on trust about the storage it writes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Confirm {
    /// The storage holds every node its head reaches (the [`Storage`] contract: a head
    /// only ever moves to a complete commit, and nothing deletes what a head reaches).
    /// Onto the base commit, only the nodes new since it are written: the cost of a
    /// store follows the change, not the db.
    #[default]
    Head,
    /// Nothing is taken on trust: the store lists every blob the storage holds and
    /// writes every node of the db it lacks, so the new commit is complete even in a
    /// storage that lost blobs (deleted by hand, or a copy cut short). A node the db
    /// cannot supply (a lazily restored db whose own storage lost it) fails the store
    /// with a typed error before the head moves. Costs a listing of the storage and a
    /// walk of the whole db: for repairs and backups, not for every transaction.
    Everything,
}

/// How a store runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// What the store takes on trust (see [`Confirm`]).
    pub confirm: Confirm,
    /// The wall-clock time to record, in milliseconds since the Unix epoch; `None` reads
    /// the clock once per db value ([`Db::commit_clock`], so one db stored to two
    /// storages makes the same commit in both). Either way the commit's time is not
    /// earlier than its parents' (see [`datoms_core::commit`]).
    pub time: Option<u64>,
}

/// The result of a store.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The db as stored: its base commit is `commit`, its pending log is empty.
    pub db: Db,
    /// The commit the head now points to.
    pub commit: Address,
    /// What was written.
    pub stats: StoreStats,
}

/// Stores `db` under head `name`.
///
/// The head must be where `db` came from: at `db`'s base commit, or absent (a new
/// database, or a storage that holds nothing of this one yet) — else
/// [`StorageError::HeadConflict`] tells where it is, and nothing is written. Storing a db
/// with no transactions since its base commit onto that commit writes nothing.
///
/// **Never a head on an incomplete commit.** A head only ever moves to a commit whose
/// every node is in its storage, and what a storage holds is derived from its own head,
/// never from anything recorded on a db value or a node: onto the base commit, the base's
/// trees are in the storage and only the nodes new since the base are written; into a
/// storage without the head, every node is written (a lazily restored db loads what it
/// has not loaded through its source). So one db value stored to two storages is
/// complete in both.
///
/// A storage that lost blobs its head reaches breaks that contract; [`crate::verify()`]
/// finds it, and [`store_with`] and [`Confirm::Everything`] repair it.
///
/// # Errors
/// [`StorageError::HeadConflict`] if another writer moved the head (before or during the
/// store); load errors of a lazily restored db copied into a new storage; write errors.
/// On any error the head is unchanged, unless the error came after the CAS was sent
/// (then the head is at the previous or the new commit, both complete).
pub async fn store<S: Storage + ?Sized>(
    db: &Db,
    storage: &S,
    name: &str,
) -> Result<Stored, StorageError> {
    store_with(db, storage, name, StoreOptions::default()).await
}

/// [`store()`] with options: [`Confirm::Everything`] writes every node the storage
/// lacks, whatever its head claims, and then moves the head even when the db has no
/// transactions since its base commit (a repair of the commit the head names).
///
/// Runs in a `store` tracing span (head, confirm); an info event reports the commit and
/// what was written.
///
/// # Errors
/// As [`store()`].
#[tracing::instrument(name = "store", level = "info", skip_all, fields(head = name, confirm = ?options.confirm))]
pub async fn store_with<S: Storage + ?Sized>(
    db: &Db,
    storage: &S,
    name: &str,
    options: StoreOptions,
) -> Result<Stored, StorageError> {
    let current = retry(|| storage.get_head(name)).await?;
    // The base commit, when the head is on it.
    let onto_base = match (&current, db.base_commit()) {
        (None, _) => None,
        (Some(head), Some(base)) if head.commit == base => Some(base),
        (Some(_), _) => {
            tracing::debug!(current = ?current.as_ref().map(|h| h.commit), "the head moved");
            return Err(StorageError::HeadConflict {
                name: name.to_owned(),
                current,
            });
        }
    };
    // Onto its base with nothing new (no transaction, no merge): nothing to commit.
    let unchanged = onto_base.filter(|_| db.pending_txs() == 0 && db.merge_parents().is_empty());
    if let (Some(base), Confirm::Head) = (unchanged, options.confirm) {
        return Ok(Stored {
            db: db.clone(),
            commit: base,
            stats: StoreStats::default(),
        });
    }
    // The commit and its manifest (the nodes new since its parent), whatever this
    // storage holds.
    let (commit, manifest) = commit_for_at(db, options.time.unwrap_or_else(|| db.commit_clock()))?;
    let to_write = match (options.confirm, onto_base.is_some()) {
        // Onto the base, the storage holds the base's trees: the new nodes are missing.
        (Confirm::Head, true) => None,
        // Without the head, nothing of the db is known to be there: every node (which
        // the manifest already is for a db that never had a commit).
        (Confirm::Head, false) if db.base_commit().is_some() => Some(all_nodes(db)?),
        (Confirm::Head, false) => None,
        (Confirm::Everything, _) => Some(missing_nodes(db, storage).await?),
    };
    let to_write = to_write.as_ref().unwrap_or(&manifest);
    let mut blobs = blobs_of(to_write);
    let stats = StoreStats {
        nodes_written: to_write.nodes.len() as u64,
        large_values_written: to_write.large_values.len() as u64,
        bytes_written: to_write.byte_len() as u64,
        committed: unchanged.is_none(),
    };
    if let Some(base) = unchanged {
        // A repair of the commit the head names: its nodes are all written now, and the
        // head stays where it is.
        put_batched(storage, &blobs).await?;
        return Ok(Stored {
            db: db.clone(),
            commit: base,
            stats,
        });
    }
    let commit_bytes = Bytes::from(commit.encode());
    let commit_address = Address::of(&commit_bytes);
    let commit_len = commit_bytes.len() as u64;
    // The commit goes in the same batched write as its nodes: until the head names it,
    // a commit whose nodes are not all written yet is unreachable, so nothing waits for
    // the nodes but the CAS.
    blobs.push((commit_address, commit_bytes));
    put_batched(storage, &blobs).await?;
    drop(blobs);
    let expected = current.as_ref().map(|h| &h.version);
    // Not retried: a CAS that timed out may have succeeded, and a retry would then fail
    // as a conflict with our own write. The caller re-reads the head instead.
    storage.cas_head(name, expected, commit_address).await?;
    tracing::info!(
        commit = %commit_address,
        onto_base = onto_base.is_some(),
        nodes = stats.nodes_written,
        large_values = stats.large_values_written,
        bytes = stats.bytes_written + commit_len,
        "stored"
    );
    Ok(Stored {
        db: db.committed(commit_address, &commit),
        commit: commit_address,
        stats: StoreStats {
            bytes_written: stats.bytes_written + commit_len,
            ..stats
        },
    })
}

/// Every node of `db` the storage does not list.
async fn missing_nodes<S: Storage + ?Sized>(
    db: &Db,
    storage: &S,
) -> Result<NewNodes, StorageError> {
    let held = listed(storage).await?;
    let mut all = all_nodes(db)?;
    all.nodes.retain(|n| !held.contains(&n.address));
    all.large_values.retain(|v| !held.contains(&v.address()));
    Ok(all)
}

/// What to put: the large values first, then the nodes (children before parents).
fn blobs_of(nodes: &NewNodes) -> Vec<(Address, Bytes)> {
    let large = nodes
        .large_values
        .iter()
        .map(|v| (v.address(), Bytes::from(v.encode())));
    let nodes = nodes
        .nodes
        .iter()
        .map(|n| (n.address, Bytes::from(n.bytes.clone())));
    large.chain(nodes).collect()
}

/// Every blob address the storage holds.
async fn listed<S: Storage + ?Sized>(storage: &S) -> Result<HashSet<Address>, StorageError> {
    const PAGE: usize = 1000;
    let mut out = HashSet::new();
    let mut after = None;
    loop {
        let page = retry(|| storage.list_blobs(after, PAGE)).await?;
        let Some(last) = page.last().copied() else {
            return Ok(out);
        };
        out.extend(page);
        after = Some(last);
    }
}
