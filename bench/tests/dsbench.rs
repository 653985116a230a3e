//! Datascript's benchmark suite at a small size (`datoms_bench::dsbench`): every
//! benchmark runs on both sides (Datascript 1.8.1 on node, `bench/peer/dsbench.js`, and
//! datoms) and every answer must be the same. Asserts nothing about time. Needs
//! `scripts/setup/bench-peer.sh` to have run.

use datoms_bench::dsbench::{self, DsConfig};

#[test]
fn every_benchmark_of_the_suite_answers_as_datascript_does() {
    let report = dsbench::run(&DsConfig::quick()).unwrap();
    assert!(report.rows.len() >= 20, "{} rows", report.rows.len());
    for row in &report.rows {
        assert_eq!(row.equal, Some(true), "{}", report.to_markdown());
        assert!(row.datoms_ms > 0.0 && row.datascript_ms.is_some_and(|ms| ms > 0.0));
    }
    assert!(report.problems().is_empty());
    assert!(report.to_markdown().contains("| q2-switch |"));
}
