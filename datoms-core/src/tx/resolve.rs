//! The transaction algorithm: Datascript's `transact-tx-data`.
//!
//! Operations run one after another against the db as it stands *so far in the
//! transaction* (the base db plus an overlay of the datoms produced until then), exactly
//! as Datascript runs them against its `db-after`: a lookup ref or an upsert can find an
//! entity asserted by an earlier operation of the same transaction. Entity maps explode
//! into `:db/add`s (and nested maps) that run before the next operation.
//!
//! A tempid that receives a fresh id and later turns out to upsert into an existing
//! entity restarts the transaction from the start with that tempid pinned to the entity
//! (Datascript's `retry-with-tempid`); a pinned tempid that upserts elsewhere is an
//! [`Error::UpsertConflict`]. Every restart pins one more tempid, so this terminates.

use std::collections::{BTreeMap, BTreeSet};

use super::data::{
    is_current_tx_keyword, is_current_tx_text, EntityMap, EntityRef, TxOp, TxValue, CURRENT_TX,
    DB_ID,
};
use super::TxReport;
use crate::commit::{TxId, TxLogEntry};
use crate::datom::{Component, Datom, IndexKind, Tx, TX0};
use crate::db::{lookup_ref_attr, lookup_ref_value, Db};
use crate::error::Error;
use crate::schema::{AttributeSchema, Schema, Unique, IDENT};
use crate::value::{Eid, Keyword, Value, ValueType};

/// Why a run stopped early.
enum Abort {
    /// The transaction fails.
    Fail(Error),
    /// `tempid` got a fresh id but upserts into `eid`: run again with it pinned.
    Restart { tempid: String, eid: Eid },
}

impl From<Error> for Abort {
    fn from(e: Error) -> Abort {
        Abort::Fail(e)
    }
}

type Step<T> = Result<T, Abort>;

/// Runs `ops` against `db`: the whole of [`Db::with`]; `id` goes into the log entry
/// ([`Db::with_id`]).
pub(super) fn transact(db: &Db, ops: &[TxOp], id: Option<TxId>) -> Result<TxReport, Error> {
    let tx = db
        .max_tx()
        .checked_add(1)
        .ok_or_else(|| Error::InvalidValue {
            reason: "transaction ids exhausted".into(),
        })?;
    let mut pins: BTreeMap<String, Eid> = BTreeMap::new();
    loop {
        let mut run = Run::new(db, tx, &pins);
        match run.run(ops) {
            Ok(()) => return run.finish(id),
            Err(Abort::Fail(e)) => return Err(e),
            Err(Abort::Restart { tempid, eid }) => {
                if let Some(&first) = pins.get(&tempid) {
                    return Err(Error::UpsertConflict {
                        tempid,
                        first,
                        second: eid,
                    });
                }
                pins.insert(tempid, eid);
            }
        }
    }
}

/// Work produced by exploding an entity map or by a cascading retraction; it runs before
/// the next operation of the transaction.
enum Work {
    /// A nested entity map, with the attribute linking it to its parent.
    Map {
        map: EntityMap,
        backlink: (Keyword, TxValue),
    },
    /// One assertion; `desc` names the entity as the user wrote it, for errors.
    Add {
        e: EntityRef,
        attr: Keyword,
        v: TxValue,
        desc: String,
    },
    /// Retract a component entity.
    RetractEntity(Eid),
}

/// An entity position, resolved as far as it can be without allocating.
enum Target {
    Eid(Eid),
    Tempid(String),
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
    /// Tempid → entity id, pinned ones included.
    tempids: BTreeMap<String, Eid>,
    /// Fresh ids first given to a tempid in value position: each must be asserted as an
    /// entity somewhere in the transaction.
    value_tempids: BTreeMap<Eid, (String, Keyword)>,
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
}

fn malformed(reason: String) -> Abort {
    Abort::Fail(Error::MalformedTx { reason })
}

/// `:ns/name` → `:ns/_name`; an error for `:/`, which has no reverse.
fn reverse_attr(attr: &Keyword) -> Result<Keyword, Abort> {
    attr.reversed().ok_or_else(|| {
        malformed(format!(
            "{attr} has no reverse attribute to nest a map under"
        ))
    })
}

/// The items of a value that may hold several.
fn items(v: &TxValue) -> &[TxValue] {
    match v {
        TxValue::Many(vs) => vs,
        other => std::slice::from_ref(other),
    }
}

fn id_as_i64(e: Eid) -> i64 {
    i64::try_from(e).unwrap_or(i64::MAX)
}

impl<'a> Run<'a> {
    fn new(db: &'a Db, tx: Tx, pins: &BTreeMap<String, Eid>) -> Run<'a> {
        Run {
            db,
            schema: db.schema(),
            tx,
            tempids: pins.clone(),
            value_tempids: BTreeMap::new(),
            next_eid: db.max_eid() + 1,
            eav: BTreeMap::new(),
            ave: BTreeMap::new(),
            datoms: Vec::new(),
            stack: Vec::new(),
        }
    }

    fn run(&mut self, ops: &[TxOp]) -> Step<()> {
        for op in ops {
            self.op(op)?;
            while let Some(work) = self.stack.pop() {
                self.work(work)?;
            }
        }
        Ok(())
    }

    fn finish(self, id: Option<TxId>) -> Result<TxReport, Error> {
        let asserted: BTreeSet<Eid> = self
            .datoms
            .iter()
            .filter(|d| d.added)
            .map(|d| d.e)
            .collect();
        if let Some((tempid, attr)) = self
            .value_tempids
            .iter()
            .find(|(e, _)| !asserted.contains(e))
            .map(|(_, x)| x.clone())
        {
            return Err(Error::UnknownTempid { tempid, attr });
        }
        let mut tempids = self.tempids;
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
        match op {
            TxOp::Map(m) => self.map(m.id.as_ref(), &m.attrs, None),
            TxOp::Add(e, a, v) => {
                if matches!(v, TxValue::Many(_) | TxValue::Nested(_)) {
                    return Err(malformed(format!(
                        "{op}: :db/add takes one value; nested maps and several values \
                         belong in entity maps"
                    )));
                }
                self.add(e, a, v, e.to_string())
            }
            TxOp::Retract(e, a, v) => self.retract(e, a, v),
            TxOp::RetractAttr(e, a) => self.retract_attr(e, a),
            TxOp::RetractEntity(e) => match self.existing_entity(e, false)? {
                Some(e) => self.retract_entity(e),
                None => Ok(()),
            },
            TxOp::Cas(e, a, old, new) => self.cas(e, a, old.as_ref(), new),
        }
    }

    fn work(&mut self, work: Work) -> Step<()> {
        match work {
            Work::Map { map, backlink } => self.map(map.id.as_ref(), &map.attrs, Some(&backlink)),
            Work::Add { e, attr, v, desc } => self.add(&e, &attr, &v, desc),
            Work::RetractEntity(e) => self.retract_entity(e),
        }
    }

    // ---- entity maps ---------------------------------------------------------------

    fn map(
        &mut self,
        id: Option<&EntityRef>,
        attrs: &[(Keyword, TxValue)],
        backlink: Option<&(Keyword, TxValue)>,
    ) -> Step<()> {
        let target = match id {
            Some(r) => Some(self.target(r)?),
            None => None,
        };
        let who = match id {
            Some(r) => r.to_string(),
            None => "<entity map without :db/id>".to_owned(),
        };
        let upsert = self.upsert(&who, attrs.iter().chain(backlink))?;
        let eid = match (target, upsert) {
            (Some(Target::Tempid(t)), Some(u)) => {
                if let Some(&allocated) = self.tempids.get(&t) {
                    if allocated != u.e {
                        return Err(Abort::Restart {
                            tempid: t,
                            eid: u.e,
                        });
                    }
                }
                self.tempids.insert(t, u.e);
                u.e
            }
            (Some(Target::Eid(e)), Some(u)) => {
                if e != u.e {
                    return Err(Error::UniqueConflict {
                        attr: u.attr,
                        value: u.value,
                        existing: u.e,
                        entity: e,
                    }
                    .into());
                }
                e
            }
            (None, Some(u)) => u.e,
            (None, None) => self.fresh()?,
            (Some(Target::Tempid(t)), None) => match self.tempids.get(&t) {
                Some(&e) => e,
                None => {
                    let e = self.fresh()?;
                    self.tempids.insert(t, e);
                    e
                }
            },
            (Some(Target::Eid(e)), None) => e,
        };
        self.bump(eid);
        let desc = match id {
            Some(r) => r.to_string(),
            None => eid.to_string(),
        };
        let mut works = Vec::new();
        for (attr, value) in attrs.iter().chain(backlink) {
            if attr.as_str() == DB_ID {
                return Err(malformed(format!(
                    "{attr} {value} inside an entity map's attributes: set EntityMap::id instead"
                )));
            }
            if let Some(forward) = attr.reverse_of() {
                let spec = self.schema.resolve(&forward)?;
                if !spec.is_ref() {
                    return Err(malformed(format!(
                        "{attr} {value}: reverse attribute {attr} needs {forward} to be \
                         :db.type/ref"
                    )));
                }
                for item in items(value) {
                    if let TxValue::Nested(m) = item {
                        works.push(Work::Map {
                            map: m.clone(),
                            backlink: (forward.clone(), TxValue::Value(Value::Ref(eid))),
                        });
                    } else {
                        let e = item.as_entity_ref().ok_or_else(|| {
                            malformed(format!("{attr} {item}: not an entity reference"))
                        })?;
                        works.push(Work::Add {
                            desc: e.to_string(),
                            e,
                            attr: forward.clone(),
                            v: TxValue::Value(Value::Ref(eid)),
                        });
                    }
                }
            } else {
                let spec = self.schema.resolve(attr)?;
                if matches!(value, TxValue::Many(_)) && !spec.is_many() {
                    return Err(malformed(format!(
                        "{attr} {value}: several values for a cardinality-one attribute"
                    )));
                }
                for item in items(value) {
                    match item {
                        TxValue::Nested(m) if spec.is_ref() => works.push(Work::Map {
                            map: m.clone(),
                            backlink: (reverse_attr(attr)?, TxValue::Value(Value::Ref(eid))),
                        }),
                        TxValue::Nested(_) => {
                            return Err(malformed(format!(
                                "{attr} {item}: a nested map needs a :db.type/ref attribute"
                            )))
                        }
                        TxValue::Many(_) => {
                            return Err(malformed(format!(
                                "{attr} {value}: a collection inside a collection"
                            )))
                        }
                        _ => works.push(Work::Add {
                            e: EntityRef::Id(eid),
                            attr: attr.clone(),
                            v: item.clone(),
                            desc: desc.clone(),
                        }),
                    }
                }
            }
        }
        self.stack.extend(works.into_iter().rev());
        Ok(())
    }

    /// The entity an entity map upserts into through its `:db.unique/identity`
    /// attributes, if any.
    fn upsert<'x>(
        &self,
        who: &str,
        attrs: impl Iterator<Item = &'x (Keyword, TxValue)>,
    ) -> Step<Option<Upsert>> {
        let mut found: Option<Upsert> = None;
        for (attr, value) in attrs {
            let Some(spec) = self.schema.get(attr) else {
                continue;
            };
            if spec.unique != Some(Unique::Identity) {
                continue;
            }
            for item in items(value) {
                let Some(v) = self.peek(spec, item)? else {
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
    fn peek(&self, spec: &AttributeSchema, item: &TxValue) -> Result<Option<Value>, Error> {
        if !spec.is_ref() {
            return Ok(match item {
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
            Some(EntityRef::Tempid(t)) => self.tempids.get(&t).map(|&e| Value::Ref(e)),
            _ => None,
        })
    }

    // ---- assertions ----------------------------------------------------------------

    fn add(&mut self, e: &EntityRef, attr: &Keyword, v: &TxValue, desc: String) -> Step<()> {
        if attr.is_reverse() || attr.as_str() == DB_ID {
            return Err(malformed(format!(
                "[:db/add {e} {attr} {v}]: {attr} cannot be asserted directly"
            )));
        }
        let spec = self.schema.resolve(attr)?;
        let eid = match self.target(e)? {
            Target::Eid(x) => x,
            Target::Tempid(t) => {
                let upserted = if spec.unique == Some(Unique::Identity) {
                    match self.peek(&spec, v)? {
                        Some(val) => self.holders(attr, &val)?.first().copied(),
                        None => None,
                    }
                } else {
                    None
                };
                let allocated = self.tempids.get(&t).copied();
                match (upserted, allocated) {
                    (Some(u), Some(a)) if u != a => {
                        return Err(Abort::Restart { tempid: t, eid: u })
                    }
                    (Some(u), _) => {
                        self.tempids.insert(t, u);
                        u
                    }
                    (None, Some(a)) => a,
                    (None, None) => {
                        let f = self.fresh()?;
                        self.tempids.insert(t, f);
                        f
                    }
                }
            }
        };
        self.bump(eid);
        let value = self.value(&desc, attr, &spec, v, true)?;
        self.transact_add(eid, attr, &spec, value)
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
                return Ok(());
            }
            self.check_unique(e, attr, spec, &value)?;
        } else {
            let old = self.values(e, attr)?;
            if old.contains(&value) {
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
    /// attributes resolved to `Value::Ref` (allocating fresh ids for new tempids when
    /// `alloc`, else failing with [`Error::UnknownTempid`]).
    fn value(
        &mut self,
        desc: &str,
        attr: &Keyword,
        spec: &AttributeSchema,
        v: &TxValue,
        alloc: bool,
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
            return Ok(val.clone());
        }
        let target = match v {
            TxValue::Value(Value::Ref(n)) => self.valid_eid(*n)?,
            TxValue::Value(Value::Long(n)) if *n > 0 => self.valid_eid(n.unsigned_abs())?,
            TxValue::Value(Value::Long(0)) => self.valid_eid(0)?,
            TxValue::Value(Value::Long(n)) => self.value_tempid(&n.to_string(), attr, alloc)?,
            TxValue::Value(Value::String(s)) => self.value_tempid(s, attr, alloc)?,
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
            TxValue::Tempid(t) => self.value_tempid(t, attr, alloc)?,
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

    fn value_tempid(&mut self, t: &str, attr: &Keyword, alloc: bool) -> Step<Eid> {
        if is_current_tx_text(t) {
            return Ok(self.tx);
        }
        if let Some(&e) = self.tempids.get(t) {
            return Ok(e);
        }
        if !alloc {
            return Err(Error::UnknownTempid {
                tempid: t.to_owned(),
                attr: attr.clone(),
            }
            .into());
        }
        let e = self.fresh()?;
        self.tempids.insert(t.to_owned(), e);
        self.value_tempids.insert(e, (t.to_owned(), attr.clone()));
        Ok(e)
    }

    // ---- retractions and cas -------------------------------------------------------

    fn retract(&mut self, e: &EntityRef, attr: &Keyword, v: &TxValue) -> Step<()> {
        if attr.is_reverse() || attr.as_str() == DB_ID {
            return Err(malformed(format!(
                "[:db/retract {e} {attr} {v}]: {attr} cannot be retracted directly"
            )));
        }
        let spec = self.schema.resolve(attr)?;
        let Some(eid) = self.existing_entity(e, false)? else {
            return Ok(());
        };
        let value = self.value(&e.to_string(), attr, &spec, v, false)?;
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
            Some(o) => Some(self.value(&desc, attr, &spec, o, false)?),
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
        let value = self.value(&desc, attr, &spec, new, true)?;
        self.transact_add(eid, attr, &spec, value)
    }

    // ---- entity positions ----------------------------------------------------------

    /// Resolves an entity position, leaving tempids for the caller to allocate.
    fn target(&self, r: &EntityRef) -> Step<Target> {
        Ok(match r {
            EntityRef::Id(e) => Target::Eid(self.valid_eid(*e)?),
            EntityRef::CurrentTx => Target::Eid(self.tx),
            EntityRef::Tempid(t) if is_current_tx_text(t) => Target::Eid(self.tx),
            EntityRef::Tempid(t) => Target::Tempid(t.clone()),
            EntityRef::Lookup(a, v) => Target::Eid(self.lookup_strict(a, v)?),
        })
    }

    /// The entity a retraction or cas is about. A lookup ref that finds nothing is
    /// `None` for retractions (nothing to retract, as in Datascript) and an error when
    /// `strict`; a tempid must have been resolved by an earlier operation.
    fn existing_entity(&self, r: &EntityRef, strict: bool) -> Step<Option<Eid>> {
        if let (EntityRef::Lookup(a, v), false) = (r, strict) {
            return Ok(self.lookup(a, v)?);
        }
        match self.target(r)? {
            Target::Eid(e) => Ok(Some(e)),
            Target::Tempid(t) => match self.tempids.get(&t) {
                Some(&e) => Ok(Some(e)),
                None => Err(malformed(format!(
                    "tempid {t} in a retraction or cas: tempids there must be resolved by an \
                     earlier assertion of the same transaction"
                ))),
            },
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

    /// Keeps fresh ids above the entity ids the transaction names explicitly, as
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

    fn assert_datom(&mut self, e: Eid, attr: &Keyword, v: Value) {
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
