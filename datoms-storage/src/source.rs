//! [`StorageSource`]: where a lazily restored db loads the nodes it has not read yet.
//!
//! The tree asks for nodes synchronously, from whatever thread reads the db; the
//! storage is async. A db is a value that may outlive the runtime that restored it and
//! be read from any thread, so the source does not borrow the caller's runtime: it owns
//! a small runtime ([`IoRuntime`], one worker thread) that runs the storage's futures,
//! and the reading thread blocks on a channel until its batch is there. That works from
//! a thread in no runtime, inside a current-thread runtime (whose one thread may be the
//! one that would have to drive the I/O), on a multi-thread runtime's worker (through
//! `block_in_place`), and after the restoring runtime is dropped.

use std::sync::Arc;

use bytes::Bytes;
use datoms_core::tree::{Node, NodeSource};
use datoms_core::{Address, IndexKind, LargeValue};

use crate::batch::retry;
use crate::cache::NodeCache;
use crate::error::StorageError;
use crate::runtime::IoRuntime;
use crate::storage::Storage;

/// The name of the threads of a source's runtime.
pub const SOURCE_THREAD_NAME: &str = "datoms-node-source";

/// Loads nodes of lazily restored dbs from a [`Storage`], through a [`NodeCache`].
///
/// Reads block the calling thread while the source's own runtime runs the storage
/// requests (see the module docs), so a lazily restored db reads from any thread and
/// any runtime, or from none, for as long as it lives. A storage whose futures need the
/// caller's runtime to make progress (a custom backend that hands work to a task it
/// spawned there) would stall a current-thread caller; the backends of this workspace
/// run their I/O on runtimes of their own.
pub struct StorageSource {
    storage: Arc<dyn Storage>,
    io: IoRuntime,
    cache: NodeCache,
}

impl std::fmt::Debug for StorageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSource")
            .field("storage", &self.storage)
            .field("cache", &self.cache)
            .finish()
    }
}

impl StorageSource {
    /// A source over `storage` with a cache of `cache_bytes`, and a runtime of its own.
    /// Callable from any thread, inside a runtime or not.
    ///
    /// # Errors
    /// [`StorageError::Backend`] if the source's runtime thread cannot be started.
    pub fn new(
        storage: Arc<dyn Storage>,
        cache_bytes: usize,
    ) -> Result<Arc<StorageSource>, StorageError> {
        Ok(Arc::new(StorageSource {
            storage,
            io: IoRuntime::new(SOURCE_THREAD_NAME, 1)?,
            cache: NodeCache::new(cache_bytes),
        }))
    }

    /// The cache (for its counters).
    pub fn cache(&self) -> &NodeCache {
        &self.cache
    }

    /// The storage it reads.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Fetches blobs in batches of the storage's `max_batch`, blocking the calling
    /// thread (see the type's docs).
    fn fetch(&self, addresses: Vec<Address>) -> Result<Vec<Option<Bytes>>, StorageError> {
        let storage = self.storage.clone();
        self.io.block_on(async move {
            let batch = storage.capabilities().max_batch.max(1);
            let mut out = Vec::with_capacity(addresses.len());
            for chunk in addresses.chunks(batch) {
                out.extend(retry(|| storage.get_many(chunk)).await?);
            }
            Ok::<_, StorageError>(out)
        })?
    }
}

impl StorageSource {
    /// Decodes a fetched node, fetching the large values it references that nothing in
    /// this process holds (verified, and held while it decodes again).
    fn decode(
        &self,
        address: Address,
        bytes: &[u8],
        kind: IndexKind,
    ) -> Result<Node, datoms_core::Error> {
        let large = match Node::decode(address, bytes, kind) {
            Err(datoms_core::Error::LargeValuesMissing { addresses, .. }) => addresses,
            other => return other,
        };
        let unavailable = |e: StorageError| match e {
            StorageError::Core(e) => e,
            other => datoms_core::Error::NodeUnavailable {
                address: large[0],
                reason: format!("large value of node {address}: {other}"),
            },
        };
        let blobs = self.fetch(large.clone()).map_err(unavailable)?;
        let _held = crate::large::take(&large, blobs).map_err(unavailable)?;
        Node::decode(address, bytes, kind)
    }
}

impl NodeSource for StorageSource {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn load(&self, address: &Address, kind: IndexKind) -> Result<Arc<Node>, datoms_core::Error> {
        let mut nodes = self.load_many(&[(*address, kind)])?;
        nodes
            .pop()
            .ok_or_else(|| datoms_core::Error::NodeUnavailable {
                address: *address,
                reason: "the source returned nothing".into(),
            })
    }

    fn load_many(
        &self,
        wanted: &[(Address, IndexKind)],
    ) -> Result<Vec<Arc<Node>>, datoms_core::Error> {
        let mut out: Vec<Option<Arc<Node>>> =
            wanted.iter().map(|(a, _)| self.cache.get(a)).collect();
        let missing: Vec<usize> = (0..wanted.len()).filter(|i| out[*i].is_none()).collect();
        if !missing.is_empty() {
            let addresses: Vec<Address> = missing.iter().map(|i| wanted[*i].0).collect();
            let blobs = self
                .fetch(addresses)
                .map_err(|e| datoms_core::Error::NodeUnavailable {
                    address: wanted[missing[0]].0,
                    reason: e.to_string(),
                })?;
            for (i, bytes) in missing.into_iter().zip(blobs) {
                let (address, kind) = wanted[i];
                let bytes = bytes.ok_or_else(|| datoms_core::Error::NodeUnavailable {
                    address,
                    reason: "missing from storage".into(),
                })?;
                let node = Arc::new(self.decode(address, &bytes, kind)?);
                let large: usize = node.large_values().iter().map(LargeValue::len).sum();
                self.cache
                    .insert(address, node.clone(), bytes.len() + large);
                out[i] = Some(node);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}
