//! Time views: the db as it was at a commit, right after a transaction, or at a
//! wall-clock instant of a head's history (issue #19).
//!
//! Every commit is a complete, content-addressed snapshot, so the db at a commit is a
//! restore of that commit — sharing every node with a db the caller already holds, and
//! lazy: nodes load when a read reaches them. The db right after transaction `t` is the
//! newest commit whose transactions all come at or before `t`, plus the transactions
//! up to `t` of the commit after it, replayed from that commit's tx log (a commit's log
//! holds the transactions since its parent, so at most one commit's log is replayed).
//! The db at an instant is the newest commit of the head's lineage (following first
//! parents) made at or before it: commit times never decrease along a lineage (see
//! [`datoms_core::commit`]), so the walk stops at the first such commit.

use std::sync::Arc;

use datoms_core::restore::Mode;
use datoms_core::{diff, Address, Commit, Db, Diff, RestoreStats, Tx};

use crate::batch::get_all;
use crate::error::StorageError;
use crate::large::decode_fetching;
use crate::restore::{read_head, restore_commit, DEFAULT_CACHE_BYTES};
use crate::source::StorageSource;
use crate::storage::Storage;
use crate::sync::add_stats;

/// A point in a head's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// A commit (of any head, or none: any stored commit).
    Commit(Address),
    /// Right after transaction `t` of the head's history (`t` at or past the head's last
    /// transaction is the head itself).
    Tx(Tx),
    /// At a wall-clock instant, in milliseconds since the Unix epoch: the newest commit
    /// of the head's lineage made at or before it.
    Instant(u64),
}

/// A time view: the db, and how it was reached.
#[derive(Clone, Debug)]
pub struct AsOf {
    /// The db as of the point asked for. Reads load its nodes lazily.
    pub db: Db,
    /// The commit restored (the one at or before the point); `None` when the point
    /// comes before the head's first commit's transactions (the db is replayed from
    /// empty).
    pub commit: Option<Address>,
    /// Transactions replayed on top of that commit from the next commit's log.
    pub txs_replayed: usize,
    /// Commits read, nodes fetched, round trips (the head read included).
    pub stats: RestoreStats,
}

/// The db of head `name` as of `at`: restored lazily, or — given a db the caller holds
/// (say the head's) — incrementally from it, fetching only the nodes it lacks.
///
/// # Errors
/// [`StorageError::NoHead`]; [`StorageError::LogGap`] when `at` is a transaction inside
/// a commit whose schema or tree configuration differs from its parent's, or inside a
/// merge commit (such a commit can only be viewed whole); [`StorageError::NothingAt`]
/// for an instant before the head's first commit; missing or corrupt blobs, backend
/// errors.
#[tracing::instrument(level = "info", skip(storage, held), fields(head = name))]
pub async fn as_of(
    storage: Arc<dyn Storage>,
    name: &str,
    at: At,
    held: Option<&Db>,
) -> Result<AsOf, StorageError> {
    let head = read_head(&*storage, name).await?;
    let mut stats = RestoreStats {
        round_trips: 1,
        ..RestoreStats::default()
    };
    let tx = match at {
        At::Commit(commit) => {
            let db = lazy(&storage, commit, held, &mut stats).await?;
            return Ok(AsOf {
                db,
                commit: Some(commit),
                txs_replayed: 0,
                stats,
            });
        }
        At::Tx(tx) => tx,
        At::Instant(ms) => {
            let mut walk = Lineage::new(head);
            let commit = loop {
                match walk.next(&*storage, &mut stats).await? {
                    Some((address, commit)) if commit.time <= ms => break address,
                    Some(_) => {}
                    None => {
                        return Err(StorageError::NothingAt {
                            name: name.into(),
                            at: format!("instant {ms} ms (before the first commit)"),
                        })
                    }
                }
            };
            let db = lazy(&storage, commit, held, &mut stats).await?;
            return Ok(AsOf {
                db,
                commit: Some(commit),
                txs_replayed: 0,
                stats,
            });
        }
    };
    // Newest first: the first commit whose last transaction is at or before `tx` is
    // the base; the one before it in the walk (its child) holds the transactions after.
    let mut walk = Lineage::new(head);
    let mut child: Option<(Address, Commit)> = None;
    let base = loop {
        let Some((address, commit)) = walk.next(&*storage, &mut stats).await? else {
            break None;
        };
        if commit.max_tx <= tx {
            break Some(address);
        }
        child = Some((address, commit));
    };
    let mut db = match (base, &child) {
        (Some(base), _) => lazy(&storage, base, held, &mut stats).await?,
        // Before the first commit's transactions: replay from an empty db.
        (None, Some((_, first))) => Db::with_config(first.schema.clone(), first.config),
        (None, None) => return Err(StorageError::NoHead { name: name.into() }),
    };
    let mut txs_replayed = 0;
    if let Some((address, commit)) = child {
        if !commit.merged.is_empty() {
            return Err(StorageError::LogGap {
                head: address,
                base,
                reason: format!(
                    "transaction {tx} is inside merge commit {address}, whose log is what the \
                     merge applied, not the transactions as they ran; view it whole"
                ),
            });
        }
        if commit.schema != *db.schema() || commit.config != db.config() {
            return Err(StorageError::LogGap {
                head: address,
                base,
                reason: format!(
                    "transaction {tx} is inside a commit that changed the schema or the tree \
                     configuration; view that commit whole (as of commit {address})"
                ),
            });
        }
        let (entries, fetched) = decode_fetching(&*storage, || commit.log_entries()).await?;
        if !fetched.values.is_empty() {
            stats.round_trips += 1;
            stats.large_values_fetched += fetched.values.len() as u64;
            stats.bytes_fetched += fetched.bytes;
        }
        let upto: Vec<_> = entries.into_iter().filter(|e| e.tx <= tx).collect();
        txs_replayed = upto.len();
        db = db.apply_log_entries(upto)?;
    }
    Ok(AsOf {
        db,
        commit: base,
        txs_replayed,
        stats,
    })
}

/// What changed after `at` up to `db` (a db of the same history, typically the
/// head's): the datoms `db` has that the view as of `at` lacks, and those it lost
/// (`diff`, which prunes every subtree the two share). The view is restored
/// incrementally from `db`, so only the nodes that differ are fetched.
///
/// # Errors
/// As [`as_of`]; a load error of a lazily restored `db`.
pub async fn since(
    storage: Arc<dyn Storage>,
    name: &str,
    at: At,
    db: &Db,
) -> Result<Diff, StorageError> {
    let view = as_of(storage, name, at, Some(db)).await?;
    Ok(diff(&view.db, db)?)
}

/// The db at `commit`: without a held db, lazily (the commit and the three roots; the
/// rest loads as reads reach it); with one, an incremental restore from it, which
/// fetches only the nodes it lacks (`restore_from` to an old commit) and shares the rest
/// in memory.
pub(crate) async fn lazy(
    storage: &Arc<dyn Storage>,
    commit: Address,
    held: Option<&Db>,
    stats: &mut RestoreStats,
) -> Result<Db, StorageError> {
    let mode = if held.is_some() {
        Mode::Eager
    } else {
        Mode::Lazy
    };
    let restored = restore_commit(&**storage, commit, held, mode).await?;
    *stats = add_stats(std::mem::take(stats), restored.stats);
    Ok(match (mode, restored.db.source()) {
        (Mode::Lazy, None) => {
            let source = StorageSource::new(storage.clone(), DEFAULT_CACHE_BYTES)?;
            restored.db.with_source(source)
        }
        // Loaded, or sharing a lazily restored `held` whose source already reads there.
        _ => restored.db,
    })
}

/// A walk back through a head's commits (following first parents), newest first, reading
/// each commit's listed ancestors in one request.
pub(crate) struct Lineage {
    next: Vec<Address>,
    fetched: std::collections::VecDeque<(Address, Commit)>,
    /// Where the walk ends (exclusive), if it reaches it; and whether it did.
    stop: Option<Address>,
    reached: bool,
}

impl Lineage {
    pub(crate) fn new(head: Address) -> Lineage {
        Lineage {
            next: vec![head],
            fetched: Default::default(),
            stop: None,
            reached: false,
        }
    }

    /// The walk from `head` that ends just before `stop` if the lineage reaches it:
    /// no request fetches `stop` or anything older (see [`Lineage::reached`]).
    pub(crate) fn until(head: Address, stop: Address) -> Lineage {
        let mut walk = Lineage::new(head);
        walk.stop = Some(stop);
        if head == stop {
            walk.next.clear();
            walk.reached = true;
        }
        walk
    }

    /// True once the walk found its stop commit in the lineage.
    pub(crate) fn reached(&self) -> bool {
        self.reached
    }

    pub(crate) async fn next(
        &mut self,
        storage: &dyn Storage,
        stats: &mut RestoreStats,
    ) -> Result<Option<(Address, Commit)>, StorageError> {
        if self.fetched.is_empty() && !self.next.is_empty() {
            let batch = std::mem::take(&mut self.next);
            let blobs = get_all(storage, &batch).await?;
            stats.round_trips += 1;
            for (address, bytes) in batch.iter().zip(blobs) {
                stats.commits_fetched += 1;
                stats.bytes_fetched += bytes.len() as u64;
                self.fetched
                    .push_back((*address, Commit::decode(*address, &bytes)?));
            }
            if let Some((address, last)) = self.fetched.back() {
                // The oldest of the batch lists the next ones (its own lineage minus
                // itself).
                self.next = last.lineage(*address).into_iter().skip(1).collect();
                if let Some(at) = self
                    .stop
                    .and_then(|stop| self.next.iter().position(|a| *a == stop))
                {
                    self.next.truncate(at);
                    self.reached = true;
                }
            }
        }
        Ok(self.fetched.pop_front())
    }
}
