//! Transactions answer as Datascript's: the entity ids new entities get, the tempids the
//! report holds, the datoms produced, and the tx data Datascript rejects. Every expected
//! answer here is what Datascript 1.8.1 gives for the same schema and tx data (issues
//! #16 items 1–7 and #26 items 2, 4, 5; run through `datascript.js` under node when the
//! cases were written, keyword values written as strings where the JS API needs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use datoms_core::edn::parse_schema;
use datoms_core::tx::{TxBuilder, TxOp};
use datoms_core::{Db, Eid, Error, Keyword, Value};

/// The transaction id of the first transaction on an empty db.
const TX1: Eid = 536_870_913;

const SCHEMA: &str = r#"{:person/pet    {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
                         :person/color  {:db/valueType :db.type/ref}
                         :person/boss   {:db/valueType :db.type/ref}
                         :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
                         :person/ssn    {:db/unique :db.unique/value}
                         :person/id     {:db/unique :db.unique/identity}
                         :person/email  {:db/unique :db.unique/identity}
                         :person/name   {:db/unique :db.unique/identity}
                         :pet/toy       {:db/valueType :db.type/ref}}"#;

fn empty() -> Db {
    Db::new(parse_schema(SCHEMA).unwrap())
}

/// `db` with `text` transacted.
fn with(db: &Db, text: &str) -> Db {
    db.with_edn(text)
        .unwrap_or_else(|e| panic!("transacting {text}: {e}"))
        .db_after
}

/// A datom as (e, attribute, value, added).
type Fact = (Eid, String, Value, bool);

/// The report's tempids (`:db/current-tx` left out) and datoms.
fn run(db: &Db, text: &str) -> (BTreeMap<String, Eid>, Vec<Fact>) {
    let r = db
        .with_edn(text)
        .unwrap_or_else(|e| panic!("transacting {text}: {e}"));
    assert_eq!(r.tempids[":db/current-tx"], r.tx);
    let mut tempids = r.tempids.clone();
    tempids.remove(":db/current-tx");
    let datoms = r
        .tx_data
        .iter()
        .map(|d| (d.e, d.a.to_string(), d.v.clone(), d.added))
        .collect();
    (tempids, datoms)
}

fn tempids(pairs: &[(&str, Eid)]) -> BTreeMap<String, Eid> {
    pairs.iter().map(|(t, e)| ((*t).to_owned(), *e)).collect()
}

fn add(e: Eid, a: &str, v: impl Into<Value>) -> Fact {
    (e, a.to_owned(), v.into(), true)
}

fn reason(e: Error) -> String {
    match e {
        Error::MalformedTx { reason } => reason,
        other => panic!("expected a malformed tx, got {other:?}"),
    }
}

#[test]
fn nested_maps_get_ids_innermost_first() {
    // #16 item 1: toy 1, pet 2, t4 3.
    let (ids, datoms) = run(
        &empty(),
        r#"[{:db/id "t4" :person/pet {:pet/toy {:toy/name "bone"}}}]"#,
    );
    assert_eq!(ids, tempids(&[("t4", 3)]));
    assert_eq!(
        datoms,
        vec![
            add(1, ":toy/name", "bone"),
            add(2, ":pet/toy", Value::Ref(1)),
            add(3, ":person/pet", Value::Ref(2)),
        ]
    );
}

#[test]
fn a_tempid_in_value_position_gets_its_id_before_the_entity() {
    // #16 item 1: -2 → 1, -1 → 2, t3 → 3.
    let (ids, datoms) = run(
        &empty(),
        r#"[{:db/id -1 :person/color -2 :person/boss "t3"}
            {:db/id -2 :db/ident :color/blue}
            {:db/id "t3" :person/name "Dee"}]"#,
    );
    assert_eq!(ids, tempids(&[("-2", 1), ("-1", 2), ("t3", 3)]));
    assert_eq!(
        datoms,
        vec![
            add(2, ":person/color", Value::Ref(1)),
            add(2, ":person/boss", Value::Ref(3)),
            add(1, ":db/ident", Keyword::new(":color/blue")),
            add(3, ":person/name", "Dee"),
        ]
    );
}

#[test]
fn a_rerun_after_an_upsert_keeps_the_ids_given_before_it() {
    // Datascript's retry-with-tempid reruns with every tempid it had given: -2 keeps 3.
    let db = with(&empty(), r#"[{:person/email "a" :person/name "A"}]"#);
    let (ids, datoms) = run(
        &db,
        r#"[[:db/add -1 :person/name "B"]
            [:db/add -2 :person/friend -1]
            [:db/add -1 :person/email "a"]]"#,
    );
    assert_eq!(ids, tempids(&[("-1", 1), ("-2", 3)]));
    assert_eq!(
        datoms,
        vec![
            (1, ":person/name".to_owned(), Value::string("A"), false),
            add(1, ":person/name", "B"),
            add(3, ":person/friend", Value::Ref(1)),
        ]
    );
}

#[test]
fn a_tempid_upserting_to_an_entity_made_earlier_in_the_tx_merges_with_it() {
    // #16 item 2: t3 is the :color/red entity.
    let (ids, datoms) = run(
        &empty(),
        r##"[{:person/color "t3" :person/email "p@x.org"}
             {:db/ident :color/red :color/hex "#f00"}
             {:db/id "t3" :db/ident :color/red}]"##,
    );
    assert_eq!(ids, tempids(&[("t3", 3)]));
    assert_eq!(
        datoms,
        vec![
            add(2, ":person/color", Value::Ref(3)),
            add(2, ":person/email", "p@x.org"),
            add(3, ":db/ident", Keyword::new(":color/red")),
            add(3, ":color/hex", "#f00"),
        ]
    );
}

#[test]
fn an_entity_created_by_cas_reserves_its_id() {
    // #16 item 3: the tempid after a cas that creates entity 5 gets 6.
    let db = with(&empty(), r#"[{:person/name "a"}]"#);
    let (ids, datoms) = run(
        &db,
        r#"[[:db/cas 5 :person/name nil "x"] [:db/add -1 :person/name "y"]]"#,
    );
    assert_eq!(ids, tempids(&[("-1", 6)]));
    assert_eq!(
        datoms,
        vec![add(5, ":person/name", "x"), add(6, ":person/name", "y")]
    );
    // So does any explicit id asserted, and only an asserted one.
    let (ids, _) = run(
        &empty(),
        r#"[[:db/add 10 :person/name "B"] [:db/add -1 :person/name "C"]]"#,
    );
    assert_eq!(ids, tempids(&[("-1", 11)]));
    let (ids, _) = run(&empty(), r#"[{:db/id 10} [:db/add -1 :person/name "C"]]"#);
    assert_eq!(ids, tempids(&[("-1", 1)]));
}

#[test]
fn a_tempid_as_the_entity_of_anything_but_add_is_rejected() {
    // #26 item 5.
    for text in [
        r#"[[:db/add -1 :person/name "Ivan"] [:db.fn/cas -1 :attr nil :val]]"#,
        r#"[[:db/add -1 :person/name "Ivan"] [:db/cas -1 :attr nil :val]]"#,
        r#"[[:db/add -1 :person/name "Ivan"] [:db/retract -1 :person/name "Ivan"]]"#,
        r#"[[:db/add -1 :person/name "Ivan"] [:db/retractEntity -1]]"#,
    ] {
        let why = reason(empty().with_edn(text).unwrap_err());
        assert!(
            why.starts_with("Can't use tempid in '[:db/")
                && why.ends_with("Tempids are allowed in :db/add only"),
            "{text}: {why}"
        );
    }
}

#[test]
fn a_card_many_ref_vector_is_values_unless_it_starts_with_an_identity_attribute() {
    // #16 item 4. :person/ssn is unique/value: [:person/ssn 100] is two values, and the
    // ident :person/ssn names no entity.
    let db = with(&empty(), r#"[{:db/id 6 :person/ssn 100 :person/id 100}]"#);
    let err = db
        .with_edn(r#"[{:db/id 7 :person/friend [:person/ssn 100]}]"#)
        .unwrap_err();
    assert_eq!(
        err,
        Error::UnknownLookupRef {
            attr: Keyword::new(":db/ident"),
            value: Value::Keyword(Keyword::new(":person/ssn")),
        }
    );
    // A vector of lookup refs, or a pair on an identity attribute, is a lookup ref.
    for text in [
        r#"[{:db/id 7 :person/friend [[:person/ssn 100]]}]"#,
        r#"[{:db/id 7 :person/friend [:person/id 100]}]"#,
    ] {
        let (_, datoms) = run(&db, text);
        assert_eq!(
            datoms,
            vec![add(7, ":person/friend", Value::Ref(6))],
            "{text}"
        );
    }
}

#[test]
fn a_nested_map_link_to_its_parent_replaces_its_own_value_of_that_attribute() {
    // #16 item 5: no [1 :person/pet 3] next to [2 :person/pet 3].
    let db = with(
        &empty(),
        r#"[{:db/id 1 :person/ssn 107} {:db/id 2 :person/name "x"}]"#,
    );
    let (_, datoms) = run(
        &db,
        r#"[{:db/id 2 :person/pet [{:pet/species :zoo/yak :person/_pet [:person/ssn 107]}]}]"#,
    );
    assert_eq!(
        datoms,
        vec![
            add(3, ":pet/species", Keyword::new(":zoo/yak")),
            add(2, ":person/pet", Value::Ref(3)),
        ]
    );
    // Under a reverse attribute, the forward attribute is replaced.
    let (_, datoms) = run(
        &db,
        r#"[{:db/id 2 :person/_pet [{:pet/species :zoo/yak :person/pet [[:person/ssn 107]]}]}]"#,
    );
    assert_eq!(
        datoms,
        vec![
            add(3, ":pet/species", Keyword::new(":zoo/yak")),
            add(3, ":person/pet", Value::Ref(2)),
        ]
    );
}

#[test]
fn an_ident_as_a_maps_db_id_is_rejected() {
    // #16 item 6, first half; in a list form's entity position an ident resolves.
    let db = with(&empty(), r#"[{:db/ident :color/red}]"#);
    let why = reason(
        db.with_edn(r#"[{:db/id :color/red :person/name "x"}]"#)
            .unwrap_err(),
    );
    assert!(
        why.contains("Expected number, string or lookup ref for :db/id, got :color/red"),
        "{why}"
    );
    let (_, datoms) = run(&db, r#"[[:db/add :color/red :person/name "x"]]"#);
    assert_eq!(datoms, vec![add(1, ":person/name", "x")]);
}

#[test]
fn tx_aliases_used_in_the_tx_are_in_the_tempids() {
    // #16 item 7.
    let (ids, _) = run(&empty(), r#"[[:db/add "datomic.tx" :tx/note "x"]]"#);
    assert_eq!(ids, tempids(&[("datomic.tx", TX1)]));
    let (ids, datoms) = run(
        &empty(),
        r#"[[:db/add "datascript.tx" :tx/note "x"] {:db/id -1 :person/pet "datomic.tx"}]"#,
    );
    assert_eq!(
        ids,
        tempids(&[("datascript.tx", TX1), ("datomic.tx", TX1), ("-1", 1)])
    );
    assert_eq!(datoms[1], add(1, ":person/pet", Value::Ref(TX1)));
    let (ids, _) = run(&empty(), r#"[[:db/add :db/current-tx :tx/note "x"]]"#);
    assert_eq!(ids, tempids(&[]));
}

#[test]
fn nil_entries_are_skipped_and_datoms_are_tx_data() {
    // #26 item 2.
    let (_, datoms) = run(&empty(), r#"[[:db/add 1 :attr 2] nil [:db/add 3 :attr 4]]"#);
    assert_eq!(datoms, vec![add(1, ":attr", 2), add(3, ":attr", 4)]);
    let (_, datoms) = run(
        &empty(),
        r#"[#datascript/Datom [1 :person/name "Ivan" 536870913 true]
            #datascript/Datom [2 :person/friend 1 536870913]]"#,
    );
    assert_eq!(
        datoms,
        vec![
            add(1, ":person/name", "Ivan"),
            add(2, ":person/friend", Value::Ref(1))
        ]
    );
    let db = with(&empty(), r#"[[:db/add 1 :person/name "Ivan"]]"#);
    let (_, datoms) = run(
        &db,
        r#"[#datascript/Datom [1 :person/name "Ivan" 536870913 false]]"#,
    );
    assert_eq!(
        datoms,
        vec![(1, ":person/name".to_owned(), Value::string("Ivan"), false)]
    );
}

#[test]
fn a_tempid_used_only_as_a_value_is_an_error() {
    // #26 item 4.
    for text in [
        r#"[{:db/id -1} [:db/add -2 :person/friend -1]]"#,
        r#"[{:db/id -1 :person/friend []} [:db/add -2 :person/friend -1]]"#,
    ] {
        let err = empty().with_edn(text).unwrap_err();
        assert_eq!(
            err,
            Error::TempidsOnlyAsValue {
                tempids: vec!["-1".into()]
            },
            "{text}"
        );
        assert_eq!(
            err.to_string(),
            "Tempids used only as value in transaction: (-1)"
        );
    }
    // Asserted after its use as a value is fine.
    let (ids, _) = run(
        &empty(),
        r#"[[:db/add -2 :person/friend -1] {:db/id -1 :person/name "z"}]"#,
    );
    assert_eq!(ids, tempids(&[("-1", 1), ("-2", 2)]));
    // A nested map with nothing but its link to the parent is only a value too.
    assert!(matches!(
        empty().with_edn(r#"[{:db/id "p" :person/name "q" :person/pet {}}]"#),
        Err(Error::TempidsOnlyAsValue { .. })
    ));
}

#[test]
fn the_rust_api_allocates_as_edn_does() {
    let ops: Vec<TxOp> = TxBuilder::new()
        .entity(-1, |m| m.set(":person/color", -2).set(":person/boss", "t3"))
        .entity(-2, |m| m.set(":person/name", "Blue"))
        .entity("t3", |m| m.set(":person/name", "Dee"))
        .build();
    let r = empty().with(&ops).unwrap();
    assert_eq!(
        (r.tempids["-2"], r.tempids["-1"], r.tempids["t3"]),
        (1, 2, 3)
    );
}

#[test]
fn a_tempid_in_a_retractions_value_gets_an_id_too() {
    // The tempid is given id 1 by the retraction, then asserted.
    let (ids, datoms) = run(
        &empty(),
        r#"[[:db/retract 1 :person/friend "t1"] [:db/add "t1" :person/name "x"]]"#,
    );
    assert_eq!(ids, tempids(&[("t1", 1)]));
    assert_eq!(datoms, vec![add(1, ":person/name", "x")]);
    // Never asserted, it is used only as a value (even when the entity is not found).
    let db = with(&empty(), r#"[{:person/name "Ann"}]"#);
    let err = db
        .with_edn(r#"[[:db/retract [:person/name "Ann"] :person/friend "t1"]]"#)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Tempids used only as value in transaction: ("t1")"#
    );
}

#[test]
fn a_value_tempid_is_checked_against_the_entities_asserted() {
    // On an empty db "t1" gets id 1, which is the entity asserted: accepted.
    let (ids, datoms) = run(&empty(), r#"[[:db/add 1 :person/friend "t1"]]"#);
    assert_eq!(ids, tempids(&[("t1", 1)]));
    assert_eq!(datoms, vec![add(1, ":person/friend", Value::Ref(1))]);
    let db = with(&empty(), r#"[{:person/name "Ann"}]"#);
    assert!(matches!(
        db.with_edn(r#"[[:db/add 1 :person/friend "t1"]]"#),
        Err(Error::TempidsOnlyAsValue { .. })
    ));
}

#[test]
fn a_tempid_with_an_id_upserting_to_a_new_entity_lands_on_it() {
    let (ids, datoms) = run(
        &empty(),
        r#"[[:db/add "t1" :person/friend "t2"]
            {:db/id "t2" :person/name "Bo"}
            {:db/id "t3" :person/name "Ann"}
            [:db/add "t1" :person/name "Ann"]]"#,
    );
    assert_eq!(ids, tempids(&[("t1", 3), ("t2", 1), ("t3", 3)]));
    assert_eq!(
        datoms,
        vec![
            add(3, ":person/friend", Value::Ref(1)),
            add(1, ":person/name", "Bo"),
            add(3, ":person/name", "Ann"),
        ]
    );
}

#[test]
fn a_tempid_in_a_cas_value_is_an_error() {
    // Datascript: "Expected number or lookup ref for entity id, got "t9"".
    let db = with(&empty(), r#"[{:person/name "Ann"}]"#);
    assert_eq!(
        db.with_edn(r#"[[:db/add "t9" :person/name "Bo"] [:db/cas 1 :person/friend nil "t8"]]"#)
            .unwrap_err(),
        Error::UnknownTempid {
            tempid: "t8".into(),
            attr: Keyword::new(":person/friend"),
        }
    );
}

mod allocation {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// One operation over tempids `t0`..`t3`, no unique attributes (so no upserts).
    #[derive(Clone, Debug)]
    enum Op {
        Map {
            id: Option<u8>,
            friend: Option<u8>,
            nested: bool,
        },
        Name(u8),
        Friend(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                proptest::option::of(0u8..4),
                proptest::option::of(0u8..4),
                any::<bool>()
            )
                .prop_map(|(id, friend, nested)| Op::Map { id, friend, nested }),
            (0u8..4).prop_map(Op::Name),
            (0u8..4, 0u8..4).prop_map(|(a, b)| Op::Friend(a, b)),
        ]
    }

    fn edn(ops: &[Op]) -> String {
        let mut text = String::from("[");
        for op in ops {
            match op {
                Op::Map { id, friend, nested } => {
                    text.push('{');
                    if let Some(id) = id {
                        text.push_str(&format!(":db/id \"t{id}\" "));
                    }
                    text.push_str(":person/nick \"n\"");
                    if let Some(f) = friend {
                        text.push_str(&format!(" :person/friend \"t{f}\""));
                    }
                    if *nested {
                        text.push_str(" :person/pet {:pet/name \"p\"}");
                    }
                    text.push('}');
                }
                Op::Name(t) => text.push_str(&format!("[:db/add \"t{t}\" :person/nick \"m\"]")),
                Op::Friend(a, b) => {
                    text.push_str(&format!("[:db/add \"t{a}\" :person/friend \"t{b}\"]"))
                }
            }
            text.push(' ');
        }
        text.push(']');
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Without upserts or explicit ids, a transaction's new entities are exactly the
        /// ids above `max_eid`, with no gap, one per tempid and per map without an id; a
        /// run again gives the same ids (allocation depends on the tx data only).
        #[test]
        fn new_ids_are_dense_distinct_and_deterministic(
            seed_entities in 0u64..3,
            ops in proptest::collection::vec(op(), 1..8),
        ) {
            let mut db = empty();
            for i in 0..seed_entities {
                db = with(&db, &format!("[[:db/add {} :person/nick \"seed\"]]", i + 1));
            }
            let text = edn(&ops);
            let first = db.with_edn(&text);
            let second = db.with_edn(&text);
            match (first, second) {
                (Ok(r), Ok(again)) => {
                    prop_assert_eq!(&r.tempids, &again.tempids);
                    prop_assert_eq!(&r.tx_data, &again.tx_data);
                    let new: BTreeSet<Eid> =
                        r.tx_data.iter().map(|d| d.e).filter(|&e| e > db.max_eid()).collect();
                    let expected: BTreeSet<Eid> =
                        (db.max_eid() + 1..=r.db_after.max_eid()).collect();
                    prop_assert_eq!(&new, &expected);
                    let named: BTreeSet<Eid> = r
                        .tempids
                        .iter()
                        .filter(|(t, _)| t.starts_with('t'))
                        .map(|(_, &e)| e)
                        .collect();
                    let named_count = r.tempids.keys().filter(|t| t.starts_with('t')).count();
                    prop_assert_eq!(named.len(), named_count, "two tempids share an id");
                    prop_assert!(named.is_subset(&new));
                }
                (Err(Error::TempidsOnlyAsValue { tempids }), Err(again)) => {
                    prop_assert_eq!(again, Error::TempidsOnlyAsValue { tempids });
                }
                (first, second) => prop_assert!(false, "{}: {:?} then {:?}", text, first.map(|r| r.tx_data), second.map(|r| r.tx_data)),
            }
        }
    }
}
