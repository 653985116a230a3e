//! `datoms merge`, `datoms log --graph`, `--as-of INSTANT` and `--since` (issue #19), run
//! for real against temporary redb files.

#![allow(clippy::unwrap_used)]

use serde_json::Value as Json;

mod common;
use common::{fails, ok, run};

struct Db {
    dir: tempfile::TempDir,
    url: String,
}

impl Db {
    /// A database with Ann (age 30) on main, and a branch `draft` at that commit.
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("redb:{}", dir.path().join("p.datoms").display());
        let db = Db { dir, url };
        db.transact("main", r#"[{:db/id -1 :person/name "Ann" :person/age 30}]"#);
        ok(&["branch", "create", "draft", "--db", &db.url]);
        db
    }

    fn transact(&self, head: &str, edn: &str) {
        let path = self.dir.path().join("tx.edn");
        std::fs::write(&path, edn).unwrap();
        ok(&[
            "transact",
            "--db",
            &self.url,
            "--head",
            head,
            path.to_str().unwrap(),
        ]);
    }

    fn json(&self, args: &[&str]) -> Json {
        let mut all = args.to_vec();
        all.extend(["--db", &self.url, "--json"]);
        serde_json::from_str(&ok(&all)).unwrap()
    }

    fn datoms(&self, args: &[&str]) -> String {
        let mut all = vec!["query"];
        all.extend(args);
        all.extend(["--db", &self.url, "[:eavt]"]);
        ok(&all)
    }
}

#[test]
fn merge_combines_branches_and_log_graph_draws_it() {
    let db = Db::new();
    db.transact("main", "[[:db/add 1 :person/age 31]]");
    db.transact("draft", r#"[{:db/id -1 :person/name "Bob"}]"#);
    let out = db.json(&["merge", "draft"]);
    assert_eq!(out["outcome"], "merged", "{out}");
    assert_eq!(out["added"], 1);
    let text = db.datoms(&[]);
    assert!(
        text.contains("\"Bob\"") && text.contains(":person/age 31"),
        "{text}"
    );
    let log = db.json(&["log", "-n", "1"]);
    assert_eq!(log[0]["merged"].as_array().unwrap().len(), 1, "{log}");
    let graph = ok(&["log", "--graph", "--db", &db.url]);
    let lines: Vec<&str> = graph.lines().collect();
    assert!(
        lines[0].starts_with("* ") && lines[0].contains("merge of"),
        "{graph}"
    );
    assert_eq!(lines[1], "|\\", "{graph}");
    assert!(lines.contains(&"|/"), "{graph}");
    assert_eq!(
        lines.iter().filter(|l| l.contains('*')).count(),
        4,
        "{graph}"
    );
    // Again: up to date; draft onto main: a fast-forward.
    assert_eq!(db.json(&["merge", "draft"])["outcome"], "up_to_date");
    let ff = db.json(&["merge", "main", "--into", "draft"]);
    assert_eq!(ff["outcome"], "fast_forward");
    assert_eq!(
        db.json(&["log", "--head", "draft", "-n", "1"])[0]["commit"],
        log[0]["commit"]
    );
}

#[test]
fn conflicts_are_listed_and_nothing_is_written_unless_a_strategy_says() {
    let db = Db::new();
    db.transact("main", "[[:db/add 1 :person/age 31]]");
    db.transact("draft", "[[:db/add 1 :person/age 32]]");
    let before = db.json(&["log", "-n", "1"])[0]["commit"].clone();
    let text = fails(&["merge", "draft", "--db", &db.url]);
    assert!(text.contains("1 conflict(s), nothing was merged"), "{text}");
    assert!(
        text.contains("cardinality-one: entity 1 :person/age: ours set 31, theirs set 32"),
        "{text}"
    );
    let out = run(&["merge", "draft", "--db", &db.url, "--json"]);
    assert!(!out.status.success());
    let doc: Json = serde_json::from_slice(&out.stdout).unwrap();
    let conflict = &doc["error"]["conflicts"][0];
    assert_eq!(doc["error"]["kind"], "merge_conflicts");
    assert_eq!(
        (
            &conflict["kind"],
            &conflict["entity"],
            &conflict["attribute"]
        ),
        (
            &Json::from("cardinality-one"),
            &Json::from(1),
            &Json::from(":person/age")
        )
    );
    assert_eq!(
        (&conflict["ours"], &conflict["theirs"]),
        (&Json::from(31), &Json::from(32))
    );
    assert_eq!(
        db.json(&["log", "-n", "1"])[0]["commit"],
        before,
        "nothing written"
    );
    let out = db.json(&["merge", "draft", "--strategy", "ours"]);
    assert_eq!(out["resolved"][0]["taken"], "ours");
    assert!(db.datoms(&[]).contains(":person/age 31"));
}

#[test]
fn as_of_an_instant_and_since_a_commit() {
    let db = Db::new();
    let first = db.json(&["log", "-n", "1"])[0].clone();
    db.transact("main", r#"[{:db/id -1 :person/name "Bob"}]"#);
    let time = first["time"].as_str().unwrap();
    // At the first commit's own time: the first commit, whatever came after.
    let then = db.datoms(&["--as-of", time]);
    assert!(then.contains("Ann") && !then.contains("Bob"), "{then}");
    let now = db.datoms(&["--as-of", "2999-01-01T00:00:00Z"]);
    assert!(now.contains("Bob"), "{now}");
    let before = fails(&[
        "query",
        "--db",
        &db.url,
        "--as-of",
        "1999-01-01T00:00:00Z",
        "[:eavt]",
    ]);
    assert!(before.contains("no commit at"), "{before}");
    let bad = fails(&["query", "--db", &db.url, "--as-of", "yesterday", "[:eavt]"]);
    assert!(bad.contains("RFC 3339"), "{bad}");
    let commit = first["commit"].as_str().unwrap();
    let since = db.datoms(&["--since", &commit[..12]]);
    assert_eq!(since.lines().count(), 1, "{since}");
    assert!(
        since.contains("\"Bob\"") && since.contains("true]"),
        "{since}"
    );
    let names = ok(&[
        "query",
        "--db",
        &db.url,
        "--since",
        &commit[..12],
        "[:find ?n :where [?e :person/name ?n]]",
    ]);
    assert!(names.contains("Bob") && !names.contains("Ann"), "{names}");
}
