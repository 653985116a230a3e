//! The replica itself, independent of JavaScript: a head on a server, the db restored
//! from it, and the I/O it took. [`Replica`] restores the head's commit in full once, then
//! follows it incrementally: each new commit is restored *from* the db held (datoms-core's
//! `Restore` with `db1`), so only the nodes that changed are fetched.
//!
//! Single-threaded by design (a browser tab, a node process): state sits in a `RefCell`,
//! never borrowed across an `await`, and one restore runs at a time.

use std::cell::{Cell, RefCell};

use datoms_core::{Address, Db, Restore};

use crate::driver;
use crate::error::ReplicaError;
use crate::fetcher::Fetcher;
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
    /// incrementally from the db held.
    ///
    /// # Errors
    /// [`ReplicaError::NoHead`], [`ReplicaError::Busy`] while another restore runs,
    /// failed requests, missing or corrupt blobs. Nothing held changes on error.
    pub async fn refresh(&self) -> Result<Moved, ReplicaError> {
        let _busy = self.enter(None)?;
        let head = self.fetcher.head(&self.head).await;
        self.held.borrow_mut().totals.head_reads += 1;
        let head = head?.ok_or_else(|| ReplicaError::NoHead {
            name: self.head.clone(),
            base: self.fetcher.location(),
        })?;
        if self.commit() == Some(head.commit) {
            self.held.borrow_mut().version = head.version;
            return Ok(Moved::Unchanged);
        }
        let stats = self.restore(head.commit, head.version, 1).await?;
        Ok(Moved::To(head.commit, stats))
    }

    /// Restores `commit` (not necessarily the head's), incrementally from the db held.
    ///
    /// # Errors
    /// As [`Replica::refresh`], without the head.
    pub async fn restore_commit(&self, commit: Address) -> Result<Stats, ReplicaError> {
        let _busy = self.enter(Some(commit))?;
        self.restore(commit, None, 0).await
    }

    fn enter(&self, target: Option<Address>) -> Result<BusyGuard<'_>, ReplicaError> {
        if self.busy.replace(true) {
            return Err(ReplicaError::busy(target));
        }
        Ok(BusyGuard(&self.busy))
    }

    async fn restore(
        &self,
        commit: Address,
        version: Option<String>,
        head_reads: u64,
    ) -> Result<Stats, ReplicaError> {
        let db1 = self.held.borrow().db.clone();
        let machine = Restore::new(commit, db1.as_ref());
        let (db, restored) = driver::run(&self.fetcher, machine).await?;
        let stats = Stats::of_restore(&restored, head_reads);
        let mut held = self.held.borrow_mut();
        held.db = Some(db);
        held.version = version;
        held.last = stats;
        let mut counted = stats;
        counted.head_reads = 0; // already counted when read
        held.totals.add(&counted);
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
    use std::collections::HashMap;

    use datoms_core::addressing::commit_for;
    use datoms_core::Schema;
    use futures::executor::block_on;

    use super::*;
    use crate::fetcher::RemoteHead;

    /// Blobs and one head in memory; counts blob requests.
    #[derive(Default)]
    struct MemoryFetcher {
        blobs: RefCell<HashMap<Address, Vec<u8>>>,
        head: RefCell<Option<Address>>,
        requests: Cell<u64>,
    }

    impl Fetcher for MemoryFetcher {
        fn location(&self) -> String {
            "memory".into()
        }
        async fn blob(&self, address: Address) -> Result<Option<Vec<u8>>, ReplicaError> {
            self.requests.set(self.requests.get() + 1);
            Ok(self.blobs.borrow().get(&address).cloned())
        }
        async fn head(&self, _name: &str) -> Result<Option<RemoteHead>, ReplicaError> {
            Ok(self.head.borrow().map(|commit| RemoteHead {
                commit,
                version: Some("1".into()),
            }))
        }
    }

    impl MemoryFetcher {
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
        assert_eq!(replica.fetcher().requests.get(), full.blobs_fetched);

        // The head has not moved: nothing but the head is read.
        assert_eq!(block_on(replica.refresh())?, Moved::Unchanged);
        assert_eq!(replica.fetcher().requests.get(), full.blobs_fetched);

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
