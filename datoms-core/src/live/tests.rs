use super::*;
use crate::query::q;
use crate::schema::{AttributeSchema, Schema};
use crate::tx::Conn;
use crate::value::ValueType;

fn conn() -> Conn {
    let schema = Schema::new()
        .with(
            ":friend",
            AttributeSchema::default().value_type(ValueType::Ref).many(),
        )
        .and_then(|s| s.with(":name", AttributeSchema::default().identity()))
        .expect("schema");
    Conn::new(Db::new(schema))
}

/// The live result equals a fresh run of the query.
fn check(conn: &Conn, watch: &Watch, query: &str, inputs: &[LiveInput]) {
    let db = conn.db();
    let ins: Vec<Input<'_>> = inputs.iter().map(|i| i.as_input(&db)).collect();
    let fresh = q(query, &ins).expect("fresh");
    assert_eq!(watch.result(), Some(fresh), "{query}");
}

#[test]
fn a_row_derived_twice_leaves_when_both_derivations_are_gone() {
    let c = conn();
    let query = "[:find ?n :where [?e :friend ?f] [?f :name ?n]]";
    let w = c.watch(query, vec![LiveInput::Db]).expect("watch");
    assert!(w.is_incremental());
    let first = w.try_next().expect("first").expect("ok");
    assert!(first.full && first.added.is_empty());
    c.transact_edn(r#"[{:db/id 1 :name "Ann"} {:db/id 2 :friend 1} {:db/id 3 :friend 1}]"#)
        .expect("tx");
    let u = w.try_next().expect("update").expect("ok");
    assert_eq!(u.added, vec![vec![QueryValue::string("Ann")]]);
    assert_eq!(u.basis, Basis::of(&c.db()));
    c.transact_edn("[[:db/retract 2 :friend 1]]").expect("tx");
    assert!(w.try_next().is_none(), "still derived through 3");
    check(&c, &w, query, &[LiveInput::Db]);
    c.transact_edn("[[:db/retractEntity 3]]").expect("tx");
    let u = w.try_next().expect("update").expect("ok");
    assert_eq!(u.removed, vec![vec![QueryValue::string("Ann")]]);
    check(&c, &w, query, &[LiveInput::Db]);
}

#[test]
fn untouched_attributes_touch_no_query_and_dropping_ends_the_watch() {
    let c = conn();
    let w = c
        .watch("[:find ?e :where [?e :name \"Ann\"]]", vec![LiveInput::Db])
        .expect("watch");
    let _ = w.drain();
    let before = c.db();
    let after = before.with_edn("[{:db/id 5 :age 3}]").expect("tx");
    let stats = c.live().apply(&before, &after.db_after, &after.tx_data);
    assert_eq!(stats.touched, 0);
    let after = before.with_edn("[{:db/id 5 :name \"Bob\"}]").expect("tx");
    let stats = c.live().apply(&before, &after.db_after, &after.tx_data);
    assert_eq!(
        (stats.touched, stats.updates),
        (0, 0),
        "constant value indexed"
    );
    drop(w);
    assert!(c.live().is_empty());
}

#[test]
fn aggregates_inputs_predicates_and_shapes_stay_equal_to_a_fresh_query() {
    let c = conn();
    let cases: Vec<(&str, Vec<LiveInput>)> = vec![
        (
            "[:find ?n (count ?f) :where [?e :name ?n] [?e :friend ?f]]",
            vec![LiveInput::Db],
        ),
        ("[:find (sum ?a) . :where [_ :age ?a]]", vec![LiveInput::Db]),
        (
            "[:find ?a :with ?e :where [?e :age ?a]]",
            vec![LiveInput::Db],
        ),
        (
            "[:find [?n ...] :in $ ?min :where [?e :age ?a] [(>= ?a ?min)] [?e :name ?n]]",
            vec![LiveInput::Db, LiveInput::Scalar(QueryValue::long(18))],
        ),
        (
            "[:find ?n ?b :keys n b :where [?e :name ?n] [?e :age ?a] [(+ ?a 1) ?b]]",
            vec![LiveInput::Db],
        ),
        (
            "[:find ?e :in $ [?n ...] :where [?e :name ?n]]",
            vec![LiveInput::Db, LiveInput::Edn("[\"Ann\" \"Cid\"]".into())],
        ),
        (
            "[:find ?e . :where [?e :name \"Bob\"]]",
            vec![LiveInput::Db],
        ),
        (
            "[:find ?e :where [?e :name] (not [?e :friend _])]",
            vec![LiveInput::Db],
        ),
    ];
    let watches: Vec<Watch> = cases
        .iter()
        .map(|(qt, ins)| c.watch(qt, ins.clone()).expect("watch"))
        .collect();
    assert!(watches[0].is_incremental() && !watches[7].is_incremental());
    for tx in [
        r#"[{:db/id 1 :name "Ann" :age 31} {:db/id 2 :name "Bob" :age 12 :friend [1]}]"#,
        r#"[{:db/id 3 :name "Cid" :age 31 :friend [1 2]} [:db/add 1 :friend 3]]"#,
        "[[:db/add 2 :age 31] [:db/retract 3 :friend 1]]",
        "[[:db/retractEntity 1]]",
        r#"[{:db/id 2 :name "Bob" :age 40}]"#,
    ] {
        c.transact_edn(tx).expect("tx");
        for ((qt, ins), w) in cases.iter().zip(&watches) {
            check(&c, w, qt, ins);
        }
    }
}

#[test]
fn live_pull_sends_a_tree_only_when_it_changed() {
    let c = conn();
    c.transact_edn(r#"[{:db/id 1 :name "Ann"}]"#).expect("tx");
    let w = c
        .watch_pull("[:name {:friend [:name]}]", QueryValue::entity(1))
        .expect("watch");
    assert!(w.try_next().is_some());
    c.transact_edn("[{:db/id 7 :age 1}]").expect("tx");
    assert!(w.try_next().is_none());
    c.transact_edn(r#"[{:db/id 2 :name "Bob"} [:db/add 1 :friend 2]]"#)
        .expect("tx");
    let u = w.try_next().expect("update").expect("ok");
    assert_eq!(
        u.value,
        c.db().pull("[:name {:friend [:name]}]", 1).expect("pull")
    );
}

#[test]
fn net_change_cancels_a_datom_retracted_and_asserted_again() {
    let d = Datom::new(1, ":a", 1i64, 5);
    let (added, retracted) = net_change(&[d.clone().retraction(), d.clone()]);
    assert!(added.is_empty() && retracted.is_empty());
    let (added, retracted) = net_change(std::slice::from_ref(&d));
    assert_eq!((added.len(), retracted.len()), (1, 0));
}
