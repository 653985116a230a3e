//! [`Factory`]: how the suite gets stores of the backend under test.

use std::future::Future;

use async_trait::async_trait;
use datoms_storage::{Storage, StorageError};

/// Makes stores of the backend under test: a fresh empty one for every case, and the same
/// one again after closing it (the persistence cases need both).
///
/// A plain closure returning a future of a store is a factory whose `reopen` hands the
/// same store back, which is right for in-memory stores:
///
/// ```
/// use datoms_storage::MemoryStorage;
///
/// fn takes_a_factory(_: impl conformance::Factory) {}
/// takes_a_factory(|| async { MemoryStorage::new() });
/// ```
///
/// A backend that keeps its data somewhere (a file, a directory, a bucket) implements the
/// trait so that `reopen` really closes the store and opens the same place again; the
/// crate docs show one over a directory of files.
#[async_trait]
pub trait Factory: Send + Sync {
    /// The store type.
    type Store: Storage;

    /// A fresh, empty store, not shared with any other store this factory made.
    ///
    /// # Errors
    /// Whatever keeps the backend from making a store; the case fails with it.
    async fn create(&self) -> Result<Self::Store, StorageError>;

    /// Closes `store` (the suite hands over its only handle, so dropping it closes it)
    /// and opens the place it kept its data in again.
    ///
    /// # Errors
    /// Whatever keeps the backend from opening the store again; the case fails with it.
    async fn reopen(&self, store: Self::Store) -> Result<Self::Store, StorageError>;
}

#[async_trait]
impl<F, Fut, S> Factory for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = S> + Send,
    S: Storage,
{
    type Store = S;

    async fn create(&self) -> Result<S, StorageError> {
        Ok(self().await)
    }

    /// An in-memory store cannot be closed and opened again: it is handed back as it is.
    async fn reopen(&self, store: S) -> Result<S, StorageError> {
        Ok(store)
    }
}
