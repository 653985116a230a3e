//! The kill -9 crash test, shared by every backend that keeps data on disk.
//!
//! A child process (the test binary itself, re-run on one test with an environment
//! variable set) restores what the last one left, prints `ready`, then stores
//! transaction after transaction in a loop and reports each commit on stdout. The parent
//! kills it with SIGKILL a random 0–300 ms after `ready` (so the kills land in stores,
//! however slow the start-up), many times. After each
//! kill the parent reopens the storage and checks what a user relies on:
//! - the storage opens;
//! - the head names a complete commit: a full restore fetches every node and verifies
//!   every hash, and [`verify()`](datoms_storage::verify()) passes (every node, large
//!   value and the tx log read and checked);
//! - the restored db equals one the child stored: its root addresses are those of the
//!   deterministic history at that transaction count, which is at least the last one the
//!   child reported (a store the child finished is never lost).
//!
//! The next child continues from whatever head the previous one left, so the kills land
//! in every phase of a store: node writes, the commit write, the head CAS.
//!
//! Kills: [`KILLS_VAR`] (default [`DEFAULT_KILLS`], CI size; 1000 for a storm).
//!
//! Use it with [`crate::crash_test!`]:
//! ```ignore
//! conformance::crash_test!(|path: &std::path::Path| {
//!     std::sync::Arc::new(backend_redb::RedbStorage::open(path.join("db.redb")).unwrap())
//! });
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datoms_core::restore::Mode;
use datoms_core::{AttributeSchema, Db, Schema, ValueType, TX0};
use datoms_storage::{restore_commit, restore_from, store, verify, Storage};

use crate::child;

/// The environment variable that puts the test binary in child mode; its value is the
/// storage directory.
pub const CHILD_ENV: &str = "DATOMS_CRASH_CHILD";

/// The environment variable giving the number of kills.
pub const KILLS_VAR: &str = "DATOMS_CRASH_KILLS";

/// Kills at CI size.
pub const DEFAULT_KILLS: usize = 30;

/// The head the crash test stores under.
pub const HEAD: &str = "crash";

/// The schema of the crash test's history.
pub fn schema() -> Schema {
    let build = || -> Result<Schema, datoms_core::Error> {
        Schema::new()
            .with(
                ":item/id",
                AttributeSchema::default()
                    .value_type(ValueType::Long)
                    .identity(),
            )?
            .with(
                ":item/tags",
                AttributeSchema::default()
                    .value_type(ValueType::String)
                    .many(),
            )
    };
    build().unwrap_or_default()
}

/// Transaction `n` (1-based) of the deterministic history: a few new items, an update of
/// an older one, and now and then a retraction, so stores touch several tree paths.
pub fn tx_text(n: u64) -> String {
    let mut s = String::from("[");
    for i in 0..20 {
        let id = n * 20 + i;
        s.push_str(&format!(
            "{{:item/id {id} :item/tags [\"t{}\" \"round-{n}\"] :item/payload \"{}\"}} ",
            id % 7,
            "x".repeat((id % 50) as usize)
        ));
    }
    if n > 1 {
        s.push_str(&format!(
            "{{:item/id {} :item/payload \"updated in {n}\"}} ",
            (n - 1) * 20
        ));
    }
    if n > 3 && n % 3 == 0 {
        s.push_str(&format!(
            "[:db/retractEntity [:item/id {}]]",
            (n - 3) * 20 + 1
        ));
    }
    s.push(']');
    s
}

/// The db after transactions `1..=n` of the history.
///
/// # Errors
/// A transaction error (a bug in the history or in transact).
pub fn history(n: u64) -> Result<Db, datoms_core::Error> {
    let mut db = Db::new(schema());
    for i in 1..=n {
        db = db.with_edn(&tx_text(i))?.db_after;
    }
    Ok(db)
}

/// Child mode: if [`CHILD_ENV`] is set, store the history in a loop forever (until
/// killed) into the storage `open` makes in that directory, printing `stored N` after
/// each store. Returns at once when the variable is not set.
pub fn child_main(open: impl Fn(&Path) -> Arc<dyn Storage>) {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = child::child_runtime("crash child failed");
    let storage = open(Path::new(&dir));
    let result: Result<(), String> = runtime.block_on(async {
        let mut db = match storage.get_head(HEAD).await.map_err(|e| e.to_string())? {
            Some(_) => {
                restore_from(&Db::new(schema()), &*storage, HEAD)
                    .await
                    .map_err(|e| e.to_string())?
                    .db
            }
            None => Db::new(schema()),
        };
        println!("ready");
        loop {
            let n = db.max_tx() - TX0 + 1;
            let next = db
                .with_edn(&tx_text(n))
                .map_err(|e| e.to_string())?
                .db_after;
            let stored = store(&next, &*storage, HEAD)
                .await
                .map_err(|e| e.to_string())?;
            println!("stored {n}");
            db = stored.db;
        }
    });
    if let Err(e) = result {
        eprintln!("crash child failed: {e}");
        std::process::exit(3);
    }
}

/// What one crash run found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CrashReport {
    /// Kills performed.
    pub kills: usize,
    /// Transactions in the db after the last kill.
    pub final_txs: u64,
    /// Kills after which the head had moved since the previous kill (a store finished).
    pub heads_moved: usize,
    /// Kills that left the head where the previous kill did: the child died before its
    /// first store landed (restoring, or in the middle of a store).
    pub heads_kept: usize,
}

/// Parent mode: runs the child (this test binary, running only the ignored test
/// `child_test`, which must sit at the root of the test crate) `kills`
/// times in `dir`, killing it with SIGKILL after a random delay each time, and checks
/// the storage after every kill (see the module docs).
///
/// # Panics
/// When a check fails — this is a test harness; the message says which.
pub fn run_parent(
    child_test: &str,
    dir: &Path,
    kills: usize,
    seed: u64,
    open: impl Fn(&Path) -> Arc<dyn Storage>,
) -> CrashReport {
    let runtime = child::runtime();
    let mut rng = seed | 1;
    let mut expected: Vec<[datoms_core::Address; 3]> = vec![Db::new(schema()).root_addresses()];
    let mut expected_db = Db::new(schema());
    let mut last_reported = 0u64;
    let mut last_head = None;
    let mut report = CrashReport::default();
    for round in 0..kills {
        let delay = Duration::from_millis(child::xorshift(&mut rng) % 300);
        let out = child::kill_after_marker(
            child::command(child_test, CHILD_ENV, dir),
            "ready",
            delay,
            Duration::from_secs(120),
        );
        let reported = out
            .reports("stored ")
            .filter_map(|n| n.parse::<u64>().ok())
            .fold(last_reported, u64::max);
        if let Some(e) = out.failure("crash child failed") {
            panic!(
                "round {round}: the child failed on its own ({}): {e}",
                out.status
            );
        }
        last_reported = reported;

        let storage = open(dir);
        let restored = runtime.block_on(async {
            match storage.get_head(HEAD).await.expect("reading the head") {
                None => None,
                Some(head) => {
                    let db = restore_commit(&*storage, head.commit, None, Mode::Eager)
                        .await
                        .unwrap_or_else(|e| {
                            panic!(
                                "round {round}: head {} is not a complete commit: {e}",
                                head.commit
                            )
                        })
                        .db;
                    let verified = verify(&*storage, HEAD)
                        .await
                        .unwrap_or_else(|e| panic!("round {round}: verify fails: {e}"));
                    assert_eq!(
                        (verified.commit, verified.datoms),
                        (head.commit, db.len()),
                        "round {round}: verify read another head"
                    );
                    Some((head.commit, db))
                }
            }
        });
        drop(storage);
        let Some((commit, db)) = restored else {
            assert_eq!(last_reported, 0, "round {round}: a reported store was lost");
            report.heads_kept += 1;
            continue;
        };
        if last_head == Some(commit) {
            report.heads_kept += 1;
        } else {
            report.heads_moved += 1;
        }
        last_head = Some(commit);
        let n = db.max_tx() - TX0;
        assert!(
            n >= last_reported,
            "round {round}: the head holds {n} txs but the child had reported {last_reported}"
        );
        while expected.len() as u64 <= n {
            let i = expected.len() as u64;
            expected_db = expected_db
                .with_edn(&tx_text(i))
                .expect("the history transacts")
                .db_after;
            expected.push(expected_db.root_addresses());
        }
        assert_eq!(
            db.root_addresses(),
            expected[n as usize],
            "round {round}: the restored db differs from the one stored after {n} txs"
        );
        report.kills += 1;
        report.final_txs = n;
        if report.kills % 100 == 0 {
            eprintln!("after {round} rounds: {report:?}");
        }
    }
    report
}

/// Generates the crash test for a backend: a child-mode test and the parent test that
/// kills it at random moments (see [`crate::crash`]). `$open` is an expression of type
/// `Fn(&Path) -> Arc<dyn Storage>` that opens the storage kept in a directory. The number
/// of kills comes from [`crash::KILLS_VAR`](crate::crash::KILLS_VAR) (default
/// [`crash::DEFAULT_KILLS`](crate::crash::DEFAULT_KILLS)).
#[macro_export]
macro_rules! crash_test {
    ($open:expr) => {
        #[test]
        #[ignore = "the child process of the kill -9 crash test, run by it"]
        fn crash_child() {
            $crate::crash::child_main($open);
        }

        #[test]
        fn kill_9_at_random_moments_leaves_a_complete_head_equal_to_a_stored_db() {
            let dir = $crate::tempdir().expect("a temp dir");
            let kills = std::env::var($crate::crash::KILLS_VAR)
                .ok()
                .and_then(|k| k.parse().ok())
                .unwrap_or($crate::crash::DEFAULT_KILLS);
            let report = $crate::crash::run_parent(
                "crash_child",
                dir.path(),
                kills,
                0x5eed_0f_c0ffee,
                $open,
            );
            eprintln!("{report:?}");
            assert!(report.kills > 0, "no kill left a head to check: {report:?}");
            assert!(report.final_txs > 0, "no store ever completed: {report:?}");
        }
    };
}
