#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Large values stored out of line: written once, shared by every index, node and
//! commit, fetched once, and never rewritten (or refetched) for a neighbouring change.
//! Driven through the public API from an in-memory map, as a storage driver would.

use std::collections::{HashMap, HashSet};

use datoms_core::addressing::{all_nodes, commit_for};
use datoms_core::restore::Mode;
use datoms_core::{
    Address, Datom, Db, Error, IndexKind, LargeValue, Restore, RestoreStats, Schema, Step,
    TxLogEntry, Value, OUT_OF_LINE_BYTES, TX0,
};
use proptest::prelude::*;

/// Content no other test makes (the registry of held values is process-wide).
fn text(len: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

type Blobs = HashMap<Address, Vec<u8>>;

/// What a store writes for `db` onto its base (or everything, without one): the nodes,
/// the large values and the commit, put into `blobs`. Returns the committed db and the
/// bytes written.
fn store(db: &Db, blobs: &mut Blobs) -> (Db, Address, usize) {
    let (commit, new) = commit_for(db).unwrap();
    let mut written = 0;
    for n in &new.nodes {
        written += n.bytes.len();
        blobs.insert(n.address, n.bytes.clone());
    }
    for v in &new.large_values {
        let bytes = v.encode();
        written += bytes.len();
        blobs.insert(v.address(), bytes);
    }
    let bytes = commit.encode();
    let address = Address::of(&bytes);
    written += bytes.len();
    blobs.insert(address, bytes);
    (db.committed(address, &commit), address, written)
}

fn restore(blobs: &Blobs, commit: Address, db1: Option<&Db>) -> (Db, RestoreStats) {
    let mut r = Restore::with_mode(commit, db1, Mode::Eager);
    loop {
        match r.poll().unwrap() {
            Step::Need(addresses) => {
                for a in addresses {
                    r.accept(a, blobs.get(&a).map(Vec::as_slice)).unwrap();
                }
            }
            Step::Done(db) => return (db, r.stats()),
        }
    }
}

/// The error a restore of `commit` from `blobs` must end with.
fn restore_error(blobs: &Blobs, commit: Address) -> Error {
    let mut r = Restore::new(commit, None);
    loop {
        match r.poll() {
            Ok(Step::Need(addresses)) => {
                if let Some(e) = addresses
                    .into_iter()
                    .map(|a| r.accept(a, blobs.get(&a).map(Vec::as_slice)))
                    .find_map(Result::err)
                {
                    return e;
                }
            }
            Ok(Step::Done(_)) => panic!("restored what it should not"),
            Err(e) => return e,
        }
    }
}

fn with_doc(doc: &str) -> Db {
    let edn = format!(
        r#"[{{:db/id -1 :doc/title "a" :doc/body "{doc}"}}
            {{:db/id -2 :doc/title "b" :doc/n 1}}]"#
    );
    Db::new(Schema::new()).with_edn(&edn).unwrap().db_after
}

#[test]
fn a_large_value_is_written_once() {
    let doc = text(2 << 20, 1);
    let mut blobs = Blobs::new();
    let (_, _, written) = store(&with_doc(&doc), &mut blobs);
    // The value sits in EAVT and AEVT and in the commit's log: stored once, the rest is
    // a few kilobytes of nodes and commit.
    assert!(
        written < doc.len() + 16 * 1024,
        "wrote {written} bytes for a {} byte value",
        doc.len()
    );
    let large: Vec<_> = blobs.values().filter(|b| b.len() > doc.len()).collect();
    assert_eq!(large.len(), 1, "the value is one blob");
}

#[test]
fn a_neighbouring_change_writes_and_fetches_kilobytes() {
    let doc = text(2 << 20, 2);
    let mut blobs = Blobs::new();
    let (db1, _, _) = store(&with_doc(&doc), &mut blobs);
    // Change the datom next to the document in every index (same entity, new attribute).
    let next = db1
        .with_edn(r#"[[:db/add 1 :doc/tag "draft"] [:db/add 1 :doc/n 7]]"#)
        .unwrap()
        .db_after;
    let (_, new) = commit_for(&next).unwrap();
    assert!(
        new.large_values.is_empty(),
        "the large value is stored already"
    );
    let (db2, c2, written) = store(&next, &mut blobs);
    assert!(written < 16 * 1024, "wrote {written} bytes");

    // A replica holding db1 restores db2 fetching only the changed nodes.
    let (replica, stats) = restore(&blobs, c2, Some(&db1));
    assert_eq!(replica.root_addresses(), db2.root_addresses());
    assert_eq!(stats.large_values_fetched, 0);
    assert!(stats.bytes_fetched < 16 * 1024, "{stats:?}");
    assert_eq!(
        replica.entity_attr(1, &":doc/body".into()).unwrap()[0].v,
        Value::from(doc.as_str())
    );
}

#[test]
fn a_restore_that_holds_nothing_fetches_each_large_value_once() {
    let mut blobs = Blobs::new();
    let (commit, roots) = {
        // Three entities share one document and another has its own; once stored, every
        // db value holding them is dropped, so the restore must fetch them.
        let shared = text(5000, 3);
        let own = text(OUT_OF_LINE_BYTES, 4);
        let edn = format!(
            r#"[{{:db/id -1 :doc/body "{shared}"}} {{:db/id -2 :doc/body "{shared}"}}
                {{:db/id -3 :doc/body "{shared}"}} {{:db/id -4 :doc/body "{own}"}}]"#
        );
        let db = Db::new(Schema::new()).with_edn(&edn).unwrap().db_after;
        let (db, commit, _) = store(&db, &mut blobs);
        (commit, db.root_addresses())
    };
    let (db, stats) = restore(&blobs, commit, None);
    assert_eq!(db.root_addresses(), roots);
    assert_eq!(stats.large_values_fetched, 2, "{stats:?}");
    let bodies: HashSet<String> = (1..=4)
        .map(
            |e| match &db.entity_attr(e, &":doc/body".into()).unwrap()[0].v {
                Value::String(s) => s.to_string(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(bodies.len(), 2);
    // In memory the three copies (and their AEVT twins) are one allocation.
    let ptrs: HashSet<*const u8> = (1..=3)
        .map(
            |e| match &db.entity_attr(e, &":doc/body".into()).unwrap()[0].v {
                Value::String(s) => s.as_ptr(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(ptrs.len(), 1);
}

#[test]
fn a_missing_or_damaged_large_value_is_a_typed_error() {
    let mut blobs = Blobs::new();
    let (commit, value_address) = {
        let db = with_doc(&text(3000, 5));
        let (_, new) = commit_for(&db).unwrap();
        let address = new.large_values[0].address();
        let (_, commit, _) = store(&db, &mut blobs);
        (commit, address)
    };
    let mut damaged = blobs.clone();
    damaged.get_mut(&value_address).unwrap()[500] ^= 1;
    let err = restore_error(&damaged, commit);
    assert!(matches!(err, Error::Corrupt { address, .. } if address == value_address));

    blobs.remove(&value_address);
    let err = restore_error(&blobs, commit);
    assert!(
        matches!(err, Error::NodeUnavailable { address, .. } if address == value_address),
        "{err:?}"
    );
}

#[test]
fn a_log_that_references_a_value_nobody_holds_names_it() {
    let mut blobs = Blobs::new();
    let (commit, value) = {
        let db = with_doc(&text(4000, 6));
        let (_, new) = commit_for(&db).unwrap();
        let value = new.large_values[0].address();
        let (_, commit, _) = store(&db, &mut blobs);
        (commit, value)
    };
    let decoded = datoms_core::Commit::decode(commit, &blobs[&commit]).unwrap();
    match decoded.log_entries() {
        Err(Error::LargeValuesMissing { addresses, .. }) => assert_eq!(addresses, vec![value]),
        other => panic!("{other:?}"),
    }
    let held = LargeValue::decode(value, &blobs[&value]).unwrap();
    let log = decoded.log_entries().unwrap();
    assert!(log[0].datoms.iter().any(|d| d.v == held.to_value()));
}

#[test]
fn stored_bytes_keep_one_encoding_per_value() {
    // A large value stored inline, or a reference to a short one, is refused: either
    // would give one value two encodings (and two addresses).
    let doc = text(2000, 7);
    let db = with_doc(&doc);
    let leaf = db.tree(IndexKind::Eavt).root().clone();
    let bytes = leaf.encode();
    assert!(bytes.len() < doc.len(), "the leaf holds a reference");
    let reference_at = bytes
        .windows(32)
        .position(|w| {
            w == LargeValue::adopt(&Value::from(doc.as_str()))
                .unwrap()
                .address()
                .0
        })
        .unwrap();
    // Replace the reference (tag 0x44, bin8 header, 32 bytes) with the inline string.
    let start = reference_at - 3;
    assert_eq!(bytes[start], 0x44);
    let mut inline = bytes[..start].to_vec();
    inline.push(4);
    inline.extend(rmp_serde::to_vec(doc.as_str()).unwrap());
    inline.extend(&bytes[reference_at + 32..]);
    let err = datoms_core::tree::Node::decode(Address::of(&inline), &inline, IndexKind::Eavt)
        .unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// After any sequence of stores of random changes to a db with large values, each
    /// onto the previous commit: every large value the head's nodes and logs reference
    /// is in storage, the incremental restore equals the full one, and a neighbouring
    /// change never rewrites a value.
    #[test]
    fn stores_of_large_values_are_complete_and_restores_agree(
        batches in proptest::collection::vec(
            proptest::collection::vec((1u64..40, 0u8..6, any::<bool>()), 1..12),
            1..5,
        ),
        seed in any::<u64>(),
    ) {
        let docs: Vec<String> = (0..6).map(|i| text(OUT_OF_LINE_BYTES + 300 * i, seed ^ i as u64)).collect();
        let mut blobs = Blobs::new();
        let first: Vec<Datom> = (1..=30u64)
            .map(|e| Datom::new(e, ":doc/n", e as i64, TX0 + 1))
            .collect();
        let db0 = Db::new(Schema::new())
            .apply_log_entry(TxLogEntry { tx: TX0 + 1, datoms: first, id: None })
            .unwrap();
        let (mut db, _, _) = store(&db0, &mut blobs);
        let mut history = vec![db.clone()];
        for batch in batches {
            let ops: Vec<String> = batch
                .iter()
                .map(|(e, d, add)| {
                    let op = if *add { ":db/add" } else { ":db/retract" };
                    format!("[{op} {e} :doc/body \"{}\"]", docs[*d as usize])
                })
                .collect();
            let next = db.with_edn(&format!("[{}]", ops.join(" "))).unwrap().db_after;
            let (stored, commit, _) = store(&next, &mut blobs);
            // Complete: every node and large value the head reaches is in storage.
            for n in all_nodes(&stored).unwrap().nodes {
                prop_assert!(blobs.contains_key(&n.address));
                for v in n.node().large_values() {
                    prop_assert!(blobs.contains_key(&v.address()));
                }
            }
            let (full, _) = restore(&blobs, commit, None);
            let (incremental, _) = restore(&blobs, commit, Some(&history[0]));
            prop_assert_eq!(full.root_addresses(), stored.root_addresses());
            prop_assert_eq!(incremental.root_addresses(), stored.root_addresses());
            db = stored;
            history.push(db.clone());
        }
    }
}
