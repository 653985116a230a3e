//! Pull patterns: arbitrary text through `PullPattern::parse` against a small db with
//! refs in a cycle and components, and a pattern that parses is pulled from each entity.
#![no_main]

use datoms_core::pull::pull_entity;
use datoms_core::{Db, Functions, PullPattern, QueryValue};
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
    let fns = Functions::new();
    let Ok(pattern) = PullPattern::parse(&db, text, &fns) else {
        return;
    };
    for e in 0..=7 {
        // A pattern that reaches the pull bound from one entity reaches it from the
        // others too: one is enough.
        if pull_entity(&db, &pattern, &QueryValue::entity(e), &fns).is_err() {
            break;
        }
    }
});
