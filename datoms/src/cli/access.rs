//! Getting at a database: open the storage a URL names (counting its I/O), read the head,
//! fetch commits, restore dbs.

use std::collections::HashSet;
use std::sync::Arc;

// `datoms::restore` names the storage crate's restore module (the `restore` fn import
// brings it along), so the core machine's `Mode` is reached through datoms-core.
use datoms::storage::batch::{get_all, get_batched};
use datoms::{
    Address, Commit, FaultyStorage, Head, IoCounters, Restore, Restored, Step, Storage,
    StorageError,
};
use datoms_core::restore::Mode;
use indicatif::ProgressBar;

use super::lock::{open_waiting, Access};
use super::output::Ctx;
use super::{CliError, DbArgs};

/// An opened storage and the head the command works on.
///
/// The storage is wrapped in [`FaultyStorage`] with no fault armed, only for its
/// counters: commands report the requests and bytes the backend really served, not what
/// the algorithms believe they asked for.
pub struct Opened {
    /// The URL, for messages.
    pub url: String,
    /// The head name.
    pub head: String,
    counted: Arc<FaultyStorage<Arc<dyn Storage>>>,
    storage: Arc<dyn Storage>,
}

/// Time-view flags of the reading commands (`query`, `pull`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ViewArgs {
    /// Read the db as of this commit of the head's history (its address, or a prefix as
    /// `datoms log` prints it), or as of a wall-clock instant in RFC 3339
    /// (`2026-12-06T12:00:00Z`): the newest commit made at or before it.
    #[arg(long, value_name = "COMMIT|INSTANT", conflicts_with = "as_of_tx")]
    pub as_of: Option<String>,

    /// Only what changed after this commit of the head's history: a query sees the
    /// datoms asserted since (Datomic's `since`); an index read prints the datoms
    /// asserted and retracted since, each with its added flag.
    #[arg(long, value_name = "COMMIT")]
    pub since: Option<String>,

    /// Read the db right after this transaction of the head's history (a tx id as
    /// `:db/txInstant` datoms and `datoms log` show them).
    #[arg(long, value_name = "TX")]
    pub as_of_tx: Option<u64>,
}

/// Reads `text` as an RFC 3339 instant, in milliseconds since the Unix epoch: `None` when
/// it does not look like one (a commit prefix is hex digits only), an error when it does
/// but does not parse or comes before the epoch.
pub fn parse_instant(text: &str) -> Option<Result<u64, CliError>> {
    let text = text.trim();
    if text.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            CliError::Usage(format!(
                "{text:?} is neither a commit nor an RFC 3339 instant (such as 2026-12-06T12:00:00Z): {e}"
            ))
        });
    Some(parsed.and_then(|t| {
        u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| CliError::Usage(format!("{text:?} is before 1970")))
    }))
}

/// A commit time (ms since the Unix epoch) in RFC 3339, UTC, to the millisecond.
pub fn format_instant(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Whether a command may create the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Writers (transact, import) create a missing redb file.
    Yes,
    /// Readers fail on a missing file instead of leaving an empty one behind, and open
    /// the storage read-only (`datoms::open_read_only`).
    No,
    /// Writers that only change an existing database (`branch`): a missing file is an
    /// error, as for readers, and the storage opens for writing.
    Existing,
}

impl Opened {
    /// Opens `args.db`.
    ///
    /// # Errors
    /// [`CliError::NoFile`] for a missing redb file when `create` is [`Create::No`], or
    /// the open error.
    /// A file another process holds is waited for, up to `args.lock_wait` seconds
    /// (see [`super::lock`]).
    pub async fn open(args: &DbArgs, create: Create, ctx: &Ctx) -> Result<Opened, CliError> {
        if let Some(path) = args.db.strip_prefix("redb:") {
            if create != Create::Yes && !path.is_empty() && !std::path::Path::new(path).exists() {
                return Err(CliError::NoFile {
                    url: args.db.clone(),
                    path: path.to_owned(),
                });
            }
        }
        let access = match create {
            Create::Yes | Create::Existing => Access::Write,
            // Readers open read-only, so that they share the file with each other.
            Create::No => Access::Read,
        };
        let wait = std::time::Duration::from_secs(args.lock_wait);
        let inner = open_waiting(&args.db, access, wait, ctx).await?;
        Ok(Opened::wrap(args.db.clone(), args.head.clone(), inner))
    }

    /// Wraps an already opened storage.
    pub fn wrap(url: String, head: String, inner: Arc<dyn Storage>) -> Opened {
        let counted = Arc::new(FaultyStorage::new(inner));
        let storage: Arc<dyn Storage> = counted.clone();
        Opened {
            url,
            head,
            counted,
            storage,
        }
    }

    /// The storage, counted.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The I/O served so far.
    pub fn io(&self) -> IoCounters {
        self.counted.counters()
    }

    /// Where the head points, if it exists.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn get_head(&self) -> Result<Option<Head>, CliError> {
        Ok(self.storage.get_head(&self.head).await?)
    }

    /// The commit the head points to.
    ///
    /// # Errors
    /// [`CliError::NoDatabase`] if the head does not exist; backend errors.
    pub async fn head_commit(&self) -> Result<Address, CliError> {
        self.get_head()
            .await?
            .map(|h| h.commit)
            .ok_or_else(|| CliError::NoDatabase {
                url: self.url.clone(),
                head: self.head.clone(),
            })
    }

    /// Fetches and verifies the commits at `addresses` in one batched request.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] naming a missing commit; corrupt or malformed bytes.
    pub async fn commits(&self, addresses: &[Address]) -> Result<Vec<(Commit, u64)>, CliError> {
        let blobs = get_all(&*self.storage, addresses).await?;
        addresses
            .iter()
            .zip(blobs)
            .map(|(a, b)| Ok((Commit::decode(*a, &b)?, b.len() as u64)))
            .collect()
    }

    /// Fetches and verifies one commit, with its size in bytes.
    ///
    /// # Errors
    /// As [`Opened::commits`].
    pub async fn commit(&self, address: Address) -> Result<(Commit, u64), CliError> {
        self.commits(&[address])
            .await?
            .pop()
            .ok_or(CliError::Storage(StorageError::NotFound { address }))
    }

    /// The head's db, restored lazily: nodes load on demand, so a transaction or a query
    /// touches only the paths it needs.
    ///
    /// # Errors
    /// [`CliError::NoDatabase`], missing or corrupt blobs.
    pub async fn lazy_db(&self) -> Result<datoms::Db, CliError> {
        match datoms::restore(self.storage.clone(), &self.head).await {
            Ok(r) => Ok(r.db),
            Err(StorageError::NoHead { .. }) => Err(CliError::NoDatabase {
                url: self.url.clone(),
                head: self.head.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The db a reading command works on: the head's, or — given `--as-of` or
    /// `--as-of-tx` — the db as of a commit of its history or right after a
    /// transaction (see [`datoms::as_of`]), lazily restored either way.
    ///
    /// # Errors
    /// As [`Opened::lazy_db`]; a commit prefix that matches no commit, or several.
    pub async fn view_db(&self, view: &ViewArgs) -> Result<datoms::Db, CliError> {
        let db = self.as_of_db(view).await?;
        match self.since(view, &db).await? {
            None => Ok(db),
            Some(diff) => {
                // The datoms asserted since: a filtered db (a read-only view).
                let added: HashSet<(u64, datoms::Keyword, datoms::Value, u64)> = diff
                    .added
                    .into_iter()
                    .map(|d| (d.e, d.a, d.v, d.tx))
                    .collect();
                Ok(db.filter(move |_, d| added.contains(&(d.e, d.a.clone(), d.v.clone(), d.tx))))
            }
        }
    }

    /// The db of `--as-of`/`--as-of-tx`, or the head's (without `--since`).
    ///
    /// # Errors
    /// As [`Opened::view_db`].
    pub async fn as_of_db(&self, view: &ViewArgs) -> Result<datoms::Db, CliError> {
        let at = match (&view.as_of, view.as_of_tx) {
            (Some(text), _) => match parse_instant(text) {
                Some(ms) => datoms::At::Instant(ms?),
                None => datoms::At::Commit(self.resolve_commit(text).await?),
            },
            (None, Some(tx)) => datoms::At::Tx(tx),
            (None, None) => return self.lazy_db().await,
        };
        match datoms::as_of(self.storage.clone(), &self.head, at, None).await {
            Ok(view) => Ok(view.db),
            Err(StorageError::NoHead { .. }) => Err(CliError::NoDatabase {
                url: self.url.clone(),
                head: self.head.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The history (every assertion and retraction) of the head, or of the commit
    /// `--as-of` names (by address or instant).
    ///
    /// # Errors
    /// [`CliError::Usage`] with `--as-of-tx` or `--since` (a history is of a commit); as
    /// [`Opened::view_db`].
    pub async fn view_history(&self, view: &ViewArgs) -> Result<datoms::History, CliError> {
        if view.as_of_tx.is_some() || view.since.is_some() {
            return Err(CliError::Usage(
                "--history reads the history of a commit: give --as-of COMMIT (or an instant), \
                 not --as-of-tx or --since"
                    .into(),
            ));
        }
        let commit = match &view.as_of {
            Some(text) => match parse_instant(text) {
                Some(ms) => {
                    let at = datoms::At::Instant(ms?);
                    datoms::as_of(self.storage.clone(), &self.head, at, None)
                        .await?
                        .commit
                        .ok_or_else(|| CliError::Usage(format!("no commit at {text}")))?
                }
                None => self.resolve_commit(text).await?,
            },
            None => self.head_commit().await?,
        };
        Ok(datoms::history_of_commit(&*self.storage, commit, None)
            .await?
            .history)
    }

    /// With `--since C`: what changed after commit `C` up to `db` (a diff that skips
    /// the subtrees both share).
    ///
    /// # Errors
    /// As [`Opened::resolve_commit`]; fetch errors.
    pub async fn since(
        &self,
        view: &ViewArgs,
        db: &datoms::Db,
    ) -> Result<Option<datoms::Diff>, CliError> {
        let Some(text) = &view.since else {
            return Ok(None);
        };
        let commit = self.resolve_commit(text).await?;
        let at = datoms::At::Commit(commit);
        Ok(Some(
            datoms::since(self.storage.clone(), &self.head, at, db).await?,
        ))
    }

    /// Finds a commit of the head's history by a hex prefix of its address (the short
    /// form `datoms log` prints) or its full address.
    ///
    /// # Errors
    /// [`CliError::Usage`] if the text is not hex, or no (or more than one) commit of the
    /// history matches it.
    pub async fn resolve_commit(&self, text: &str) -> Result<Address, CliError> {
        let text = text.trim().to_ascii_lowercase();
        if text.len() < 4 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CliError::Usage(format!(
                "{text:?} is not a commit address: expected at least 4 hex digits"
            )));
        }
        if text.len() == 64 {
            return text.parse::<Address>().map_err(CliError::Core);
        }
        let head = self.head_commit().await?;
        let mut matches = Vec::new();
        let mut walk = CommitWalk::new(head);
        while let Some((address, _, _)) = walk.next(self).await? {
            if address.to_hex().starts_with(&text) {
                matches.push(address);
            }
        }
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(CliError::Usage(format!(
                "no commit of head {:?} in {} starts with {text}",
                self.head, self.url
            ))),
            _ => Err(CliError::Usage(format!(
                "{} commits start with {text}: give more digits",
                matches.len()
            ))),
        }
    }
}

/// Walks a commit chain from the newest back through parents, fetching commits in
/// batches: each commit lists its parent and up to 8 more ancestors, so one request
/// brings the next 9 commits instead of one. The walk ends where the history was
/// garbage-collected (an older commit that is no longer stored); the first commit must
/// be there.
pub struct CommitWalk {
    queue: std::collections::VecDeque<(Address, Commit, u64)>,
    batch: Vec<Address>,
    /// Whether the first commit has been fetched.
    started: bool,
}

impl CommitWalk {
    /// A walk starting at `head` (included).
    pub fn new(head: Address) -> CommitWalk {
        CommitWalk {
            queue: Default::default(),
            batch: vec![head],
            started: false,
        }
    }

    /// The next older commit, its address and its size in bytes.
    ///
    /// # Errors
    /// A missing or corrupt commit, or one whose ancestor list contradicts the parents.
    pub async fn next(
        &mut self,
        opened: &Opened,
    ) -> Result<Option<(Address, Commit, u64)>, CliError> {
        if self.queue.is_empty() && !self.batch.is_empty() {
            let mut batch = std::mem::take(&mut self.batch);
            let fetched = if self.started {
                // Up to the first commit GC collected: the history ends there.
                let blobs = get_batched(&**opened.storage(), &batch).await?;
                let kept = blobs.iter().take_while(|b| b.is_some()).count();
                batch.truncate(kept);
                let mut fetched = Vec::with_capacity(kept);
                for (a, b) in batch.iter().zip(blobs.into_iter().flatten()) {
                    fetched.push((Commit::decode(*a, &b)?, b.len() as u64));
                }
                if kept == 0 {
                    return Ok(None);
                }
                fetched
            } else {
                self.started = true;
                opened.commits(&batch).await?
            };
            for (i, (address, (commit, size))) in batch.iter().zip(fetched).enumerate() {
                let child_parent = match (i, self.queue.back()) {
                    (0, _) | (_, None) => Some(*address),
                    (_, Some((_, child, _))) => child.parent,
                };
                if child_parent != Some(*address) {
                    return Err(CliError::Core(datoms::Error::Malformed {
                        address: *address,
                        reason: "a commit lists it as an ancestor, but it is not the parent of the commit before it".into(),
                    }));
                }
                self.queue.push_back((*address, commit, size));
            }
            if let Some((_, last, _)) = self.queue.back() {
                self.batch = last
                    .parent
                    .into_iter()
                    .chain(last.ancestors.iter().copied())
                    .collect();
            }
        }
        Ok(self.queue.pop_front())
    }
}

/// Restores `commit` fully (every node in memory), one batched request per tree level,
/// with a progress bar counting nodes. This is the loop of `datoms::restore_commit`,
/// driven here so the bar can follow each batch.
///
/// # Errors
/// Missing or corrupt blobs, backend errors.
pub async fn full_restore(
    storage: &dyn Storage,
    commit: Address,
    bar: &ProgressBar,
) -> Result<Restored, CliError> {
    let mut machine = Restore::with_mode(commit, None, Mode::Eager);
    loop {
        match machine.poll()? {
            Step::Need(addresses) => {
                bar.inc_length(addresses.len() as u64);
                let blobs = get_batched(storage, &addresses).await?;
                for (a, b) in addresses.iter().zip(blobs) {
                    machine.accept(*a, b.as_deref())?;
                    bar.inc(1);
                }
            }
            Step::Done(db) => {
                return Ok(Restored {
                    db,
                    stats: machine.stats(),
                })
            }
        }
    }
}
