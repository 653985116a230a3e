//! CI runs the harness's quick mode: small sizes, every part exercised — the Datascript
//! peer included — and checks only that the report was produced and is internally
//! consistent. Nothing here looks at wall time.
//!
//! The peer is part of this test on purpose: it is the only check that the Rust and JS
//! generators still produce the same workload (equal checksums), which the full-mode
//! ratios rely on. When node or the installed peer is missing, this test fails and says
//! to run `scripts/setup/bench-peer.sh` (which `scripts/test.sh` runs first).

use std::process::Command;

use datoms_bench::Report;

#[test]
fn the_quick_run_produces_a_consistent_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let markdown = dir.path().join("report.md");
    let output = Command::new(env!("CARGO_BIN_EXE_datoms-bench"))
        .arg("--quick")
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .arg("--scratch")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "datoms-bench --quick failed ({}):\n{stderr}",
        output.status
    );

    let report: Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report.check(), Vec::<String>::new());

    // The peer ran and built the same db from the same seed.
    let peer = report
        .peer
        .as_ref()
        .expect("the quick run includes the peer");
    assert_eq!(peer.workload_checksum, report.workload.workload_checksum);
    assert_eq!(peer.delta_checksum, report.workload.delta_checksum);
    assert_eq!(peer.db_checksum, report.workload.db_checksum);
    assert_eq!(peer.small_db_checksum, report.transact.small_db_checksum);
    // The small workloads on the small db (one `:db/add` per tx, the UI mix) too.
    assert_eq!(peer.adds_db_checksum, report.transact.adds.db_checksum);
    assert_eq!(peer.mix_db_checksum, report.transact.mix.db_checksum);
    assert!(report.transact.adds.txs > 0 && report.transact.mix.txs > 0);
    assert_eq!(peer.datoms, report.workload.datoms);

    // Every backend of this build, each with a replica equal to its primary and an
    // incremental restore cheaper than a full one.
    let names: Vec<&str> = report.backends.iter().map(|b| b.name.as_str()).collect();
    assert!(names.starts_with(&["mem", "redb"]), "{names:?}");
    for b in &report.backends {
        assert!(b.replicas_equal, "{}", b.name);
        assert!(b.incremental.bytes < b.full.bytes, "{}", b.name);
        assert!(b.incremental.nodes >= b.changed_nodes, "{}", b.name);
        assert_eq!(b.delta_datoms, 100, "{}", b.name);
    }

    // The design's bound: a replica at most 8 commits behind needs at most 3 round trips,
    // unless the manifests since its commit name more nodes than the head's trees have
    // (this small db, several 100-datom commits behind): then it walks the trees rather
    // than fetch more than a full restore would. One commit behind always fits.
    assert!(report.behind.iter().any(|b| b.commits == 8));
    for b in report.behind.iter().filter(|b| b.commits <= 8) {
        assert!(
            b.walked || b.io.round_trips <= 3,
            "{} behind: {:?}",
            b.commits,
            b.io
        );
        assert!(
            b.commits > 1 || !b.walked,
            "one commit behind walked: {b:?}"
        );
    }

    // Every delta size and db size was measured; the targets were evaluated.
    assert_eq!(
        report.deltas.iter().map(|d| d.datoms).collect::<Vec<_>>(),
        vec![1, 10, 100, 1000]
    );
    assert_eq!(report.growth.len(), 2);
    assert!(report
        .memory
        .as_ref()
        .is_some_and(|m| m.bytes_per_datom > 0.0));
    assert_eq!(report.targets.len(), 8);

    let md = std::fs::read_to_string(&markdown).unwrap();
    for section in [
        "### Targets",
        "### Transact throughput",
        "### Backends side by side",
        "### What the full store writes",
        "### Restore cost as the delta grows",
        "### A replica k commits behind",
        "### Restore cost as the db grows",
        "### Resident memory",
    ] {
        assert!(md.contains(section), "the markdown lacks {section:?}");
    }
}

#[test]
fn unknown_options_and_backends_are_usage_errors() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_datoms-bench"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--quick", "--backends", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown backend"));
    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(1));
}
