//! A peer that follows its head: as other writers move it, the peer pulls their commits
//! and rebases its pending work on them, without waiting for a local write or a push.

use std::sync::{Arc, Mutex};

use crate::follow::{FollowOptions, HeadWatch};

use super::{Peer, RebaseReport};

impl Peer {
    /// Keeps this peer current with its head in the background (on the current tokio
    /// runtime): waits for the head to move — through the backend's change signal when
    /// it has one, else by polling with idle backoff and jitter ([`FollowOptions`]) — and
    /// then [`Peer::pull`]s, so the local db shows what other writers stored, with the
    /// pending transactions rebased on it (listeners see each difference). A pull always
    /// goes to the head as it is then, so the peer never moves back to an older commit,
    /// and one that the peer's own push made is a no-op. Failures are kept
    /// ([`PeerFollow::last_error`]) and retried at the next move or poll.
    ///
    /// Stops when the handle is dropped.
    pub fn spawn_follow(self: &Arc<Self>, options: FollowOptions) -> PeerFollow {
        let peer = self.clone();
        let state = Arc::new(Mutex::new(FollowState::default()));
        let out = state.clone();
        let task = tokio::spawn(async move {
            let mut watch = HeadWatch::new(peer.storage().clone(), peer.head(), options);
            loop {
                let known = peer.base_db().base_commit();
                let moved = watch.next_move(known).await;
                let result = match moved {
                    Ok(_) => peer.pull().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let failed = result.is_err();
                if let Ok(mut s) = out.lock() {
                    match result {
                        Ok(report) => {
                            s.pulls += 1;
                            s.last = Some(report);
                            s.last_error = None;
                        }
                        Err(e) => s.last_error = Some(e),
                    }
                }
                // After a pull the next round's head read finds whether the head moved
                // again meanwhile (and waits if not); after a failure, not at once
                // again: the next poll (or signal) retries.
                if failed {
                    watch.wait().await;
                }
            }
        });
        PeerFollow { task, state }
    }
}

#[derive(Debug, Default)]
struct FollowState {
    pulls: u64,
    last: Option<RebaseReport>,
    last_error: Option<String>,
}

/// A peer following its head ([`Peer::spawn_follow`]); stops when dropped.
#[derive(Debug)]
pub struct PeerFollow {
    task: tokio::task::JoinHandle<()>,
    state: Arc<Mutex<FollowState>>,
}

impl PeerFollow {
    /// Pulls done so far (one per move of the head seen).
    pub fn pulls(&self) -> u64 {
        self.state.lock().map(|s| s.pulls).unwrap_or(0)
    }

    /// The report of the last pull (what landed, what was rejected on the rebase).
    pub fn last_report(&self) -> Option<RebaseReport> {
        self.state.lock().ok().and_then(|s| s.last.clone())
    }

    /// The last failure, if the last round failed (it is retried at the next one).
    pub fn last_error(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.last_error.clone())
    }

    /// Stops following.
    pub fn stop(self) {}
}

impl Drop for PeerFollow {
    fn drop(&mut self) {
        self.task.abort();
    }
}
