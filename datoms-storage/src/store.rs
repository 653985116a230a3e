//! `store`: write what storage lacks, then the commit, then move the head by CAS.
//!
//! The order is what makes it crash-safe: the nodes and the commit that names them (in
//! one batched write: a commit is unreachable until the head names it), and only then the
//! head. A crash or error at any point
//! before the CAS leaves the head on the previous, complete commit; what was written is
//! content-addressed, so a retry rewrites nothing harmful.

use bytes::Bytes;
use datoms_core::addressing::{all_loaded_nodes, unpersisted_nodes, NewNodes};
use datoms_core::{Address, Commit, Db};

use crate::batch::{get_batched, put_batched, retry};
use crate::error::StorageError;
use crate::storage::Storage;

/// What a store wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Tree nodes written.
    pub nodes_written: u64,
    /// Bytes written, nodes and commit.
    pub bytes_written: u64,
    /// True if a commit was written and the head moved.
    pub committed: bool,
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
/// The head must be where `db` came from: at `db`'s base commit, or absent if `db` has
/// none (a new database) — else [`StorageError::HeadConflict`] tells where it is, and
/// nothing is written. Storing a db with no transactions since its base commit writes
/// nothing.
///
/// # Errors
/// [`StorageError::HeadConflict`] if another writer moved the head (before or during the
/// store); [`StorageError::Backend`] if `db` is lazily restored from another storage
/// (materialize it first); write errors. On any error the head is unchanged, unless the
/// error came after the CAS was sent (then the head is at the previous or the new commit,
/// both complete).
pub async fn store<S: Storage + ?Sized>(
    db: &Db,
    storage: &S,
    name: &str,
) -> Result<Stored, StorageError> {
    let current = retry(|| storage.get_head(name)).await?;
    let base = db.base_commit();
    if current.as_ref().map(|h| h.commit) != base && !(current.is_none() && base.is_some()) {
        return Err(StorageError::HeadConflict {
            name: name.to_owned(),
            current,
        });
    }
    if let (Some(head), 0) = (&current, db.pending_txs()) {
        return Ok(Stored {
            db: db.clone(),
            commit: head.commit,
            stats: StoreStats::default(),
        });
    }
    let nodes = nodes_to_write(db, storage).await?;
    let commit = Commit::for_db(db, nodes.addresses());
    let commit_bytes = Bytes::from(commit.encode());
    let commit_address = Address::of(&commit_bytes);
    let commit_len = commit_bytes.len() as u64;
    // The commit goes in the same batched write as its nodes: until the head names it,
    // a commit whose nodes are not all written yet is unreachable, so nothing waits for
    // the nodes but the CAS.
    let blobs: Vec<(Address, Bytes)> = nodes
        .nodes
        .iter()
        .map(|n| (n.address, Bytes::from(n.bytes.clone())))
        .chain(std::iter::once((commit_address, commit_bytes)))
        .collect();
    put_batched(storage, &blobs).await?;
    drop(blobs);
    let expected = current.as_ref().map(|h| &h.version);
    // Not retried: a CAS that timed out may have succeeded, and a retry would then fail
    // as a conflict with our own write. The caller re-reads the head instead.
    storage.cas_head(name, expected, commit_address).await?;
    nodes.mark_persisted();
    Ok(Stored {
        db: db.committed(commit_address, &commit),
        commit: commit_address,
        stats: StoreStats {
            nodes_written: nodes.nodes.len() as u64,
            bytes_written: nodes.byte_len() as u64 + commit_len,
            committed: true,
        },
    })
}

/// The nodes to write: the unpersisted ones when `db` descends from a commit in this
/// storage; every node when its base commit is not here (it came from another storage).
async fn nodes_to_write<S: Storage + ?Sized>(
    db: &Db,
    storage: &S,
) -> Result<NewNodes, StorageError> {
    let Some(base) = db.base_commit() else {
        return Ok(unpersisted_nodes(db));
    };
    let here = get_batched(storage, &[base]).await?;
    if here.first().is_some_and(Option::is_some) {
        return Ok(unpersisted_nodes(db));
    }
    if db.source().is_some() {
        return Err(StorageError::backend(
            "this db was lazily restored from another storage: materialize it before storing it here",
        ));
    }
    Ok(all_loaded_nodes(db))
}
