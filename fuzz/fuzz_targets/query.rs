//! Query parsing and running: arbitrary text through `Query::parse`, and a query that
//! parses is run against a small db, with no input, a db, and a db and a scalar.
#![no_main]

use datoms_core::{Db, Input, Query};
use datoms_fuzz::sample_db;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DB: Db = sample_db();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    let db = DB.with(Db::clone);
    let _ = query.run(&[Input::Db(&db)]);
    let _ = query.run(&[]);
    let _ = query.run(&[
        Input::Db(&db),
        Input::Scalar(datoms_core::QueryValue::entity(1)),
    ]);
});
