//! The `datoms` CLI with large values (stored out of line): a 2 MiB string writes about
//! 2 MiB, a change next to it writes kilobytes, and it reads back, verifies, exports and
//! imports whole.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;
use common::ok;

fn json(args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&args)).unwrap()
}

#[test]
fn a_large_string_is_written_once_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("redb:{}", dir.path().join("app.redb").display());
    let body: String = (0..2 << 20)
        .map(|i| char::from(b'a' + (i % 23) as u8))
        .collect();
    let tx = dir.path().join("doc.edn");
    std::fs::write(
        &tx,
        format!(r#"[{{:db/id -1 :doc/title "t" :doc/body "{body}"}}]"#),
    )
    .unwrap();
    let first = json(&["transact", "--db", &db, tx.to_str().unwrap()]);
    let written = first["bytes_written"].as_u64().unwrap();
    assert!(
        written >= body.len() as u64 && written < body.len() as u64 + 16 * 1024,
        "a {} byte string wrote {written} bytes",
        body.len()
    );

    let next = dir.path().join("next.edn");
    std::fs::write(&next, r#"[[:db/add 1 :doc/title "t2"]]"#).unwrap();
    let second = json(&["transact", "--db", &db, next.to_str().unwrap()]);
    assert!(
        second["bytes_written"].as_u64().unwrap() < 16 * 1024,
        "{second}"
    );

    let found = json(&[
        "query",
        "--db",
        &db,
        "[:find ?b :where [?e :doc/title \"t2\"] [?e :doc/body ?b]]",
    ]);
    assert_eq!(found.to_string().matches(&body).count(), 1);
    ok(&["verify", "--db", &db]);

    // Export and import carry the value whole.
    let dump = dir.path().join("dump.edn");
    ok(&["export", "--db", &db, dump.to_str().unwrap()]);
    let copy = format!("redb:{}", dir.path().join("copy.redb").display());
    ok(&["import", "--db", &copy, dump.to_str().unwrap()]);
    let copied = json(&[
        "query",
        "--db",
        &copy,
        "[:find ?b :where [?e :doc/body ?b]]",
    ]);
    assert_eq!(copied.to_string().matches(&body).count(), 1);
    ok(&["verify", "--db", &copy]);
}
