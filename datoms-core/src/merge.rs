//! Three-way merge: `merge(base, ours, theirs, strategy)` is `ours` with what `theirs`
//! changed since `base` (their common ancestor) applied, or the list of conflicts.
//!
//! Both sides are diffed against the base ([`crate::diff()`], which skips every subtree
//! they share, so the cost follows the changes, not the db). A change is kept per datom
//! key `(e, a, v)`: each side leaves a key as the base had it, retracts it, or asserts it
//! (a new datom, or the base's re-asserted by a later transaction). The merged state of a
//! key is the one both sides agree on, else the changed side's, else — both changed it
//! differently — the asserted one (an assertion wins over a retraction of the same
//! datom; of two assertions the earlier transaction's). Datoms keep their own
//! transaction ids, so the merge of disjoint changes is exactly the two sets of changes
//! applied to the base in either order (the same datoms, hence the same roots), and the
//! merge is commutative where nothing conflicts.
//!
//! What no per-key rule can settle is a [`Conflict`], never resolved silently:
//! - both sides gave a cardinality-one attribute of one entity different values
//!   ([`Conflict::CardinalityOne`]);
//! - both sides claimed the same value of a unique attribute for different entities
//!   ([`Conflict::Unique`]);
//! - one side retracted an entity (left it without a datom) that the other changed, or
//!   made a reference to ([`Conflict::RetractedEntity`]).
//!
//! Entity ids are allocated per branch, from the base's last one: when both sides made
//! new entities, theirs are renumbered above ours (and references to them), so two new
//! entities never merge into one by accident ([`Merged::renumbered`]); two that claim
//! one unique value are then a [`Conflict::Unique`]. The merge is therefore commutative
//! where nothing conflicts and the sides did not both make entities.
//!
//! The [`Strategy`] says what happens then: fail with the conflict list
//! ([`Error::MergeConflicts`]), or take one side's state of every datom the conflict
//! involves, chosen once ([`Strategy::Ours`], [`Strategy::Theirs`]) or per conflict by
//! a function ([`Strategy::With`]).
//!
//! The result is `ours` with the changes applied as log entries (retractions first, in
//! one entry; then assertions grouped by their transaction), so a merge commit's log
//! replayed onto its first parent reproduces it; when `theirs` is a stored commit, the
//! result records it as a merge parent ([`Db::merging`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::commit::TxLogEntry;
use crate::datom::{Datom, Tx, TX0};
use crate::db::Db;
use crate::diff::{diff, Diff};
use crate::error::Error;
use crate::schema::Unique;
use crate::value::{Eid, Keyword, Value};

/// One side of a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The db merged into (the head the merge commit is stored onto).
    Ours,
    /// The db merged from.
    Theirs,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Ours => "ours",
            Side::Theirs => "theirs",
        })
    }
}

/// A change both sides made that no per-datom rule can merge. Each names the entity, the
/// attribute and both sides' values.
#[derive(Clone, Debug, PartialEq)]
pub enum Conflict {
    /// Both sides set a cardinality-one attribute of one entity, to different values.
    CardinalityOne {
        /// The entity.
        entity: Eid,
        /// The attribute.
        attribute: Keyword,
        /// Our value.
        ours: Value,
        /// Their value.
        theirs: Value,
    },
    /// Both sides asserted the same value of a unique attribute, on different entities.
    Unique {
        /// The attribute.
        attribute: Keyword,
        /// The value both claimed.
        value: Value,
        /// The entity that holds it on our side.
        ours: Eid,
        /// The entity that holds it on their side.
        theirs: Eid,
    },
    /// One side retracted an entity (it has no datom left there) that the other side
    /// changed or made a reference to.
    RetractedEntity {
        /// The entity.
        entity: Eid,
        /// The side that retracted it.
        retracted_by: Side,
        /// What the other side changed about it: its assertions (`added` true) and
        /// retractions (`added` false) of the entity's datoms and of references to it.
        changes: Vec<Datom>,
    },
}

impl Conflict {
    /// The kind, as a stable name: `cardinality-one`, `unique` or `retracted-entity`.
    pub fn kind(&self) -> &'static str {
        match self {
            Conflict::CardinalityOne { .. } => "cardinality-one",
            Conflict::Unique { .. } => "unique",
            Conflict::RetractedEntity { .. } => "retracted-entity",
        }
    }

    /// The entity in conflict (for [`Conflict::Unique`], ours).
    pub fn entity(&self) -> Eid {
        match self {
            Conflict::CardinalityOne { entity, .. } | Conflict::RetractedEntity { entity, .. } => {
                *entity
            }
            Conflict::Unique { ours, .. } => *ours,
        }
    }

    /// The attribute in conflict (for [`Conflict::RetractedEntity`], that of the first
    /// change).
    pub fn attribute(&self) -> Option<&Keyword> {
        match self {
            Conflict::CardinalityOne { attribute, .. } | Conflict::Unique { attribute, .. } => {
                Some(attribute)
            }
            Conflict::RetractedEntity { changes, .. } => changes.first().map(|d| &d.a),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::CardinalityOne {
                entity,
                attribute,
                ours,
                theirs,
            } => write!(
                f,
                "entity {entity} {attribute}: ours set {ours:?}, theirs set {theirs:?} (cardinality one)"
            ),
            Conflict::Unique {
                attribute,
                value,
                ours,
                theirs,
            } => write!(
                f,
                "{attribute} {value:?} is unique: ours gave it to entity {ours}, theirs to entity {theirs}"
            ),
            Conflict::RetractedEntity {
                entity,
                retracted_by,
                changes,
            } => {
                let other = match retracted_by {
                    Side::Ours => Side::Theirs,
                    Side::Theirs => Side::Ours,
                };
                write!(
                    f,
                    "entity {entity} was retracted by {retracted_by}, and {other} changed it:"
                )?;
                for d in changes {
                    let op = if d.added { "added" } else { "retracted" };
                    write!(f, " {op} [{} {} {:?}];", d.e, d.a, d.v)?;
                }
                Ok(())
            }
        }
    }
}

/// What a merge does with conflicts.
#[derive(Clone, Copy, Default)]
pub enum Strategy<'a> {
    /// Fail with [`Error::MergeConflicts`], listing every conflict. Nothing is merged.
    #[default]
    Fail,
    /// Take our state of every datom a conflict involves.
    Ours,
    /// Take their state of every datom a conflict involves.
    Theirs,
    /// Ask the function, once per conflict, whose state to take.
    With(&'a dyn Fn(&Conflict) -> Side),
}

impl fmt::Debug for Strategy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Fail => "Fail",
            Strategy::Ours => "Ours",
            Strategy::Theirs => "Theirs",
            Strategy::With(_) => "With(..)",
        })
    }
}

/// A merge's result.
#[derive(Clone, Debug)]
pub struct Merged {
    /// `ours` with the merged changes applied (and, when `theirs` is a stored commit,
    /// recording it as a merge parent): store it onto our head to make the merge commit.
    pub db: Db,
    /// What the merge changed in `ours`: the datoms asserted and retracted.
    pub applied: Diff,
    /// The conflicts met, each with the side whose state was taken.
    pub resolved: Vec<(Conflict, Side)>,
    /// The datoms our side changed since the base, and theirs (assertions and
    /// retractions together): the sizes of the two diffs the merge combined.
    pub changes: (usize, usize),
    /// How far their new entities were renumbered: when both sides made entities since
    /// the base (each allocating ids from the base's last one), theirs move up by this
    /// much, above ours; 0 otherwise.
    pub renumbered: u64,
}

/// A datom's identity in the indexes: entity, attribute, value (not the transaction).
type Key = (Eid, Keyword, Value);

fn key(d: &Datom) -> Key {
    (d.e, d.a.clone(), d.v.clone())
}

/// One side's changes since the base, by key.
#[derive(Default)]
struct Changes {
    /// Keys the side asserts (new, or re-asserted by a later transaction).
    added: HashMap<Key, Datom>,
    /// Keys of the base the side retracted or re-asserted, with the base's datom
    /// (`added` true).
    retracted: HashMap<Key, Datom>,
}

impl Changes {
    fn of(d: Diff) -> Changes {
        let mut out = Changes::default();
        for x in d.retracted {
            let x = Datom { added: true, ..x };
            out.retracted.insert(key(&x), x);
        }
        // A re-assertion shows as retracted and added: the key stays, its datom changes;
        // `added` wins when reading the side's state.
        for x in d.added {
            out.added.insert(key(&x), x);
        }
        out
    }

    /// How many datoms the side asserted or retracted (a re-assertion counts twice).
    fn len(&self) -> usize {
        self.added.len() + self.retracted.len()
    }
}

/// The three states of every key either side changed.
struct States<'c> {
    ours: &'c Changes,
    theirs: &'c Changes,
}

impl States<'_> {
    /// The base's state of `k`: a diff lists every base datom a side retracted or
    /// re-asserted, and a key only asserted was not in the base.
    fn base(&self, k: &Key) -> Option<Datom> {
        self.ours
            .retracted
            .get(k)
            .or(self.theirs.retracted.get(k))
            .cloned()
    }

    /// A side's state of `k`: asserted by it, retracted by it, or as the base had it.
    fn side(&self, side: Side, k: &Key) -> Option<Datom> {
        let c = match side {
            Side::Ours => self.ours,
            Side::Theirs => self.theirs,
        };
        if let Some(d) = c.added.get(k) {
            return Some(d.clone());
        }
        if c.retracted.contains_key(k) {
            return None;
        }
        self.base(k)
    }

    /// The state both sides' changes give `k`, before conflicts.
    fn merged(&self, k: &Key) -> Option<Datom> {
        let (o, t) = (self.side(Side::Ours, k), self.side(Side::Theirs, k));
        if o == t {
            return o;
        }
        let b = self.base(k);
        if o == b {
            return t;
        }
        if t == b {
            return o;
        }
        match (o, t) {
            (Some(x), Some(y)) => Some(if y.tx < x.tx { y } else { x }),
            (x, y) => x.or(y),
        }
    }
}

/// Merges `theirs` into `ours`, both descended from `base`: see the module docs.
///
/// # Errors
/// [`Error::MergeConflicts`] with every conflict under [`Strategy::Fail`];
/// [`Error::MergeSchemaDiffers`] when the sides have different schemas or tree
/// configurations; load errors of lazily restored dbs.
pub fn merge(base: &Db, ours: &Db, theirs: &Db, strategy: Strategy<'_>) -> Result<Merged, Error> {
    if ours.schema() != theirs.schema() || ours.config() != theirs.config() {
        return Err(Error::MergeSchemaDiffers);
    }
    // Entity ids are allocated per branch: when both sides made entities since the base,
    // theirs are renumbered above ours (references to them too).
    let offset = match (ours.max_eid(), theirs.max_eid(), base.max_eid()) {
        (o, t, b) if o > b && t > b => o - b,
        _ => 0,
    };
    let fresh = base.max_eid();
    let renumber = |e: Eid| if e > fresh && e < TX0 { e + offset } else { e };
    let o = Changes::of(diff(base, ours)?);
    let mut theirs_diff = diff(base, theirs)?;
    if offset > 0 {
        for d in &mut theirs_diff.added {
            d.e = renumber(d.e);
            if let Value::Ref(x) = d.v {
                d.v = Value::Ref(renumber(x));
            }
        }
    }
    let t = Changes::of(theirs_diff);
    let states = States {
        ours: &o,
        theirs: &t,
    };
    let mut touched: BTreeSet<Key> = BTreeSet::new();
    for c in [&o, &t] {
        touched.extend(c.added.keys().cloned());
        touched.extend(c.retracted.keys().cloned());
    }
    let mut merged: BTreeMap<Key, Option<Datom>> = touched
        .iter()
        .map(|k| (k.clone(), states.merged(k)))
        .collect();

    let conflicts = find_conflicts(ours, theirs, &states, &touched)?;
    if !conflicts.is_empty() && matches!(strategy, Strategy::Fail) {
        return Err(Error::MergeConflicts {
            conflicts: conflicts.into_iter().map(|(c, _)| c).collect(),
        });
    }
    let mut resolved = Vec::with_capacity(conflicts.len());
    for (conflict, keys) in conflicts {
        let side = match strategy {
            Strategy::Fail | Strategy::Ours => Side::Ours,
            Strategy::Theirs => Side::Theirs,
            Strategy::With(f) => f(&conflict),
        };
        for k in keys {
            merged.insert(k.clone(), states.side(side, &k));
        }
        resolved.push((conflict, side));
    }

    // What reaches the merged state from ours.
    let mut applied = Diff::default();
    for (k, m) in &merged {
        let now = states.side(Side::Ours, k);
        if *m == now {
            continue;
        }
        if let Some(d) = now {
            applied.retracted.push(Datom { added: false, ..d });
        }
        if let Some(d) = m {
            applied.added.push(d.clone());
        }
    }
    let max_tx = ours.max_tx().max(theirs.max_tx());
    let entries = log_entries(&applied, max_tx, ours.max_tx());
    let mut db = ours.apply_log_entries(entries)?;
    db.max_eid = db
        .max_eid
        .max(renumber(theirs.max_eid()))
        .max(ours.max_eid());
    db.max_tx = max_tx;
    if let (Some(commit), 0) = (theirs.base_commit(), theirs.pending_txs()) {
        db = db.merging(commit, theirs.parents_time());
    }
    Ok(Merged {
        db,
        applied,
        resolved,
        changes: (o.len(), t.len()),
        renumbered: offset,
    })
}

/// The log entries that apply `applied` to ours: every retraction first, in one entry
/// at `max_tx` (retractions are removals by key: their transaction does not matter),
/// then the assertions grouped by their own transaction, oldest first. An entry at
/// `max_tx` with no datom is kept when nothing else would bring the db's last
/// transaction there (from `ours_tx`), so replay reproduces the counters exactly.
fn log_entries(applied: &Diff, max_tx: Tx, ours_tx: Tx) -> Vec<TxLogEntry> {
    let mut entries = Vec::new();
    let mut by_tx: BTreeMap<Tx, Vec<Datom>> = BTreeMap::new();
    for d in &applied.added {
        by_tx.entry(d.tx).or_default().push(d.clone());
    }
    let reaches = by_tx
        .keys()
        .next_back()
        .copied()
        .unwrap_or(ours_tx)
        .max(ours_tx)
        >= max_tx;
    if !applied.retracted.is_empty() || !reaches {
        entries.push(TxLogEntry {
            tx: max_tx,
            datoms: applied
                .retracted
                .iter()
                .map(|d| Datom {
                    tx: max_tx,
                    ..d.clone()
                })
                .collect(),
            id: None,
        });
    }
    entries.extend(by_tx.into_iter().map(|(tx, datoms)| TxLogEntry {
        tx,
        datoms,
        id: None,
    }));
    entries
}

/// Every conflict, with the keys whose state its resolution decides.
fn find_conflicts(
    ours: &Db,
    theirs: &Db,
    states: &States<'_>,
    touched: &BTreeSet<Key>,
) -> Result<Vec<(Conflict, Vec<Key>)>, Error> {
    let schema = ours.schema();
    let mut out = Vec::new();
    let sorted = |c: &HashMap<Key, Datom>| -> Vec<Datom> {
        let mut v: Vec<Datom> = c.values().cloned().collect();
        v.sort_by_key(key);
        v
    };
    let ours_added = sorted(&states.ours.added);
    let theirs_added = sorted(&states.theirs.added);

    // Cardinality one: our values per (e, a), against each of theirs.
    let mut ours_by_ea: HashMap<(Eid, &Keyword), Vec<&Datom>> = HashMap::new();
    let mut ours_by_av: HashMap<(&Keyword, &Value), Vec<&Datom>> = HashMap::new();
    for d in &ours_added {
        let spec = schema.get(&d.a);
        if !spec.is_some_and(|s| s.is_many()) {
            ours_by_ea.entry((d.e, &d.a)).or_default().push(d);
        }
        if spec.is_some_and(|s| matches!(s.unique, Some(Unique::Identity | Unique::Value))) {
            ours_by_av.entry((&d.a, &d.v)).or_default().push(d);
        }
    }
    for d in &theirs_added {
        for x in ours_by_ea.get(&(d.e, &d.a)).into_iter().flatten() {
            if x.v != d.v {
                out.push((
                    Conflict::CardinalityOne {
                        entity: d.e,
                        attribute: d.a.clone(),
                        ours: x.v.clone(),
                        theirs: d.v.clone(),
                    },
                    vec![key(x), key(d)],
                ));
            }
        }
        for x in ours_by_av.get(&(&d.a, &d.v)).into_iter().flatten() {
            if x.e != d.e {
                out.push((
                    Conflict::Unique {
                        attribute: d.a.clone(),
                        value: d.v.clone(),
                        ours: x.e,
                        theirs: d.e,
                    },
                    vec![key(x), key(d)],
                ));
            }
        }
    }

    // Retracted entities: an entity a side left without a datom, that the other side's
    // changes touch (where the two sides' states differ).
    for (side, db, changes) in [
        (Side::Ours, ours, states.ours),
        (Side::Theirs, theirs, states.theirs),
    ] {
        let other = match side {
            Side::Ours => Side::Theirs,
            Side::Theirs => Side::Ours,
        };
        let candidates: BTreeSet<Eid> = changes.retracted.keys().map(|k| k.0).collect();
        for e in candidates {
            if !db.entity_datoms(e)?.is_empty() {
                continue;
            }
            let involved: Vec<Key> = touched
                .iter()
                .filter(|k| k.0 == e || k.2 == Value::Ref(e))
                .cloned()
                .collect();
            let mut changed = Vec::new();
            for k in &involved {
                let (mine, theirs_state) = (states.side(side, k), states.side(other, k));
                if mine == theirs_state || theirs_state == states.base(k) {
                    continue;
                }
                match theirs_state {
                    Some(d) => changed.push(d),
                    None => {
                        if let Some(d) = states.base(k) {
                            changed.push(Datom { added: false, ..d });
                        }
                    }
                }
            }
            if !changed.is_empty() {
                out.push((
                    Conflict::RetractedEntity {
                        entity: e,
                        retracted_by: side,
                        changes: changed,
                    },
                    involved,
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Strategy as MergeStrategy;
    use super::*;
    use crate::datom::IndexKind;
    use crate::schema::{AttributeSchema, Schema};

    fn schema() -> Schema {
        Schema::new()
            .with(":m", AttributeSchema::default().many())
            .unwrap()
            .with(":u", AttributeSchema::default().unique_value())
            .unwrap()
            .with(
                ":r",
                AttributeSchema::default()
                    .value_type(crate::value::ValueType::Ref)
                    .many(),
            )
            .unwrap()
    }

    fn tx(db: &Db, edn: &str) -> Db {
        db.with_edn(edn).unwrap().db_after
    }

    fn base() -> Db {
        tx(
            &Db::new(schema()),
            "[[:db/add 1 :a 1] [:db/add 1 :m 1] [:db/add 2 :a 2] [:db/add 3 :a 3] [:db/add 3 :u 3]]",
        )
    }

    fn all(db: &Db) -> Vec<Datom> {
        db.datoms(IndexKind::Eavt, &[])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn conflicts(base: &Db, ours: &Db, theirs: &Db) -> Vec<Conflict> {
        match merge(base, ours, theirs, MergeStrategy::Fail) {
            Err(Error::MergeConflicts { conflicts }) => conflicts,
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    #[test]
    fn disjoint_changes_merge_into_both() {
        let b = base();
        let ours = tx(&b, "[[:db/add 1 :a 10] [:db/add 1 :m 2]]");
        let theirs = tx(&b, "[[:db/retract 2 :a 2] [:db/add 4 :a 4]]");
        let m = merge(&b, &ours, &theirs, MergeStrategy::Fail).unwrap();
        let vals: Vec<(Eid, String, Value)> = all(&m.db)
            .into_iter()
            .map(|d| (d.e, d.a.to_string(), d.v))
            .collect();
        let expect = |e: Eid, a: &str, v: i64| (e, a.to_string(), Value::Long(v));
        assert_eq!(
            vals,
            [
                expect(1, ":a", 10),
                expect(1, ":m", 1),
                expect(1, ":m", 2),
                expect(3, ":a", 3),
                expect(3, ":u", 3),
                expect(4, ":a", 4),
            ]
        );
        assert!(m.resolved.is_empty());
        assert_eq!((m.applied.added.len(), m.applied.retracted.len()), (1, 1));
        assert_eq!(m.db.max_tx(), ours.max_tx().max(theirs.max_tx()));
    }

    #[test]
    fn both_setting_a_cardinality_one_attribute_is_a_conflict_naming_both_values() {
        let b = base();
        let ours = tx(&b, "[[:db/add 1 :a 10]]");
        let theirs = tx(&b, "[[:db/add 1 :a 20]]");
        let c = conflicts(&b, &ours, &theirs);
        assert_eq!(
            c,
            [Conflict::CardinalityOne {
                entity: 1,
                attribute: Keyword::new(":a"),
                ours: Value::Long(10),
                theirs: Value::Long(20),
            }]
        );
        assert_eq!((c[0].kind(), c[0].entity()), ("cardinality-one", 1));
        assert!(c[0].to_string().contains("10") && c[0].to_string().contains("20"));
        for (strategy, want) in [(MergeStrategy::Ours, 10), (MergeStrategy::Theirs, 20)] {
            let m = merge(&b, &ours, &theirs, strategy).unwrap();
            let a: Vec<Value> =
                m.db.entity_attr(1, &Keyword::new(":a"))
                    .unwrap()
                    .into_iter()
                    .map(|d| d.v)
                    .collect();
            assert_eq!(a, [Value::Long(want)], "{strategy:?}");
            assert_eq!(m.resolved.len(), 1);
        }
        // The same value on both sides is no conflict.
        let same = tx(&b, "[[:db/add 1 :a 10]]");
        assert!(merge(&b, &ours, &same, MergeStrategy::Fail).is_ok());
    }

    #[test]
    fn both_claiming_a_unique_value_is_a_conflict() {
        let b = base();
        let ours = tx(&b, "[[:db/add 1 :u 7]]");
        let theirs = tx(&b, "[[:db/add 2 :u 7]]");
        let c = conflicts(&b, &ours, &theirs);
        assert_eq!(
            c,
            [Conflict::Unique {
                attribute: Keyword::new(":u"),
                value: Value::Long(7),
                ours: 1,
                theirs: 2,
            }]
        );
        let pick = |c: &Conflict| {
            assert_eq!(c.kind(), "unique");
            Side::Theirs
        };
        let m = merge(&b, &ours, &theirs, MergeStrategy::With(&pick)).unwrap();
        assert_eq!(
            m.db.entity_by_value(&Keyword::new(":u"), &Value::Long(7))
                .unwrap(),
            Some(2)
        );
        assert!(m.db.entity_attr(1, &Keyword::new(":u")).unwrap().is_empty());
    }

    #[test]
    fn retracting_an_entity_the_other_side_changed_is_a_conflict() {
        let b = base();
        let ours = tx(&b, "[[:db/retractEntity 1]]");
        let theirs = tx(&b, "[[:db/add 1 :m 5] [:db/add 2 :r 1]]");
        let c = conflicts(&b, &ours, &theirs);
        assert_eq!(c.len(), 1, "{c:?}");
        match &c[0] {
            Conflict::RetractedEntity {
                entity,
                retracted_by,
                changes,
            } => {
                assert_eq!((*entity, *retracted_by), (1, Side::Ours));
                let mut got: Vec<(Eid, &str)> =
                    changes.iter().map(|d| (d.e, d.a.as_str())).collect();
                got.sort();
                assert_eq!(got, [(1, "m"), (2, "r")]);
            }
            other => panic!("{other:?}"),
        }
        // Ours: the entity stays retracted, the reference to it is not made.
        let m = merge(&b, &ours, &theirs, MergeStrategy::Ours).unwrap();
        assert!(m.db.entity_datoms(1).unwrap().is_empty());
        assert!(m.db.references_to(1).unwrap().is_empty());
        // Theirs: the entity as they have it.
        let m = merge(&b, &ours, &theirs, MergeStrategy::Theirs).unwrap();
        assert_eq!(all(&m.db).into_iter().filter(|d| d.e == 1).count(), 3);
        // The other way round it is the same conflict, retracted by theirs.
        let c = conflicts(&b, &theirs, &ours);
        assert!(matches!(
            c[..],
            [Conflict::RetractedEntity {
                retracted_by: Side::Theirs,
                ..
            }]
        ));
    }

    #[test]
    fn entities_both_sides_made_get_distinct_ids() {
        let b = base();
        let ours = tx(&b, "[{:db/id -1 :a 100}]");
        let theirs = tx(&b, "[{:db/id -1 :a 200} {:db/id -2 :a 201 :r -1}]");
        let m = merge(&b, &ours, &theirs, MergeStrategy::Fail).unwrap();
        assert_eq!(m.renumbered, 1);
        let a = Keyword::new(":a");
        let who = |v: i64| {
            let found: Vec<Eid> = all(&m.db)
                .into_iter()
                .filter(|d| d.a == a && d.v == Value::Long(v))
                .map(|d| d.e)
                .collect();
            assert_eq!(found.len(), 1, "{v}");
            found[0]
        };
        let (x, y, z) = (who(100), who(200), who(201));
        assert_eq!((x, y, z), (4, 5, 6));
        assert_eq!(
            m.db.entity_attr(z, &Keyword::new(":r")).unwrap()[0].v,
            Value::Ref(y)
        );
        assert_eq!(m.db.max_eid(), 6);
    }

    #[test]
    fn different_schemas_are_refused() {
        let b = base();
        let other = Db::new(Schema::new());
        assert_eq!(
            merge(&b, &b, &other, MergeStrategy::Fail).unwrap_err(),
            Error::MergeSchemaDiffers
        );
    }

    /// One random operation on an entity of a side: set `:a`, add or retract an `:m`
    /// value, or retract the entity.
    fn ops() -> impl proptest::strategy::Strategy<Value = Vec<(u64, u8, i64)>> {
        proptest::collection::vec((0u64..4, 0u8..4, 0i64..4), 0..8)
    }

    fn apply(db: &Db, entities: &[u64], ops: &[(u64, u8, i64)]) -> Db {
        let mut db = db.clone();
        for &(i, op, v) in ops {
            let e = entities[i as usize % entities.len()];
            let edn = match op {
                0 => format!("[[:db/add {e} :a {v}]]"),
                1 => format!("[[:db/add {e} :m {v}]]"),
                2 => format!("[[:db/retract {e} :m {v}]]"),
                _ => format!("[[:db/retractEntity {e}]]"),
            };
            db = tx(&db, &edn);
        }
        db
    }

    fn random_base(seed: &[(u64, i64)]) -> Db {
        let mut edn = String::from("[");
        for e in 1..=8u64 {
            edn.push_str(&format!("[:db/add {e} :a {e}]"));
        }
        for (e, v) in seed {
            edn.push_str(&format!("[:db/add {} :m {v}]", e % 8 + 1));
        }
        edn.push(']');
        let small = crate::tree::TreeConfig {
            leaf_target: 4,
            branch_target: 4,
        };
        tx(&Db::with_config(schema(), small), &edn)
    }

    /// `d` applied to `db` as raw edits: retractions, then assertions.
    fn apply_diff(db: &Db, d: &Diff) -> Db {
        let t = db.max_tx();
        let mut entries = vec![TxLogEntry {
            tx: t,
            datoms: d.retracted.clone(),
            id: None,
        }];
        entries.extend(d.added.iter().map(|x| TxLogEntry {
            tx: x.tx,
            datoms: vec![x.clone()],
            id: None,
        }));
        db.apply_log_entries(entries).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn merging_disjoint_changes_is_applying_both_in_either_order(
            seed in proptest::collection::vec((0u64..8, 0i64..4), 0..12),
            a in ops(),
            b in ops(),
        ) {
            let base = random_base(&seed);
            let ours = apply(&base, &[1, 2, 3, 4], &a);
            let theirs = apply(&base, &[5, 6, 7, 8], &b);
            let merged = merge(&base, &ours, &theirs, MergeStrategy::Fail).unwrap();
            let (da, db) = (diff(&base, &ours).unwrap(), diff(&base, &theirs).unwrap());
            let one = apply_diff(&apply_diff(&base, &da), &db);
            let two = apply_diff(&apply_diff(&base, &db), &da);
            prop_assert_eq!(all(&one), all(&merged.db));
            prop_assert_eq!(one.root_addresses(), merged.db.root_addresses());
            prop_assert_eq!(two.root_addresses(), merged.db.root_addresses());
        }

        #[test]
        fn merge_is_commutative_where_nothing_conflicts(
            seed in proptest::collection::vec((0u64..8, 0i64..4), 0..12),
            a in ops(),
            b in ops(),
        ) {
            let base = random_base(&seed);
            let ours = apply(&base, &[1, 2, 3], &a);
            let theirs = apply(&base, &[2, 3, 4], &b);
            let ab = merge(&base, &ours, &theirs, MergeStrategy::Fail);
            let ba = merge(&base, &theirs, &ours, MergeStrategy::Fail);
            match (ab, ba) {
                (Ok(x), Ok(y)) => {
                    prop_assert_eq!(all(&x.db), all(&y.db));
                    prop_assert_eq!(x.db.root_addresses(), y.db.root_addresses());
                }
                (Err(Error::MergeConflicts { conflicts: x }), Err(Error::MergeConflicts { conflicts: y })) => {
                    prop_assert_eq!(x.len(), y.len());
                }
                (x, y) => prop_assert!(false, "{:?} / {:?}", x.map(|m| m.applied), y.map(|m| m.applied)),
            }
        }

        #[test]
        fn a_resolved_merge_keeps_cardinality_one(
            a in ops(),
            b in ops(),
            theirs_wins in any::<bool>(),
        ) {
            let base = random_base(&[]);
            let ours = apply(&base, &[1, 2], &a);
            let theirs = apply(&base, &[1, 2], &b);
            let strategy = if theirs_wins { MergeStrategy::Theirs } else { MergeStrategy::Ours };
            let m = merge(&base, &ours, &theirs, strategy).unwrap();
            for e in 1..=2 {
                prop_assert!(m.db.entity_attr(e, &Keyword::new(":a")).unwrap().len() <= 1);
            }
        }
    }
}
