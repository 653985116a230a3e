//! Waiting for a file another process holds, and sharing a file with its writers.
//!
//! redb and RocksDB lock their files to one process: a writer needs a redb file alone
//! (readers share it with each other, not with a writer), and a RocksDB directory has
//! one writer. So two commands on one file would make the second fail at once with
//! "in use". Instead a command **waits for the lock**, bounded by `--lock-wait` seconds
//! (`DATOMS_LOCK_WAIT`, default 30), saying once on stderr that it waits: concurrent
//! commands on one file then run one after the other and all land (each reads the head
//! after it has the file, so none writes over another).
//!
//! A command that runs for a long time (`follow`, `sync --follow`) would keep every
//! writer out for as long as it runs; it reads a local file through [`SharedFile`]
//! instead, which opens the file read-only for each request and closes it again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use datoms::{Address, Head, Storage, StorageError, Version};

use super::output::Ctx;
use super::CliError;

/// Default of `--lock-wait`, in seconds.
pub const DEFAULT_LOCK_WAIT_SECONDS: u64 = 30;

/// The pause between two tries while a file is in use (a little jitter keeps waiting
/// processes from retrying in step).
fn pause(tries: u32) -> Duration {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let nanos = clock ^ std::process::id().wrapping_mul(2_654_435_761);
    Duration::from_millis(10 + u64::from(tries.min(4)) * 10 + u64::from(nanos % 20))
}

/// Whether the storage at `url` is opened to write or only to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `datoms::open`.
    Write,
    /// `datoms::open_read_only`.
    Read,
}

/// Opens `url`, waiting up to `wait` while another process holds it
/// (`StorageError::InUse`), with one message on stderr (none under `--json`).
///
/// # Errors
/// [`CliError::StillInUse`] when the wait runs out; any other open error at once.
pub async fn open_waiting(
    url: &str,
    access: Access,
    wait: Duration,
    ctx: &Ctx,
) -> Result<Arc<dyn Storage>, CliError> {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        let opened = match access {
            Access::Write => datoms::open(url).await,
            Access::Read => datoms::open_read_only(url).await,
        };
        match opened {
            Err(datoms::OpenError::Storage(e @ StorageError::InUse { .. })) => {
                if started.elapsed() >= wait {
                    return Err(CliError::StillInUse {
                        url: url.to_owned(),
                        seconds: wait.as_secs(),
                        source: Box::new(e),
                    });
                }
                if tries == 0 && !ctx.json && !ctx.quiet_waits {
                    eprintln!(
                        "waiting for {url}: another process has it open (up to {} s, --lock-wait)",
                        wait.as_secs()
                    );
                }
                tries += 1;
                tokio::time::sleep(pause(tries)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// True for URLs of files a process locks (`redb:`, `rocksdb:`).
pub fn is_locked_file(url: &str) -> bool {
    url.starts_with("redb:") || url.starts_with("rocksdb:")
}

/// A locked file read without keeping it: every request opens it read-only (waiting
/// while a writer has it), runs, and closes it, so writers in other processes get the
/// file between requests. Writes are refused (`ReadOnly`).
#[derive(Debug)]
pub struct SharedFile {
    url: String,
    wait: Duration,
}

impl SharedFile {
    /// Reads of `url`, each waiting up to `wait` for a writer to finish.
    pub fn new(url: &str, wait: Duration) -> SharedFile {
        SharedFile {
            url: url.to_owned(),
            wait,
        }
    }

    async fn open(&self) -> Result<Arc<dyn Storage>, StorageError> {
        let quiet = Ctx::quiet();
        match open_waiting(&self.url, Access::Read, self.wait, &quiet).await {
            Ok(s) => Ok(s),
            Err(CliError::StillInUse { source, .. }) => Err(*source),
            Err(CliError::Open(datoms::OpenError::Storage(e))) => Err(e),
            Err(e) => Err(StorageError::backend(e)),
        }
    }

    fn read_only(&self, operation: &str) -> StorageError {
        StorageError::ReadOnly {
            what: self.url.clone(),
            operation: operation.to_owned(),
        }
    }
}

#[async_trait]
impl Storage for SharedFile {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        self.open().await?.get_many(addresses).await
    }
    async fn put_many(&self, _blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        Err(self.read_only("put_many"))
    }
    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        self.open().await?.get_head(name).await
    }
    async fn cas_head(
        &self,
        _name: &str,
        _expected: Option<&Version>,
        _new: Address,
    ) -> Result<Version, StorageError> {
        Err(self.read_only("cas_head"))
    }
    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.open().await?.list_heads().await
    }
    async fn delete_head(&self, _name: &str, _expected: &Version) -> Result<(), StorageError> {
        Err(self.read_only("delete_head"))
    }
    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        self.open().await?.list_blobs(after, limit).await
    }
    async fn delete_many(&self, _addresses: &[Address]) -> Result<(), StorageError> {
        Err(self.read_only("delete_many"))
    }
    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<datoms_storage::BlobStamp>, StorageError> {
        self.open().await?.list_blob_stamps(after, limit).await
    }
    async fn delete_stale(
        &self,
        _addresses: &[Address],
        _written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        Err(self.read_only("delete_stale"))
    }
}
