//! Which of a peer's transactions landed: read from the tx logs of the commits between a
//! head and the commit up to which the peer last checked.

use std::collections::HashSet;

use datoms_core::{Address, Commit};

use super::outbox::seq_of;
use crate::batch::get_all;
use crate::error::StorageError;
use crate::storage::Storage;

/// What a walk found and what it cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Landed {
    /// Sequence numbers of this origin's transactions found in the commits walked.
    pub(crate) seqs: HashSet<u64>,
    /// Commits read.
    pub(crate) commits: u64,
    /// Requests (each a batch of up to [`datoms_core::commit::ANCESTORS`] + 1 commits).
    pub(crate) round_trips: u64,
    /// Bytes read.
    pub(crate) bytes: u64,
}

/// The transactions of `origin` recorded in `from` and its ancestors down to `stop`
/// (excluded). Each commit lists its parent and 8 more ancestors, so the walk reads up to
/// 9 commits per request. `stop` not on the way (the head was reset to another lineage,
/// or `None`) walks to the first commit.
///
/// # Errors
/// Fetch errors, a missing or damaged commit, a malformed log.
pub(crate) async fn landed_between<S: Storage + ?Sized>(
    storage: &S,
    from: Address,
    stop: Option<Address>,
    origin: [u8; 8],
) -> Result<Landed, StorageError> {
    let mut out = Landed::default();
    if Some(from) == stop {
        return Ok(out);
    }
    let mut next = vec![from];
    let mut reached_stop = false;
    while !next.is_empty() {
        let blobs = get_all(storage, &next).await?;
        out.round_trips += 1;
        let mut last = None;
        for (address, bytes) in next.iter().zip(blobs) {
            out.commits += 1;
            out.bytes += bytes.len() as u64;
            let commit = Commit::decode(*address, &bytes)?;
            for entry in commit.log_entries()? {
                if let Some(seq) = entry.id.and_then(|id| seq_of(origin, id)) {
                    out.seqs.insert(seq);
                }
            }
            last = Some(commit);
        }
        // The oldest commit read names the next ones, oldest last.
        next = match last {
            Some(c) if !reached_stop => {
                let lineage: Vec<Address> = c.parent.into_iter().chain(c.ancestors).collect();
                let before_stop: Vec<Address> = lineage
                    .iter()
                    .copied()
                    .take_while(|a| Some(*a) != stop)
                    .collect();
                reached_stop = before_stop.len() < lineage.len();
                before_stop
            }
            _ => Vec::new(),
        };
    }
    Ok(out)
}
