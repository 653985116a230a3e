//! `datoms query --history` (issue #19): Datalog over every assertion and retraction of
//! the head, or of the commit `--as-of` names.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, ok};

/// A redb database with three commits: Ann at 31, then 32, then 33.
fn aging() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("redb:{}", dir.path().join("h.redb").display());
    let schema = dir.path().join("schema.edn");
    std::fs::write(
        &schema,
        "{:person/name {:db/unique :db.unique/identity} :person/age {}}",
    )
    .unwrap();
    let schema = schema.display().to_string();
    for (i, age) in [31, 32, 33].into_iter().enumerate() {
        let tx = dir.path().join(format!("tx{i}.edn"));
        std::fs::write(
            &tx,
            format!(r#"[{{:person/name "Ann" :person/age {age}}}]"#),
        )
        .unwrap();
        let tx = tx.display().to_string();
        let mut args = vec!["transact", "--db", &db, &tx];
        if i == 0 {
            args.extend(["--schema", &schema]);
        }
        ok(&args);
    }
    let log: serde_json::Value =
        serde_json::from_str(&ok(&["log", "--db", &db, "--json"])).unwrap();
    // Newest first: the middle commit is the second entry.
    let middle = log[1]["commit"].as_str().unwrap().to_owned();
    (dir, db, middle)
}

const AGES: &str =
    "[:find ?a ?added :where [?e :person/name \"Ann\"] [?e :person/age ?a _ ?added]]";

#[test]
fn a_history_query_sees_every_assertion_and_retraction() {
    let (_dir, db, middle) = aging();
    let now = ok(&["query", "--db", &db, "--format", "edn", AGES]);
    // Without --history the fifth position reads the current db: only assertions.
    assert!(now.contains("[33 true]") && !now.contains("31"), "{now}");
    let all = ok(&["query", "--db", &db, "--history", "--format", "edn", AGES]);
    for row in [
        "[31 true]",
        "[31 false]",
        "[32 true]",
        "[32 false]",
        "[33 true]",
    ] {
        assert!(all.contains(row), "{row} missing from {all}");
    }
    assert!(!all.contains("[33 false]"), "{all}");
    // Up to the middle commit: 33 was not there yet, and 32 not yet retracted.
    let then = ok(&[
        "query",
        "--db",
        &db,
        "--history",
        "--as-of",
        &middle[..8],
        "--format",
        "edn",
        AGES,
    ]);
    assert!(
        then.contains("[32 true]") && !then.contains("[32 false]"),
        "{then}"
    );
    assert!(!then.contains("33"), "{then}");
}

#[test]
fn history_refuses_what_it_cannot_read() {
    let (_dir, db, _) = aging();
    let err = fails(&["query", "--db", &db, "--history", "[:eavt]"]);
    assert!(err.contains("--history is for Datalog"), "{err}");
    let err = fails(&["query", "--db", &db, "--history", "--as-of-tx", "1", AGES]);
    assert!(err.contains("--as-of COMMIT"), "{err}");
    let err = fails(&[
        "query",
        "--db",
        &db,
        "--history",
        "[:find (pull ?e [*]) :where [?e :person/age 31]]",
    ]);
    assert!(err.contains("pull needs"), "{err}");
}
