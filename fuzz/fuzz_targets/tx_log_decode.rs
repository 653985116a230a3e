//! The tx-log decoder: arbitrary bytes as the log of a commit (whose transaction and
//! datom counts are read from the bytes, so the counts agree and the decoder's checks
//! past them are reached). The log format promises one encoding: a log that decodes
//! re-encodes to exactly its bytes.
#![no_main]

use datoms_core::commit::CommitLog;
use datoms_core::{Address, Commit, Schema, TreeConfig, TxLogEntry};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;

type Shape = (
    Vec<IgnoredAny>,
    Vec<(IgnoredAny, Vec<IgnoredAny>, IgnoredAny)>,
);

fuzz_target!(|data: &[u8]| {
    let (txs, datoms) = match rmp_serde::from_slice::<Shape>(data) {
        Ok((_, entries)) => (
            entries.len(),
            entries.iter().map(|(_, d, _)| d.len()).sum::<usize>(),
        ),
        Err(_) => (0, 0),
    };
    // The commit's log field: `[txs, datoms, bin]`.
    let mut wire = vec![0x93];
    wire.extend(rmp_serde::to_vec(&(txs as u64, datoms as u64)).unwrap_or_default()[1..].iter());
    wire.push(0xc6);
    wire.extend((data.len() as u32).to_be_bytes());
    wire.extend(data);
    let Ok(log) = rmp_serde::from_slice::<CommitLog>(&wire) else {
        return;
    };
    let Ok(entries) = decode(log) else {
        return;
    };
    let again = CommitLog::new(&entries);
    assert_eq!(again.txs(), txs);
    assert_eq!(again.datoms(), datoms);
    match decode(again.clone()) {
        Ok(decoded) => assert_eq!(decoded, entries, "re-encoding changes the log"),
        Err(e) => panic!("a decoded log's encoding does not decode: {e}"),
    }
    if std::env::var_os("DATOMS_FUZZ_STRICT").is_some() {
        assert_eq!(
            again.encoded(),
            data,
            "a log decoded from non-canonical bytes"
        );
    }
});

/// Decodes `log` as the log of a commit, and the large values it references.
fn decode(log: CommitLog) -> Result<Vec<TxLogEntry>, datoms_core::Error> {
    let commit = Commit {
        schema: Schema::new(),
        config: TreeConfig::default(),
        max_eid: 0,
        max_tx: u64::MAX,
        roots: [Address([0; 32]); 3],
        parent: None,
        ancestors: Vec::new(),
        log,
        manifest: Vec::new(),
        ancestor_manifests: Vec::new(),
        nodes: 0,
        time: 0,
        merged: Vec::new(),
    };
    let _ = commit.log_large_references();
    commit.log_entries()
}
