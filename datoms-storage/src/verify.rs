//! `verify`: read everything a head reaches and check it, so damage is found before a
//! replica needs the node or replays the log.

use datoms_core::restore::Mode;
use datoms_core::{Address, Commit};

use crate::batch::get_batched;
use crate::error::StorageError;
use crate::restore::{read_head, restore_commit};
use crate::storage::Storage;

/// What [`verify()`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The commit the head names.
    pub commit: Address,
    /// Nodes read and checked.
    pub nodes: u64,
    /// Bytes read (nodes and commit).
    pub bytes: u64,
    /// Datoms in the head's db.
    pub datoms: u64,
}

/// Reads the commit head `name` names and every node its trees reach, checking each
/// against its address and its parent's entry, and decodes the commit's tx log.
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
    Commit::decode(head, &blob)?.log_entries()?;
    Ok(Verified {
        commit: head,
        nodes: restored.stats.nodes_fetched,
        bytes: restored.stats.bytes_fetched,
        datoms: restored.db.len(),
    })
}
