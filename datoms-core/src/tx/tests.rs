//! Transaction semantics, table-driven in the style of Datascript's test_transact,
//! test_upsert and test_components.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;
use crate::commit::TxLogEntry;
use crate::datom::{IndexKind, EMAX, TX0};
use crate::schema::{AttributeSchema, Schema};
use crate::tree::{Tree, TreeConfig};
use crate::value::{Keyword, Value, ValueType};
use crate::{tx_data, tx_entity};

fn schema() -> Schema {
    let a = AttributeSchema::default;
    let specs = [
        (":person/name", a().value_type(ValueType::String).identity()),
        (":person/ssn", a().value_type(ValueType::String).identity()),
        (
            ":person/email",
            a().value_type(ValueType::String).unique_value(),
        ),
        (
            ":person/slugs",
            a().value_type(ValueType::String).identity().many(),
        ),
        (":person/age", a().value_type(ValueType::Long)),
        (":person/aliases", a().value_type(ValueType::String).many()),
        (":person/friend", a().value_type(ValueType::Ref).many()),
        (":person/spouse", a().value_type(ValueType::Ref)),
        (":person/address", a().component()),
        (":person/children", a().component().many()),
        (":person/created-in", a().value_type(ValueType::Ref)),
        (":address/city", a().value_type(ValueType::String)),
        (":tx/note", a().value_type(ValueType::String)),
    ];
    specs
        .into_iter()
        .fold(Schema::new(), |s, (k, spec)| s.with(k, spec).unwrap())
}

/// Alice (1) and Bob (2), in transaction TX0 + 1.
const PEOPLE: &str = r#"[{:db/id 1 :person/name "Alice" :person/ssn "111"
                          :person/email "alice@x" :person/age 30 :person/aliases ["Al" "Ally"]}
                         {:db/id 2 :person/name "Bob" :person/ssn "222" :person/email "bob@x"}]"#;

fn empty() -> Db {
    Db::new(schema())
}

fn people() -> Db {
    edn(&empty(), PEOPLE).db_after
}

fn edn(db: &Db, text: &str) -> TxReport {
    db.with_edn(text)
        .unwrap_or_else(|e| panic!("transacting {text}: {e}"))
}

type Fact = (Eid, String, Value, bool);

fn add(e: Eid, a: &str, v: impl Into<Value>) -> Fact {
    (e, Keyword::new(a).as_str().to_owned(), v.into(), true)
}

fn ret(e: Eid, a: &str, v: impl Into<Value>) -> Fact {
    (e, Keyword::new(a).as_str().to_owned(), v.into(), false)
}

fn data(r: &TxReport) -> Vec<Fact> {
    r.tx_data
        .iter()
        .map(|d| {
            assert_eq!(d.tx, r.tx, "every datom carries the transaction id");
            (d.e, d.a.as_str().to_owned(), d.v.clone(), d.added)
        })
        .collect()
}

/// Every current datom, in EAVT order.
fn facts(db: &Db) -> Vec<(Eid, String, Value)> {
    db.datoms(IndexKind::Eavt, &[])
        .unwrap()
        .map(|d| {
            let d = d.unwrap();
            (d.e, d.a.as_str().to_owned(), d.v)
        })
        .collect()
}

/// Runs tx data that must fail, checks the db it ran against is unchanged, and returns
/// the error.
fn fails(db: &Db, text: &str) -> Error {
    let (roots, before) = (db.root_addresses(), facts(db));
    let (max_eid, max_tx) = (db.max_eid(), db.max_tx());
    let err = match db.with_edn(text) {
        Ok(r) => panic!("{text} should fail, got {:?}", data(&r)),
        Err(e) => e,
    };
    assert_eq!(db.root_addresses(), roots);
    assert_eq!(facts(db), before);
    assert_eq!((db.max_eid(), db.max_tx()), (max_eid, max_tx));
    err
}

fn kw(k: &str) -> Keyword {
    Keyword::new(k)
}

// ---- tx forms ------------------------------------------------------------------------

#[test]
fn every_list_form_produces_its_datoms() {
    let cases: &[(&str, &str, Vec<Fact>)] = &[
        (
            "add",
            r#"[[:db/add 2 :person/age 40]]"#,
            vec![add(2, ":person/age", 40i64)],
        ),
        (
            "add with a tempid",
            r#"[[:db/add "c" :person/name "Carol"]]"#,
            vec![add(3, ":person/name", "Carol")],
        ),
        (
            "retract a value",
            r#"[[:db/retract 1 :person/aliases "Al"]]"#,
            vec![ret(1, ":person/aliases", "Al")],
        ),
        (
            "retract every value of an attribute",
            r#"[[:db/retract 1 :person/aliases]]"#,
            vec![
                ret(1, ":person/aliases", "Al"),
                ret(1, ":person/aliases", "Ally"),
            ],
        ),
        (
            "retractAttribute",
            r#"[[:db.fn/retractAttribute 1 :person/age]]"#,
            vec![ret(1, ":person/age", 30i64)],
        ),
        (
            "retractEntity",
            r#"[[:db/retractEntity 2]]"#,
            vec![
                ret(2, ":person/email", "bob@x"),
                ret(2, ":person/name", "Bob"),
                ret(2, ":person/ssn", "222"),
            ],
        ),
        (
            "retractEntity through a lookup ref",
            r#"[[:db.fn/retractEntity [:person/email "bob@x"]]]"#,
            vec![
                ret(2, ":person/email", "bob@x"),
                ret(2, ":person/name", "Bob"),
                ret(2, ":person/ssn", "222"),
            ],
        ),
        (
            "cas",
            r#"[[:db/cas 1 :person/age 30 31]]"#,
            vec![ret(1, ":person/age", 30i64), add(1, ":person/age", 31i64)],
        ),
        (
            "cas with nil expects no value",
            r#"[[:db.fn/cas 2 :person/age nil 40]]"#,
            vec![add(2, ":person/age", 40i64)],
        ),
        (
            "cas on a cardinality-many attribute checks membership and adds",
            r#"[[:db/cas 1 :person/aliases "Al" "Big Al"]]"#,
            vec![add(1, ":person/aliases", "Big Al")],
        ),
        (
            "entity map with an explicit id",
            r#"[{:db/id 2 :person/age 41 :person/aliases ["B" "Bobby"]}]"#,
            vec![
                add(2, ":person/age", 41i64),
                add(2, ":person/aliases", "B"),
                add(2, ":person/aliases", "Bobby"),
            ],
        ),
        (
            "entity map with a lookup ref id",
            r#"[{:db/id [:person/email "bob@x"] :person/age 41}]"#,
            vec![add(2, ":person/age", 41i64)],
        ),
        (
            "list as tx data, sets as many values",
            r#"({:person/name "Dan" :person/aliases #{"D"}})"#,
            vec![
                add(3, ":person/name", "Dan"),
                add(3, ":person/aliases", "D"),
            ],
        ),
    ];
    let db = people();
    for (name, text, expected) in cases {
        let r = db.with_edn(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&data(&r), expected, "{name}");
        assert_eq!(r.tx, TX0 + 2, "{name}");
        assert_eq!(r.db_before.root_addresses(), db.root_addresses(), "{name}");
    }
}

#[test]
fn the_builder_writes_the_same_ops_as_edn() {
    let schema = schema();
    let from_edn = parse_tx(
        r#"[{:db/id -1 :person/name "Alice" :person/friend -2 :person/aliases ["A" "Al"]}
            {:db/id "bob" :person/name "Bob" :person/address {:address/city "Paris"}}
            {:person/name "Eve" :person/_friend [:person/name "Bob"]}
            [:db/add "c" :person/name "Carol"]
            [:db/add :db/current-tx :tx/note "import"]
            [:db/retract 1 :person/age 30]
            [:db/retract 1 :person/age]
            [:db/retractEntity [:person/name "Bob"]]
            [:db/cas 1 :person/age 30 31]
            [:db/cas 1 :person/spouse nil [:person/name "Bob"]]]"#,
        &schema,
    )
    .unwrap();
    let built = TxBuilder::new()
        .entity(-1, |m| {
            m.set(":person/name", "Alice")
                .set(":person/friend", -2)
                .set(":person/aliases", ["A", "Al"])
        })
        .entity("bob", |m| {
            m.set(":person/name", "Bob")
                .set(":person/address", tx_entity! { ":address/city" => "Paris" })
        })
        .new_entity(|m| {
            m.set(":person/name", "Eve")
                .set(":person/_friend", lookup(":person/name", "Bob"))
        })
        .add("c", ":person/name", "Carol")
        .add(current_tx(), ":tx/note", "import")
        .retract(1, ":person/age", 30)
        .retract_attr(1, ":person/age")
        .retract_entity(lookup(":person/name", "Bob"))
        .cas(1, ":person/age", Some(30), 31)
        .cas(
            1,
            ":person/spouse",
            None::<TxValue>,
            lookup(":person/name", "Bob"),
        )
        .build();
    assert_eq!(from_edn, built);
    let with_macros = tx_data![
        tx_entity! {
            ":db/id" => -1,
            ":person/name" => "Alice",
            ":person/friend" => -2,
            ":person/aliases" => vec!["A", "Al"],
        },
        TxOp::add("c", ":person/name", "Carol"),
    ];
    assert_eq!(with_macros[0], from_edn[0]);
    assert_eq!(with_macros[1], from_edn[3]);
}

#[test]
fn entity_maps_resolve_tempids_across_the_transaction() {
    let r = edn(
        &empty(),
        r#"[{:db/id -1 :person/name "Alice" :person/friend -2}
            {:db/id -2 :person/name "Bob"}
            [:db/add "c" :person/name "Carol"]
            [:db/add "c" :person/friend -1]]"#,
    );
    assert_eq!(
        data(&r),
        vec![
            add(1, ":person/name", "Alice"),
            add(1, ":person/friend", Value::Ref(2)),
            add(2, ":person/name", "Bob"),
            add(3, ":person/name", "Carol"),
            add(3, ":person/friend", Value::Ref(1)),
        ]
    );
    let expected: BTreeMap<String, Eid> = [("-1", 1), ("-2", 2), ("c", 3), (CURRENT_TX, TX0 + 1)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(r.tempids, expected);
    assert_eq!(r.tempid("c"), Some(3));
    assert_eq!(r.db_after.max_eid(), 3);
}

#[test]
fn tempids_are_allocated_in_datascripts_order() {
    // A tempid in value position gets its id before the entity of its :db/add (answers
    // from Datascript 1.8.1).
    let r = edn(
        &people(),
        r#"[[:db/add "b" :person/friend "c"]
            {:db/id "a" :person/name "A"}
            [:db/add "c" :person/name "C"]
            [:db/add "b" :person/name "B"]
            {:person/name "no id"}]"#,
    );
    assert_eq!((r.tempids["b"], r.tempids["c"], r.tempids["a"]), (4, 3, 5));
    assert_eq!(
        data(&r),
        vec![
            add(4, ":person/friend", Value::Ref(3)),
            add(5, ":person/name", "A"),
            add(3, ":person/name", "C"),
            add(4, ":person/name", "B"),
            add(6, ":person/name", "no id"),
        ]
    );
    // Fresh ids stay above the ids a transaction names explicitly.
    let r = edn(
        &people(),
        r#"[{:db/id 100 :person/age 1} [:db/add "x" :person/age 2]]"#,
    );
    assert_eq!(r.tempids["x"], 101);
}

#[test]
fn redundant_assertions_produce_no_datoms() {
    let db = people();
    let r = edn(
        &db,
        r#"[[:db/add 1 :person/age 30]
            [:db/add 1 :person/aliases "Al"]
            [:db/add 2 :person/aliases "B"]
            [:db/add 2 :person/aliases "B"]
            {:db/id 2 :person/name "Bob" :person/aliases ["B"]}]"#,
    );
    assert_eq!(data(&r), vec![add(2, ":person/aliases", "B")]);
    let r = edn(&db, PEOPLE);
    assert_eq!(data(&r), vec![]);
    assert_eq!(r.db_after.root_addresses(), db.root_addresses());
    assert_eq!(
        r.db_after.max_tx(),
        db.max_tx() + 1,
        "an empty tx is still a tx"
    );
}

#[test]
fn retracting_an_absent_datom_is_a_no_op() {
    let db = people();
    let r = edn(
        &db,
        r#"[[:db/retract 1 :person/age 99]
            [:db/retract 2 :person/age 30]
            [:db/retract 2 :person/aliases]
            [:db/retract 1 :person/friend 2]
            [:db/retractEntity 77]
            [:db/retractEntity [:person/name "Nobody"]]
            [:db/retract [:person/name "Nobody"] :person/age 1]]"#,
    );
    assert_eq!(data(&r), vec![]);
    assert_eq!(facts(&r.db_after), facts(&db));
}

#[test]
fn cardinality_one_replacement_retracts_then_asserts() {
    let r = edn(&people(), r#"[[:db/add 1 :person/age 31]]"#);
    assert_eq!(
        data(&r),
        vec![ret(1, ":person/age", 30i64), add(1, ":person/age", 31i64)]
    );
    let r = edn(
        &people(),
        r#"[[:db/add 1 :person/age 31] [:db/add 1 :person/age 32]]"#,
    );
    assert_eq!(
        data(&r),
        vec![
            ret(1, ":person/age", 30i64),
            add(1, ":person/age", 31i64),
            ret(1, ":person/age", 31i64),
            add(1, ":person/age", 32i64),
        ]
    );
    let ages = r.db_after.entity_attr(1, &kw(":person/age")).unwrap();
    assert_eq!(ages.len(), 1);
    assert_eq!(ages[0].v, Value::Long(32));
}

#[test]
fn cardinality_many_values_assert_each_element() {
    let r = edn(
        &people(),
        r#"[{:db/id 2 :person/aliases ["B" "Bobby" "B"] :person/friend [1 [:person/name "Alice"]]}]"#,
    );
    assert_eq!(
        data(&r),
        vec![
            add(2, ":person/aliases", "B"),
            add(2, ":person/aliases", "Bobby"),
            add(2, ":person/friend", Value::Ref(1)),
        ]
    );
}

#[test]
fn tx_data_is_the_log_entry_and_replaying_it_reproduces_db_after() {
    let r = edn(
        &people(),
        r#"[{:db/id "c" :person/name "Carol" :person/friend [1 2]}
            [:db/add 1 :person/age 31]
            [:db/retractEntity 2]]"#,
    );
    let entry = r.db_after.pending_log().last().unwrap().clone();
    assert_eq!(entry.tx, r.tx);
    assert_eq!(entry.datoms, r.tx_data);
    let replayed = r
        .db_before
        .apply_log_entry(TxLogEntry {
            tx: r.tx,
            datoms: r.tx_data.clone(),
            id: None,
        })
        .unwrap();
    assert_eq!(replayed.root_addresses(), r.db_after.root_addresses());
}

// ---- upserts -------------------------------------------------------------------------

#[test]
fn upsert_resolves_tempid_to_existing_entity() {
    let cases: &[(&str, &str, Option<&str>, Vec<Fact>)] = &[
        (
            "map with a tempid",
            r#"[{:db/id "a" :person/name "Alice" :person/age 31}]"#,
            Some("a"),
            vec![ret(1, ":person/age", 30i64), add(1, ":person/age", 31i64)],
        ),
        (
            "map without :db/id",
            r#"[{:person/ssn "222" :person/age 50}]"#,
            None,
            vec![add(2, ":person/age", 50i64)],
        ),
        (
            ":db/add with a tempid",
            r#"[[:db/add -5 :person/email "x@y"] [:db/add -5 :person/name "Bob"]]"#,
            Some("-5"),
            vec![
                ret(2, ":person/email", "bob@x"),
                add(2, ":person/email", "x@y"),
            ],
        ),
        (
            "two identity attributes agreeing",
            r#"[{:db/id "a" :person/name "Alice" :person/ssn "111" :person/age 30}]"#,
            Some("a"),
            vec![],
        ),
    ];
    let db = people();
    for (name, text, tempid, expected) in cases {
        let r = db.with_edn(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&data(&r), expected, "{name}");
        if let Some(t) = tempid {
            assert!(matches!(r.tempids[*t], 1 | 2), "{name}");
        }
        assert_eq!(r.db_after.max_eid(), 2, "{name}: no new entity");
    }
}

#[test]
fn upserts_follow_datascripts_test_upsert() {
    let db = people();
    // (name, tx, expected tempids without :db/current-tx, expected facts of the entity)
    type Case = (
        &'static str,
        &'static str,
        Vec<(&'static str, Eid)>,
        Eid,
        Vec<Fact>,
    );
    let cases: Vec<Case> = vec![
        (
            "upsert to one entity twice through one tempid",
            r#"[{:db/id -1 :person/name "Alice" :person/age 35}
                {:db/id -1 :person/name "Alice" :person/age 36}]"#,
            vec![("-1", 1)],
            1,
            vec![
                ret(1, ":person/age", 30i64),
                add(1, ":person/age", 35i64),
                ret(1, ":person/age", 35i64),
                add(1, ":person/age", 36i64),
            ],
        ),
        (
            "two tempids upserting to one entity",
            r#"[{:db/id -1 :person/name "Alice" :person/age 35}
                {:db/id -2 :person/name "Alice" :person/age 36}]"#,
            vec![("-1", 1), ("-2", 1)],
            1,
            vec![
                ret(1, ":person/age", 30i64),
                add(1, ":person/age", 35i64),
                ret(1, ":person/age", 35i64),
                add(1, ":person/age", 36i64),
            ],
        ),
        (
            "upsert over the intermediate db, different tempids",
            r#"[{:db/id -1 :person/name "Igor" :person/age 35}
                {:db/id -2 :person/name "Igor" :person/age 36}]"#,
            vec![("-1", 3), ("-2", 3)],
            3,
            vec![
                add(3, ":person/name", "Igor"),
                add(3, ":person/age", 35i64),
                ret(3, ":person/age", 35i64),
                add(3, ":person/age", 36i64),
            ],
        ),
        (
            "upsert by a value that does not exist yet updates the entity",
            r#"[{:db/id 1 :person/name "Alice" :person/ssn "333"}]"#,
            vec![],
            1,
            vec![ret(1, ":person/ssn", "111"), add(1, ":person/ssn", "333")],
        ),
        (
            "upsert with a lookup-ref id",
            r#"[{:db/id [:person/name "Alice"] :person/ssn "111" :person/age 36}]"#,
            vec![],
            1,
            vec![ret(1, ":person/age", 30i64), add(1, ":person/age", 36i64)],
        ),
        (
            "upsert through one of several cardinality-many identity values",
            r#"[{:db/id 1 :person/slugs ["al" "alice"]} {:db/id "s" :person/slugs ["x" "alice"] :person/age 7}]"#,
            vec![("s", 1)],
            1,
            vec![
                add(1, ":person/slugs", "al"),
                add(1, ":person/slugs", "alice"),
                add(1, ":person/slugs", "x"),
                ret(1, ":person/age", 30i64),
                add(1, ":person/age", 7i64),
            ],
        ),
    ];
    for (name, text, tempids, _e, expected) in cases {
        let r = db.with_edn(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut got = r.tempids.clone();
        got.remove(CURRENT_TX);
        let want: BTreeMap<String, Eid> = tempids
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(data(&r), expected, "{name}");
    }
    let slugs = edn(
        &db,
        r#"[{:db/id 1 :person/slugs "al"} {:db/id 2 :person/slugs "bo"}]"#,
    )
    .db_after;
    assert_eq!(
        fails(&slugs, r#"[{:person/slugs ["al" "bo"]}]"#),
        Error::UpsertConflict {
            tempid: "<entity map without :db/id>".into(),
            first: 1,
            second: 2
        }
    );
    assert_eq!(
        fails(&db, r#"[{:db/id :db/current-tx :person/name "Alice"}]"#),
        Error::UniqueConflict {
            attr: kw(":person/name"),
            value: Value::string("Alice"),
            existing: 1,
            entity: TX0 + 2,
        }
    );
    // Redefining an upserted tempid.
    assert_eq!(
        fails(
            &db,
            r#"[{:db/id -1 :person/name "Alice"} {:db/id -1 :person/name "Bob"}]"#
        ),
        Error::UpsertConflict {
            tempid: "-1".into(),
            first: 2,
            second: 1
        }
    );
}

#[test]
fn upsert_after_a_fresh_allocation_reruns_with_the_tempid_pinned() {
    // -1 first gets a fresh id for :person/age, then upserts into Alice: Datascript
    // reruns the transaction with -1 resolving to Alice from the start.
    let r = edn(
        &people(),
        r#"[[:db/add -1 :person/age 35]
            [:db/add -1 :person/name "Alice"]
            [:db/add "f" :person/friend -1]
            [:db/add "f" :person/name "Fred"]]"#,
    );
    assert_eq!(r.tempids["-1"], 1);
    assert_eq!(r.tempids["f"], 3, "no id is wasted on the rerun");
    assert_eq!(
        data(&r),
        vec![
            ret(1, ":person/age", 30i64),
            add(1, ":person/age", 35i64),
            add(3, ":person/friend", Value::Ref(1)),
            add(3, ":person/name", "Fred"),
        ]
    );
}

#[test]
fn upsert_sees_entities_asserted_earlier_in_the_transaction() {
    let r = edn(
        &empty(),
        r#"[{:person/name "X" :person/age 1}
            {:person/name "X" :person/age 2}
            [:db/add [:person/name "X"] :person/aliases "ex"]
            {:db/id "y" :person/name "Y" :person/friend [:person/name "X"]}]"#,
    );
    assert_eq!(
        data(&r),
        vec![
            add(1, ":person/name", "X"),
            add(1, ":person/age", 1i64),
            ret(1, ":person/age", 1i64),
            add(1, ":person/age", 2i64),
            add(1, ":person/aliases", "ex"),
            add(2, ":person/name", "Y"),
            add(2, ":person/friend", Value::Ref(1)),
        ]
    );
}

#[test]
fn conflicting_upserts_are_upsert_conflicts() {
    let db = people();
    let cases: &[(&str, Error)] = &[
        (
            r#"[{:db/id -1 :person/name "Alice" :person/ssn "222"}]"#,
            Error::UpsertConflict {
                tempid: "-1".into(),
                first: 1,
                second: 2,
            },
        ),
        (
            r#"[{:person/name "Alice" :person/ssn "222"}]"#,
            Error::UpsertConflict {
                tempid: "<entity map without :db/id>".into(),
                first: 1,
                second: 2,
            },
        ),
        (
            // -1 upserts to Alice, then to Bob: the rerun pins -1 to Bob, whereupon the
            // first op upserts it to Alice again.
            r#"[[:db/add -1 :person/name "Alice"] [:db/add -1 :person/ssn "222"]]"#,
            Error::UpsertConflict {
                tempid: "-1".into(),
                first: 2,
                second: 1,
            },
        ),
        (
            r#"[{:db/id 2 :person/name "Alice"}]"#,
            Error::UniqueConflict {
                attr: kw(":person/name"),
                value: Value::string("Alice"),
                existing: 1,
                entity: 2,
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&fails(&db, text), expected, "{text}");
    }
}

// ---- errors --------------------------------------------------------------------------

#[test]
fn every_error_names_what_is_at_fault_and_leaves_the_db_unchanged() {
    let db = people();
    let cases: Vec<(&str, Error)> = vec![
        (
            r#"[[:db/add [:person/name "Nobody"] :person/age 3]]"#,
            Error::UnknownLookupRef {
                attr: kw(":person/name"),
                value: Value::string("Nobody"),
            },
        ),
        (
            r#"[[:db/add 1 :person/friend [:person/email "nobody@x"]]]"#,
            Error::UnknownLookupRef {
                attr: kw(":person/email"),
                value: Value::string("nobody@x"),
            },
        ),
        (
            r#"[[:db/add [:person/age 30] :person/name "x"]]"#,
            Error::LookupRefNotUnique {
                attr: kw(":person/age"),
            },
        ),
        (
            r#"[[:db/add 2 :person/spouse [:person/age 30]]]"#,
            Error::LookupRefNotUnique {
                attr: kw(":person/age"),
            },
        ),
        (
            r#"[[:db/cas 1 :person/age 29 31]]"#,
            Error::CasMismatch {
                entity: 1,
                attr: kw(":person/age"),
                expected: Some(Value::Long(29)),
                actual: vec![Value::Long(30)],
            },
        ),
        (
            r#"[[:db/cas [:person/name "Alice"] :person/age nil 31]]"#,
            Error::CasMismatch {
                entity: 1,
                attr: kw(":person/age"),
                expected: None,
                actual: vec![Value::Long(30)],
            },
        ),
        (
            r#"[[:db/cas 1 :person/aliases "Nope" "Al2"]]"#,
            Error::CasMismatch {
                entity: 1,
                attr: kw(":person/aliases"),
                expected: Some(Value::string("Nope")),
                actual: vec![Value::string("Al"), Value::string("Ally")],
            },
        ),
        (
            r#"[[:db/add 1 :person/age "thirty"]]"#,
            Error::WrongValueType {
                entity: "1".into(),
                attr: kw(":person/age"),
                expected: ValueType::Long,
                value: Value::string("thirty"),
            },
        ),
        (
            r#"[{:db/id "t" :person/name "T" :person/age 1.5}]"#,
            Error::WrongValueType {
                entity: "t".into(),
                attr: kw(":person/age"),
                expected: ValueType::Long,
                value: Value::double(1.5).unwrap(),
            },
        ),
        (
            r#"[[:db/add 1 :person/spouse true]]"#,
            Error::WrongValueType {
                entity: "1".into(),
                attr: kw(":person/spouse"),
                expected: ValueType::Ref,
                value: Value::Bool(true),
            },
        ),
        (
            r#"[{:db/id -1 :person/name "Carl" :person/friend -2}]"#,
            Error::TempidsOnlyAsValue {
                tempids: vec!["-2".into()],
            },
        ),
        (
            r#"[[:db/retract 1 :person/friend "zz"]]"#,
            Error::TempidsOnlyAsValue {
                tempids: vec![r#""zz""#.into()],
            },
        ),
        (
            r#"[[:db/add 2 :person/email "alice@x"]]"#,
            Error::UniqueConflict {
                attr: kw(":person/email"),
                value: Value::string("alice@x"),
                existing: 1,
                entity: 2,
            },
        ),
        (
            r#"[{:person/age 9 :person/email "alice@x"}]"#,
            Error::UniqueConflict {
                attr: kw(":person/email"),
                value: Value::string("alice@x"),
                existing: 1,
                entity: 3,
            },
        ),
        (
            r#"[[:db/add 2 :person/ssn "111"]]"#,
            Error::UniqueConflict {
                attr: kw(":person/ssn"),
                value: Value::string("111"),
                existing: 1,
                entity: 2,
            },
        ),
    ];
    for (text, expected) in &cases {
        assert_eq!(&fails(&db, text), expected, "{text}");
    }
}

#[test]
fn unknown_attributes_under_a_strict_schema_are_rejected() {
    let db = Db::new(schema().strict());
    for text in [
        r#"[[:db/add -1 :person/nickname "x"]]"#,
        r#"[{:person/name "A" :person/nickname "x"}]"#,
        r#"[[:db/retract 1 :person/nickname "x"]]"#,
        r#"[[:db/add -1 :person/spouse [:person/nickname "x"]]]"#,
        r#"[{:person/name "A" :person/_nickname 1}]"#,
    ] {
        assert_eq!(
            fails(&db, text),
            Error::UnknownAttribute {
                attr: kw(":person/nickname")
            },
            "{text}"
        );
    }
    // A permissive schema takes undeclared attributes as untyped, cardinality one.
    let r = edn(&empty(), r#"[[:db/add -1 :person/nickname "x"]]"#);
    assert_eq!(data(&r), vec![add(1, ":person/nickname", "x")]);
}

#[test]
fn entity_ids_out_of_range_are_rejected() {
    let db = people();
    for (text, entity) in [
        (r#"[[:db/add 0 :person/age 1]]"#.to_owned(), 0i64),
        (format!("[[:db/add {TX0} :person/age 1]]"), TX0 as i64),
        (
            format!("[[:db/add {} :tx/note \"x\"]]", TX0 + 3),
            (TX0 + 3) as i64,
        ),
        (
            format!("[{{:db/id {} :tx/note \"x\"}}]", EMAX + 1),
            (EMAX + 1) as i64,
        ),
        (r#"[[:db/add 1 :person/spouse 0]]"#.to_owned(), 0),
    ] {
        let err = fails(&db, &text);
        assert!(
            matches!(err, Error::InvalidEntityId { entity: e, .. } if e == entity),
            "{text}: {err:?}"
        );
    }
    // Existing transaction ids, and the current one, are entities.
    let r = edn(
        &db,
        &format!(
            "[[:db/add {} :tx/note \"setup\"] [:db/add {} :tx/note \"now\"]]",
            TX0 + 1,
            TX0 + 2
        ),
    );
    assert_eq!(
        data(&r),
        vec![
            add(TX0 + 1, ":tx/note", "setup"),
            add(TX0 + 2, ":tx/note", "now")
        ]
    );
}

#[test]
fn malformed_forms_are_rejected_quoting_the_form() {
    let db = people();
    let cases = [
        (r#"{:db/id 1}"#, "{:db/id 1}"),
        (r#"[[:db/frobnicate 1 :person/age 1]]"#, ":db/frobnicate"),
        (r#"[[:db/add 1 :person/age]]"#, "[:db/add e a v]"),
        (r#"[[:db/add 1 "age" 3]]"#, "keyword"),
        (r#"[42]"#, "42"),
        (r#"[["x" 1]]"#, "operation keyword"),
        (r#"[{"name" "x"}]"#, "keywords"),
        (r#"[[:db/add 1 :person/age nil]]"#, "nil"),
        (r#"[{:db/id 1.5 :person/age 1}]"#, "1.5"),
        (r#"[{:db/id [:person/name] :person/age 1}]"#, "lookup ref"),
        (
            r#"[[:db/add 1 :person/friend {:person/name "x"}]]"#,
            "entity maps",
        ),
        (r#"[{:db/id 1 :address/_city 2}]"#, ":address/_city"),
        (r#"[[:db/add 1 :person/_friend 2]]"#, ":person/_friend"),
        (r#"[[:db/retract "nope" :person/age 1]]"#, "nope"),
    ];
    for (text, quoted) in cases {
        match fails(&db, text) {
            Error::MalformedTx { reason } => {
                assert!(reason.contains(quoted), "{text}: {reason}")
            }
            other => panic!("{text}: expected MalformedTx, got {other:?}"),
        }
    }
    assert!(matches!(
        fails(&db, r#"[{:db/id 1"#),
        Error::EdnSyntax { .. }
    ));
    // Rust-built ops are quoted as EDN too.
    let err = db
        .with(&[TxOp::add(1, ":person/friend", vec![1, 2])])
        .unwrap_err();
    assert!(
        matches!(&err, Error::MalformedTx { reason } if reason.contains("[:db/add 1 :person/friend [1 2]]")),
        "{err:?}"
    );
}

// ---- components, reverse refs, nested maps, current tx --------------------------------

#[test]
fn retract_entity_cascades_to_components_and_removes_incoming_refs() {
    let db = edn(
        &empty(),
        r#"[{:db/id 1 :person/name "Alice" :person/address 10 :person/children [11 12]}
            {:db/id 10 :address/city "Paris"}
            {:db/id 11 :person/name "Kid1" :person/address 13}
            {:db/id 12 :person/name "Kid2" :person/friend 1}
            {:db/id 13 :address/city "Lyon"}
            {:db/id 2 :person/name "Bob" :person/friend [1 2] :person/spouse 1}]"#,
    )
    .db_after;
    let r = edn(&db, r#"[[:db/retractEntity [:person/name "Alice"]]]"#);
    assert_eq!(
        data(&r),
        vec![
            ret(1, ":person/address", Value::Ref(10)),
            ret(1, ":person/children", Value::Ref(11)),
            ret(1, ":person/children", Value::Ref(12)),
            ret(1, ":person/name", "Alice"),
            ret(2, ":person/friend", Value::Ref(1)),
            ret(12, ":person/friend", Value::Ref(1)),
            ret(2, ":person/spouse", Value::Ref(1)),
            ret(10, ":address/city", "Paris"),
            ret(11, ":person/address", Value::Ref(13)),
            ret(11, ":person/name", "Kid1"),
            ret(13, ":address/city", "Lyon"),
            ret(12, ":person/name", "Kid2"),
        ]
    );
    assert_eq!(
        facts(&r.db_after),
        vec![
            (2, "person/friend".into(), Value::Ref(2)),
            (2, "person/name".into(), Value::string("Bob")),
        ]
    );
    // A self-reference is retracted once.
    let r = edn(&db, r#"[[:db/retractEntity 2]]"#);
    let self_refs = data(&r)
        .into_iter()
        .filter(|f| *f == ret(2, ":person/friend", Value::Ref(2)))
        .count();
    assert_eq!(self_refs, 1);
}

#[test]
fn retracting_a_component_attribute_retracts_the_components() {
    let db = edn(
        &empty(),
        r#"[{:db/id 1 :person/name "A" :person/address {:address/city "Paris"}}]"#,
    )
    .db_after;
    let r = edn(&db, r#"[[:db/retract 1 :person/address]]"#);
    assert_eq!(
        data(&r),
        vec![
            ret(1, ":person/address", Value::Ref(2)),
            ret(2, ":address/city", "Paris"),
        ]
    );
    // Retracting one value does not cascade (as Datascript).
    let r = edn(&db, r#"[[:db/retract 1 :person/address 2]]"#);
    assert_eq!(data(&r), vec![ret(1, ":person/address", Value::Ref(2))]);
}

#[test]
fn cyclic_components_terminate() {
    let db = edn(
        &empty(),
        r#"[{:db/id 1 :person/children 2} {:db/id 2 :person/children 1 :person/name "x"}]"#,
    )
    .db_after;
    let r = edn(&db, r#"[[:db/retractEntity 1]]"#);
    assert_eq!(r.db_after.len(), 0);
}

#[test]
fn reverse_refs_in_entity_maps_assert_forward_datoms() {
    let r = edn(
        &people(),
        r#"[{:db/id "c" :person/name "Carol" :person/_friend ["d" [:person/name "Bob"]]}
            {:db/id "d" :person/name "Dave"}
            {:person/name "Eve" :person/_spouse [:person/name "Alice"]}]"#,
    );
    assert_eq!(
        data(&r),
        vec![
            add(3, ":person/name", "Carol"),
            add(4, ":person/friend", Value::Ref(3)),
            add(2, ":person/friend", Value::Ref(3)),
            add(4, ":person/name", "Dave"),
            add(5, ":person/name", "Eve"),
            add(1, ":person/spouse", Value::Ref(5)),
        ]
    );
}

#[test]
fn nested_maps_become_entities_linked_to_their_parent() {
    let cases: &[(&str, &str, Vec<Fact>)] = &[
        (
            "component and cardinality-many nested maps",
            r#"[{:db/id "p" :person/name "P" :person/address {:address/city "Paris"}
                 :person/children [{:person/name "K1"} {:person/name "K2"}]}]"#,
            vec![
                add(3, ":person/name", "P"),
                add(4, ":address/city", "Paris"),
                add(3, ":person/address", Value::Ref(4)),
                add(5, ":person/name", "K1"),
                add(3, ":person/children", Value::Ref(5)),
                add(6, ":person/name", "K2"),
                add(3, ":person/children", Value::Ref(6)),
            ],
        ),
        (
            "a nested map upserts",
            r#"[{:person/name "Zed" :person/friend {:person/name "Alice" :person/age 31}}]"#,
            vec![
                add(3, ":person/name", "Zed"),
                ret(1, ":person/age", 30i64),
                add(1, ":person/age", 31i64),
                add(3, ":person/friend", Value::Ref(1)),
            ],
        ),
        (
            "a nested map under a reverse attribute",
            r#"[{:person/name "X" :person/_friend {:person/name "Y"}}]"#,
            vec![
                add(3, ":person/name", "X"),
                add(4, ":person/name", "Y"),
                add(4, ":person/friend", Value::Ref(3)),
            ],
        ),
        (
            "a nested map with its own tempid",
            r#"[{:person/name "X" :person/spouse {:db/id "s" :person/name "S"}}
                [:db/add "s" :person/age 3]]"#,
            vec![
                add(3, ":person/name", "X"),
                add(4, ":person/name", "S"),
                add(3, ":person/spouse", Value::Ref(4)),
                add(4, ":person/age", 3i64),
            ],
        ),
    ];
    let db = people();
    for (name, text, expected) in cases {
        let r = db.with_edn(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&data(&r), expected, "{name}");
    }
}

#[test]
fn current_tx_names_the_transaction_in_entity_and_value_position() {
    let db = people();
    let tx = db.max_tx() + 1;
    let r = edn(
        &db,
        r#"[{:db/id :db/current-tx :tx/note "import"}
            {:db/id "p" :person/name "P" :person/created-in :db/current-tx}
            [:db/add "q" :person/created-in "datomic.tx"]
            [:db/add "q" :person/name "Q"]]"#,
    );
    assert_eq!(r.tx, tx);
    assert_eq!(r.tempids[CURRENT_TX], tx);
    assert_eq!(
        data(&r),
        vec![
            add(tx, ":tx/note", "import"),
            add(3, ":person/name", "P"),
            add(3, ":person/created-in", Value::Ref(tx)),
            add(4, ":person/created-in", Value::Ref(tx)),
            add(4, ":person/name", "Q"),
        ]
    );
    assert_eq!(
        r.db_after.max_eid(),
        4,
        "transaction entities are not entity ids"
    );
    let r2 = r
        .db_after
        .with(
            &TxBuilder::new()
                .add(current_tx(), ":tx/note", "second")
                .add(tx, ":tx/note", "amended")
                .build(),
        )
        .unwrap();
    assert_eq!(
        data(&r2),
        vec![
            add(tx + 1, ":tx/note", "second"),
            ret(tx, ":tx/note", "import"),
            add(tx, ":tx/note", "amended"),
        ]
    );
}

#[test]
fn rust_values_resolve_like_their_edn_forms() {
    let db = people();
    let r = db
        .with(
            &TxBuilder::new()
                .entity("c", |m| {
                    m.set(":person/name", "Carol")
                        .set(":person/friend", vec![EntityRef::Id(1), tempid("d")])
                        .set(":person/spouse", lookup(":person/email", "bob@x"))
                })
                .add("d", ":person/name", "Dave")
                .add("d", ":person/friend", Value::Ref(2))
                .build(),
        )
        .unwrap();
    assert_eq!(
        data(&r),
        vec![
            add(3, ":person/name", "Carol"),
            add(3, ":person/friend", Value::Ref(1)),
            add(3, ":person/friend", Value::Ref(4)),
            add(3, ":person/spouse", Value::Ref(2)),
            add(4, ":person/name", "Dave"),
            add(4, ":person/friend", Value::Ref(2)),
        ]
    );
    // A tempid under a non-ref attribute is malformed, not a string.
    let err = db
        .with(&[TxOp::add(1, ":person/age", tempid("x"))])
        .unwrap_err();
    assert!(matches!(err, Error::MalformedTx { .. }), "{err:?}");
}

// ---- the connection --------------------------------------------------------------------

#[test]
fn conn_listeners_see_each_report() {
    let conn = Conn::new(empty());
    let seen: Arc<Mutex<Vec<(Tx, usize)>>> = Arc::default();
    let s = seen.clone();
    conn.listen("log", move |r: &TxReport| {
        s.lock().unwrap().push((r.tx, r.tx_data.len()))
    });
    let r1 = conn
        .transact_edn(r#"[{:person/name "A" :person/age 1}]"#)
        .unwrap();
    let r2 = conn
        .transact(&TxBuilder::new().add(1, ":person/age", 2).build())
        .unwrap();
    assert!(conn
        .transact_edn(r#"[[:db/add 1 :person/age "x"]]"#)
        .is_err());
    assert_eq!(conn.db().root_addresses(), r2.db_after.root_addresses());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(r1.tx, 2), (r2.tx, 2)],
        "failed transactions are not reported"
    );
    assert!(conn.unlisten("log"));
    assert!(!conn.unlisten("log"));
    conn.transact_edn(r#"[[:db/add 1 :person/age 3]]"#).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
    conn.reset(empty()).unwrap();
    assert!(conn.db().is_empty());
}

#[test]
fn reset_reports_the_difference_to_listeners() {
    let conn = Conn::new(empty());
    conn.transact_edn(r#"[[:db/add 1 :person/name "Ann"] [:db/add 1 :person/age 3]]"#)
        .unwrap();
    let target = conn
        .db()
        .with_edn(r#"[[:db/add 1 :person/age 4] [:db/add 2 :person/name "Bo"]]"#)
        .unwrap()
        .db_after;
    let seen: Arc<Mutex<Vec<TxReport>>> = Arc::default();
    let s = seen.clone();
    conn.listen("reset", move |r: &TxReport| {
        s.lock().unwrap().push(r.clone())
    });
    let report = conn.reset(target.clone()).unwrap();
    assert_eq!(conn.db().root_addresses(), target.root_addresses());
    let changes: Vec<(u64, String, bool)> = report
        .tx_data
        .iter()
        .map(|d| (d.e, format!("{:?}", d.v), d.added))
        .collect();
    assert_eq!(
        changes,
        vec![
            (1, "3".to_owned(), false),
            (1, "4".to_owned(), true),
            (2, "\"Bo\"".to_owned(), true),
        ]
    );
    assert!(report.tempids.is_empty());
    assert_eq!(report.tx, target.max_tx());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "listeners hear about a reset");
    assert_eq!(seen[0].tx_data, report.tx_data);
}

#[test]
fn concurrent_transacts_lose_nothing() {
    const THREADS: usize = 8;
    const EACH: usize = 25;
    let conn = Arc::new(Conn::new(empty()));
    let count = Arc::new(AtomicUsize::new(0));
    let order: Arc<Mutex<Vec<Tx>>> = Arc::default();
    let (c, o) = (count.clone(), order.clone());
    conn.listen("count", move |r: &TxReport| {
        c.fetch_add(1, Ordering::SeqCst);
        o.lock().unwrap().push(r.tx);
    });
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let name = format!("t{t}-{i}");
                    conn.transact(&[TxOp::add("p", ":person/name", name.as_str())])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let db = conn.db();
    let n = (THREADS * EACH) as u64;
    assert_eq!(db.len(), n);
    assert_eq!(db.max_eid(), n);
    assert_eq!(db.max_tx(), TX0 + n);
    assert_eq!(count.load(Ordering::SeqCst), THREADS * EACH);
    let order = order.lock().unwrap();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "listeners see tx order"
    );
}

// ---- the model check -------------------------------------------------------------------

const ONE: &str = "p/one";
const MANY: &str = "p/many";
const REF: &str = "p/ref";
const UNIQ: &str = "p/uniq";

fn model_schema() -> Schema {
    let a = AttributeSchema::default;
    Schema::new()
        .with(ONE, a().value_type(ValueType::Long))
        .unwrap()
        .with(MANY, a().value_type(ValueType::Long).many())
        .unwrap()
        .with(REF, a().value_type(ValueType::Ref).many())
        .unwrap()
        .with(UNIQ, a().value_type(ValueType::Long).unique_value())
        .unwrap()
}

#[derive(Clone, Debug)]
enum MOp {
    Add(Eid, &'static str, i64),
    Retract(Eid, &'static str, i64),
    RetractAttr(Eid, &'static str),
    RetractEntity(Eid),
}

fn attr_strategy() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(ONE), Just(MANY), Just(REF), Just(UNIQ)]
}

fn mop_strategy() -> impl Strategy<Value = MOp> {
    let e = 1u64..=5;
    prop_oneof![
        4 => (e.clone(), attr_strategy(), 1i64..=4).prop_map(|(e, a, v)| MOp::Add(e, a, v)),
        2 => (e.clone(), attr_strategy(), 1i64..=4).prop_map(|(e, a, v)| MOp::Retract(e, a, v)),
        1 => (e.clone(), attr_strategy()).prop_map(|(e, a)| MOp::RetractAttr(e, a)),
        1 => e.prop_map(MOp::RetractEntity),
    ]
}

fn model_value(a: &str, v: i64) -> Value {
    if a == REF {
        Value::Ref(v.unsigned_abs())
    } else {
        Value::Long(v)
    }
}

type Model = BTreeSet<(Eid, String, Value)>;

/// The model's semantics, written as plainly as possible.
fn model_apply(m: &mut Model, op: &MOp) -> Result<(), ()> {
    match op {
        MOp::Add(e, a, v) => {
            let v = model_value(a, *v);
            if *a == UNIQ && m.iter().any(|(x, b, w)| x != e && b == a && *w == v) {
                return Err(());
            }
            if *a == ONE || *a == UNIQ {
                m.retain(|(x, b, _)| !(x == e && b == a));
            }
            m.insert((*e, a.to_string(), v));
        }
        MOp::Retract(e, a, v) => {
            m.remove(&(*e, a.to_string(), model_value(a, *v)));
        }
        MOp::RetractAttr(e, a) => m.retain(|(x, b, _)| !(x == e && b == a)),
        MOp::RetractEntity(e) => {
            m.retain(|(x, b, v)| x != e && !(b == REF && *v == Value::Ref(*e)))
        }
    }
    Ok(())
}

fn to_op(op: &MOp) -> TxOp {
    let v = |a: &str, v: i64| TxValue::Value(model_value(a, v));
    match op {
        MOp::Add(e, a, x) => TxOp::Add(EntityRef::Id(*e), kw(a), v(a, *x)),
        MOp::Retract(e, a, x) => TxOp::Retract(EntityRef::Id(*e), kw(a), v(a, *x)),
        MOp::RetractAttr(e, a) => TxOp::retract_attr(*e, *a),
        MOp::RetractEntity(e) => TxOp::retract_entity(*e),
    }
}

fn index_set(db: &Db, kind: IndexKind) -> Model {
    db.datoms(kind, &[])
        .unwrap()
        .map(|d| {
            let d = d.unwrap();
            (d.e, d.a.as_str().to_owned(), d.v)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn transacted_indexes_match_a_simple_model(
        txs in proptest::collection::vec(proptest::collection::vec(mop_strategy(), 1..5), 1..12)
    ) {
        let config = TreeConfig { leaf_target: 4, branch_target: 4 };
        let mut db = Db::with_config(model_schema(), config);
        let mut model = Model::new();
        for ops in &txs {
            let mut next = model.clone();
            let expected = ops.iter().try_for_each(|op| model_apply(&mut next, op));
            let tx_ops: Vec<TxOp> = ops.iter().map(to_op).collect();
            match (db.with(&tx_ops), expected) {
                (Ok(r), Ok(())) => {
                    prop_assert_eq!(&r.db_after.pending_log().last().unwrap().clone().datoms, &r.tx_data);
                    db = r.db_after;
                    model = next;
                }
                (Err(Error::UniqueConflict { .. }), Err(())) => {}
                (got, want) => prop_assert!(false, "{:?}: got {:?}, model {:?}", ops, got.map(|r| r.tx_data), want),
            }
            prop_assert_eq!(index_set(&db, IndexKind::Eavt), model.clone());
            prop_assert_eq!(index_set(&db, IndexKind::Aevt), model.clone());
            let avet: Model = model.iter().filter(|(_, a, _)| a == REF || a == UNIQ).cloned().collect();
            prop_assert_eq!(index_set(&db, IndexKind::Avet), avet);
        }
        let all: Vec<_> = db
            .datoms(IndexKind::Eavt, &[])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (i, kind) in IndexKind::ALL.into_iter().enumerate() {
            let datoms: Vec<_> = all
                .iter()
                .filter(|d| kind != IndexKind::Avet || db.schema().in_avet(&d.a))
                .cloned()
                .collect();
            let built = Tree::build(kind, config, datoms);
            prop_assert_eq!(built.root_address(), db.root_addresses()[i]);
        }
    }
}

// ---- idents --------------------------------------------------------------------------

#[test]
fn idents_name_entities_in_entity_position_ref_values_and_queries() {
    // `:db/ident` is a unique identity without being declared (Datascript's implicit
    // schema), even under a strict schema.
    let strict = schema()
        .with(
            ":item/color",
            AttributeSchema::default().value_type(ValueType::Ref),
        )
        .unwrap()
        .with(":color/hex", AttributeSchema::default())
        .unwrap()
        .strict();
    let db = Db::new(strict);
    let r = edn(
        &db,
        r#"[{:db/ident :red :color/hex "f00"} {:db/ident :blue}]"#,
    );
    let red_e = r
        .db_after
        .entity_by_value(&kw(":db/ident"), &Value::keyword("red"))
        .unwrap()
        .expect(":db/ident is in AVET");
    // An ident in entity position…
    let r = edn(&r.db_after, r#"[[:db/add :red :color/hex "ff0000"]]"#);
    assert_eq!(
        data(&r),
        vec![
            ret(red_e, ":color/hex", "f00"),
            add(red_e, ":color/hex", "ff0000")
        ]
    );
    // …and as the value of a ref attribute.
    let r = edn(&r.db_after, r#"[{:db/id "cup" :item/color :red}]"#);
    let cup = r.tempid("cup").unwrap();
    assert_eq!(data(&r), vec![add(cup, ":item/color", Value::Ref(red_e))]);
    // Asserting the same ident again upserts into the entity that has it.
    let r = edn(&r.db_after, r#"[{:db/ident :red :color/hex "f00f"}]"#);
    assert_eq!(
        data(&r),
        vec![
            ret(red_e, ":color/hex", "ff0000"),
            add(red_e, ":color/hex", "f00f")
        ]
    );
    let db = r.db_after;
    // A query names the entity by its ident too.
    let found = crate::q(
        "[:find ?hex . :where [:red :color/hex ?hex]]",
        &[crate::Input::Db(&db)],
    )
    .unwrap();
    assert!(format!("{found:?}").contains("\"f00f\""), "{found:?}");
    // An ident nothing has is a typed error naming it, and nothing changes.
    for text in [
        r#"[[:db/add :green :color/hex "0f0"]]"#,
        r#"[{:db/id "mug" :item/color :green}]"#,
    ] {
        assert!(
            matches!(fails(&db, text), Error::UnknownLookupRef { ref attr, ref value }
                if attr.as_str() == "db/ident" && *value == Value::keyword("green")),
            "{text}"
        );
    }
}
