//! The conformance suite on RocksDB, with the shipped default configuration: every case
//! gets a fresh database in its own temporary directory, and a reopen really closes the
//! database and opens the same directory again.

use std::sync::Mutex;

use async_trait::async_trait;
use backend_rocks::RocksStorage;
use datoms_storage::StorageError;
use tempfile::TempDir;

/// Makes RocksDB stores in temporary directories, which live as long as the factory (one
/// case).
#[derive(Default)]
struct RocksFactory {
    dirs: Mutex<Vec<TempDir>>,
}

#[async_trait]
impl conformance::Factory for RocksFactory {
    type Store = RocksStorage;

    async fn create(&self) -> Result<RocksStorage, StorageError> {
        let dir = tempfile::tempdir().map_err(StorageError::backend)?;
        let store = RocksStorage::open_async(dir.path(), Default::default()).await?;
        self.dirs
            .lock()
            .map_err(|_| StorageError::backend("temp dir list poisoned"))?
            .push(dir);
        Ok(store)
    }

    async fn reopen(&self, store: RocksStorage) -> Result<RocksStorage, StorageError> {
        let path = store.path().to_path_buf();
        // The suite hands over the only handle: dropping it closes the database and
        // releases its lock, so the open below would fail if anything still held it.
        drop(store);
        RocksStorage::open_async(path, Default::default()).await
    }
}

conformance::suite!(RocksFactory::default());
