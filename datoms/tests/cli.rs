//! The `datoms` binary, run for real against temporary redb files: what a user types,
//! what they see, and what ends up on disk.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value as Json;

const SCHEMA: &str = r#"{:person/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
 :person/age {:db/valueType :db.type/long :db/index true}
 :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}"#;

/// A temporary directory with a redb URL in it.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self, name: &str) -> String {
        format!("redb:{}", self.path(name).display())
    }

    /// Writes a file and returns its path as a string.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

fn run(args: &[&str]) -> Output {
    cargo_bin_cmd!("datoms").args(args).output().unwrap()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "datoms {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must succeed with `--json`; returns the parsed document.
fn json(args: &[&str]) -> Json {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&args)).unwrap()
}

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "datoms {args:?} should have failed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "not an error line: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn head_commit(url: &str) -> String {
    json(&["log", "--db", url, "-n", "1"])[0]["commit"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A database of `n` people (3 datoms each) built by `import`, for tests that need trees
/// with many nodes. Returns the redb URL.
fn imported(s: &Scratch, name: &str, n: u64) -> String {
    // An export holds one form per line: the schema too.
    let mut text = format!("#datoms/schema {}\n", SCHEMA.replace('\n', " "));
    for e in 1..=n {
        let tx = 536_870_913 + e / 100;
        text.push_str(&format!(
            "#datom [{e} :person/name \"person {e}\" {tx} true]\n"
        ));
        text.push_str(&format!(
            "#datom [{e} :person/age {} {tx} true]\n",
            18 + e % 60
        ));
        if e > 1 {
            text.push_str(&format!(
                "#datom [{e} :person/friend {} {tx} true]\n",
                e / 2
            ));
        }
    }
    let file = s.file(&format!("{name}.edn"), &text);
    let url = s.url(&format!("{name}.redb"));
    ok(&["import", "--db", &url, &file]);
    url
}

#[test]
fn transact_then_query_sees_the_datoms() {
    let s = Scratch::new();
    let url = s.url("db.redb");
    let schema = s.file("schema.edn", SCHEMA);
    let tx = s.file(
        "tx.edn",
        r#"[{:db/id -1 :person/name "Ann" :person/age 31 :person/friend -2}
            {:db/id -2 :person/name "Bob" :person/age 42}]"#,
    );
    let report = json(&["transact", "--db", &url, "--schema", &schema, &tx]);
    assert_eq!(report["created"], true);
    assert_eq!(report["datoms"], 5);
    assert_eq!(report["tempids"]["-1"], 1);
    assert_eq!(report["tempids"]["-2"], 2);

    let lines = ok(&["query", "--db", &url, "[:eavt 1]"]);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines.contains(r#"#datom [1 :person/name "Ann" "#),
        "{lines}"
    );
    assert!(lines.contains("#datom [1 :person/friend 2 "), "{lines}");

    // The same through --index, a ref value, and JSON.
    let by_age = json(&[
        "query",
        "--db",
        &url,
        "--index",
        "avet",
        ":person/age",
        "42",
    ]);
    assert_eq!(by_age.as_array().unwrap().len(), 1);
    assert_eq!(by_age[0]["e"], 2);
    let friends = json(&[
        "query",
        "--db",
        &url,
        "--index",
        "avet",
        ":person/friend",
        "2",
    ]);
    assert_eq!(friends[0]["e"], 1);
    assert_eq!(friends[0]["type"], ":db.type/ref");
    let ann = ok(&[
        "query",
        "--db",
        &url,
        r#"[:eavt [:person/name "Ann"] :person/age]"#,
    ]);
    assert!(ann.contains("#datom [1 :person/age 31 "), "{ann}");

    // A second transaction upserts through the stored schema.
    ok(&[
        "transact",
        "--db",
        &url,
        &s.file("tx2.edn", r#"[{:person/name "Ann" :person/age 32}]"#),
    ]);
    let ages = ok(&["query", "--db", &url, "--index", "eavt", "1", ":person/age"]);
    assert!(ages.contains("#datom [1 :person/age 32 "), "{ages}");
}

#[test]
fn bad_edn_fails_with_line_and_column_and_leaves_the_head() {
    let s = Scratch::new();
    let url = s.url("db.redb");
    ok(&[
        "transact",
        "--db",
        &url,
        &s.file("ok.edn", r#"[{:db/id -1 :person/name "Ann"}]"#),
    ]);
    let before = head_commit(&url);
    let bad = s.file("bad.edn", "[{:db/id -1\n  :person/name \"Bob\"}\n  }]");
    let err = fails(&["transact", "--db", &url, &bad]);
    assert!(err.contains("bad.edn"), "{err}");
    assert!(err.contains("line 3, column 3"), "{err}");
    assert_eq!(head_commit(&url), before);
    let lines = ok(&["query", "--db", &url, "[:aevt :person/name]"]);
    assert_eq!(lines.lines().count(), 1, "{lines}");
}

#[test]
fn export_then_import_gives_a_database_that_verifies_and_exports_the_same() {
    let s = Scratch::new();
    let url = s.url("a.redb");
    let schema = s.file("schema.edn", SCHEMA);
    ok(&[
        "transact",
        "--db",
        &url,
        "--schema",
        &schema,
        &s.file(
            "1.edn",
            r#"[{:db/id -1 :person/name "Ann" :person/age 31 :person/friend -2}
            {:db/id -2 :person/name "Bob" :person/age 42}]"#,
        ),
    ]);
    ok(&[
        "transact",
        "--db",
        &url,
        &s.file(
            "2.edn",
            r#"[[:db/retract 2 :person/age 42] {:db/id -1 :person/name "Cy" :person/friend 1}]"#,
        ),
    ]);
    let first = s.path("a.datoms");
    ok(&["export", "--db", &url, first.to_str().unwrap()]);

    let copy = s.url("b.redb");
    let imported = json(&["import", "--db", &copy, first.to_str().unwrap()]);
    assert_eq!(imported["datoms"], 6);
    for db in [&url, &copy] {
        assert_eq!(json(&["verify", "--db", db])["ok"], true);
    }
    let datoms = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with(";;"))
            .map(str::to_owned)
            .collect()
    };
    let second = s.path("b.datoms");
    ok(&["export", "--db", &copy, second.to_str().unwrap()]);
    assert_eq!(datoms(&first), datoms(&second));
    assert_eq!(datoms(&first).len(), 7, "the schema line and 6 datoms");
    // Stdout export is the same text.
    let piped = ok(&["export", "--db", &copy]);
    assert_eq!(piped, std::fs::read_to_string(&second).unwrap());
    // Importing onto an existing head is refused, naming it.
    let err = fails(&["import", "--db", &copy, first.to_str().unwrap()]);
    assert!(err.contains("already has head \"main\""), "{err}");
}

#[test]
fn log_lists_one_commit_per_transact() {
    let s = Scratch::new();
    let url = s.url("db.redb");
    for (i, name) in ["Ann", "Bob", "Cy"].iter().enumerate() {
        let file = s.file(
            &format!("{i}.edn"),
            &format!(r#"[{{:db/id -1 :person/name "{name}"}}]"#),
        );
        ok(&["transact", "--db", &url, &file]);
    }
    let log = json(&["log", "--db", &url]);
    let entries = log.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["parent"], entries[1]["commit"]);
    assert_eq!(entries[1]["parent"], entries[2]["commit"]);
    assert_eq!(entries[2]["parent"], Json::Null);
    for e in entries {
        assert_eq!(e["txs"], 1);
        assert_eq!(e["datoms"], 1);
    }
    let text = ok(&["log", "--db", &url]);
    assert!(text.contains("3 commits from head main"), "{text}");
}

#[test]
fn stats_reports_three_indexes() {
    let s = Scratch::new();
    let url = imported(&s, "people", 400);
    let stats = json(&["stats", "--db", &url]);
    let indexes = stats["indexes"].as_array().unwrap();
    let names: Vec<&str> = indexes
        .iter()
        .map(|i| i["index"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["EAVT", "AEVT", "AVET"]);
    assert_eq!(indexes[0]["datoms"], 1199);
    assert_eq!(indexes[1]["datoms"], 1199);
    assert_eq!(
        indexes[2]["datoms"], 1199,
        "every attribute here is in AVET"
    );
    for ix in indexes {
        assert!(ix["nodes"].as_u64().unwrap() > 1, "{ix}");
        assert!(ix["depth"].as_u64().unwrap() >= 2, "{ix}");
        assert!(ix["node_bytes"]["max"].as_u64() >= ix["node_bytes"]["min"].as_u64());
    }
    let text = ok(&["stats", "--db", &url]);
    assert!(text.contains("leaves"), "{text}");
}

#[test]
fn verify_detects_a_corrupted_blob_and_names_it() {
    const BLOBS: redb::TableDefinition<&[u8; 32], &[u8]> = redb::TableDefinition::new("blobs");
    let s = Scratch::new();
    let url = imported(&s, "people", 300);
    let report = json(&["verify", "--db", &url]);
    assert_eq!(report["ok"], true);
    let commit = report["commit"].as_str().unwrap().to_owned();

    // Flip one byte of a tree node on disk, behind the storage's back.
    let victim = {
        let db = redb::Database::open(s.path("people.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let victim = {
            use redb::ReadableTable;
            let mut table = txn.open_table(BLOBS).unwrap();
            let (key, mut bytes) = table
                .iter()
                .unwrap()
                .map(|e| e.unwrap())
                .map(|(k, v)| (*k.value(), v.value().to_vec()))
                .find(|(k, _)| hex(k) != commit)
                .unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            table.insert(&key, bytes.as_slice()).unwrap();
            hex(&key)
        };
        txn.commit().unwrap();
        victim
    };
    let err = fails(&["verify", "--db", &url]);
    assert!(err.contains(&victim), "the message names {victim}: {err}");
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn verify_names_a_missing_blob() {
    const BLOBS: redb::TableDefinition<&[u8; 32], &[u8]> = redb::TableDefinition::new("blobs");
    let s = Scratch::new();
    let url = imported(&s, "people", 300);
    let commit = head_commit(&url);
    let victim = {
        let db = redb::Database::open(s.path("people.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let victim = {
            use redb::ReadableTable;
            let mut table = txn.open_table(BLOBS).unwrap();
            let key = table
                .iter()
                .unwrap()
                .map(|e| *e.unwrap().0.value())
                .filter(|k| hex(k) != commit)
                .last()
                .unwrap();
            table.remove(&key).unwrap();
            hex(&key)
        };
        txn.commit().unwrap();
        victim
    };
    let err = fails(&["verify", "--db", &url]);
    assert!(err.contains(&format!("blob {victim} is missing")), "{err}");
}

#[test]
fn a_commit_whose_tx_log_is_damaged_restores_but_log_and_verify_name_it() {
    const BLOBS: redb::TableDefinition<&[u8; 32], &[u8]> = redb::TableDefinition::new("blobs");
    const HEADS: redb::TableDefinition<&str, (&[u8; 32], u64)> =
        redb::TableDefinition::new("heads");
    let s = Scratch::new();
    let url = imported(&s, "people", 300);
    let commit: datoms::Address = head_commit(&url).parse().unwrap();
    // A copy of the head commit whose log bytes are garbage (0xc1 is never valid
    // msgpack), stored under its own hash, and the head moved to it.
    let damaged = {
        let db = redb::Database::open(s.path("people.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let damaged = {
            use redb::ReadableTable;
            let mut blobs = txn.open_table(BLOBS).unwrap();
            let mut bytes = blobs.get(&commit.0).unwrap().unwrap().value().to_vec();
            let log = datoms::Commit::decode(commit, &bytes)
                .unwrap()
                .log
                .encoded()
                .to_vec();
            let at = bytes.windows(log.len()).position(|w| w == log).unwrap();
            bytes[at..at + log.len()].fill(0xc1);
            let damaged = datoms::Address::of(&bytes);
            blobs.insert(&damaged.0, bytes.as_slice()).unwrap();
            let mut heads = txn.open_table(HEADS).unwrap();
            let version = heads.get("main").unwrap().unwrap().value().1;
            heads.insert("main", (&damaged.0, version + 1)).unwrap();
            damaged
        };
        txn.commit().unwrap();
        damaged.to_hex()
    };
    // Restoring reads the roots, never the log.
    let stats = json(&["stats", "--db", &url]);
    assert_eq!(stats["indexes"][0]["datoms"], 899);
    for command in ["log", "verify"] {
        let err = fails(&[command, "--db", &url]);
        assert!(
            err.contains(&format!("tx log of commit {damaged}")),
            "{command}: {err}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn restore_from_an_older_commit_fetches_fewer_nodes_than_a_full_restore() {
    let s = Scratch::new();
    let url = imported(&s, "people", 500);
    let base = head_commit(&url);
    ok(&[
        "transact",
        "--db",
        &url,
        &s.file("tx.edn", r#"[[:db/add 250 :person/age 99]]"#),
    ]);
    let full = json(&["restore", "--db", &url]);
    let incremental = json(&["restore", "--db", &url, "--from-commit", &base[..12]]);
    assert_eq!(full["mode"], "full");
    assert_eq!(incremental["mode"], "incremental");
    assert_eq!(incremental["from_commit"].as_str(), Some(base.as_str()));
    assert_eq!(full["datoms"], incremental["datoms"]);
    let nodes = |r: &Json| r["stats"]["nodes_fetched"].as_u64().unwrap();
    assert!(nodes(&full) > 10, "{full}");
    assert!(
        nodes(&incremental) < nodes(&full) / 2,
        "{incremental} vs {full}"
    );
    assert!(incremental["io"]["bytes_read"].as_u64() < full["io"]["bytes_read"].as_u64());
    let text = ok(&["restore", "--db", &url, "--from-commit", &base[..12]]);
    assert!(text.contains("nodes fetched"), "{text}");
}

#[test]
fn a_small_demo_passes_its_equality_check() {
    let out = ok(&["demo", "--datoms", "5000", "--rounds", "2"]);
    assert!(out.contains("equality check passed"), "{out}");
    let rows = out
        .lines()
        .filter(|l| l.trim_end().ends_with("yes"))
        .count();
    assert_eq!(rows, 2, "{out}");
}

#[test]
fn an_unknown_scheme_is_a_one_line_error() {
    let err = fails(&["query", "--db", "ftp://x", "[:eavt]"]);
    assert!(err.contains("unknown storage URL \"ftp://x\""), "{err}");
    let s = Scratch::new();
    let err = fails(&["log", "--db", &s.url("missing.redb")]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !s.path("missing.redb").exists(),
        "a reader must not create the file"
    );
}

#[test]
fn datalog_queries_and_pull_run_against_the_stored_db() {
    let s = Scratch::new();
    let db = s.url("q.redb");
    let schema = s.file("schema.edn", SCHEMA);
    let tx = s.file(
        "people.edn",
        r#"[{:db/id -1 :person/name "Ann" :person/age 31 :person/friend -2}
            {:db/id -2 :person/name "Bob" :person/age 25}
            {:db/id -3 :person/name "Cid" :person/age 40 :person/friend -1}]"#,
    );
    ok(&["transact", "--db", &db, "--schema", &schema, &tx]);

    // A join with a predicate, as EDN.
    let edn = ok(&[
        "query",
        "--db",
        &db,
        "--format",
        "edn",
        "[:find ?n ?fn :where [?e :person/age ?a] [(> ?a 30)] [?e :person/name ?n] [?e :person/friend ?f] [?f :person/name ?fn]]",
    ]);
    assert_eq!(edn.trim(), r#"#{["Ann" "Bob"] ["Cid" "Ann"]}"#);

    // An aggregate with an :in value, as JSON.
    let doc = json(&[
        "query",
        "--db",
        &db,
        "[:find (count ?e) . :in $ ?min :where [?e :person/age ?a] [(>= ?a ?min)]]",
        "--in",
        "30",
    ]);
    assert_eq!(doc, serde_json::json!(2));

    // The default table has a header row of the :find elements.
    let table = ok(&[
        "query",
        "--db",
        &db,
        "[:find ?n :where [_ :person/name ?n]]",
    ]);
    assert!(table.contains("?n"), "{table}");
    assert!(table.contains("Bob"), "{table}");

    // Too few :in values is a usage error naming the inputs.
    let err = fails(&[
        "query",
        "--db",
        &db,
        "[:find ?e :in $ ?n :where [?e :person/name ?n]]",
    ]);
    assert!(err.contains("--in"), "{err}");

    // A malformed query names the clause at fault.
    let err = fails(&[
        "query",
        "--db",
        &db,
        "[:find ?e :where [?e :person/name ?n] (foo)]",
    ]);
    assert!(err.contains("foo"), "{err}");

    // Pull by lookup ref, nested through a ref.
    let pulled = ok(&[
        "pull",
        "--db",
        &db,
        "[:person/name {:person/friend [:person/name]}]",
        r#"[:person/name "Ann"]"#,
    ]);
    assert!(pulled.contains(r#":person/name "Ann""#), "{pulled}");
    assert!(pulled.contains(r#":person/name "Bob""#), "{pulled}");
    let missing = ok(&["pull", "--db", &db, "[*]", r#"[:person/name "Nobody"]"#]);
    assert_eq!(missing.trim(), "nil");
}
