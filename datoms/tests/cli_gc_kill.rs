//! `datoms gc` killed with SIGKILL at random points: after every kill the head verifies
//! (a killed run deletes only unreachable blobs), writers go on storing, and a run to the
//! end finishes the job, after which another finds nothing to collect.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use datoms::{store, Db, RedbStorage, Schema};

#[allow(dead_code)]
mod common;
use common::ok;

/// Kills, CI size; `DATOMS_GC_KILLS` sets more.
fn kills() -> u32 {
    std::env::var("DATOMS_GC_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// Stores `commits` commits of churn on `main` of the redb file at `path`, each
/// changing 150 of 1,500 entities, continuing from the head if there is one.
fn churn(path: &Path, commits: u32, round: &mut u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let storage = RedbStorage::open(path).unwrap();
        let mut db = match datoms::restore_from(&Db::new(Schema::new()), &storage, "main").await {
            Ok(restored) => {
                datoms::materialize(&restored.db, &storage)
                    .await
                    .unwrap()
                    .db
            }
            Err(_) => Db::new(Schema::new()),
        };
        for _ in 0..commits {
            *round += 1;
            let tx: String = (0..150u32)
                .map(|i| {
                    let e = 1 + (*round * 151 + i * 10) % 1500;
                    format!("[:db/add {e} :item/v \"round {round} item {i} {e}\"]")
                })
                .collect();
            db = db.with_edn(&format!("[{tx}]")).unwrap().db_after;
            db = store(&db, &storage, "main").await.unwrap().db;
        }
    });
}

fn json_number(out: &str, field: &str) -> u64 {
    let doc: serde_json::Value = serde_json::from_str(out).unwrap();
    doc[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {out}"))
}

#[test]
fn a_gc_killed_at_random_points_leaves_a_consistent_store_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("churn.redb");
    let url = format!("redb:{}", path.display());
    let mut round = 0;
    churn(&path, 40, &mut round);
    let bin = assert_cmd::cargo::cargo_bin!("datoms");
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut killed_mid_run = 0;
    for _ in 0..kills() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(bin)
            .args(["gc", "--db", &url, "--grace", "0s", "--lock-wait", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + seed % 400));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        ok(&["verify", "--db", &url, "--lock-wait", "10"]);
        // Writers go on after a kill: new garbage for the next run.
        churn(&path, 3, &mut round);
    }
    assert!(
        killed_mid_run > 0,
        "no kill landed while a GC was under way (the case tests nothing)"
    );
    let first = ok(&["gc", "--db", &url, "--grace", "0s", "--json"]);
    assert!(json_number(&first, "reachable") > 0, "{first}");
    let again = ok(&["gc", "--db", &url, "--grace", "0s", "--json"]);
    assert_eq!(json_number(&again, "collected"), 0, "{again}");
    ok(&["verify", "--db", &url]);
    // The history ends where GC cut it, and `log` ends there too.
    ok(&["log", "--db", &url]);
}
