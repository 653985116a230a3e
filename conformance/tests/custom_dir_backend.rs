//! A custom backend that passes the whole conformance suite: a `Storage` over a directory
//! of files, its `Factory` (a temporary directory per store, and a reopen that really
//! closes the store and opens the directory again), and the one line that runs the suite.
//!
//! Layout: each blob is the file `blobs/<hex address>`; each head is the file
//! `heads/<hex of its name>` holding `<version> <commit hex>`, where the version is a
//! counter that grows with every move; a deleted head's file holds `<version> deleted`
//! (a tombstone, so the counter goes on if the head is made again and a stale version
//! never matches). Every write goes to a temporary file first and is
//! renamed into place, so a reader sees a whole file or none. A head's
//! read-compare-write is made atomic by one process-wide lock (a store shared between
//! processes would need a file lock instead). The file I/O is blocking, so every call
//! runs it on tokio's blocking pool instead of on the runtime's workers.
//!
//! A blob's age, for garbage collection, is its file's modification time: a put of a
//! blob that exists sets it to now (keeping the bytes), and `delete_stale` reads it and
//! removes the file under one process-wide lock that puts take too, so a put and a GC
//! delete of one blob never interleave.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use conformance::Factory;
use datoms_core::Address;
use datoms_storage::{BlobStamp, Head, Storage, StorageError, Version};
use tempfile::TempDir;

/// A [`Storage`] over a directory of files.
#[derive(Debug)]
pub struct DirStorage {
    root: PathBuf,
}

/// Makes every head CAS of this process one at a time.
static CAS_LOCK: Mutex<()> = Mutex::new(());

/// Makes a put's check-and-write and a `delete_stale`'s check-and-remove one at a time.
static BLOB_LOCK: Mutex<()> = Mutex::new(());

/// Makes temporary file names unique within the process.
static TEMP_NAMES: AtomicU64 = AtomicU64::new(0);

impl DirStorage {
    /// Opens (creating it if needed) the store in directory `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<DirStorage> {
        let root = root.into();
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("heads"))?;
        Ok(DirStorage { root })
    }

    fn blob_path(root: &Path, address: &Address) -> PathBuf {
        root.join("blobs").join(address.to_hex())
    }

    fn head_path(root: &Path, name: &str) -> PathBuf {
        // Hex keeps any head name ("tenants/acme", "ünïcode") a plain file name.
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        root.join("heads").join(hex)
    }

    /// Runs blocking file work on tokio's blocking pool, with a copy of the root.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> io::Result<T> + Send + 'static,
    {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || work(&root))
            .await
            .map_err(|e| StorageError::backend(format!("file task failed: {e}")))?
            .map_err(io_error)
    }
}

/// Timeouts and interruptions are worth retrying; other I/O errors are not.
fn io_error(e: io::Error) -> StorageError {
    match e.kind() {
        io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            StorageError::Transient {
                reason: e.to_string(),
            }
        }
        _ => StorageError::backend(e),
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`: readers
/// see the old file or the new one, never a part.
///
/// Atomic, not durable: after a power cut the rename may be on disk before the bytes.
/// A backend that must survive one calls `sync_all` on the file before the rename (and
/// on the directory after it) — at a few milliseconds per file on common disks, which is
/// why this example, run on every `cargo test`, does not.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("a store path has no parent directory"))?;
    let temp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_NAMES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = fs::File::create(&temp)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&temp, path).inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })
}

/// A head file's content: its version and commit, or `None` if it does not exist.
/// A head file: its version, and its commit (`None` for a tombstone).
fn read_head(path: &Path) -> io::Result<Option<(u64, Option<Address>)>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad head file {path:?}"),
        )
    };
    let (version, commit) = text.trim().split_once(' ').ok_or_else(bad)?;
    let version = version.parse().map_err(|_| bad())?;
    let commit = match commit {
        DELETED => None,
        hex => Some(hex.parse().map_err(|_| bad())?),
    };
    Ok(Some((version, commit)))
}

/// A head name from its file name (hex of its bytes); `None` for any other file.
fn unhex(hex: &str) -> Option<String> {
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// What a deleted head's file holds after its version.
const DELETED: &str = "deleted";

/// The live head of a head file.
fn head((version, commit): (u64, Option<Address>)) -> Option<Head> {
    commit.map(|commit| Head {
        commit,
        version: Version(version.to_string()),
    })
}

#[async_trait]
impl Storage for DirStorage {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        let addresses = addresses.to_vec();
        self.blocking(move |root| {
            addresses
                .iter()
                .map(|a| match fs::read(DirStorage::blob_path(root, a)) {
                    Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                })
                .collect()
        })
        .await
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        let blobs = blobs.to_vec();
        self.blocking(move |root| {
            let _one_at_a_time = BLOB_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            for (address, bytes) in &blobs {
                let path = DirStorage::blob_path(root, address);
                // Content-addressed: a blob that exists already holds these bytes; the
                // put refreshes its write time.
                match fs::File::options().append(true).open(&path) {
                    Ok(file) => file.set_modified(SystemTime::now())?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        write_atomically(&path, bytes)?
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        let name = name.to_owned();
        self.blocking(
            move |root| Ok(read_head(&DirStorage::head_path(root, &name))?.and_then(head)),
        )
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
        let outcome = self
            .blocking(move |root| {
                let _one_at_a_time = CAS_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
                let path = DirStorage::head_path(root, &name);
                let file = read_head(&path)?;
                let current = file.and_then(head);
                if current.as_ref().map(|h| &h.version) != expected.as_ref() {
                    return Ok(Err(StorageError::HeadConflict { name, current }));
                }
                let version = file.map_or(1, |(v, _)| v + 1);
                write_atomically(&path, format!("{version} {}\n", new.to_hex()).as_bytes())?;
                Ok(Ok(Version(version.to_string())))
            })
            .await?;
        outcome
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.blocking(move |root| {
            let mut heads = Vec::new();
            for entry in fs::read_dir(root.join("heads"))? {
                let entry = entry?;
                // Temporary files start with a dot; a head file's name is hex.
                let Some(name) = entry.file_name().to_str().and_then(unhex) else {
                    continue;
                };
                if let Some(head) = read_head(&entry.path())?.and_then(head) {
                    heads.push((name, head));
                }
            }
            heads.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(heads)
        })
        .await
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        let name = name.to_owned();
        let expected = expected.clone();
        self.blocking(move |root| {
            let _one_at_a_time = CAS_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            let path = DirStorage::head_path(root, &name);
            let file = read_head(&path)?;
            let current = file.and_then(head);
            if current.as_ref().map(|h| &h.version) != Some(&expected) {
                return Ok(Err(StorageError::HeadConflict { name, current }));
            }
            let version = file.map_or(0, |(v, _)| v);
            write_atomically(&path, format!("{version} {DELETED}\n").as_bytes())?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        self.blocking(move |root| {
            let mut addresses = Vec::new();
            for entry in fs::read_dir(root.join("blobs"))? {
                // Temporary files start with a dot and are no address.
                if let Some(a) = entry?
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<Address>().ok())
                {
                    if after.is_none_or(|after| a > after) {
                        addresses.push(a);
                    }
                }
            }
            addresses.sort_unstable();
            addresses.truncate(limit);
            Ok(addresses)
        })
        .await
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        let addresses = addresses.to_vec();
        self.blocking(move |root| {
            for a in &addresses {
                match fs::remove_file(DirStorage::blob_path(root, a)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        })
        .await
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        let addresses = self.list_blobs(after, limit).await?;
        self.blocking(move |root| {
            let mut out = Vec::with_capacity(addresses.len());
            for address in addresses {
                match fs::metadata(DirStorage::blob_path(root, &address)) {
                    Ok(meta) => out.push(BlobStamp {
                        address,
                        written: meta.modified()?,
                        len: meta.len(),
                    }),
                    // Deleted since it was listed.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
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
        let addresses = addresses.to_vec();
        self.blocking(move |root| {
            let _one_at_a_time = BLOB_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            let mut deleted = Vec::new();
            for a in &addresses {
                let path = DirStorage::blob_path(root, a);
                let written = match fs::metadata(&path) {
                    Ok(meta) => meta.modified()?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if written < written_before {
                    fs::remove_file(&path)?;
                    deleted.push(*a);
                }
            }
            Ok(deleted)
        })
        .await
    }
}

/// Makes each store in a temporary directory of its own, which lives as long as the
/// factory (one per test).
#[derive(Default)]
pub struct DirFactory {
    dirs: Mutex<Vec<TempDir>>,
}

#[async_trait]
impl Factory for DirFactory {
    type Store = DirStorage;

    async fn create(&self) -> Result<DirStorage, StorageError> {
        let (dir, store) = tokio::task::spawn_blocking(|| {
            let dir = tempfile::tempdir()?;
            let store = DirStorage::open(dir.path())?;
            Ok::<_, io::Error>((dir, store))
        })
        .await
        .map_err(StorageError::backend)?
        .map_err(io_error)?;
        self.dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(dir);
        Ok(store)
    }

    async fn reopen(&self, store: DirStorage) -> Result<DirStorage, StorageError> {
        let root = store.root.clone();
        drop(store);
        tokio::task::spawn_blocking(move || DirStorage::open(root))
            .await
            .map_err(StorageError::backend)?
            .map_err(io_error)
    }
}

conformance::suite!(DirFactory::default());

// A backend kept in a directory also runs the test across processes: one db over two
// storages, each step in a process of its own.
conformance::processes_test!(|dir: &Path| -> Arc<dyn Storage> {
    match DirStorage::open(dir) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the directory store must open: {e}"),
    }
});
