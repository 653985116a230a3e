//! `replicate`: a head copied from one storage to another, with the backend as source,
//! as target, or both. The target restores to the same roots, holds every commit of the
//! history, and passes `verify`; a second copy writes nothing; a copy interrupted by
//! failing writes resumes without writing again what landed; a corrupt blob is refused
//! before it is written; a target whose head the source does not descend from is
//! refused unless forced.

use std::collections::HashSet;
use std::sync::Arc;

use datoms_core::{Address, Db};
use datoms_storage::{
    replicate, replicate_with, verify, FailOn, MemoryStorage, ReplicateOptions, Storage,
    StorageError,
};

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::history::{self, Generator};
use crate::support::{
    advance, ensure_same, expect_err, list_everything, node_addresses, seeded, snapshot, store_ok,
    Rig, HEAD,
};

/// The seed of these cases.
const SEED: u64 = 0x4E_D1_1C;

async fn fresh<F: Factory>(factory: &F) -> Result<Arc<dyn Storage>, Failure> {
    Ok(Arc::new(
        factory.create().await.context("creating a store")?,
    ))
}

/// A stored history: the last db, every commit (oldest first), and the nodes of every
/// commit's trees.
struct History {
    db: Db,
    commits: Vec<Address>,
    nodes: HashSet<Address>,
}

/// Stores `commits` commits of `generator` onto `db` in `storage`.
async fn history(
    storage: &dyn Storage,
    generator: &mut Generator,
    db: &Db,
    commits: usize,
) -> Result<History, Failure> {
    let mut out = History {
        db: db.clone(),
        commits: Vec::new(),
        nodes: HashSet::new(),
    };
    for i in 0..commits {
        let next = advance(generator, &out.db, 2)?;
        let stored = store_ok(&next, storage, &format!("commit {i}")).await?;
        out.commits.push(stored.commit);
        out.nodes.extend(node_addresses(&stored.db));
        out.db = stored.db;
    }
    Ok(out)
}

/// Fails unless `target`'s head is `db`'s commit, restores to `db` (same datoms and
/// roots), passes `verify`, and holds every commit of `commits`, each restorable.
async fn ensure_replica(
    what: &str,
    target: &dyn Storage,
    db: &Db,
    commits: &[Address],
) -> Result<(), Failure> {
    let restored = datoms_storage::restore_from(&history::empty_db(), target, HEAD)
        .await
        .context(format_args!("{what}: a full restore of the target"))?
        .db;
    ensure_same(what, &snapshot(&restored)?, &snapshot(db)?)?;
    let verified = verify(target, HEAD)
        .await
        .context(format_args!("{what}: verify"))?;
    ensure_eq!(verified.datoms, db.len(), "{what}: datoms verify read");
    let got = target
        .get_many(commits)
        .await
        .context(format_args!("{what}: reading the commits"))?;
    for (a, b) in commits.iter().zip(got) {
        ensure!(b.is_some(), "{what}: commit {a} of the history is missing");
        datoms_storage::restore_commit(target, *a, None, datoms_core::restore::Mode::Eager)
            .await
            .context(format_args!("{what}: restoring commit {a} of the history"))?;
    }
    Ok(())
}

/// A source and a target, named by direction.
type Pair = (&'static str, Arc<dyn Storage>, Arc<dyn Storage>);

/// Each direction (backend → memory, memory → backend, backend → backend): the first
/// copy makes a replica that restores to the source's roots, every commit of the
/// history with it (each node once); after more commits, the next copy writes exactly
/// the nodes of the new commits the target lacked, and the replica again restores to
/// the source's roots; a copy with nothing new writes nothing at all.
pub async fn replicate_makes_a_replica_that_restores_to_the_same_roots<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let pairs: [Pair; 3] = [
        (
            "backend to memory",
            fresh(factory).await?,
            Arc::new(MemoryStorage::new()),
        ),
        (
            "memory to backend",
            Arc::new(MemoryStorage::new()),
            fresh(factory).await?,
        ),
        (
            "backend to backend",
            fresh(factory).await?,
            fresh(factory).await?,
        ),
    ];
    for (i, (what, source, target)) in pairs.into_iter().enumerate() {
        let (mut generator, db) = seeded(SEED + i as u64, 40)?;
        let h = history(&*source, &mut generator, &db, 5).await?;
        let (db, mut commits) = (h.db.clone(), h.commits.clone());
        let first = replicate(&*source, &*target, HEAD)
            .await
            .context(format_args!("{what}: the first copy"))?;
        ensure!(
            first.moved && first.previous.is_none(),
            "{what}: the first copy moves a new head"
        );
        ensure_eq!(
            first.stats.nodes_copied,
            h.nodes.len() as u64,
            "{what}: a copy into an empty target writes every node of the history once"
        );
        ensure_eq!(
            first.stats.commits_copied,
            5,
            "{what}: commits of the history copied"
        );
        ensure_replica(what, &*target, &db, &commits).await?;

        let more = history(&*source, &mut generator, &db, 3).await?;
        let next = more.db;
        commits.extend(more.commits);
        let rig = Rig::over(target.clone());
        let second = replicate(&*source, &*rig.storage, HEAD)
            .await
            .context(format_args!("{what}: the next copy"))?;
        let new: HashSet<Address> = more.nodes.difference(&h.nodes).copied().collect();
        let written: Vec<Address> = rig.recorder.take().written();
        let nodes_written: HashSet<Address> = written
            .iter()
            .filter(|a| !commits.contains(a))
            .copied()
            .collect();
        ensure_eq!(
            nodes_written,
            new,
            "{what}: the next copy writes exactly the nodes of the new commits the target lacks"
        );
        ensure_eq!(
            written.len(),
            new.len() + 3,
            "{what}: blobs written by the next copy (each once)"
        );
        ensure_eq!(
            second.stats.nodes_copied,
            new.len() as u64,
            "{what}: nodes counted"
        );
        ensure_eq!(
            second.stats.commits_copied,
            3,
            "{what}: commits copied the second time"
        );
        ensure_eq!(
            second.previous,
            Some(first.commit),
            "{what}: the target's previous head"
        );
        ensure_replica(&format!("{what}, next"), &*target, &next, &commits).await?;

        let again = replicate(&*source, &*rig.storage, HEAD)
            .await
            .context(format_args!("{what}: a copy with nothing new"))?;
        let log = rig.recorder.take();
        ensure!(
            !again.moved && log.puts() == 0 && log.cas() == 0,
            "{what}: a copy with nothing new must write nothing ({} puts, {} CAS)",
            log.puts(),
            log.cas()
        );
    }
    Ok(())
}

/// A copy whose writes start failing part way leaves the target's head where it was;
/// the next copy completes it without writing any blob the first one landed, and the
/// target restores to the source's roots.
pub async fn an_interrupted_replicate_resumes_without_copying_again<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (source, target) = (fresh(factory).await?, fresh(factory).await?);
    let (mut generator, db) = seeded(SEED + 10, 60)?;
    let History { db, commits, .. } = history(&*source, &mut generator, &db, 3).await?;
    let rig = Rig::over(target.clone());
    // Small batches, so the copy takes many writes and fails in the middle.
    let failing = Arc::new(Batched {
        inner: rig.storage.clone(),
    });
    rig.faulty.faults().fail_after(3, FailOn::Puts);
    let cut = expect_err(
        "a copy whose writes fail",
        replicate(&*source, &*failing, HEAD).await,
    )?;
    ensure!(
        matches!(cut, StorageError::Backend { .. }),
        "the injected failure, got {cut:?}"
    );
    ensure!(
        target
            .get_head(HEAD)
            .await
            .context("reading the head")?
            .is_none(),
        "an interrupted copy must not create the target's head"
    );
    rig.faulty.faults().heal();
    let landed: HashSet<Address> = list_everything(&*target, 1000).await?.into_iter().collect();
    ensure!(
        !landed.is_empty(),
        "the interrupted copy wrote nothing (the case tests nothing)"
    );
    rig.recorder.take();
    let resumed = replicate(&*source, &*failing, HEAD)
        .await
        .context("the resumed copy")?;
    let rewritten: Vec<Address> = rig
        .recorder
        .take()
        .written()
        .into_iter()
        .filter(|a| landed.contains(a))
        .collect();
    ensure!(
        rewritten.is_empty(),
        "the resumed copy wrote {} blobs again that had landed, e.g. {:?}",
        rewritten.len(),
        rewritten.first()
    );
    ensure_eq!(
        resumed.stats.blobs_present,
        landed.len() as u64,
        "blobs the resumed copy found in the target"
    );
    ensure_replica("the resumed copy", &*target, &db, &commits).await
}

/// A blob whose bytes do not match its address is refused before anything is written
/// under it, and the target's head does not move; a target head the source does not
/// descend from is refused (`Diverged`) unless forced.
pub async fn replicate_refuses_corrupt_blobs_and_a_diverged_target<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (source, target) = (fresh(factory).await?, fresh(factory).await?);
    let (mut generator, db) = seeded(SEED + 20, 60)?;
    let History { db, commits, .. } = history(&*source, &mut generator, &db, 2).await?;
    let rig = Rig::over(source.clone());
    let leaf = node_addresses(&db)
        .into_iter()
        .next()
        .ok_or_else(|| Failure::new("a db without nodes"))?;
    rig.faulty.faults().corrupt_reads_of(leaf);
    let err = expect_err(
        "a copy reading a corrupt blob",
        replicate(&*rig.storage, &*target, HEAD).await,
    )?;
    ensure!(
        matches!(err, StorageError::Core(datoms_core::Error::Corrupt { .. })),
        "a corrupt blob must be a Corrupt error, got {err:?}"
    );
    ensure!(
        target
            .get_head(HEAD)
            .await
            .context("reading the head")?
            .is_none(),
        "a refused copy must not create the target's head"
    );
    let landed = target.get_many(&[leaf]).await.context("reading the leaf")?;
    ensure!(
        landed[0].is_none(),
        "the corrupt blob was written to the target"
    );
    rig.faulty.faults().heal();

    // The target gets a commit of its own: the source does not descend from it.
    let (_, own) = seeded(SEED + 21, 5)?;
    let own = store_ok(&own, &*target, "the target's own commit").await?;
    match expect_err(
        "a copy over a diverged target",
        replicate(&*source, &*target, HEAD).await,
    )? {
        StorageError::Diverged {
            target: t,
            source_head,
            ..
        } => {
            ensure_eq!(t, own.commit, "Diverged names the target's head");
            ensure_eq!(
                Some(source_head),
                commits.last().copied(),
                "Diverged names the source's head"
            );
        }
        other => {
            return Err(Failure::new(format_args!(
                "expected Diverged, got {other:?}"
            )))
        }
    }
    let forced = replicate_with(
        &*source,
        &*target,
        HEAD,
        ReplicateOptions {
            force: true,
            ..ReplicateOptions::default()
        },
        &mut |_| {},
    )
    .await
    .context("a forced copy")?;
    ensure_eq!(
        forced.previous,
        Some(own.commit),
        "the forced copy's previous head"
    );
    ensure_replica("a forced copy", &*target, &db, &commits).await
}

/// A storage that takes at most four blobs per batch (so a copy makes many writes).
#[derive(Debug)]
struct Batched {
    inner: Arc<dyn Storage>,
}

#[async_trait::async_trait]
impl Storage for Batched {
    async fn get_many(
        &self,
        addresses: &[Address],
    ) -> Result<Vec<Option<bytes::Bytes>>, StorageError> {
        self.inner.get_many(addresses).await
    }
    async fn put_many(&self, blobs: &[(Address, bytes::Bytes)]) -> Result<(), StorageError> {
        self.inner.put_many(blobs).await
    }
    async fn get_head(&self, name: &str) -> Result<Option<datoms_storage::Head>, StorageError> {
        self.inner.get_head(name).await
    }
    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&datoms_storage::Version>,
        new: Address,
    ) -> Result<datoms_storage::Version, StorageError> {
        self.inner.cas_head(name, expected, new).await
    }
    async fn list_heads(&self) -> Result<Vec<(String, datoms_storage::Head)>, StorageError> {
        self.inner.list_heads().await
    }
    async fn delete_head(
        &self,
        name: &str,
        expected: &datoms_storage::Version,
    ) -> Result<(), StorageError> {
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
    ) -> Result<Vec<datoms_storage::BlobStamp>, StorageError> {
        self.inner.list_blob_stamps(after, limit).await
    }
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        self.inner.delete_stale(addresses, written_before).await
    }
    fn capabilities(&self) -> datoms_storage::Capabilities {
        datoms_storage::Capabilities {
            max_batch: 4,
            concurrency: 1,
        }
    }
}
