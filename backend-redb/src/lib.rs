//! `backend-redb`: the embedded default storage of datoms — one redb file.
//!
//! Two tables: `blobs` (address → node or commit bytes) and `heads` (name → commit
//! address and version). A head CAS reads, compares and writes inside one redb write
//! transaction, and redb runs one write transaction at a time, so it is atomic; every
//! commit is durable (fsync) before `put_many` or `cas_head` returns. Reads of a batch
//! share one read transaction. All redb calls run on tokio's blocking pool, never on the
//! async runtime's threads.
//!
//! ```no_run
//! # async fn demo() -> Result<(), datoms_storage::StorageError> {
//! let storage = backend_redb::RedbStorage::open("my.datoms")?;
//! # Ok(()) }
//! ```

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::Address;
use datoms_storage::{Head, Storage, StorageError, Version};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
const HEADS: TableDefinition<&str, (&[u8; 32], u64)> = TableDefinition::new("heads");

/// A [`Storage`] in one redb file.
#[derive(Clone)]
pub struct RedbStorage {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStorage")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbStorage {
    /// Opens the redb file at `path`, creating it (and its tables) if needed.
    ///
    /// # Errors
    /// [`StorageError::Backend`] naming the path if the file cannot be opened or created
    /// (e.g. it is not a redb file, or another process holds it).
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStorage, StorageError> {
        let path = path.as_ref().to_path_buf();
        let err = |e: &dyn std::fmt::Display| {
            StorageError::backend(format!("redb file {}: {e}", path.display()))
        };
        let db = Database::create(&path).map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(BLOBS).map_err(|e| err(&e))?;
        txn.open_table(HEADS).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        Ok(RedbStorage {
            db: Arc::new(db),
            path,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking redb work on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StorageError::backend(format!("redb worker failed: {e}")))?
    }
}

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::backend(format!("redb: {e}"))
}

#[async_trait]
impl Storage for RedbStorage {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        let addresses = addresses.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(BLOBS).map_err(backend)?;
            addresses
                .iter()
                .map(|a| {
                    Ok(table
                        .get(&a.0)
                        .map_err(backend)?
                        .map(|v| Bytes::copy_from_slice(v.value())))
                })
                .collect()
        })
        .await
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        let blobs = blobs.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(BLOBS).map_err(backend)?;
                for (a, b) in &blobs {
                    if table.get(&a.0).map_err(backend)?.is_none() {
                        table.insert(&a.0, b.as_ref()).map_err(backend)?;
                    }
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(HEADS).map_err(backend)?;
            Ok(table.get(name.as_str()).map_err(backend)?.map(|v| {
                let (addr, version) = v.value();
                Head {
                    commit: Address(*addr),
                    version: Version(version.to_string()),
                }
            }))
        })
        .await
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        let name = name.to_owned();
        let expected = expected.cloned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let version = {
                let mut table = txn.open_table(HEADS).map_err(backend)?;
                let current = table.get(name.as_str()).map_err(backend)?.map(|v| {
                    let (addr, version) = v.value();
                    (Address(*addr), version)
                });
                let current_version = current.map(|(_, v)| Version(v.to_string()));
                if current_version != expected {
                    return Err(StorageError::HeadConflict {
                        name: name.clone(),
                        current: current.map(|(commit, v)| Head {
                            commit,
                            version: Version(v.to_string()),
                        }),
                    });
                }
                let next = current.map_or(1, |(_, v)| v + 1);
                table
                    .insert(name.as_str(), (&new.0, next))
                    .map_err(backend)?;
                next
            };
            txn.commit().map_err(backend)?;
            Ok(Version(version.to_string()))
        })
        .await
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(BLOBS).map_err(backend)?;
            let start = after.map(|a| a.0);
            let lower = match &start {
                Some(a) => Bound::Excluded(a),
                None => Bound::Unbounded,
            };
            let range = table
                .range::<&[u8; 32]>((lower, Bound::Unbounded))
                .map_err(backend)?;
            let mut out = Vec::new();
            for entry in range.take(limit) {
                let (k, _) = entry.map_err(backend)?;
                out.push(Address(*k.value()));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        let addresses = addresses.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(BLOBS).map_err(backend)?;
                for a in &addresses {
                    table.remove(&a.0).map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }
}
