//! Live queries on a peer: its local db's queries, kept current through local
//! transactions, rebases (one net diff from the optimistic state to the rebased one)
//! and resets — all of which go through the peer's [`datoms_core::Conn`].

use datoms_core::live::{LiveInput, PullWatch, Watch};
use datoms_core::query::QueryValue;

use super::{Peer, PeerError};

impl Peer {
    /// Starts a live query on the local db (see [`datoms_core::live`]): the full result
    /// at once, then its diff after every local transaction and every rebase that
    /// changes it — a rebase shows as one diff, from the optimistic state to the
    /// rebased one. Dropping the watch ends it.
    ///
    /// # Errors
    /// [`PeerError::Tx`] for a query or inputs that do not run on the local db.
    pub fn watch(&self, query: &str, inputs: Vec<LiveInput>) -> Result<Watch, PeerError> {
        Ok(self.conn.watch(query, inputs)?)
    }

    /// Starts a live pull of `entity` on the local db: the tree now, then the new tree
    /// whenever a change alters it.
    ///
    /// # Errors
    /// [`PeerError::Tx`] for a bad pattern or entity.
    pub fn watch_pull(&self, pattern: &str, entity: QueryValue) -> Result<PullWatch, PeerError> {
        Ok(self.conn.watch_pull(pattern, entity)?)
    }
}
