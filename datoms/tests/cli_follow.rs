//! `datoms sync`, `follow` and `diff`, and commands that wait for a file another process
//! holds: eight concurrent `transact` processes on one redb file all land.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{fails, ok};

fn url(path: &Path) -> String {
    format!("redb:{}", path.display())
}

/// Runs `datoms transact` with `tx` on stdin; returns stdout.
fn transact(db: &str, tx: &str, extra: &[&str]) -> std::process::Output {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("datoms"))
        .args(["transact", "--db", db])
        .args(extra)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(tx.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The commits of the head, newest first.
fn commits(db: &str) -> Vec<String> {
    let log: serde_json::Value = serde_json::from_str(&ok(&["log", "--db", db, "--json"])).unwrap();
    log.as_array()
        .unwrap()
        .iter()
        .map(|c| c["commit"].as_str().unwrap().to_owned())
        .collect()
}

/// The issue's reproduction: 8 concurrent `datoms transact` on one redb file used to
/// give 7 × "Database already open". Each now waits for the file (saying so on stderr)
/// and all 8 land, one commit each.
#[test]
fn concurrent_transacts_on_one_redb_file_wait_for_it_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let db = url(&dir.path().join("db.redb"));
    assert!(transact(&db, r#"[{:db/id -1 :person/name "seed"}]"#, &[])
        .status
        .success());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            std::thread::spawn(move || {
                transact(
                    &db,
                    &format!(r#"[{{:db/id -1 :person/name "writer {i}"}}]"#),
                    &[],
                )
            })
        })
        .collect();
    let outputs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "a transact failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        commits(&db).len(),
        9,
        "the seed and 8 writers, one commit each"
    );
    let names = ok(&[
        "query",
        "--db",
        &db,
        "[:find ?n :where [_ :person/name ?n]]",
        "--json",
    ]);
    for i in 0..8 {
        assert!(
            names.contains(&format!("writer {i}")),
            "writer {i} is missing: {names}"
        );
    }
}

/// With no time to wait, a command on a file another process holds fails with one
/// line naming the file and the wait.
#[test]
fn a_command_gives_up_after_its_lock_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let held = datoms::RedbStorage::open(&path).unwrap();
    let line = fails(&["stats", "--db", &url(&path), "--lock-wait", "0"]);
    assert!(line.contains("still in use after waiting 0 s"), "{line}");
    drop(held);
}

/// `sync` copies a head to a new file (every commit, restorable), then only what is
/// new; `diff` between two commits of the copy prints what changed; a copy with
/// nothing new says so.
#[test]
fn sync_copies_a_head_and_then_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        url(&dir.path().join("a.redb")),
        url(&dir.path().join("b.redb")),
    );
    transact(&a, r#"[{:db/id -1 :person/name "Ann"}]"#, &[]);
    transact(&a, r#"[{:db/id -1 :person/name "Bob"}]"#, &[]);
    let first: serde_json::Value =
        serde_json::from_str(&ok(&["sync", "--from", &a, "--to", &b, "--json"])).unwrap();
    assert_eq!(first["moved"], true);
    assert_eq!(first["commits_copied"], 2);
    transact(&a, r#"[[:db/retract 1 :person/name "Ann"]]"#, &[]);
    let second: serde_json::Value =
        serde_json::from_str(&ok(&["sync", "--from", &a, "--to", &b, "--json"])).unwrap();
    assert_eq!(second["commits_copied"], 1);
    assert!(second["nodes_copied"].as_u64().unwrap() < first["nodes_copied"].as_u64().unwrap() + 3);
    let again = ok(&["sync", "--from", &a, "--to", &b]);
    assert!(again.contains("nothing to copy"), "{again}");
    assert_eq!(commits(&a), commits(&b));
    ok(&["verify", "--db", &b]);

    let c = commits(&b);
    let diff = ok(&["diff", "--db", &b, &c[2][..8], &c[0][..8]]);
    assert!(diff.starts_with(";; "), "{diff}");
    assert!(
        diff.contains(r#"#datom [1 :person/name "Ann" 536870913 false]"#),
        "{diff}"
    );
    assert!(
        diff.contains(r#"#datom [2 :person/name "Bob" 536870914 true]"#),
        "{diff}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["diff", "--db", &b, &c[1], &c[0], "--json"])).unwrap();
    assert_eq!(json["added"].as_array().unwrap().len(), 0);
    assert_eq!(json["retracted"][0]["v"], "Ann");
}

/// `follow --json` prints one line per commit as other processes transact on the same
/// redb file (which it opens only for each read, so they get it), in order.
#[test]
fn follow_prints_one_json_line_per_commit_while_others_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = url(&dir.path().join("db.redb"));
    transact(&db, r#"[{:db/id -1 :person/name "seed"}]"#, &[]);
    let mut follower = Command::new(assert_cmd::cargo::cargo_bin!("datoms"))
        .args([
            "follow",
            "--db",
            &db,
            "--json",
            "--limit",
            "3",
            "--poll-ms",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    // Give the follower time to start at the seed commit before anything moves.
    std::thread::sleep(std::time::Duration::from_millis(500));
    for name in ["one", "two", "three"] {
        let out = transact(
            &db,
            &format!(r#"[{{:db/id -1 :person/name "{name}"}}]"#),
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let update: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(update["commits"], 1, "{line}");
        seen.push((
            update["commit"].as_str().unwrap().to_owned(),
            update["added"][0]["v"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(follower.wait().unwrap().success());
    let mut log = commits(&db);
    log.reverse();
    let want: Vec<(String, String)> = log[1..]
        .iter()
        .cloned()
        .zip(["one", "two", "three"].map(String::from))
        .collect();
    assert_eq!(seen, want);
}
