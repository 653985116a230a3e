//! The conformance suite over `MemoryStorage`.

conformance::suite!(|| async { datoms_storage::MemoryStorage::new() });
