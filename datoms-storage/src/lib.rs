//! `datoms-storage`: where datoms databases live. The [`Storage`] trait (batched blobs
//! and CAS-moved heads), the drivers that run `datoms-core`'s sans-IO algorithms against
//! it — [`store()`], lazy [`restore()`], incremental [`restore_from`], [`sync()`] by log replay
//! or tree restore, [`materialize`], [`Follower`] (a change feed of a head, one update per
//! commit) and [`replicate()`] (a head copied between storages), [`export_static`] (a directory any
//! static web host can serve to HTTP replicas) — the in-memory backend,
//! [`FaultyStorage`], the fault-injecting wrapper tests and benchmarks use; and the
//! [`Peer`], a local-first writer with a durable outbox whose transactions land exactly
//! once.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")] async fn main() -> Result<(), datoms_storage::StorageError> {
//! use std::sync::Arc;
//! use datoms_core::{Db, Schema};
//! use datoms_storage::{restore_from, store, MemoryStorage, Storage};
//!
//! let storage = Arc::new(MemoryStorage::new());
//! let db = Db::new(Schema::new()).with_edn(r#"[{:db/id -1 :person/name "Ann"}]"#)?.db_after;
//! let stored = store(&db, &*storage, "main").await?;
//! let replica = restore_from(&Db::new(Schema::new()), &*storage, "main").await?;
//! assert_eq!(replica.db.root_addresses(), stored.db.root_addresses());
//! # Ok(()) }
//! ```

pub mod as_of;
pub mod batch;
pub mod bundle;
pub mod cache;
pub mod error;
pub mod faulty;
pub mod follow;
pub mod gc;
pub mod history;
pub mod large;
pub mod memory;
pub mod merge;
mod pause;
pub mod peer;
pub mod replicate;
pub mod restore;
pub mod runtime;
pub mod signal;
pub mod source;
pub mod static_host;
pub mod storage;
pub mod store;
pub mod sync;
pub mod verify;

pub use as_of::{as_of, since, AsOf, At};
pub use bundle::{BundleLimits, BundleMaker};
pub use cache::NodeCache;
pub use error::StorageError;
pub use faulty::{FailOn, Faults, FaultyStorage, InjectedFaults, IoCounters};
pub use follow::{FollowOptions, Follower, HeadWatch, Update};
pub use gc::{gc, gc_with, GcOptions, GcPhase, GcProgress, GcReport, Retention};
pub use history::{history, history_of_commit, HeadHistory};
pub use memory::MemoryStorage;
pub use merge::{common_ancestor, merge, MergeKind, MergeOutcome};
pub use peer::{
    MemoryOutbox, Outbox, OutboxError, Peer, PeerError, PeerFollow, PeerOptions, PushLoop,
    PushReport, RebaseReport, RebaseStats, Rejection,
};
pub use replicate::{replicate, replicate_with, ReplicateOptions, ReplicateStats, Replicated};
pub use restore::{materialize, restore, restore_commit, restore_from, Restored};
pub use runtime::{catch_panics, IoRuntime, Panic};
pub use signal::{HeadChanges, HeadSignal};
pub use source::StorageSource;
pub use static_host::{export_static, Exported};
pub use storage::{BlobStamp, Capabilities, Head, Storage, SyncBundle, Version};
pub use store::{store, store_with, Confirm, StoreOptions, StoreStats, Stored};
pub use sync::{sync, sync_to_commit, sync_via_log, SyncPolicy, SyncRoute, Synced};
pub use verify::{verify, Verified};

pub use datoms_core::{Address, Db, RestoreStats};
