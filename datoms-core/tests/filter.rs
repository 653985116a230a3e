#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Filtered dbs (`Db::filter`, issue #16): Datascript's own `test/datascript/test/filter.cljc`
//! ported, with its expected answers, plus pull, lookup refs, index ranges and the writes
//! a filtered db refuses.

use datoms_core::edn::parse_schema;
use datoms_core::{
    q, Component, Datom, Db, EntityValue, Error, IndexKind, Input, QueryValue, Value,
};

fn db() -> Db {
    let schema = parse_schema(
        "{:aka {:db/cardinality :db.cardinality/many}
          :email {:db/unique :db.unique/identity}}",
    )
    .unwrap();
    Db::new(schema)
        .with_edn(
            r#"[{:db/id 1 :name "Petr" :email "petya@spb.ru" :aka ["I" "Great"] :password "<SECRET>"}
                {:db/id 2 :name "Ivan" :aka ["Terrible" "IV"] :password "<PROTECTED>"}
                {:db/id 3 :name "Nikolai" :aka ["II"] :password "<UNKWOWN>"}]"#,
        )
        .unwrap()
        .db_after
}

fn remove_pass(_: &Db, d: &Datom) -> bool {
    d.a.as_str() != "password"
}

fn remove_ivan(_: &Db, d: &Datom) -> bool {
    d.e != 2
}

/// Keeps an `:aka` only where its entity has one aka (in the unfiltered db) or it is at
/// least 4 characters long.
fn long_akas(udb: &Db, d: &Datom) -> bool {
    if d.a.as_str() != "aka" {
        return true;
    }
    let count = udb.entity_attr(d.e, &d.a).unwrap().len();
    let long = matches!(&d.v, Value::String(s) if s.chars().count() >= 4);
    count <= 1 || long
}

fn strings(db: &Db, query: &str) -> String {
    q(query, &[Input::Db(db)]).unwrap().to_string()
}

#[test]
fn queries_see_only_what_the_filters_accept_and_filters_compose() {
    let db = db();
    let pass = "[:find ?v :where [_ :password ?v]]";
    assert_eq!(
        strings(&db, pass),
        r#"#{["<PROTECTED>"] ["<SECRET>"] ["<UNKWOWN>"]}"#
    );
    assert_eq!(strings(&db.filter(remove_pass), pass), "#{}");
    assert_eq!(
        strings(&db.filter(remove_ivan), pass),
        r#"#{["<SECRET>"] ["<UNKWOWN>"]}"#
    );
    assert_eq!(
        strings(&db.filter(remove_ivan).filter(remove_pass), pass),
        "#{}"
    );

    let aka = "[:find ?v :where [_ :aka ?v]]";
    assert_eq!(
        strings(&db, aka),
        r#"#{["Great"] ["I"] ["II"] ["IV"] ["Terrible"]}"#
    );
    assert_eq!(
        strings(&db.filter(remove_pass), aka),
        r#"#{["Great"] ["I"] ["II"] ["IV"] ["Terrible"]}"#
    );
    assert_eq!(
        strings(&db.filter(remove_ivan), aka),
        r#"#{["Great"] ["I"] ["II"]}"#
    );
    assert_eq!(
        strings(&db.filter(long_akas), aka),
        r#"#{["Great"] ["II"] ["Terrible"]}"#
    );
    // Each predicate gets the unfiltered db, in either order.
    assert_eq!(
        strings(&db.filter(remove_ivan).filter(long_akas), aka),
        r#"#{["Great"] ["II"]}"#
    );
    assert_eq!(
        strings(&db.filter(long_akas).filter(remove_ivan), aka),
        r#"#{["Great"] ["II"]}"#
    );
}

#[test]
fn entities_see_only_what_the_filter_accepts() {
    let db = db();
    let pw = |db: &Db| db.entity(1).get(":password").unwrap();
    assert_eq!(pw(&db), Some(EntityValue::Value(Value::from("<SECRET>"))));
    assert_eq!(pw(&db.filter(remove_pass)), None);
    let akas = |db: &Db| match db.entity(2).get(":aka").unwrap() {
        Some(EntityValue::Many(vs)) => vs.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(akas(&db), 2);
    assert_eq!(akas(&db.filter(long_akas)), 1);
}

#[test]
fn index_reads_see_only_what_the_filter_accepts() {
    let db = db();
    let values = |db: &Db| -> Vec<Value> {
        db.datoms(IndexKind::Aevt, &[Component::A(":password".into())])
            .unwrap()
            .map(|d| d.unwrap().v)
            .collect()
    };
    assert_eq!(
        values(&db),
        vec![
            Value::from("<SECRET>"),
            Value::from("<PROTECTED>"),
            Value::from("<UNKWOWN>")
        ]
    );
    assert!(values(&db.filter(remove_pass)).is_empty());
    // seek-datoms, rseek-datoms and the entity reads too.
    let f = db.filter(remove_ivan);
    let es: Vec<u64> = f
        .seek_datoms(IndexKind::Eavt, &[Component::E(2)])
        .unwrap()
        .map(|d| d.unwrap().e)
        .collect();
    assert!(es.iter().all(|e| *e == 3) && !es.is_empty(), "{es:?}");
    let es: Vec<u64> = f
        .rseek_datoms(IndexKind::Eavt, &[Component::E(2)])
        .unwrap()
        .map(|d| d.unwrap().e)
        .collect();
    assert!(es.iter().all(|e| *e == 1) && !es.is_empty(), "{es:?}");
    assert!(f.entity_datoms(2).unwrap().is_empty());
    assert_eq!(db.entity_datoms(2).unwrap().len(), 4);
}

#[test]
fn double_filtering_passes_the_unfiltered_db_to_each_predicate() {
    // filter.cljc "double filtering".
    let db = Db::new(parse_schema("{}").unwrap())
        .with_edn(
            r#"[{:db/id 1 :name "Petr" :age 32} {:db/id 2 :name "Oleg"}
                {:db/id 3 :name "Ivan" :age 12}]"#,
        )
        .unwrap()
        .db_after;
    let age = |db: &Db, e: u64| -> Option<i64> {
        db.entity_attr(e, &":age".into())
            .unwrap()
            .first()
            .and_then(|d| match d.v {
                Value::Long(n) => Some(n),
                _ => None,
            })
    };
    let has_age = move |db: &Db, d: &Datom| age(db, d.e).is_some();
    let adult = move |db: &Db, d: &Datom| age(db, d.e).is_some_and(|a| a >= 18);
    let names = |db: &Db| -> Vec<Value> {
        db.datoms(IndexKind::Aevt, &[Component::A(":name".into())])
            .unwrap()
            .map(|d| d.unwrap().v)
            .collect()
    };
    let v = |s: &[&str]| s.iter().map(|s| Value::from(*s)).collect::<Vec<_>>();
    assert_eq!(names(&db), v(&["Petr", "Oleg", "Ivan"]));
    assert_eq!(names(&db.filter(has_age)), v(&["Petr", "Ivan"]));
    assert_eq!(names(&db.filter(has_age).filter(adult)), v(&["Petr"]));
}

#[test]
fn pull_lookup_refs_and_index_ranges_read_through_the_filter() {
    let db = db();
    let f = db.filter(remove_pass).filter(remove_ivan);
    assert_eq!(
        f.pull("[:name :password]", 1).unwrap().to_string(),
        r#"{:name "Petr"}"#
    );
    assert_eq!(f.pull("[:name]", 2).unwrap(), QueryValue::Nil);
    assert_eq!(
        db.lookup_ref(&":email".into(), &Value::from("petya@spb.ru"))
            .unwrap(),
        Some(1)
    );
    let hide_petr = db.filter(|_, d| d.e != 1);
    assert_eq!(
        hide_petr
            .lookup_ref(&":email".into(), &Value::from("petya@spb.ru"))
            .unwrap(),
        None
    );
    let emails: Vec<_> = hide_petr
        .index_range(&":email".into(), None, None)
        .unwrap()
        .collect();
    assert!(emails.is_empty());
    assert!(f.is_filtered() && !f.unfiltered().is_filtered());
    assert_eq!(f.unfiltered().entity_datoms(2).unwrap().len(), 4);
}

#[test]
fn a_filtered_db_cannot_be_transacted_or_stored() {
    let f = db().filter(remove_pass);
    let e = f.with_edn(r#"[[:db/add 1 :name "X"]]"#).unwrap_err();
    assert_eq!(
        e,
        Error::FilteredDb {
            operation: "transacted"
        }
    );
    assert!(matches!(
        datoms_core::addressing::commit_for(&f),
        Err(Error::FilteredDb {
            operation: "stored"
        })
    ));
    // The unfiltered db still transacts.
    assert!(f
        .unfiltered()
        .with_edn(r#"[[:db/add 1 :name "X"]]"#)
        .is_ok());
}

mod property {
    use super::*;
    use datoms_core::TreeConfig;
    use proptest::prelude::*;

    fn schema() -> datoms_core::Schema {
        parse_schema(
            "{:b {:db/cardinality :db.cardinality/many}
              :r {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}",
        )
        .unwrap()
    }

    /// `[e a v]` facts over entities 1–8: `:a` a long, `:b` strings, `:r` refs.
    fn facts() -> impl Strategy<Value = Vec<(u64, u8, i64)>> {
        prop::collection::vec((1u64..=8, 0u8..3, 0i64..8), 1..40)
    }

    fn tx(facts: &[(u64, u8, i64)]) -> String {
        let ops: Vec<String> = facts
            .iter()
            .map(|(e, a, v)| match a {
                0 => format!("[:db/add {e} :a {v}]"),
                1 => format!("[:db/add {e} :b \"s{v}\"]"),
                _ => format!("[:db/add {e} :r {}]", v + 1),
            })
            .collect();
        format!("[{}]", ops.join(" "))
    }

    /// Predicates that look only at the datom, so a filtered db must answer as the db
    /// holding exactly the datoms they accept.
    fn pred(k: u8) -> fn(&Db, &Datom) -> bool {
        match k {
            0 => |_, d| d.e % 2 == 0,
            1 => |_, d| d.a.as_str() != "b",
            2 => |_, d| !matches!(d.v, Value::Long(n) if n >= 4),
            _ => |_, d| d.e != 3,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn a_filtered_db_answers_as_the_db_of_the_datoms_it_accepts(
            facts in facts(), p in 0u8..4, q2 in 0u8..4,
        ) {
            let db = Db::new(schema()).with_edn(&tx(&facts)).unwrap().db_after;
            let (p, q2) = (pred(p), pred(q2));
            let view = db.filter(p).filter(q2);
            let all: Vec<Datom> = db.datoms(IndexKind::Eavt, &[]).unwrap().map(Result::unwrap).collect();
            let kept: Vec<Datom> = all.iter().filter(|d| p(&db, d) && q2(&db, d)).cloned().collect();
            let plain = Db::bulk_load(schema(), TreeConfig::default(), kept.clone(), db.max_eid(), db.max_tx()).unwrap();
            for index in [IndexKind::Eavt, IndexKind::Aevt] {
                let got: Vec<Datom> = view.datoms(index, &[]).unwrap().map(Result::unwrap).collect();
                let want: Vec<Datom> = plain.datoms(index, &[]).unwrap().map(Result::unwrap).collect();
                prop_assert_eq!(got, want);
            }
            let refs = |d: &Db| -> Vec<Datom> {
                d.index_range(&":r".into(), Some(&Value::Ref(2)), Some(&Value::Ref(6)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            };
            prop_assert_eq!(refs(&view), refs(&plain));
            for query in [
                "[:find ?e ?a ?v :where [?e ?a ?v]]",
                "[:find ?e ?n :where [?e :r ?f] [?f :a ?n]]",
                "[:find ?e (count ?b) :where [?e :b ?b]]",
            ] {
                prop_assert_eq!(
                    q(query, &[Input::Db(&view)]).unwrap(),
                    q(query, &[Input::Db(&plain)]).unwrap()
                );
            }
            for e in 1..=8 {
                prop_assert_eq!(
                    view.pull("[* {:_r [:db/id]}]", e).unwrap(),
                    plain.pull("[* {:_r [:db/id]}]", e).unwrap()
                );
            }
        }
    }
}
