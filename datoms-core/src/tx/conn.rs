//! A connection: a mutable reference to the current database value, as Datascript's
//! `conn`, with listeners.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use super::data::TxOp;
use super::function::TxFunctions;
use super::TxReport;
use crate::db::Db;
use crate::error::Error;
use crate::live::{LiveInput, LiveSet, PullWatch, Watch};
use crate::query::QueryValue;

/// A function called with the report of every successful transaction.
pub type Listener = Arc<dyn Fn(&TxReport) + Send + Sync>;

/// Holds the current [`Db`] and serialises transactions on it.
///
/// Transactions run one at a time under a lock: each sees the result of the previous
/// one, so concurrent `transact` calls never lose a transaction. Reads
/// ([`Conn::db`]) never wait for a running transaction longer than it takes to clone
/// the current value.
///
/// ```
/// use datoms_core::tx::{Conn, TxBuilder};
/// use datoms_core::{Db, Schema};
///
/// let conn = Conn::new(Db::new(Schema::new()));
/// let report = conn
///     .transact(&TxBuilder::new().add("a", ":person/name", "Ann").build())
///     .unwrap();
/// assert_eq!(conn.db().max_eid(), report.tempids["a"]);
/// ```
pub struct Conn {
    /// Serialises transactions (and `reset`), held while listeners run.
    writer: Mutex<()>,
    /// The current db; written only with `writer` held.
    current: RwLock<Db>,
    listeners: RwLock<BTreeMap<String, Listener>>,
    /// The transaction functions `[:db.fn/call name …]` runs.
    tx_fns: RwLock<TxFunctions>,
    /// Live queries, made on the first [`Conn::watch`].
    live: OnceLock<LiveSet>,
}

/// Locks ignore poisoning: every lock here guards a value that is only ever replaced
/// whole, so a panic elsewhere (in a listener, say) cannot leave it half-updated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Conn {
    /// A connection whose current db is `db`.
    pub fn new(db: Db) -> Conn {
        Conn {
            writer: Mutex::new(()),
            current: RwLock::new(db),
            listeners: RwLock::new(BTreeMap::new()),
            tx_fns: RwLock::new(TxFunctions::new()),
            live: OnceLock::new(),
        }
    }

    /// Registers the transaction function `name` (replacing one of that name), run by
    /// `[:db.fn/call name args…]` ([`TxOp::Call`]) in this connection's transactions. It
    /// must be deterministic: see [`super::function`].
    pub fn register_tx_fn(
        &self,
        name: &str,
        f: impl Fn(&Db, &[super::TxValue]) -> Result<Vec<TxOp>, String> + Send + Sync + 'static,
    ) {
        self.tx_fns
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name, f);
    }

    /// The transaction functions registered on this connection.
    pub fn tx_fns(&self) -> TxFunctions {
        self.tx_fns
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The current database value.
    pub fn db(&self) -> Db {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `ops` against the current db ([`Db::with`]), makes the result current and
    /// calls every listener with the report, in key order, before returning it.
    ///
    /// Listeners run while this connection's transaction lock is held, so they see
    /// reports in transaction order; a listener must not transact on (or reset) the same
    /// connection, which would deadlock.
    ///
    /// # Errors
    /// Whatever [`Db::with`] returns; the current db is then unchanged and no listener is
    /// called.
    pub fn transact(&self, ops: &[TxOp]) -> Result<TxReport, Error> {
        let writer = lock(&self.writer);
        self.transact_locked(&writer, ops)
    }

    /// Parses EDN tx data against the current schema and transacts it, as
    /// [`Conn::transact`].
    ///
    /// # Errors
    /// [`crate::Error::EdnSyntax`] and [`crate::Error::MalformedTx`] for bad text, else
    /// as [`Conn::transact`].
    pub fn transact_edn(&self, text: &str) -> Result<TxReport, Error> {
        let writer = lock(&self.writer);
        // Parsed under the lock, so a concurrent `reset` cannot swap the schema between
        // parsing and transacting.
        let ops = super::parse_tx(text, self.db().schema())?;
        self.transact_locked(&writer, &ops)
    }

    /// The body of [`Conn::transact`]; `_writer` proves the transaction lock is held.
    fn transact_locked(
        &self,
        _writer: &MutexGuard<'_, ()>,
        ops: &[TxOp],
    ) -> Result<TxReport, Error> {
        let report = self.db().with_fns(ops, &self.tx_fns())?;
        self.publish(&report);
        Ok(report)
    }

    /// Replaces the current db (waiting for a running transaction to finish) and calls
    /// the listeners, as Datascript's `reset-conn!`: the report's `tx_data` is the
    /// difference between the two dbs — the datoms only the old one holds (with `added`
    /// false), then those only the new one holds, each in EAVT order (see
    /// [`crate::diff()`]); `tempids` is empty and `tx` is the new db's `max_tx`.
    ///
    /// # Errors
    /// Only when the difference needs a node of a lazily restored db that cannot be
    /// loaded; the conn is then unchanged and no listener is called.
    pub fn reset(&self, db: Db) -> Result<TxReport, Error> {
        let _writer = lock(&self.writer);
        let db_before = self.db();
        let diff = crate::diff::diff(&db_before, &db)?;
        let mut tx_data = diff.retracted;
        tx_data.extend(diff.added);
        let report = TxReport {
            db_before,
            tx: db.max_tx(),
            db_after: db,
            tx_data,
            tempids: BTreeMap::new(),
        };
        self.publish(&report);
        Ok(report)
    }

    /// Runs `f` on the current db under the transaction lock and, when it succeeds, makes
    /// the report's `db_after` current and calls the listeners, as [`Conn::transact`]
    /// does. For a writer that must do more in the same critical section than
    /// [`Db::with`]: a peer runs the transaction with its id and appends it to its durable
    /// outbox before the db changes, so the order of the outbox is the order of the
    /// transactions.
    ///
    /// # Errors
    /// Whatever `f` returns; the current db is then unchanged and no listener is called.
    pub fn transact_with<T, E>(
        &self,
        f: impl FnOnce(&Db) -> Result<(TxReport, T), E>,
    ) -> Result<(TxReport, T), E> {
        let _writer = lock(&self.writer);
        let (report, out) = f(&self.db())?;
        self.publish(&report);
        Ok((report, out))
    }

    /// Computes a new db from the current one under the transaction lock and makes it
    /// current, as [`Conn::reset`] (the report's `tx_data` is the difference). The
    /// listeners are called only when some datom changed: a peer that stored its
    /// transactions replaces its db by the committed one, which holds the same datoms.
    ///
    /// # Errors
    /// Whatever `f` returns, or (as `E::from`) a load error of the difference; the conn
    /// is then unchanged and no listener is called.
    pub fn reset_with<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&Db) -> Result<(Db, T), E>,
    ) -> Result<(TxReport, T), E> {
        let _writer = lock(&self.writer);
        let db_before = self.db();
        let (db, out) = f(&db_before)?;
        let diff = crate::diff::diff(&db_before, &db)?;
        let mut tx_data = diff.retracted;
        tx_data.extend(diff.added);
        let report = TxReport {
            db_before,
            tx: db.max_tx(),
            db_after: db,
            tx_data,
            tempids: BTreeMap::new(),
        };
        if report.tx_data.is_empty() {
            self.set(&report.db_after);
        } else {
            self.publish(&report);
        }
        Ok((report, out))
    }

    /// Makes `db` the current db. The caller holds the writer lock.
    fn set(&self, db: &Db) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = db.clone();
    }

    /// Makes `report.db_after` the current db and calls every listener with the report.
    /// The caller holds the writer lock.
    fn publish(&self, report: &TxReport) {
        self.set(&report.db_after);
        if let Some(live) = self.live.get() {
            live.apply(&report.db_before, &report.db_after, &report.tx_data);
        }
        let listeners: Vec<Listener> = self
            .listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for listener in listeners {
            listener(report);
        }
    }

    /// Starts a live query (see [`crate::live`]): the returned [`Watch`] gets the full
    /// result at once, then the result's diff after every transaction or reset that
    /// changes it. Dropping the watch ends it.
    ///
    /// # Errors
    /// As [`crate::query::q`] for the query and its inputs on the current db.
    pub fn watch(&self, query: &str, inputs: Vec<LiveInput>) -> Result<Watch, Error> {
        // Under the transaction lock: no transaction lands between the first result
        // and the registration.
        let _writer = lock(&self.writer);
        self.live().watch(&self.db(), query, inputs)
    }

    /// Starts a live pull of `entity` (see [`LiveSet::watch_pull`]): the tree now, then
    /// the new tree after every change that changes it.
    ///
    /// # Errors
    /// As [`LiveSet::watch_pull`].
    pub fn watch_pull(&self, pattern: &str, entity: QueryValue) -> Result<PullWatch, Error> {
        let _writer = lock(&self.writer);
        self.live().watch_pull(&self.db(), pattern, entity)
    }

    /// This connection's live queries.
    pub fn live(&self) -> &LiveSet {
        self.live.get_or_init(LiveSet::new)
    }

    /// Registers `f` under `key` (replacing any listener with that key), to be called
    /// after every successful transaction.
    pub fn listen(&self, key: impl Into<String>, f: impl Fn(&TxReport) + Send + Sync + 'static) {
        self.listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.into(), Arc::new(f));
    }

    /// Removes the listener registered under `key`; returns whether there was one.
    pub fn unlisten(&self, key: &str) -> bool {
        self.listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key)
            .is_some()
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listeners: Vec<String> = self
            .listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_struct("Conn")
            .field("db", &self.db())
            .field("listeners", &listeners)
            .finish()
    }
}
