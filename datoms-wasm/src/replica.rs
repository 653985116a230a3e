//! The replica itself, independent of JavaScript: a head on a server, the db restored
//! from it, and the I/O it took. [`Replica`] restores the head's commit in full once, then
//! follows it incrementally: each new commit is restored *from* the db held (datoms-core's
//! `Restore` with `db1`), so only the nodes that changed are fetched.
//!
//! Single-threaded by design (a browser tab, a node process): state sits in a `RefCell`,
//! never borrowed across an `await`, and one restore runs at a time.

use std::cell::{Cell, RefCell};

use datoms_core::{Address, Db, Restore};

use crate::driver::{self, Prefetched};
use crate::error::ReplicaError;
use crate::fetcher::{Fetcher, Synced};
use crate::read::{self, Format};
use crate::stats::Stats;

/// What a replica holds.
#[derive(Default)]
struct Held {
    db: Option<Db>,
    version: Option<String>,
    last: Stats,
    totals: Stats,
}

/// A replica of head `name` reached through a [`Fetcher`].
pub struct Replica<F> {
    fetcher: F,
    head: String,
    held: RefCell<Held>,
    busy: Cell<bool>,
}

/// What a follow step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Moved {
    /// The head still points to the commit held: nothing was fetched but the head.
    Unchanged,
    /// The replica restored this commit; the stats are the restore's.
    To(Address, Stats),
}

/// Clears the busy flag when a restore ends, by any path.
struct BusyGuard<'a>(&'a Cell<bool>);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl<F: Fetcher> Replica<F> {
    /// A replica of head `head` through `fetcher`; nothing is fetched until
    /// [`Replica::refresh`] or [`Replica::restore_commit`].
    pub fn new(fetcher: F, head: impl Into<String>) -> Replica<F> {
        Replica {
            fetcher,
            head: head.into(),
            held: RefCell::new(Held::default()),
            busy: Cell::new(false),
        }
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// The head followed.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The commit held, if any.
    pub fn commit(&self) -> Option<Address> {
        self.held.borrow().db.as_ref().and_then(Db::base_commit)
    }

    /// The version of the head when the commit held was read from it.
    pub fn version(&self) -> Option<String> {
        self.held.borrow().version.clone()
    }

    /// The db held (a cheap clone: trees are shared).
    ///
    /// # Errors
    /// [`ReplicaError::NotRestored`] before the first restore.
    pub fn db(&self) -> Result<Db, ReplicaError> {
        self.held
            .borrow()
            .db
            .clone()
            .ok_or(ReplicaError::NotRestored)
    }

    /// The I/O of the last restore.
    pub fn last_stats(&self) -> Stats {
        self.held.borrow().last
    }

    /// The I/O of every restore and head read so far.
    pub fn total_stats(&self) -> Stats {
        self.held.borrow().totals
    }

    /// Reads the head and, if it moved (or nothing is held yet), restores its commit
    /// incrementally from the db held. Where the server offers one-round-trip sync, the
    /// head and every blob the replica lacks come in one request (`GET /sync/{head}?have=`),
    /// verified as any restore; else the head is read and the blobs fetched.
    ///
    /// # Errors
    /// [`ReplicaError::NoHead`], [`ReplicaError::Busy`] while another restore runs,
    /// failed requests, missing or corrupt blobs, a malformed sync answer. Nothing held
    /// changes on error (but the requests made are counted).
    pub async fn refresh(&self) -> Result<Moved, ReplicaError> {
        let _busy = self.enter(None)?;
        let start = self.fetcher.requests();
        let moved = self.refresh_held().await;
        let requests = self.fetcher.requests() - start;
        let mut held = self.held.borrow_mut();
        held.totals.head_reads += 1;
        held.totals.requests += requests;
        if let Ok(Moved::To(_, stats)) = &moved {
            held.last = Stats {
                head_reads: 1,
                requests,
                ..*stats
            };
        }
        moved.map(|m| match m {
            Moved::To(commit, _) => Moved::To(commit, held.last),
            unchanged => unchanged,
        })
    }

    async fn refresh_held(&self) -> Result<Moved, ReplicaError> {
        let no_head = || ReplicaError::NoHead {
            name: self.head.clone(),
            base: self.fetcher.location(),
        };
        let have = self.commit();
        let (head, mut prefetched) = match self.fetcher.sync(&self.head, have).await? {
            Synced::NoHead => return Err(no_head()),
            // A cut bundle (`complete: false`) is used as far as it goes; the restore
            // fetches the rest.
            Synced::Bundle(bundle) => (bundle.head, Some(Prefetched::new(bundle.blobs))),
            Synced::NotOffered => (
                self.fetcher.head(&self.head).await?.ok_or_else(no_head)?,
                None,
            ),
        };
        if have == Some(head.commit) {
            self.held.borrow_mut().version = head.version;
            return Ok(Moved::Unchanged);
        }
        let stats = self
            .restore(head.commit, head.version, prefetched.as_mut())
            .await?;
        Ok(Moved::To(head.commit, stats))
    }

    /// Restores `commit` (not necessarily the head's), incrementally from the db held.
    ///
    /// # Errors
    /// As [`Replica::refresh`], without the head.
    pub async fn restore_commit(&self, commit: Address) -> Result<Stats, ReplicaError> {
        let _busy = self.enter(Some(commit))?;
        let start = self.fetcher.requests();
        let stats = self.restore(commit, None, None).await;
        let requests = self.fetcher.requests() - start;
        let mut held = self.held.borrow_mut();
        held.totals.requests += requests;
        let stats = stats?;
        held.last = Stats { requests, ..stats };
        Ok(held.last)
    }

    fn enter(&self, target: Option<Address>) -> Result<BusyGuard<'_>, ReplicaError> {
        if self.busy.replace(true) {
            return Err(ReplicaError::busy(target));
        }
        Ok(BusyGuard(&self.busy))
    }

    /// Restores `commit` from the db held (taking blobs from `prefetched` first), and
    /// holds it. The stats returned and added to the totals leave head reads and
    /// requests to the caller.
    async fn restore(
        &self,
        commit: Address,
        version: Option<String>,
        prefetched: Option<&mut Prefetched>,
    ) -> Result<Stats, ReplicaError> {
        let db1 = self.held.borrow().db.clone();
        let machine = Restore::new(commit, db1.as_ref());
        let (db, restored) = driver::run(&self.fetcher, machine, prefetched).await?;
        let stats = Stats::of_restore(&restored, 0, 0);
        let mut held = self.held.borrow_mut();
        held.db = Some(db);
        held.version = version;
        held.last = stats;
        held.totals.add(&stats);
        Ok(stats)
    }

    /// A Datalog query over the db held (see [`read::query`]).
    ///
    /// # Errors
    /// [`ReplicaError::NotRestored`], or as [`read::query`].
    pub fn query(
        &self,
        text: &str,
        inputs: &[String],
        format: Format,
    ) -> Result<String, ReplicaError> {
        read::query(&self.db()?, text, inputs, format)
    }

    /// A pull over the db held (see [`read::pull`]).
    ///
    /// # Errors
    /// [`ReplicaError::NotRestored`], or as [`read::pull`].
    pub fn pull(
        &self,
        pattern: &str,
        entity: &str,
        format: Format,
    ) -> Result<String, ReplicaError> {
        read::pull(&self.db()?, pattern, entity, format)
    }

    /// Index access over the db held (see [`read::datoms`]).
    ///
    /// # Errors
    /// [`ReplicaError::NotRestored`], or as [`read::datoms`].
    pub fn datoms(
        &self,
        index: &str,
        components: &str,
        limit: Option<usize>,
        format: Format,
    ) -> Result<String, ReplicaError> {
        read::datoms(&self.db()?, index, components, limit, format)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use datoms_core::addressing::commit_for;
    use datoms_core::Schema;
    use futures::executor::block_on;

    use super::*;
    use crate::fetcher::{Bundle, RemoteHead};

    /// Blobs and one head in memory; counts requests. With `sync` set it answers sync
    /// requests with every blob it holds but those `sync_lacks` names (a server's
    /// bundle holds what the replica lacks; unused blobs cost bytes, not correctness).
    #[derive(Default)]
    struct MemoryFetcher {
        blobs: RefCell<HashMap<Address, Vec<u8>>>,
        head: RefCell<Option<Address>>,
        blob_requests: Cell<u64>,
        requests: Cell<u64>,
        sync: bool,
        sync_lacks: RefCell<HashSet<Address>>,
    }

    impl Fetcher for MemoryFetcher {
        fn location(&self) -> String {
            "memory".into()
        }
        async fn blob(&self, address: Address) -> Result<Option<Vec<u8>>, ReplicaError> {
            self.blob_requests.set(self.blob_requests.get() + 1);
            self.requests.set(self.requests.get() + 1);
            Ok(self.blobs.borrow().get(&address).cloned())
        }
        async fn head(&self, _name: &str) -> Result<Option<RemoteHead>, ReplicaError> {
            self.requests.set(self.requests.get() + 1);
            Ok(self.remote_head())
        }
        async fn sync(&self, _name: &str, _have: Option<Address>) -> Result<Synced, ReplicaError> {
            if !self.sync {
                return Ok(Synced::NotOffered);
            }
            self.requests.set(self.requests.get() + 1);
            let Some(head) = self.remote_head() else {
                return Ok(Synced::NoHead);
            };
            let lacks = self.sync_lacks.borrow();
            let blobs = self
                .blobs
                .borrow()
                .iter()
                .filter(|(a, _)| !lacks.contains(a))
                .map(|(a, b)| (*a, b.clone()))
                .collect();
            Ok(Synced::Bundle(Bundle {
                head,
                blobs,
                complete: lacks.is_empty(),
            }))
        }
        fn requests(&self) -> u64 {
            self.requests.get()
        }
    }

    impl MemoryFetcher {
        fn remote_head(&self) -> Option<RemoteHead> {
            self.head.borrow().map(|commit| RemoteHead {
                commit,
                version: Some("1".into()),
            })
        }

        /// Stores `db` as a commit on top of what it holds and points the head at it.
        fn publish(&self, db: &Db) -> Result<Db, datoms_core::Error> {
            let (commit, nodes) = commit_for(db)?;
            let mut blobs = self.blobs.borrow_mut();
            for n in &nodes.nodes {
                blobs.insert(n.address, n.bytes.clone());
            }
            let bytes = commit.encode();
            let address = Address::of(&bytes);
            blobs.insert(address, bytes);
            *self.head.borrow_mut() = Some(address);
            Ok(db.committed(address, &commit))
        }
    }

    fn people(from: u64, to: u64) -> String {
        let items: Vec<String> = (from..to)
            .map(|i| format!(r#"{{:person/name "P{i}" :person/age {}}}"#, i % 90))
            .collect();
        format!("[{}]", items.join(" "))
    }

    #[test]
    fn follows_a_head_fetching_only_what_changed() -> Result<(), Box<dyn std::error::Error>> {
        let fetcher = MemoryFetcher::default();
        let db = fetcher.publish(&Db::new(Schema::new()).with_edn(&people(0, 3000))?.db_after)?;
        let replica = Replica::new(fetcher, "main");
        assert!(matches!(replica.db(), Err(ReplicaError::NotRestored)));
        let Moved::To(first, full) = block_on(replica.refresh())? else {
            return Err("the first refresh restored nothing".into());
        };
        assert_eq!(replica.commit(), Some(first));
        assert_eq!(replica.db()?.len(), db.len());
        assert_eq!(replica.fetcher().blob_requests.get(), full.blobs_fetched);
        assert_eq!(full.requests, full.blobs_fetched + 1);

        // The head has not moved: nothing but the head is read.
        assert_eq!(block_on(replica.refresh())?, Moved::Unchanged);
        assert_eq!(replica.fetcher().blob_requests.get(), full.blobs_fetched);
        assert_eq!(replica.total_stats().requests, full.requests + 1);

        let db = replica
            .fetcher()
            .publish(&db.with_edn(&people(3000, 3010))?.db_after)?;
        let Moved::To(_, step) = block_on(replica.refresh())? else {
            return Err("the head moved but the replica did not follow".into());
        };
        assert!(
            step.nodes_fetched * 10 < full.nodes_fetched,
            "{step:?} vs {full:?}"
        );
        assert_eq!(replica.db()?.root_addresses(), db.root_addresses());
        assert_eq!(replica.total_stats().restores, 2);
        assert_eq!(replica.total_stats().head_reads, 3);
        Ok(())
    }

    #[test]
    fn with_sync_each_step_is_one_request_and_fetches_what_a_bundle_lacks(
    ) -> Result<(), Box<dyn std::error::Error>> {
        // The same commits followed with blobs and with sync bundles.
        let plain = Replica::new(MemoryFetcher::default(), "main");
        let synced = Replica::new(
            MemoryFetcher {
                sync: true,
                ..MemoryFetcher::default()
            },
            "main",
        );
        let mut db = Db::new(Schema::new()).with_edn(&people(0, 2000))?.db_after;
        for step in 0..3u64 {
            for replica in [&plain, &synced] {
                replica.fetcher().publish(&db)?;
            }
            let Moved::To(_, by_blobs) = block_on(plain.refresh())? else {
                return Err("the plain replica did not follow".into());
            };
            let Moved::To(_, by_sync) = block_on(synced.refresh())? else {
                return Err("the synced replica did not follow".into());
            };
            assert_eq!(by_sync.requests, 1, "step {step}: {by_sync:?}");
            assert_eq!(by_sync.round_trips, 1, "step {step}: {by_sync:?}");
            assert_eq!(by_sync.head_reads, 1);
            assert_eq!(by_sync.nodes_fetched, by_blobs.nodes_fetched, "step {step}");
            assert!(by_blobs.requests > 2, "{by_blobs:?}");
            assert_eq!(synced.db()?.root_addresses(), plain.db()?.root_addresses());
            db = synced
                .db()?
                .with_edn(&people(2000 + step * 10, 2010 + step * 10))?
                .db_after;
        }
        // An unmoved head: one request, nothing restored.
        assert_eq!(block_on(synced.refresh())?, Moved::Unchanged);
        assert_eq!(synced.total_stats().requests, 4);
        assert_eq!(synced.fetcher().blob_requests.get(), 0);

        // A bundle cut short: what it lacks is fetched blob by blob, one more round trip.
        let (_, nodes) = commit_for(&db)?;
        let lacking: HashSet<Address> = nodes.nodes.iter().map(|n| n.address).take(2).collect();
        assert_eq!(lacking.len(), 2);
        let next = synced.fetcher().publish(&db)?;
        *synced.fetcher().sync_lacks.borrow_mut() = lacking.clone();
        let Moved::To(_, cut) = block_on(synced.refresh())? else {
            return Err("the synced replica did not follow a cut bundle".into());
        };
        assert_eq!(cut.round_trips, 2, "{cut:?}");
        assert_eq!(cut.requests, 1 + lacking.len() as u64, "{cut:?}");
        assert_eq!(synced.fetcher().blob_requests.get(), lacking.len() as u64);
        assert_eq!(synced.db()?.len(), next.len());
        Ok(())
    }

    #[test]
    fn a_corrupt_blob_fails_the_restore_and_keeps_the_db_held(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let fetcher = MemoryFetcher::default();
        let db = fetcher.publish(&Db::new(Schema::new()).with_edn(&people(0, 100))?.db_after)?;
        let replica = Replica::new(fetcher, "main");
        block_on(replica.refresh())?;
        let held = replica.commit();
        let next = db.with_edn(&people(100, 110))?.db_after;
        replica.fetcher().publish(&next)?;
        for bytes in replica.fetcher().blobs.borrow_mut().values_mut() {
            if let Some(b) = bytes.last_mut() {
                *b ^= 1;
            }
        }
        let err = block_on(replica.refresh());
        assert!(
            matches!(
                err,
                Err(ReplicaError::Core(datoms_core::Error::Corrupt { .. }))
            ),
            "{err:?}"
        );
        assert_eq!(replica.commit(), held);
        assert_eq!(replica.db()?.len(), db.len());
        Ok(())
    }

    #[test]
    fn a_missing_head_and_a_second_restore_are_errors() {
        let replica = Replica::new(MemoryFetcher::default(), "main");
        assert!(matches!(
            block_on(replica.refresh()),
            Err(ReplicaError::NoHead { name, base }) if name == "main" && base == "memory"
        ));
        let _running = replica.enter(None).ok();
        assert!(matches!(
            block_on(replica.restore_commit(Address::of(b"x"))),
            Err(ReplicaError::Busy { .. })
        ));
    }
}
