//! Tx data to ops: arbitrary text parsed as tx data against a schema (`parse_tx`) and
//! applied to a small db (`Db::with`). A transaction that succeeds leaves a db that keeps
//! the schema's invariants, that replaying its log entry reproduces, and that a bulk
//! build of the same datoms reproduces (same root addresses).
#![no_main]

use datoms_core::check::check;
use datoms_core::{parse_tx, Db, IndexKind, TxLogEntry};
use datoms_fuzz::sample_db;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DB: Db = sample_db();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let db = DB.with(Db::clone);
    let Ok(ops) = parse_tx(text, db.schema()) else {
        return;
    };
    let Ok(report) = db.with(&ops) else {
        return;
    };
    let after = &report.db_after;
    let datoms: Vec<_> = match after.datoms(IndexKind::Eavt, &[]) {
        Ok(d) => d
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("read: {e}")),
        Err(e) => panic!("read: {e}"),
    };
    let violations = check(
        after.schema(),
        datoms.iter().cloned().map(Ok),
        after.max_eid(),
        after.max_tx(),
    )
    .unwrap_or_else(|e| panic!("check: {e}"));
    let errors: Vec<_> = violations.iter().filter(|v| !v.is_warning()).collect();
    assert!(errors.is_empty(), "{text:?} broke invariants: {errors:?}");

    let replayed = db
        .apply_log_entry(TxLogEntry {
            tx: report.tx,
            datoms: report.tx_data.clone(),
            id: None,
        })
        .unwrap_or_else(|e| panic!("replay: {e}"));
    assert_eq!(
        replayed.root_addresses(),
        after.root_addresses(),
        "replay differs"
    );

    let built = Db::bulk_load(
        after.schema().clone(),
        after.config(),
        datoms,
        after.max_eid(),
        after.max_tx(),
    )
    .unwrap_or_else(|e| panic!("bulk load of a transacted db: {e}"));
    assert_eq!(
        built.root_addresses(),
        after.root_addresses(),
        "bulk build differs"
    );
});
