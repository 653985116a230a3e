//! One-round-trip sync: both halves of [`Storage::sync_bundle`].
//!
//! A replica far from its storage (across a network) pays a round trip per tree level
//! when it restores level by level. A server next to the storage can do that walk for
//! it: [`make_bundle`] runs the same restore machine the replica would run, against a
//! replica at the commit the client says it has (`have`), restored lazily from the
//! server's own storage, and collects every blob the machine asks for. The client gets
//! them in one response ([`SyncBundle`]) and runs its own restore over them
//! ([`Prefetched`]): every blob it takes is verified against its address, as in any
//! restore, and anything its restore needs that the bundle lacks (its db1 differs from
//! the server's idea of `have`, the bundle was cut at the size limit, a large value a
//! lazily restored db1 had not loaded) is fetched through the plain blob API. A bundle
//! can make a restore cheaper, never wrong.
//!
//! When `have` is unknown to the server (another storage's commit, a garbage-collected
//! one, none), the bundle is what a new, empty replica needs: the whole head.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use datoms_core::restore::{Machine, Mode, Step};
use datoms_core::{Address, Db, Restore};

use crate::batch::{get_batched, retry};
use crate::error::StorageError;
use crate::restore::restore_commit;
use crate::source::StorageSource;
use crate::storage::{Storage, SyncBundle};

/// How large a bundle [`make_bundle`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleLimits {
    /// Once the blobs reach this many bytes, no further level is added and the bundle
    /// is marked incomplete (the client fetches the rest level by level).
    pub max_bytes: u64,
}

impl Default for BundleLimits {
    /// 64 MiB.
    fn default() -> BundleLimits {
        BundleLimits {
            max_bytes: 64 << 20,
        }
    }
}

/// The bundle for a replica at commit `have` (or an empty one) to restore head `name`
/// of `source`'s storage: the blobs the restore machine asks for, in the order it asks,
/// the head's commit first. `have` equal to the head gives an empty bundle. The server's
/// replica at `have` is restored lazily through `source` (shared between requests, its
/// node cache serves them all).
///
/// # Errors
/// [`StorageError::NoHead`] if the head does not exist; storage errors; a node of the
/// head that is missing or corrupt in the server's own storage.
#[tracing::instrument(name = "sync_bundle", level = "info", skip(source, limits), fields(have = ?have))]
pub async fn make_bundle(
    source: &Arc<StorageSource>,
    name: &str,
    have: Option<Address>,
    limits: BundleLimits,
) -> Result<SyncBundle, StorageError> {
    let storage = &**source.storage();
    let head = retry(|| storage.get_head(name))
        .await?
        .ok_or_else(|| StorageError::NoHead {
            name: name.to_owned(),
        })?;
    if have == Some(head.commit) {
        return Ok(SyncBundle {
            head,
            blobs: Vec::new(),
            complete: true,
        });
    }
    let db1 = match have {
        Some(commit) => replica_at(source, commit).await?,
        None => None,
    };
    let mut machine = Restore::with_mode(head.commit, db1.as_ref(), Mode::Eager);
    let (mut blobs, mut bytes, mut complete) = (Vec::new(), 0u64, true);
    // Done: the machine has every blob it needs (its db is the server's, not sent).
    while let Step::Need(addresses) = machine.poll()? {
        if bytes >= limits.max_bytes {
            complete = false;
            break;
        }
        let got = get_batched(storage, &addresses).await?;
        for (address, blob) in addresses.iter().zip(got) {
            machine.accept(*address, blob.as_deref())?;
            if let Some(blob) = blob {
                bytes += blob.len() as u64;
                blobs.push((*address, blob));
            }
        }
    }
    tracing::info!(
        head = %head.commit,
        known_have = db1.is_some(),
        blobs = blobs.len(),
        bytes,
        complete,
        "bundle made"
    );
    Ok(SyncBundle {
        head,
        blobs,
        complete,
    })
}

/// The replica at `commit`, restored lazily from `source`'s storage; `None` when this
/// storage does not hold that commit (the bundle is then a full one).
async fn replica_at(
    source: &Arc<StorageSource>,
    commit: Address,
) -> Result<Option<Db>, StorageError> {
    match restore_commit(&**source.storage(), commit, None, Mode::Lazy).await {
        Ok(r) => Ok(Some(r.db.with_source(source.clone()))),
        Err(e) if e.is_transient() || matches!(e, StorageError::Backend { .. }) => Err(e),
        Err(e) => {
            tracing::debug!(%commit, error = %e, "have is not a commit here: a full bundle");
            Ok(None)
        }
    }
}

/// The client half: a bundle's blobs, served to a restore before the storage is asked.
/// It counts the real requests: the bundle's one, and one per batch of misses.
#[derive(Debug)]
pub(crate) struct Prefetched {
    blobs: HashMap<Address, Bytes>,
    /// Requests made: the bundle, then each fetch of misses.
    pub(crate) round_trips: u64,
    /// Bytes received: the whole bundle, then the misses.
    pub(crate) bytes: u64,
}

impl Prefetched {
    /// The blobs of a bundle, received in one request.
    pub(crate) fn new(blobs: Vec<(Address, Bytes)>) -> Prefetched {
        let bytes = blobs.iter().map(|(_, b)| b.len() as u64).sum();
        Prefetched {
            blobs: blobs.into_iter().collect(),
            round_trips: 1,
            bytes,
        }
    }

    /// The blobs at `addresses`, from the bundle where it has them, else from `storage`
    /// in one batched request (`None` where the storage has none either).
    pub(crate) async fn fetch<S: Storage + ?Sized>(
        &mut self,
        storage: &S,
        addresses: &[Address],
    ) -> Result<Vec<Option<Bytes>>, StorageError> {
        let mut out: Vec<Option<Bytes>> = addresses
            .iter()
            .map(|a| self.blobs.get(a).cloned())
            .collect();
        let missing: Vec<Address> = addresses
            .iter()
            .zip(&out)
            .filter(|(_, b)| b.is_none())
            .map(|(a, _)| *a)
            .collect();
        if !missing.is_empty() {
            tracing::debug!(
                missing = missing.len(),
                "blobs the bundle lacks: fetched as usual"
            );
            let got = get_batched(storage, &missing).await?;
            self.round_trips += 1;
            self.bytes += got.iter().flatten().map(|b| b.len() as u64).sum::<u64>();
            let mut got = got.into_iter();
            for slot in out.iter_mut().filter(|b| b.is_none()) {
                *slot = got.next().flatten();
            }
        }
        Ok(out)
    }
}

/// Drives `machine` over a bundle (misses fetched from `storage`); the stats count the
/// requests and bytes really exchanged.
pub(crate) async fn run_prefetched<S: Storage + ?Sized, M: Machine>(
    storage: &S,
    mut machine: M,
    prefetched: &mut Prefetched,
) -> Result<crate::Restored, StorageError> {
    loop {
        match machine.poll()? {
            Step::Need(addresses) => {
                let blobs = prefetched.fetch(storage, &addresses).await?;
                for (a, b) in addresses.iter().zip(blobs) {
                    machine.accept(*a, b.as_deref())?;
                }
            }
            Step::Done(db) => {
                let mut stats = machine.stats();
                stats.round_trips = prefetched.round_trips;
                stats.bytes_fetched = prefetched.bytes;
                return Ok(crate::Restored { db, stats });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use datoms_core::tree::TreeConfig;
    use datoms_core::Schema;
    use proptest::prelude::*;

    use super::*;
    use crate::storage::{Head, Version};
    use crate::{restore_from, store, sync, MemoryStorage, SyncPolicy};

    /// A memory storage that answers sync bundles itself, as a server would, and
    /// records the addresses of every plain `get_many`.
    #[derive(Debug)]
    struct Bundling {
        source: Arc<StorageSource>,
        inner: Arc<MemoryStorage>,
        gets: Mutex<Vec<Address>>,
        bundles: bool,
    }

    impl Bundling {
        fn new(inner: Arc<MemoryStorage>, bundles: bool) -> Bundling {
            let source = StorageSource::new(inner.clone(), 1 << 20).expect("a source");
            Bundling {
                source,
                inner,
                gets: Mutex::new(Vec::new()),
                bundles,
            }
        }

        fn take(&self) -> Vec<Address> {
            self.gets
                .lock()
                .map(|mut g| g.drain(..).collect())
                .unwrap_or_default()
        }
    }

    #[async_trait]
    impl Storage for Bundling {
        async fn get_many(
            &self,
            addresses: &[Address],
        ) -> Result<Vec<Option<Bytes>>, StorageError> {
            if let Ok(mut g) = self.gets.lock() {
                g.extend_from_slice(addresses);
            }
            self.inner.get_many(addresses).await
        }
        async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
            self.inner.put_many(blobs).await
        }
        async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
            self.inner.get_head(name).await
        }
        async fn cas_head(
            &self,
            name: &str,
            expected: Option<&Version>,
            new: Address,
        ) -> Result<Version, StorageError> {
            self.inner.cas_head(name, expected, new).await
        }
        async fn list_blobs(
            &self,
            after: Option<Address>,
            limit: usize,
        ) -> Result<Vec<Address>, StorageError> {
            self.inner.list_blobs(after, limit).await
        }
        async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
            self.inner.delete_many(addresses).await
        }
        async fn sync_bundle(
            &self,
            name: &str,
            have: Option<Address>,
        ) -> Result<Option<SyncBundle>, StorageError> {
            if !self.bundles {
                return Ok(None);
            }
            make_bundle(&self.source, name, have, BundleLimits::default())
                .await
                .map(Some)
        }
    }

    fn empty() -> Db {
        Db::with_config(
            Schema::new(),
            TreeConfig {
                leaf_target: 8,
                branch_target: 4,
            },
        )
    }

    fn tx(db: &Db, first: u32, n: u32) -> Db {
        let maps: String = (first..first + n)
            .map(|i| format!("{{:person/name \"p{i}\" :person/age {}}}", i % 50))
            .collect();
        db.with_edn(&format!("[{maps}]"))
            .expect("a valid transaction")
            .db_after
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// A restore over a bundle equals the plain one, takes one request, and fetches
        /// the very blobs the plain restore fetches, whatever commit the replica is at.
        #[test]
        fn a_bundle_holds_exactly_what_the_plain_restore_fetches(
            initial in 1u32..200,
            steps in proptest::collection::vec(1u32..40, 1..5),
            behind in 0usize..5,
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(async {
                let memory = Arc::new(MemoryStorage::new());
                let (bundled, plain) = (Bundling::new(memory.clone(), true), Bundling::new(memory.clone(), false));
                let mut db = store(&tx(&empty(), 0, initial), &*memory, "main").await?.db;
                let mut history = vec![db.clone()];
                let mut next = initial;
                for n in steps {
                    db = store(&tx(&db, next, n), &*memory, "main").await?.db;
                    next += n;
                    history.push(db.clone());
                }
                let replica = history[history.len().saturating_sub(1 + behind)].clone();
                for db1 in [replica, empty()] {
                    let via_bundle = restore_from(&db1, &bundled, "main").await?;
                    prop_assert_eq!(via_bundle.stats.round_trips, 1);
                    let outside = bundled.take();
                    prop_assert!(outside.is_empty(), "a complete bundle leaves nothing to fetch: {:?}", outside);
                    let direct = restore_from(&db1, &plain, "main").await?;
                    prop_assert_eq!(via_bundle.db.root_addresses(), db.root_addresses());
                    prop_assert_eq!(direct.db.root_addresses(), db.root_addresses());
                    let fetched: std::collections::BTreeSet<Address> = plain.take().into_iter().collect();
                    let bundle = make_bundle(&bundled.source, "main", db1.base_commit(), BundleLimits::default()).await?;
                    let sent: std::collections::BTreeSet<Address> = bundle.blobs.iter().map(|(a, _)| *a).collect();
                    if db1.base_commit().is_some() {
                        prop_assert_eq!(sent, fetched);
                    } else {
                        // Without a commit the server knows nothing of db1: it sends the
                        // whole head, of which an empty db1 already holds the empty trees.
                        prop_assert!(sent.is_superset(&fetched));
                    }
                    prop_assert!(bundle.complete);
                    let synced = sync(&db1, &bundled, "main", SyncPolicy::Auto).await?;
                    prop_assert_eq!(synced.db.root_addresses(), db.root_addresses());
                    prop_assert_eq!(synced.stats.round_trips, 1);
                }
                Ok::<(), TestCaseError>(())
            })?;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_bundle_and_an_unknown_have_still_restore() -> Result<(), StorageError> {
        let memory = Arc::new(MemoryStorage::new());
        let db = store(&tx(&empty(), 0, 150), &*memory, "main").await?.db;
        let bundled = Bundling::new(memory.clone(), true);
        let cut = make_bundle(&bundled.source, "main", None, BundleLimits { max_bytes: 1 }).await?;
        assert!(!cut.complete);
        assert!(
            cut.blobs.len()
                < make_bundle(&bundled.source, "main", None, BundleLimits::default())
                    .await?
                    .blobs
                    .len()
        );
        let unknown = Some(Address::of(b"no such commit"));
        let full = make_bundle(&bundled.source, "main", None, BundleLimits::default()).await?;
        assert_eq!(
            make_bundle(&bundled.source, "main", unknown, BundleLimits::default()).await?,
            full
        );
        assert!(matches!(
            make_bundle(&bundled.source, "other", None, BundleLimits::default()).await,
            Err(StorageError::NoHead { .. })
        ));
        let at_head = make_bundle(
            &bundled.source,
            "main",
            db.base_commit(),
            BundleLimits::default(),
        )
        .await?;
        assert!(at_head.blobs.is_empty() && at_head.complete);
        Ok(())
    }
}
