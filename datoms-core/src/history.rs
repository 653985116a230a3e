//! The history of a db: every assertion and retraction its transactions made, each with
//! its transaction and its `added` flag, as Datomic's history db.
//!
//! A db's trees hold only what is true now; the commits' tx logs hold every change. A
//! [`History`] is built from those logs (oldest transaction first) and indexed three ways
//! (EAVT, AEVT, AVET, each ordered by the index's key, then tx, then `added`, so an
//! assertion and a later retraction of one datom sit side by side in time order). It is
//! a persistent value ([`imbl::OrdSet`]s of shared datoms): [`History::with_entries`]
//! returns a new history sharing everything with the old one, so a history cached for a
//! commit is extended by the transactions of the commits after it, never rebuilt, and a
//! reader holding the older value is unaffected.
//!
//! Cost: each transaction's datoms are inserted into three ordered sets, O(log n) each; a
//! history holds about three pointers and a datom per change. A pattern seeks the index
//! its bound positions select ([`History::matching`]) and reads only the matching range.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdSet;

use crate::buffer::{IndexKeyed, Probe};
use crate::commit::TxLogEntry;
use crate::datom::{Component, Datom, IndexKind, Tx};
use crate::error::Error;
use crate::value::{Eid, Keyword, Value};

/// One change in one index: ordered by the index's key, then tx, then `added`
/// (a retraction before an assertion in the same transaction).
#[derive(Clone, Debug)]
struct Entry {
    kind: IndexKind,
    datom: Arc<Datom>,
}

impl IndexKeyed for Entry {
    fn index_key(&self) -> (IndexKind, &Datom) {
        (self.kind, &self.datom)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        self.kind
            .cmp(&self.datom, &other.datom)
            .then_with(|| self.datom.tx.cmp(&other.datom.tx))
            .then_with(|| self.datom.added.cmp(&other.datom.added))
    }
}

/// Every assertion and retraction of a db's transactions, indexed for queries (see the
/// module docs). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct History {
    eavt: OrdSet<Entry>,
    aevt: OrdSet<Entry>,
    avet: OrdSet<Entry>,
    last_tx: Option<Tx>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// This history with `entries` folded in: a new value sharing this one's sets. The
    /// indexes order changes by key and tx, so entries may come in any order (a merge
    /// commit's log holds the other side's transactions, older than the last one here),
    /// and folding an entry that is already in changes nothing.
    pub fn with_entries<E: Borrow<TxLogEntry>>(&self, entries: &[E]) -> History {
        let mut last = self.last_tx;
        for entry in entries {
            let tx = entry.borrow().tx;
            last = Some(last.map_or(tx, |l| l.max(tx)));
        }
        let mut next = self.clone();
        for entry in entries {
            let entry = entry.borrow();
            for d in &entry.datoms {
                let datom = Arc::new(d.clone());
                for kind in IndexKind::ALL {
                    next.index_mut(kind).insert(Entry {
                        kind,
                        datom: Arc::clone(&datom),
                    });
                }
            }
        }
        next.last_tx = last;
        next
    }

    fn index(&self, kind: IndexKind) -> &OrdSet<Entry> {
        match kind {
            IndexKind::Eavt => &self.eavt,
            IndexKind::Aevt => &self.aevt,
            IndexKind::Avet => &self.avet,
        }
    }

    fn index_mut(&mut self, kind: IndexKind) -> &mut OrdSet<Entry> {
        match kind {
            IndexKind::Eavt => &mut self.eavt,
            IndexKind::Aevt => &mut self.aevt,
            IndexKind::Avet => &mut self.avet,
        }
    }

    /// The changes whose key in `index` starts with `prefix` (components in the index's
    /// order, at most four: the fourth is a tx), in index order and, within one datom, in
    /// time order.
    ///
    /// # Errors
    /// [`Error::InvalidIndexComponents`] if the prefix does not fit the index.
    pub fn datoms<'a>(
        &'a self,
        index: IndexKind,
        prefix: &'a [Component],
    ) -> Result<impl Iterator<Item = &'a Datom> + 'a, Error> {
        index.check_prefix(prefix)?;
        let from = Probe {
            kind: index,
            prefix,
            after: false,
        };
        let to = Probe {
            kind: index,
            prefix,
            after: true,
        };
        Ok(self
            .index(index)
            .range::<_, Probe<'_>>((Bound::Included(&from), Bound::Included(&to)))
            .map(|e| &*e.datom))
    }

    /// The changes matching a pattern's bound positions (`None`: unbound), read from the
    /// index those positions select: EAVT when the entity is bound, AVET when the
    /// attribute and value are, AEVT when the attribute is, else every change.
    pub fn matching<'a>(
        &'a self,
        e: Option<Eid>,
        a: Option<&'a Keyword>,
        v: Option<&'a Value>,
        tx: Option<Tx>,
    ) -> impl Iterator<Item = &'a Datom> + 'a {
        let (kind, prefix) = match (e, a, v) {
            (Some(e), Some(a), Some(v)) => (
                IndexKind::Eavt,
                vec![
                    Component::E(e),
                    Component::A(a.clone()),
                    Component::V(v.clone()),
                ],
            ),
            (Some(e), Some(a), None) => (
                IndexKind::Eavt,
                vec![Component::E(e), Component::A(a.clone())],
            ),
            (Some(e), None, _) => (IndexKind::Eavt, vec![Component::E(e)]),
            (None, Some(a), Some(v)) => (
                IndexKind::Avet,
                vec![Component::A(a.clone()), Component::V(v.clone())],
            ),
            (None, Some(a), None) => (IndexKind::Aevt, vec![Component::A(a.clone())]),
            (None, None, _) => (IndexKind::Eavt, Vec::new()),
        };
        let from = Probe {
            kind,
            prefix: &prefix,
            after: false,
        };
        let to = Probe {
            kind,
            prefix: &prefix,
            after: true,
        };
        let found: Vec<&'a Datom> = self
            .index(kind)
            .range::<_, Probe<'_>>((Bound::Included(&from), Bound::Included(&to)))
            .map(|entry| &*entry.datom)
            .filter(|d| v.is_none_or(|v| d.v == *v) && tx.is_none_or(|t| d.tx == t))
            .collect();
        found.into_iter()
    }

    /// The number of changes (assertions and retractions).
    pub fn len(&self) -> usize {
        self.eavt.len()
    }

    /// True when no transaction changed anything.
    pub fn is_empty(&self) -> bool {
        self.eavt.is_empty()
    }

    /// The newest transaction folded in, if any.
    pub fn last_tx(&self) -> Option<Tx> {
        self.last_tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::schema::{AttributeSchema, Schema};

    fn kw(s: &str) -> Keyword {
        Keyword::new(s)
    }

    /// A db's pending log after `txs` (EDN tx data) on an empty db with `schema`.
    fn log_of(schema: Schema, txs: &[&str]) -> Vec<Arc<TxLogEntry>> {
        let mut db = Db::new(schema);
        for tx in txs {
            db = db.with_edn(tx).expect("transaction").db_after;
        }
        db.pending_log()
    }

    #[test]
    fn holds_every_assertion_and_retraction_in_time_order() {
        let log = log_of(
            Schema::new()
                .with(":name", AttributeSchema::default().identity())
                .expect("schema"),
            &[
                r#"[{:db/id -1 :name "Ivan" :age 20}]"#,
                r#"[{:name "Ivan" :age 21}]"#,
                r#"[{:name "Ivan" :age 22}]"#,
            ],
        );
        let h = History::new().with_entries(&log);
        assert_eq!(h.last_tx(), Some(log[2].tx));
        let ages: Vec<(Value, bool)> = h
            .matching(None, Some(&kw("age")), None, None)
            .map(|d| (d.v.clone(), d.added))
            .collect();
        // The current db knows only 22; the history knows all three, each retraction
        // beside the assertion it ends, in index order (by value here).
        assert_eq!(
            ages,
            vec![
                (Value::Long(20), true),
                (Value::Long(20), false),
                (Value::Long(21), true),
                (Value::Long(21), false),
                (Value::Long(22), true),
            ]
        );
    }

    #[test]
    fn extends_without_touching_the_older_value() {
        let log = log_of(Schema::new(), &["[[:db/add 1 :x 1]]", "[[:db/add 1 :x 2]]"]);
        let first = History::new().with_entries(&log[..1]);
        let both = first.with_entries(&log[1..]);
        assert_eq!(first.len(), 1);
        // The second transaction asserts 2 and retracts 1 (cardinality one).
        assert_eq!(both.len(), 3);
        assert_eq!(both.last_tx(), Some(log[1].tx));
        // Folded again, in any order, the same entries change nothing.
        let again = both.with_entries(&[log[1].clone(), log[0].clone()]);
        assert_eq!(again.len(), 3);
        assert_eq!(again.last_tx(), both.last_tx());
    }

    #[test]
    fn each_index_finds_the_same_changes_as_a_scan() {
        let log = log_of(
            Schema::new()
                .with(":tag", AttributeSchema::default().many())
                .expect("schema"),
            &[
                "[[:db/add 1 :tag :a] [:db/add 1 :tag :b] [:db/add 2 :tag :a]]",
                "[[:db/retract 1 :tag :a] [:db/add 2 :x 5]]",
                "[[:db/retractEntity 2]]",
            ],
        );
        let h = History::new().with_entries(&log);
        let all: Vec<Datom> = log.iter().flat_map(|e| e.datoms.clone()).collect();
        let a = kw("tag");
        let va = Value::Keyword(kw("a"));
        for (e, attr, v) in [
            (Some(1), Some(&a), None),
            (Some(2), None, None),
            (None, Some(&a), Some(&va)),
            (None, Some(&a), None),
            (Some(1), Some(&a), Some(&va)),
            (None, None, None),
        ] {
            let mut got: Vec<Datom> = h.matching(e, attr, v, None).cloned().collect();
            let mut want: Vec<Datom> = all
                .iter()
                .filter(|d| {
                    e.is_none_or(|e| d.e == e)
                        && attr.is_none_or(|a| d.a == *a)
                        && v.is_none_or(|v| d.v == *v)
                })
                .cloned()
                .collect();
            got.sort_by(|x, y| IndexKind::Eavt.cmp(x, y).then(x.tx.cmp(&y.tx)));
            want.sort_by(|x, y| IndexKind::Eavt.cmp(x, y).then(x.tx.cmp(&y.tx)));
            assert_eq!(got, want, "pattern {e:?} {attr:?} {v:?}");
        }
    }

    /// The history's changes as the tuples a query reads them as: `[e a v tx added]`.
    fn tuples(h: &History) -> Vec<Vec<crate::QueryValue>> {
        use crate::QueryValue;
        h.matching(None, None, None, None)
            .map(|d| {
                vec![
                    QueryValue::entity(d.e),
                    QueryValue::Value(Value::Keyword(d.a.clone())),
                    QueryValue::from_value(d.v.clone()),
                    QueryValue::entity(d.tx),
                    QueryValue::bool(d.added),
                ]
            })
            .collect()
    }

    #[test]
    fn queries_read_a_history_as_they_read_its_tuples() {
        use crate::{q, Input};
        let schema = Schema::new()
            .with(":name", AttributeSchema::default().identity())
            .expect("schema")
            .with(
                ":friend",
                AttributeSchema::default().value_type(crate::ValueType::Ref),
            )
            .expect("schema");
        let mut db = Db::new(schema);
        for tx in [
            r#"[{:db/id -1 :name "Ivan" :age 20} {:db/id -2 :name "Oleg" :age 30 :friend -1}]"#,
            r#"[{:name "Ivan" :age 21} [:db/retract [:name "Oleg"] :friend 1]]"#,
            r#"[{:name "Ivan" :age 22} {:name "Oleg" :friend 1}]"#,
            r#"[[:db/retractEntity [:name "Oleg"]]]"#,
        ] {
            db = db.with_edn(tx).expect("transaction").db_after;
        }
        let h = History::new().with_entries(&db.pending_log());
        let as_tuples = tuples(&h);
        for query in [
            "[:find ?v ?tx ?added :where [?e :age ?v ?tx ?added]]",
            "[:find ?e ?v :where [?e :age ?v _ false]]",
            "[:find ?a (count ?v) :where [1 ?a ?v]]",
            "[:find ?e ?f ?added :where [?e :friend ?f _ ?added]]",
            "[:find ?n ?old :where [?e :name ?n] [?e :age ?old ?tx false]]",
            "[:find ?e :where [?e :friend 1 _ true]]",
            "[:find ?tx :where [_ _ _ ?tx false]]",
        ] {
            let got = q(query, &[Input::History(&h)]).expect(query);
            let want = q(query, &[Input::Relation(as_tuples.clone())]).expect(query);
            assert_eq!(got, want, "{query}");
            assert!(!got.is_empty(), "{query} found nothing");
        }
        // The current db has forgotten Ivan's first ages and Oleg; the history has not.
        let old = q(
            "[:find ?v :where [?e :name \"Ivan\"] [?e :age ?v _ false]]",
            &[Input::History(&h)],
        )
        .expect("query");
        assert_eq!(old.len(), 2, "{old:?}");
        // A db and its history side by side.
        let both = q(
            "[:find ?n ?old :in $ $h :where [$h ?e :age ?old _ false] [$ ?e :name ?n]]",
            &[Input::Db(&db), Input::History(&h)],
        )
        .expect("query");
        assert_eq!(both.len(), 2, "{both:?}");
        // Pull reads a db, never a history: a typed error.
        let err = q(
            "[:find (pull ?e [*]) :where [?e :age 20]]",
            &[Input::History(&h)],
        )
        .expect_err("pull on a history");
        assert!(err.to_string().contains("pull needs"), "{err}");
    }
}
