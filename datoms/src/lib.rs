//! `datoms`: an immutable datom database with Datascript semantics whose index trees
//! persist to pluggable storage and restore incrementally — a replica holding db1 gets
//! db2 by fetching only what changed.
//!
//! This facade re-exports the public API of `datoms-core` (values, schema, transactions,
//! index trees, restore/diff machines) and `datoms-storage` (the `Storage` trait and its
//! drivers), and opens a storage from a URL with [`open`] (or [`open_read_only`], for
//! readers that share a file). Backends are cargo features:
//! `redb` (default), `mem` (default), `http` (default: `http(s)://` URLs of a `datoms
//! serve`), `serve` (default: the server), `rocks`, `s3`; picking one is one line in `Cargo.toml`.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = datoms::open("mem:").await?;
//! let db = datoms::Db::new(datoms::Schema::new())
//!     .with_edn(r#"[{:db/id -1 :person/name "Ann"}]"#)?
//!     .db_after;
//! let stored = datoms::store(&db, &*storage, "main").await?;
//! let replica = datoms::restore_from(&datoms::Db::new(datoms::Schema::new()), &*storage, "main").await?;
//! assert_eq!(replica.db.root_addresses(), stored.db.root_addresses());
//! # Ok(()) }
//! ```

mod open;

pub use datoms_core::restore::{Materialize, Mode};
pub use datoms_core::*;
pub use datoms_storage::{
    as_of, history, history_of_commit, materialize, replicate, replicate_with, restore,
    restore_commit, restore_from, since, store, store_with, sync, sync_to_commit, sync_via_log,
    verify, AsOf, At, BlobStamp, Capabilities, Confirm, FaultyStorage, FollowOptions, Follower,
    Head, HeadChanges, HeadHistory, HeadSignal, HeadWatch, IoCounters, MemoryOutbox, MemoryStorage,
    Outbox, OutboxError, Peer, PeerError, PeerFollow, PeerOptions, PushLoop, PushReport,
    RebaseReport, RebaseStats, Rejection, ReplicateOptions, ReplicateStats, Replicated, Restored,
    Storage, StorageError, StoreOptions, StoreStats, Stored, SyncPolicy, SyncRoute, Synced, Update,
    Verified, Version,
};
pub use open::{open, open_read_only, OpenError};

/// The storage layer, whole (drivers, batching, caches, fault injection).
pub use datoms_storage as storage;

#[cfg(feature = "http")]
pub use backend_http::{HttpOptions, HttpStorage};
#[cfg(feature = "redb")]
pub use backend_redb::RedbStorage;
#[cfg(feature = "rocks")]
pub use backend_rocks::RocksStorage;
#[cfg(feature = "s3")]
pub use backend_s3::S3Storage;
/// The HTTP server of `datoms serve`, for embedding it in a program of your own.
#[cfg(feature = "serve")]
pub use datoms_server as server;

/// The README's examples, compiled and run as doc tests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
