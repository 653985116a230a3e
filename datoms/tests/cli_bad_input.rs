//! What a new user met in issue 27, through the `datoms` binary against a real redb
//! file: numbers that were changed on the way in, and lookup refs on attributes that are
//! not unique, which pull and index reads answered with an arbitrary entity (or nil).
//! Each is now a one-line error naming what is wrong.

#![allow(clippy::unwrap_used)]

use assert_cmd::cargo::cargo_bin_cmd;

const SCHEMA: &str = r#"{:person/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
 :person/age {:db/valueType :db.type/long :db/index true}
 :person/email {:db/valueType :db.type/string}}"#;

const PEOPLE: &str = r#"[{:db/id -1 :person/name "Ann" :person/age 42 :person/email "a@x"}
 {:db/id -2 :person/name "Bob" :person/age 42 :person/email "b@x"}]"#;

/// Runs `datoms args`; its success, stdout and stderr.
fn run(args: &[&str]) -> (bool, String, String) {
    let out = cargo_bin_cmd!("datoms").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A redb db holding [`PEOPLE`] in `dir`; its URL.
fn people(dir: &tempfile::TempDir) -> String {
    let url = format!("redb:{}", dir.path().join("db.redb").display());
    let schema = dir.path().join("schema.edn");
    let tx = dir.path().join("people.edn");
    std::fs::write(&schema, SCHEMA).unwrap();
    std::fs::write(&tx, PEOPLE).unwrap();
    let (ok, _, err) = run(&[
        "transact",
        "--db",
        &url,
        "--schema",
        schema.to_str().unwrap(),
        tx.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    url
}

/// `datoms args` fails with one error line containing every one of `needles`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let (ok, out, err) = run(args);
    assert!(!ok, "datoms {args:?} should fail, printed {out}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "datoms {args:?}: {err:?} lacks {needle:?}"
        );
    }
}

#[test]
fn pull_and_index_reads_refuse_a_lookup_ref_on_an_attribute_that_is_not_unique() {
    let dir = tempfile::tempdir().unwrap();
    let db = people(&dir);
    let not_unique = ["must be :db/unique"];
    for lookup in ["[:person/age 42]", r#"[:person/email "a@x"]"#] {
        fails_with(&["pull", "--db", &db, "[*]", lookup], &not_unique);
        fails_with(
            &["query", "--db", &db, "--index", "eavt", lookup],
            &not_unique,
        );
    }
    // A unique attribute still resolves.
    let (ok, out, err) = run(&["pull", "--db", &db, "[*]", r#"[:person/name "Bob"]"#]);
    assert!(ok, "{err}");
    assert!(out.contains(r#":person/email "b@x""#), "{out}");
}

#[test]
fn a_big_decimal_or_integer_is_refused_naming_the_literal() {
    let dir = tempfile::tempdir().unwrap();
    let db = people(&dir);
    let tx = dir.path().join("big.edn");
    std::fs::write(
        &tx,
        "[[:db/add 1 :person/balance 12345678901234567890.123456789M]]",
    )
    .unwrap();
    fails_with(
        &["transact", "--db", &db, tx.to_str().unwrap()],
        &["12345678901234567890.123456789M"],
    );
    fails_with(
        &[
            "query",
            "--db",
            &db,
            "[:find ?e :in $ ?a :where [?e :person/age ?a]]",
            "--in",
            "99999999999999999999N",
        ],
        &["99999999999999999999N"],
    );
    // The refused transaction stored nothing.
    let (ok, out, err) = run(&[
        "query",
        "--db",
        &db,
        "--format",
        "edn",
        "[:find ?e :where [?e :person/balance]]",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "#{}");
}

#[test]
fn a_big_transaction_reports_a_count_of_its_tempids_and_json_carries_them_all() {
    // Issue 20: 100,000 tempids once came back on one 1.5 MB line.
    let dir = tempfile::tempdir().unwrap();
    let url = people(&dir);
    let n = 2_000;
    let tx: String = (0..n)
        .map(|i| format!("{{:db/id \"p{i}\" :person/name \"n{i}\"}}"))
        .collect::<Vec<_>>()
        .join(" ");
    let file = dir.path().join("big.edn");
    std::fs::write(&file, format!("[{tx}]")).unwrap();
    let (ok, out, err) = run(&["transact", "--db", &url, file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.len() < 1_000, "{} bytes of report", out.len());
    assert!(
        out.contains("… and 1,990 more (--json lists them all)"),
        "{out}"
    );
    // --json: every tempid, each with its id.
    let tx2: String = (0..n)
        .map(|i| format!("{{:db/id \"q{i}\" :person/name \"m{i}\"}}"))
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(&file, format!("[{tx2}]")).unwrap();
    let (ok, out, err) = run(&["transact", "--db", &url, file.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tempids = doc["tempids"].as_object().unwrap();
    assert_eq!(
        tempids.keys().filter(|k| k.starts_with('q')).count(),
        n,
        "{tempids:?}"
    );
}

#[test]
fn an_error_quotes_an_excerpt_of_a_long_input_around_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let url = people(&dir);
    // A 10 KB value with a syntax error at its end.
    let long = format!("[:person/name \"{}\" (]", "x".repeat(10_000));
    let (ok, _, err) = run(&["query", "--db", &url, "--index", "avet", &long]);
    assert!(!ok);
    assert!(err.len() < 400, "{} bytes: {err}", err.len());
    assert!(err.contains("10,0"), "names the size: {err}");
    assert!(err.contains("(]"), "quotes the fault: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // An --in value: the same.
    let (ok, _, err) = run(&[
        "query",
        "--db",
        &url,
        "[:find ?e :in $ ?n :where [?e :person/name ?n]]",
        "--in",
        &format!("\"{}", "y".repeat(10_000)),
    ]);
    assert!(!ok);
    assert!(err.len() < 500, "{} bytes: {err}", err.len());
    assert!(err.contains("--in"), "{err}");
    // A short one is quoted whole, as before.
    let (ok, _, err) = run(&["query", "--db", &url, "--index", "avet", "(]"]);
    assert!(!ok);
    assert!(err.contains("\"(]\""), "{err}");
}
