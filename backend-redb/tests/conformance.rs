//! backend-redb runs the whole conformance suite on real redb files in temp dirs; reopen
//! really closes the file and opens it again.

use std::sync::Mutex;

use async_trait::async_trait;
use backend_redb::RedbStorage;
use conformance::Factory;
use datoms_storage::StorageError;
use tempfile::TempDir;

/// One temp dir per store, kept until the case ends.
#[derive(Default)]
struct RedbFactory {
    dirs: Mutex<Vec<TempDir>>,
}

#[async_trait]
impl Factory for RedbFactory {
    type Store = RedbStorage;

    async fn create(&self) -> Result<RedbStorage, StorageError> {
        let dir = tempfile::tempdir().map_err(StorageError::backend)?;
        let storage = RedbStorage::open(dir.path().join("db.redb"))?;
        self.dirs
            .lock()
            .map_err(|_| StorageError::backend("temp dir list poisoned"))?
            .push(dir);
        Ok(storage)
    }

    async fn reopen(&self, store: RedbStorage) -> Result<RedbStorage, StorageError> {
        let path = store.path().to_path_buf();
        drop(store);
        RedbStorage::open(path)
    }
}

conformance::suite!(RedbFactory::default());
