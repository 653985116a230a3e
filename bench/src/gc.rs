//! Garbage collection ([`datoms_storage::gc()`]): how long a run takes and what it
//! reclaims on a store with a history of churn, on every backend, side by side.
//!
//! A db of `people` people is stored, then `commits` commits each change `churn` of
//! them. GC then runs three times, each after every blob is older than the grace period
//! (zero here): keeping the last 10 commits, keeping the head alone, and once more with
//! nothing left to collect (the cost of listing and marking alone). After each run the
//! head verifies.
//!
//! `datoms-bench gc [--quick] [--backends mem,redb]`.

use std::time::{Duration, Instant, SystemTime};

use datoms_core::{Db, Schema};
use datoms_storage::{gc_with, store, verify, GcOptions, GcReport, Retention, Storage};

use crate::backends::Backend;
use crate::error::BenchError;

/// Sizes of one run.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// People in the db.
    pub people: usize,
    /// Commits of churn after the first store.
    pub commits: usize,
    /// People changed per commit.
    pub churn: usize,
}

impl GcConfig {
    /// The figures of docs/benchmarks.md: 100 commits of churn over 20,000 people.
    pub fn full() -> GcConfig {
        GcConfig {
            people: 20_000,
            commits: 100,
            churn: 200,
        }
    }

    /// Small sizes, every row exercised.
    pub fn quick() -> GcConfig {
        GcConfig {
            people: 2_000,
            commits: 20,
            churn: 50,
        }
    }
}

/// One GC run on one backend.
#[derive(Clone, Debug)]
pub struct GcRow {
    /// The backend.
    pub backend: &'static str,
    /// What the run kept: "last 10", "head", "head (again)".
    pub retention: &'static str,
    /// What it found and did.
    pub report: GcReport,
    /// Milliseconds it took.
    pub ms: f64,
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Inconsistent(e.to_string())
}

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:person/email {:db/valueType :db.type/string :db/unique :db.unique/identity}}",
    )
    .unwrap_or_default()
}

/// The db of `n` people.
fn people(n: usize) -> Result<Db, BenchError> {
    let tx: String = (0..n)
        .map(|i| format!("{{:person/email \"p{i}@x\" :person/age {i} :person/note \"n{i}\"}}"))
        .collect();
    Ok(Db::new(schema())
        .with_edn(&format!("[{tx}]"))
        .map_err(err)?
        .db_after)
}

/// `db` with `churn` people of round `round` changed (spread over the whole db).
fn churned(db: &Db, c: &GcConfig, round: usize) -> Result<Db, BenchError> {
    let tx: String = (0..c.churn)
        .map(|i| {
            let who = (round * 7919 + i * (c.people / c.churn).max(1)) % c.people;
            format!("{{:person/email \"p{who}@x\" :person/note \"round {round} {i}\"}}")
        })
        .collect();
    Ok(db.with_edn(&format!("[{tx}]")).map_err(err)?.db_after)
}

/// Waits until every write so far is older than a zero grace period (stamps are rounded
/// up: to the millisecond, to the second on S3).
async fn past(storage: &dyn Storage) -> Result<(), BenchError> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut after = None;
    loop {
        let page = storage.list_blob_stamps(after, 1000).await.map_err(err)?;
        let Some(last) = page.last() else { break };
        after = Some(last.address);
        newest = page.iter().map(|b| b.written).fold(newest, std::cmp::max);
    }
    while SystemTime::now() <= newest {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn timed_gc(
    storage: &dyn Storage,
    backend: &'static str,
    retention: &'static str,
    keep_last: usize,
) -> Result<GcRow, BenchError> {
    past(storage).await?;
    let options = GcOptions {
        retention: Retention {
            keep_last,
            keep_younger: None,
        },
        grace: Duration::ZERO,
        dry_run: false,
    };
    let started = Instant::now();
    let report = gc_with(storage, &options, &mut |_| {}).await.map_err(err)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    verify(storage, "main").await.map_err(|e| {
        err(format!(
            "{backend}: verify after GC keeping {retention}: {e}"
        ))
    })?;
    Ok(GcRow {
        backend,
        retention,
        report,
        ms,
    })
}

/// Runs the three GC runs on every backend.
///
/// # Errors
/// A backend that cannot be opened, a store, GC or verify that fails.
pub async fn run_gc(c: &GcConfig, backends: &[Backend]) -> Result<Vec<GcRow>, BenchError> {
    let scratch = tempfile::tempdir().map_err(|e| BenchError::io("making a scratch folder", e))?;
    let mut rows = Vec::new();
    for backend in backends {
        let dir = scratch.path().join(backend.name);
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("making a scratch folder", e))?;
        let opened = (backend.open)(dir).await?;
        let storage: &dyn Storage = &*opened.storage;
        let mut db = store(&people(c.people)?, storage, "main")
            .await
            .map_err(err)?
            .db;
        for round in 0..c.commits {
            db = store(&churned(&db, c, round)?, storage, "main")
                .await
                .map_err(err)?
                .db;
        }
        rows.push(timed_gc(storage, backend.name, "last 10", 10).await?);
        rows.push(timed_gc(storage, backend.name, "head", 1).await?);
        rows.push(timed_gc(storage, backend.name, "head (again)", 1).await?);
    }
    Ok(rows)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
}

/// The rows as a markdown table.
pub fn to_markdown(c: &GcConfig, rows: &[GcRow]) -> String {
    let mut out = format!(
        "{} people, {} commits each changing {}; grace period 0 (every blob older).\n\n\
         | backend | keeps | blobs before | bytes before | commits kept | deleted | reclaimed | % of bytes | GC ms |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        c.people, c.commits, c.churn
    );
    for r in rows {
        let g = &r.report;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.0} |\n",
            r.backend,
            r.retention,
            g.blobs,
            mib(g.bytes),
            g.retained_commits,
            g.collected,
            mib(g.collected_bytes),
            100.0 * g.collected_bytes as f64 / (g.bytes.max(1)) as f64,
            r.ms,
        ));
    }
    out
}

/// What the rows must show (not timings): each backend's first two runs reclaim bytes,
/// the last finds nothing, and every run left nothing unexplained.
pub fn check(rows: &[GcRow]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in rows {
        let g = &r.report;
        let name = format!("{} keeping {}", r.backend, r.retention);
        let again = r.retention.ends_with("(again)");
        if again && g.collected != 0 {
            problems.push(format!(
                "{name}: a second run deleted {} blobs",
                g.collected
            ));
        }
        if !again && g.collected_bytes == 0 {
            problems.push(format!("{name}: reclaimed nothing from a history of churn"));
        }
        if g.reachable + g.young + g.collected + g.skipped != g.blobs {
            problems.push(format!("{name}: the counts do not add up: {g:?}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quick_run_reclaims_and_its_counts_add_up() {
        let backends = crate::backends::select("mem,redb").expect("known backends");
        let config = GcConfig {
            people: 300,
            commits: 14,
            churn: 20,
        };
        let rows = run_gc(&config, &backends).await.expect("the GC runs");
        assert_eq!(rows.len(), 6);
        assert_eq!(check(&rows), Vec::<String>::new());
        assert!(to_markdown(&config, &rows).contains("| redb | head (again) |"));
    }
}
