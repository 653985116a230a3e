//! `follow`: keep a db current with a head, as a stream of updates — a change feed.
//!
//! A [`Follower`] holds a db and the head it follows. Each [`Update`] is **one commit**,
//! in commit order: the db at that commit, the datoms added and retracted since the
//! previous update (`diff`, O(changes × depth)), the route the sync took (log replay or
//! tree restore) and its I/O. A head that moved several commits at once is stepped
//! through commit by commit (the lineage every commit lists names them; farther than
//! [`FollowOptions::max_steps`] commits, or onto another lineage, one update jumps to
//! the head). So a consumer that applies every update in order sees every change once.
//!
//! A follower never changes a db value it handed out: readers holding an older db are
//! unaffected. It is driven by [`Follower::next`] (waits), [`Follower::try_next`] (one
//! look, no waiting) or [`Follower::into_stream`] (a `futures` `Stream`); a peer that
//! rebases pending work as the head moves drives the same loop, or waits on a
//! [`HeadWatch`] alone.
//!
//! Waiting: the head is polled every [`FollowOptions::poll`], the interval growing by
//! half while nothing changes up to [`FollowOptions::max_poll`] and falling back at the
//! next move, with [`FollowOptions::jitter`] taken off at random so that many followers
//! do not poll in step. A backend with a change signal ([`Storage::head_changes`]) wakes
//! the follower at once when a head moves through it in this process.
//!
//! Failures: a transient error (after the drivers' own retries) is logged and tried
//! again at the next poll; any other error is returned and leaves the follower where it
//! was (its db, and the commits it still has to deliver), so calling again resumes
//! without missing or repeating a commit. A follower restarted in another process
//! resumes from the last commit it delivered ([`Follower::from_commit`]).

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use datoms_core::commit::ANCESTORS;
use datoms_core::live::{LiveInput, LiveSet, PullWatch, Watch};
use datoms_core::query::QueryValue;
use datoms_core::restore::Mode;
use datoms_core::{diff, Address, Commit, Datom, Db, RestoreStats, Schema};
use futures::Stream;

use crate::batch::retry;
use crate::error::StorageError;
use crate::restore::{restore_commit, DEFAULT_CACHE_BYTES};
use crate::signal::HeadChanges;
use crate::source::StorageSource;
use crate::storage::{Head, Storage};
use crate::sync::{add_stats, fetch_commit, sync_commit, SyncPolicy, SyncRoute};

/// How a follower waits and syncs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FollowOptions {
    /// The poll interval right after a move.
    pub poll: Duration,
    /// The longest poll interval: while nothing changes the interval grows by half at
    /// each poll up to this.
    pub max_poll: Duration,
    /// The fraction (0 to 1) of each interval taken off at random.
    pub jitter: f64,
    /// How each commit is brought in.
    pub policy: SyncPolicy,
    /// The most commits a catch-up delivers one by one; a head farther ahead is reached
    /// in one update.
    pub max_steps: usize,
}

impl Default for FollowOptions {
    /// Poll every 200 ms, backing off to 2 s when idle, 10 % jitter, [`SyncPolicy::Auto`],
    /// up to 1024 commits delivered one by one.
    fn default() -> FollowOptions {
        FollowOptions {
            poll: Duration::from_millis(200),
            max_poll: Duration::from_secs(2),
            jitter: 0.1,
            policy: SyncPolicy::Auto,
            max_steps: 1024,
        }
    }
}

/// One step of a follower: the db at the next commit and what changed.
#[derive(Clone, Debug)]
pub struct Update {
    /// The db at `commit`.
    pub db: Db,
    /// The commit this update brings the follower to.
    pub commit: Address,
    /// The commit of the previous update's db (`None`: the follower had none).
    pub previous: Option<Address>,
    /// How many commits this update advances over: 1 when following commit by commit,
    /// `None` for a jump whose distance is not known: the head is more than
    /// [`FollowOptions::max_steps`] commits ahead, does not descend from `previous`, or
    /// the follower had no commit.
    pub commits: Option<u64>,
    /// Datoms in `db` and not in the previous db, in EAVT order.
    pub added: Vec<Datom>,
    /// Datoms in the previous db and not in `db`, in EAVT order (with `added` false).
    pub retracted: Vec<Datom>,
    /// Log replay or tree restore.
    pub route: SyncRoute,
    /// The I/O this update took (the head read and commit fetches included).
    pub stats: RestoreStats,
}

/// Waits for a head to move: the change signal if the backend has one, else (and
/// beside it) a poll timer with idle backoff and jitter. The waiting half of a
/// [`Follower`], for a caller with its own idea of what to do on a move.
#[derive(Debug)]
pub struct HeadWatch {
    storage: Arc<dyn Storage>,
    name: String,
    changes: Option<HeadChanges>,
    options: FollowOptions,
    interval: Duration,
    /// When the last head read began: the next poll is due an interval after it, so a
    /// step's own time does not stretch the period.
    last_read: std::sync::Mutex<Option<tokio::time::Instant>>,
    random: u64,
}

impl HeadWatch {
    /// A watch of head `name`. Subscribes to the change signal at once, so a move after
    /// this call is never slept through.
    pub fn new(storage: Arc<dyn Storage>, name: &str, options: FollowOptions) -> HeadWatch {
        let changes = storage.head_changes();
        HeadWatch {
            storage,
            name: name.to_owned(),
            changes,
            options,
            interval: options.poll,
            last_read: std::sync::Mutex::new(None),
            random: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
                | 1,
        }
    }

    /// The storage watched.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The head's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True if the backend offers a change signal (see [`Storage::head_changes`]).
    pub fn has_signal(&self) -> bool {
        self.changes.is_some()
    }

    /// Reads the head now (transient failures retried).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn read(&self) -> Result<Option<Head>, StorageError> {
        if let Ok(mut last) = self.last_read.lock() {
            *last = Some(tokio::time::Instant::now());
        }
        retry(|| self.storage.get_head(&self.name)).await
    }

    /// Sleeps until the change signal fires or the poll interval (less jitter) has
    /// passed since the last head read began (polls keep a fixed rate: the time a step
    /// took is not added to the period), then lengthens the interval for the next idle
    /// wait. Call [`HeadWatch::moved`] when a read found the head moved.
    pub async fn wait(&mut self) {
        // tokio's timer ticks in milliseconds and rounds a deadline up to the next tick,
        // so a sleep ends up to a millisecond late: asking for one less keeps the next
        // poll within the interval, which the latency bound counts on.
        let period = self.jittered().saturating_sub(TIMER_TICK);
        let now = tokio::time::Instant::now();
        let from = self
            .last_read
            .lock()
            .ok()
            .and_then(|last| *last)
            .unwrap_or(now);
        let sleep = tokio::time::sleep_until((from + period).max(now));
        self.interval = self
            .options
            .max_poll
            .min(self.interval.mul_f64(1.5))
            .max(self.options.poll);
        match self.changes.as_mut() {
            None => sleep.await,
            Some(changes) => {
                let signalled = tokio::select! {
                    alive = changes.changed() => alive,
                    () = sleep => true,
                };
                if !signalled {
                    // The storage dropped its signal: poll from now on.
                    self.changes = None;
                }
            }
        }
    }

    /// The head moved: the next wait is the shortest again.
    pub fn moved(&mut self) {
        self.interval = self.options.poll;
    }

    /// Waits until the head is somewhere other than `known` (a commit, or `None` for no
    /// head), and returns where it is. Transient failures are logged and polled through.
    ///
    /// # Errors
    /// Non-transient backend errors.
    pub async fn next_move(
        &mut self,
        known: Option<Address>,
    ) -> Result<Option<Head>, StorageError> {
        loop {
            match self.read().await {
                Ok(head) if head.as_ref().map(|h| h.commit) != known => {
                    self.moved();
                    return Ok(head);
                }
                Ok(_) => {}
                Err(e) if e.is_transient() => {
                    tracing::warn!(head = %self.name, error = %e, "reading the head failed; trying again");
                }
                Err(e) => return Err(e),
            }
            self.wait().await;
        }
    }

    fn jittered(&mut self) -> Duration {
        // xorshift64: only spreads followers apart, needs no quality.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        let unit = (self.random >> 11) as f64 / (1u64 << 53) as f64;
        let off = self.options.jitter.clamp(0.0, 1.0) * unit;
        self.interval.mul_f64(1.0 - off)
    }
}

/// The resolution of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// A commit still to deliver on the way to the head.
#[derive(Debug)]
struct Step {
    commit: Address,
    /// The decoded commit, when planning fetched it.
    known: Option<Commit>,
    /// Commits this step advances over.
    commits: Option<u64>,
}

/// Keeps a db current with a head, one [`Update`] per commit (see the module docs).
#[derive(Debug)]
pub struct Follower {
    watch: HeadWatch,
    db: Db,
    options: FollowOptions,
    /// The commits still to deliver, oldest first.
    steps: VecDeque<Step>,
    /// I/O spent planning the steps, charged to the next update.
    planning: RestoreStats,
    /// Live queries on the followed db, updated with every update.
    live: LiveSet,
}

impl Follower {
    /// A follower of head `name` in `storage`, starting from `db`: the first update is
    /// the first commit after `db`'s commit (or, for a db with no commit, the head).
    pub fn new(storage: Arc<dyn Storage>, name: &str, db: Db, options: FollowOptions) -> Follower {
        Follower {
            watch: HeadWatch::new(storage, name, options),
            db,
            options,
            steps: VecDeque::new(),
            planning: RestoreStats::default(),
            live: LiveSet::new(),
        }
    }

    /// A follower starting at the head as it is now (restored lazily: nodes load as
    /// reads need them); the first update is the next move. With no head yet, it starts
    /// from an empty db and the first update is the head's first commit.
    ///
    /// # Errors
    /// Backend errors, a missing or corrupt blob.
    pub async fn at_head(
        storage: Arc<dyn Storage>,
        name: &str,
        options: FollowOptions,
    ) -> Result<Follower, StorageError> {
        // Subscribe before the read, so no move between them is missed.
        let watch = HeadWatch::new(storage, name, options);
        let db = match watch.read().await? {
            Some(head) => lazy_db(watch.storage(), head.commit).await?,
            None => Db::new(Schema::new()),
        };
        Ok(Follower {
            watch,
            db,
            options,
            steps: VecDeque::new(),
            planning: RestoreStats::default(),
            live: LiveSet::new(),
        })
    }

    /// A follower resuming after `commit`, the last commit it delivered (a follower
    /// restarted in a new process): the first update is the commit after it.
    ///
    /// # Errors
    /// As [`Follower::at_head`]; [`StorageError::NotFound`] if `commit` is not stored.
    pub async fn from_commit(
        storage: Arc<dyn Storage>,
        name: &str,
        commit: Address,
        options: FollowOptions,
    ) -> Result<Follower, StorageError> {
        let watch = HeadWatch::new(storage, name, options);
        let db = lazy_db(watch.storage(), commit).await?;
        Ok(Follower {
            watch,
            db,
            options,
            steps: VecDeque::new(),
            planning: RestoreStats::default(),
            live: LiveSet::new(),
        })
    }

    /// The db as of the last update.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The commit of the last update (or of the db the follower started from).
    pub fn commit(&self) -> Option<Address> {
        self.db.base_commit()
    }

    /// Starts a live query on the followed db (see [`datoms_core::live`]): the full
    /// result at once, then its diff after every update that changes it, with the
    /// commit it is exact for. (Named so because [`Follower::watch`] is the head
    /// watch.) Updates come as the follower is driven ([`Follower::next`]); dropping the
    /// returned watch ends it.
    ///
    /// # Errors
    /// [`StorageError::Core`] for a query or inputs that do not run on the db.
    pub fn watch_query(&self, query: &str, inputs: Vec<LiveInput>) -> Result<Watch, StorageError> {
        Ok(self.live.watch(&self.db, query, inputs)?)
    }

    /// Starts a live pull of `entity` on the followed db: the tree now, then the new
    /// tree after every update that changes it.
    ///
    /// # Errors
    /// [`StorageError::Core`] for a bad pattern or entity.
    pub fn watch_pull(&self, pattern: &str, entity: QueryValue) -> Result<PullWatch, StorageError> {
        Ok(self.live.watch_pull(&self.db, pattern, entity)?)
    }

    /// The watch the follower waits on.
    pub fn watch(&mut self) -> &mut HeadWatch {
        &mut self.watch
    }

    /// The next update, waiting for the head to move if it has not.
    ///
    /// # Errors
    /// Non-transient errors of the head read, the sync or the diff; the follower stays
    /// where it was, and the next call tries the same commit again.
    pub async fn next(&mut self) -> Result<Update, StorageError> {
        loop {
            match self.try_next().await {
                Ok(Some(update)) => {
                    self.watch.moved();
                    return Ok(update);
                }
                Ok(None) => {}
                Err(e) if e.is_transient() => {
                    tracing::warn!(head = %self.watch.name, error = %e, "following failed; trying again");
                }
                Err(e) => return Err(e),
            }
            self.watch.wait().await;
        }
    }

    /// The next update if the head has moved past the follower's commit, without
    /// waiting; `None` if it has not.
    ///
    /// # Errors
    /// As [`Follower::next`], transient ones included.
    pub async fn try_next(&mut self) -> Result<Option<Update>, StorageError> {
        if self.steps.is_empty() && !self.plan().await? {
            return Ok(None);
        }
        let Some(step) = self.steps.front_mut() else {
            return Ok(None);
        };
        let previous = self.db.base_commit();
        let synced = sync_commit(
            &self.db,
            &*self.watch.storage,
            step.commit,
            step.known.take(),
            self.options.policy,
        )
        .await?;
        let changes = diff(&self.db, &synced.db)?;
        // Delivered: only now does the follower move on.
        let Some(step) = self.steps.pop_front() else {
            return Ok(None);
        };
        let stats = add_stats(std::mem::take(&mut self.planning), synced.stats);
        if !self.live.is_empty() {
            let mut datoms = changes.retracted.clone();
            datoms.extend(changes.added.iter().cloned());
            let live = self.live.apply(&self.db, &synced.db, &datoms);
            tracing::debug!(
                touched = live.touched,
                incremental = live.incremental,
                reevaluated = live.reevaluated,
                updates = live.updates,
                "live queries updated"
            );
        }
        self.db = synced.db.clone();
        tracing::info!(
            head = %self.watch.name,
            commit = %step.commit,
            route = ?synced.route,
            added = changes.added.len(),
            retracted = changes.retracted.len(),
            round_trips = stats.round_trips,
            "followed"
        );
        Ok(Some(Update {
            db: synced.db,
            commit: step.commit,
            previous,
            commits: step.commits,
            added: changes.added,
            retracted: changes.retracted,
            route: synced.route,
            stats,
        }))
    }

    /// The updates as a `Stream` (never ending; an error is an item, and the stream
    /// goes on from where the follower was).
    pub fn into_stream(self) -> impl Stream<Item = Result<Update, StorageError>> + Send {
        futures::stream::unfold(self, |mut follower| async move {
            let item = follower.next().await;
            Some((item, follower))
        })
    }

    /// Reads the head and, if it moved, lists the commits to deliver. False if it has
    /// not moved.
    async fn plan(&mut self) -> Result<bool, StorageError> {
        let head = self.watch.read().await?;
        self.planning.round_trips += 1;
        let Some(head) = head else {
            return Ok(false);
        };
        let current = self.db.base_commit();
        if current == Some(head.commit) && self.db.pending_txs() == 0 {
            return Ok(false);
        }
        let top = fetch_commit(&*self.watch.storage, head.commit, &mut self.planning).await?;
        // The commits from the head back to the follower's, newest first.
        let mut chain = top.lineage(head.commit);
        let mut goes_on = lineage_goes_on(&top);
        let found = loop {
            if let Some(k) = current.and_then(|c| chain.iter().position(|a| *a == c)) {
                chain.truncate(k);
                break true;
            }
            if current.is_none() || chain.len() > self.options.max_steps.max(1) {
                break false;
            }
            // The lineage ends before the follower's commit: read the oldest commit's
            // own lineage, one request per nine commits.
            if !goes_on {
                break false;
            }
            let oldest = chain[chain.len() - 1];
            let c = fetch_commit(&*self.watch.storage, oldest, &mut self.planning).await?;
            goes_on = lineage_goes_on(&c);
            chain.extend(c.lineage(oldest).into_iter().skip(1));
        };
        if found && chain.len() <= self.options.max_steps.max(1) {
            let mut steps: Vec<Step> = chain
                .iter()
                .map(|a| Step {
                    commit: *a,
                    known: None,
                    commits: Some(1),
                })
                .collect();
            if let Some(first) = steps.first_mut() {
                first.known = Some(top);
            }
            self.steps.extend(steps.into_iter().rev());
        } else {
            self.steps.push_back(Step {
                commit: head.commit,
                known: Some(top),
                commits: None,
            });
        }
        Ok(true)
    }
}

/// Whether the commit before the oldest one `commit`'s lineage lists may exist: the
/// lineage is cut at [`ANCESTORS`], not at the first commit.
fn lineage_goes_on(commit: &Commit) -> bool {
    commit.parent.is_some() && commit.ancestors.len() >= ANCESTORS
}

/// The db at `commit`, restored lazily through a node source over `storage`.
async fn lazy_db(storage: &Arc<dyn Storage>, commit: Address) -> Result<Db, StorageError> {
    let source = StorageSource::new(storage.clone(), DEFAULT_CACHE_BYTES)?;
    let restored = restore_commit(&**storage, commit, None, Mode::Lazy).await?;
    Ok(restored.db.with_source(source))
}
