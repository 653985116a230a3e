//! `datoms verify` on a redb file whose nodes were tampered with behind the storage's
//! back: one pass finds every damaged node (bytes flipped, or the blob gone) and names
//! each by address, then fails with one error line.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use datoms::tree::Node;
use datoms::{Address, IndexKind};

mod common;
use common::{fails, ok, run};

const BLOBS: redb::TableDefinition<&[u8; 32], &[u8]> = redb::TableDefinition::new("blobs");

const SCHEMA: &str = r#"{:person/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
 :person/age {:db/valueType :db.type/long :db/index true}}"#;

/// Whether `bytes` stored at `key` are a leaf node of some index.
fn is_leaf(key: &[u8; 32], bytes: &[u8]) -> bool {
    IndexKind::ALL.iter().any(|kind| {
        Node::decode(Address(*key), bytes, *kind).is_ok_and(|n| n.level() == 0 && n.count() > 0)
    })
}

#[test]
fn verify_names_every_tampered_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("#datoms/schema {}\n", SCHEMA.replace('\n', " "));
    for e in 1..=3000u64 {
        text.push_str(&format!(
            "#datom [{e} :person/name \"person {e}\" 536870913 true]\n#datom [{e} :person/age {} 536870913 true]\n",
            18 + e % 60
        ));
    }
    let file = dir.path().join("people.edn");
    std::fs::write(&file, text).unwrap();
    let path = dir.path().join("people.redb");
    let url = format!("redb:{}", path.display());
    ok(&["import", "--db", &url, &file.display().to_string()]);
    ok(&["verify", "--db", &url]);

    // Three leaves get a flipped byte, a fourth is deleted; every leaf's parent is left
    // alone, so every damaged node is reachable.
    let victims: Vec<String> = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let victims = {
            use redb::ReadableTable;
            let mut table = txn.open_table(BLOBS).unwrap();
            let leaves: Vec<([u8; 32], Vec<u8>)> = table
                .iter()
                .unwrap()
                .map(|e| e.unwrap())
                .map(|(k, v)| (*k.value(), v.value().to_vec()))
                .filter(|(k, v)| is_leaf(k, v))
                .collect();
            assert!(leaves.len() >= 12, "only {} leaves", leaves.len());
            let picked: Vec<_> = leaves.into_iter().step_by(3).take(4).collect();
            for (i, (key, bytes)) in picked.iter().enumerate() {
                if i == 3 {
                    table.remove(key).unwrap();
                } else {
                    let mut bytes = bytes.clone();
                    let at = bytes.len() / (i + 2);
                    bytes[at] ^= 0x10;
                    table.insert(key, bytes.as_slice()).unwrap();
                }
            }
            picked.iter().map(|(k, _)| Address(*k).to_hex()).collect()
        };
        txn.commit().unwrap();
        victims
    };

    let out = run(&["verify", "--db", &url]);
    assert!(!out.status.success(), "verify must fail on a tampered file");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("4 damaged nodes"), "{stdout}");
    for v in &victims {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("damaged:") && l.contains(v)),
            "verify must name {v}:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.lines().filter(|l| l.contains("damaged:")).count(),
        4,
        "{stdout}"
    );
    let err = fails(&["verify", "--db", &url]);
    assert!(err.contains("the first of 4 damaged nodes"), "{err}");
    assert!(victims.iter().any(|v| err.contains(v)), "{err}");
}
