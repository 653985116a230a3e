//! One-round-trip sync: both halves of [`Storage::sync_bundle`].
//!
//! A replica far from its storage (across a network) pays a round trip per tree level
//! when it restores level by level. A server next to the storage can do that walk for
//! it: [`BundleMaker::bundle`] runs the same restore machine the replica would run,
//! against its own replica at the commit the client says it has (`have`), and collects
//! every blob the machine asks for. The client gets them in one response
//! ([`SyncBundle`]) and runs its own restore over them (a map of prefetched blobs in
//! front of the storage): every blob it takes is verified against its address, as in
//! any restore, and anything its restore needs that the bundle lacks (its db1 differs from
//! the server's idea of `have`, the bundle was cut at the size limit, a large value a
//! lazily restored db1 had not loaded) is fetched through the plain blob API. A bundle
//! can make a restore cheaper, never wrong.
//!
//! When `have` is unknown to the server (another storage's commit, a garbage-collected
//! one, none), the bundle is what a new, empty replica needs: the whole head.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datoms_core::restore::{Machine, Mode, Step};
use datoms_core::{Address, Db, Restore};

use crate::batch::{get_batched, retry};
use crate::error::StorageError;
use crate::restore::restore_commit;
use crate::storage::{Storage, SyncBundle};

/// How large a bundle [`BundleMaker`] makes.
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

/// Makes sync bundles for one storage, keeping the last few replicas it restored.
///
/// For a bundle to be exactly what the client's restore will ask for, the server's
/// replica at `have` must hold what the client's holds: a fully loaded db (a lazily
/// restored one makes the machine stop at nodes it has not loaded, and the bundle would
/// fall short). Restoring it from scratch for each request would read the whole db, so
/// the maker keeps the last [`BundleMaker::new`]`(…, keep)` replicas (fully loaded dbs,
/// which share their unchanged subtrees in memory) and restores a new `have`
/// incrementally from the most recent one; each bundle's head db joins them, so the
/// next client at that head costs nothing to prepare. The full bundle of the head (for
/// a new replica) is kept too: many new replicas of one head are served from memory.
pub struct BundleMaker {
    storage: Arc<dyn Storage>,
    limits: BundleLimits,
    keep: usize,
    /// Fully loaded replicas by commit, most recently used first.
    replicas: Mutex<VecDeque<(Address, Db)>>,
    /// The last full bundle (for a replica with no commit this storage knows).
    full: Mutex<Option<SyncBundle>>,
}

impl std::fmt::Debug for BundleMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleMaker")
            .field("storage", &self.storage)
            .field("limits", &self.limits)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl BundleMaker {
    /// A maker over `storage` that keeps `keep` replicas (at least one).
    pub fn new(storage: Arc<dyn Storage>, limits: BundleLimits, keep: usize) -> BundleMaker {
        BundleMaker {
            storage,
            limits,
            keep: keep.max(1),
            replicas: Mutex::new(VecDeque::new()),
            full: Mutex::new(None),
        }
    }

    /// The bundle for a replica at commit `have` (or an empty one) to restore head
    /// `name`: the blobs the restore machine asks for, in the order it asks, the head's
    /// commit first. `have` equal to the head gives an empty bundle; a `have` this
    /// storage does not hold gives the full bundle.
    ///
    /// # Errors
    /// [`StorageError::NoHead`] if the head does not exist; storage errors; a node of the
    /// head that is missing or corrupt in this storage.
    #[tracing::instrument(name = "sync_bundle", level = "info", skip(self), fields(have = ?have))]
    pub async fn bundle(
        &self,
        name: &str,
        have: Option<Address>,
    ) -> Result<SyncBundle, StorageError> {
        let storage = &*self.storage;
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
            Some(commit) => self.replica_at(commit).await?,
            None => None,
        };
        if db1.is_none() {
            if let Some(full) = self.cached_full(head.commit) {
                tracing::info!(head = %head.commit, blobs = full.blobs.len(), "full bundle from memory");
                return Ok(SyncBundle { head, ..full });
            }
        }
        let mut machine = Restore::with_mode(head.commit, db1.as_ref(), Mode::Eager);
        let (mut blobs, mut bytes, mut complete) = (Vec::new(), 0u64, true);
        let done = loop {
            match machine.poll()? {
                Step::Need(addresses) => {
                    if bytes >= self.limits.max_bytes {
                        complete = false;
                        break None;
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
                Step::Done(db) => break Some(db),
            }
        };
        tracing::info!(
            head = %head.commit,
            known_have = db1.is_some(),
            blobs = blobs.len(),
            bytes,
            complete,
            "bundle made"
        );
        let bundle = SyncBundle {
            head,
            blobs,
            complete,
        };
        if let Some(db) = done {
            self.remember(bundle.head.commit, db);
            if db1.is_none() {
                if let Ok(mut full) = self.full.lock() {
                    *full = Some(bundle.clone());
                }
            }
        }
        Ok(bundle)
    }

    /// The full bundle of `head`, if it is the one kept.
    fn cached_full(&self, head: Address) -> Option<SyncBundle> {
        let full = self.full.lock().ok()?;
        full.as_ref().filter(|b| b.head.commit == head).cloned()
    }

    /// Keeps a fully loaded replica at `commit`, dropping the least recently used past
    /// the limit.
    fn remember(&self, commit: Address, db: Db) {
        if let Ok(mut replicas) = self.replicas.lock() {
            replicas.retain(|(c, _)| *c != commit);
            replicas.push_front((commit, db));
            replicas.truncate(self.keep);
        }
    }

    /// The fully loaded replica at `commit`: kept, or restored incrementally from the
    /// most recent one kept; `None` when this storage does not hold that commit (the
    /// bundle is then a full one).
    async fn replica_at(&self, commit: Address) -> Result<Option<Db>, StorageError> {
        let (kept, base) = match self.replicas.lock() {
            Ok(r) => (
                r.iter()
                    .find(|(c, _)| *c == commit)
                    .map(|(_, db)| db.clone()),
                r.front().map(|(_, db)| db.clone()),
            ),
            Err(_) => (None, None),
        };
        if let Some(db) = kept {
            self.remember(commit, db.clone());
            return Ok(Some(db));
        }
        match restore_commit(&*self.storage, commit, base.as_ref(), Mode::Eager).await {
            Ok(r) => {
                self.remember(commit, r.db.clone());
                Ok(Some(r.db))
            }
            Err(e) if e.is_transient() || matches!(e, StorageError::Backend { .. }) => Err(e),
            Err(e) => {
                tracing::debug!(%commit, error = %e, "have is not a commit here: a full bundle");
                Ok(None)
            }
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
        maker: BundleMaker,
        inner: Arc<MemoryStorage>,
        gets: Mutex<Vec<Address>>,
        bundles: bool,
    }

    impl Bundling {
        fn new(inner: Arc<MemoryStorage>, bundles: bool) -> Bundling {
            Bundling {
                maker: BundleMaker::new(inner.clone(), BundleLimits::default(), 2),
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
        async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
            self.inner.list_heads().await
        }
        async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
            self.inner.delete_head(name, expected).await
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
        async fn list_blob_stamps(
            &self,
            after: Option<Address>,
            limit: usize,
        ) -> Result<Vec<crate::BlobStamp>, StorageError> {
            self.inner.list_blob_stamps(after, limit).await
        }
        async fn delete_stale(
            &self,
            addresses: &[Address],
            written_before: std::time::SystemTime,
        ) -> Result<Vec<Address>, StorageError> {
            self.inner.delete_stale(addresses, written_before).await
        }
        async fn sync_bundle(
            &self,
            name: &str,
            have: Option<Address>,
        ) -> Result<Option<SyncBundle>, StorageError> {
            if !self.bundles {
                return Ok(None);
            }
            self.maker.bundle(name, have).await.map(Some)
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
            steps in proptest::collection::vec(1u32..40, 1..16),
            behind in 0usize..16,
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
                    let bundle = BundleMaker::new(memory.clone(), BundleLimits::default(), 1).bundle("main", db1.base_commit()).await?;
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
        let maker = |max_bytes| BundleMaker::new(memory.clone(), BundleLimits { max_bytes }, 2);
        let cut = maker(1).bundle("main", None).await?;
        assert!(!cut.complete);
        let full = maker(u64::MAX).bundle("main", None).await?;
        assert!(full.complete && cut.blobs.len() < full.blobs.len());
        let kept = maker(u64::MAX);
        let unknown = Some(Address::of(b"no such commit"));
        assert_eq!(kept.bundle("main", unknown).await?, full);
        // The second full bundle of the head comes from memory, the same.
        assert_eq!(kept.bundle("main", None).await?, full);
        assert!(matches!(
            kept.bundle("other", None).await,
            Err(StorageError::NoHead { .. })
        ));
        let at_head = kept.bundle("main", db.base_commit()).await?;
        assert!(at_head.blobs.is_empty() && at_head.complete);
        Ok(())
    }

    /// A maker keeping one replica serves replicas at several commits in turn, each
    /// bundle still exact (restored incrementally from the one it keeps).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kept_replicas_give_the_same_bundles_as_fresh_ones() -> Result<(), StorageError> {
        let memory = Arc::new(MemoryStorage::new());
        let mut db = store(&tx(&empty(), 0, 120), &*memory, "main").await?.db;
        let mut commits = vec![db.base_commit()];
        for i in 0..6 {
            db = store(&tx(&db, 200 + i * 10, 10), &*memory, "main")
                .await?
                .db;
            commits.push(db.base_commit());
        }
        let kept = BundleMaker::new(memory.clone(), BundleLimits::default(), 1);
        for have in commits.iter().chain(commits.iter().rev()) {
            let fresh = BundleMaker::new(memory.clone(), BundleLimits::default(), 1);
            assert_eq!(
                kept.bundle("main", *have).await?,
                fresh.bundle("main", *have).await?
            );
        }
        Ok(())
    }
}
