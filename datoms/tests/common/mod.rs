//! What the CLI test files share: running the `datoms` binary and checking how it ended.

use std::process::Output;

use assert_cmd::cargo::cargo_bin_cmd;

/// Runs `datoms` with `args`.
pub fn run(args: &[&str]) -> Output {
    cargo_bin_cmd!("datoms").args(args).output().unwrap()
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "datoms {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with one `error: …` line and no panic; returns it.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "datoms {args:?} should have failed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "not an error line: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}
