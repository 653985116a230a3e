//! The suite catches broken backends: each flaw a real backend could have makes the
//! cases that guard against it fail. A case that passed on every one of these would be
//! checking nothing.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use conformance::cases::{contract, database, runtimes};
use conformance::{Factory, Failure};
use datoms_core::Address;
use datoms_storage::{Head, MemoryStorage, Storage, StorageError, Version};

/// One flaw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    /// A CAS moves the head whatever version it names.
    CasIgnoresVersion,
    /// A refused CAS does not say where the head is.
    ConflictHidesHead,
    /// An absent blob reads as empty bytes.
    MissingReadsAsEmpty,
    /// Reads come back in another order than asked.
    ReadsReordered,
    /// A batch of more than three blobs loses its last one.
    LosesLastBlobOfBatch,
    /// Listing ignores `after` and starts over.
    ListIgnoresAfter,
    /// Deletes do nothing.
    DeleteDoesNothing,
    /// A head delete removes the head whatever version it names.
    DeleteHeadIgnoresVersion,
    /// Reopening gives an empty store.
    ReopenForgets,
    /// Reads run as tasks of the runtime the store was opened in (as an HTTP client
    /// whose pooled connections are driven there), which may be gone.
    BoundToOpeningRuntime,
}

#[derive(Debug)]
struct Broken {
    inner: Arc<MemoryStorage>,
    flaw: Flaw,
    /// The runtime `create` ran in.
    opened_in: tokio::runtime::Handle,
}

#[async_trait]
impl Storage for Broken {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        if self.flaw == Flaw::BoundToOpeningRuntime {
            let (inner, addresses) = (self.inner.clone(), addresses.to_vec());
            return self
                .opened_in
                .spawn(async move { inner.get_many(&addresses).await })
                .await
                .map_err(StorageError::backend)?;
        }
        let mut got = self.inner.get_many(addresses).await?;
        match self.flaw {
            Flaw::MissingReadsAsEmpty => {
                for g in got.iter_mut().filter(|g| g.is_none()) {
                    *g = Some(Bytes::new());
                }
            }
            Flaw::ReadsReordered => got.sort_by_key(|g| g.as_ref().map(Bytes::len)),
            _ => {}
        }
        Ok(got)
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        if self.flaw == Flaw::LosesLastBlobOfBatch && blobs.len() > 3 {
            return self.inner.put_many(&blobs[..blobs.len() - 1]).await;
        }
        self.inner.put_many(blobs).await
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        self.inner.get_head(name).await
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        match self.flaw {
            Flaw::CasIgnoresVersion => {
                let current = self.inner.get_head(name).await?.map(|h| h.version);
                self.inner.cas_head(name, current.as_ref(), new).await
            }
            Flaw::ConflictHidesHead => match self.inner.cas_head(name, expected, new).await {
                Err(StorageError::HeadConflict { name, .. }) => Err(StorageError::HeadConflict {
                    name,
                    current: None,
                }),
                other => other,
            },
            _ => self.inner.cas_head(name, expected, new).await,
        }
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.inner.list_heads().await
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        if self.flaw == Flaw::DeleteHeadIgnoresVersion {
            if let Some(current) = self.inner.get_head(name).await? {
                return self.inner.delete_head(name, &current.version).await;
            }
        }
        self.inner.delete_head(name, expected).await
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        let after = if self.flaw == Flaw::ListIgnoresAfter {
            None
        } else {
            after
        };
        self.inner.list_blobs(after, limit).await
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        if self.flaw == Flaw::DeleteDoesNothing {
            return Ok(());
        }
        self.inner.delete_many(addresses).await
    }
    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<datoms_storage::BlobStamp>, StorageError> {
        self.inner.list_blob_stamps(after, limit).await
    }
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        if self.flaw == Flaw::DeleteDoesNothing {
            return Ok(Vec::new());
        }
        self.inner.delete_stale(addresses, written_before).await
    }
}

struct BrokenFactory(Flaw);

#[async_trait]
impl Factory for BrokenFactory {
    type Store = Broken;

    async fn create(&self) -> Result<Broken, StorageError> {
        Ok(Broken {
            inner: Arc::new(MemoryStorage::new()),
            flaw: self.0,
            opened_in: tokio::runtime::Handle::current(),
        })
    }

    async fn reopen(&self, store: Broken) -> Result<Broken, StorageError> {
        if self.0 == Flaw::ReopenForgets {
            return self.create().await;
        }
        Ok(store)
    }
}

/// Fails unless the case failed.
fn caught(case: &str, result: Result<(), Failure>) {
    assert!(result.is_err(), "{case} passed on a broken backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cas_that_ignores_the_version_is_caught() {
    let f = BrokenFactory(Flaw::CasIgnoresVersion);
    caught(
        "cas_creates",
        contract::cas_creates_a_head_only_if_absent(&f).await,
    );
    caught(
        "stale cas",
        contract::cas_with_a_stale_version_fails_and_shows_the_current_head(&f).await,
    );
    caught(
        "racing cas",
        contract::racing_cas_lets_exactly_one_writer_win(&f).await,
    );
    caught(
        "cas counter",
        contract::cas_counter_reaches_n_with_n_racing_incrementers(&f).await,
    );
    caught(
        "racing writers",
        database::racing_writers_each_land_exactly_once_after_retries(&f).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_that_hides_the_head_is_caught() {
    let f = BrokenFactory(Flaw::ConflictHidesHead);
    caught(
        "cas_creates",
        contract::cas_creates_a_head_only_if_absent(&f).await,
    );
    caught(
        "racing cas",
        contract::racing_cas_lets_exactly_one_writer_win(&f).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_blobs_read_as_empty_bytes_are_caught() {
    let f = BrokenFactory(Flaw::MissingReadsAsEmpty);
    caught("missing", contract::missing_address_reads_as_none(&f).await);
    caught(
        "missing node",
        database::missing_node_gives_a_typed_error_naming_it(&f).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_in_the_wrong_order_are_caught() {
    let f = BrokenFactory(Flaw::ReadsReordered);
    caught(
        "round trip",
        contract::round_trip_returns_the_bytes_stored(&f).await,
    );
    caught(
        "property",
        database::incremental_restore_equals_full_restore_and_log_replay(&f).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_write_is_caught() {
    let f = BrokenFactory(Flaw::LosesLastBlobOfBatch);
    caught(
        "large batches",
        contract::large_batches_round_trip(&f).await,
    );
    caught(
        "property",
        database::incremental_restore_equals_full_restore_and_log_replay(&f).await,
    );
    caught(
        "torn put",
        database::store_is_idempotent_after_a_torn_put(&f).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_that_ignores_after_is_caught() {
    let f = BrokenFactory(Flaw::ListIgnoresAfter);
    caught(
        "listing",
        contract::list_pages_through_every_blob_and_delete_removes(&f).await,
    );
    caught(
        "torn put",
        database::store_is_idempotent_after_a_torn_put(&f).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_that_do_nothing_are_caught() {
    let f = BrokenFactory(Flaw::DeleteDoesNothing);
    caught(
        "listing",
        contract::list_pages_through_every_blob_and_delete_removes(&f).await,
    );
    caught("reopen", contract::data_survives_reopen(&f).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_ignores_the_version_is_caught() {
    let f = BrokenFactory(Flaw::DeleteHeadIgnoresVersion);
    caught(
        "delete heads",
        contract::heads_are_listed_and_deleted_by_compare_and_delete(&f).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopen_that_forgets_is_caught() {
    let f = BrokenFactory(Flaw::ReopenForgets);
    caught("reopen", contract::data_survives_reopen(&f).await);
    caught("db reopen", database::stored_db_survives_reopen(&f).await);
    caught(
        "heads after reopen",
        contract::heads_are_listed_and_deleted_by_compare_and_delete(&f).await,
    );
}

/// Only the case that drops the opening runtime: the others would wait for a runtime
/// that is blocked or idle until their deadline, which catches it too, but slowly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_bound_to_its_opening_runtime_is_caught() {
    let f = BrokenFactory(Flaw::BoundToOpeningRuntime);
    caught(
        "runtime dropped",
        runtimes::a_lazy_db_reads_after_the_runtime_that_restored_it_is_dropped(&f).await,
    );
}
