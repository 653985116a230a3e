//! The conformance suite on S3: every case against a real S3-compatible server on
//! loopback (moto, started by the harness), or against `DATOMS_S3_URL` when set. Each
//! store is a fresh prefix in one bucket.

mod common;

use async_trait::async_trait;
use backend_s3::S3Storage;
use datoms_storage::StorageError;

/// The conformance factory: a fresh prefix per store; reopen drops the storage (its
/// connections and "known stored" set) and connects to the same prefix again.
pub struct S3Factory;

#[async_trait]
impl conformance::Factory for S3Factory {
    type Store = S3Storage;

    async fn create(&self) -> Result<S3Storage, StorageError> {
        common::fresh_store().await
    }

    async fn reopen(&self, store: S3Storage) -> Result<S3Storage, StorageError> {
        let options = store.options().clone();
        drop(store);
        S3Storage::connect(options).await
    }
}

conformance::suite!(S3Factory);
