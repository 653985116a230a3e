//! Any value and composite tuples through the `datoms` binary (#26 item 1, #16 tuples):
//! stored in a redb file, printed by `query` and `pull`, exported and imported back.

#![allow(clippy::unwrap_used)]

mod common;
use common::{fails, ok};

const SCHEMA: &str = r#"{:path {:db/index true}
 :a+b {:db/tupleAttrs [:a :b] :db/unique :db.unique/identity}}"#;

#[test]
fn collections_symbols_and_tuples_are_stored_printed_exported_and_imported() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let url = format!("redb:{}", dir.path().join("v.redb").display());
    let schema = file("schema.edn", SCHEMA);
    let tx = file(
        "tx.edn",
        r#"[{:db/id 1 :path [1 2] :s a :m {:k #{1 2}} :a "x" :b "y"}
            [:db/add 2 :single {:map 1}]]"#,
    );
    ok(&["transact", "--db", &url, "--schema", &schema, &tx]);

    let q = |query: &str| {
        ok(&["query", "--db", &url, "--format", "edn", query])
            .trim()
            .to_owned()
    };
    assert_eq!(q("[:find ?e . :where [?e :path [1 2]]]"), "1");
    assert_eq!(q("[:find ?s . :where [1 :s ?s]]"), "a");
    assert_eq!(q("[:find ?m . :where [2 :single ?m]]"), "{:map 1}");
    assert_eq!(q("[:find ?t . :where [1 :a+b ?t]]"), r#"["x" "y"]"#);
    let pulled = ok(&["pull", "--db", &url, "[*]", r#"[:a+b ["x" "y"]]"#]);
    assert_eq!(
        pulled.trim(),
        r#"{:a "x", :a+b ["x" "y"], :b "y", :m {:k #{1 2}}, :path [1 2], :s a, :db/id 1}"#
    );

    // A tuple is the transaction's to keep: asserting another value is refused.
    let bad = file("bad.edn", r#"[[:db/add 1 :a+b ["q" "r"]]]"#);
    let err = fails(&["transact", "--db", &url, &bad]);
    assert!(err.contains("Can’t modify tuple attrs directly"), "{err}");

    // Export, import into a new db, export again: the same datoms and schema.
    let first = dir.path().join("a.datoms");
    ok(&["export", "--db", &url, first.to_str().unwrap()]);
    let copy = format!("redb:{}", dir.path().join("w.redb").display());
    ok(&["import", "--db", &copy, first.to_str().unwrap()]);
    let second = dir.path().join("b.datoms");
    ok(&["export", "--db", &copy, second.to_str().unwrap()]);
    let body = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with(";;") && !l.starts_with("#datoms/blake3 "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(body(&first), body(&second));
    assert!(body(&first)
        .iter()
        .any(|l| l.contains(":db/tupleAttrs [:a :b]")));
    let again = ok(&["pull", "--db", &copy, "[:a+b :m]", "1"]);
    assert_eq!(again.trim(), r#"{:a+b ["x" "y"], :m {:k #{1 2}}}"#);
}
