//! `store`: write what storage lacks, then the commit, then move the head by CAS.
//!
//! The order is what makes it crash-safe: the nodes and the commit that names them (in
//! one batched write: a commit is unreachable until the head names it), and only then the
//! head. A crash or error at any point
//! before the CAS leaves the head on the previous, complete commit; what was written is
//! content-addressed, so a retry rewrites nothing harmful.

use bytes::Bytes;
use datoms_core::addressing::{all_nodes, new_since_base};
use datoms_core::{Address, Commit, Db};

use crate::batch::{put_batched, retry};
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
    let current = retry(|| storage.get_head(name)).await?;
    let onto_base = match (&current, db.base_commit()) {
        (None, _) => false,
        (Some(head), Some(base)) if head.commit == base => true,
        (Some(_), _) => {
            return Err(StorageError::HeadConflict {
                name: name.to_owned(),
                current,
            })
        }
    };
    if let (Some(head), true, 0) = (&current, onto_base, db.pending_txs()) {
        return Ok(Stored {
            db: db.clone(),
            commit: head.commit,
            stats: StoreStats::default(),
        });
    }
    let manifest = new_since_base(db)?;
    let copied;
    let to_write = if onto_base {
        &manifest
    } else {
        copied = all_nodes(db)?;
        &copied
    };
    let commit = Commit::for_db(db, manifest.addresses());
    let commit_bytes = Bytes::from(commit.encode());
    let commit_address = Address::of(&commit_bytes);
    let commit_len = commit_bytes.len() as u64;
    // The commit goes in the same batched write as its nodes: until the head names it,
    // a commit whose nodes are not all written yet is unreachable, so nothing waits for
    // the nodes but the CAS.
    let blobs: Vec<(Address, Bytes)> = to_write
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
    Ok(Stored {
        db: db.committed(commit_address, &commit),
        commit: commit_address,
        stats: StoreStats {
            nodes_written: to_write.nodes.len() as u64,
            bytes_written: to_write.byte_len() as u64 + commit_len,
            committed: true,
        },
    })
}
