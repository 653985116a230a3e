//! `backend-redb`: the embedded default storage of datoms — one redb file.
//!
//! Three tables: `blobs` (address → node or commit bytes), `written` (address → the
//! blob's write stamp, milliseconds since the Unix epoch, and its size) and `heads` (name
//! → commit address and version). A head CAS reads, compares and writes inside one redb write
//! transaction, and redb runs one write transaction at a time, so it is atomic; every
//! commit is durable (fsync) before `put_many` or `cas_head` returns. Reads of a batch
//! share one read transaction.
//!
//! - **Runtimes.** redb is blocking. Every call runs on the blocking pool of a small
//!   runtime the storage owns ([`IoRuntime`]), never on the caller's runtime, and the
//!   caller awaits its result through a handle any executor can poll. So a storage (and a
//!   db lazily restored from it) works from any runtime, after the runtime that opened it
//!   is dropped, and from no runtime at all.
//! - **Damaged files.** redb trusts its pages and may panic on a damaged file (a zeroed
//!   or overwritten page) instead of returning an error. Every redb call, the open
//!   included, runs under [`catch_panics`]: a panic becomes [`StorageError::Corrupt`]
//!   naming the file, as do redb's own corruption errors and a file that ends early.
//!   Nothing is written in response: the file stays as it was.
//! - **Readers share the file.** [`RedbStorage::open`] opens for writing, which takes the
//!   file for this handle alone (a second open, here or in another process, gets
//!   [`StorageError::InUse`]). [`RedbStorage::open_read_only`] opens it with redb's
//!   read-only handle: any number of readers share the file, a file or mount without
//!   write permission can be read, and writes are refused with
//!   [`StorageError::ReadOnly`]. A writer and readers still exclude each other (redb's
//!   default locking), with [`StorageError::InUse`] naming the file.
//!
//! - **Blob age** (for garbage collection, see [`datoms_storage::gc()`]): every put of an
//!   address, the first or a later one, writes its stamp in `written` in the same
//!   transaction as the blob (a later put refreshes the stamp and keeps the bytes);
//!   `delete_stale` reads the stamp and deletes blob and stamp in one write transaction,
//!   so a put and a GC delete of one blob never interleave. A blob written before this
//!   table existed (a file from an older build) has no stamp and lists as written at the
//!   Unix epoch: old, as it is.
//!
//! ```no_run
//! # async fn demo() -> Result<(), datoms_storage::StorageError> {
//! let storage = backend_redb::RedbStorage::open("my.datoms")?;
//! let reader = backend_redb::RedbStorage::open_read_only("other.datoms")?;
//! # Ok(()) }
//! ```

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::Address;
use datoms_storage::{
    catch_panics, BlobStamp, Head, HeadChanges, HeadSignal, IoRuntime, Storage, StorageError,
    Version,
};
use redb::{
    Database, ReadOnlyDatabase, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError,
};

const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
const HEADS: TableDefinition<&str, (&[u8; 32], u64)> = TableDefinition::new("heads");
/// Each blob's write stamp (milliseconds since the Unix epoch) and size.
const WRITTEN: TableDefinition<&[u8; 32], (u64, u64)> = TableDefinition::new("written");

/// The commit a deleted head's row holds: the row stays, as a tombstone, so that the
/// head's version keeps counting (no BLAKE3 output is all zeros in practice).
const DELETED: [u8; 32] = [0; 32];

/// The head a row of `HEADS` holds, `None` for a tombstone.
fn live_head((commit, version): (&[u8; 32], u64)) -> Option<Head> {
    (*commit != DELETED).then(|| Head {
        commit: Address(*commit),
        version: Version(version.to_string()),
    })
}

/// The name of the threads that run a [`RedbStorage`]'s redb calls.
pub const IO_THREAD_NAME: &str = "datoms-redb";

/// A [`Storage`] in one redb file. Cheap to clone: clones share the open file and the
/// runtime that runs its calls.
#[derive(Clone)]
pub struct RedbStorage {
    file: Arc<File>,
    io: IoRuntime,
    /// The change signal: a writer has the file alone, so every move in this process
    /// goes through this handle (or a clone) and is signalled at once.
    moved: HeadSignal,
}

/// The open file: what every call needs, and all that work on the blocking pool holds.
struct File {
    db: Handle,
    path: PathBuf,
}

enum Handle {
    /// Opened for writing: this handle has the file alone.
    Write(Database),
    /// Opened read-only: shared with other readers.
    Read(ReadOnlyDatabase),
}

impl std::fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStorage")
            .field("path", &self.file.path)
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

impl RedbStorage {
    /// Opens the redb file at `path` for reading and writing, creating it (and its
    /// tables) if needed. The handle has the file alone until it (and every clone, and
    /// every db lazily restored from it) is dropped.
    ///
    /// # Errors
    /// [`StorageError::InUse`] if another handle (in this process or another) has the
    /// file open; [`StorageError::Corrupt`] naming the file if it is damaged or is no
    /// redb file; [`StorageError::Backend`] naming the path for other failures
    /// (permissions, a read-only file system…).
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStorage, StorageError> {
        let path = path.as_ref().to_path_buf();
        let db = caught(&path, || {
            let db = Database::create(&path)?;
            // Tables are created only where missing: opening an existing file writes
            // nothing.
            let complete = {
                let txn = db.begin_read()?;
                has_table(&txn, BLOBS)? && has_table(&txn, HEADS)? && has_table(&txn, WRITTEN)?
            };
            if !complete {
                let txn = db.begin_write()?;
                txn.open_table(BLOBS)?;
                txn.open_table(HEADS)?;
                txn.open_table(WRITTEN)?;
                txn.commit()?;
            }
            Ok(db)
        })?;
        RedbStorage::with_handle(Handle::Write(db), path)
    }

    /// Opens the existing redb file at `path` read-only: any number of read-only
    /// handles, in this process and others, share the file, and a file (or mount)
    /// without write permission can be read. Writes fail with
    /// [`StorageError::ReadOnly`]. A file whose last writer stopped without closing it
    /// (killed, crashed) needs a repair first, which redb does when it opens the file
    /// for writing: this open does that once, when the file is writable, then opens it
    /// read-only.
    ///
    /// # Errors
    /// [`StorageError::InUse`] if a writer has the file open; [`StorageError::Corrupt`]
    /// if it is damaged or is no redb file; [`StorageError::Backend`] naming the path if
    /// it does not exist, cannot be read, or needs a repair it cannot get (no write
    /// permission).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<RedbStorage, StorageError> {
        let path = path.as_ref().to_path_buf();
        let db = match caught(&path, || Ok(ReadOnlyDatabase::open(&path)?)) {
            Err(StorageError::Backend { reason }) if reason.ends_with(REPAIR_NEEDED) => {
                // Opening for writing repairs it (and closing the handle ends the repair).
                match caught(&path, || Database::open(&path).map_err(redb::Error::from)) {
                    Ok(repaired) => drop(repaired),
                    Err(e @ (StorageError::Corrupt { .. } | StorageError::InUse { .. })) => {
                        return Err(e)
                    }
                    Err(e) => {
                        return Err(StorageError::backend(format!(
                            "redb file {}: its last writer stopped without closing it, and \
                             repairing it needs write access: {e}",
                            path.display()
                        )))
                    }
                }
                caught(&path, || Ok(ReadOnlyDatabase::open(&path)?))?
            }
            other => other?,
        };
        RedbStorage::with_handle(Handle::Read(db), path)
    }

    fn with_handle(db: Handle, path: PathBuf) -> Result<RedbStorage, StorageError> {
        Ok(RedbStorage {
            file: Arc::new(File { db, path }),
            io: IoRuntime::new(IO_THREAD_NAME, 1)?,
            moved: HeadSignal::new(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Whether this handle was opened with [`RedbStorage::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        matches!(self.file.db, Handle::Read(_))
    }

    /// Runs blocking redb work on the storage's own blocking pool, a panic of redb
    /// becoming [`StorageError::Corrupt`].
    async fn blocking<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&File) -> Result<T, redb::Error> + Send + 'static,
    {
        let file = self.file.clone();
        self.io
            .spawn_blocking(move || caught(&file.path, || work(&file)))
            .await?
    }

    /// The writable database, or [`StorageError::ReadOnly`] for `operation`.
    fn writable(&self, operation: &str) -> Result<(), StorageError> {
        match self.file.db {
            Handle::Write(_) => Ok(()),
            Handle::Read(_) => Err(StorageError::ReadOnly {
                what: what(&self.file.path),
                operation: operation.to_owned(),
            }),
        }
    }
}

impl File {
    fn begin_read(&self) -> Result<ReadTransaction, redb::Error> {
        Ok(match &self.db {
            Handle::Write(db) => db.begin_read()?,
            Handle::Read(db) => db.begin_read()?,
        })
    }

    /// The writable database (callers check [`RedbStorage::writable`] first).
    fn writer(&self) -> Result<&Database, redb::Error> {
        match &self.db {
            Handle::Write(db) => Ok(db),
            Handle::Read(_) => Err(redb::Error::Unsupported),
        }
    }
}

/// The suffix of the message of [`redb::Error::RepairAborted`] as [`classify`] words it.
const REPAIR_NEEDED: &str = "needs a repair";

/// `redb file PATH`: how errors name the file.
fn what(path: &Path) -> String {
    format!("redb file {}", path.display())
}

/// Runs redb work, turning its errors and its panics into typed errors naming `path`.
fn caught<T>(
    path: &Path,
    work: impl FnOnce() -> Result<T, redb::Error>,
) -> Result<T, StorageError> {
    match catch_panics(work) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(classify(path, e)),
        Err(panic) => Err(StorageError::Corrupt {
            what: what(path),
            reason: format!("redb cannot read it: {panic}"),
        }),
    }
}

/// A redb error as a [`StorageError`] naming the file.
fn classify(path: &Path, e: redb::Error) -> StorageError {
    let what = what(path);
    match e {
        redb::Error::Corrupted(reason) => StorageError::Corrupt { what, reason },
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            StorageError::Corrupt {
                what,
                reason: format!("it is no redb file: {io}"),
            }
        }
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            StorageError::Corrupt {
                what,
                reason: format!("it ends before data redb expects (truncated?): {io}"),
            }
        }
        redb::Error::LockPoisoned(at) => StorageError::Corrupt {
            what,
            reason: format!(
                "an earlier call on it panicked (lock poisoned at {at}), which redb does on \
                 damaged pages"
            ),
        },
        redb::Error::DatabaseAlreadyOpen => StorageError::InUse {
            what,
            reason: "another handle has it open, in this process or another: a writer \
                     needs the file alone, while read-only opens share it with each other"
                .into(),
        },
        redb::Error::LockProtocolMismatch => StorageError::InUse {
            what,
            reason: "a process using another version of redb's locking has it open".into(),
        },
        redb::Error::RepairAborted => StorageError::backend(format!(
            "{what}: its last writer stopped without closing it, so it {REPAIR_NEEDED}"
        )),
        other => StorageError::backend(format!("{what}: {other}")),
    }
}

/// Whether the file has table `table` (a read transaction cannot create one).
fn has_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<bool, redb::Error> {
    match txn.open_table(table) {
        Ok(_) => Ok(true),
        Err(TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Table `table` for reading, `None` if the file has none (a read-only handle on a
/// file no writer has set up).
fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, redb::Error> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl Storage for RedbStorage {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        let addresses = addresses.to_vec();
        self.blocking(move |file| {
            let txn = file.begin_read()?;
            let Some(table) = read_table(&txn, BLOBS)? else {
                return Ok(vec![None; addresses.len()]);
            };
            addresses
                .iter()
                .map(|a| Ok(table.get(&a.0)?.map(|v| Bytes::copy_from_slice(v.value()))))
                .collect()
        })
        .await
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        self.writable("put_many")?;
        let blobs = blobs.to_vec();
        self.blocking(move |file| {
            let txn = file.writer()?.begin_write()?;
            {
                let mut table = txn.open_table(BLOBS)?;
                let mut written = txn.open_table(WRITTEN)?;
                for (a, b) in &blobs {
                    let stored = table.get(&a.0)?.map(|v| v.value().len());
                    let len = match stored {
                        Some(len) => len,
                        None => {
                            table.insert(&a.0, b.as_ref())?;
                            b.len()
                        }
                    };
                    let old = written.get(&a.0)?.map(|v| v.value().0);
                    written.insert(&a.0, (BlobStamp::stamp_millis(old), len as u64))?;
                }
            }
            Ok(txn.commit()?)
        })
        .await
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        let name = name.to_owned();
        self.blocking(move |file| {
            let txn = file.begin_read()?;
            let Some(table) = read_table(&txn, HEADS)? else {
                return Ok(None);
            };
            Ok(table.get(name.as_str())?.and_then(|v| live_head(v.value())))
        })
        .await
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.blocking(move |file| {
            let txn = file.begin_read()?;
            let Some(table) = read_table(&txn, HEADS)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (name, v) = entry?;
                if let Some(head) = live_head(v.value()) {
                    out.push((name.value().to_owned(), head));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        self.writable("delete_head")?;
        let name = name.to_owned();
        let expected = expected.clone();
        let outcome = self
            .blocking(move |file| {
                let txn = file.writer()?.begin_write()?;
                {
                    let mut table = txn.open_table(HEADS)?;
                    let row = table.get(name.as_str())?.map(|v| {
                        let (addr, version) = v.value();
                        (*addr, version)
                    });
                    let current = row.and_then(|(c, v)| live_head((&c, v)));
                    if current.as_ref().map(|h| &h.version) != Some(&expected) {
                        return Ok(Err(StorageError::HeadConflict {
                            name: name.clone(),
                            current,
                        }));
                    }
                    // A tombstone keeps the version counting, so a head made again
                    // never reuses a version a stale writer may still hold.
                    let version = row.map_or(0, |(_, v)| v);
                    table.insert(name.as_str(), (&DELETED, version))?;
                }
                txn.commit()?;
                Ok(Ok(()))
            })
            .await?;
        if outcome.is_ok() {
            self.moved.moved();
        }
        outcome
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        self.writable("cas_head")?;
        let name = name.to_owned();
        let expected = expected.cloned();
        let outcome = self
            .blocking(move |file| {
                let txn = file.writer()?.begin_write()?;
                let version = {
                    let mut table = txn.open_table(HEADS)?;
                    let row = table.get(name.as_str())?.map(|v| {
                        let (addr, version) = v.value();
                        (*addr, version)
                    });
                    let current = row.and_then(|(c, v)| live_head((&c, v)));
                    if current.as_ref().map(|h| &h.version) != expected.as_ref() {
                        return Ok(Err(StorageError::HeadConflict {
                            name: name.clone(),
                            current,
                        }));
                    }
                    // After a tombstone too: versions only grow.
                    let next = row.map_or(1, |(_, v)| v + 1);
                    table.insert(name.as_str(), (&new.0, next))?;
                    next
                };
                txn.commit()?;
                Ok(Ok(Version(version.to_string())))
            })
            .await?;
        if outcome.is_ok() {
            self.moved.moved();
        }
        outcome
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        self.blocking(move |file| {
            let txn = file.begin_read()?;
            let Some(table) = read_table(&txn, BLOBS)? else {
                return Ok(Vec::new());
            };
            let start = after.map(|a| a.0);
            let lower = match &start {
                Some(a) => Bound::Excluded(a),
                None => Bound::Unbounded,
            };
            let range = table.range::<&[u8; 32]>((lower, Bound::Unbounded))?;
            let mut out = Vec::new();
            for entry in range.take(limit) {
                let (k, _) = entry?;
                out.push(Address(*k.value()));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        self.writable("delete_many")?;
        let addresses = addresses.to_vec();
        self.blocking(move |file| {
            let txn = file.writer()?.begin_write()?;
            {
                let mut table = txn.open_table(BLOBS)?;
                let mut written = txn.open_table(WRITTEN)?;
                for a in &addresses {
                    table.remove(&a.0)?;
                    written.remove(&a.0)?;
                }
            }
            Ok(txn.commit()?)
        })
        .await
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        self.blocking(move |file| {
            let txn = file.begin_read()?;
            let Some(table) = read_table(&txn, BLOBS)? else {
                return Ok(Vec::new());
            };
            let written = read_table(&txn, WRITTEN)?;
            let start = after.map(|a| a.0);
            let lower = match &start {
                Some(a) => Bound::Excluded(a),
                None => Bound::Unbounded,
            };
            let range = table.range::<&[u8; 32]>((lower, Bound::Unbounded))?;
            let mut out = Vec::new();
            for entry in range.take(limit) {
                let (k, v) = entry?;
                let stamp = match &written {
                    Some(w) => w.get(k.value())?.map(|s| s.value().0),
                    None => None,
                };
                out.push(BlobStamp {
                    address: Address(*k.value()),
                    written: BlobStamp::from_millis(stamp.unwrap_or(0)),
                    len: v.value().len() as u64,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        self.writable("delete_stale")?;
        let addresses = addresses.to_vec();
        let cutoff = BlobStamp::millis(written_before);
        self.blocking(move |file| {
            let txn = file.writer()?.begin_write()?;
            let mut deleted = Vec::new();
            {
                let mut table = txn.open_table(BLOBS)?;
                let mut written = txn.open_table(WRITTEN)?;
                for a in &addresses {
                    let stamp = written.get(&a.0)?.map_or(0, |v| v.value().0);
                    if stamp < cutoff && table.remove(&a.0)?.is_some() {
                        written.remove(&a.0)?;
                        deleted.push(*a);
                    }
                }
            }
            txn.commit()?;
            Ok(deleted)
        })
        .await
    }

    /// A writable handle has the file alone, so it sees every move; a read-only one
    /// sees none (its writers are elsewhere) and has no signal.
    fn head_changes(&self) -> Option<HeadChanges> {
        (!self.is_read_only()).then(|| self.moved.subscribe())
    }
}
