#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every entry of Datascript's `built-ins` and `aggregates` tables works here, with
//! Datascript's answer (issue #16). `fixtures/datascript_builtins.edn` holds the names as
//! `datascript/built_ins.cljc` lists them and one case per name, whose expected answer
//! Datascript 1.8.1 computed; the test checks that the cases cover exactly the listed
//! names, then runs each one.

use std::collections::{BTreeMap, BTreeSet};

use datoms_core::edn::{parse, parse_schema, Edn};
use datoms_core::{q, Db, Input, QueryValue};

fn fixture() -> BTreeMap<String, Edn> {
    let text = include_str!("fixtures/datascript_builtins.edn");
    let Edn::Map(entries) = parse(text).unwrap() else {
        panic!("the fixture is a map")
    };
    entries
        .into_iter()
        .map(|(k, v)| match k {
            Edn::Keyword(k) => (k.to_string(), v),
            other => panic!("unexpected key {other}"),
        })
        .collect()
}

fn text(e: &Edn) -> &str {
    match e {
        Edn::String(s) => s,
        other => panic!("expected a string, got {other}"),
    }
}

fn names(e: &Edn) -> Vec<String> {
    let Edn::Vector(items) = e else {
        panic!("expected a vector of names")
    };
    items
        .iter()
        .map(|i| match i {
            Edn::Symbol(s) => s.clone(),
            other => panic!("expected a symbol, got {other}"),
        })
        .collect()
}

/// `(name query expected)` triples.
fn cases(e: &Edn) -> Vec<(String, String, String)> {
    let Edn::Vector(items) = e else {
        panic!("expected a vector of cases")
    };
    items
        .iter()
        .map(|c| match c {
            Edn::Vector(parts) => match parts.as_slice() {
                [Edn::Symbol(n), q, want] => (n.clone(), text(q).to_owned(), text(want).to_owned()),
                _ => panic!("a case is [name query expected], got {c}"),
            },
            other => panic!("a case is a vector, got {other}"),
        })
        .collect()
}

/// The rows of an answer, as a set (Datascript's relations are sets; a lone aggregate
/// row prints as a list).
fn rows(v: &QueryValue) -> BTreeSet<QueryValue> {
    v.as_seq()
        .unwrap_or_else(|| panic!("{v} is not a collection of rows"))
        .into_iter()
        .cloned()
        .collect()
}

#[test]
fn every_datascript_built_in_and_aggregate_answers_as_datascript() {
    let f = fixture();
    let schema = parse_schema(text(&f[":schema"])).unwrap();
    let db = Db::new(schema).with_edn(text(&f[":tx"])).unwrap().db_after;
    let agg_input = text(&f[":aggregate-input"]);

    let fn_cases = cases(&f[":fn-cases"]);
    let agg_cases = cases(&f[":aggregate-cases"]);
    let listed: BTreeSet<String> = names(&f[":query-fns"]).into_iter().collect();
    let covered: BTreeSet<String> = fn_cases.iter().map(|c| c.0.clone()).collect();
    assert_eq!(
        listed, covered,
        "one case per query function of built_ins.cljc"
    );
    let listed: BTreeSet<String> = names(&f[":aggregates"]).into_iter().collect();
    let covered: BTreeSet<String> = agg_cases.iter().map(|c| c.0.clone()).collect();
    assert_eq!(listed, covered, "one case per aggregate of built_ins.cljc");

    let mut failures = Vec::new();
    let runs = fn_cases.iter().map(|c| (c, vec![Input::Db(&db)])).chain(
        agg_cases
            .iter()
            .map(|c| (c, vec![Input::Db(&db), Input::Edn(agg_input)])),
    );
    for ((name, query, want), inputs) in runs {
        let want = rows(&QueryValue::from_edn(&parse(want).unwrap()).unwrap());
        match q(query, &inputs) {
            Ok(got) => {
                let got = rows(&got.to_value());
                if got != want {
                    failures.push(format!("{name}: {query} gave {got:?}, Datascript {want:?}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {query} failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
