//! A peer: a connection to a named head of a [`Storage`] that transacts locally at once,
//! keeps every acknowledged transaction in a durable [`Outbox`] until it lands, and lands
//! each exactly once, rebasing on whatever other writers stored meanwhile.
//!
//! - [`Peer::transact`] applies the transaction to the local db (the app sees it at once;
//!   listeners are called as [`Conn`] calls them) and appends it *as written* — tx ops
//!   with tempids, lookup refs, upserts, `:db/cas` — to the outbox, fsynced, before it
//!   returns. That return is the acknowledgement.
//! - [`Peer::push`] stores the pending transactions, several in one commit (group
//!   commit, up to [`PeerOptions::max_batch`]). When the head moved it restores the new
//!   head incrementally and **rebases**: every pending transaction is run again, in
//!   order, against the new db (tempids, lookup refs, upserts and `:db/cas` resolve
//!   against the new state), and the store is tried again, with backoff and jitter, a
//!   bounded number of times. A transaction that fails on the new state is reported
//!   ([`Rejection`]: its id, position and typed error), removed from the outbox, and
//!   never half-applied; the others still land.
//! - **Exactly once.** Every pending transaction has an id (the outbox's origin and a
//!   sequence number) that the commit landing it records in its tx log
//!   ([`datoms_core::TxLogEntry::id`]). Before a rebase the peer reads the commits between
//!   the new head and the commit it last checked, and drops from the outbox every
//!   transaction they already hold: after a lost CAS reply, a crash between the CAS and
//!   the outbox write, or a restart.
//! - [`Peer::pull`] brings in remote commits and rebases pending work on them (`git pull
//!   --rebase`); [`Peer::rebase_onto`] does the same onto a db the caller already has (a
//!   follower's update).
//! - A failed push is retried by the peer itself: [`Peer::push_until_landed`] keeps going
//!   with backoff until the outbox is empty, and [`Peer::spawn_push_loop`] runs it in the
//!   background, woken by every transaction.
//! - [`Peer::spawn_follow`] follows the head: as other writers move it, the peer pulls
//!   and rebases its pending work at once (change signal) or at the next poll.

mod follow;
mod landed;
mod live;
pub mod outbox;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use datoms_core::restore::Mode;
use datoms_core::tx::{Conn, TxFunctions, TxOp, TxReport};
use datoms_core::{Address, Db, Schema, TxId};

pub use follow::PeerFollow;
pub use outbox::{MemoryOutbox, Outbox, OutboxError, OUTBOX_FORMAT_VERSION};

use outbox::{tx_id, Chain, Logged, Record};

use crate::error::StorageError;
use crate::restore::{restore, restore_commit};
use crate::storage::Storage;
use crate::store::store;

/// An error of a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The storage failed (after the retries of the request layer).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The outbox failed; a transaction whose append failed was not applied.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The transaction is not valid against the local db; nothing was written.
    #[error(transparent)]
    Tx(#[from] datoms_core::Error),
    /// A push gave up after `attempts` tries; the pending transactions stay in the
    /// outbox and a later push lands them.
    #[error("head {head:?}: {pending} transactions not landed after {attempts} attempts: {last}")]
    NotLanded {
        /// The head.
        head: String,
        /// Transactions still pending.
        pending: usize,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<StorageError>,
    },
    /// [`Peer::rebase_onto`] was given a db that is not a stored commit (it has
    /// transactions since its base commit, or no base commit).
    #[error("rebase onto a db that is not a stored commit: {reason}")]
    NotACommit {
        /// What the db has.
        reason: String,
    },
    /// A transaction holding a closure ([`TxOp::Fn`]): the outbox stores transactions as
    /// written, and a closure cannot be; nothing was written. Register the function in
    /// [`PeerOptions::tx_functions`] and call it by name ([`TxOp::Call`]).
    #[error("{op}: a transaction function closure cannot be stored in the outbox; register it in PeerOptions::tx_functions and call it by name")]
    Unstorable {
        /// The op, as EDN.
        op: String,
    },
    /// An earlier failure left the local db and the outbox out of step; reopen the peer
    /// (the outbox is the truth, and nothing acknowledged is lost).
    #[error("the peer must be reopened: {reason}")]
    Broken {
        /// The failure.
        reason: String,
    },
}

/// How a peer pushes.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// The schema of a database that does not exist yet (the head is absent).
    pub schema: Schema,
    /// At most this many pending transactions go into one commit (group commit). `1`
    /// turns group commit off: one commit, and one CAS, per transaction.
    pub max_batch: usize,
    /// Attempts of one [`Peer::push`] before [`PeerError::NotLanded`].
    pub max_attempts: u32,
    /// The wait after the first failed attempt; each later one doubles, up to
    /// `max_backoff`. Each wait is drawn between half and all of it (jitter), so writers
    /// that collided do not collide again in step.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// The transaction functions `[:db.fn/call name …]` ([`TxOp::Call`]) runs, locally
    /// and again on every rebase (against the newer db). A pending transaction naming a
    /// function missing here stops the rebase with [`PeerError::Tx`]
    /// ([`datoms_core::Error::UnknownTxFunction`]) and stays in the outbox: register it
    /// and reopen. Functions must be deterministic ([`datoms_core::tx::function`]).
    pub tx_functions: TxFunctions,
}

impl Default for PeerOptions {
    fn default() -> PeerOptions {
        PeerOptions {
            schema: Schema::new(),
            max_batch: 1024,
            max_attempts: 32,
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_secs(2),
            tx_functions: TxFunctions::new(),
        }
    }
}

/// A pending transaction that could not be applied on a newer db: it was removed from the
/// outbox and will never land.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// Its id.
    pub id: TxId,
    /// Its position among the pending transactions when it was rebased (0: the oldest).
    pub position: u64,
    /// Its ops, as written.
    pub ops: Vec<TxOp>,
    /// The typed error, when it was rejected in this process (`None` for a rejection
    /// read back from the outbox after a restart).
    pub error: Option<datoms_core::Error>,
    /// The error's message (what survives a restart).
    pub message: String,
}

/// What a rebase cost: the restore of the new head and the walk over the commits
/// between it and the peer's last checked commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebaseStats {
    /// Requests.
    pub round_trips: u64,
    /// Bytes fetched.
    pub bytes_fetched: u64,
    /// Commits whose logs were read for ids that already landed.
    pub commits_walked: u64,
    /// Pending transactions run again on the new db.
    pub reapplied: u64,
}

impl RebaseStats {
    fn add(&mut self, o: RebaseStats) {
        self.round_trips += o.round_trips;
        self.bytes_fetched += o.bytes_fetched;
        self.commits_walked += o.commits_walked;
        self.reapplied += o.reapplied;
    }
}

/// What a rebase did.
#[derive(Clone, Debug, Default)]
pub struct RebaseReport {
    /// The commit rebased onto.
    pub onto: Option<Address>,
    /// Pending transactions found already landed (dropped from the outbox, not applied
    /// again).
    pub landed: Vec<TxId>,
    /// Pending transactions that failed on the new db.
    pub rejected: Vec<Rejection>,
    /// What it cost.
    pub stats: RebaseStats,
}

/// What a push did.
#[derive(Clone, Debug, Default)]
pub struct PushReport {
    /// The transactions that landed (by this push's commits or found landed by an
    /// earlier attempt whose reply was lost), in order.
    pub landed: Vec<TxId>,
    /// Transactions rejected by the rebases.
    pub rejected: Vec<Rejection>,
    /// The commits this push wrote.
    pub commits: Vec<Address>,
    /// Store attempts (a conflict or a failure each cost one).
    pub attempts: u32,
    /// Rebases onto a moved head.
    pub rebases: u32,
    /// What the rebases cost.
    pub rebase_stats: RebaseStats,
}

impl PushReport {
    fn absorb(&mut self, r: RebaseReport) {
        self.landed.extend(r.landed);
        self.rejected.extend(r.rejected);
        self.rebase_stats.add(r.stats);
    }
}

/// The peer's state; one lock, held for local work only (never across I/O).
struct State {
    outbox: Outbox,
    /// The db at the base commit, without pending transactions.
    base: Db,
    /// The local db is `base` plus every pending transaction, in outbox order (false
    /// until the first rebase after an offline open that could not apply some).
    exact: bool,
    broken: Option<String>,
}

/// A connection to a named head of a [`Storage`] with a durable outbox: local-first
/// transactions that land exactly once (see the [module docs](self)).
///
/// Named `Peer`, not `Connection`: datoms' [`Conn`] already is Datascript's in-memory
/// connection, and this one is a participant among several writers of one head (as in
/// Datomic's peers), holding a `Conn` for its local db and listeners.
pub struct Peer {
    storage: Arc<dyn Storage>,
    head: String,
    options: PeerOptions,
    conn: Conn,
    state: Mutex<State>,
    /// One push, pull or rebase at a time.
    push_lock: tokio::sync::Mutex<()>,
    /// Woken by every transaction, for the push loop.
    wake: tokio::sync::Notify,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Peer {
    /// Opens a peer on head `head` of `storage` with `outbox`: restores the head lazily
    /// (a new, empty db with [`PeerOptions::schema`] if it does not exist), drops from the
    /// outbox what already landed, and rebases the rest on the head, so the local db is
    /// the head plus every pending transaction.
    ///
    /// # Errors
    /// Storage errors (the head cannot be read), outbox errors; [`PeerError::Tx`]
    /// ([`datoms_core::Error::UnknownTxFunction`]) when a pending transaction that must
    /// run again names a function [`PeerOptions::tx_functions`] lacks (it stays in the
    /// outbox: register it and open again).
    #[tracing::instrument(level = "info", skip_all, fields(head))]
    pub async fn open(
        storage: Arc<dyn Storage>,
        head: &str,
        outbox: Outbox,
        options: PeerOptions,
    ) -> Result<Peer, PeerError> {
        let db = match restore(storage.clone(), head).await {
            Ok(r) => r.db,
            Err(StorageError::NoHead { .. }) => Db::new(options.schema.clone()),
            Err(e) => return Err(e.into()),
        };
        let checked = outbox.contents().base;
        if let Some(local) = replay_recorded(&outbox, &db)? {
            // The recorded datoms stand on the head: replayed, nothing resolved again.
            let on = db.base_commit();
            let peer = Peer::assemble(storage, head, outbox, db.clone(), local, true, options);
            if checked != on {
                // Only the commits in between are read; nothing runs again unless some
                // of the pending transactions are found there.
                peer.rebase_onto(db).await?;
            }
            return Ok(peer);
        }
        // Resolved on another db: read the commits in between for what landed, and run
        // the rest once, on the head.
        let peer = Peer::assemble(
            storage,
            head,
            outbox,
            db.clone(),
            db.clone(),
            false,
            options,
        );
        peer.rebase_onto(db).await?;
        Ok(peer)
    }

    /// Opens a peer on `base`, a db at a commit of head `head` (or an empty db for a
    /// head that does not exist yet), without any I/O: for a peer that starts offline
    /// from a local copy of its head. The pending transactions of the outbox are applied
    /// on `base` (their recorded datoms replayed when they were resolved on that very
    /// commit, their ops run again otherwise); if `base` is newer than the commit the
    /// outbox last checked, some of them may already be in it and show twice locally (or,
    /// failing on it, not at all) until the first [`Peer::pull`] or [`Peer::push`],
    /// which checks the commits in between (storage never holds one twice) and decides.
    ///
    /// # Errors
    /// [`PeerError::NotACommit`] if `base` has transactions since its base commit;
    /// [`PeerError::Tx`] ([`datoms_core::Error::UnknownTxFunction`]) if a pending
    /// transaction that must run again names a function [`PeerOptions::tx_functions`]
    /// lacks (it stays in the outbox); outbox errors.
    pub fn open_at(
        storage: Arc<dyn Storage>,
        head: &str,
        outbox: Outbox,
        base: Db,
        options: PeerOptions,
    ) -> Result<Peer, PeerError> {
        check_commit(&base)?;
        if let Some(local) = replay_recorded(&outbox, &base)? {
            return Ok(Peer::assemble(
                storage,
                head,
                outbox,
                base.clone(),
                local,
                true,
                options,
            ));
        }
        let origin = outbox.contents().origin;
        let mut db = base.clone();
        let mut failed = 0usize;
        for p in &outbox.contents().pending {
            match db.with_id_fns(&p.ops, tx_id(origin, p.seq), &options.tx_functions) {
                Ok(r) => db = r.db_after,
                // The peer's configuration, not the data: said at once (see the rebase).
                Err(e @ datoms_core::Error::UnknownTxFunction { .. }) => return Err(e.into()),
                // Applied once already on an older base, it fails on this one, or it
                // really fails: the first rebase, which reads the commits in between,
                // decides. Until then it is not shown locally.
                Err(e) => {
                    tracing::debug!(seq = p.seq, error = %e, "pending transaction not applied on the offline base");
                    failed += 1;
                }
            }
        }
        let mut outbox = outbox;
        if failed == 0 {
            // Recorded, so that the next open on this commit replays instead.
            outbox.append(&[Record::Resolved {
                landed: Vec::new(),
                rejected: Vec::new(),
                base: None,
                chain: Chain::Rerun {
                    on: base.base_commit(),
                    datoms: db.pending_log().iter().map(|e| Logged::of(e)).collect(),
                },
            }])?;
        }
        Ok(Peer::assemble(
            storage,
            head,
            outbox,
            base,
            db,
            failed == 0,
            options,
        ))
    }

    /// A peer whose local db is `local`: `base` plus the pending transactions (all of
    /// them, in order, when `exact`).
    fn assemble(
        storage: Arc<dyn Storage>,
        head: &str,
        outbox: Outbox,
        base: Db,
        local: Db,
        exact: bool,
        options: PeerOptions,
    ) -> Peer {
        tracing::info!(
            pending = outbox.contents().pending.len(),
            base = ?base.base_commit(),
            exact,
            "peer opened"
        );
        Peer {
            storage,
            head: head.to_owned(),
            options,
            conn: Conn::new(local),
            state: Mutex::new(State {
                outbox,
                base,
                exact,
                broken: None,
            }),
            push_lock: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The local db: the base commit plus every pending transaction.
    pub fn db(&self) -> Db {
        self.conn.db()
    }

    /// The db at the base commit, without the pending transactions.
    pub fn base_db(&self) -> Db {
        lock(&self.state).base.clone()
    }

    /// The head this peer writes.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The storage this peer writes.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The ids of the pending transactions, oldest first.
    pub fn pending(&self) -> Vec<TxId> {
        let st = lock(&self.state);
        let origin = st.outbox.contents().origin;
        st.outbox
            .contents()
            .pending
            .iter()
            .map(|p| tx_id(origin, p.seq))
            .collect()
    }

    /// The id the next [`Peer::transact`] gives its transaction (ids grow by one per
    /// acknowledged transaction): for an application, or a test, that derives a
    /// transaction's content from its identity.
    pub fn next_id(&self) -> TxId {
        let st = lock(&self.state);
        tx_id(st.outbox.contents().origin, st.outbox.contents().next_seq)
    }

    /// Registers a listener, called with the report of every local transaction and of
    /// every rebase that changed the local datoms ([`Conn::listen`]).
    pub fn listen(&self, key: impl Into<String>, f: impl Fn(&TxReport) + Send + Sync + 'static) {
        self.conn.listen(key, f);
    }

    /// Removes a listener; returns whether there was one.
    pub fn unlisten(&self, key: &str) -> bool {
        self.conn.unlisten(key)
    }

    /// Runs `ops` on the local db and appends them, as written, to the outbox (fsynced)
    /// before returning: once this returns, the transaction is never lost, whatever
    /// happens to the process. Blocks for the fsync. The report's tempids are those of the
    /// local db; a rebase may resolve them to other entities (its report says which
    /// datoms changed).
    ///
    /// # Errors
    /// [`PeerError::Tx`] if the transaction is invalid on the local db,
    /// [`PeerError::Outbox`] if the append failed; in both cases nothing changed.
    pub fn transact(&self, ops: &[TxOp]) -> Result<TxReport, PeerError> {
        let mut st = lock(&self.state);
        if let Some(reason) = &st.broken {
            return Err(PeerError::Broken {
                reason: reason.clone(),
            });
        }
        let origin = st.outbox.contents().origin;
        let seq = st.outbox.contents().next_seq;
        let on = st.base.base_commit();
        if let Some(op) = ops.iter().find(|op| matches!(op, TxOp::Fn(..))) {
            return Err(PeerError::Unstorable { op: op.to_string() });
        }
        let (report, ()) = self.conn.transact_with(|db| {
            let report = db.with_id_fns(ops, tx_id(origin, seq), &self.options.tx_functions)?;
            st.outbox.append(&[Record::Tx {
                seq,
                ops: ops.to_vec(),
                on,
                datoms: report.db_after.pending_log().last().map(|e| Logged::of(e)),
            }])?;
            Ok::<_, PeerError>((report, ()))
        })?;
        drop(st);
        self.wake.notify_one();
        Ok(report)
    }

    /// Parses EDN tx data against the local schema and transacts it ([`Peer::transact`]).
    ///
    /// # Errors
    /// Parse errors as [`PeerError::Tx`], else as [`Peer::transact`].
    pub fn transact_edn(&self, text: &str) -> Result<TxReport, PeerError> {
        let ops = datoms_core::parse_tx(text, self.db().schema())?;
        self.transact(&ops)
    }

    /// The rejections recorded in the outbox that [`Peer::take_rejected`] has not taken
    /// (those of earlier processes included), oldest first.
    pub fn rejected(&self) -> Vec<Rejection> {
        let st = lock(&self.state);
        let origin = st.outbox.contents().origin;
        st.outbox
            .contents()
            .rejected
            .iter()
            .map(|r| Rejection {
                id: tx_id(origin, r.seq),
                position: r.position,
                ops: r.ops.clone(),
                error: None,
                message: r.message.clone(),
            })
            .collect()
    }

    /// Returns the recorded rejections ([`Peer::rejected`]) and records durably that the
    /// application took them.
    ///
    /// # Errors
    /// [`PeerError::Outbox`]; the rejections stay recorded then.
    pub fn take_rejected(&self) -> Result<Vec<Rejection>, PeerError> {
        let out = self.rejected();
        if let Some(last) = out.iter().map(|r| seq_of_id(r.id)).max() {
            lock(&self.state)
                .outbox
                .append(&[Record::Taken { through: last }])?;
        }
        Ok(out)
    }

    /// Stores the pending transactions until they land (or are rejected), rebasing on a
    /// moved head, retrying failures with backoff, at most
    /// [`PeerOptions::max_attempts`] attempts.
    ///
    /// # Errors
    /// [`PeerError::NotLanded`] after the last attempt (the transactions stay pending);
    /// a non-transient storage error of a rebase; outbox errors.
    #[tracing::instrument(level = "info", skip_all, fields(head = %self.head))]
    pub async fn push(&self) -> Result<PushReport, PeerError> {
        self.push_bounded(Some(self.options.max_attempts)).await
    }

    /// [`Peer::push`] without a bound on attempts: keeps retrying with backoff (capped at
    /// [`PeerOptions::max_backoff`]) until every pending transaction landed or was
    /// rejected. For a peer that must not depend on the next local write to retry.
    ///
    /// # Errors
    /// Outbox errors and [`PeerError::Broken`] only: storage failures are retried.
    pub async fn push_until_landed(&self) -> Result<PushReport, PeerError> {
        self.push_bounded(None).await
    }

    async fn push_bounded(&self, max_attempts: Option<u32>) -> Result<PushReport, PeerError> {
        let _push = self.push_lock.lock().await;
        let mut report = PushReport::default();
        let mut backoff = self.options.first_backoff;
        loop {
            report.attempts += 1;
            match self.push_once(&mut report).await {
                Ok(true) => return Ok(report),
                Ok(false) => {
                    // Rebased or landed a batch: go on at once.
                    backoff = self.options.first_backoff;
                    continue;
                }
                Err(PeerError::Storage(e)) => {
                    if max_attempts.is_some_and(|m| report.attempts >= m) {
                        return Err(PeerError::NotLanded {
                            head: self.head.clone(),
                            pending: self.pending().len(),
                            attempts: report.attempts,
                            last: Box::new(e),
                        });
                    }
                    tracing::debug!(error = %e, attempt = report.attempts, "push failed; backing off");
                }
                Err(e) => return Err(e),
            }
            crate::pause::pause(jitter(backoff)).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    /// One store of up to `max_batch` pending transactions. `Ok(true)`: nothing is
    /// pending any more; `Ok(false)`: progress made (a batch landed or a rebase), go on.
    async fn push_once(&self, report: &mut PushReport) -> Result<bool, PeerError> {
        let (to_store, k, checked) = {
            let st = lock(&self.state);
            if let Some(reason) = &st.broken {
                return Err(PeerError::Broken {
                    reason: reason.clone(),
                });
            }
            let n = st.outbox.contents().pending.len();
            if n == 0 {
                return Ok(true);
            }
            let checked = st.exact && st.base.base_commit() == st.outbox.contents().base;
            let k = n.min(self.options.max_batch.max(1));
            let db = self.conn.db();
            let to_store = if k == n {
                db
            } else {
                let mut d = st.base.clone();
                for entry in db.pending_log().into_iter().take(k) {
                    d = d.apply_log_entry((*entry).clone())?;
                }
                d
            };
            (to_store, k, checked)
        };
        if !checked {
            // The base is newer than what the outbox last checked, or some pending
            // transactions are not applied locally (an `open_at`): find what already
            // landed, and run the rest again, before storing anything.
            let base = self.base_db();
            report.absorb(self.rebase_locked_push(base).await?);
            return Ok(false);
        }
        match store(&to_store, &*self.storage, &self.head).await {
            Ok(stored) => {
                let mut st = lock(&self.state);
                let origin = st.outbox.contents().origin;
                let seqs: Vec<u64> = st.outbox.contents().pending[..k]
                    .iter()
                    .map(|p| p.seq)
                    .collect();
                // The commit is the old base plus exactly the first k transactions'
                // datoms: the others' recorded datoms hold on it.
                st.outbox.append(&[Record::Resolved {
                    landed: seqs.clone(),
                    rejected: Vec::new(),
                    base: Some(stored.commit),
                    chain: Chain::Kept,
                }])?;
                st.base = stored.db.clone();
                // The local db keeps the transactions after the batch (and any made
                // during the store), now on the new commit: the same datoms.
                let reset = self.conn.reset_with(|current| {
                    let mut db = stored.db.clone();
                    for entry in current.pending_log().into_iter().skip(k) {
                        db = db.apply_log_entry((*entry).clone())?;
                    }
                    Ok::<_, datoms_core::Error>((db, ()))
                });
                if let Err(e) = reset {
                    st.broken = Some(e.to_string());
                    return Err(e.into());
                }
                report.commits.push(stored.commit);
                report.landed.extend(seqs.iter().map(|s| tx_id(origin, *s)));
                tracing::info!(commit = %stored.commit, txs = k, "landed");
                Ok(st.outbox.contents().pending.is_empty())
            }
            Err(StorageError::HeadConflict {
                current: Some(h), ..
            }) => {
                report.rebases += 1;
                let base = self.base_db();
                let mut r =
                    restore_commit(&*self.storage, h.commit, Some(&base), Mode::Eager).await?;
                r.db = match base.source() {
                    Some(s) if r.db.source().is_none() => r.db.with_source(s.clone()),
                    _ => r.db,
                };
                let mut rebased = self.rebase_locked_push(r.db).await?;
                rebased.stats.round_trips += r.stats.round_trips;
                rebased.stats.bytes_fetched += r.stats.bytes_fetched;
                report.absorb(rebased);
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Brings in the commits other writers stored and rebases the pending transactions
    /// on them. A peer offline for any length of time reconnects with this call.
    ///
    /// # Errors
    /// Storage errors (nothing changed then), outbox errors.
    #[tracing::instrument(level = "info", skip_all, fields(head = %self.head))]
    pub async fn pull(&self) -> Result<RebaseReport, PeerError> {
        let _push = self.push_lock.lock().await;
        let head = crate::batch::retry(|| self.storage.get_head(&self.head)).await?;
        let Some(head) = head else {
            return Ok(RebaseReport::default());
        };
        let base = self.base_db();
        if base.base_commit() == Some(head.commit) {
            return self.rebase_locked_push(base).await;
        }
        let r = restore_commit(&*self.storage, head.commit, Some(&base), Mode::Eager).await?;
        let mut report = self.rebase_locked_push(r.db).await?;
        report.stats.round_trips += r.stats.round_trips + 1;
        report.stats.bytes_fetched += r.stats.bytes_fetched;
        Ok(report)
    }

    /// Rebases the pending transactions onto `db`, a db at a newer commit of this head
    /// that the caller already has (a follower's update): reads the commits between it
    /// and the last checked one for transactions that already landed, then runs the
    /// others again on `db`. Listeners see the difference.
    ///
    /// # Errors
    /// [`PeerError::NotACommit`] if `db` has unstored transactions; storage errors
    /// reading the commits; outbox errors.
    pub async fn rebase_onto(&self, db: Db) -> Result<RebaseReport, PeerError> {
        let _push = self.push_lock.lock().await;
        self.rebase_locked_push(db).await
    }

    /// [`Peer::rebase_onto`] with the push lock held by the caller.
    async fn rebase_locked_push(&self, db: Db) -> Result<RebaseReport, PeerError> {
        check_commit(&db)?;
        let (origin, checked, any_pending) = {
            let st = lock(&self.state);
            let c = st.outbox.contents();
            (c.origin, c.base, !c.pending.is_empty())
        };
        let mut stats = RebaseStats::default();
        let mut found = HashSet::new();
        if let (Some(onto), true) = (db.base_commit(), any_pending) {
            let l = landed::landed_between(&*self.storage, onto, checked, origin).await?;
            stats.round_trips += l.round_trips;
            stats.bytes_fetched += l.bytes;
            stats.commits_walked += l.commits;
            found = l.seqs;
        }
        let mut st = lock(&self.state);
        if found.is_empty() && st.exact && db.base_commit() == st.base.base_commit() {
            // Nothing landed, and the local db already stands on this commit with every
            // pending transaction: nothing to run again.
            if db.base_commit() != checked {
                st.outbox.append(&[Record::Resolved {
                    landed: Vec::new(),
                    rejected: Vec::new(),
                    base: db.base_commit(),
                    chain: Chain::Kept,
                }])?;
            }
            return Ok(RebaseReport {
                onto: db.base_commit(),
                stats,
                ..RebaseReport::default()
            });
        }
        let pending = st.outbox.contents().pending.clone();
        let mut next = db.clone();
        let mut landed = Vec::new();
        let mut rejected = Vec::new();
        for (position, p) in pending.iter().enumerate() {
            let id = tx_id(origin, p.seq);
            if found.contains(&p.seq) {
                landed.push(p.seq);
                continue;
            }
            stats.reapplied += 1;
            match next.with_id_fns(&p.ops, id, &self.options.tx_functions) {
                Ok(r) => next = r.db_after,
                // A missing registration is the peer's configuration, not a conflict with
                // the newer db: nothing is decided, the transaction stays pending, and the
                // error names the function (register it and reopen).
                Err(e @ datoms_core::Error::UnknownTxFunction { .. }) => {
                    tracing::error!(id = %id, position, error = %e, "pending transaction names an unregistered transaction function; rebase stopped");
                    return Err(e.into());
                }
                Err(e) => rejected.push(Rejection {
                    id,
                    position: position as u64,
                    ops: p.ops.clone(),
                    message: e.to_string(),
                    error: Some(e),
                }),
            }
        }
        st.outbox.append(&[Record::Resolved {
            landed: landed.clone(),
            rejected: rejected
                .iter()
                .map(|r| (seq_of_id(r.id), r.position, r.message.clone()))
                .collect(),
            base: db.base_commit(),
            chain: Chain::Rerun {
                on: db.base_commit(),
                datoms: next.pending_log().iter().map(|e| Logged::of(e)).collect(),
            },
        }])?;
        st.base = db.clone();
        st.exact = true;
        if let Err(e) = self
            .conn
            .reset_with(|_| Ok::<_, datoms_core::Error>((next, ())))
        {
            st.broken = Some(e.to_string());
            return Err(e.into());
        }
        for r in &rejected {
            tracing::warn!(id = %r.id, position = r.position, error = %r.message, "pending transaction rejected on rebase");
        }
        Ok(RebaseReport {
            onto: db.base_commit(),
            landed: landed.iter().map(|s| tx_id(origin, *s)).collect(),
            rejected,
            stats,
        })
    }

    /// Runs [`Peer::push_until_landed`] in the background on the current tokio runtime
    /// whenever there is pending work: after every transaction, and after a failure
    /// with backoff, without waiting for another local write. Stops when the handle is
    /// dropped or [`PushLoop::stop`]ped.
    pub fn spawn_push_loop(self: &Arc<Self>) -> PushLoop {
        let peer = self.clone();
        let reports = Arc::new(Mutex::new(PushLoopState::default()));
        let out = reports.clone();
        let task = tokio::spawn(async move {
            loop {
                let wait = peer.wake.notified();
                if !peer.pending().is_empty() {
                    let result = peer.push_until_landed().await;
                    if let Ok(mut s) = out.lock() {
                        match result {
                            Ok(r) => {
                                s.landed += r.landed.len() as u64;
                                s.rejected.extend(r.rejected);
                            }
                            Err(e) => s.last_error = Some(e.to_string()),
                        }
                    }
                }
                if peer.pending().is_empty() {
                    wait.await;
                }
            }
        });
        PushLoop {
            task,
            state: reports,
        }
    }
}

#[derive(Debug, Default)]
struct PushLoopState {
    landed: u64,
    rejected: Vec<Rejection>,
    last_error: Option<String>,
}

/// A background push loop ([`Peer::spawn_push_loop`]); stops when dropped.
#[derive(Debug)]
pub struct PushLoop {
    task: tokio::task::JoinHandle<()>,
    state: Arc<Mutex<PushLoopState>>,
}

impl PushLoop {
    /// Transactions the loop landed so far.
    pub fn landed(&self) -> u64 {
        self.state.lock().map(|s| s.landed).unwrap_or(0)
    }

    /// Takes the rejections the loop's rebases reported (they are also in the outbox:
    /// [`Peer::rejected`]).
    pub fn take_rejected(&self) -> Vec<Rejection> {
        self.state
            .lock()
            .map(|mut s| std::mem::take(&mut s.rejected))
            .unwrap_or_default()
    }

    /// The loop's last failure that was not a storage failure (those it retries).
    pub fn last_error(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.last_error.clone())
    }

    /// Stops the loop.
    pub fn stop(self) {}
}

impl Drop for PushLoop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("head", &self.head)
            .field("db", &self.db())
            .field("pending", &self.pending().len())
            .finish()
    }
}

fn check_commit(db: &Db) -> Result<(), PeerError> {
    if db.pending_txs() > 0 {
        return Err(PeerError::NotACommit {
            reason: format!("{} transactions since its base commit", db.pending_txs()),
        });
    }
    Ok(())
}

/// The local db from the outbox's recorded datoms (a log replay), when they were resolved
/// one after the other on `base`'s commit; `None` otherwise.
fn replay_recorded(outbox: &Outbox, base: &Db) -> Result<Option<Db>, PeerError> {
    let c = outbox.contents();
    if !c.pending.is_empty() && c.chain_on() != Some(base.base_commit()) {
        return Ok(None);
    }
    let mut entries = Vec::with_capacity(c.pending.len());
    for p in &c.pending {
        let Some(datoms) = &p.datoms else {
            return Ok(None);
        };
        entries.push(datoms.entry(tx_id(c.origin, p.seq)));
    }
    // One update of each index for them all.
    Ok(Some(base.apply_log_entries(entries)?))
}

fn seq_of_id(id: TxId) -> u64 {
    let mut s = [0u8; 8];
    s.copy_from_slice(&id.0[8..]);
    u64::from_be_bytes(s)
}

/// A wait drawn uniformly between half and all of `d`.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
}
