//! `datoms watch`: a live query on a head — the full result, then one diff per commit
//! that changes it.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn transact(db: &str, tx: &str) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("datoms"))
        .args(["transact", "--db", db, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(tx.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn watch_prints_the_result_then_each_diff_as_the_head_moves() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("redb:{}", dir.path().join("db.redb").display());
    transact(&db, r#"[{:db/id -1 :person/name "Ann" :person/age 30}]"#);
    let mut watch = Command::new(assert_cmd::cargo::cargo_bin!("datoms"))
        .args([
            "watch",
            "--db",
            &db,
            "--json",
            "--limit",
            "3",
            "--poll-ms",
            "20",
            "[:find ?n :where [?e :person/name ?n] [?e :person/age ?a] [(> ?a 18)]]",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let first = next();
    assert_eq!(first["full"], true);
    assert_eq!(first["added"], serde_json::json!([["Ann"]]));
    // A commit the query does not see changes nothing: no update.
    transact(&db, r#"[{:db/id -1 :person/name "Kid" :person/age 9}]"#);
    transact(&db, r#"[{:db/id -1 :person/name "Bob" :person/age 40}]"#);
    let second = next();
    assert_eq!(second["full"], false);
    assert_eq!(second["added"], serde_json::json!([["Bob"]]));
    assert_eq!(second["removed"], serde_json::json!([]));
    assert!(second["commit"].is_string() && second["tx"].is_number());
    transact(&db, "[[:db/retractEntity 1]]");
    let third = next();
    assert_eq!(third["removed"], serde_json::json!([["Ann"]]));
    assert!(watch.wait().unwrap().success());
}
