//! A profiling driver for small transactions: transacts N one-person transactions one by
//! one (as the bench's small workload does), then observes the three trees. Run it under
//! `perf record`; the figures and the Datascript comparison come from `datoms-bench`.
//!
//! ```text
//! cargo run --release -p datoms-core --example small_transactions -- [N] [EDIT_BUFFER]
//! ```
//! `EDIT_BUFFER` 0 merges every transaction into the trees at once (see
//! `Db::with_edit_buffer`).

use std::time::Instant;

use datoms_core::edn::{parse, schema_from_edn};
use datoms_core::{parse_tx, Db, Error, IndexKind, DEFAULT_EDIT_BUFFER};

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4000);
    let buffer: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_EDIT_BUFFER);
    let schema = schema_from_edn(&parse(
        "{:person/name {:db/unique :db.unique/identity}
          :person/email {:db/unique :db.unique/value}
          :person/age {:db/index true}}",
    )?)?;
    let txs = (0..n)
        .map(|i| {
            let text = format!(
                r#"[{{:db/id "p" :person/name "person {i}" :person/email "p{i}@example.com"
                     :person/age {} :person/city "city {}" :person/score {}}}]"#,
                18 + i * 31 % 73,
                i * 17 % 24,
                i * 7919 % 1_000_000
            );
            parse_tx(&text, &schema)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let mut db = Db::new(schema).with_edit_buffer(buffer);
    for ops in &txs {
        db = db.with(ops)?.db_after;
    }
    for kind in IndexKind::ALL {
        db.tree(kind);
    }
    let took = start.elapsed();
    println!(
        "{n} transactions, {} datoms, edit buffer {buffer}: {:.1} µs per transaction",
        db.len(),
        took.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
