//! Runs the scenario examples (`datoms/examples/`) as tests, so they never rot: each
//! example's `run` is called with a short interval and what it reports is checked. The
//! same sources build the `cargo run --example …` programs.

#[allow(dead_code)]
#[path = "../examples/collab.rs"]
mod collab;
#[allow(dead_code)]
#[path = "../examples/offline.rs"]
mod offline;
#[allow(dead_code)]
#[path = "../examples/replica.rs"]
mod replica;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_catches_up_fetching_less_than_a_full_restore() {
    let dir = tempfile::tempdir().unwrap();
    let summary = replica::run(replica::Options {
        url: format!("redb:{}", dir.path().join("catalog.datoms").display()),
        interval: Duration::from_millis(50),
        rounds: 4,
    })
    .await
    .unwrap();
    assert_eq!(
        summary.replica, summary.primary,
        "the replica ends at the primary's last version"
    );
    assert!(
        !summary.rounds.is_empty(),
        "the replica caught up at least once"
    );
    // However the rounds fell (a slow machine catches up over several commits at once),
    // each catch-up fetched less than a full restore, and all of them together less than
    // one full restore: the replica fetched about what the primary wrote since its start.
    for round in &summary.rounds {
        assert!(
            round.incremental.nodes_fetched < round.full.nodes_fetched,
            "an incremental catch-up fetched {} nodes, a full restore {}",
            round.incremental.nodes_fetched,
            round.full.nodes_fetched
        );
    }
    let fetched: u64 = summary
        .rounds
        .iter()
        .map(|r| r.incremental.bytes_fetched)
        .sum();
    let full = summary.rounds.last().map_or(0, |r| r.full.bytes_fetched);
    assert!(
        fetched < full,
        "the catch-ups fetched {fetched} bytes in all, a full restore of the last version {full}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_writes_land_once_and_a_stale_cas_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let summary = offline::run(dir.path()).await.unwrap();
    assert_eq!(
        summary.notes, 1,
        "the note written offline landed exactly once"
    );
    assert_eq!(summary.stock, 8, "the online sale stands");
    assert_eq!(
        summary.rejected.len(),
        1,
        "the stale :db/cas is reported: {:?}",
        summary.rejected
    );
    assert!(summary.same_roots, "both peers end at the same version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collaborators_converge_to_the_same_roots() {
    let dir = tempfile::tempdir().unwrap();
    let summary = collab::run(dir.path()).await.unwrap();
    for roots in &summary.roots {
        assert_eq!(*roots, summary.head, "every peer holds the head's version");
    }
    // Nine items added, two of them by two people each.
    assert_eq!(summary.items, 7);
}
