//! Peak memory of restores, for `docs/reliability.md`: build a redb file of N datoms,
//! then restore it in a fresh process — lazily with a node cache budget, scanning every
//! datom of every index, or eagerly — and print what was read and the peak resident
//! memory (`VmHWM`). Run each under `/usr/bin/time -v` for a second opinion.
//!
//! ```text
//! cargo run --release -p backend-redb --example restore_memory -- build /tmp/m.redb 1000000
//! cargo run --release -p backend-redb --example restore_memory -- lazy /tmp/m.redb 16
//! cargo run --release -p backend-redb --example restore_memory -- eager /tmp/m.redb
//! ```

use std::sync::Arc;

use backend_redb::RedbStorage;
use datoms_core::restore::Mode;
use datoms_core::{AttributeSchema, Datom, Db, IndexKind, Schema, TreeConfig, ValueType, TX0};
use datoms_storage::{restore_commit, store, Storage, StorageSource};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn schema() -> Result<Schema> {
    Ok(Schema::new()
        .with(
            ":person/name",
            AttributeSchema::default()
                .value_type(ValueType::String)
                .identity(),
        )?
        .with(
            ":person/age",
            AttributeSchema::default()
                .value_type(ValueType::Long)
                .indexed(),
        )?
        .with(
            ":person/note",
            AttributeSchema::default().value_type(ValueType::String),
        )?)
}

/// `VmHWM` (peak resident memory) of this process, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn build(path: &str, datoms: u64) -> Result<()> {
    let people = datoms / 3;
    let tx = TX0 + 1;
    let mut all = Vec::with_capacity(datoms as usize);
    for e in 1..=people {
        all.push(Datom::new(e, ":person/name", format!("person {e:08}"), tx));
        all.push(Datom::new(e, ":person/age", (e % 90) as i64, tx));
        all.push(Datom::new(
            e,
            ":person/note",
            format!("note {} of person {e}", e * 7919 % 100_000),
            tx,
        ));
    }
    let db = Db::bulk_load(schema()?, TreeConfig::default(), all, people, tx)?;
    let storage = RedbStorage::open(path)?;
    let stored = store(&db, &storage, "main").await?;
    println!(
        "built {} datoms, {} nodes written, {} bytes; peak {:.0} MiB",
        db.len(),
        stored.stats.nodes_written,
        stored.stats.bytes_written,
        peak_mib()
    );
    Ok(())
}

async fn restore(path: &str, budget_mib: Option<usize>) -> Result<()> {
    let storage: Arc<dyn Storage> = Arc::new(RedbStorage::open_read_only(path)?);
    let head = storage.get_head("main").await?.ok_or("no head")?.commit;
    let start = std::time::Instant::now();
    let (db, mode) = match budget_mib {
        Some(mib) => {
            let source = StorageSource::new(storage.clone(), mib << 20)?;
            let r = restore_commit(&*storage, head, None, Mode::Lazy).await?;
            (
                r.db.with_source(source),
                format!("lazy, cache budget {mib} MiB"),
            )
        }
        None => (
            restore_commit(&*storage, head, None, Mode::Eager).await?.db,
            "eager".to_owned(),
        ),
    };
    // Every datom of every index, read on this thread (a lazy db fetches through its
    // source as the scan goes).
    let scanned =
        tokio::task::spawn_blocking(move || -> std::result::Result<u64, datoms_core::Error> {
            let mut n = 0u64;
            for kind in IndexKind::ALL {
                for d in db.datoms(kind, &[])? {
                    d?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await??;
    println!(
        "{mode}: scanned {scanned} datoms (3 indexes) in {:.1} s; peak {:.0} MiB",
        start.elapsed().as_secs_f64(),
        peak_mib()
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["build", path, n] => build(path, n.replace('_', "").parse()?).await,
        ["lazy", path, mib] => restore(path, Some(mib.parse()?)).await,
        ["eager", path] => restore(path, None).await,
        _ => Err("usage: restore_memory build PATH N | lazy PATH BUDGET_MIB | eager PATH".into()),
    }
}
