//! The transaction algorithm: Datascript's `transact-tx-data`, step for step, so that
//! new entities get exactly the ids Datascript gives them.
//!
//! Operations run one after another against the db as it stands *so far in the
//! transaction* (the base db plus an overlay of the datoms produced until then), exactly
//! as Datascript runs them against its `db-after`: a lookup ref or an upsert can find an
//! entity asserted by an earlier operation of the same transaction.
//!
//! An entity map is exploded into `:db/add`s about its id *as written* (a tempid stays a
//! tempid, a map without `:db/id` gets an internal tempid, Datascript's auto-tempid);
//! a nested map becomes a map of its own carrying the link to its parent (under the
//! reverse attribute, which replaces a value the nested map gives that attribute). All
//! of it runs before the next operation. Ids are allocated lazily, when an `:db/add`
//! runs: first a tempid in its value position, then its entity. The next fresh id is
//! one above the highest entity id allocated or asserted so far.
//!
//! A tempid that already has an id and turns out to upsert into another entity restarts
//! the transaction from the start with that tempid pinned to the entity, keeping every id
//! given so far (Datascript's `retry-with-tempid`); a pinned tempid that upserts elsewhere
//! is an [`Error::UpsertConflict`]. Every restart pins one more tempid, so this
//! terminates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::data::{
    is_current_tx_keyword, is_current_tx_text, EntityRef, TxOp, TxValue, CURRENT_TX, DB_ID,
};
use super::function::TxFunctions;
use super::TxReport;
use crate::commit::{TxId, TxLogEntry};
use crate::datom::{Component, Datom, IndexKind, Tx, TX0};
use crate::db::{lookup_ref_attr, lookup_ref_value, Db};
use crate::error::Error;
use crate::schema::{AttributeSchema, Schema, Unique, IDENT};
use crate::value::{Eid, Keyword, Value, ValueType};

/// A tempid: one the user wrote, or the one a transaction gives an entity map without
/// `:db/id` (Datascript's auto-tempid; never reported).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Temp {
    Named(String),
    Auto(u64),
}

impl fmt::Display for Temp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Temp::Named(t) if t.parse::<i64>().is_ok() => f.write_str(t),
            Temp::Named(t) => write!(f, "{t:?}"),
            Temp::Auto(_) => f.write_str("<entity map without :db/id>"),
        }
    }
}

/// An entity position inside a run: as written, or a map's auto-tempid.
#[derive(Clone, Debug)]
enum Ent {
    Ref(EntityRef),
    Auto(u64),
}

impl Ent {
    /// The tempid this position names, if it names one.
    fn temp(&self) -> Option<Temp> {
        match self {
            Ent::Ref(EntityRef::Tempid(t)) if !is_current_tx_text(t) => {
                Some(Temp::Named(t.clone()))
            }
            Ent::Auto(n) => Some(Temp::Auto(*n)),
            Ent::Ref(_) => None,
        }
    }

    /// This entity as a ref value.
    fn as_value(&self) -> Val {
        match self {
            Ent::Ref(r) => Val::Tx(TxValue::from(r.clone())),
            Ent::Auto(n) => Val::Auto(*n),
        }
    }
}

impl fmt::Display for Ent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ent::Ref(r) => write!(f, "{r}"),
            Ent::Auto(n) => write!(f, "{}", Temp::Auto(*n)),
        }
    }
}

/// A value inside a run: as written, or a map's auto-tempid (the link between a nested
/// map and its parent).
#[derive(Clone, Debug)]
enum Val {
    Tx(TxValue),
    Auto(u64),
}

impl Val {
    /// The items of a value that may hold several.
    fn items(&self) -> Vec<Val> {
        match self {
            Val::Tx(TxValue::Many(vs)) => vs.iter().cloned().map(Val::Tx).collect(),
            other => vec![other.clone()],
        }
    }

    /// The value as an entity position (reverse attributes).
    fn as_ent(&self) -> Option<Ent> {
        match self {
            Val::Tx(v) => v.as_entity_ref().map(Ent::Ref),
            Val::Auto(n) => Some(Ent::Auto(*n)),
        }
    }

    /// The tempid this value names under a ref attribute, if it names one.
    fn temp(&self) -> Option<Temp> {
        match self {
            Val::Auto(n) => Some(Temp::Auto(*n)),
            Val::Tx(TxValue::Tempid(t)) => Some(Temp::Named(t.clone())),
            Val::Tx(TxValue::Value(Value::String(s))) => Some(Temp::Named(s.to_string())),
            Val::Tx(TxValue::Value(Value::Long(n))) if *n < 0 => Some(Temp::Named(n.to_string())),
            Val::Tx(_) => None,
        }
        .filter(|t| !matches!(t, Temp::Named(text) if is_current_tx_text(text)))
    }

    /// The text of `"datomic.tx"` and friends when this value names the transaction.
    fn tx_text(&self) -> Option<&str> {
        match self {
            Val::Tx(TxValue::Tempid(t)) if is_current_tx_text(t) => Some(t),
            Val::Tx(TxValue::Value(Value::String(s))) if is_current_tx_text(s) => Some(s),
            _ => None,
        }
    }

    /// True when this value names the transaction under a ref attribute.
    fn is_tx(&self) -> bool {
        self.tx_text().is_some()
            || matches!(self, Val::Tx(TxValue::CurrentTx))
            || matches!(self, Val::Tx(TxValue::Value(Value::Keyword(k))) if is_current_tx_keyword(k))
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Tx(v) => write!(f, "{v}"),
            Val::Auto(n) => write!(f, "{}", Temp::Auto(*n)),
        }
    }
}

/// Why a run stopped early.
enum Abort {
    /// The transaction fails.
    Fail(Error),
    /// `tempid` has an id but upserts into `eid`: run again with it pinned, keeping the
    /// ids given so far (`tempids`).
    Restart {
        tempid: Temp,
        eid: Eid,
        tempids: BTreeMap<Temp, Eid>,
    },
}

impl From<Error> for Abort {
    fn from(e: Error) -> Abort {
        Abort::Fail(e)
    }
}

type Step<T> = Result<T, Abort>;

/// How deeply transaction functions may call functions.
const MAX_CALL_DEPTH: usize = 64;

/// Runs `ops` against `db`: the whole of [`Db::with`]; `id` goes into the log entry
/// ([`Db::with_id`]).
pub(super) fn transact(
    db: &Db,
    ops: &[TxOp],
    id: Option<TxId>,
    fns: &TxFunctions,
) -> Result<TxReport, Error> {
    let tx = db
        .max_tx()
        .checked_add(1)
        .ok_or_else(|| Error::InvalidValue {
            reason: "transaction ids exhausted".into(),
        })?;
    let mut pinned: BTreeMap<Temp, Eid> = BTreeMap::new();
    let mut carried: BTreeMap<Temp, Eid> = BTreeMap::new();
    loop {
        let mut run = Run::new(db, tx, carried, &pinned);
        run.fns = Some(fns);
        match run.run(ops) {
            Ok(()) => return run.finish(id),
            Err(Abort::Fail(e)) => return Err(e),
            Err(Abort::Restart {
                tempid,
                eid,
                mut tempids,
            }) => {
                if let Some(&first) = pinned.get(&tempid) {
                    return Err(Error::UpsertConflict {
                        tempid: tempid.to_string(),
                        first,
                        second: eid,
                    });
                }
                tempids.insert(tempid.clone(), eid);
                pinned.insert(tempid, eid);
                carried = tempids;
            }
        }
    }
}

/// Work produced by exploding an entity map or by a cascading retraction; it runs before
/// the next operation of the transaction.
enum Work {
    /// An entity map (a nested one carries the link to its parent among its attributes).
    Map { id: Ent, attrs: Vec<(Keyword, Val)> },
    /// One assertion; `desc` names the entity as the user wrote it, for errors.
    Add {
        e: Ent,
        attr: Keyword,
        v: Val,
        desc: String,
    },
    /// Retract a component entity.
    RetractEntity(Eid),
}

/// An upsert found through a `:db.unique/identity` attribute.
struct Upsert {
    e: Eid,
    attr: Keyword,
    value: Value,
}

/// One run through the operations.
struct Run<'a> {
    db: &'a Db,
    schema: &'a Schema,
    tx: Tx,
    /// Tempid → entity id (those carried over from an earlier run included).
    tempids: BTreeMap<Temp, Eid>,
    /// The tempids pinned by upserts found in earlier runs.
    pinned: &'a BTreeMap<Temp, Eid>,
    /// Entity id → the tempids given it in this run.
    reverse_tempids: BTreeMap<Eid, Vec<Temp>>,
    /// Entity id → a tempid that named it in a value position: each must be the entity
    /// of some assertion of the transaction.
    value_tempids: BTreeMap<Eid, Temp>,
    /// Entities of assertions that changed nothing (already present, or an upsert).
    redundant: BTreeSet<Eid>,
    /// `"datomic.tx"` / `"datascript.tx"` where the transaction used them.
    tx_aliases: BTreeSet<String>,
    /// The last auto-tempid given.
    last_auto: u64,
    /// The next fresh entity id.
    next_eid: Eid,
    /// The presence of every (e, a, v) touched so far (`false`: retracted).
    eav: BTreeMap<(Eid, Keyword, Value), bool>,
    /// The same, keyed for lookups by attribute and value.
    ave: BTreeMap<(Keyword, Value, Eid), bool>,
    /// The datoms produced, in order.
    datoms: Vec<Datom>,
    /// Pending work, the next item last.
    stack: Vec<Work>,
    /// The named transaction functions (`:db.fn/call`), and how deeply calls nest.
    fns: Option<&'a TxFunctions>,
    call_depth: usize,
    /// The composite tuples each attribute is an element of (see [`crate::tuples`]).
    tuple_sources: crate::tuples::Sources,
    /// Component changes since the last flush: (entity, tuple, position, new element).
    tuple_changes: Vec<(Eid, Keyword, usize, crate::value::Element)>,
}

fn malformed(reason: String) -> Abort {
    Abort::Fail(Error::MalformedTx { reason })
}

/// `:ns/name` → `:ns/_name` and back; an error for `:/`, which has no reverse.
fn flip_attr(attr: &Keyword) -> Result<Keyword, Abort> {
    match attr.reverse_of() {
        Some(forward) => Ok(forward),
        None => attr.reversed().ok_or_else(|| {
            malformed(format!(
                "{attr} has no reverse attribute to nest a map under"
            ))
        }),
    }
}

/// A nested map's attributes with the link to its parent: `attr` set to `parent`,
/// replacing a value the map gives `attr` itself (as Clojure's `assoc`).
fn with_link(attrs: &[(Keyword, TxValue)], attr: Keyword, parent: Val) -> Vec<(Keyword, Val)> {
    let mut out: Vec<(Keyword, Val)> = attrs
        .iter()
        .map(|(a, v)| (a.clone(), Val::Tx(v.clone())))
        .collect();
    match out.iter_mut().find(|(a, _)| *a == attr) {
        Some(slot) => slot.1 = parent,
        None => out.push((attr, parent)),
    }
    out
}

fn id_as_i64(e: Eid) -> i64 {
    i64::try_from(e).unwrap_or(i64::MAX)
}

impl<'a> Run<'a> {
    fn new(
        db: &'a Db,
        tx: Tx,
        tempids: BTreeMap<Temp, Eid>,
        pinned: &'a BTreeMap<Temp, Eid>,
    ) -> Run<'a> {
        Run {
            db,
            schema: db.schema(),
            tx,
            tempids,
            pinned,
            reverse_tempids: BTreeMap::new(),
            value_tempids: BTreeMap::new(),
            redundant: BTreeSet::new(),
            tx_aliases: BTreeSet::new(),
            last_auto: 0,
            next_eid: db.max_eid() + 1,
            eav: BTreeMap::new(),
            ave: BTreeMap::new(),
            datoms: Vec::new(),
            stack: Vec::new(),
            fns: None,
            call_depth: 0,
            tuple_sources: crate::tuples::Sources::of(db.schema()),
            tuple_changes: Vec::new(),
        }
    }

    fn run(&mut self, ops: &[TxOp]) -> Step<()> {
        for op in ops {
            self.op(op)?;
            while let Some(work) = self.stack.pop() {
                self.work(work)?;
            }
            self.flush_tuples()?;
        }
        Ok(())
    }

    /// Brings the composite tuples of the entities whose components changed since the
    /// last flush up to date (Datascript's `flush-tuples`): the tuple of the components'
    /// values, or no tuple datom when none has a value.
    fn flush_tuples(&mut self) -> Step<()> {
        let changes = std::mem::take(&mut self.tuple_changes);
        let mut tuples: Vec<((Eid, Keyword), Vec<crate::value::Element>)> = Vec::new();
        for (e, tuple, i, v) in changes {
            let at = match tuples.iter().position(|(k, _)| k.0 == e && k.1 == tuple) {
                Some(at) => at,
                None => {
                    let len = self
                        .schema
                        .get(&tuple)
                        .and_then(|s| s.tuple_attrs.as_ref())
                        .map_or(0, Vec::len);
                    let start = match self.values(e, &tuple)?.into_iter().next() {
                        Some(Value::Vector(items)) => items.to_vec(),
                        _ => vec![None; len],
                    };
                    tuples.push(((e, tuple), start));
                    tuples.len() - 1
                }
            };
            if let Some(slot) = tuples[at].1.get_mut(i) {
                *slot = v;
            }
        }
        for ((e, tuple), items) in tuples {
            let value = items
                .iter()
                .any(Option::is_some)
                .then(|| Value::Vector(items.into()));
            let current = self.values(e, &tuple)?.into_iter().next();
            if value == current {
                continue;
            }
            match value {
                None => {
                    if let Some(old) = current {
                        self.retract_datom(e, &tuple, old);
                    }
                }
                Some(v) => {
                    let spec = self.schema.resolve(&tuple)?;
                    // A new entity whose tuple is another's unique identity upserts
                    // into it (Datascript issue 473).
                    self.upsert_restart(e, &tuple, &spec, &Val::Tx(TxValue::Value(v.clone())))?;
                    self.transact_add(e, &tuple, &spec, v)?;
                }
            }
        }
        Ok(())
    }

    /// A composite tuple asserted or retracted in tx data: allowed (and then skipped)
    /// only when it is exactly what its components hold on `e`, as in Datascript.
    fn direct_tuple(&self, op: &str, e: Eid, attr: &Keyword, value: &Value) -> Step<()> {
        let Some(attrs) = self.schema.get(attr).and_then(|s| s.tuple_attrs.clone()) else {
            return Ok(());
        };
        let matches = match value {
            Value::Vector(items) if items.len() == attrs.len() => {
                let mut all = true;
                for (a, item) in attrs.iter().zip(items.iter()) {
                    let held = crate::tuples::element(self.values(e, a)?.into_iter().next());
                    all &= item.is_some() && *item == held;
                }
                all
            }
            _ => false,
        };
        if matches {
            Ok(())
        } else {
            Err(malformed(format!(
                "Can’t modify tuple attrs directly: [{op} {e} {attr} {value}]"
            )))
        }
    }

    fn finish(self, id: Option<TxId>) -> Result<TxReport, Error> {
        let asserted: BTreeSet<Eid> = self
            .datoms
            .iter()
            .filter(|d| d.added)
            .map(|d| d.e)
            .collect();
        let mut unused: Vec<String> = self
            .value_tempids
            .iter()
            .filter(|(e, _)| !asserted.contains(e) && !self.redundant.contains(e))
            .map(|(_, t)| t.to_string())
            .collect();
        if !unused.is_empty() {
            unused.sort();
            return Err(Error::TempidsOnlyAsValue { tempids: unused });
        }
        let mut tempids: BTreeMap<String, Eid> = self
            .tempids
            .into_iter()
            .filter_map(|(t, e)| match t {
                Temp::Named(t) => Some((t, e)),
                Temp::Auto(_) => None,
            })
            .collect();
        for alias in self.tx_aliases {
            tempids.insert(alias, self.tx);
        }
        tempids.insert(CURRENT_TX.to_owned(), self.tx);
        let db_after = self.db.apply_log_entry(TxLogEntry {
            tx: self.tx,
            datoms: self.datoms.clone(),
            id,
        })?;
        Ok(TxReport {
            db_before: self.db.clone(),
            db_after,
            tx_data: self.datoms,
            tempids,
            tx: self.tx,
        })
    }

    fn op(&mut self, op: &TxOp) -> Step<()> {
        let entity = match op {
            TxOp::Map(m) => {
                let id = match &m.id {
                    Some(r) => Ent::Ref(r.clone()),
                    None => self.auto(),
                };
                let attrs = m
                    .attrs
                    .iter()
                    .map(|(a, v)| (a.clone(), Val::Tx(v.clone())))
                    .collect();
                return self.map(id, attrs);
            }
            TxOp::Add(e, a, v) => {
                if matches!(v, TxValue::Many(_) | TxValue::Nested(_)) {
                    return Err(malformed(format!(
                        "{op}: :db/add takes one value; nested maps and several values \
                         belong in entity maps"
                    )));
                }
                return self.add(Ent::Ref(e.clone()), a, Val::Tx(v.clone()), e.to_string());
            }
            TxOp::Call { name, args } => {
                let f = self
                    .fns
                    .and_then(|fns| fns.get(name))
                    .ok_or_else(|| Error::UnknownTxFunction { name: name.clone() })?
                    .clone();
                return self.call(name, |db| f(db, args));
            }
            TxOp::Fn(f, args) => return self.call(f.name(), |db| f.call(db, args)),
            TxOp::Retract(e, ..)
            | TxOp::RetractAttr(e, _)
            | TxOp::RetractEntity(e)
            | TxOp::Cas(e, ..) => e,
        };
        if matches!(entity, EntityRef::Tempid(_)) {
            return Err(malformed(format!(
                "Can't use tempid in '{op}'. Tempids are allowed in :db/add only"
            )));
        }
        match op {
            TxOp::Retract(e, a, v) => self.retract(e, a, v),
            TxOp::RetractAttr(e, a) => self.retract_attr(e, a),
            TxOp::RetractEntity(e) => match self.existing_entity(e, false)? {
                Some(e) => self.retract_entity(e),
                None => Ok(()),
            },
            TxOp::Cas(e, a, old, new) => self.cas(e, a, old.as_ref(), new),
            TxOp::Map(_) | TxOp::Add(..) | TxOp::Call { .. } | TxOp::Fn(..) => Ok(()),
        }
    }

    /// A transaction function: called on the db as the transaction has made it so far,
    /// its tx data run in its place (see [`super::function`]).
    fn call(&mut self, name: &str, f: impl FnOnce(&Db) -> Result<Vec<TxOp>, String>) -> Step<()> {
        if self.call_depth >= MAX_CALL_DEPTH {
            return Err(malformed(format!(
                "transaction function {name}: calls nest deeper than {MAX_CALL_DEPTH}"
            )));
        }
        let so_far = self.db.apply_log_entry(TxLogEntry {
            tx: self.tx,
            datoms: self.datoms.clone(),
            id: None,
        })?;
        let ops = f(&so_far).map_err(|reason| Error::TxFunction {
            name: name.to_owned(),
            reason,
        })?;
        self.call_depth += 1;
        let out = self.run(&ops);
        self.call_depth -= 1;
        out
    }

    fn work(&mut self, work: Work) -> Step<()> {
        match work {
            Work::Map { id, attrs } => self.map(id, attrs),
            Work::Add { e, attr, v, desc } => self.add(e, &attr, v, desc),
            Work::RetractEntity(e) => self.retract_entity(e),
        }
    }

    /// A fresh auto-tempid, for an entity map without `:db/id`.
    fn auto(&mut self) -> Ent {
        self.last_auto += 1;
        Ent::Auto(self.last_auto)
    }

    /// Gives `temp` the id `eid` (Datascript's `allocate-eid`).
    fn allocate(&mut self, temp: Temp, eid: Eid) {
        self.bump(eid);
        let names = self.reverse_tempids.entry(eid).or_default();
        if !names.contains(&temp) {
            names.push(temp.clone());
        }
        self.tempids.insert(temp, eid);
    }

    /// The transaction id, noting `"datomic.tx"` and friends for the report.
    fn current_tx(&mut self, text: Option<&str>) -> Eid {
        if let Some(t) = text.filter(|t| *t != CURRENT_TX) {
            self.tx_aliases.insert(t.to_owned());
        }
        self.tx
    }

    // ---- entity maps ---------------------------------------------------------------

    fn map(&mut self, id: Ent, attrs: Vec<(Keyword, Val)>) -> Step<()> {
        let id = match id {
            Ent::Ref(EntityRef::CurrentTx) => Ent::Ref(EntityRef::Id(self.tx)),
            Ent::Ref(EntityRef::Tempid(t)) if is_current_tx_text(&t) => {
                Ent::Ref(EntityRef::Id(self.current_tx(Some(&t))))
            }
            Ent::Ref(EntityRef::Lookup(a, v)) => {
                Ent::Ref(EntityRef::Id(self.lookup_strict(&a, &v)?))
            }
            Ent::Ref(EntityRef::Id(e)) => Ent::Ref(EntityRef::Id(self.valid_eid(e)?)),
            other => other,
        };
        let Some(u) = self.upsert(&id.to_string(), &attrs)? else {
            return self.explode(id, attrs);
        };
        match (id.temp(), &id) {
            (Some(t), _) => {
                if let Some(&allocated) = self.tempids.get(&t) {
                    if allocated != u.e {
                        return Err(self.restart(t, u.e));
                    }
                }
                self.allocate(t, u.e);
            }
            (None, Ent::Ref(EntityRef::Id(e))) if *e != u.e => {
                return Err(Error::UniqueConflict {
                    attr: u.attr,
                    value: u.value,
                    existing: u.e,
                    entity: *e,
                }
                .into());
            }
            (None, _) => {}
        }
        self.redundant.insert(u.e);
        // As Datascript's `resolve-upserts`, a composite tuple the map upserts by is not
        // asserted again: its components may change in the same map.
        let mut attrs = attrs;
        let mut upserted_by = Vec::new();
        for (i, (a, v)) in attrs.iter().enumerate() {
            let Some(spec) = self.schema.get(a).filter(|s| s.is_tuple()) else {
                continue;
            };
            if let Some(value) = self.peek(spec, v)? {
                if self.holders(a, &value)?.contains(&u.e) {
                    upserted_by.push(i);
                }
            }
        }
        for i in upserted_by.into_iter().rev() {
            attrs.remove(i);
        }
        self.explode(Ent::Ref(EntityRef::Id(u.e)), attrs)
    }

    fn restart(&self, tempid: Temp, eid: Eid) -> Abort {
        Abort::Restart {
            tempid,
            eid,
            tempids: self.tempids.clone(),
        }
    }

    /// An entity map as `:db/add`s about `id` and nested maps, run before the next
    /// operation in the order written (Datascript's `explode`).
    fn explode(&mut self, id: Ent, mut attrs: Vec<(Keyword, Val)>) -> Step<()> {
        let desc = id.to_string();
        // Composite tuples after the other attributes, as Datascript's `explode`.
        attrs.sort_by_key(|(a, _)| self.schema.get(a).is_some_and(AttributeSchema::is_tuple));
        let mut works = Vec::new();
        for (attr, value) in &attrs {
            if attr.as_str() == DB_ID {
                return Err(malformed(format!(
                    "{attr} {value} inside an entity map's attributes: set EntityMap::id instead"
                )));
            }
            let forward = attr.reverse_of();
            let spec = self.schema.resolve(forward.as_ref().unwrap_or(attr))?;
            if let Some(forward) = &forward {
                if !spec.is_ref() {
                    return Err(malformed(format!(
                        "{attr} {value}: reverse attribute {attr} needs {forward} to be \
                         :db.type/ref"
                    )));
                }
            } else if matches!(value, Val::Tx(TxValue::Many(_))) && !spec.is_many() {
                return Err(malformed(format!(
                    "{attr} {value}: several values for a cardinality-one attribute"
                )));
            }
            for item in value.items() {
                match &item {
                    Val::Tx(TxValue::Nested(m)) if spec.is_ref() => {
                        let child = match &m.id {
                            Some(r) => Ent::Ref(r.clone()),
                            None => self.auto(),
                        };
                        works.push(Work::Map {
                            id: child,
                            attrs: with_link(&m.attrs, flip_attr(attr)?, id.as_value()),
                        });
                    }
                    Val::Tx(TxValue::Nested(_)) => {
                        return Err(malformed(format!(
                            "{attr} {item}: a nested map needs a :db.type/ref attribute"
                        )))
                    }
                    Val::Tx(TxValue::Many(_)) => {
                        return Err(malformed(format!(
                            "{attr} {value}: a collection inside a collection"
                        )))
                    }
                    _ => match &forward {
                        Some(forward) => {
                            let e = item.as_ent().ok_or_else(|| {
                                malformed(format!("{attr} {item}: not an entity reference"))
                            })?;
                            works.push(Work::Add {
                                desc: e.to_string(),
                                e,
                                attr: forward.clone(),
                                v: id.as_value(),
                            });
                        }
                        None => works.push(Work::Add {
                            e: id.clone(),
                            attr: attr.clone(),
                            v: item.clone(),
                            desc: desc.clone(),
                        }),
                    },
                }
            }
        }
        self.stack.extend(works.into_iter().rev());
        Ok(())
    }

    /// The entity an entity map upserts into through its `:db.unique/identity`
    /// attributes, if any.
    fn upsert(&self, who: &str, attrs: &[(Keyword, Val)]) -> Step<Option<Upsert>> {
        let mut found: Option<Upsert> = None;
        for (attr, value) in attrs {
            let Some(spec) = self.schema.get(attr) else {
                continue;
            };
            if spec.unique != Some(Unique::Identity) {
                continue;
            }
            for item in value.items() {
                let Some(v) = self.peek(spec, &item)? else {
                    continue;
                };
                let Some(&e) = self.holders(attr, &v)?.first() else {
                    continue;
                };
                match &found {
                    None => {
                        found = Some(Upsert {
                            e,
                            attr: attr.clone(),
                            value: v,
                        })
                    }
                    Some(f) if f.e == e => {}
                    Some(f) => {
                        return Err(Error::UpsertConflict {
                            tempid: who.to_owned(),
                            first: f.e,
                            second: e,
                        }
                        .into())
                    }
                }
            }
        }
        Ok(found)
    }

    /// The value `item` stands for, if it can be known without allocating an id or
    /// failing (for upsert lookups).
    fn peek(&self, spec: &AttributeSchema, item: &Val) -> Result<Option<Value>, Error> {
        let Val::Tx(item) = item else {
            return Ok(None);
        };
        if !spec.is_ref() {
            return Ok(match item {
                // A tuple's ref elements may be lookup refs (that may find nothing yet).
                TxValue::Value(v) if spec.is_tuple() => {
                    crate::tuples::resolve_refs(self.schema, spec, v, |a, v| {
                        self.lookup_quiet(a, v)
                    })
                    .ok()
                }
                TxValue::Value(v) => Some(v.clone()),
                _ => None,
            });
        }
        if let TxValue::Lookup(a, v) = item {
            return Ok(self.lookup_quiet(a, v)?.map(Value::Ref));
        }
        Ok(match item.as_entity_ref() {
            Some(EntityRef::Id(e)) => Some(Value::Ref(e)),
            Some(EntityRef::CurrentTx) => Some(Value::Ref(self.tx)),
            Some(EntityRef::Tempid(t)) if is_current_tx_text(&t) => Some(Value::Ref(self.tx)),
            _ => None,
        })
    }

    // ---- assertions ----------------------------------------------------------------

    /// `[:db/add e attr v]`, in Datascript's order: the transaction in either position,
    /// then a tempid in value position gets its id, then a tempid entity (upserting
    /// through a `:db.unique/identity` attribute), then the datom.
    fn add(&mut self, e: Ent, attr: &Keyword, v: Val, desc: String) -> Step<()> {
        if attr.is_reverse() || attr.as_str() == DB_ID {
            return Err(malformed(format!(
                "[:db/add {e} {attr} {v}]: {attr} cannot be asserted directly"
            )));
        }
        let spec = self.schema.resolve(attr)?;
        let e = match e {
            Ent::Ref(EntityRef::CurrentTx) => Ent::Ref(EntityRef::Id(self.tx)),
            Ent::Ref(EntityRef::Tempid(t)) if is_current_tx_text(&t) => {
                Ent::Ref(EntityRef::Id(self.current_tx(Some(&t))))
            }
            other => other,
        };
        let v = self.ref_value_tempid(&spec, v)?;
        let eid = match e.temp() {
            Some(t) => {
                let upserted = self.upserted(attr, &spec, &v)?;
                let allocated = self.tempids.get(&t).copied();
                let eid = match (upserted, allocated) {
                    (Some(u), Some(a)) if u != a => return Err(self.restart(t, u)),
                    (Some(x), _) | (None, Some(x)) => x,
                    (None, None) => self.fresh()?,
                };
                self.allocate(t, eid);
                eid
            }
            None => {
                let eid = match &e {
                    Ent::Ref(EntityRef::Id(x)) => self.valid_eid(*x)?,
                    Ent::Ref(EntityRef::Lookup(a, lv)) => self.lookup_strict(a, lv)?,
                    other => {
                        return Err(malformed(format!(
                            "[:db/add {other} {attr} {v}]: not an entity position"
                        )))
                    }
                };
                self.upsert_restart(eid, attr, &spec, &v)?;
                eid
            }
        };
        let Val::Tx(v) = v else {
            return Err(malformed(format!(
                "{attr} {v}: an entity map's id as the value of a non-ref attribute"
            )));
        };
        let value = self.value(&desc, attr, &spec, &v)?;
        if spec.is_tuple() {
            let value =
                crate::tuples::resolve_refs(self.schema, &spec, &value, |a, v| self.lookup(a, v))?;
            return self.direct_tuple(":db/add", eid, attr, &value);
        }
        self.transact_add(eid, attr, &spec, value)
    }

    /// An assertion on an entity a tempid of this transaction got, whose identity value
    /// upserts into another entity: the transaction runs again with the tempid naming
    /// that entity (Datascript's `retry-with-tempid`), or it is a conflict.
    fn upsert_restart(
        &self,
        eid: Eid,
        attr: &Keyword,
        spec: &AttributeSchema,
        v: &Val,
    ) -> Step<()> {
        let Some(names) = self.reverse_tempids.get(&eid) else {
            return Ok(());
        };
        if let Some(u) = self.upserted(attr, spec, v)?.filter(|&u| u != eid) {
            let unpinned = names.iter().find(|t| !self.pinned.contains_key(t));
            return Err(match unpinned {
                Some(t) => self.restart(t.clone(), u),
                None => Error::UpsertConflict {
                    tempid: names[0].to_string(),
                    first: eid,
                    second: u,
                }
                .into(),
            });
        }
        Ok(())
    }

    /// Under a ref attribute, the transaction or a tempid in value position as the
    /// entity id it names; a tempid without an id gets a fresh one here, and must then be
    /// the entity of some assertion of the transaction.
    fn ref_value_tempid(&mut self, spec: &AttributeSchema, v: Val) -> Step<Val> {
        if !spec.is_ref() {
            return Ok(v);
        }
        if v.is_tx() {
            let text = v.tx_text().map(str::to_owned);
            return Ok(Val::Tx(TxValue::Value(Value::Ref(
                self.current_tx(text.as_deref()),
            ))));
        }
        let Some(t) = v.temp() else {
            return Ok(v);
        };
        let resolved = match self.tempids.get(&t) {
            Some(&r) => r,
            None => {
                let fresh = self.fresh()?;
                self.allocate(t.clone(), fresh);
                fresh
            }
        };
        self.value_tempids.insert(resolved, t);
        Ok(Val::Tx(TxValue::Value(Value::Ref(resolved))))
    }

    /// The entity `[_ attr v]` upserts into, for a `:db.unique/identity` attribute.
    fn upserted(
        &self,
        attr: &Keyword,
        spec: &AttributeSchema,
        v: &Val,
    ) -> Result<Option<Eid>, Error> {
        if spec.unique != Some(Unique::Identity) {
            return Ok(None);
        }
        Ok(match self.peek(spec, v)? {
            Some(val) => self.holders(attr, &val)?.first().copied(),
            None => None,
        })
    }

    /// Asserts `[e attr value]`: nothing if present; for cardinality one, retracts the
    /// old value first.
    fn transact_add(
        &mut self,
        e: Eid,
        attr: &Keyword,
        spec: &AttributeSchema,
        value: Value,
    ) -> Step<()> {
        if spec.is_many() {
            if self.has(e, attr, &value)? {
                self.redundant.insert(e);
                return Ok(());
            }
            self.check_unique(e, attr, spec, &value)?;
        } else {
            let old = self.values(e, attr)?;
            if old.contains(&value) {
                self.redundant.insert(e);
                return Ok(());
            }
            self.check_unique(e, attr, spec, &value)?;
            for v in old {
                self.retract_datom(e, attr, v);
            }
        }
        self.assert_datom(e, attr, value);
        Ok(())
    }

    fn check_unique(
        &self,
        e: Eid,
        attr: &Keyword,
        spec: &AttributeSchema,
        value: &Value,
    ) -> Result<(), Error> {
        if spec.unique.is_none() {
            return Ok(());
        }
        if let Some(&existing) = self.holders(attr, value)?.iter().find(|&&h| h != e) {
            return Err(Error::UniqueConflict {
                attr: attr.clone(),
                value: value.clone(),
                existing,
                entity: e,
            });
        }
        Ok(())
    }

    /// The datom value `v` stands for under `attr`: type-checked, and for ref
    /// attributes resolved to `Value::Ref` (a tempid must have an id by now, else
    /// [`Error::UnknownTempid`]).
    fn value(
        &mut self,
        desc: &str,
        attr: &Keyword,
        spec: &AttributeSchema,
        v: &TxValue,
    ) -> Step<Value> {
        if !spec.is_ref() {
            let TxValue::Value(val) = v else {
                return Err(malformed(format!(
                    "{attr} {v}: tempids, lookup refs, nested maps, collections and \
                     :db/current-tx are values of :db.type/ref attributes only"
                )));
            };
            match spec.value_type {
                Some(t) if val.value_type() != t => {
                    return Err(Error::WrongValueType {
                        entity: desc.to_owned(),
                        attr: attr.clone(),
                        expected: t,
                        value: val.clone(),
                    }
                    .into())
                }
                None if matches!(val, Value::Ref(_)) => {
                    return Err(malformed(format!(
                        "{attr} {v}: a ref value needs a :db.type/ref attribute"
                    )))
                }
                _ => {}
            }
            val.check_storable()?;
            return Ok(val.clone());
        }
        let target = match v {
            TxValue::Value(Value::Ref(n)) => self.valid_eid(*n)?,
            TxValue::Value(Value::Long(n)) if *n > 0 => self.valid_eid(n.unsigned_abs())?,
            TxValue::Value(Value::Long(0)) => self.valid_eid(0)?,
            TxValue::Value(Value::Long(n)) => self.value_tempid(&n.to_string(), attr)?,
            TxValue::Value(Value::String(s)) => self.value_tempid(s, attr)?,
            TxValue::Value(Value::Keyword(k)) if is_current_tx_keyword(k) => self.tx,
            // An ident names the entity whose `:db/ident` it is, as in Datascript.
            TxValue::Value(ident @ Value::Keyword(_)) => {
                self.lookup_strict(&Keyword::new(IDENT), ident)?
            }
            TxValue::Value(other) => {
                return Err(Error::WrongValueType {
                    entity: desc.to_owned(),
                    attr: attr.clone(),
                    expected: ValueType::Ref,
                    value: other.clone(),
                }
                .into())
            }
            TxValue::Tempid(t) => self.value_tempid(t, attr)?,
            TxValue::Lookup(a, lv) => self.lookup_strict(a, lv)?,
            TxValue::CurrentTx => self.tx,
            TxValue::Nested(_) | TxValue::Many(_) => {
                return Err(malformed(format!(
                    "{attr} {v}: nested maps and collections belong in entity maps"
                )))
            }
        };
        Ok(Value::Ref(target))
    }

    fn value_tempid(&self, t: &str, attr: &Keyword) -> Step<Eid> {
        if is_current_tx_text(t) {
            return Ok(self.tx);
        }
        match self.tempids.get(&Temp::Named(t.to_owned())) {
            Some(&e) => Ok(e),
            None => Err(Error::UnknownTempid {
                tempid: t.to_owned(),
                attr: attr.clone(),
            }
            .into()),
        }
    }

    // ---- retractions and cas -------------------------------------------------------

    fn retract(&mut self, e: &EntityRef, attr: &Keyword, v: &TxValue) -> Step<()> {
        if attr.is_reverse() || attr.as_str() == DB_ID {
            return Err(malformed(format!(
                "[:db/retract {e} {attr} {v}]: {attr} cannot be retracted directly"
            )));
        }
        let spec = self.schema.resolve(attr)?;
        // As in Datascript, a tempid value gets its id before the entity is looked up.
        let Val::Tx(v) = self.ref_value_tempid(&spec, Val::Tx(v.clone()))? else {
            return Err(malformed(format!(
                "[:db/retract {e} {attr} …]: not a value"
            )));
        };
        let Some(eid) = self.existing_entity(e, false)? else {
            return Ok(());
        };
        let value = self.value(&e.to_string(), attr, &spec, &v)?;
        if spec.is_tuple() {
            return self.direct_tuple(":db/retract", eid, attr, &value);
        }
        if self.has(eid, attr, &value)? {
            self.retract_datom(eid, attr, value);
        }
        Ok(())
    }

    fn retract_attr(&mut self, e: &EntityRef, attr: &Keyword) -> Step<()> {
        if attr.is_reverse() || attr.as_str() == DB_ID {
            return Err(malformed(format!(
                "[:db/retract {e} {attr}]: {attr} cannot be retracted directly"
            )));
        }
        let spec = self.schema.resolve(attr)?;
        let Some(eid) = self.existing_entity(e, false)? else {
            return Ok(());
        };
        let mut children = Vec::new();
        for v in self.values(eid, attr)? {
            if let (true, Value::Ref(c)) = (spec.is_component, &v) {
                children.push(*c);
            }
            self.retract_datom(eid, attr, v);
        }
        self.stack
            .extend(children.into_iter().rev().map(Work::RetractEntity));
        Ok(())
    }

    /// Retracts every datom of `e`, then every datom referencing it, then (before the
    /// next operation) its component entities.
    fn retract_entity(&mut self, e: Eid) -> Step<()> {
        let mut children = Vec::new();
        for (a, v) in self.entity_datoms(e)? {
            if let (Some(true), Value::Ref(c)) = (self.schema.get(&a).map(|s| s.is_component), &v) {
                children.push(*c);
            }
            self.retract_datom(e, &a, v);
        }
        // Computed after the entity's own datoms are gone, so a self-reference is
        // retracted once.
        for (holder, a) in self.references(e)? {
            self.retract_datom(holder, &a, Value::Ref(e));
        }
        self.stack
            .extend(children.into_iter().rev().map(Work::RetractEntity));
        Ok(())
    }

    fn cas(
        &mut self,
        e: &EntityRef,
        attr: &Keyword,
        old: Option<&TxValue>,
        new: &TxValue,
    ) -> Step<()> {
        if attr.is_reverse() || attr.as_str() == DB_ID {
            return Err(malformed(format!(
                "[:db/cas {e} {attr} …]: {attr} cannot be compared-and-set"
            )));
        }
        let spec = self.schema.resolve(attr)?;
        let Some(eid) = self.existing_entity(e, true)? else {
            return Ok(());
        };
        let desc = e.to_string();
        let expected = match old {
            None => None,
            Some(TxValue::Value(v)) if !spec.is_ref() => Some(v.clone()),
            Some(o) => Some(self.value(&desc, attr, &spec, o)?),
        };
        let actual = self.values(eid, attr)?;
        let ok = match &expected {
            None => actual.is_empty(),
            Some(x) => actual.contains(x),
        };
        if !ok {
            return Err(Error::CasMismatch {
                entity: eid,
                attr: attr.clone(),
                expected,
                actual,
            }
            .into());
        }
        let value = self.value(&desc, attr, &spec, new)?;
        self.transact_add(eid, attr, &spec, value)
    }

    // ---- entity positions ----------------------------------------------------------

    /// The entity a retraction or cas is about (tempids are rejected before this). A
    /// lookup ref that finds nothing is `None` for retractions (nothing to retract, as in
    /// Datascript) and an error when `strict`.
    fn existing_entity(&self, r: &EntityRef, strict: bool) -> Step<Option<Eid>> {
        match r {
            EntityRef::Id(e) => Ok(Some(self.valid_eid(*e)?)),
            EntityRef::CurrentTx => Ok(Some(self.tx)),
            EntityRef::Tempid(t) if is_current_tx_text(t) => Ok(Some(self.tx)),
            EntityRef::Tempid(t) => Err(malformed(format!(
                "tempid {t}: tempids are allowed in :db/add only"
            ))),
            EntityRef::Lookup(a, v) if strict => Ok(Some(self.lookup_strict(a, v)?)),
            EntityRef::Lookup(a, v) => Ok(self.lookup(a, v)?),
        }
    }

    /// Checks an explicit id: an entity id (`1..TX0`) or an existing transaction id
    /// (the current one included).
    fn valid_eid(&self, e: Eid) -> Result<Eid, Error> {
        let reason = if e == 0 {
            "0 is not an entity id".to_owned()
        } else if e < TX0 || (e > TX0 && e <= self.tx) {
            return Ok(e);
        } else {
            format!(
                "entity ids are below {TX0} and transaction ids up to {} exist",
                self.tx
            )
        };
        Err(Error::InvalidEntityId {
            entity: id_as_i64(e),
            reason,
        })
    }

    fn fresh(&mut self) -> Result<Eid, Error> {
        let e = self.next_eid;
        if e >= TX0 {
            return Err(Error::InvalidEntityId {
                entity: id_as_i64(e),
                reason: "no entity id left below TX0".into(),
            });
        }
        self.next_eid += 1;
        Ok(e)
    }

    /// Keeps fresh ids above every entity id allocated or asserted so far, as
    /// Datascript's `advance-max-eid` does.
    fn bump(&mut self, e: Eid) {
        if e < TX0 && e >= self.next_eid {
            self.next_eid = e + 1;
        }
    }

    // ---- lookups against the db as it stands so far --------------------------------

    /// Resolves a lookup ref; `None` when nothing matches.
    /// The rules are [`Db::lookup_ref`]'s; the search also sees this transaction's datoms.
    fn lookup(&self, attr: &Keyword, value: &Value) -> Result<Option<Eid>, Error> {
        let spec = lookup_ref_attr(self.schema, attr)?;
        let value = lookup_ref_value(&spec, value);
        let value =
            crate::tuples::resolve_refs(self.schema, &spec, &value, |a, v| self.lookup(a, v))?;
        Ok(self.holders(attr, &value)?.first().copied())
    }

    fn lookup_strict(&self, attr: &Keyword, value: &Value) -> Result<Eid, Error> {
        self.lookup(attr, value)?
            .ok_or_else(|| Error::UnknownLookupRef {
                attr: attr.clone(),
                value: value.clone(),
            })
    }

    /// As [`Run::lookup`], but `None` for a lookup ref that is not valid either.
    fn lookup_quiet(&self, attr: &Keyword, value: &Value) -> Result<Option<Eid>, Error> {
        match self.lookup(attr, value) {
            Err(Error::LookupRefNotUnique { .. } | Error::UnknownAttribute { .. }) => Ok(None),
            other => other,
        }
    }

    /// The entities holding `value` for `attr` (an attribute kept in AVET).
    fn holders(&self, attr: &Keyword, value: &Value) -> Result<Vec<Eid>, Error> {
        let mut out = BTreeSet::new();
        if self.schema.in_avet(attr) {
            let prefix = [Component::A(attr.clone()), Component::V(value.clone())];
            for d in self.db.datoms(IndexKind::Avet, &prefix)? {
                let d = d?;
                if self.eav.get(&(d.e, attr.clone(), value.clone())) != Some(&false) {
                    out.insert(d.e);
                }
            }
        }
        let from = (attr.clone(), value.clone(), 0);
        for ((a, v, e), &present) in self.ave.range(from..) {
            if a != attr || v != value {
                break;
            }
            if present {
                out.insert(*e);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// True if `[e attr value]` is present.
    fn has(&self, e: Eid, attr: &Keyword, value: &Value) -> Result<bool, Error> {
        if let Some(&present) = self.eav.get(&(e, attr.clone(), value.clone())) {
            return Ok(present);
        }
        let prefix = [
            Component::E(e),
            Component::A(attr.clone()),
            Component::V(value.clone()),
        ];
        Ok(self
            .db
            .datoms(IndexKind::Eavt, &prefix)?
            .next()
            .transpose()?
            .is_some())
    }

    /// The current values of `attr` on `e`, in value order.
    fn values(&self, e: Eid, attr: &Keyword) -> Result<Vec<Value>, Error> {
        let mut set: BTreeSet<Value> = self
            .db
            .entity_attr(e, attr)?
            .into_iter()
            .map(|d| d.v)
            .collect();
        let from = (e, attr.clone(), Value::Bool(false));
        for ((de, a, v), &present) in self.eav.range(from..) {
            if *de != e || a != attr {
                break;
            }
            if present {
                set.insert(v.clone());
            } else {
                set.remove(v);
            }
        }
        Ok(set.into_iter().collect())
    }

    /// Every current (attribute, value) of `e`, in EAVT order.
    fn entity_datoms(&self, e: Eid) -> Result<Vec<(Keyword, Value)>, Error> {
        let mut set: BTreeSet<(Keyword, Value)> = self
            .db
            .entity_datoms(e)?
            .into_iter()
            .map(|d| (d.a, d.v))
            .collect();
        // The empty keyword sorts before every attribute: a range start, never stored.
        let from = (e, Keyword::new_stored(""), Value::Bool(false));
        for ((de, a, v), &present) in self.eav.range(from..) {
            if *de != e {
                break;
            }
            let key = (a.clone(), v.clone());
            if present {
                set.insert(key);
            } else {
                set.remove(&key);
            }
        }
        Ok(set.into_iter().collect())
    }

    /// The current datoms referencing `e`, as (holder, attribute), by attribute.
    fn references(&self, e: Eid) -> Result<Vec<(Eid, Keyword)>, Error> {
        let mut out = Vec::new();
        for (attr, _) in self.schema.ref_attrs() {
            for holder in self.holders(attr, &Value::Ref(e))? {
                out.push((holder, attr.clone()));
            }
        }
        Ok(out)
    }

    /// Queues the tuples `attr` is an element of for the next flush.
    fn queue_tuples(&mut self, e: Eid, attr: &Keyword, v: Option<&Value>) {
        for (tuple, i) in self.tuple_sources.get(attr) {
            let item = crate::tuples::element(v.cloned());
            self.tuple_changes.push((e, tuple.clone(), *i, item));
        }
    }

    fn assert_datom(&mut self, e: Eid, attr: &Keyword, v: Value) {
        self.queue_tuples(e, attr, Some(&v));
        self.bump(e);
        self.eav.insert((e, attr.clone(), v.clone()), true);
        self.ave.insert((attr.clone(), v.clone(), e), true);
        self.datoms.push(Datom {
            e,
            a: attr.clone(),
            v,
            tx: self.tx,
            added: true,
        });
    }

    fn retract_datom(&mut self, e: Eid, attr: &Keyword, v: Value) {
        self.queue_tuples(e, attr, None);
        self.eav.insert((e, attr.clone(), v.clone()), false);
        self.ave.insert((attr.clone(), v.clone(), e), false);
        self.datoms.push(Datom {
            e,
            a: attr.clone(),
            v,
            tx: self.tx,
            added: false,
        });
    }
}
