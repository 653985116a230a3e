//! The `Storage` trait: what a backend must do, and nothing more. Small and batched:
//! content-addressed blobs (nodes and commits) and named heads moved by compare-and-swap.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::Address;

use crate::error::StorageError;
use crate::signal::HeadChanges;

/// An opaque version of a head, as the backend defines it (a counter, an ETag…). Only
/// equality matters: a CAS names the version it expects to replace.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(pub String);

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a named head points, and the version to name when moving it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The commit the head points to.
    pub commit: Address,
    /// The head's current version.
    pub version: Version,
}

/// How a backend likes to be driven. Drivers use it to size and parallelize requests;
/// it never decides which correctness cases a backend runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The most addresses (or blobs) per `get_many` / `put_many` / `delete_many` call.
    pub max_batch: usize,
    /// How many batch calls drivers keep in flight at once.
    pub concurrency: usize,
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities {
            max_batch: 1024,
            concurrency: 4,
        }
    }
}

/// What one request of a one-round-trip sync brings (see [`Storage::sync_bundle`] and
/// [`crate::bundle`]): where the head is, and the blobs a replica at the `have` commit
/// lacks to restore it, the head's commit first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncBundle {
    /// The head as the server read it.
    pub head: Head,
    /// Blobs by address. The receiver verifies each against its address as any restore
    /// does; a blob the restore turns out to need that is not here is fetched as usual.
    pub blobs: Vec<(Address, Bytes)>,
    /// False when the sender stopped at its size limit: the rest is fetched as usual.
    pub complete: bool,
}

/// A stored blob as a listing for garbage collection sees it (see
/// [`Storage::list_blob_stamps`] and [`crate::gc()`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobStamp {
    /// The blob's address.
    pub address: Address,
    /// When the blob was last written: its first put, or a later put of the same address,
    /// which refreshes it. Never earlier than that write (a backend whose clock is coarse
    /// rounds up), so a blob whose stamp is older than a cutoff was not written since.
    pub written: SystemTime,
    /// The blob's size in bytes.
    pub len: u64,
}

impl BlobStamp {
    /// `time` as whole milliseconds since the Unix epoch, rounded up (0 for a time
    /// before the epoch): how backends store a stamp and compare one with a cutoff.
    /// Rounding up keeps both sides right: a stamp is never earlier than its write, and a
    /// whole-millisecond stamp is earlier than `millis(cutoff)` exactly when it is earlier
    /// than `cutoff`.
    pub fn millis(time: SystemTime) -> u64 {
        time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| {
            u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
        })
    }

    /// The time `millis` milliseconds after the Unix epoch.
    pub fn from_millis(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(millis)
    }

    /// The stamp a put gives a blob last stamped `old` (`None`: a new blob): now, in
    /// whole milliseconds rounded up (never earlier than the write), and never earlier
    /// than `old`, so a clock stepping backwards cannot make a re-put blob look older.
    pub fn stamp_millis(old: Option<u64>) -> u64 {
        BlobStamp::millis(SystemTime::now()).max(old.unwrap_or(0))
    }
}

/// A place to keep a database: content-addressed blobs plus named heads.
///
/// Blobs are immutable and keyed by the BLAKE3 hash of their bytes, so puts are
/// idempotent and safe to run concurrently. A head moves only by [`Storage::cas_head`],
/// which never overwrites silently.
///
/// Every backend runs the `conformance` crate's suite, which is the precise contract.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// The blobs stored at `addresses`, `None` where absent, in the same order.
    ///
    /// # Errors
    /// [`StorageError::Transient`] (retryable) or [`StorageError::Backend`].
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError>;

    /// Stores blobs. Storing an address that exists keeps its bytes (the first write
    /// wins) but refreshes its write stamp (see [`Storage::list_blob_stamps`]), so that a
    /// store in flight that reuses a blob garbage collection was about to delete keeps it
    /// (see [`Storage::delete_stale`]). A backend may skip re-putting a blob this handle
    /// itself wrote less than a bounded time ago, which it documents (S3: its "known
    /// stored" set); garbage collection's grace period must exceed that time. Callers
    /// pass bytes that hash to their address.
    ///
    /// # Errors
    /// [`StorageError::Transient`] or [`StorageError::Backend`]; some blobs may have been
    /// written (they are content-addressed, so a retry is safe).
    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError>;

    /// Where head `name` points, or `None` if it does not exist.
    ///
    /// # Errors
    /// [`StorageError::Transient`] or [`StorageError::Backend`].
    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError>;

    /// Moves head `name` to `new` if its version is `expected` (`None`: only if the head
    /// does not exist yet), atomically. Returns the new version.
    ///
    /// # Errors
    /// [`StorageError::HeadConflict`] with the current head if the version differs;
    /// transient or backend errors, after which the head is either moved or not.
    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError>;

    /// Every head, in name order (what a branch listing shows).
    ///
    /// # Errors
    /// [`StorageError::Transient`] or [`StorageError::Backend`].
    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError>;

    /// Deletes head `name` if its version is `expected`, atomically (a compare-and-
    /// delete: a head another writer moved is never deleted). Blobs stay; a later
    /// [`Storage::cas_head`] with `expected: None` creates the head again.
    ///
    /// # Errors
    /// [`StorageError::HeadConflict`] with the current head (`None` if there is none) if
    /// the version differs; transient or backend errors, after which the head is either
    /// deleted or not.
    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError>;

    /// Up to `limit` stored blob addresses greater than `after`, in address order (a page
    /// of a full listing; an empty page ends it).
    ///
    /// # Errors
    /// [`StorageError::Transient`] or [`StorageError::Backend`].
    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError>;

    /// Deletes blobs (absent ones are ignored).
    ///
    /// # Errors
    /// [`StorageError::Transient`] or [`StorageError::Backend`].
    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError>;

    /// Up to `limit` stored blobs with addresses greater than `after`, in address order,
    /// each with its write stamp and size (a page of a full listing; an empty page ends
    /// it): what garbage collection needs to tell an old blob from a young one.
    ///
    /// # Errors
    /// [`StorageError::Transient`] or [`StorageError::Backend`].
    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError>;

    /// Deletes each blob of `addresses` whose write stamp is still earlier than
    /// `written_before`, and returns the addresses it deleted (absent blobs and blobs
    /// written or re-put since are left alone and not returned). The check and the delete
    /// are one atomic step per blob where the backend allows it (see each backend's
    /// docs), so a blob a concurrent [`Storage::put_many`] refreshed is never deleted:
    /// either the delete comes first and the put writes the blob again, or the put comes
    /// first and the delete sees its fresh stamp.
    ///
    /// # Errors
    /// [`StorageError::Transient`] or [`StorageError::Backend`]; some blobs may have been
    /// deleted (they were unreachable and stale, so a retry is safe).
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: SystemTime,
    ) -> Result<Vec<Address>, StorageError>;

    /// How drivers should batch requests to this backend.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The change signal, an optional capability: a receiver woken right after a head
    /// of this storage moves through this handle (see [`crate::signal`]). Followers wait
    /// on it beside their poll timer. `None` (the default) means the backend has no such
    /// signal and is followed by polling alone; a wrapper forwards its inner storage's.
    fn head_changes(&self) -> Option<HeadChanges> {
        None
    }

    /// One-round-trip sync, an optional capability of remote backends whose server can
    /// compute what a replica lacks (an HTTP server running a [`crate::bundle::BundleMaker`]
    /// next to its storage): head `name` and every blob a replica at commit `have` (or an
    /// empty one) needs to restore it, in one request. `Ok(None)` (the default) means the
    /// backend has no such capability, and [`crate::restore_from`] and [`crate::sync()`]
    /// read the head and fetch level by level as usual. Nothing in a bundle is trusted:
    /// the restore verifies every blob it takes against its address.
    ///
    /// # Errors
    /// As [`Storage::get_head`] and [`Storage::get_many`]; [`StorageError::NoHead`] if the
    /// head does not exist.
    async fn sync_bundle(
        &self,
        name: &str,
        have: Option<Address>,
    ) -> Result<Option<SyncBundle>, StorageError> {
        let _ = (name, have);
        Ok(None)
    }
}

#[async_trait]
impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        (**self).get_many(addresses).await
    }
    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        (**self).put_many(blobs).await
    }
    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        (**self).get_head(name).await
    }
    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        (**self).cas_head(name, expected, new).await
    }
    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        (**self).list_heads().await
    }
    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        (**self).delete_head(name, expected).await
    }
    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        (**self).list_blobs(after, limit).await
    }
    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        (**self).delete_many(addresses).await
    }
    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        (**self).list_blob_stamps(after, limit).await
    }
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        (**self).delete_stale(addresses, written_before).await
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn head_changes(&self) -> Option<HeadChanges> {
        (**self).head_changes()
    }
    async fn sync_bundle(
        &self,
        name: &str,
        have: Option<Address>,
    ) -> Result<Option<SyncBundle>, StorageError> {
        (**self).sync_bundle(name, have).await
    }
}
