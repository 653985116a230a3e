//! The conformance suite over `MemoryStorage` behind `FaultyStorage` with a millisecond
//! of latency per request: every request yields to the runtime, so races interleave the
//! way they do against a remote store.

use std::time::Duration;

use datoms_storage::{FaultyStorage, MemoryStorage};

conformance::suite!(|| async {
    let storage = FaultyStorage::new(MemoryStorage::new());
    storage.faults().set_latency(Duration::from_millis(1));
    storage
});
