//! The change signal: an optional capability of a backend that knows, in this process,
//! the moment a head moves through it (an embedded file or memory: every writer in the
//! process goes through the one open handle). Followers wait on it beside their poll
//! timer, so an update reaches them at once instead of at the next poll; moves it cannot
//! see (another process, another handle) are still found by polling.
//!
//! A backend offers it by holding a [`HeadSignal`], calling [`HeadSignal::moved`] after
//! every successful `cas_head`, and returning [`HeadSignal::subscribe`] from
//! [`Storage::head_changes`](crate::Storage::head_changes). The trait method has a default
//! (`None`: no signal), so backends written before it keep compiling and are followed
//! by polling alone.

use std::sync::Arc;

use tokio::sync::watch;

/// The sending side of a change signal, kept by a backend. Cheap to clone: clones share
/// one signal.
#[derive(Clone, Debug)]
pub struct HeadSignal {
    moves: Arc<watch::Sender<u64>>,
}

impl Default for HeadSignal {
    fn default() -> HeadSignal {
        HeadSignal::new()
    }
}

impl HeadSignal {
    /// A signal nobody listens to yet.
    pub fn new() -> HeadSignal {
        HeadSignal {
            moves: Arc::new(watch::channel(0).0),
        }
    }

    /// Tells every subscriber that a head moved (call after the move is durable).
    pub fn moved(&self) {
        self.moves.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver woken by every later [`HeadSignal::moved`].
    pub fn subscribe(&self) -> HeadChanges {
        HeadChanges {
            moves: self.moves.subscribe(),
        }
    }
}

/// The receiving side of a change signal ([`Storage::head_changes`](crate::Storage::head_changes)).
///
/// Subscribe before reading the head: a move between the subscription and the read
/// wakes the receiver once more (harmless), while a move between a read and a later
/// subscription would not wake it at all.
#[derive(Debug)]
pub struct HeadChanges {
    moves: watch::Receiver<u64>,
}

impl HeadChanges {
    /// Waits until a head of the storage moved since the last call (or the
    /// subscription). Any head: the caller reads the one it follows. Returns `false`
    /// when the storage is gone and no move will ever come; the caller then polls.
    pub async fn changed(&mut self) -> bool {
        self.moves.changed().await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_move_wakes_every_subscriber_once() {
        let signal = HeadSignal::new();
        let (mut a, mut b) = (signal.subscribe(), signal.subscribe());
        signal.moved();
        signal.moved();
        assert!(a.changed().await);
        assert!(b.changed().await);
        // Both moves were seen by the one wake-up: nothing is pending.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), a.changed());
        assert!(pending.await.is_err());
        drop(signal);
        assert!(!b.changed().await);
    }
}
