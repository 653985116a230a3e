//! `verify`: read everything a head reaches and check it, so damage is found before a
//! replica needs the node or replays the log.

use datoms_core::restore::Mode;
use datoms_core::{Address, Commit, LargeValue};

use crate::batch::get_batched;
use crate::error::StorageError;
use crate::large::{decode_fetching, take};
use crate::restore::{read_head, restore_commit};
use crate::storage::Storage;

/// What [`verify()`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The commit the head names.
    pub commit: Address,
    /// Nodes read and checked.
    pub nodes: u64,
    /// Large values (stored out of line) read and checked.
    pub large_values: u64,
    /// Bytes read (nodes, large values and commit).
    pub bytes: u64,
    /// Datoms in the head's db.
    pub datoms: u64,
}

/// Reads the commit head `name` names and every node its trees reach, checking each
/// against its address and its parent's entry, reads every large value the nodes and the
/// commit's tx log reference (each checked against its address, even one this process
/// already holds), and decodes the tx log.
///
/// # Errors
/// [`StorageError::NoHead`]; the first missing node or blob
/// ([`datoms_core::Error::NodeUnavailable`] inside [`StorageError::Core`], naming its
/// address); corrupt or misplaced nodes; a malformed commit or log; backend errors.
#[tracing::instrument(level = "info", skip_all, fields(head = name))]
pub async fn verify<S: Storage + ?Sized>(
    storage: &S,
    name: &str,
) -> Result<Verified, StorageError> {
    let head = read_head(storage, name).await?;
    let restored = restore_commit(storage, head, None, Mode::Eager).await?;
    let blob = get_batched(storage, &[head])
        .await?
        .pop()
        .flatten()
        .ok_or(StorageError::NotFound { address: head })?;
    let commit = Commit::decode(head, &blob)?;
    let (log, _) = decode_fetching(storage, || commit.log_entries()).await?;
    // Every large value referenced, read from this storage: a restore takes one this
    // process holds from memory, which proves nothing about the storage.
    // The restore was eager: every node is in memory, read without encoding any again.
    let mut large: Vec<Address> = restored
        .db
        .loaded_nodes()
        .iter()
        .flat_map(|n| n.large_values())
        .map(|v| v.address())
        .collect();
    let in_log = log.iter().flat_map(|e| &e.datoms);
    large.extend(
        in_log
            .filter_map(|d| LargeValue::adopt(&d.v))
            .map(|v| v.address()),
    );
    large.sort_unstable();
    large.dedup();
    let checked = take(&large, get_batched(storage, &large).await?)?;
    Ok(Verified {
        commit: head,
        nodes: restored.stats.nodes_fetched,
        large_values: large.len() as u64,
        bytes: restored.stats.bytes_fetched + checked.bytes,
        datoms: restored.db.len(),
    })
}
