//! Polling keeps its rate: a head read that takes time (S3's round trip) does not
//! stretch the poll period, so a move is seen within one interval of happening plus
//! the step itself — the bound issue #15 sets on follow latency.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use datoms_storage::{FaultyStorage, FollowOptions, HeadWatch, MemoryStorage, Storage};

#[tokio::test(start_paused = true)]
async fn slow_head_reads_do_not_stretch_the_poll_period() {
    let storage = FaultyStorage::new(MemoryStorage::new());
    // Each request takes 15 ms, most of a 20 ms interval.
    storage.faults().set_latency(Duration::from_millis(15));
    let storage: Arc<dyn Storage> = Arc::new(storage);
    let poll = Duration::from_millis(20);
    let options = FollowOptions {
        poll,
        max_poll: poll,
        jitter: 0.0,
        ..FollowOptions::default()
    };
    let mut watch = HeadWatch::new(storage, "main", options);
    let start = tokio::time::Instant::now();
    let polls = 10;
    for _ in 0..polls {
        assert_eq!(watch.read().await.unwrap(), None);
        watch.wait().await;
    }
    let took = start.elapsed();
    // A fixed rate: one interval per poll (the timer asks a tick early). Adding each
    // read's 15 ms to the period would take 10 × 34 ms.
    assert!(
        took <= poll * polls,
        "{polls} polls took {took:?}, more than {polls} intervals of {poll:?}"
    );
    assert!(
        took >= (poll - Duration::from_millis(1)) * (polls - 1),
        "polls came faster than the interval: {took:?}"
    );
}
