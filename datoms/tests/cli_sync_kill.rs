//! `datoms sync` killed with SIGKILL at random points: each rerun resumes, the copy's head
//! only ever names a complete commit, and the finished copy verifies and holds the
//! source's datoms.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[allow(dead_code)]
mod common;
use common::{ok, run};

fn url(path: &Path) -> String {
    format!("redb:{}", path.display())
}

/// Kills, CI size; `DATOMS_SYNC_KILLS` sets more.
fn kills() -> u32 {
    std::env::var("DATOMS_SYNC_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

#[test]
fn a_sync_killed_at_random_points_resumes_to_a_complete_copy() {
    let dir = tempfile::tempdir().unwrap();
    ok(&[
        "demo",
        "--dir",
        &dir.path().display().to_string(),
        "--datoms",
        "20000",
        "--rounds",
        "3",
    ]);
    let from = url(&dir.path().join("demo.redb"));
    let to = url(&dir.path().join("copy.redb"));
    let bin = assert_cmd::cargo::cargo_bin!("datoms");
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let mut killed_mid_copy = 0;
    for _ in 0..kills() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(bin)
            .args(["sync", "--from", &from, "--to", &to, "--lock-wait", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(seed % 400));
        if child.try_wait().unwrap().is_none() && dir.path().join("copy.redb").exists() {
            killed_mid_copy += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        // Whatever the copy's head names is complete (or there is no head yet).
        let out = run(&["verify", "--db", &to, "--lock-wait", "10"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success()
                || stderr.contains("does not exist")
                || stderr.contains("no database"),
            "a killed sync left an incomplete copy: {stderr}"
        );
    }
    assert!(
        killed_mid_copy > 0,
        "no kill landed while a copy was under way (the case tests nothing)"
    );
    ok(&["sync", "--from", &from, "--to", &to]);
    ok(&["verify", "--db", &to]);
    let count = |db: &str| ok(&["query", "--db", db, "[:find (count ?e) :where [?e _ _]]"]);
    assert_eq!(count(&to), count(&from));
}
