//! The invariants a set of current datoms must keep under its schema and id counters:
//! the one home of the checks that a bulk load ([`crate::Db::bulk_load`], behind
//! `datoms import`) runs before it builds anything and that `datoms verify` runs on a
//! stored db.
//!
//! A transaction keeps these invariants one datom at a time; a bulk load or a damaged
//! store can break them wholesale, so the [`Checker`] reads datoms in EAVT order — the
//! order an export writes and the EAVT index holds — and reports **every** violation it
//! finds as a typed [`Violation`], not just the first. Its memory is one entry per
//! entity, per unique value and per ref, never the datoms themselves.
//!
//! What it checks:
//! - value types against `:db/valueType` (a ref value needs a ref attribute);
//! - at most one value per entity of a cardinality-one attribute;
//! - at most one entity per value of a `:db/unique` attribute (`:db/ident` included);
//! - attributes a strict schema does not declare, and reserved names (`:db/id`,
//!   reverse attributes such as `:person/_friend`);
//! - ids in their ranges: entity ids in `1..TX0` up to `max_eid`, transaction ids (as
//!   a datom's tx, or as an entity that holds datoms) in `TX0+1..=max_tx`;
//! - the same (e, a, v) given twice;
//! - refs to an id that holds no datom and is no transaction id
//!   ([`Violation::DanglingRef`], which a transaction can legitimately leave behind:
//!   see [`Violation::is_warning`]).
//!
//! ```
//! use datoms_core::check::{check, Violation};
//! use datoms_core::edn::parse_schema;
//! use datoms_core::{Datom, TX0};
//! let schema = parse_schema("{:person/age {:db/valueType :db.type/long}}").unwrap();
//! let datoms = [
//!     Datom::new(1, ":person/age", 31, TX0 + 1),
//!     Datom::new(1, ":person/age", 32, TX0 + 1),
//!     Datom::new(2, ":person/age", "old", TX0 + 1),
//! ];
//! let found = check(&schema, datoms.into_iter().map(Ok), 2, TX0 + 1).unwrap();
//! assert!(matches!(found[0], Violation::CardinalityOne { entity: 1, .. }));
//! assert!(matches!(found[1], Violation::WrongType { entity: 2, .. }));
//! ```

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::datom::{Datom, IndexKind, Tx, TX0};
use crate::error::Error;
use crate::schema::{AttributeSchema, Schema};
use crate::value::{Eid, Keyword, Value, ValueType};

/// One broken invariant, naming the entity, attribute and value at fault. `Display`
/// is one line of plain text (values in EDN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A value whose type differs from the attribute's `:db/valueType`.
    WrongType {
        /// The entity.
        entity: Eid,
        /// The attribute.
        attr: Keyword,
        /// The declared type.
        expected: ValueType,
        /// The value found.
        value: Value,
    },
    /// A ref value on an attribute not declared `:db.type/ref`.
    UndeclaredRef {
        /// The entity.
        entity: Eid,
        /// The attribute.
        attr: Keyword,
        /// The id the value points at.
        target: Eid,
    },
    /// Two or more values of a cardinality-one attribute on one entity.
    CardinalityOne {
        /// The entity.
        entity: Eid,
        /// The attribute.
        attr: Keyword,
        /// Every value it holds, in index order.
        values: Vec<Value>,
    },
    /// One value of a `:db/unique` attribute held by two or more entities.
    NotUnique {
        /// The attribute.
        attr: Keyword,
        /// The value.
        value: Value,
        /// Every entity that holds it, ascending.
        entities: Vec<Eid>,
    },
    /// The same (e, a, v) twice: a set of current datoms holds each once.
    Duplicate {
        /// The entity.
        entity: Eid,
        /// The attribute.
        attr: Keyword,
        /// The value.
        value: Value,
    },
    /// An attribute that a strict schema does not declare.
    UnknownAttribute {
        /// The entity.
        entity: Eid,
        /// The attribute.
        attr: Keyword,
    },
    /// An attribute name no datom may have: `:db/id`, or a reverse reference such as
    /// `:person/_friend`.
    ReservedAttribute {
        /// The entity.
        entity: Eid,
        /// The attribute.
        attr: Keyword,
    },
    /// An entity id outside `1..TX0` that is not a transaction id either (0, `TX0`), or
    /// a datom's tx that is not a transaction id (at most `TX0`).
    InvalidId {
        /// The entity of the datom.
        entity: Eid,
        /// The attribute of the datom.
        attr: Keyword,
        /// What is wrong.
        reason: String,
    },
    /// An entity id above the db's `max_eid`: the next transaction would hand it out
    /// again.
    AboveMaxEid {
        /// The entity.
        entity: Eid,
        /// The db's counter.
        max_eid: Eid,
    },
    /// A transaction id (a datom's tx, or a transaction entity) above the db's `max_tx`:
    /// the next transaction would reuse it.
    AboveMaxTx {
        /// The transaction id.
        tx: Tx,
        /// The db's counter.
        max_tx: Tx,
    },
    /// A ref to an id that holds no datom and is no transaction id up to `max_tx`.
    DanglingRef {
        /// The entity holding the ref.
        entity: Eid,
        /// The ref attribute.
        attr: Keyword,
        /// The id it points at.
        target: Eid,
    },
}

impl Violation {
    /// True for what a transaction can leave behind on its own — a ref to an entity that
    /// holds no datom (named by id before it had any, or whose datoms were retracted one
    /// by one): worth reporting, but no broken invariant, so a bulk load accepts it as a
    /// transaction would. Every other violation is an error.
    pub fn is_warning(&self) -> bool {
        matches!(self, Violation::DanglingRef { .. })
    }

    /// A short stable name of the kind of violation (`cardinality_one`, `not_unique`,
    /// …), for reports and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::WrongType { .. } => "wrong_type",
            Violation::UndeclaredRef { .. } => "undeclared_ref",
            Violation::CardinalityOne { .. } => "cardinality_one",
            Violation::NotUnique { .. } => "not_unique",
            Violation::Duplicate { .. } => "duplicate",
            Violation::UnknownAttribute { .. } => "unknown_attribute",
            Violation::ReservedAttribute { .. } => "reserved_attribute",
            Violation::InvalidId { .. } => "invalid_id",
            Violation::AboveMaxEid { .. } => "above_max_eid",
            Violation::AboveMaxTx { .. } => "above_max_tx",
            Violation::DanglingRef { .. } => "dangling_ref",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::WrongType {
                entity,
                attr,
                expected,
                value,
            } => write!(
                f,
                "entity {entity} {attr}: value {value} is not a {}",
                expected.keyword()
            ),
            Violation::UndeclaredRef {
                entity,
                attr,
                target,
            } => write!(
                f,
                "entity {entity} {attr}: ref value {target} on an attribute that is not :db.type/ref"
            ),
            Violation::CardinalityOne {
                entity,
                attr,
                values,
            } => {
                let text: Vec<String> = values.iter().map(Value::to_string).collect();
                write!(
                    f,
                    "entity {entity} {attr}: {} values ({}) for a cardinality-one attribute",
                    values.len(),
                    text.join(" ")
                )
            }
            Violation::NotUnique {
                attr,
                value,
                entities,
            } => {
                let text: Vec<String> = entities.iter().map(u64::to_string).collect();
                write!(
                    f,
                    "{attr} {value} is unique but held by entities {}",
                    text.join(", ")
                )
            }
            Violation::Duplicate {
                entity,
                attr,
                value,
            } => write!(f, "entity {entity} {attr} {value} is given twice"),
            Violation::UnknownAttribute { entity, attr } => write!(
                f,
                "entity {entity} {attr}: the (strict) schema does not declare {attr}"
            ),
            Violation::ReservedAttribute { entity, attr } => write!(
                f,
                "entity {entity} {attr}: {attr} is reserved and cannot be a datom's attribute"
            ),
            Violation::InvalidId {
                entity,
                attr,
                reason,
            } => write!(f, "entity {entity} {attr}: {reason}"),
            Violation::AboveMaxEid { entity, max_eid } => write!(
                f,
                "entity {entity} is above max-eid {max_eid}: a new entity would get its id"
            ),
            Violation::AboveMaxTx { tx, max_tx } => write!(
                f,
                "transaction {tx} is above max-tx {max_tx}: a new transaction would get its id"
            ),
            Violation::DanglingRef {
                entity,
                attr,
                target,
            } => write!(
                f,
                "entity {entity} {attr}: ref to {target}, which holds no datom"
            ),
        }
    }
}

/// Checks current datoms fed one at a time in EAVT order; see the module docs.
pub struct Checker<'s> {
    schema: &'s Schema,
    violations: Vec<Violation>,
    /// The previous datom, for the order check and the (e, a) group.
    prev: Option<Datom>,
    /// Values of the current (e, a) group of a cardinality-one attribute.
    group: Vec<Value>,
    /// Entities that hold a datom, ascending (EAVT order gives them sorted).
    entities: Vec<Eid>,
    /// The first holder of each unique (attribute, value).
    unique: HashMap<(Keyword, Value), Eid>,
    /// Further holders of a unique (attribute, value).
    conflicts: BTreeMap<(Keyword, Value), Vec<Eid>>,
    /// Every ref datom: (entity, attribute, target).
    refs: Vec<(Eid, Keyword, Eid)>,
    max_eid: Eid,
    max_tx: Tx,
    count: u64,
}

impl<'s> Checker<'s> {
    /// A checker of datoms under `schema`.
    pub fn new(schema: &'s Schema) -> Checker<'s> {
        Checker {
            schema,
            violations: Vec::new(),
            prev: None,
            group: Vec::new(),
            entities: Vec::new(),
            unique: HashMap::new(),
            conflicts: BTreeMap::new(),
            refs: Vec::new(),
            max_eid: 0,
            max_tx: TX0,
            count: 0,
        }
    }

    /// Checks the next datom.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if `d` is a retraction or does not come after the previous
    /// datom in EAVT order (a caller's mistake, not a property of the data).
    pub fn push(&mut self, d: &Datom) -> Result<(), Error> {
        if !d.added {
            return Err(Error::InvalidValue {
                reason: format!(
                    "the checker reads current datoms, not a retraction of entity {} {}",
                    d.e, d.a
                ),
            });
        }
        let same_group = match &self.prev {
            None => false,
            Some(p) => match IndexKind::Eavt.cmp(p, d) {
                Ordering::Less => p.e == d.e && p.a == d.a,
                Ordering::Equal => {
                    self.violations.push(Violation::Duplicate {
                        entity: d.e,
                        attr: d.a.clone(),
                        value: d.v.clone(),
                    });
                    return Ok(());
                }
                Ordering::Greater => {
                    return Err(Error::InvalidValue {
                        reason: format!(
                            "datoms out of EAVT order: entity {} {} after entity {} {}",
                            d.e, d.a, p.e, p.a
                        ),
                    })
                }
            },
        };
        if !same_group {
            self.end_group();
        }
        if self.prev.as_ref().is_none_or(|p| p.e != d.e) {
            self.entities.push(d.e);
        }
        self.count += 1;
        self.check_ids(d);
        let spec = self.spec(d, same_group);
        if let Some(spec) = spec {
            self.check_value(d, &spec);
            if !spec.is_many() {
                self.group.push(d.v.clone());
            }
            if spec.unique.is_some() {
                let key = (d.a.clone(), d.v.clone());
                match self.unique.get(&key) {
                    Some(_) => self.conflicts.entry(key).or_default().push(d.e),
                    None => {
                        self.unique.insert(key, d.e);
                    }
                }
            }
        }
        self.prev = Some(d.clone());
        Ok(())
    }

    /// The number of datoms checked.
    pub fn datoms(&self) -> u64 {
        self.count
    }

    /// The largest entity id below `TX0` that holds a datom (0 when none): the least a
    /// db's `max_eid` can be.
    pub fn seen_max_eid(&self) -> Eid {
        self.max_eid
    }

    /// The largest transaction id seen as a datom's tx or as an entity (`TX0` when
    /// none): the least a db's `max_tx` can be.
    pub fn seen_max_tx(&self) -> Tx {
        self.max_tx
    }

    /// Ends the stream: checks uniqueness, refs and the ids against the db's counters,
    /// and returns every violation found — in stream order, then uniqueness conflicts
    /// by attribute and value, then the counters, then dangling refs.
    pub fn finish(mut self, max_eid: Eid, max_tx: Tx) -> Vec<Violation> {
        self.end_group();
        let mut out = std::mem::take(&mut self.violations);
        for ((attr, value), more) in std::mem::take(&mut self.conflicts) {
            let mut entities = more;
            if let Some(first) = self.unique.get(&(attr.clone(), value.clone())) {
                entities.push(*first);
            }
            entities.sort_unstable();
            entities.dedup();
            out.push(Violation::NotUnique {
                attr,
                value,
                entities,
            });
        }
        if self.max_eid > max_eid {
            out.push(Violation::AboveMaxEid {
                entity: self.max_eid,
                max_eid,
            });
        }
        if self.max_tx > max_tx {
            out.push(Violation::AboveMaxTx {
                tx: self.max_tx,
                max_tx,
            });
        }
        for (entity, attr, target) in std::mem::take(&mut self.refs) {
            let is_tx = target > TX0 && target <= max_tx;
            if !is_tx && self.entities.binary_search(&target).is_err() {
                out.push(Violation::DanglingRef {
                    entity,
                    attr,
                    target,
                });
            }
        }
        out
    }

    /// The attribute's declaration, recording unknown and reserved attributes (once per
    /// (e, a) group). `None` when there is nothing more to check the value against.
    fn spec(&mut self, d: &Datom, same_group: bool) -> Option<AttributeSchema> {
        if d.a.as_str() == "db/id" || d.a.is_reverse() {
            if !same_group {
                self.violations.push(Violation::ReservedAttribute {
                    entity: d.e,
                    attr: d.a.clone(),
                });
            }
            return None;
        }
        match self.schema.resolve(&d.a) {
            Ok(spec) => Some(spec),
            Err(_) => {
                if !same_group {
                    self.violations.push(Violation::UnknownAttribute {
                        entity: d.e,
                        attr: d.a.clone(),
                    });
                }
                None
            }
        }
    }

    fn check_ids(&mut self, d: &Datom) {
        let invalid = |reason: String| Violation::InvalidId {
            entity: d.e,
            attr: d.a.clone(),
            reason,
        };
        if d.e == 0 || d.e == TX0 {
            self.violations.push(invalid(format!(
                "{} is neither an entity id (1 to {}) nor a transaction id (from {})",
                d.e,
                TX0 - 1,
                TX0 + 1
            )));
        } else if d.e < TX0 {
            self.max_eid = self.max_eid.max(d.e);
        } else {
            self.max_tx = self.max_tx.max(d.e);
        }
        if d.tx <= TX0 {
            self.violations.push(invalid(format!(
                "tx {} is not a transaction id (they start at {})",
                d.tx,
                TX0 + 1
            )));
        } else {
            self.max_tx = self.max_tx.max(d.tx);
        }
    }

    fn check_value(&mut self, d: &Datom, spec: &AttributeSchema) {
        match (spec.value_type, &d.v) {
            (Some(ValueType::Ref), Value::Ref(target)) => {
                self.refs.push((d.e, d.a.clone(), *target));
            }
            (None, Value::Ref(target)) => self.violations.push(Violation::UndeclaredRef {
                entity: d.e,
                attr: d.a.clone(),
                target: *target,
            }),
            (Some(expected), v) if v.value_type() != expected => {
                self.violations.push(Violation::WrongType {
                    entity: d.e,
                    attr: d.a.clone(),
                    expected,
                    value: v.clone(),
                });
            }
            _ => {}
        }
    }

    /// Closes the current (e, a) group: more than one value of a cardinality-one
    /// attribute is a violation.
    fn end_group(&mut self) {
        if self.group.len() > 1 {
            if let Some(p) = &self.prev {
                self.violations.push(Violation::CardinalityOne {
                    entity: p.e,
                    attr: p.a.clone(),
                    values: std::mem::take(&mut self.group),
                });
            }
        }
        self.group.clear();
    }
}

/// Checks `datoms` (current datoms in EAVT order, as a db's EAVT index yields them)
/// against `schema` and the counters `max_eid` and `max_tx`; returns every violation,
/// warnings ([`Violation::is_warning`]) included.
///
/// # Errors
/// The first `Err` of the stream (e.g. a node a lazily restored db cannot load), or
/// [`Error::InvalidValue`] for a stream out of EAVT order or holding a retraction.
pub fn check(
    schema: &Schema,
    datoms: impl IntoIterator<Item = Result<Datom, Error>>,
    max_eid: Eid,
    max_tx: Tx,
) -> Result<Vec<Violation>, Error> {
    let mut checker = Checker::new(schema);
    for d in datoms {
        checker.push(&d?)?;
    }
    Ok(checker.finish(max_eid, max_tx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::parse_schema;

    fn schema() -> Schema {
        parse_schema(
            "{:person/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
              :person/age {:db/valueType :db.type/long}
              :person/tag {:db/cardinality :db.cardinality/many}
              :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}",
        )
        .unwrap()
    }

    fn run(datoms: &[Datom], max_eid: Eid, max_tx: Tx) -> Vec<Violation> {
        let mut sorted = datoms.to_vec();
        sorted.sort_by(|a, b| IndexKind::Eavt.cmp(a, b));
        check(&schema(), sorted.into_iter().map(Ok), max_eid, max_tx).unwrap()
    }

    const T: Tx = TX0 + 1;

    #[test]
    fn consistent_datoms_pass() {
        let found = run(
            &[
                Datom::new(1, ":person/name", "Ann", T),
                Datom::new(1, ":person/age", 31, T),
                Datom::new(1, ":person/tag", "a", T),
                Datom::new(1, ":person/tag", "b", T),
                Datom::new(1, ":person/friend", Value::Ref(2), T),
                Datom::new(1, ":person/friend", Value::Ref(T), T),
                Datom::new(2, ":person/name", "Bob", T),
                Datom::new(2, ":undeclared", "anything", T),
                Datom::new(T, ":tx/note", "a tx entity", T),
            ],
            2,
            T,
        );
        assert_eq!(found, Vec::new());
    }

    #[test]
    fn every_violation_is_found_and_named() {
        let found = run(
            &[
                Datom::new(1, ":person/age", 31, T),
                Datom::new(1, ":person/age", 32, T),
                Datom::new(1, ":person/name", "Ann", T),
                Datom::new(2, ":person/name", "Ann", T),
                Datom::new(3, ":person/name", "Ann", T),
                Datom::new(2, ":person/age", "old", T),
                Datom::new(3, ":person/friend", Value::Ref(40), T),
                Datom::new(3, ":person/_friend", Value::Ref(1), T),
                Datom::new(3, ":person/tag", Value::Ref(1), T),
                Datom::new(0, ":person/tag", "zero", T),
                Datom::new(4, ":person/tag", "x", TX0),
                Datom::new(9, ":person/tag", "x", T + 5),
            ],
            5,
            T,
        );
        let kinds: Vec<&str> = found.iter().map(Violation::kind).collect();
        assert_eq!(
            kinds,
            [
                "invalid_id",
                "cardinality_one",
                "wrong_type",
                "reserved_attribute",
                "undeclared_ref",
                "invalid_id",
                "not_unique",
                "above_max_eid",
                "above_max_tx",
                "dangling_ref"
            ],
            "{found:#?}"
        );
        assert_eq!(
            found[1],
            Violation::CardinalityOne {
                entity: 1,
                attr: ":person/age".into(),
                values: vec![Value::Long(31), Value::Long(32)],
            }
        );
        assert_eq!(
            found[6],
            Violation::NotUnique {
                attr: ":person/name".into(),
                value: Value::string("Ann"),
                entities: vec![1, 2, 3],
            }
        );
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            text[1],
            "entity 1 :person/age: 2 values (31 32) for a cardinality-one attribute"
        );
        assert_eq!(
            text[2],
            "entity 2 :person/age: value \"old\" is not a :db.type/long"
        );
        assert_eq!(
            text[6],
            ":person/name \"Ann\" is unique but held by entities 1, 2, 3"
        );
        assert!(found[9].is_warning());
        assert!(!found[..9].iter().any(Violation::is_warning));
        for t in &text {
            assert!(!t.contains("Some(") && !t.contains("Long("), "{t}");
        }
    }

    #[test]
    fn duplicates_strict_schemas_and_order() {
        let strict = schema().strict();
        let d = Datom::new(1, ":person/age", 31, T);
        let found = check(
            &strict,
            [d.clone(), d.clone(), Datom::new(1, ":zz/nope", 1, T)]
                .into_iter()
                .map(Ok),
            1,
            T,
        )
        .unwrap();
        assert_eq!(
            found.iter().map(Violation::kind).collect::<Vec<_>>(),
            ["duplicate", "unknown_attribute"]
        );
        let backwards = check(
            &strict,
            [Datom::new(2, ":person/age", 1, T), d.clone()]
                .into_iter()
                .map(Ok),
            2,
            T,
        );
        assert!(matches!(backwards, Err(Error::InvalidValue { .. })));
        let retraction = Datom { added: false, ..d };
        assert!(check(&strict, [Ok(retraction)], 1, T).is_err());
    }
}
