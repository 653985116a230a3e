#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A db whose transactions buffer their edits (merged into the trees when observed or when
//! the buffer outgrows its limit) is the db that merges every transaction at once: same
//! transaction results, same reads of every kind, same roots, counts and diffs, across
//! any choice of flush points. Only the public API is used.

use datoms_core::tree::Tree;
use datoms_core::tx::{EntityMap, EntityRef, TxOp, TxValue};
use datoms_core::{
    diff, q, AttributeSchema, Component, Datom, Db, Error, IndexKind, Input, Keyword, QueryValue,
    Schema, TreeConfig, Value, ValueType,
};
use proptest::prelude::*;

fn schema() -> Schema {
    let a = AttributeSchema::default;
    Schema::new()
        .with(":p/name", a().value_type(ValueType::String).identity())
        .unwrap()
        .with(":p/email", a().value_type(ValueType::String).unique_value())
        .unwrap()
        .with(":p/age", a().value_type(ValueType::Long).indexed())
        .unwrap()
        .with(":p/score", a().value_type(ValueType::Long))
        .unwrap()
        .with(":p/tag", a().value_type(ValueType::String).many())
        .unwrap()
        .with(":p/friend", a().value_type(ValueType::Ref).many())
        .unwrap()
}

/// One operation of a small UI-like transaction.
#[derive(Clone, Debug)]
enum Op {
    /// Upsert a person by name with an email, age and score.
    Upsert(u8, u8, i64, i64),
    Tag(u8, u8),
    Untag(u8, u8),
    Friend(u8, u8),
    /// Compare-and-swap the score of a person.
    Cas(u8, i64, i64),
    RetractScore(u8),
    RetractEntity(u8),
}

fn name(i: u8) -> Value {
    Value::from(format!("n{i}"))
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0u8..12;
    prop_oneof![
        4 => (p.clone(), 0u8..8, 0i64..6, 0i64..4).prop_map(|(a, b, c, d)| Op::Upsert(a, b, c, d)),
        2 => (p.clone(), 0u8..4).prop_map(|(a, b)| Op::Tag(a, b)),
        1 => (p.clone(), 0u8..4).prop_map(|(a, b)| Op::Untag(a, b)),
        2 => (p.clone(), p.clone()).prop_map(|(a, b)| Op::Friend(a, b)),
        2 => (p.clone(), 0i64..4, 0i64..4).prop_map(|(a, b, c)| Op::Cas(a, b, c)),
        1 => p.clone().prop_map(Op::RetractScore),
        1 => p.prop_map(Op::RetractEntity),
    ]
}

fn lookup(i: u8) -> EntityRef {
    EntityRef::Lookup(Keyword::from(":p/name"), name(i))
}

fn tx_ops(op: &Op) -> Vec<TxOp> {
    let v = |x: Value| TxValue::Value(x);
    match op {
        Op::Upsert(p, mail, age, score) => vec![TxOp::Map(
            EntityMap::new()
                .set(":p/name", v(name(*p)))
                .set(":p/email", v(Value::from(format!("m{mail}"))))
                .set(":p/age", v(Value::Long(*age)))
                .set(":p/score", v(Value::Long(*score))),
        )],
        Op::Tag(p, t) => vec![TxOp::Add(
            lookup(*p),
            ":p/tag".into(),
            v(Value::from(format!("t{t}"))),
        )],
        Op::Untag(p, t) => vec![TxOp::Retract(
            lookup(*p),
            ":p/tag".into(),
            v(Value::from(format!("t{t}"))),
        )],
        Op::Friend(p, f) => vec![TxOp::Add(
            lookup(*p),
            ":p/friend".into(),
            TxValue::Lookup(":p/name".into(), name(*f)),
        )],
        Op::Cas(p, old, new) => vec![TxOp::Cas(
            lookup(*p),
            ":p/score".into(),
            Some(v(Value::Long(*old))),
            v(Value::Long(*new)),
        )],
        Op::RetractScore(p) => vec![TxOp::retract_attr(lookup(*p), ":p/score")],
        Op::RetractEntity(p) => vec![TxOp::retract_entity(lookup(*p))],
    }
}

fn all(it: Result<impl Iterator<Item = Result<Datom, Error>>, Error>) -> Vec<Datom> {
    it.unwrap().collect::<Result<_, _>>().unwrap()
}

/// Every kind of read, as text, so two dbs can be compared in one assertion.
fn reads(db: &Db, probe: u8) -> Vec<String> {
    let mut out = Vec::new();
    let e = u64::from(probe % 14);
    let n = name(probe % 12);
    for kind in IndexKind::ALL {
        out.push(format!("{:?}", all(db.datoms(kind, &[]))));
    }
    let eavt = [Component::E(e)];
    let aevt = [Component::A(":p/tag".into()), Component::E(e)];
    let avet = [
        Component::A(":p/age".into()),
        Component::V(Value::Long(i64::from(probe % 6))),
    ];
    for (kind, c) in [
        (IndexKind::Eavt, &eavt[..]),
        (IndexKind::Aevt, &aevt[..]),
        (IndexKind::Avet, &avet[..]),
    ] {
        out.push(format!("{:?}", all(db.datoms(kind, c))));
        out.push(format!("{:?}", all(db.seek_datoms(kind, c))));
        out.push(format!("{:?}", all(db.rseek_datoms(kind, c))));
        out.push(format!("{:?}", all(db.datoms(kind, &c[..1]))));
    }
    let from = Value::Long(1);
    let to = Value::Long(i64::from(probe % 6));
    out.push(format!(
        "{:?}",
        all(db.index_range(&":p/age".into(), Some(&from), Some(&to)))
    ));
    out.push(format!("{:?}", db.lookup_ref(&":p/name".into(), &n)));
    out.push(format!(
        "{:?}",
        db.lookup_ref(&":p/email".into(), &Value::from(format!("m{}", probe % 8)))
    ));
    out.push(format!("{:?}", db.entity_datoms(e)));
    out.push(format!("{:?}", db.references_to(e)));
    let rows = q(
        "[:find ?n ?fn :where [?e :p/name ?n] [?e :p/friend ?f] [?f :p/name ?fn]]",
        &[Input::Db(db)],
    )
    .unwrap();
    out.push(format!("{:?}", rows.rows()));
    let rows = q(
        "[:find ?n :in $ ?a :where [?e :p/age ?a] [?e :p/name ?n]]",
        &[
            Input::Db(db),
            Input::Scalar(QueryValue::from(Value::Long(i64::from(probe % 6)))),
        ],
    )
    .unwrap();
    out.push(format!("{:?}", rows.rows()));
    out.push(format!(
        "{:?}",
        db.pull("[* {:p/friend [:p/name]} {:p/_friend [:p/name]}]", e)
    ));
    out.push(format!("{:?}", db.entity(e).touch()));
    out.push(format!("{} {} {}", db.len(), db.max_eid(), db.max_tx()));
    out
}

fn roots_of_bulk_build(db: &Db) -> Vec<datoms_core::Address> {
    let datoms = all(db.datoms(IndexKind::Eavt, &[]));
    IndexKind::ALL
        .into_iter()
        .map(|kind| {
            let ds = datoms
                .iter()
                .filter(|d| kind != IndexKind::Avet || db.schema().in_avet(&d.a))
                .cloned()
                .collect();
            Tree::build(kind, db.config(), ds).root_address()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_buffered_db_is_the_db_merged_at_once(
        txs in proptest::collection::vec((proptest::collection::vec(op(), 1..4), any::<bool>(), any::<u8>()), 1..40),
        limit in prop_oneof![Just(1usize), Just(3), Just(17), Just(8192)],
    ) {
        let config = TreeConfig { leaf_target: 4, branch_target: 4 };
        let mut eager = Db::with_config(schema(), config).with_edit_buffer(0);
        let mut buffered = Db::with_config(schema(), config).with_edit_buffer(limit);
        let mut earlier = (eager.clone(), buffered.clone());
        for (ops, observe, probe) in &txs {
            let ops: Vec<TxOp> = ops.iter().flat_map(tx_ops).collect();
            match (eager.with(&ops), buffered.with(&ops)) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(&a.tx_data, &b.tx_data);
                    prop_assert_eq!(&a.tempids, &b.tempids);
                    eager = a.db_after;
                    buffered = b.db_after;
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map(|r| r.tx_data), b.map(|r| r.tx_data)),
            }
            prop_assert_eq!(eager.pending_edits(), 0);
            prop_assert_eq!(reads(&buffered, *probe), reads(&eager, *probe));
            if *observe {
                // A flush point: the trees are merged, and the next transaction starts
                // from them.
                prop_assert_eq!(buffered.root_addresses(), eager.root_addresses());
                prop_assert_eq!(buffered.pending_edits(), 0);
                let (d1, d2) = (diff(&earlier.0, &eager).unwrap(), diff(&earlier.1, &buffered).unwrap());
                prop_assert_eq!(format!("{d1:?}"), format!("{d2:?}"));
                earlier = (eager.clone(), buffered.clone());
            }
        }
        prop_assert_eq!(buffered.root_addresses().to_vec(), roots_of_bulk_build(&buffered));
        prop_assert_eq!(buffered.root_addresses(), eager.root_addresses());
        prop_assert_eq!(buffered.len(), eager.len());
        // Replaying the log merges the same trees.
        let mut replayed = Db::with_config(schema(), config).with_edit_buffer(limit);
        for entry in buffered.pending_log() {
            replayed = replayed.apply_log_entry((*entry).clone()).unwrap();
        }
        prop_assert_eq!(replayed.root_addresses(), eager.root_addresses());
    }
}

#[test]
fn transactions_buffer_until_observed_then_start_from_the_merged_trees() {
    let mut db = Db::new(schema());
    for i in 0..50u8 {
        db = db.with(&tx_ops(&Op::Upsert(i, i, 1, 2))).unwrap().db_after;
    }
    // 50 people × 4 datoms in EAVT and AEVT, name/email/age in AVET.
    assert_eq!(db.pending_edits(), 50 * (4 + 4 + 3));
    assert_eq!(db.len(), 200);
    let roots = db.root_addresses();
    assert_eq!(db.pending_edits(), 0);
    let next = db.with(&tx_ops(&Op::Tag(3, 1))).unwrap().db_after;
    assert_eq!(next.pending_edits(), 2);
    assert_eq!(db.root_addresses(), roots);
    // A limit below the buffer merges at once.
    let merged = next
        .with_edit_buffer(0)
        .with(&tx_ops(&Op::Tag(4, 1)))
        .unwrap()
        .db_after;
    assert_eq!(merged.pending_edits(), 0);
    assert_eq!(merged.len(), 202);
}
