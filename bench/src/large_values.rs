//! Large values (stored out of line, see `datoms_core::large`): what storing one costs
//! against its size (write amplification), and what a change next to it costs a writer
//! and a replica — on every backend, all in one run, side by side.
//!
//! For each value size, a db of 1,000 people is stored with and without one document of
//! that size: the difference of the bytes written, over the size, is the write
//! amplification (1.0 = the value written once). Then a datom next to the document
//! changes: the bytes that store writes, and the bytes a replica holding the previous
//! version fetches to follow it. Last, a process-cold full restore (every db value that
//! held the document dropped first) fetches the document once.
//!
//! `datoms-bench large-values [--quick] [--backends mem,redb]`.

use std::path::Path;
use std::time::Instant;

use datoms_core::{Db, Schema};
use datoms_storage::{restore_from, store, Storage};

use crate::backends::Backend;
use crate::error::BenchError;

/// Sizes of one run.
#[derive(Clone, Debug)]
pub struct LargeValuesConfig {
    /// Document sizes, in bytes.
    pub sizes: Vec<usize>,
    /// People in the db beside the document.
    pub people: usize,
}

impl LargeValuesConfig {
    /// The figures of docs/benchmarks.md: 2 KiB to 20 MiB.
    pub fn full() -> LargeValuesConfig {
        LargeValuesConfig {
            sizes: vec![2 << 10, 64 << 10, 2 << 20, 20 << 20],
            people: 1000,
        }
    }

    /// Small sizes, every row exercised.
    pub fn quick() -> LargeValuesConfig {
        LargeValuesConfig {
            sizes: vec![2 << 10, 256 << 10],
            people: 200,
        }
    }
}

/// One backend and size.
#[derive(Clone, Debug)]
pub struct LargeValueRow {
    /// The backend.
    pub backend: &'static str,
    /// The document's size in bytes.
    pub size: usize,
    /// Bytes the store of the db with the document wrote beyond the same db without it.
    pub value_bytes_written: u64,
    /// Bytes the backend's files grew by for the document (embedded backends; 0 else).
    pub value_disk_bytes: u64,
    /// Bytes written by the store of a change next to the document.
    pub neighbour_bytes_written: u64,
    /// Bytes a replica holding the previous version fetched to follow that change.
    pub neighbour_bytes_fetched: u64,
    /// Large values that replica fetched.
    pub neighbour_large_fetched: u64,
    /// Bytes a process-cold full restore fetched.
    pub cold_bytes_fetched: u64,
    /// Large values it fetched.
    pub cold_large_fetched: u64,
    /// Milliseconds the store of the db with the document took.
    pub store_ms: f64,
}

impl LargeValueRow {
    /// Bytes written for the document per byte of it.
    pub fn amplification(&self) -> f64 {
        self.value_bytes_written as f64 / self.size as f64
    }
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Inconsistent(e.to_string())
}

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:person/email {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :doc/body {:db/valueType :db.type/string}}",
    )
    .unwrap_or_default()
}

fn people(n: usize) -> Result<Db, BenchError> {
    let tx: String = (0..n)
        .map(|i| format!("{{:person/email \"p{i}@x\" :person/age {i}}}"))
        .collect();
    Ok(Db::new(schema())
        .with_edn(&format!("[{tx}]"))
        .map_err(err)?
        .db_after)
}

/// Text of `len` bytes unlike any other run's (so nothing in memory holds it).
fn document(len: usize, salt: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = crate::rng::SplitMix64::new(now ^ salt as u64);
    (0..len)
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect()
}

fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn open(backend: &Backend, dir: &Path) -> Result<crate::backends::Opened, BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io("making a scratch folder", e))?;
    (backend.open)(dir.to_path_buf()).await
}

async fn row(
    backend: &Backend,
    size: usize,
    c: &LargeValuesConfig,
    scratch: &Path,
) -> Result<LargeValueRow, BenchError> {
    let base = people(c.people)?;
    // The db without the document, stored alone: what the document's store adds to it.
    let plain_dir = scratch.join(format!("{}-{size}-plain", backend.name));
    let plain = open(backend, &plain_dir).await?;
    let without = store(&base, &*plain.storage, "main").await.map_err(err)?;
    let plain_disk = disk_bytes(&plain_dir);
    drop(plain);

    let dir = scratch.join(format!("{}-{size}", backend.name));
    let opened = open(backend, &dir).await?;
    let storage: &dyn Storage = &*opened.storage;
    // Every db value holding the document lives in this block, so the cold restore
    // after it finds nothing of it in memory.
    let (written, store_ms, value_disk, neighbour, followed) = {
        let doc = document(size, size);
        let db = base
            .with_edn(&format!("[[:db/add 1 :doc/body \"{doc}\"]]"))
            .map_err(err)?
            .db_after;
        drop(doc);
        let started = Instant::now();
        let first = store(&db, storage, "main").await.map_err(err)?;
        let store_ms = started.elapsed().as_secs_f64() * 1e3;
        let value_disk = disk_bytes(&dir).saturating_sub(plain_disk);
        let next = first
            .db
            .with_edn("[[:db/add 1 :person/age 4242] [:db/add 1 :person/nick \"n\"]]")
            .map_err(err)?
            .db_after;
        let neighbour = store(&next, storage, "main").await.map_err(err)?;
        let followed = restore_from(&first.db, storage, "main")
            .await
            .map_err(err)?;
        if followed.db.root_addresses() != neighbour.db.root_addresses() {
            return Err(err("the replica did not reach the stored roots"));
        }
        (
            first.stats.bytes_written,
            store_ms,
            value_disk,
            neighbour.stats,
            followed.stats,
        )
    };
    let cold = restore_from(&Db::new(schema()), storage, "main")
        .await
        .map_err(err)?;
    Ok(LargeValueRow {
        backend: backend.name,
        size,
        value_bytes_written: written.saturating_sub(without.stats.bytes_written),
        value_disk_bytes: value_disk,
        neighbour_bytes_written: neighbour.bytes_written,
        neighbour_bytes_fetched: followed.bytes_fetched,
        neighbour_large_fetched: followed.large_values_fetched,
        cold_bytes_fetched: cold.stats.bytes_fetched,
        cold_large_fetched: cold.stats.large_values_fetched,
        store_ms,
    })
}

/// Runs every size on every backend.
///
/// # Errors
/// A backend that cannot be opened, or a store or restore that fails.
pub async fn run_large_values(
    c: &LargeValuesConfig,
    backends: &[Backend],
) -> Result<Vec<LargeValueRow>, BenchError> {
    let scratch = tempfile::tempdir().map_err(|e| BenchError::io("making a scratch folder", e))?;
    let mut rows = Vec::new();
    for backend in backends {
        for size in &c.sizes {
            rows.push(row(backend, *size, c, scratch.path()).await?);
        }
    }
    Ok(rows)
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// The rows as a markdown table.
pub fn to_markdown(rows: &[LargeValueRow]) -> String {
    let mut out = String::from(
        "| backend | value | written for it | × value | on disk for it | store ms | neighbour change writes | replica fetches (large values) | cold full restore fetches (large values) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {} | {:.1} | {} | {} ({}) | {} ({}) |\n",
            r.backend,
            kib(r.size as u64),
            kib(r.value_bytes_written),
            r.amplification(),
            if r.value_disk_bytes == 0 {
                "–".to_string()
            } else {
                kib(r.value_disk_bytes)
            },
            r.store_ms,
            kib(r.neighbour_bytes_written),
            kib(r.neighbour_bytes_fetched),
            r.neighbour_large_fetched,
            kib(r.cold_bytes_fetched),
            r.cold_large_fetched,
        ));
    }
    out
}

/// What the rows must show (not timings): values at least the out-of-line threshold are
/// written about once, a neighbouring change never rewrites or refetches them, and a
/// cold restore fetches each once.
pub fn check(rows: &[LargeValueRow]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.size >= datoms_core::OUT_OF_LINE_BYTES)
    {
        let name = format!("{} {}", r.backend, kib(r.size as u64));
        if r.size >= 64 << 10 && r.amplification() > 1.1 {
            problems.push(format!(
                "{name}: wrote {:.2} × the value",
                r.amplification()
            ));
        }
        if r.neighbour_large_fetched != 0 || r.neighbour_bytes_written > 64 << 10 {
            problems.push(format!(
                "{name}: a neighbouring change rewrote or refetched the value"
            ));
        }
        if r.cold_large_fetched != 1 {
            problems.push(format!(
                "{name}: a cold restore fetched {} large values",
                r.cold_large_fetched
            ));
        }
    }
    problems
}
