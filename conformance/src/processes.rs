//! Never a head on an incomplete commit, across two storages and several processes.
//!
//! Each step runs in a process of its own (the test binary, re-run on one ignored test
//! with an environment variable naming the step), on storages kept in directories:
//! 1. `primary`: stores a history of transactions into storage A;
//! 2. `copy`: lazily restores A, transacts, stores the result into the empty storage B
//!    (every node must reach B, those it never loaded included), and stores the same
//!    value onto A, whose head is its base (only the new nodes);
//! 3. `next`: restores B in a new process, transacts once more and stores onto B's head,
//!    then onto A's: one value stored to two storages makes the same commit in both, so
//!    A's head is the value's base too and gets only the new nodes.
//!
//! After every step the parent opens each storage afresh, restores the head fully
//! (every node fetched and verified) and compares its roots with the same history built
//! in memory.
//!
//! Use it with [`crate::processes_test!`], like [`crate::crash_test!`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datoms_core::{Address, Db};
use datoms_storage::{restore, restore_from, store, verify, Storage, StorageError};

use crate::child;
use crate::crash::{history, schema, tx_text};

/// The environment variable that puts the test binary in child mode: `step:dirA:dirB`.
pub const CHILD_ENV: &str = "DATOMS_PROCESSES_CHILD";

/// The head every step stores under.
pub const HEAD: &str = "main";

/// Transactions the primary stores.
const PRIMARY_TXS: u64 = 40;
/// Transactions the copy adds.
const COPY_TXS: u64 = 5;

/// `db` after transactions `from..to` of the crash history.
fn extend(db: &Db, from: u64, to: u64) -> Result<Db, String> {
    let mut db = db.clone();
    for n in from..to {
        db = db
            .with_edn(&tx_text(n))
            .map_err(|e| e.to_string())?
            .db_after;
    }
    Ok(db)
}

/// Child mode: if [`CHILD_ENV`] is set, run the step it names and exit; returns at once
/// when it is not set.
pub fn child_main(open: impl Fn(&Path) -> Arc<dyn Storage>) {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (step, a, b) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(a), Some(b)) => (s.to_owned(), PathBuf::from(a), PathBuf::from(b)),
        _ => {
            eprintln!("processes child failed: bad {CHILD_ENV}: {spec}");
            std::process::exit(2);
        }
    };
    let runtime = child::child_runtime("processes child failed");
    let result = runtime.block_on(run_step(&step, open(&a), open(&b)));
    if let Err(e) = result {
        eprintln!("processes child failed: step {step}: {e}");
        std::process::exit(3);
    }
}

async fn run_step(step: &str, a: Arc<dyn Storage>, b: Arc<dyn Storage>) -> Result<(), String> {
    let e = |e: StorageError| e.to_string();
    match step {
        "primary" => {
            let db = history(PRIMARY_TXS).map_err(|e| e.to_string())?;
            store(&db, &*a, HEAD).await.map_err(e)?;
        }
        "copy" => {
            let lazy = restore(a.clone(), HEAD).await.map_err(e)?.db;
            let next = extend(&lazy, PRIMARY_TXS + 1, PRIMARY_TXS + 1 + COPY_TXS)?;
            let into_b = store(&next, &*b, HEAD).await.map_err(e)?;
            let onto_a = store(&next, &*a, HEAD).await.map_err(e)?;
            if onto_a.stats.nodes_written >= into_b.stats.nodes_written {
                return Err(format!(
                    "onto its base only the new nodes are written: {} of {}",
                    onto_a.stats.nodes_written, into_b.stats.nodes_written
                ));
            }
        }
        "next" => {
            let db = restore_from(&Db::new(schema()), &*b, HEAD)
                .await
                .map_err(e)?
                .db;
            let n = PRIMARY_TXS + 1 + COPY_TXS;
            let next = extend(&db, n, n + 1)?;
            let onto_b = store(&next, &*b, HEAD).await.map_err(e)?;
            let onto_a = store(&next, &*a, HEAD).await.map_err(e)?;
            if onto_a.commit != onto_b.commit || onto_a.stats != onto_b.stats {
                return Err(format!(
                    "both heads were at the value's base: the same commit and writes expected, \
                     got {onto_a:?} and {onto_b:?}"
                ));
            }
        }
        other => return Err(format!("no step {other}")),
    }
    Ok(())
}

/// Parent mode: runs the steps in child processes of this test binary (running only the
/// ignored test `child_test`) and checks both storages after each (see the module docs).
///
/// # Panics
/// When a check fails — this is a test harness; the message says which.
pub fn run_parent(child_test: &str, dir: &Path, open: impl Fn(&Path) -> Arc<dyn Storage>) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).expect("creating a storage directory");
    }
    let runtime = child::runtime();
    let primary = history(PRIMARY_TXS).expect("the history transacts");
    let copied = extend(&primary, PRIMARY_TXS + 1, PRIMARY_TXS + 1 + COPY_TXS)
        .expect("the history transacts");
    let n = PRIMARY_TXS + 1 + COPY_TXS;
    let next = extend(&copied, n, n + 1).expect("the history transacts");
    let expect = [
        ("primary", Some(primary.root_addresses()), None),
        (
            "copy",
            Some(copied.root_addresses()),
            Some(copied.root_addresses()),
        ),
        (
            "next",
            Some(next.root_addresses()),
            Some(next.root_addresses()),
        ),
    ];
    for (step, want_a, want_b) in expect {
        let out = child::run(child::command(
            child_test,
            CHILD_ENV,
            format!("{step}:{}:{}", a.display(), b.display()),
        ));
        let failure = out.failure("processes child failed");
        assert!(
            out.status.success() && failure.is_none(),
            "step {step} failed ({}): {}",
            out.status,
            failure.map_or_else(|| out.stderr.join("\n"), str::to_owned)
        );
        for (name, path, want) in [("A", &a, want_a), ("B", &b, want_b)] {
            let storage = open(path);
            let got = runtime.block_on(complete_head(&*storage));
            assert_eq!(
                got.unwrap_or_else(|e| panic!("after step {step}, storage {name}: {e}")),
                want,
                "after step {step}, storage {name} holds another db"
            );
        }
    }
}

/// The roots of the head's db, after a full restore and `verify` in this process.
async fn complete_head(storage: &dyn Storage) -> Result<Option<[Address; 3]>, String> {
    if storage
        .get_head(HEAD)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Ok(None);
    }
    let db = restore_from(&Db::new(schema()), storage, HEAD)
        .await
        .map_err(|e| format!("the head is not a complete commit: {e}"))?
        .db;
    verify(storage, HEAD)
        .await
        .map_err(|e| format!("verify: {e}"))?;
    Ok(Some(db.root_addresses()))
}

/// Generates the two-storages, several-processes test for a backend kept in a
/// directory (see [`crate::processes`]). `$open` is an expression of type
/// `Fn(&Path) -> Arc<dyn Storage>`.
#[macro_export]
macro_rules! processes_test {
    ($open:expr) => {
        #[test]
        #[ignore = "a child step of the two-storages test, run by it"]
        fn processes_child() {
            $crate::processes::child_main($open);
        }

        #[test]
        fn one_db_over_two_storages_and_three_processes_stays_complete() {
            let dir = $crate::tempdir().expect("a temp dir");
            $crate::processes::run_parent("processes_child", dir.path(), $open);
        }
    };
}
