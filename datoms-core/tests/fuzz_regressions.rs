//! Inputs the fuzz targets (`fuzz/`, see docs/reliability.md "Fuzzing") found, each
//! kept as a test through the public API: a typed error, bounded work and memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use datoms_core::commit::CommitLog;
use datoms_core::edn::parse_schema;
use datoms_core::pull::MAX_PULLED_ENTITIES;
use datoms_core::{Address, Commit, Datom, Db, Error, Schema, TreeConfig, TxLogEntry, Value, TX0};

/// A commit whose log is `bytes`, holding `txs` transactions of `datoms` datoms.
fn commit_with_log(txs: u8, datoms: u8, bytes: &[u8]) -> Commit {
    let mut wire = vec![0x93, txs, datoms, 0xc5];
    wire.extend(u16::try_from(bytes.len()).unwrap().to_be_bytes());
    wire.extend(bytes);
    Commit {
        schema: Schema::new(),
        config: TreeConfig::default(),
        max_eid: 10,
        max_tx: TX0 + 1,
        roots: [Address([0; 32]); 3],
        parent: None,
        ancestors: Vec::new(),
        log: rmp_serde::from_slice(&wire).unwrap(),
        manifest: Vec::new(),
        ancestor_manifests: Vec::new(),
        nodes: 0,
        time: 0,
        merged: Vec::new(),
    }
}

/// tx_log_decode (strict): a double written as the integer 3 (or as a float32) was read
/// as 3.0 and re-encoded as a float64, two encodings of one log. Only a float64 is read.
#[test]
fn a_log_double_must_be_a_float64() {
    let entry = TxLogEntry {
        tx: TX0 + 1,
        datoms: vec![Datom::new(1, ":x", Value::double(3.0).unwrap(), TX0 + 1)],
        id: None,
    };
    let log = CommitLog::new(std::slice::from_ref(&entry));
    let canonical = log.encoded().to_vec();
    assert_eq!(
        commit_with_log(1, 1, &canonical).log_entries().unwrap(),
        [entry]
    );
    let float64 = [0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0];
    let at = canonical
        .windows(float64.len())
        .position(|w| w == float64)
        .expect("the log holds the float64");
    for payload in [&[0x03][..], &[0xca, 0x40, 0x40, 0, 0]] {
        let mut bytes = canonical[..at].to_vec();
        bytes.extend(payload);
        bytes.extend(&canonical[at + float64.len()..]);
        let err = commit_with_log(1, 1, &bytes).log_entries().unwrap_err();
        assert!(
            matches!(&err, Error::MalformedLog { reason, .. } if reason.contains("float64")),
            "{err}"
        );
    }
}

/// pull_pattern: a pattern nesting a ref attribute 40 deep over refs that fan out in a
/// cycle (each entity a friend of the two others) pulls 2^40 entities; a few hundred
/// bytes of pattern exhausted memory. The pull stops at the bound with a typed error.
#[test]
fn a_pull_that_fans_out_exponentially_is_bounded() {
    let schema =
        parse_schema("{:friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}")
            .unwrap();
    let db = Db::new(schema)
        .with_edn("[{:db/id 1 :friend [2 3]} {:db/id 2 :friend [1 3]} {:db/id 3 :friend [1 2]}]")
        .unwrap()
        .db_after;
    let depth = 40;
    let pattern = format!(
        "{}[:db/id]{}",
        "[{:friend ".repeat(depth),
        "}]".repeat(depth)
    );
    let err = db.pull(&pattern, 1).unwrap_err();
    assert!(
        matches!(&err, Error::QueryEval { function, reason, .. }
            if function == "pull" && reason.contains(&MAX_PULLED_ENTITIES.to_string())),
        "{err}"
    );
    // A nesting that stays under the bound pulls in full: 2^10 leaves.
    let pattern = format!("{}[:db/id]{}", "[{:friend ".repeat(10), "}]".repeat(10));
    let pulled = db.pull(&pattern, 1).unwrap().to_string();
    assert_eq!(pulled.matches(":db/id").count(), 1 << 10);
}
