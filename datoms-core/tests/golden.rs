//! Golden fixtures: encoded nodes and a commit, with their BLAKE3 addresses, checked in.
//! If an encoding changes, these fail: bump its version (`tree::FORMAT_VERSION` for nodes,
//! `commit::COMMIT_FORMAT_VERSION` for commits; the file names carry it) and decide
//! whether the old version stays readable, before re-blessing them with
//! `DATOMS_BLESS=1 cargo test -p datoms-core --test golden`. Fixtures of a version no
//! longer read stay checked in and must be refused with `UnsupportedVersion`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use datoms_core::commit::COMMIT_FORMAT_VERSION;
use datoms_core::tree::{Node, FORMAT_VERSION};
use datoms_core::{
    Address, AttributeSchema, Commit, CommitLog, Datom, Error, IndexKind, LargeValue, Schema, Tree,
    TreeConfig, TxId, TxLogEntry, Uuid, Value, ValueType, OUT_OF_LINE_BYTES, TX0,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One datom of every value type.
fn datoms() -> Vec<Datom> {
    let tx = TX0 + 1;
    vec![
        Datom::new(1, ":t/bool", Value::Bool(true), tx),
        Datom::new(1, ":t/long", Value::Long(-42), tx),
        Datom::new(1, ":t/double", Value::double(2.5).unwrap(), tx),
        Datom::new(1, ":t/instant", Value::Instant(1_700_000_000_123), tx),
        Datom::new(1, ":t/string", Value::string("héllo"), tx),
        Datom::new(1, ":t/keyword", Value::keyword(":a/b"), tx),
        Datom::new(
            1,
            ":t/uuid",
            Value::Uuid(Uuid::parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap()),
            tx,
        ),
        Datom::new(
            1,
            ":t/bytes",
            Value::Bytes(Arc::from(vec![0u8, 1, 255])),
            tx,
        ),
        Datom::new(1, ":t/ref", Value::Ref(2), tx),
        Datom::new(1, ":t/text", Value::from(large_text()), tx),
        // Without a namespace: first in Clojure's keyword order, last in the text order.
        Datom::new(1, ":zz", Value::keyword(":zz"), tx),
        // Composite values (value tags 9-12).
        Datom::new(1, ":t/symbol", composite("my.ns/sym"), tx),
        Datom::new(1, ":t/vector", composite("[1 nil \"x\" [2.5]]"), tx),
        Datom::new(1, ":t/set", composite("#{:b :a/b 3}"), tx),
        Datom::new(1, ":t/map", composite("{:k #{1} \"s\" nil}"), tx),
    ]
}

fn composite(text: &str) -> Value {
    datoms_core::edn::parse(text).unwrap().to_value().unwrap()
}

/// A string stored out of line (see `datoms_core::large`): nodes and logs reference it.
fn large_text() -> String {
    (0..OUT_OF_LINE_BYTES)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// The large value's blob, as stored.
fn large_blob() -> Vec<u8> {
    LargeValue::adopt(&Value::from(large_text()))
        .unwrap()
        .encode()
}

/// The commit fixture's log: every value type, a retraction, two txs sharing attributes.
fn log() -> Vec<TxLogEntry> {
    let tx = TX0 + 1;
    vec![
        TxLogEntry {
            tx,
            datoms: datoms(),
            id: Some(TxId(*b"peer-origin-0001")),
        },
        TxLogEntry {
            tx: tx + 1,
            datoms: vec![
                Datom::new(1, ":t/long", Value::Long(-42), tx + 1).retraction(),
                Datom::new(1, ":t/long", Value::Long(7), tx + 1),
                Datom::new(3, ":t/ref", Value::Ref(1), tx + 1),
            ],
            id: None,
        },
    ]
}

fn small() -> TreeConfig {
    TreeConfig {
        leaf_target: 4,
        branch_target: 4,
    }
}

/// A leaf, a branch (the root of a two-level tree) and a commit.
fn cases() -> Vec<(&'static str, u8, Vec<u8>)> {
    let leaf = Tree::build(IndexKind::Eavt, TreeConfig::default(), datoms());
    assert_eq!(leaf.root().level(), 0);
    let many: Vec<Datom> = (1..=40)
        .map(|e| Datom::new(e, ":t/long", Value::Long(e as i64), TX0 + 1))
        .collect();
    let branch = Tree::build(IndexKind::Avet, small(), many);
    assert!(branch.root().level() >= 1);
    let schema = Schema::new()
        .with(
            ":t/ref",
            AttributeSchema::default().value_type(ValueType::Ref).many(),
        )
        .unwrap()
        // A composite tuple declaration (schema fields of commit format 5).
        .with(
            ":t/long+string",
            AttributeSchema::default()
                .tuple_of(&[":t/long", ":t/string"])
                .identity(),
        )
        .unwrap();
    let commit = Commit {
        schema,
        config: TreeConfig::default(),
        max_eid: 3,
        max_tx: TX0 + 2,
        roots: [
            leaf.root_address(),
            branch.root_address(),
            Address::of(b"avet"),
        ],
        parent: Some(Address::of(b"parent")),
        ancestors: vec![Address::of(b"grandparent")],
        log: CommitLog::new(&log()),
        manifest: vec![leaf.root_address()],
        ancestor_manifests: vec![Some(vec![Address::of(b"m")]), None],
        nodes: 3,
        // The time and merge parents of commit format 6.
        time: 1_765_000_000_000,
        merged: vec![Address::of(b"merged")],
    };
    vec![
        ("large", 1, large_blob()),
        ("leaf", FORMAT_VERSION, leaf.root().encode()),
        ("branch", FORMAT_VERSION, branch.root().encode()),
        ("commit", COMMIT_FORMAT_VERSION, commit.encode()),
    ]
}

fn read(name: &str, version: u8) -> (Address, Vec<u8>) {
    let dir = fixtures();
    let bytes = std::fs::read(dir.join(format!("v{version}-{name}.bin"))).unwrap();
    let addr: Address = std::fs::read_to_string(dir.join(format!("v{version}-{name}.address")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (addr, bytes)
}

#[test]
fn encodings_match_the_checked_in_fixtures() {
    let dir = fixtures();
    let bless = std::env::var("DATOMS_BLESS").is_ok();
    for (name, version, bytes) in cases() {
        let bin = dir.join(format!("v{version}-{name}.bin"));
        let addr = dir.join(format!("v{version}-{name}.address"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&bin, &bytes).unwrap();
            std::fs::write(&addr, format!("{}\n", Address::of(&bytes))).unwrap();
            continue;
        }
        let stored = std::fs::read(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let stored_addr: Address = std::fs::read_to_string(&addr)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            bytes, stored,
            "the {name} encoding changed without a format-version bump"
        );
        assert_eq!(Address::of(&stored), stored_addr, "{name} address");
    }
}

#[test]
fn checked_in_fixtures_decode() {
    // The large value the leaf and the log reference, held while they decode.
    let (a, b) = read("large", 1);
    let large = LargeValue::decode(a, &b).unwrap();
    assert_eq!(large.to_value(), Value::from(large_text()));
    let (a, b) = read("leaf", FORMAT_VERSION);
    let leaf = Node::decode(a, &b, IndexKind::Eavt).unwrap();
    assert_eq!(leaf.datoms().len(), datoms().len());
    let (a, b) = read("branch", FORMAT_VERSION);
    let branch = Node::decode(a, &b, IndexKind::Avet).unwrap();
    assert!(branch.level() >= 1);
    assert_eq!(branch.count(), 40);
    let (a, b) = read("commit", COMMIT_FORMAT_VERSION);
    let commit = Commit::decode(a, &b).unwrap();
    assert_eq!(commit.log_entries().unwrap(), log());
    assert_eq!((commit.log.txs(), commit.log.datoms()), (2, 18));
    assert_eq!(commit.ancestor_manifests.len(), 2);
    assert_eq!(commit.nodes, 3);
    assert_eq!(commit.time, 1_765_000_000_000);
    assert_eq!(commit.merged, [Address::of(b"merged")]);
}

/// Commit formats 1 (attribute strings repeated per log datom), 2 (no node count), 3
/// (log entries without a transaction id), 4 (trees in the text order of keywords) and
/// 5 (no time, no merge parents) are not read any more. Their fixtures stay to check the refusal is a typed error.
#[test]
fn old_commit_versions_are_refused_with_a_typed_error() {
    for old in [1u8, 2, 3, 4, 5] {
        let (a, b) = read("commit", old);
        match Commit::decode(a, &b) {
            Err(Error::UnsupportedVersion {
                address,
                version,
                supported,
            }) => {
                assert_eq!((address, version), (a, old));
                assert_eq!(supported, COMMIT_FORMAT_VERSION);
            }
            other => panic!("expected UnsupportedVersion for version {old}, got {other:?}"),
        }
    }
}

/// Node formats 1 (large values inline) and 2 (keywords in the order of their text) are
/// not read any more either.
#[test]
fn old_node_versions_are_refused_with_a_typed_error() {
    for old in [1u8, 2] {
        for (name, index) in [("leaf", IndexKind::Eavt), ("branch", IndexKind::Avet)] {
            let (a, b) = read(name, old);
            match Node::decode(a, &b, index) {
                Err(Error::UnsupportedVersion {
                    address,
                    version,
                    supported,
                }) => {
                    assert_eq!((address, version), (a, old));
                    assert_eq!(supported, FORMAT_VERSION);
                }
                other => {
                    panic!("expected UnsupportedVersion for node version {old}, got {other:?}")
                }
            }
        }
    }
}
