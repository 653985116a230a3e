//! `datoms-bench http` at a tiny size: every row runs, smart sync takes one request for
//! each replica (the run exits with status 2 otherwise), and the report says so.

use std::process::Command;

#[test]
fn the_http_run_restores_in_one_request_with_smart_sync() {
    let output = Command::new(env!("CARGO_BIN_EXE_datoms-bench"))
        .args([
            "http",
            "--quick",
            "--datoms",
            "3000",
            "--behind",
            "1,12",
            "--clients",
            "1,4",
        ])
        .output()
        .expect("datoms-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "datoms-bench http failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let sync_rows: Vec<&str> = stdout.lines().filter(|l| l.contains("| sync |")).collect();
    assert_eq!(sync_rows.len(), 4, "{stdout}");
    assert!(
        sync_rows.iter().all(|l| l.contains("| sync | 1 |")),
        "{stdout}"
    );
    let blob_rows = stdout
        .lines()
        .filter(|l| l.contains("| blobs |") && !l.starts_with("| replica"))
        .count();
    assert_eq!(blob_rows, 4, "{stdout}");
    assert!(stdout.contains("| 4 | 400 |"), "{stdout}");
}
