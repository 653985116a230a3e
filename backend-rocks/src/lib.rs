//! `backend-rocks`: datoms storage in a RocksDB database (a directory).
//!
//! Three column families: `nodes` (address → node or commit bytes), `written` (address
//! → the blob's write stamp and size) and `heads` (name → commit address and version). Every RocksDB call runs on the blocking pool of a small
//! runtime the storage owns ([`IoRuntime`]), never on the caller's runtime: the storage
//! works from any runtime, after the one that opened it is dropped, and from none.
//!
//! - **Batches.** `get_many` is one batched `MultiGet`; `put_many` and `delete_many` are
//!   one atomic `WriteBatch` each, so a reader never sees half a batch.
//! - **Durability.** The write-ahead log is on and every write is synchronous (`sync`:
//!   the WAL is fsynced before the call returns), so an acknowledged `put_many` or
//!   `cas_head` survives a process kill or a power loss. There is no WAL-less mode.
//! - **Head CAS.** `cas_head` reads, compares and writes the head while holding a mutex
//!   of this [`RocksStorage`] (shared by its clones); only `cas_head` and `delete_head`
//!   (which leaves a tombstone, so versions keep counting) write heads, so the
//!   read-compare-write is atomic within the process. Other processes are kept out by the
//!   OS file lock RocksDB takes on the directory's `LOCK` file when it opens read-write
//!   (an `fcntl` lock, released by the kernel when the process dies, even by `kill -9`):
//!   a second process, or a second open in the same process, fails with
//!   [`StorageError::Backend`]. A transaction DB would give the same atomicity, but would
//!   put every blob write through its per-key lock manager, while the head CAS is the
//!   only read-modify-write there is and content-addressed blobs need no locking.
//! - **Readers.** [`RocksStorage::open_read_only`] uses RocksDB's read-only mode, which
//!   takes no lock: readers open the directory beside each other and beside a writer,
//!   each seeing the database as of its open, and refuse writes with
//!   [`StorageError::ReadOnly`]. `datoms::open_read_only("rocksdb:…")` (the CLI's reading
//!   commands) opens this way.
//! - **Tuning** (see [`RocksConfig`]): one LRU cache (256 MiB by default) shared by SST
//!   blocks and blob values; index and filter blocks charged to it, L0's pinned; full
//!   bloom filters at 10 bits per key on every level (`store` mostly probes addresses the
//!   storage lacks); values of 4 KiB and more kept in blob files (written once, never
//!   rewritten by compaction, reclaimed by blob GC after deletes); LZ4 compression; the
//!   WAL capped at 128 MiB so the rarely written heads family does not pin old WAL files.
//! - **Blob age** (for garbage collection, see [`datoms_storage::gc()`]): every put of an
//!   address, the first or a later one, writes its stamp (milliseconds since the Unix
//!   epoch, then the blob's size, two big-endian `u64`s) in `written`, in the same
//!   `WriteBatch` as the blob; a later put refreshes the stamp and keeps the bytes.
//!   `put_many` and `delete_stale` hold one mutex of the handle across their
//!   read-check-write, so a put and a GC delete of one blob never interleave. A blob
//!   written by an older build has no stamp and lists as written at the Unix epoch.
//!
//! ```no_run
//! # async fn demo() -> Result<(), datoms_storage::StorageError> {
//! let storage = backend_rocks::RocksStorage::open("my-datoms-db")?;
//! # Ok(()) }
//! ```

mod config;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::Address;
use datoms_storage::{
    BlobStamp, Capabilities, Head, HeadChanges, HeadSignal, IoRuntime, Storage, StorageError,
    Version,
};
use rocksdb::{
    Cache, ColumnFamily, ColumnFamilyDescriptor, ErrorKind, ReadOptions, WriteBatch, WriteOptions,
    DB,
};

pub use config::{RocksConfig, DEFAULT_CACHE_BYTES, DEFAULT_MIN_BLOB_SIZE};

/// The column family of content-addressed blobs (nodes and commits).
pub const NODES_CF: &str = "nodes";
/// The column family of named heads.
pub const HEADS_CF: &str = "heads";
/// The column family of blob write stamps (see the crate docs, "Blob age").
pub const WRITTEN_CF: &str = "written";

/// A write-stamp record: milliseconds since the Unix epoch, then the blob's size, both
/// big-endian `u64`s.
const STAMP_RECORD_LEN: usize = 16;

/// A head record: the commit address, then the version as a big-endian `u64`.
const HEAD_RECORD_LEN: usize = 32 + 8;

/// A [`Storage`] in a RocksDB database. Cheap to clone: clones share the database and
/// the runtime that runs its calls.
#[derive(Clone)]
pub struct RocksStorage {
    inner: Arc<Inner>,
    io: IoRuntime,
    /// The change signal: every writer in this process goes through this handle (RocksDB
    /// locks the directory to one), so its moves are signalled at once.
    moved: HeadSignal,
}

/// The name of the threads that run a [`RocksStorage`]'s RocksDB calls.
pub const IO_THREAD_NAME: &str = "datoms-rocks";

struct Inner {
    db: DB,
    path: PathBuf,
    /// Held across the read-compare-write of a head CAS.
    cas: Mutex<()>,
    /// Held across the read-check-write of `put_many` and `delete_stale` (blob stamps).
    stamps: Mutex<()>,
    /// Opened with [`RocksStorage::open_read_only`]: writes are refused.
    read_only: bool,
}

impl std::fmt::Debug for RocksStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStorage")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// The error of opening the database in `path`: [`StorageError::InUse`] when another
/// handle (in this process or another) holds its `LOCK` file, so a caller can wait for it
/// (as the CLI does); [`StorageError::Backend`] naming the path otherwise.
fn open_error(path: &Path, e: &rocksdb::Error) -> StorageError {
    let text = e.to_string();
    if text.contains("lock hold by current process")
        || (text.contains("LOCK") && text.contains("Resource temporarily unavailable"))
    {
        return StorageError::InUse {
            what: format!("rocksdb database {}", path.display()),
            reason: "another process (or another handle in this one) has it open for \
                     writing; open it read-only to read beside it, or wait for it to close"
                .into(),
        };
    }
    StorageError::backend(format!("rocksdb database {}: {text}", path.display()))
}

impl RocksStorage {
    /// Opens the RocksDB database in directory `path` with the default [`RocksConfig`],
    /// creating it if needed. This blocks (it may replay the WAL): from async code, call it
    /// on the blocking pool, or use [`RocksStorage::open_async`].
    ///
    /// # Errors
    /// [`StorageError::Backend`] naming the path if the database cannot be opened or
    /// created (not a RocksDB directory, permissions, or another process — or another
    /// `RocksStorage` in this one — holds it).
    pub fn open(path: impl AsRef<Path>) -> Result<RocksStorage, StorageError> {
        RocksStorage::open_with(path, &RocksConfig::default())
    }

    /// Opens the database in `path` with `config`, creating it if needed. Blocks, like
    /// [`RocksStorage::open`].
    ///
    /// # Errors
    /// As [`RocksStorage::open`].
    pub fn open_with(
        path: impl AsRef<Path>,
        config: &RocksConfig,
    ) -> Result<RocksStorage, StorageError> {
        let inner = RocksStorage::open_inner(path.as_ref().to_path_buf(), config, false)?;
        Ok(RocksStorage {
            inner: Arc::new(inner),
            io: IoRuntime::new(IO_THREAD_NAME, 1)?,
            moved: HeadSignal::new(),
        })
    }

    /// Opens the existing database in directory `path` for reading only, with RocksDB's
    /// read-only mode: it takes no lock, so any number of readers (in this process and
    /// others) open it beside each other and beside a writer, each seeing the database as
    /// it was when opened; nothing is created or written. Writes through it fail with
    /// [`StorageError::ReadOnly`]. Blocks, like [`RocksStorage::open`].
    ///
    /// # Errors
    /// [`StorageError::Backend`] naming the path if there is no RocksDB database there
    /// or it cannot be read.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<RocksStorage, StorageError> {
        let inner =
            RocksStorage::open_inner(path.as_ref().to_path_buf(), &RocksConfig::default(), true)?;
        Ok(RocksStorage {
            inner: Arc::new(inner),
            io: IoRuntime::new(IO_THREAD_NAME, 1)?,
            moved: HeadSignal::new(),
        })
    }

    fn open_inner(
        path: PathBuf,
        config: &RocksConfig,
        read_only: bool,
    ) -> Result<Inner, StorageError> {
        if read_only && !path.join("CURRENT").is_file() {
            // RocksDB would create the directory (for its info log) before failing.
            return Err(StorageError::backend(format!(
                "rocksdb database {}: no database there to read",
                path.display()
            )));
        }
        let cache = Cache::new_lru_cache(config.cache_bytes());
        let (db_options, nodes, heads, written) = config.options(&cache);
        let mut families = vec![
            ColumnFamilyDescriptor::new(NODES_CF, nodes),
            ColumnFamilyDescriptor::new(HEADS_CF, heads),
        ];
        // A read-only open of a database an older build made has no stamps to open (a
        // read-write open creates the family).
        let has_stamps = !read_only
            || DB::list_cf(&db_options, &path)
                .map_err(|e| open_error(&path, &e))?
                .iter()
                .any(|f| f == WRITTEN_CF);
        if has_stamps {
            families.push(ColumnFamilyDescriptor::new(WRITTEN_CF, written));
        }
        let db = if read_only {
            DB::open_cf_descriptors_read_only(&db_options, &path, families, false)
        } else {
            DB::open_cf_descriptors(&db_options, &path, families)
        }
        .map_err(|e| open_error(&path, &e))?;
        Ok(Inner {
            db,
            path,
            cas: Mutex::new(()),
            stamps: Mutex::new(()),
            read_only,
        })
    }

    /// Whether this handle was opened with [`RocksStorage::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Ok unless this handle is read-only: then [`StorageError::ReadOnly`] for
    /// `operation`.
    fn writable(&self, operation: &str) -> Result<(), StorageError> {
        if self.inner.read_only {
            return Err(StorageError::ReadOnly {
                what: format!("rocksdb database {}", self.inner.path.display()),
                operation: operation.to_owned(),
            });
        }
        Ok(())
    }

    /// [`RocksStorage::open_with`] on the blocking pool of the storage's own runtime
    /// (usable from any runtime, or none).
    ///
    /// # Errors
    /// As [`RocksStorage::open`].
    pub async fn open_async(
        path: impl AsRef<Path>,
        config: RocksConfig,
    ) -> Result<RocksStorage, StorageError> {
        let path = path.as_ref().to_path_buf();
        let io = IoRuntime::new(IO_THREAD_NAME, 1)?;
        let inner = io
            .spawn_blocking(move || RocksStorage::open_inner(path, &config, false))
            .await??;
        Ok(RocksStorage {
            inner: Arc::new(inner),
            io,
            moved: HeadSignal::new(),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs blocking RocksDB work on the storage's own blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StorageError> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.io.spawn_blocking(move || work(&inner)).await?
    }
}

impl Inner {
    fn cf(&self, name: &str) -> Result<&ColumnFamily, StorageError> {
        self.db.cf_handle(name).ok_or_else(|| {
            StorageError::backend(format!(
                "rocksdb database {}: column family {name:?} is missing",
                self.path.display()
            ))
        })
    }

    /// The write-stamp family, `None` on a read-only handle of a database without one.
    fn stamps_cf(&self) -> Option<&ColumnFamily> {
        self.db.cf_handle(WRITTEN_CF)
    }

    /// Locks the blob stamps (see [`Inner::stamps`]).
    fn lock_stamps(&self) -> Result<std::sync::MutexGuard<'_, ()>, StorageError> {
        self.stamps
            .lock()
            .map_err(|_| StorageError::backend("rocksdb: blob stamp lock poisoned"))
    }

    /// Writes `batch` durably: the WAL is fsynced before this returns.
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options).map_err(error)
    }

    /// The head `name`, decoded.
    fn head(&self, name: &str) -> Result<Option<(Address, u64)>, StorageError> {
        let heads = self.cf(HEADS_CF)?;
        match self
            .db
            .get_pinned_cf(heads, name.as_bytes())
            .map_err(error)?
        {
            None => Ok(None),
            Some(record) => decode_head(name, &record).map(Some),
        }
    }
}

/// Maps a RocksDB error: the kinds RocksDB itself calls retryable are transient.
fn error(e: rocksdb::Error) -> StorageError {
    match e.kind() {
        ErrorKind::Busy | ErrorKind::TryAgain | ErrorKind::TimedOut => StorageError::Transient {
            reason: format!("rocksdb: {e}"),
        },
        _ => StorageError::backend(format!("rocksdb: {e}")),
    }
}

/// The commit a deleted head's record holds: the record stays, as a tombstone, so that
/// the head's version keeps counting (no BLAKE3 output is all zeros in practice).
const DELETED: Address = Address([0; 32]);

/// The head a record holds, `None` for a tombstone.
fn live(record: (Address, u64)) -> Option<Head> {
    (record.0 != DELETED).then(|| to_head(record))
}

fn encode_head(commit: &Address, version: u64) -> [u8; HEAD_RECORD_LEN] {
    let mut record = [0; HEAD_RECORD_LEN];
    record[..32].copy_from_slice(&commit.0);
    record[32..].copy_from_slice(&version.to_be_bytes());
    record
}

fn decode_head(name: &str, record: &[u8]) -> Result<(Address, u64), StorageError> {
    let malformed = || {
        StorageError::backend(format!(
            "rocksdb: head {name:?} record is malformed: {} bytes, expected {HEAD_RECORD_LEN}",
            record.len()
        ))
    };
    let (commit, version) = record.split_first_chunk::<32>().ok_or_else(malformed)?;
    let version: [u8; 8] = version.try_into().map_err(|_| malformed())?;
    Ok((Address(*commit), u64::from_be_bytes(version)))
}

fn to_head((commit, version): (Address, u64)) -> Head {
    Head {
        commit,
        version: Version(version.to_string()),
    }
}

fn to_address(key: &[u8]) -> Result<Address, StorageError> {
    let key: [u8; 32] = key.try_into().map_err(|_| {
        StorageError::backend(format!(
            "rocksdb: a key of {} bytes in the {NODES_CF} column family is not an address",
            key.len()
        ))
    })?;
    Ok(Address(key))
}

fn encode_stamp(millis: u64, len: u64) -> [u8; STAMP_RECORD_LEN] {
    let mut record = [0; STAMP_RECORD_LEN];
    record[..8].copy_from_slice(&millis.to_be_bytes());
    record[8..].copy_from_slice(&len.to_be_bytes());
    record
}

/// A stamp record as (milliseconds, size).
fn decode_stamp(record: &[u8]) -> Result<(u64, u64), StorageError> {
    let record: [u8; STAMP_RECORD_LEN] = record.try_into().map_err(|_| {
        StorageError::backend(format!(
            "rocksdb: a write stamp of {} bytes in the {WRITTEN_CF} column family, expected \
             {STAMP_RECORD_LEN}",
            record.len()
        ))
    })?;
    let (millis, len) = record.split_at(8);
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    Ok((word(millis), word(len)))
}

/// Read options for reads that should not evict hot blocks from the cache (existence
/// checks of `put_many`, listings for GC).
fn cold_read() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.fill_cache(false);
    options
}

#[async_trait]
impl Storage for RocksStorage {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let addresses = addresses.to_vec();
        self.blocking(move |inner| {
            let nodes = inner.cf(NODES_CF)?;
            inner
                .db
                .batched_multi_get_cf(nodes, addresses.iter().map(|a| &a.0), false)
                .into_iter()
                .map(|got| Ok(got.map_err(error)?.map(|v| Bytes::copy_from_slice(&v))))
                .collect()
        })
        .await
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        self.writable("put_many")?;
        if blobs.is_empty() {
            return Ok(());
        }
        let blobs = blobs.to_vec();
        self.blocking(move |inner| {
            let nodes = inner.cf(NODES_CF)?;
            let stamps = inner.cf(WRITTEN_CF)?;
            let _stamps = inner.lock_stamps()?;
            // The first write of an address wins, as in every backend; the check reads
            // the small stamp records (a blob from an older build has none: its value is
            // checked) and spares blob files the garbage of rewriting a value that is
            // already there. Every put refreshes the stamp.
            let old = inner.db.batched_multi_get_cf_opt(
                stamps,
                blobs.iter().map(|(a, _)| &a.0),
                false,
                &cold_read(),
            );
            let mut batch = WriteBatch::default();
            let mut written: std::collections::HashSet<Address> = Default::default();
            for ((address, bytes), old) in blobs.iter().zip(old) {
                if !written.insert(*address) {
                    continue;
                }
                let (millis, len) = match old.map_err(error)? {
                    Some(record) => {
                        let (millis, len) = decode_stamp(&record)?;
                        (Some(millis), len)
                    }
                    None => {
                        let present = inner
                            .db
                            .get_pinned_cf_opt(nodes, address.0, &cold_read())
                            .map_err(error)?;
                        match present {
                            Some(value) => (None, value.len() as u64),
                            None => {
                                batch.put_cf(nodes, address.0, bytes);
                                (None, bytes.len() as u64)
                            }
                        }
                    }
                };
                batch.put_cf(
                    stamps,
                    address.0,
                    encode_stamp(BlobStamp::stamp_millis(millis), len),
                );
            }
            inner.write(batch)
        })
        .await
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        let name = name.to_owned();
        self.blocking(move |inner| Ok(inner.head(&name)?.and_then(live)))
            .await
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.blocking(move |inner| {
            let heads = inner.cf(HEADS_CF)?;
            let mut iter = inner.db.raw_iterator_cf(heads);
            iter.seek_to_first();
            let mut out = Vec::new();
            while let (Some(key), Some(record)) = (iter.key(), iter.value()) {
                let name = String::from_utf8(key.to_vec()).map_err(|_| {
                    StorageError::backend("rocksdb: a head name is not UTF-8".to_owned())
                })?;
                if let Some(head) = live(decode_head(&name, record)?) {
                    out.push((name, head));
                }
                iter.next();
            }
            iter.status().map_err(error)?;
            Ok(out)
        })
        .await
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        self.writable("delete_head")?;
        let name = name.to_owned();
        let expected = expected.clone();
        self.blocking(move |inner| {
            let _cas = inner
                .cas
                .lock()
                .map_err(|_| StorageError::backend("rocksdb: head CAS lock poisoned"))?;
            let record = inner.head(&name)?;
            let current = record.and_then(live);
            if current.as_ref().map(|h| &h.version) != Some(&expected) {
                return Err(StorageError::HeadConflict { name, current });
            }
            // A tombstone keeps the version counting, so a head made again never
            // reuses a version a stale writer may still hold.
            let version = record.map_or(0, |(_, v)| v);
            let mut batch = WriteBatch::default();
            batch.put_cf(
                inner.cf(HEADS_CF)?,
                name.as_bytes(),
                encode_head(&DELETED, version),
            );
            inner.write(batch)
        })
        .await?;
        self.moved.moved();
        Ok(())
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
        let version = self
            .blocking(move |inner| {
                let _cas = inner
                    .cas
                    .lock()
                    .map_err(|_| StorageError::backend("rocksdb: head CAS lock poisoned"))?;
                let record = inner.head(&name)?;
                let current = record.and_then(live);
                if current.as_ref().map(|h| &h.version) != expected.as_ref() {
                    return Err(StorageError::HeadConflict { name, current });
                }
                // After a tombstone too: versions only grow.
                let next = record.map_or(Ok(1), |(_, v)| {
                    v.checked_add(1).ok_or_else(|| {
                        StorageError::backend(format!("rocksdb: head {name:?} version overflow"))
                    })
                })?;
                let mut batch = WriteBatch::default();
                batch.put_cf(
                    inner.cf(HEADS_CF)?,
                    name.as_bytes(),
                    encode_head(&new, next),
                );
                inner.write(batch)?;
                Ok(Version(next.to_string()))
            })
            .await?;
        self.moved.moved();
        Ok(version)
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.blocking(move |inner| {
            let nodes = inner.cf(NODES_CF)?;
            let mut iter = inner.db.raw_iterator_cf_opt(nodes, cold_read());
            match &after {
                Some(a) => {
                    iter.seek(a.0);
                    if iter.key() == Some(&a.0[..]) {
                        iter.next();
                    }
                }
                None => iter.seek_to_first(),
            }
            let mut out = Vec::new();
            while out.len() < limit {
                let Some(key) = iter.key() else { break };
                out.push(to_address(key)?);
                iter.next();
            }
            iter.status().map_err(error)?;
            Ok(out)
        })
        .await
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        self.writable("delete_many")?;
        if addresses.is_empty() {
            return Ok(());
        }
        let addresses = addresses.to_vec();
        self.blocking(move |inner| {
            let nodes = inner.cf(NODES_CF)?;
            let stamps = inner.cf(WRITTEN_CF)?;
            let mut batch = WriteBatch::default();
            for a in &addresses {
                batch.delete_cf(nodes, a.0);
                batch.delete_cf(stamps, a.0);
            }
            inner.write(batch)
        })
        .await
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.blocking(move |inner| {
            let nodes = inner.cf(NODES_CF)?;
            let mut iter = inner.db.raw_iterator_cf_opt(nodes, cold_read());
            match &after {
                Some(a) => {
                    iter.seek(a.0);
                    if iter.key() == Some(&a.0[..]) {
                        iter.next();
                    }
                }
                None => iter.seek_to_first(),
            }
            let mut addresses = Vec::new();
            while addresses.len() < limit {
                let Some(key) = iter.key() else { break };
                addresses.push(to_address(key)?);
                iter.next();
            }
            iter.status().map_err(error)?;
            let stamps = match inner.stamps_cf() {
                Some(cf) => inner
                    .db
                    .batched_multi_get_cf_opt(
                        cf,
                        addresses.iter().map(|a| &a.0),
                        true,
                        &cold_read(),
                    )
                    .into_iter()
                    .map(|r| r.map(|v| v.map(|v| v.to_vec())))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(error)?,
                None => vec![None; addresses.len()],
            };
            addresses
                .into_iter()
                .zip(stamps)
                .map(|(address, stamp)| {
                    let (millis, len) = match stamp {
                        Some(record) => decode_stamp(&record)?,
                        // An older build's blob: no stamp, its size read from the value.
                        None => {
                            let value = inner
                                .db
                                .get_pinned_cf_opt(nodes, address.0, &cold_read())
                                .map_err(error)?;
                            (0, value.map_or(0, |v| v.len() as u64))
                        }
                    };
                    Ok(BlobStamp {
                        address,
                        written: BlobStamp::from_millis(millis),
                        len,
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        self.writable("delete_stale")?;
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let mut addresses = addresses.to_vec();
        addresses.sort_unstable();
        addresses.dedup();
        let cutoff = BlobStamp::millis(written_before);
        self.blocking(move |inner| {
            let nodes = inner.cf(NODES_CF)?;
            let stamps = inner.cf(WRITTEN_CF)?;
            let _stamps = inner.lock_stamps()?;
            let records = inner.db.batched_multi_get_cf_opt(
                stamps,
                addresses.iter().map(|a| &a.0),
                true,
                &cold_read(),
            );
            let mut batch = WriteBatch::default();
            let mut deleted = Vec::new();
            for (address, record) in addresses.iter().zip(records) {
                let stale = match record.map_err(error)? {
                    Some(record) => decode_stamp(&record)?.0 < cutoff,
                    // No stamp: an older build's blob if it is there at all.
                    None => inner
                        .db
                        .get_pinned_cf_opt(nodes, address.0, &cold_read())
                        .map_err(error)?
                        .is_some(),
                };
                if stale {
                    batch.delete_cf(nodes, address.0);
                    batch.delete_cf(stamps, address.0);
                    deleted.push(*address);
                }
            }
            if !batch.is_empty() {
                inner.write(batch)?;
            }
            Ok(deleted)
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        // MultiGet sorts and batches its keys internally, so large batches pay off; a few
        // in flight keep the blocking pool and the disk busy without crowding it.
        Capabilities {
            max_batch: 1024,
            concurrency: 4,
        }
    }

    /// A read-write handle has the directory alone, so it sees every move; a read-only
    /// one sees none (its writer is elsewhere) and has no signal.
    fn head_changes(&self) -> Option<HeadChanges> {
        (!self.inner.read_only).then(|| self.moved.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use super::*;

    /// Set in the child process of the cross-process lock test: the database directory.
    const LOCK_CHILD_ENV: &str = "BACKEND_ROCKS_LOCK_CHILD";

    fn blob(len: usize, seed: u8) -> (Address, Bytes) {
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        (Address::of(&bytes), Bytes::from(bytes))
    }

    fn blob_files(storage: &RocksStorage) -> u64 {
        let inner = &storage.inner;
        let nodes = inner.cf(NODES_CF).unwrap();
        inner.db.flush_cf(nodes).unwrap();
        inner
            .db
            .property_int_value_cf(nodes, "rocksdb.num-blob-files")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn head_records_round_trip_and_malformed_ones_are_errors() {
        let commit = Address::of(b"commit");
        let record = encode_head(&commit, 7);
        assert_eq!(decode_head("main", &record).unwrap(), (commit, 7));
        for len in [0, 32, 39, 41] {
            let err = decode_head("main", &vec![0; len]).unwrap_err();
            assert!(
                matches!(&err, StorageError::Backend { reason } if reason.contains("\"main\"")),
                "{err:?}"
            );
        }
    }

    /// Calls run on the storage's own runtime: they work after the runtime that opened
    /// it is dropped, and from no runtime at all.
    #[test]
    fn calls_work_after_the_opening_runtime_is_dropped_and_with_no_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let storage = first
            .block_on(RocksStorage::open_async(dir.path(), RocksConfig::default()))
            .unwrap();
        let (address, bytes) = blob(300, 5);
        first
            .block_on(storage.put_many(&[(address, bytes.clone())]))
            .unwrap();
        drop(first);
        let got = futures::executor::block_on(storage.get_many(&[address])).unwrap();
        assert_eq!(got, vec![Some(bytes)]);
    }

    #[test]
    fn keys_that_are_not_addresses_are_errors() {
        assert_eq!(to_address(&[9; 32]).unwrap(), Address([9; 32]));
        assert!(matches!(
            to_address(&[9; 31]),
            Err(StorageError::Backend { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn node_sized_values_go_to_blob_files_and_small_ones_stay_inline() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RocksStorage::open(dir.path()).unwrap();
        let commit = blob(200, 1);
        storage
            .put_many(std::slice::from_ref(&commit))
            .await
            .unwrap();
        assert_eq!(
            blob_files(&storage),
            0,
            "a small commit record stays inline"
        );
        let node = blob(16 << 10, 2);
        storage.put_many(std::slice::from_ref(&node)).await.unwrap();
        assert!(
            blob_files(&storage) >= 1,
            "a 16 KiB node goes to a blob file"
        );
        drop(storage);

        let storage = RocksStorage::open(dir.path()).unwrap();
        let got = storage.get_many(&[commit.0, node.0]).await.unwrap();
        assert_eq!(got, vec![Some(commit.1), Some(node.1)]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn without_blob_separation_values_stay_inline() {
        let dir = tempfile::tempdir().unwrap();
        let config = RocksConfig::default().with_min_blob_size(None);
        let storage = RocksStorage::open_async(dir.path(), config).await.unwrap();
        let node = blob(16 << 10, 3);
        storage.put_many(std::slice::from_ref(&node)).await.unwrap();
        assert_eq!(blob_files(&storage), 0);
        assert_eq!(
            storage.get_many(&[node.0]).await.unwrap(),
            vec![Some(node.1)]
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_first_bytes_stored_at_an_address_win() {
        let dir = tempfile::tempdir().unwrap();
        let storage = RocksStorage::open(dir.path()).unwrap();
        let (address, bytes) = blob(5000, 4);
        storage.put_many(&[(address, bytes.clone())]).await.unwrap();
        storage
            .put_many(&[(address, Bytes::from_static(b"other bytes"))])
            .await
            .unwrap();
        assert_eq!(
            storage.get_many(&[address]).await.unwrap(),
            vec![Some(bytes)]
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_second_open_in_the_same_process_fails_until_the_first_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let first = RocksStorage::open(dir.path()).unwrap();
        let clone = first.clone();
        let err = RocksStorage::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, StorageError::InUse { what, .. }
                if what.contains(&dir.path().display().to_string())),
            "{err:?}"
        );
        drop(first);
        assert!(
            RocksStorage::open(dir.path()).is_err(),
            "a clone still holds it"
        );
        drop(clone);
        RocksStorage::open(dir.path()).unwrap();
    }

    /// The child of the cross-process lock test: opens the database, says so, and holds
    /// it until killed (or for a minute at most).
    #[test]
    #[ignore = "the child process of another_process_cannot_open_the_database_until_it_dies"]
    fn lock_holder_child() {
        let Ok(dir) = std::env::var(LOCK_CHILD_ENV) else {
            return;
        };
        let _storage = RocksStorage::open(&dir).unwrap();
        // libtest may have printed `test … ` on this line already.
        println!("lock holder: opened");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[test]
    fn another_process_cannot_open_the_database_until_it_dies() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "tests::lock_holder_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(LOCK_CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let opened = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.ends_with("lock holder: opened"));
        assert!(opened, "the child did not open the database");

        let err = RocksStorage::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, StorageError::InUse { what, .. } if what.contains("rocksdb database")),
            "{err:?}"
        );

        // SIGKILL: the kernel releases the child's file lock, nothing else does.
        child.kill().unwrap();
        child.wait().unwrap();
        RocksStorage::open(dir.path()).unwrap();
    }
}
