//! What the cases share: a storage wrapper that records every request, a comparable
//! snapshot of a db, the node addresses of a db, and the rig that stacks the factory's
//! store under `FaultyStorage` and the recorder.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::{Address, Datom, Db, IndexKind, Schema};
use datoms_storage::{
    restore_from, store, Capabilities, FaultyStorage, Head, Storage, StorageError, Stored, Version,
};

use crate::factory::Factory;
use crate::failure::{ensure, Context, Failure};
use crate::history::{self, Generator, Params, Tx};

/// The head every database case stores under.
pub(crate) const HEAD: &str = "main";

/// One request a [`Recorder`] saw.
#[derive(Clone, Debug)]
pub(crate) enum Request {
    Get(Vec<Address>),
    Put(Vec<Address>),
    HeadRead,
    Cas,
    List,
    Delete,
}

/// The requests seen since the last [`Recorder::take`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Log(pub(crate) Vec<Request>);

impl Log {
    /// `get_many` calls.
    pub(crate) fn gets(&self) -> usize {
        self.0
            .iter()
            .filter(|r| matches!(r, Request::Get(_)))
            .count()
    }

    /// Every address read, in request order (repeats kept).
    pub(crate) fn fetched(&self) -> Vec<Address> {
        self.0
            .iter()
            .filter_map(|r| match r {
                Request::Get(a) => Some(a.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// `put_many` calls.
    pub(crate) fn puts(&self) -> usize {
        self.0
            .iter()
            .filter(|r| matches!(r, Request::Put(_)))
            .count()
    }

    /// Every address written.
    pub(crate) fn written(&self) -> Vec<Address> {
        self.0
            .iter()
            .filter_map(|r| match r {
                Request::Put(a) => Some(a.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// `get_head` calls.
    pub(crate) fn head_reads(&self) -> usize {
        self.0
            .iter()
            .filter(|r| matches!(r, Request::HeadRead))
            .count()
    }

    /// `cas_head` calls.
    pub(crate) fn cas(&self) -> usize {
        self.0.iter().filter(|r| matches!(r, Request::Cas)).count()
    }
}

/// A storage that records the addresses of every request before passing it on.
#[derive(Debug)]
pub(crate) struct Recorder {
    inner: Arc<dyn Storage>,
    log: Mutex<Vec<Request>>,
}

impl Recorder {
    pub(crate) fn new(inner: Arc<dyn Storage>) -> Recorder {
        Recorder {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    fn note(&self, r: Request) {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(r);
    }

    /// The requests since the last call, and forgets them.
    pub(crate) fn take(&self) -> Log {
        Log(std::mem::take(
            &mut *self
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

#[async_trait]
impl Storage for Recorder {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        self.note(Request::Get(addresses.to_vec()));
        self.inner.get_many(addresses).await
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        self.note(Request::Put(blobs.iter().map(|(a, _)| *a).collect()));
        self.inner.put_many(blobs).await
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        self.note(Request::HeadRead);
        self.inner.get_head(name).await
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        self.note(Request::Cas);
        self.inner.cas_head(name, expected, new).await
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.note(Request::HeadRead);
        self.inner.list_heads().await
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        self.note(Request::Cas);
        self.inner.delete_head(name, expected).await
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        self.note(Request::List);
        self.inner.list_blobs(after, limit).await
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        self.note(Request::Delete);
        self.inner.delete_many(addresses).await
    }
    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<datoms_storage::BlobStamp>, StorageError> {
        self.note(Request::List);
        self.inner.list_blob_stamps(after, limit).await
    }
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        self.note(Request::Delete);
        self.inner.delete_stale(addresses, written_before).await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn head_changes(&self) -> Option<datoms_storage::HeadChanges> {
        self.inner.head_changes()
    }
}

/// The factory's store, wrapped: `storage` → recorder → faults → the store.
pub(crate) struct Rig {
    pub(crate) faulty: Arc<FaultyStorage<Arc<dyn Storage>>>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) storage: Arc<dyn Storage>,
}

impl Rig {
    /// A rig over a fresh store of `factory`.
    pub(crate) async fn new<F: Factory>(factory: &F) -> Result<Rig, Failure> {
        let store: Arc<dyn Storage> = Arc::new(
            factory
                .create()
                .await
                .map_err(|e| Failure::from(e).context("creating a store"))?,
        );
        Ok(Rig::over(store))
    }

    /// A rig over `store`.
    pub(crate) fn over(store: Arc<dyn Storage>) -> Rig {
        let faulty = Arc::new(FaultyStorage::new(store));
        let recorder = Arc::new(Recorder::new(faulty.clone()));
        Rig {
            faulty,
            recorder: recorder.clone(),
            storage: recorder,
        }
    }
}

/// Everything a user can observe of a db's content: the datoms of each index, the
/// schema, the id counters and the roots.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) datoms: [Vec<Datom>; 3],
    pub(crate) schema: Schema,
    pub(crate) max_eid: u64,
    pub(crate) max_tx: u64,
    pub(crate) roots: [Address; 3],
}

/// Reads every datom of every index of `db` (through its source if it is lazy).
pub(crate) fn snapshot(db: &Db) -> Result<Snapshot, Failure> {
    let mut datoms: [Vec<Datom>; 3] = Default::default();
    for (slot, kind) in IndexKind::ALL.iter().enumerate() {
        for d in db.datoms(*kind, &[])? {
            datoms[slot].push(d?);
        }
    }
    Ok(Snapshot {
        datoms,
        schema: db.schema().clone(),
        max_eid: db.max_eid(),
        max_tx: db.max_tx(),
        roots: db.root_addresses(),
    })
}

/// Fails unless `got` equals `want`, naming the first difference.
pub(crate) fn ensure_same(what: &str, got: &Snapshot, want: &Snapshot) -> Result<(), Failure> {
    if got == want {
        return Ok(());
    }
    let mut lines = vec![format!("{what}: the db differs from the primary's")];
    for (slot, kind) in IndexKind::ALL.iter().enumerate() {
        let (g, w) = (&got.datoms[slot], &want.datoms[slot]);
        if g != w {
            let first = g.iter().zip(w.iter()).position(|(a, b)| a != b);
            lines.push(format!(
                "  {kind:?}: {} datoms, expected {}; first difference at {:?}: got {:?}, expected {:?}",
                g.len(),
                w.len(),
                first,
                first.and_then(|i| g.get(i)),
                first.and_then(|i| w.get(i)),
            ));
        }
    }
    if got.schema != want.schema {
        lines.push("  the schema differs".into());
    }
    if (got.max_eid, got.max_tx) != (want.max_eid, want.max_tx) {
        lines.push(format!(
            "  max_eid/max_tx {:?}, expected {:?}",
            (got.max_eid, got.max_tx),
            (want.max_eid, want.max_tx)
        ));
    }
    if got.roots != want.roots {
        lines.push(format!(
            "  roots {:?}, expected {:?}",
            got.roots, want.roots
        ));
    }
    Err(Failure::new(lines.join("\n")))
}

/// The addresses of every node of `db` that is in memory (all of them for a db that is
/// not lazy).
pub(crate) fn node_addresses(db: &Db) -> HashSet<Address> {
    let mut out = HashSet::new();
    let mut stack: Vec<Arc<datoms_core::tree::Node>> = IndexKind::ALL
        .iter()
        .map(|k| db.tree(*k).root().clone())
        .collect();
    while let Some(node) = stack.pop() {
        if out.insert(node.address()) {
            stack.extend(node.children().iter().filter_map(|c| c.loaded().cloned()));
        }
    }
    out
}

/// The height of the tallest index (0 when every index is a single leaf).
pub(crate) fn max_level(db: &Db) -> u64 {
    IndexKind::ALL
        .iter()
        .map(|k| u64::from(db.tree(*k).root().level()))
        .max()
        .unwrap_or(0)
}

/// Every address listed, paging with `limit`, checking each page is in order and after
/// the previous one.
pub(crate) async fn list_everything<S: Storage + ?Sized>(
    s: &S,
    limit: usize,
) -> Result<Vec<Address>, Failure> {
    let mut out: Vec<Address> = Vec::new();
    let mut after = None;
    loop {
        let page = s.list_blobs(after, limit).await.context("list_blobs")?;
        ensure!(
            page.len() <= limit,
            "list_blobs returned {} addresses for a limit of {limit}",
            page.len()
        );
        let Some(last) = page.last().copied() else {
            return Ok(out);
        };
        let mut previous = after;
        for a in &page {
            ensure!(
                previous.is_none_or(|p| *a > p),
                "list_blobs must return addresses in increasing order, each after `after`: \
                 {a:?} came after {previous:?}"
            );
            previous = Some(*a);
        }
        out.extend(page);
        after = Some(last);
        ensure!(
            out.len() <= 1_000_000,
            "list_blobs never returned an empty page"
        );
    }
}

/// Waits until the clock is past the write stamp of every blob `s` lists, so that a
/// cutoff taken afterwards finds them all older than it (stamps are rounded up: to the
/// millisecond, or to the second on S3).
pub(crate) async fn until_every_stamp_is_past<S: Storage + ?Sized>(s: &S) -> Result<(), Failure> {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut after = None;
    loop {
        let page = s
            .list_blob_stamps(after, 1000)
            .await
            .context("list_blob_stamps")?;
        let Some(last) = page.last() else { break };
        after = Some(last.address);
        newest = page.iter().map(|b| b.written).fold(newest, std::cmp::max);
    }
    while std::time::SystemTime::now() <= newest {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Converts an error that a case expects into its variant, or fails naming what came.
pub(crate) fn expect_err<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, StorageError>,
) -> Result<StorageError, Failure> {
    match result {
        Ok(v) => Err(Failure::new(format_args!(
            "{what}: expected an error, got Ok({v:?})"
        ))),
        Err(e) => Ok(e),
    }
}

/// A generator and the db of its initial transaction with `people` people.
pub(crate) fn seeded(seed: u64, people: u32) -> Result<(Generator, Db), Failure> {
    let mut generator = Generator::new(
        seed,
        Params {
            initial_people: people,
            ..Params::default()
        },
    );
    let db = apply(&generator.initial_tx(), &history::empty_db())?;
    Ok((generator, db))
}

pub(crate) fn apply(tx: &Tx, db: &Db) -> Result<Db, Failure> {
    tx.apply(db)
        .map_err(|e| Failure::from(e).context(format_args!("transacting {}", tx.edn())))
}

/// `db` after `n` generated transactions.
pub(crate) fn advance(generator: &mut Generator, db: &Db, n: usize) -> Result<Db, Failure> {
    let mut db = db.clone();
    for _ in 0..n {
        db = apply(&generator.next_tx(), &db)?;
    }
    Ok(db)
}

pub(crate) async fn store_ok(
    db: &Db,
    storage: &dyn Storage,
    what: &str,
) -> Result<Stored, Failure> {
    store(db, storage, HEAD)
        .await
        .context(format_args!("storing {what}"))
}

pub(crate) async fn restore_ok(db1: &Db, storage: &dyn Storage, what: &str) -> Result<Db, Failure> {
    Ok(restore_from(db1, storage, HEAD)
        .await
        .context(format_args!("restore_from for {what}"))?
        .db)
}
