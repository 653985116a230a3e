//! `datoms query --explain`: the plan a Datalog query ran with, printed before its
//! result (and as JSON with `--json`); an index query refuses the flag.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, ok};

#[test]
fn explain_prints_the_plan_then_the_result() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("redb:{}", dir.path().join("db.redb").display());
    let tx = dir.path().join("tx.edn");
    std::fs::write(
        &tx,
        r#"[{:db/id 1 :name "Ivan" :age 31} {:db/id 2 :name "Petr" :age 42}
            {:db/id 3 :name "Ivan" :age 17}]"#,
    )
    .expect("the tx file");
    ok(&["transact", "--db", &url, &tx.display().to_string()]);
    let query = r#"[:find ?e ?a :where [?e :age ?a] [?e :name "Ivan"]]"#;
    let out = ok(&["query", "--db", &url, "--explain", query]);
    assert!(out.starts_with("plan:\n"), "{out}");
    assert!(out.contains("star join on ?e (2 clauses)"), "{out}");
    assert!(out.contains(r#"drive [?e :name "Ivan"]"#), "{out}");
    assert!(out.contains("result: 2 rows"), "{out}");
    // The result follows the plan, as without --explain.
    let plain = ok(&["query", "--db", &url, query]);
    assert!(out.ends_with(&plain), "{out}\n---\n{plain}");

    let json = ok(&["query", "--db", &url, "--explain", query, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert!(
        v["plan"].as_array().is_some_and(|p| !p.is_empty()),
        "{json}"
    );
    assert_eq!(v["result"].as_array().map(Vec::len), Some(2), "{json}");

    let err = fails(&["query", "--db", &url, "--explain", "[:eavt 1]"]);
    assert!(err.contains("--explain is for Datalog queries"), "{err}");
}
