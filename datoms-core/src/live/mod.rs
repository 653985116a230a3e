//! Live queries: subscribe to a query (or a pull) and get its result's diff after every
//! change — a transaction, a `reset`, a peer's rebase, a followed commit.
//!
//! A [`LiveSet`] holds live queries over one changing db; whoever changes the db calls
//! [`LiveSet::apply`] with the db before, the db after and the datoms that changed
//! ([`crate::Conn`] does it for its transactions and resets). Each [`Watch`] receives
//! [`LiveUpdate`]s: the first is the full result, every later one the rows added and
//! removed and the [`Basis`] (tx, commit) the result is now exact for. An update comes
//! only when the result changed. Dropping the handle ends the live query.
//!
//! ```
//! use datoms_core::live::LiveInput;
//! use datoms_core::{Conn, Db, QueryValue, Schema};
//!
//! let conn = Conn::new(Db::new(Schema::new()));
//! let watch = conn.watch("[:find ?n :where [?e :name ?n] [?e :age ?a] [(>= ?a 18)]]", vec![LiveInput::Db])?;
//! assert!(watch.try_next().unwrap()?.added.is_empty()); // the initial, empty result
//! conn.transact_edn(r#"[{:name "Ann" :age 31} {:name "Bob" :age 12}]"#)?;
//! let update = watch.try_next().unwrap()?;
//! assert_eq!(update.added, vec![vec![QueryValue::string("Ann")]]);
//! # Ok::<(), datoms_core::Error>(())
//! ```
//!
//! # How a change is applied
//! 1. **Interest index.** Every live query registers what its data patterns can match:
//!    the attribute, and the entity or value when the pattern (or a scalar input) makes
//!    it constant. A changed datom is looked up by attribute, then entity and value; a
//!    change touching attributes no live query reads costs nothing per query.
//! 2. **Delta rules** for conjunctive queries: data patterns on `$` (`[e a v]`, any of
//!    them variables, `_` or constants — ids, strings, numbers and other literals),
//!    predicates and function calls reading no source (built-ins and input functions),
//!    `:in` scalars, tuples, collections and relations, `:with`, `:keys`/`:strs`/`:syms`
//!    and every find shape. For each pattern the changed datoms it matches are joined
//!    with the other patterns, those before it on the db after the change and those
//!    after it on the db before (`Q(db + Δ) − Q(db)` expanded), by index lookups; the
//!    predicates and functions then run on those bindings only. Each result key holds
//!    its number of derivations, so a row derived two ways leaves only when both are
//!    gone. Aggregates recompute only the groups whose members changed.
//! 3. **Re-evaluation** of that one query, on the attributes it names, for every other
//!    shape: rules, `not`, `not-join`, `or`, `or-join`, pulls in `:find`, patterns with a
//!    tx or added position, other sources, lookup refs, idents or symbols as constants,
//!    functions reading a source (`get-else`, `missing?`…) and non-deterministic ones
//!    (`rand`, `sample`). A pull in `:find`, or a function reading a source with an
//!    attribute it computes, makes every change touch the query.
//!
//! A live pull ([`LiveSet::watch_pull`]) re-pulls when a change touches an attribute
//! its pattern names (any change for a wildcard `*`) and sends the new tree only when it
//! differs.
//!
//! Updates are exact: after every change the live result equals running the query
//! afresh on the new db (a property test in the bench crate checks it against random
//! transaction streams, rebases and followed commits).

mod analyze;
mod delta;
mod index;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use self::index::InterestIndex;
use self::state::{QueryState, Work};
use crate::address::Address;
use crate::datom::{Datom, Tx};
use crate::db::Db;
use crate::edn;
use crate::error::Error;
use crate::pull::{pull_entity, PullPattern, PullValue};
use crate::query::{Functions, Input, QueryFn, QueryResult, QueryValue};
use crate::value::{Eid, Keyword, Value};

/// One input of a live query, matched in order with its `:in` (as
/// [`crate::query::Input`], but owned: a live query outlives the call).
#[derive(Clone, Debug)]
pub enum LiveInput {
    /// The watched db, for a source (`$`).
    Db,
    /// A value for a binding form.
    Scalar(QueryValue),
    /// A collection, for `[?a ...]`.
    Collection(Vec<QueryValue>),
    /// Tuples, for `[[?a ?b]]`.
    Relation(Vec<Vec<QueryValue>>),
    /// Rules as EDN text, for `%`.
    Rules(String),
    /// Any input as EDN text.
    Edn(String),
    /// A function.
    Fn(QueryFn),
}

impl LiveInput {
    /// The query input, with `db` for [`LiveInput::Db`].
    pub fn as_input<'a>(&'a self, db: &'a Db) -> Input<'a> {
        match self {
            LiveInput::Db => Input::Db(db),
            LiveInput::Scalar(v) => Input::Scalar(v.clone()),
            LiveInput::Collection(v) => Input::Collection(v.clone()),
            LiveInput::Relation(v) => Input::Relation(v.clone()),
            LiveInput::Rules(r) => Input::Rules(r),
            LiveInput::Edn(t) => Input::Edn(t),
            LiveInput::Fn(f) => Input::Fn(f.clone()),
        }
    }
}

/// What a live result is exact for: the db's last transaction and the commit it is
/// based on (with local transactions on top when `tx` is past that commit's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Basis {
    /// The db's [`Db::max_tx`].
    pub tx: Tx,
    /// The db's [`Db::base_commit`] (`None` for a db never stored or restored).
    pub commit: Option<Address>,
}

impl Basis {
    /// The basis of `db`.
    pub fn of(db: &Db) -> Basis {
        Basis {
            tx: db.max_tx(),
            commit: db.base_commit(),
        }
    }
}

/// One update of a live query.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveUpdate {
    /// What the result is now exact for.
    pub basis: Basis,
    /// True when `added` is the whole result (the first update, or the first after an
    /// error): it replaces whatever came before.
    pub full: bool,
    /// Rows now in the result, in the format of [`QueryResult::rows`].
    pub added: Vec<Vec<QueryValue>>,
    /// Rows no longer in the result.
    pub removed: Vec<Vec<QueryValue>>,
}

/// One update of a live pull: the tree, when it changed.
#[derive(Clone, Debug, PartialEq)]
pub struct PullUpdate {
    /// What the tree is exact for.
    pub basis: Basis,
    /// The pulled tree (`nil` for an entity with none of the pattern's attributes).
    pub value: PullValue,
}

/// What one change cost, for tuning and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Datoms the change added or retracted (net).
    pub datoms: usize,
    /// Live queries and pulls the interest index found the change may touch.
    pub touched: usize,
    /// Of those, queries updated by delta rules.
    pub incremental: usize,
    /// Of those, queries and pulls evaluated again.
    pub reevaluated: usize,
    /// Updates sent (results that changed).
    pub updates: usize,
}

struct QueryEntry {
    state: QueryState,
    send: Sender<Result<LiveUpdate, Error>>,
}

struct PullEntry {
    pattern: String,
    entity: QueryValue,
    last: PullValue,
    functions: Functions,
    send: Sender<Result<PullUpdate, Error>>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    queries: HashMap<u64, QueryEntry>,
    pulls: HashMap<u64, PullEntry>,
    index: InterestIndex,
}

/// Live queries over one changing db (see the module docs). Cheap to clone: clones
/// share the queries.
#[derive(Clone, Default)]
pub struct LiveSet {
    inner: Arc<Mutex<Registry>>,
}

impl fmt::Debug for LiveSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = lock(&self.inner);
        f.debug_struct("LiveSet")
            .field("queries", &r.queries.len())
            .field("pulls", &r.pulls.len())
            .finish()
    }
}

/// A panic in one caller leaves the registry consistent (every update replaces whole
/// values), so poisoning is ignored.
fn lock(m: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The net change of tx data: per (e, a, v), present before vs after (a datom both
/// retracted and asserted again in one transaction did not change).
pub fn net_change(datoms: &[Datom]) -> (Vec<Datom>, Vec<Datom>) {
    let mut seen: BTreeMap<(Eid, &Keyword, &Value), (bool, usize)> = BTreeMap::new();
    for (i, d) in datoms.iter().enumerate() {
        seen.entry((d.e, &d.a, &d.v))
            .and_modify(|(_, last)| *last = i)
            .or_insert((!d.added, i));
    }
    let (mut added, mut retracted) = (Vec::new(), Vec::new());
    let mut items: Vec<(bool, usize)> = seen.into_values().collect();
    items.sort_by_key(|(_, i)| *i);
    for (before, last) in items {
        let d = &datoms[last];
        if before != d.added {
            if d.added {
                added.push(d.clone());
            } else {
                retracted.push(d.clone());
            }
        }
    }
    (added, retracted)
}

impl LiveSet {
    /// An empty set.
    pub fn new() -> LiveSet {
        LiveSet::default()
    }

    /// The number of live queries and pulls.
    pub fn len(&self) -> usize {
        let r = lock(&self.inner);
        r.queries.len() + r.pulls.len()
    }

    /// True when nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a live query on `db`, the current db (the caller makes sure no change is
    /// applied between reading it and this call). The first update, already queued, is
    /// the full result.
    ///
    /// # Errors
    /// As [`crate::query::q`] for the query and its inputs on `db`.
    pub fn watch(&self, db: &Db, query: &str, inputs: Vec<LiveInput>) -> Result<Watch, Error> {
        let state = QueryState::new(db, query, inputs)?;
        let (send, recv) = channel();
        let first = LiveUpdate {
            basis: Basis::of(db),
            full: true,
            added: state.result().rows(),
            removed: Vec::new(),
        };
        let _ = send.send(Ok(first));
        let interests = state.interests(db)?;
        let mut r = lock(&self.inner);
        r.next += 1;
        let id = r.next;
        r.index.register(id, interests);
        let incremental = state.reeval_reason().is_none();
        r.queries.insert(id, QueryEntry { state, send });
        Ok(Watch {
            id,
            set: Arc::downgrade(&self.inner),
            recv,
            incremental,
        })
    }

    /// Starts a live pull of `entity` (an id, a lookup ref or an ident) with `pattern`
    /// on `db`. The first update, already queued, is the current tree.
    ///
    /// # Errors
    /// [`Error::EdnSyntax`] or [`Error::PullPattern`] for a bad pattern; as
    /// [`pull_entity`].
    pub fn watch_pull(
        &self,
        db: &Db,
        pattern: &str,
        entity: QueryValue,
    ) -> Result<PullWatch, Error> {
        let functions = Functions::new();
        let parsed = PullPattern::parse(db, pattern, &functions)?;
        let last = pull_entity(db, &parsed, &entity, &functions)?;
        let attrs = analyze::pull_attrs(&edn::parse(pattern)?, &entity);
        let (send, recv) = channel();
        let _ = send.send(Ok(PullUpdate {
            basis: Basis::of(db),
            value: last.clone(),
        }));
        let mut r = lock(&self.inner);
        r.next += 1;
        let id = r.next;
        r.index.add_attrs(id, attrs.as_ref());
        r.pulls.insert(
            id,
            PullEntry {
                pattern: pattern.to_owned(),
                entity,
                last,
                functions,
                send,
            },
        );
        Ok(PullWatch {
            id,
            set: Arc::downgrade(&self.inner),
            recv,
        })
    }

    /// Applies a change from `before` to `after`, whose datoms are `datoms` (tx data:
    /// assertions and retractions, in order; a `diff` works as well): every live query
    /// it touches is updated and its watcher gets the diff when the result changed.
    pub fn apply(&self, before: &Db, after: &Db, datoms: &[Datom]) -> LiveStats {
        let (added, retracted) = net_change(datoms);
        let mut stats = LiveStats {
            datoms: added.len() + retracted.len(),
            ..LiveStats::default()
        };
        let mut r = lock(&self.inner);
        if r.queries.is_empty() && r.pulls.is_empty() {
            return stats;
        }
        let mut touched: HashSet<u64> = HashSet::new();
        for d in added.iter().chain(&retracted) {
            r.index.touched(d, &mut |(id, _)| {
                touched.insert(id);
            });
        }
        stats.touched = touched.len();
        let basis = Basis::of(after);
        let registry = &mut *r;
        for id in touched {
            if let Some(entry) = registry.queries.get_mut(&id) {
                let mut work = Work::default();
                let full = entry.state.stale;
                let touch = entry.state.route(&added, &retracted);
                let result = entry.state.update(before, after, &touch, &mut work);
                // What the query's narrowed patterns are indexed by may have changed.
                let interests = entry.state.interests(after);
                registry.index.remove(id);
                match interests {
                    Ok(i) => registry.index.register(id, i),
                    Err(_) => registry.index.add_attrs(id, None),
                }
                match result {
                    Ok(diff) => {
                        if !diff.is_empty() || full {
                            stats.updates += 1;
                            let _ = entry.send.send(Ok(LiveUpdate {
                                basis,
                                full,
                                added: diff.added,
                                removed: diff.removed,
                            }));
                        }
                    }
                    Err(e) => {
                        entry.state.stale = true;
                        let _ = entry.send.send(Err(e));
                    }
                }
                stats.incremental += usize::from(work.incremental && !work.reevaluated);
                stats.reevaluated += usize::from(work.reevaluated);
            } else if let Some(entry) = registry.pulls.get_mut(&id) {
                stats.reevaluated += 1;
                let pulled = PullPattern::parse(after, &entry.pattern, &entry.functions)
                    .and_then(|p| pull_entity(after, &p, &entry.entity, &entry.functions));
                match pulled {
                    Ok(value) if value != entry.last => {
                        stats.updates += 1;
                        entry.last = value.clone();
                        let _ = entry.send.send(Ok(PullUpdate { basis, value }));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = entry.send.send(Err(e));
                    }
                }
            }
        }
        stats
    }

    fn remove(set: &Weak<Mutex<Registry>>, id: u64) {
        if let Some(inner) = set.upgrade() {
            let mut r = lock(&inner);
            r.queries.remove(&id);
            r.pulls.remove(&id);
            r.index.remove(id);
        }
    }
}

/// A live query's handle: receives its [`LiveUpdate`]s (or the error that stopped an
/// update; the next change then re-evaluates it and sends the full result). Dropping it
/// ends the live query.
pub struct Watch {
    id: u64,
    set: Weak<Mutex<Registry>>,
    recv: Receiver<Result<LiveUpdate, Error>>,
    incremental: bool,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("id", &self.id)
            .field("incremental", &self.incremental)
            .finish()
    }
}

impl Watch {
    /// The next update if one is queued.
    pub fn try_next(&self) -> Option<Result<LiveUpdate, Error>> {
        self.recv.try_recv().ok()
    }

    /// The next update, waiting up to `timeout`; `None` if none came (or the set that
    /// feeds it is gone).
    pub fn next_timeout(&self, timeout: Duration) -> Option<Result<LiveUpdate, Error>> {
        self.recv.recv_timeout(timeout).ok()
    }

    /// Every queued update.
    pub fn drain(&self) -> Vec<Result<LiveUpdate, Error>> {
        self.recv.try_iter().collect()
    }

    /// True when the query is kept by delta rules, false when each change that touches
    /// it evaluates it again (see the module docs for the shapes).
    pub fn is_incremental(&self) -> bool {
        self.incremental
    }

    /// The live result as of the last applied change, shaped as [`crate::query::q`]
    /// shapes it; `None` once the set that feeds it is gone.
    pub fn result(&self) -> Option<QueryResult> {
        let inner = self.set.upgrade()?;
        let r = lock(&inner);
        r.queries.get(&self.id).map(|e| e.state.result())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        LiveSet::remove(&self.set, self.id);
    }
}

/// A live pull's handle (see [`LiveSet::watch_pull`]); dropping it ends the live pull.
pub struct PullWatch {
    id: u64,
    set: Weak<Mutex<Registry>>,
    recv: Receiver<Result<PullUpdate, Error>>,
}

impl fmt::Debug for PullWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullWatch").field("id", &self.id).finish()
    }
}

impl PullWatch {
    /// The next update if one is queued.
    pub fn try_next(&self) -> Option<Result<PullUpdate, Error>> {
        self.recv.try_recv().ok()
    }

    /// The next update, waiting up to `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Result<PullUpdate, Error>> {
        self.recv.recv_timeout(timeout).ok()
    }

    /// Every queued update.
    pub fn drain(&self) -> Vec<Result<PullUpdate, Error>> {
        self.recv.try_iter().collect()
    }
}

impl Drop for PullWatch {
    fn drop(&mut self) {
        LiveSet::remove(&self.set, self.id);
    }
}

#[cfg(test)]
mod tests;
