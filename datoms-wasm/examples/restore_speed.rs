//! Restore speed, native against the wasm replica in node, side by side in one run:
//!
//! ```sh
//! scripts/wasm.sh build
//! cargo run --release -p datoms-wasm --example restore_speed -- [DATOMS] [RUNS]
//! ```
//!
//! Builds a db of about `DATOMS` datoms (default 300000: people with a name, an email,
//! an age and a friend), stores it in memory and exports it as a static-host directory.
//! Then a full eager restore of its commit, `RUNS` times (default 5): natively from the
//! `MemoryStorage` (datoms-storage's driver), and in node by the wasm replica from the
//! same blobs held in memory and handed over by a `fetch` function (no HTTP on either
//! side). Prints the fastest and median times and the ratio.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use datoms_core::restore::Mode;
use datoms_core::Db;
use datoms_storage::{export_static, restore_commit, store, MemoryStorage};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let datoms: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(300_000);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let people = datoms / 4;

    let storage = MemoryStorage::new();
    let schema = datoms_core::edn::parse_schema(
        "{:person/email {:db/unique :db.unique/identity} :person/friend {:db/valueType :db.type/ref}}",
    )?;
    let mut db = Db::new(schema);
    let chunk = 10_000;
    for start in (0..people).step_by(chunk as usize) {
        let mut tx = String::from("[");
        for i in start..(start + chunk).min(people) {
            tx.push_str(&format!(
                r#"{{:db/id -{} :person/email "p{i}@example.com" :person/name "Person {i}" :person/age {} :person/friend -{}}}"#,
                i - start + 1,
                18 + (i * 37) % 60,
                (i * 7) % (chunk.min(people - start)) + 1
            ));
        }
        tx.push(']');
        db = db.with_edn(&tx)?.db_after;
    }
    let stored = store(&db, &storage, "main").await?;
    let dir = tempfile::tempdir()?;
    export_static(&storage, &["main"], dir.path()).await?;

    let mut native = Vec::new();
    let mut nodes = 0;
    let mut bytes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let restored = restore_commit(&storage, stored.commit, None, Mode::Eager).await?;
        native.push(start.elapsed().as_secs_f64() * 1000.0);
        nodes = restored.stats.nodes_fetched;
        bytes = restored.stats.bytes_fetched;
    }
    native.sort_by(f64::total_cmp);
    println!(
        "db: {} datoms, {nodes} nodes, {bytes} bytes; {runs} full restores each",
        stored.db.len()
    );
    println!(
        "native (MemoryStorage):        fastest {:8.1} ms, median {:8.1} ms",
        native[0],
        native[native.len() / 2]
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/bench/restore.mjs");
    let output = Command::new("node")
        .arg(script)
        .arg(dir.path())
        .arg("main")
        .arg(runs.to_string())
        .output()?;
    if !output.status.success() {
        return Err(format!("node: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let wasm: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let fastest = wasm["fastestMs"].as_f64().unwrap_or(f64::NAN);
    println!(
        "wasm in node (fetch, memory):  fastest {:8.1} ms, median {:8.1} ms ({} nodes)",
        fastest,
        wasm["medianMs"].as_f64().unwrap_or(f64::NAN),
        wasm["nodesFetched"]
    );
    println!("wasm / native (fastest): {:.2}x", fastest / native[0]);
    Ok(())
}
