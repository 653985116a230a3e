#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Functions as query values (issue #16): Rust functions passed through `:in` and called
//! in function position, `complement`, `type`, and custom aggregates through
//! `(aggregate ?agg ?x)`. The cases are Datascript's own tests (named in each comment,
//! from tonsky/datascript test/datascript/test/*.cljc) with their expected answers.

use datoms_core::edn::parse_schema;
use datoms_core::query::{q, FnArg, Input, QueryFn, QueryValue};
use datoms_core::{Db, EntityValue, Error, Schema};

fn people() -> Db {
    Db::new(Schema::new())
        .with_edn(
            r#"[{:db/id 1 :name "Ivan" :age 10} {:db/id 2 :name "Ivan" :age 20}
                {:db/id 3 :name "Oleg" :age 10} {:db/id 4 :name "Oleg" :age 20}]"#,
        )
        .unwrap()
        .db_after
}

#[test]
fn a_function_input_taking_the_db_is_called_per_row() {
    // query_fns.cljc test-predicates: (fn [db e a] (= a (:age (d/entity db e)))) => #{[1] [3]}
    let db = people();
    let pred = QueryFn::new("pred", |args| {
        let (Some(db), Some(e), Some(a)) = (args[0].db(), args[1].value(), args[2].value()) else {
            return Err("expected a db, an entity and a value".into());
        };
        let e = e.as_long().ok_or("not an entity")?.unsigned_abs();
        let age = match db.entity(e).get(":age").map_err(|e| e.to_string())? {
            Some(EntityValue::Value(v)) => QueryValue::from_value(v),
            _ => QueryValue::Nil,
        };
        Ok(QueryValue::bool(age == *a))
    });
    let r = q(
        "[:find ?e :in $ ?pred :where [?e :age ?a] [(?pred $ ?e 10)]]",
        &[Input::Db(&db), Input::Fn(pred)],
    )
    .unwrap();
    assert_eq!(r.to_string(), "#{[1] [3]}");
}

#[test]
fn function_inputs_bind_results_and_unify_them() {
    // query_fns.cljc test-fn-call-results-unification (issue 490), with first and second.
    let first = QueryFn::values("first", |a| {
        Ok(a[0]
            .as_seq()
            .and_then(|s| s.first().copied().cloned())
            .unwrap_or(QueryValue::Nil))
    });
    let second = QueryFn::values("second", |a| {
        Ok(a[0]
            .as_seq()
            .and_then(|s| s.get(1).copied().cloned())
            .unwrap_or(QueryValue::Nil))
    });
    let r = q(
        "[:find ?pair ?x :in $ ?first ?second
          :where [_ _ ?pair] [(?first ?pair) ?x] [(?second ?pair) ?x]]",
        &[
            Input::Edn("[[1 :pair [:a :a]] [2 :pair [:b :c]]]"),
            Input::Fn(first),
            Input::Fn(second),
        ],
    )
    .unwrap();
    assert_eq!(r.to_string(), "#{[[:a :a] :a]}");
}

#[test]
fn function_inputs_pass_through_rules() {
    // query_rules.cljc "Passing ins to rule": even? through a rule argument => #{[4 6] [2 4]}
    let even = QueryFn::predicate("even?", |a| a[0].as_long().is_some_and(|n| n % 2 == 0));
    let r = q(
        "[:find ?x ?y :in $ % ?even :where (match ?even ?x ?y)]",
        &[
            Input::Edn("[[5 :follow 3] [1 :follow 2] [2 :follow 3] [3 :follow 4] [4 :follow 6] [2 :follow 4]]"),
            Input::Rules("[[(match ?pred ?e ?e2) [?e :follow ?e2] [(?pred ?e)] [(?pred ?e2)]]]"),
            Input::Fn(even),
        ],
    )
    .unwrap();
    assert_eq!(r.to_string(), "#{[2 4] [4 6]}");
}

#[test]
fn complement_negates_a_function_input_and_a_built_in() {
    let db = people();
    let old = QueryFn::predicate("old?", |a| a[0].as_long().is_some_and(|n| n >= 18));
    let r = q(
        "[:find ?e :in $ ?old :where [?e :age ?a] [(complement ?old) ?young] [(?young ?a)]]",
        &[Input::Db(&db), Input::Fn(old)],
    )
    .unwrap();
    assert_eq!(r.to_string(), "#{[1] [3]}");
    // Clojure: ((complement zero?) 0) is false, ((complement zero?) 2) true. (Datascript
    // under JavaScript fails calling it: a built-in's name is a plain symbol there.)
    let r = q(
        "[:find ?x :in [?x ...] :where [(complement zero?) ?nz] [(?nz ?x)]]",
        &[Input::Edn("[0 2 3]")],
    )
    .unwrap();
    assert_eq!(r.to_string(), "#{[2] [3]}");
}

#[test]
fn a_plain_symbol_argument_is_a_built_in_or_nil() {
    // Datascript 1.8.1: [(str foo) ?r] => #{[""]}, [(vector foo 1) ?r] => #{[[nil 1]]}
    assert_eq!(
        q("[:find ?r :where [(str foo) ?r]]", &[])
            .unwrap()
            .to_string(),
        r#"#{[""]}"#
    );
    assert_eq!(
        q("[:find ?r :where [(vector foo 1) ?r]]", &[])
            .unwrap()
            .to_string(),
        "#{[[nil 1]]}"
    );
}

#[test]
fn a_variable_bound_to_a_non_function_is_an_error_naming_it() {
    let e = q(
        "[:find ?x :in ?f [?x ...] :where [(?f ?x)]]",
        &[Input::Edn("5"), Input::Edn("[1]")],
    )
    .unwrap_err();
    assert!(matches!(e, Error::QueryEval { .. }), "{e:?}");
    assert!(e.to_string().contains("not a function"), "{e}");
}

#[test]
fn type_names_the_class_of_a_value() {
    // Clojure (JVM): (type "a") is java.lang.String; Datascript under JavaScript answers
    // the constructor (#object[String]). Types compare equal across values of one type.
    let r = q(
        r#"[:find ?t ?same :where [(type "a") ?t] [(type "b") ?u] [(= ?t ?u) ?same]]"#,
        &[],
    )
    .unwrap();
    assert_eq!(r.to_string(), "#{[java.lang.String true]}");
    let r = q(
        "[:find ?t . :in ?f :where [(type ?f) ?t]]",
        &[Input::Fn(QueryFn::predicate("p", |_| true))],
    )
    .unwrap();
    assert_eq!(r.to_string(), "clojure.lang.IFn");
}

#[test]
fn a_custom_aggregate_is_an_input_function() {
    // query_aggregates.cljc "Custom aggregates": sort-reverse => #{[:red [5 4 3 2 1]] [:blue [8 7]]}
    let sort_reverse = QueryFn::values("sort-reverse", |a| {
        let mut items: Vec<QueryValue> = a[0]
            .as_seq()
            .ok_or("expected values")?
            .into_iter()
            .cloned()
            .collect();
        items.sort();
        items.reverse();
        Ok(QueryValue::Vector(items))
    });
    let r = q(
        "[:find ?color (aggregate ?agg ?x) :in [[?color ?x]] ?agg]",
        &[
            Input::Edn("[[:red 1] [:red 2] [:red 3] [:red 4] [:red 5] [:blue 7] [:blue 8]]"),
            Input::Fn(sort_reverse),
        ],
    )
    .unwrap();
    assert_eq!(r.to_string(), "#{[:blue [8 7]] [:red [5 4 3 2 1]]}");
}

#[test]
fn aggregate_passes_constant_arguments_before_the_values() {
    let take = QueryFn::values("take", |a| {
        let n = usize::try_from(a[0].as_long().ok_or("n")?).map_err(|e| e.to_string())?;
        let mut items: Vec<QueryValue> = a[1]
            .as_seq()
            .ok_or("values")?
            .into_iter()
            .cloned()
            .collect();
        items.sort();
        items.truncate(n);
        Ok(QueryValue::Vector(items))
    });
    let r = q(
        "[:find (aggregate ?take 2 ?x) . :in [?x ...] ?take]",
        &[Input::Edn("[9 4 7 1]"), Input::Fn(take)],
    )
    .unwrap();
    assert_eq!(r.to_string(), "[1 4]");
    let e = q(
        "[:find (aggregate ?f ?x) . :in [?x ...] ?f]",
        &[Input::Edn("[1]"), Input::Edn("3")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("aggregate takes a function"), "{e}");
}

#[test]
fn a_function_input_sees_a_source_of_tuples() {
    let schema = parse_schema("{}").unwrap();
    let db = Db::new(schema);
    let size = QueryFn::new("size", |args| match args[0] {
        FnArg::Tuples(t) => Ok(QueryValue::long(i64::try_from(t.len()).unwrap())),
        _ => Err("expected tuples".into()),
    });
    let r = q(
        "[:find ?n . :in $ $t ?size :where [(?size $t) ?n]]",
        &[Input::Db(&db), Input::Edn("[[1] [2] [3]]"), Input::Fn(size)],
    )
    .unwrap();
    assert_eq!(r.to_string(), "3");
}

mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A function input keeps exactly what the built-in it mirrors keeps, and its
        /// complement keeps the rest.
        #[test]
        fn a_function_and_its_complement_partition_the_rows(xs in prop::collection::vec(-20i64..20, 0..30), k in -20i64..20) {
            let coll = format!("[{}]", xs.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "));
            let above = QueryFn::predicate("above", move |a| a[0].as_long().is_some_and(|n| n > k));
            let run = |query: &str| {
                q(query, &[Input::Edn(&coll), Input::Fn(above.clone()), Input::Scalar(QueryValue::long(k))])
                    .unwrap()
                    .to_string()
            };
            let with_fn = run("[:find ?x :in [?x ...] ?f ?k :where [(?f ?x)]]");
            let built_in = run("[:find ?x :in [?x ...] ?f ?k :where [(> ?x ?k)]]");
            prop_assert_eq!(&with_fn, &built_in);
            let rest = run("[:find ?x :in [?x ...] ?f ?k :where [(complement ?f) ?g] [(?g ?x)]]");
            let at_most = run("[:find ?x :in [?x ...] ?f ?k :where [(<= ?x ?k)]]");
            prop_assert_eq!(rest, at_most);
        }
    }
}
