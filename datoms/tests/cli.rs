//! The `datoms` binary, run for real against temporary redb files: what a user types,
//! what they see, and what ends up on disk.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

mod common;
use common::{fails, ok, run};

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

/// Runs a command that must succeed with `--json`; returns the parsed document.
fn json(args: &[&str]) -> Json {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&args)).unwrap()
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
    // The comment line names the commit, which differs (so does the checksum of the
    // whole file); the header, schema and datoms are the same.
    let datoms = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with(";;") && !l.starts_with("#datoms/blake3 "))
            .map(str::to_owned)
            .collect()
    };
    let second = s.path("b.datoms");
    ok(&["export", "--db", &copy, second.to_str().unwrap()]);
    assert_eq!(datoms(&first), datoms(&second));
    assert_eq!(
        datoms(&first).len(),
        8,
        "the header, the schema line and 6 datoms"
    );
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
    // Datascript: (d/pull db '[*] [:name nil]) => nil; a non-unique attribute is an error.
    let none = ok(&["pull", "--db", &db, "[*]", "[:person/name nil]"]);
    assert_eq!(none.trim(), "nil");
    let err = fails(&["pull", "--db", &db, "[*]", "[:person/age 31]"]);
    assert!(err.contains(":person/age"), "{err}");
}

#[test]
fn unknown_schema_properties_are_ignored_with_a_warning() {
    // Datascript ignores :db/type and any key it does not know (issue 26, item 9).
    let s = Scratch::new();
    let db = s.url("lenient.redb");
    let schema = s.file(
        "schema.edn",
        "{:person/name {:db/type :db.type/string :db/unique :db.unique/identity}}",
    );
    let tx = s.file("tx.edn", r#"[{:person/name "Ann"}]"#);
    let out = run(&["transact", "--db", &db, "--schema", &schema, &tx]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains(":db/type"), "{stderr}");
    assert!(stderr.contains(":person/name"), "{stderr}");
    // The rest of the declaration holds: :person/name is unique.
    let pulled = ok(&["pull", "--db", &db, "[:db/id]", r#"[:person/name "Ann"]"#]);
    assert_eq!(pulled.trim(), "{:db/id 1}");
}

#[test]
fn an_ident_names_its_entity_in_pull_and_index_reads() {
    // Datascript: (d/pull db '[:color/hex] :color/red) and (d/datoms db :eavt :color/red)
    // answer for the entity whose :db/ident is :color/red (issue 16, item 6).
    let s = Scratch::new();
    let db = s.url("idents.redb");
    let tx = s.file(
        "colors.edn",
        r##"[{:db/id -1 :db/ident :color/red :color/hex "#f00"}]"##,
    );
    ok(&["transact", "--db", &db, &tx]);
    let pulled = ok(&["pull", "--db", &db, "[:color/hex]", ":color/red"]);
    assert_eq!(pulled.trim(), r##"{:color/hex "#f00"}"##);
    assert_eq!(
        ok(&["pull", "--db", &db, "[*]", ":color/blue"]).trim(),
        "nil"
    );
    let datoms = ok(&["query", "--db", &db, "[:eavt :color/red :color/hex]"]);
    assert!(datoms.contains(r##""#f00""##), "{datoms}");
    let err = fails(&["query", "--db", &db, "[:eavt :color/blue]"]);
    assert!(err.contains(":color/blue"), "{err}");
}

// ---- file safety, export format, import checks (issue 27) -----------------------------

/// Runs a command that must fail under `--json`; returns the `error` object it prints on
/// stdout.
fn fails_json(args: &[&str]) -> Json {
    let mut args = args.to_vec();
    args.push("--json");
    let out = run(&args);
    assert!(!out.status.success(), "datoms {args:?} should have failed");
    let doc: Json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let error = doc["error"].clone();
    assert!(error["kind"].is_string(), "{doc}");
    assert!(error["message"].is_string(), "{doc}");
    error
}

/// A db with two people of which the second was retracted whole: its max-eid (2) and
/// max-tx (second tx) are above every datom's. Returns the URL.
fn with_retracted_last_entity(s: &Scratch, name: &str) -> String {
    let url = s.url(&format!("{name}.redb"));
    let schema = s.file("schema.edn", SCHEMA);
    ok(&[
        "transact",
        "--db",
        &url,
        "--schema",
        &schema,
        &s.file(
            "two.edn",
            r#"[{:db/id -1 :person/name "Ann" :person/age 31}
                {:db/id -2 :person/name "Bob" :person/friend -1}]"#,
        ),
    ]);
    ok(&[
        "transact",
        "--db",
        &url,
        &s.file("retract.edn", "[[:db/retractEntity 2]]"),
    ]);
    url
}

/// Every datom of a db, EAVT, as text.
fn all_datoms(url: &str) -> String {
    ok(&["query", "--db", url, "[:eavt]"])
}

#[test]
fn export_refuses_to_write_over_the_database_file_by_any_name() {
    let s = Scratch::new();
    let url = with_retracted_last_entity(&s, "app");
    let before = std::fs::read(s.path("app.redb")).unwrap();
    let db_path = s.path("app.redb").display().to_string();
    let dotted = s
        .dir
        .path()
        .join(".")
        .join("app.redb")
        .display()
        .to_string();
    let mut targets = vec![db_path, dotted];
    #[cfg(unix)]
    {
        let link = s.path("link.datoms");
        std::os::unix::fs::symlink(s.path("app.redb"), &link).unwrap();
        let hard = s.path("hard.datoms");
        std::fs::hard_link(s.path("app.redb"), &hard).unwrap();
        targets.push(link.display().to_string());
        targets.push(hard.display().to_string());
    }
    for target in &targets {
        let err = fails(&["export", "--db", &url, target]);
        assert!(err.contains("is the file of database"), "{target}: {err}");
        assert_eq!(
            fails_json(&["export", "--db", &url, target])["kind"],
            "target_is_database"
        );
    }
    assert_eq!(std::fs::read(s.path("app.redb")).unwrap(), before);
    assert_eq!(json(&["verify", "--db", &url])["ok"], true);
    assert_eq!(all_datoms(&url).lines().count(), 2);
}

#[cfg(unix)]
#[test]
fn an_export_that_fails_midway_leaves_the_old_file_and_no_partial_one() {
    let s = Scratch::new();
    let url = imported(&s, "people", 1000);
    let out_dir = s.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("people.datoms");
    std::fs::write(&target, "the previous export\n").unwrap();
    // A file size limit stands in for a full disk: with SIGXFSZ ignored, the write
    // that crosses it fails with EFBIG after many datoms were written.
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$@\"",
            assert_cmd::cargo::cargo_bin!("datoms").to_str().unwrap(),
            "export",
            "--db",
            &url,
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the export should have failed");
    assert!(stderr.contains("people.datoms"), "{stderr}");
    let now = std::fs::read_to_string(&target).unwrap();
    assert!(
        now == "the previous export\n",
        "the target was overwritten with {} bytes of a partial export",
        now.len()
    );
    let files: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
    assert_eq!(files.len(), 1, "no temporary file is left behind");
    // Without the limit it completes, and imports.
    ok(&["export", "--db", &url, target.to_str().unwrap()]);
    assert_eq!(
        json(&[
            "import",
            "--db",
            &s.url("copy.redb"),
            target.to_str().unwrap()
        ])["datoms"],
        2999
    );
}

#[test]
fn a_cut_short_or_altered_export_is_refused_and_nothing_is_stored() {
    let s = Scratch::new();
    let url = imported(&s, "people", 50);
    let file = s.path("people.datoms");
    ok(&["export", "--db", &url, file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    let copy = s.url("copy.redb");

    // Cut after every line but the last (the checksum), and in the middle of lines.
    let mut cuts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    cuts.pop();
    cuts.extend([text.len() / 2, text.len() - 10]);
    cuts.extend([0, 20, text.len() / 2, text.len() - 10]);
    for (i, cut) in cuts.iter().enumerate() {
        let partial = s.file(&format!("cut{i}.datoms"), &text[..*cut]);
        let err = fails(&["import", "--db", &copy, &partial]);
        // Within the comment line no form is left: nothing to import either way.
        let reason = if *cut <= text.find('\n').unwrap() + 1 {
            "nothing to import"
        } else {
            "the export is cut short"
        };
        assert!(err.contains(reason), "cut at {cut}: {err}");
        assert!(err.contains("nothing was stored"), "cut at {cut}: {err}");
        assert!(!s.path("copy.redb").exists(), "cut at {cut}: no db file");
    }
    let error = fails_json(&[
        "import",
        "--db",
        &copy,
        &s.file("cut.datoms", &text[..text.len() / 2]),
    ]);
    assert_eq!(error["kind"], "bad_export");

    // One character changed.
    let altered = s.file(
        "altered.datoms",
        &text.replacen("\"person 7\"", "\"person 8\"", 1),
    );
    let err = fails(&["import", "--db", &copy, &altered]);
    assert!(err.contains("the export was altered"), "{err}");
    // A line added after the checksum.
    let appended = s.file(
        "appended.datoms",
        &format!("{text}#datom [999 :person/name \"extra\" 536870913 true]\n"),
    );
    let err = fails(&["import", "--db", &copy, &appended]);
    assert!(
        err.contains("comes after the #datoms/blake3 checksum line"),
        "{err}"
    );
    // A datom removed, the checksum recomputed: the header's count still tells.
    let mut lines: Vec<&str> = text.lines().collect();
    let checksum = lines.pop().unwrap();
    assert!(checksum.starts_with("#datoms/blake3 "), "{checksum}");
    lines.remove(5);
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let short = s.file(
        "short.datoms",
        &format!("{body}#datoms/blake3 \"{}\"\n", blake3_hex(body.as_bytes())),
    );
    let err = fails(&["import", "--db", &copy, &short]);
    assert!(
        err.contains("declares 149 datoms, the file holds 148"),
        "{err}"
    );
    assert!(!s.path("copy.redb").exists());
    // The whole file imports.
    assert_eq!(
        json(&["import", "--db", &copy, file.to_str().unwrap()])["datoms"],
        149
    );
}

fn blake3_hex(bytes: &[u8]) -> String {
    let hash = datoms::Address::of(bytes);
    hash.to_hex()
}

#[test]
fn an_imported_db_keeps_the_id_counters_and_behaves_like_its_original() {
    let s = Scratch::new();
    let original = with_retracted_last_entity(&s, "original");
    let file = s.path("original.datoms");
    ok(&["export", "--db", &original, file.to_str().unwrap()]);
    let copy = s.url("copy.redb");
    let imported = json(&["import", "--db", &copy, file.to_str().unwrap()]);
    assert_eq!(imported["max_eid"], 2);
    assert_eq!(imported["max_tx"], 536_870_914);
    let counters = |url: &str| {
        let log = json(&["log", "--db", url, "-n", "1"]);
        (log[0]["max_eid"].clone(), log[0]["max_tx"].clone())
    };
    assert_eq!(counters(&original), counters(&copy));

    // The same transaction on both: the same ids, the same datoms.
    let next = s.file(
        "next.edn",
        r#"[{:db/id -1 :person/name "Cy" :person/friend 1} {:db/id -2 :person/name "Di"}]"#,
    );
    let a = json(&["transact", "--db", &original, &next]);
    let b = json(&["transact", "--db", &copy, &next]);
    assert_eq!(a["tempids"], b["tempids"]);
    assert_eq!(a["tempids"]["-1"], 3, "entity 2 is never handed out again");
    assert_eq!(a["tx"], b["tx"]);
    assert_eq!(b["tx"], 536_870_915);
    assert_eq!(all_datoms(&original), all_datoms(&copy));
    assert_eq!(counters(&original), counters(&copy));
}

#[test]
fn import_enforces_the_schema_and_names_every_violation() {
    let s = Scratch::new();
    let file = s.file(
        "bad.datoms",
        &format!(
            "#datoms/schema {}\n{}",
            SCHEMA.replace('\n', " "),
            r#"#datom [1 :person/age 31 536870913 true]
#datom [1 :person/age 32 536870913 true]
#datom [1 :person/name "Ann" 536870913 true]
#datom [2 :person/name "Ann" 536870913 true]
#datom [3 :person/age "old" 536870913 true]
"#
        ),
    );
    let url = s.url("db.redb");
    let err = fails(&["import", "--db", &url, &file]);
    for expected in [
        "3 violations",
        "entity 1 :person/age: 2 values (31 32) for a cardinality-one attribute",
        r#":person/name "Ann" is unique but held by entities 1, 2"#,
        r#"entity 3 :person/age: value "old" is not a :db.type/long"#,
    ] {
        assert!(err.contains(expected), "{expected} in {err}");
    }
    assert!(
        !s.path("db.redb").exists(),
        "nothing stored, no file created"
    );
    let error = fails_json(&["import", "--db", &url, &file]);
    assert_eq!(error["kind"], "invariants");
    let kinds: Vec<&str> = error["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cardinality_one", "wrong_type", "not_unique"]);
}

#[test]
fn import_warns_when_schema_flag_and_file_schema_differ() {
    let s = Scratch::new();
    let url = imported(&s, "people", 3);
    let file = s.path("people.datoms");
    ok(&["export", "--db", &url, file.to_str().unwrap()]);
    let other = s.file(
        "other.edn",
        "{:person/name {:db/valueType :db.type/string}}",
    );
    let out = run(&[
        "import",
        "--db",
        &s.url("copy.redb"),
        "--schema",
        &other,
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("warning: --schema ignored") && stderr.contains("carries its own schema"),
        "{stderr}"
    );
    // The file's schema won: :person/name is still a unique identity.
    let err = fails(&[
        "transact",
        "--db",
        &s.url("copy.redb"),
        &s.file("dup.edn", r#"[[:db/add 3 :person/name "person 1"]]"#),
    ]);
    assert!(err.contains("unique constraint"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_every_schema_violation_of_a_stored_db() {
    use datoms::{Datom, Db, TxLogEntry, Value, TX0};
    let s = Scratch::new();
    let path = s.path("broken.redb");
    {
        // Written through the library's raw write path, which trusts its caller: what
        // a bug or a bad bulk load could leave behind.
        let schema = datoms::edn::parse_schema(SCHEMA).unwrap();
        let t = TX0 + 1;
        let db = Db::new(schema)
            .apply_log_entry(TxLogEntry {
                tx: t,
                datoms: vec![
                    Datom::new(1, ":person/age", 31, t),
                    Datom::new(1, ":person/age", 32, t),
                    Datom::new(1, ":person/name", "Ann", t),
                    Datom::new(2, ":person/name", "Ann", t),
                    Datom::new(2, ":person/age", "old", t),
                    Datom::new(2, ":person/friend", Value::Ref(9), t),
                ],
                id: None,
            })
            .unwrap();
        let storage = datoms::RedbStorage::open(&path).unwrap();
        datoms::store(&db, &storage, "main").await.unwrap();
    }
    let url = s.url("broken.redb");
    let out = run(&["verify", "--db", &url]);
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("3 violations"), "{stderr}");
    for expected in [
        "violation: entity 1 :person/age: 2 values (31 32)",
        "violation: entity 2 :person/age: value \"old\" is not a :db.type/long",
        "violation: :person/name \"Ann\" is unique but held by entities 1, 2",
        "warning: entity 2 :person/friend: ref to 9, which holds no datom",
    ] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
    let error = fails_json(&["verify", "--db", &url]);
    assert_eq!(error["kind"], "violations");
    assert_eq!(error["violations"].as_array().unwrap().len(), 3);
    let strict = fails_json(&["verify", "--db", &url, "--strict"]);
    assert_eq!(strict["violations"].as_array().unwrap().len(), 4);
}

#[test]
fn verify_warns_about_a_dangling_ref_and_fails_on_it_when_strict() {
    let s = Scratch::new();
    let url = s.url("db.redb");
    ok(&[
        "transact",
        "--db",
        &url,
        "--schema",
        &s.file("schema.edn", SCHEMA),
        &s.file(
            "tx.edn",
            r#"[{:db/id -1 :person/name "Ann" :person/friend 7}]"#,
        ),
    ]);
    let report = json(&["verify", "--db", &url]);
    assert_eq!(report["ok"], true);
    assert_eq!(report["warnings"][0]["kind"], "dangling_ref");
    let err = fails(&["verify", "--db", &url, "--strict"]);
    assert!(err.contains("ref to 7, which holds no datom"), "{err}");
}

#[test]
fn json_output_keeps_keywords_and_tags_the_types_json_lacks() {
    let s = Scratch::new();
    let url = s.url("db.redb");
    ok(&[
        "transact",
        "--db",
        &url,
        "--schema",
        &s.file(
            "schema.edn",
            "{:co/name {:db/unique :db.unique/identity} :co/industry {:db/valueType :db.type/keyword :db/index true}}",
        ),
        &s.file(
            "tx.edn",
            r#"[{:db/id -1 :co/name "Acme" :co/industry :industry/health
                 :co/founded #inst "2001-02-03T04:05:06.007Z"
                 :co/id #uuid "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
                 :co/logo #bytes "AQID" :co/limit ##Inf :co/motto ":colon"}]"#,
        ),
    ]);
    let q = |find: &str| {
        json(&[
            "query",
            "--db",
            &url,
            &format!("[:find ?v . :where [_ {find} ?v]]"),
        ])
    };
    assert_eq!(q(":co/industry"), ":industry/health");
    assert_eq!(
        q(":co/founded"),
        serde_json::json!({"#inst": "2001-02-03T04:05:06.007Z"})
    );
    assert_eq!(
        q(":co/id"),
        serde_json::json!({"#uuid": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"})
    );
    assert_eq!(q(":co/logo"), serde_json::json!({"#bytes": "AQID"}));
    assert_eq!(q(":co/limit"), serde_json::json!({"#double": "Infinity"}));
    assert_eq!(q(":co/motto"), serde_json::json!({"#string": ":colon"}));
    let pulled = json(&["pull", "--db", &url, "[:co/industry :co/founded]", "1"]);
    assert_eq!(
        pulled,
        serde_json::json!({":co/industry": ":industry/health", ":co/founded": {"#inst": "2001-02-03T04:05:06.007Z"}})
    );
    let datoms = json(&["query", "--db", &url, "[:avet :co/industry]"]);
    assert_eq!(datoms[0]["v"], ":industry/health");
    assert_eq!(datoms[0]["a"], ":co/industry");
}

#[test]
fn a_failing_command_under_json_prints_a_json_error() {
    let s = Scratch::new();
    let error = fails_json(&["log", "--db", &s.url("missing.redb")]);
    assert_eq!(error["kind"], "no_database");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    // Arguments that do not parse, too.
    let error = fails_json(&["query", "--db", &s.url("x.redb"), "--bogus"]);
    assert_eq!(error["kind"], "usage");
    // A bad transaction.
    let url = s.url("db.redb");
    ok(&[
        "transact",
        "--db",
        &url,
        &s.file("a.edn", r#"[{:db/id -1 :person/name "Ann"}]"#),
    ]);
    let error = fails_json(&["transact", "--db", &url, &s.file("b.edn", "[[:db/add]]")]);
    assert_eq!(error["kind"], "malformed_tx");
}

#[test]
fn errors_hold_no_rust_debug_text() {
    let s = Scratch::new();
    let url = s.url("db.redb");
    ok(&[
        "transact",
        "--db",
        &url,
        "--schema",
        &s.file("schema.edn", SCHEMA),
        &s.file(
            "a.edn",
            r#"[{:db/id -1 :person/name "Ann" :person/age 32}]"#,
        ),
    ]);
    let errors = [
        fails(&[
            "transact",
            "--db",
            &url,
            &s.file("cas.edn", "[[:db/cas 1 :person/age 31 33]]"),
        ]),
        fails(&[
            "query",
            "--db",
            &url,
            "[:find ?e :in $ ?x :where [?e :person/name ?x]]",
        ]),
        fails(&[
            "transact",
            "--db",
            &url,
            &s.file("type.edn", r#"[[:db/add 1 :person/age "old"]]"#),
        ]),
        fails(&["query", "--db", &url, r#"[:eavt [:person/name "Nobody"]]"#]),
        fails(&["query", "--db", &url, "--index", "avet", "1"]),
    ];
    for err in &errors {
        for debug in ["Some(", "None", "Head {", "[\"", "Long(", "#ref"] {
            assert!(!err.contains(debug), "{debug} in {err}");
        }
    }
    assert!(errors[0].contains("expected 31, found 32"), "{}", errors[0]);
    assert!(errors[1].contains(":in [$ ?x]"), "{}", errors[1]);
    assert!(
        errors[2].contains("is not a :db.type/long"),
        "{}",
        errors[2]
    );
}

#[test]
fn bare_words_misplaced_flags_and_empty_names_are_errors() {
    let s = Scratch::new();
    let url = imported(&s, "people", 3);
    let query = "[:find ?e . :in $ ?n :where [?e :person/name ?n]]";
    let err = fails(&["query", "--db", &url, query, "--in", "Ann"]);
    assert!(err.contains(r#"--in '"Ann"'"#), "{err}");
    assert_eq!(
        json(&["query", "--db", &url, query, "--in", "\"person 2\""]),
        serde_json::json!(2)
    );
    let err = fails(&["pull", "--db", &url, "[*]", "Ann"]);
    assert!(err.contains("'\"Ann\"'"), "{err}");
    let err = fails(&["pull", "--db", &url, "[*]", "[:person/name Ann]"]);
    assert!(err.contains("symbol"), "{err}");
    // --in means nothing to an index query; --limit nothing to a Datalog one.
    let err = fails(&["query", "--db", &url, "[:avet :person/age]", "--in", "3"]);
    assert!(err.contains("--in is for Datalog queries"), "{err}");
    let err = fails(&[
        "query", "--db", &url, query, "--in", "\"x\"", "--limit", "1",
    ]);
    assert!(err.contains("--limit is for index queries"), "{err}");
    // AVET holds only indexed, unique and ref attributes.
    let plain = s.url("plain.redb");
    ok(&[
        "transact",
        "--db",
        &plain,
        &s.file("p.edn", r#"[{:db/id -1 :x/plain 1}]"#),
    ]);
    let err = fails(&["query", "--db", &plain, "[:avet :x/plain]"]);
    assert!(err.contains(":x/plain is not in AVET"), "{err}");
    assert_eq!(
        fails_json(&["query", "--db", &plain, "[:avet :x/plain]"])["kind"],
        "not_in_avet"
    );
    // An empty head name.
    let out = run(&["log", "--db", &url, "--head", ""]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("a head name cannot be empty"), "{stderr}");
    // A demo that would load nothing per transaction.
    let out = run(&["demo", "--batch", "0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--batch"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn an_interrupted_demo_removes_its_temporary_directory() {
    use std::io::BufRead;
    let s = Scratch::new();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("datoms"))
        .args(["demo", "--datoms", "3000000", "--rounds", "1"])
        .env("TMPDIR", s.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let file = first
        .split("redb:")
        .nth(1)
        .unwrap_or_else(|| panic!("no redb URL in {first:?}"))
        .trim();
    let dir = Path::new(file).parent().unwrap().to_path_buf();
    assert!(dir.starts_with(s.dir.path()), "{dir:?}");
    // Let it load a while.
    let started = std::time::Instant::now();
    while !Path::new(file).exists() && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(dir.exists());
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(!dir.exists(), "{dir:?} is left behind");
}

/// Three people, Ann (31) friends with Bob (25), Cid (40) friends with Ann.
fn people(s: &Scratch, name: &str) -> String {
    let db = s.url(name);
    let schema = s.file("schema.edn", SCHEMA);
    let tx = s.file(
        "people.edn",
        r#"[{:db/id -1 :person/name "Ann" :person/age 31 :person/friend -2}
            {:db/id -2 :person/name "Bob" :person/age 25}
            {:db/id -3 :person/name "Cid" :person/age 40 :person/friend -1}]"#,
    );
    ok(&["transact", "--db", &db, "--schema", &schema, &tx]);
    db
}

#[test]
fn pull_of_several_entities_is_a_vector_in_order() {
    // Datascript's pull-many: (d/pull-many db [:person/name] [3 1 99]) => [{…Cid} {…Ann} nil].
    let s = Scratch::new();
    let db = people(&s, "many.redb");
    let pulled = ok(&["pull", "--db", &db, "[:person/name]", "3", "1", "99"]);
    assert_eq!(
        pulled.trim(),
        r#"[{:person/name "Cid"} {:person/name "Ann"} nil]"#
    );
    // One entity is still the map itself.
    let one = ok(&["pull", "--db", &db, "[:person/name]", "2"]);
    assert_eq!(one.trim(), r#"{:person/name "Bob"}"#);
    // A bad entity among many names itself; nothing is printed.
    let err = fails(&["pull", "--db", &db, "[:person/name]", "1", "\"Ann\""]);
    assert!(err.contains("\"Ann\""), "{err}");
}

#[test]
fn index_reads_seek_reverse_and_range() {
    let s = Scratch::new();
    let db = people(&s, "range.redb");
    let ages = |args: &[&str]| -> Vec<i64> {
        let mut all = vec![args[0], "--db", db.as_str()];
        all.extend_from_slice(&args[1..]);
        json(&all)
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["a"] == ":person/age")
            .map(|d| d["v"].as_i64().unwrap())
            .collect()
    };
    // index-range, both ends inclusive, either end open.
    assert_eq!(
        ages(&[
            "datoms",
            "--index",
            "avet",
            "--start",
            "25",
            "--end",
            "31",
            ":person/age"
        ]),
        [25, 31]
    );
    assert_eq!(
        ages(&["query", "--index", "avet", "--start", "30", ":person/age"]),
        [31, 40]
    );
    assert_eq!(
        ages(&["query", "--index", "avet", "--end", "30", ":person/age"]),
        [25]
    );
    // seek-datoms runs on past the components to the end of the index (into the next
    // attribute); rseek-datoms runs back to its start.
    let seek = json(&[
        "query",
        "--db",
        &db,
        "--index",
        "avet",
        "--seek",
        ":person/age",
        "31",
    ]);
    let seek: Vec<_> = seek
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["a"].clone(), d["v"].clone()))
        .collect();
    assert_eq!(seek[0], (":person/age".into(), 31.into()));
    assert_eq!(seek[1], (":person/age".into(), 40.into()));
    assert!(
        seek.len() > 2,
        "seek stops at the end of the index only: {seek:?}"
    );
    assert_eq!(
        ages(&["query", "--index", "avet", "--rseek", ":person/age", "31"]),
        [31, 25]
    );
    // Ranges read AVET only, and only an attribute kept there.
    let err = fails(&["query", "--db", &db, "--index", "eavt", "--start", "1", "1"]);
    assert!(err.contains("--index avet"), "{err}");
    let err = fails(&[
        "query",
        "--db",
        &db,
        "--index",
        "avet",
        "--start",
        "1",
        ":person/friendless",
    ]);
    assert!(err.contains(":person/friendless"), "{err}");
    let err = fails(&[
        "query",
        "--db",
        &db,
        "--seek",
        "[:find ?e :where [?e :person/age]]",
    ]);
    assert!(err.contains("--seek"), "{err}");
    // clap's usage error: status 2, naming both flags.
    let out = run(&[
        "query",
        "--db",
        &db,
        "--index",
        "avet",
        "--seek",
        "--rseek",
        ":person/age",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'--rseek'"));
}

#[test]
fn a_query_joins_two_databases_given_as_sources() {
    let s = Scratch::new();
    let db = people(&s, "one.redb");
    let other = s.url("two.redb");
    let schema = s.file("schema2.edn", SCHEMA);
    let tx = s.file(
        "two.edn",
        r#"[{:person/name "Bob" :person/age 26} {:person/name "Dee" :person/age 50}]"#,
    );
    ok(&["transact", "--db", &other, "--schema", &schema, &tx]);
    // People in both databases, with their ages in each.
    let both = ok(&[
        "query",
        "--db",
        &db,
        "--source",
        &format!("$2={other}"),
        "--format",
        "edn",
        "[:find ?n ?a1 ?a2 :in $ $2 :where [?e :person/name ?n] [?e :person/age ?a1] [$2 ?f :person/name ?n] [$2 ?f :person/age ?a2]]",
    ]);
    assert_eq!(both.trim(), r#"#{["Bob" 25 26]}"#);
    // A head of the second database by name; one that does not exist is an error.
    let err = fails(&[
        "query",
        "--db",
        &db,
        "--source",
        &format!("$2={other}#nope"),
        "[:find ?n :in $ $2 :where [$2 _ :person/name ?n]]",
    ]);
    assert!(err.contains("nope"), "{err}");
    // A source the query does not name, or a malformed one, is a usage error.
    let err = fails(&[
        "query",
        "--db",
        &db,
        "--source",
        &format!("$3={other}"),
        "[:find ?n :in $ $2 :where [$2 _ :person/name ?n]]",
    ]);
    assert!(err.contains("$3"), "{err}");
    let out = run(&[
        "query",
        "--db",
        &db,
        "--source",
        "two.redb",
        "[:find ?n :where [_ :person/name ?n]]",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("$name=URL"));
}

#[test]
fn log_stats_and_verify_name_the_roots_replicas_compare() {
    let s = Scratch::new();
    let db = people(&s, "primary.redb");
    let replica = s.url("replica.redb");
    ok(&["sync", "--from", &db, "--to", &replica]);
    let roots = |url: &str| {
        let log = json(&["log", "--db", url, "-n", "1"])[0]["roots"].clone();
        let stats = json(&["stats", "--db", url])["roots"].clone();
        let verify = json(&["verify", "--db", url])["roots"].clone();
        assert_eq!(log, stats);
        assert_eq!(log, verify);
        for index in ["eavt", "aevt", "avet"] {
            assert_eq!(log[index].as_str().map(str::len), Some(64), "{log}");
        }
        log
    };
    let primary = roots(&db);
    assert_eq!(
        primary,
        roots(&replica),
        "a synced replica holds the same version"
    );
    // The text reports show them too.
    let text = ok(&["stats", "--db", &db]);
    assert!(text.contains(primary["avet"].as_str().unwrap()), "{text}");
    let text = ok(&["verify", "--db", &replica]);
    assert!(text.contains(primary["eavt"].as_str().unwrap()), "{text}");
    // A new transaction on the primary changes its roots; the replica's stay.
    let tx = s.file("more.edn", r#"[{:person/name "Eve" :person/age 22}]"#);
    ok(&["transact", "--db", &db, &tx]);
    assert_ne!(roots(&db), primary);
    assert_eq!(roots(&replica), primary);
}
