//! The query planner: whatever order a query's clauses are written in, the answer is the
//! same (the planner orders them by estimated cost, and joins the patterns of one
//! entity variable together); `explain` shows the plan; short-circuits stop early.

use datoms_core::query::{Input, Query};
use datoms_core::{AttributeSchema, Db, Schema};
use proptest::prelude::*;

fn schema() -> Schema {
    Schema::new()
        .with(":c", AttributeSchema::default().many())
        .expect("schema")
        .with(
            ":r",
            AttributeSchema::default()
                .value_type(datoms_core::ValueType::Ref)
                .many(),
        )
        .expect("schema")
        .with(":b", AttributeSchema::default().indexed())
        .expect("schema")
}

/// A db of `n` entities from `draws`: each entity gets some of :a (string), :b (long,
/// indexed), :c (strings, many), :r (refs, many).
fn db(draws: &[(u8, u8, u8, u8)]) -> Db {
    let n = draws.len() as u64;
    let mut tx = String::from("[");
    for (i, (a, b, c, r)) in draws.iter().enumerate() {
        let e = i as u64 + 1;
        tx.push_str(&format!("{{:db/id {e}"));
        if a % 4 != 0 {
            tx.push_str(&format!(" :a \"s{}\"", a % 3));
        }
        if b % 5 != 0 {
            tx.push_str(&format!(" :b {}", b % 4));
        }
        if c % 3 != 0 {
            tx.push_str(&format!(" :c [\"t{}\" \"t{}\"]", c % 3, c % 5));
        }
        if r % 2 == 0 && n > 1 {
            tx.push_str(&format!(" :r [{} {}]", 1 + u64::from(*r) % n, 1 + (e % n)));
        }
        tx.push('}');
    }
    tx.push(']');
    Db::new(schema()).with_edn(&tx).expect("the db").db_after
}

const CLAUSES: &[&str] = &[
    "[?e :a \"s1\"]",
    "[?e :a ?x]",
    "[?e :b 2]",
    "[?e :b ?y]",
    "[?e :c ?z]",
    "[?e :c \"t1\"]",
    "[?e :r ?f]",
    "[?f :a ?x]",
    "[?f :b ?y]",
    "[?e :a _]",
    "[?f :r ?e]",
    "[?f :c ?z]",
    "[?e :a \"nobody\"]",
    "[?f :b 1]",
];

fn vars_of(clauses: &[&str]) -> Vec<&'static str> {
    ["?e", "?f", "?x", "?y", "?z"]
        .into_iter()
        .filter(|v| clauses.iter().any(|c| c.contains(v)))
        .collect()
}

fn answer(db: &Db, clauses: &[&str], find: &[&str]) -> String {
    let text = format!("[:find {} :where {}]", find.join(" "), clauses.join(" "));
    Query::parse(&text)
        .expect("the query parses")
        .run(&[Input::Db(db)])
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_clause_order_gives_the_same_answer(
        draws in proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 1..40),
        picked in proptest::sample::subsequence(CLAUSES.to_vec(), 1..5),
        seed in any::<u64>(),
    ) {
        let db = db(&draws);
        let find = vars_of(&picked);
        let want = answer(&db, &picked, &find);
        // Every rotation and a seeded shuffle of the clauses.
        let mut orders: Vec<Vec<&str>> = (0..picked.len())
            .map(|k| {
                let mut o = picked.clone();
                o.rotate_left(k);
                o
            })
            .collect();
        let mut shuffled = picked.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        orders.push(shuffled);
        orders.push(picked.iter().rev().copied().collect());
        for order in orders {
            prop_assert_eq!(answer(&db, &order, &find), want.clone(), "order {:?}", order);
        }
    }
}

fn people() -> Db {
    let draws: Vec<(u8, u8, u8, u8)> = (0..200u32)
        .map(|i| ((i * 7) as u8, (i * 3) as u8, (i * 11) as u8, (i * 5) as u8))
        .collect();
    db(&draws)
}

#[test]
fn explain_shows_a_star_join_driven_by_the_most_selective_pattern() {
    let db = people();
    let q = Query::parse("[:find ?e ?x :where [?e :a ?x] [?e :b 2] [?e :c \"t1\"]]").unwrap();
    let explained = q.explain(&[Input::Db(&db)]).unwrap();
    let text = explained.to_string();
    assert!(text.contains("star join on ?e (3 clauses)"), "{text}");
    // :b is indexed: the value 2 is counted in AVET and read from there first.
    let drive = explained
        .steps
        .iter()
        .find(|s| s.contains("drive"))
        .unwrap();
    assert!(
        drive.contains("[?e :b 2]") && drive.contains("AVET lookup"),
        "{text}"
    );
    assert_eq!(explained.result, q.run(&[Input::Db(&db)]).unwrap());
}

#[test]
fn a_pattern_that_matches_nothing_stops_the_star_before_the_others_are_read() {
    let db = people();
    let q = Query::parse(
        "[:find ?e ?n ?x :in $ ?n :where [?e :c ?x] [?e :a ?n] [?e :b ?y] [?e :r ?f]]",
    )
    .unwrap();
    let explained = q
        .explain(&[Input::Db(&db), Input::Scalar("Anastasia".into())])
        .unwrap();
    let text = explained.to_string();
    assert!(explained.result.is_empty(), "{text}");
    assert!(
        text.contains("stop: no entity left, 3 clause(s) not read"),
        "{text}"
    );
}

#[test]
fn clauses_with_a_bound_value_variable_join_on_it() {
    // q5-join's shape: the second star filters on ?y bound by the first.
    let db = people();
    let a = "[:find ?f ?x ?y :where [?e :a \"s1\"] [?e :b ?y] [?f :b ?y] [?f :a ?x]]";
    let b = "[:find ?f ?x ?y :where [?f :a ?x] [?f :b ?y] [?e :b ?y] [?e :a \"s1\"]]";
    let run = |t: &str| Query::parse(t).unwrap().run(&[Input::Db(&db)]).unwrap();
    assert_eq!(run(a), run(b));
    assert!(!run(a).is_empty());
}
