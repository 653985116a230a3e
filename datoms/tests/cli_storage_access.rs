//! The `datoms` binary meeting files as users have them: several readers at once, a file
//! it may not write, a writer in another process, a file damaged on disk.

// Test helpers outside `#[test]` fns are not covered by clippy's allow-unwrap-in-tests;
// a failed unwrap here is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{fails, ok, run};

/// The demo's database of about `datoms` datoms, kept in `dir`: its redb file.
fn demo_file(dir: &Path, datoms: u32) -> PathBuf {
    ok(&[
        "demo",
        "--dir",
        &dir.display().to_string(),
        "--datoms",
        &datoms.to_string(),
        "--rounds",
        "1",
    ]);
    dir.join("demo.redb")
}

fn url(path: &Path) -> String {
    format!("redb:{}", path.display())
}

/// The issue's reproduction: a 20,000-datom demo db with one page zeroed (`dd
/// if=/dev/zero of=db.redb bs=4096 seek=600 count=1 conv=notrunc`, and pages of redb's
/// own trees near the start of the file). `verify` reports the damage — the file, or the
/// node whose bytes it damaged — in one line, exits non-zero, never panics, and leaves
/// the file as it was.
#[test]
fn verify_names_a_damaged_redb_file_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_file(dir.path(), 20_000);
    let pages = std::fs::metadata(&path).unwrap().len() / 4096;
    assert!(pages > 601, "the demo file has {pages} pages");
    ok(&["verify", "--db", &url(&path)]);
    let mut named_the_file = 0;
    for page in [600u64, 1, 2, 3, 4] {
        let copy = dir.path().join(format!("zeroed-{page}.redb"));
        std::fs::copy(&path, &copy).unwrap();
        let mut file = OpenOptions::new().write(true).open(&copy).unwrap();
        file.seek(SeekFrom::Start(page * 4096)).unwrap();
        file.write_all(&[0; 4096]).unwrap();
        file.sync_all().unwrap();
        drop(file);
        let before = std::fs::read(&copy).unwrap();
        // A page nothing reads (free, or of an old version) leaves the db whole, and
        // verify, which reads every node, says so.
        if run(&["verify", "--db", &url(&copy)]).status.success() {
            continue;
        }
        let err = fails(&["verify", "--db", &url(&copy)]);
        if err.contains(&copy.display().to_string()) {
            assert!(err.contains("damaged"), "page {page}: {err}");
            named_the_file += 1;
        } else {
            assert!(err.contains("corrupt"), "page {page}: {err}");
        }
        assert!(
            std::fs::read(&copy).unwrap() == before,
            "verify must leave the damaged file as it was"
        );
    }
    assert!(
        named_the_file > 0,
        "no zeroed page hit redb's own trees; pick other pages"
    );
}

/// While one reader has the file open (as a long `datoms query` does), other readers —
/// `query`, `log`, `verify`, `stats`, `export` — run, and a writer is refused with a
/// message naming the file; a reader waits for no writer that is gone.
#[test]
fn readers_do_not_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_file(dir.path(), 2_000);
    let db = url(&path);
    let tx = dir.path().join("tx.edn");
    std::fs::write(&tx, r#"[{:person/name "Zed"}]"#).unwrap();
    let tx = tx.display().to_string();
    let reader = datoms::RedbStorage::open_read_only(&path).unwrap();
    ok(&[
        "query",
        "--db",
        &db,
        "[:find (count ?e) :where [?e :person/name]]",
    ]);
    ok(&["log", "--db", &db]);
    ok(&["verify", "--db", &db]);
    ok(&["stats", "--db", &db]);
    ok(&["export", "--db", &db]);
    // Without a wait: the lock wait itself is tested in cli_follow.rs.
    let err = fails(&["transact", "--db", &db, &tx, "--lock-wait", "0"]);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("in use"), "{err}");
    drop(reader);
    ok(&["transact", "--db", &db, &tx]);
}

/// A writer in another handle makes readers that will not wait (`--lock-wait 0`) fail at
/// once, with one line naming the file.
#[test]
fn a_reader_beside_a_writer_is_told_who_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_file(dir.path(), 2_000);
    let writer = datoms::RedbStorage::open(&path).unwrap();
    let err = fails(&["log", "--db", &url(&path), "--lock-wait", "0"]);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("in use"), "{err}");
    drop(writer);
    ok(&["log", "--db", &url(&path)]);
}

/// A db file the user may not write (mode 0444 in a 0555 directory, as on a read-only
/// mount) is read by every read-only command.
#[cfg(unix)]
#[test]
fn a_db_file_without_write_permission_is_read() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = demo_file(dir.path(), 2_000);
    let db = url(&path);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let outcomes: Vec<Output> = [
        vec![
            "query",
            "--db",
            &db,
            "[:find (count ?e) :where [?e :person/name]]",
        ],
        vec!["log", "--db", &db],
        vec!["verify", "--db", &db],
    ]
    .iter()
    .map(|args| run(args))
    .collect();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for out in outcomes {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `DATOMS_LOG` turns on operator logs on stderr: a store reports its head, the commit
/// and what it wrote. Unset, a successful command writes nothing to stderr.
#[test]
fn datoms_log_shows_what_a_store_did() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redb:{}", dir.path().join("db.redb").display());
    let tx = dir.path().join("tx.edn");
    std::fs::write(&tx, r#"[{:db/id -1 :person/name "Ann"}]"#).unwrap();
    let tx = tx.display().to_string();
    let quiet = run(&["transact", "--db", &url, &tx]);
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let logged = assert_cmd::cargo::cargo_bin_cmd!("datoms")
        .args(["transact", "--db", &url, &tx])
        .env("DATOMS_LOG", "info")
        .output()
        .unwrap();
    assert!(logged.status.success());
    let stderr = String::from_utf8_lossy(&logged.stderr);
    assert!(
        stderr.contains("store") && stderr.contains("head=\"main\"")
            || stderr.contains("head=main"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stored") && stderr.contains("nodes="),
        "{stderr}"
    );
}
