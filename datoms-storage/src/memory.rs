//! `MemoryStorage`: blobs and heads in a map. For tests, benchmarks, and replicas that
//! keep everything in one process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::Address;

use crate::error::StorageError;
use crate::signal::{HeadChanges, HeadSignal};
use crate::storage::{BlobStamp, Head, Storage, Version};

/// An in-memory [`Storage`]. Head versions are a counter; a CAS is atomic under one lock.
/// Each blob keeps its write stamp (in milliseconds, refreshed by every put of its
/// address) beside its bytes; [`Storage::delete_stale`] checks and deletes under the
/// same lock as puts.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
    moved: HeadSignal,
}

#[derive(Debug, Default)]
struct State {
    blobs: BTreeMap<Address, Bytes>,
    /// Each blob's write stamp, milliseconds since the Unix epoch.
    written: HashMap<Address, u64>,
    heads: HashMap<String, (Address, u64)>,
    next_version: u64,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StorageError> {
        self.state
            .lock()
            .map_err(|_| StorageError::backend("memory storage lock poisoned"))
    }

    /// Replaces the bytes of a stored blob, bypassing content addressing. For tests that
    /// simulate corruption.
    pub fn corrupt(&self, address: &Address, bytes: Bytes) -> Result<(), StorageError> {
        self.state()?.blobs.insert(*address, bytes);
        Ok(())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        let state = self.state()?;
        Ok(addresses
            .iter()
            .map(|a| state.blobs.get(a).cloned())
            .collect())
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        let mut state = self.state()?;
        for (a, b) in blobs {
            state.blobs.entry(*a).or_insert_with(|| b.clone());
            let old = state.written.get(a).copied();
            state.written.insert(*a, BlobStamp::stamp_millis(old));
        }
        Ok(())
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        Ok(self.state()?.heads.get(name).map(|(commit, v)| Head {
            commit: *commit,
            version: Version(v.to_string()),
        }))
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        let mut state = self.state()?;
        let current = state.heads.get(name).map(|(commit, v)| Head {
            commit: *commit,
            version: Version(v.to_string()),
        });
        if current.as_ref().map(|h| &h.version) != expected {
            return Err(StorageError::HeadConflict {
                name: name.to_owned(),
                current,
            });
        }
        state.next_version += 1;
        let v = state.next_version;
        state.heads.insert(name.to_owned(), (new, v));
        drop(state);
        self.moved.moved();
        Ok(Version(v.to_string()))
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        let state = self.state()?;
        let mut heads: Vec<(String, Head)> = state
            .heads
            .iter()
            .map(|(name, (commit, v))| {
                let head = Head {
                    commit: *commit,
                    version: Version(v.to_string()),
                };
                (name.clone(), head)
            })
            .collect();
        heads.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(heads)
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        let mut state = self.state()?;
        let current = state.heads.get(name).map(|(commit, v)| Head {
            commit: *commit,
            version: Version(v.to_string()),
        });
        if current.as_ref().map(|h| &h.version) != Some(expected) {
            return Err(StorageError::HeadConflict {
                name: name.to_owned(),
                current,
            });
        }
        state.heads.remove(name);
        drop(state);
        self.moved.moved();
        Ok(())
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        let state = self.state()?;
        let range = match after {
            Some(a) => state
                .blobs
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => state.blobs.range(..),
        };
        Ok(range.take(limit).map(|(a, _)| *a).collect())
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        let mut state = self.state()?;
        for a in addresses {
            state.blobs.remove(a);
            state.written.remove(a);
        }
        Ok(())
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        let state = self.state()?;
        let range = match after {
            Some(a) => state
                .blobs
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => state.blobs.range(..),
        };
        Ok(range
            .take(limit)
            .map(|(a, b)| BlobStamp {
                address: *a,
                written: BlobStamp::from_millis(state.written.get(a).copied().unwrap_or(0)),
                len: b.len() as u64,
            })
            .collect())
    }

    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        let cutoff = BlobStamp::millis(written_before);
        let mut state = self.state()?;
        let mut deleted = Vec::new();
        for a in addresses {
            let stale =
                state.blobs.contains_key(a) && state.written.get(a).copied().unwrap_or(0) < cutoff;
            if stale {
                state.blobs.remove(a);
                state.written.remove(a);
                deleted.push(*a);
            }
        }
        Ok(deleted)
    }

    /// Every writer of a memory storage goes through this value: a move is signalled
    /// at once.
    fn head_changes(&self) -> Option<HeadChanges> {
        Some(self.moved.subscribe())
    }
}
