//! Readers beside a writer (issue #18): 0, 1 and 2 reader threads running the join query
//! on the connection's current db while one writer thread transacts one-person
//! transactions as fast as it can, all in one run, side by side with each side alone.
//!
//! A db is an immutable value: a reader takes the current one (`Conn::db`, a clone of
//! three tree handles) and queries it while the writer makes the next, so neither waits
//! for the other beyond the brief lock that swaps the current db. What they do share is
//! the machine: on 2 cores a writer and two readers are three busy threads.
//!
//! `datoms-bench concurrency [--quick] [--datoms N] [--seconds S]`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datoms_core::{q, Conn, Db, Input, TxOp};

use crate::error::BenchError;
use crate::run::transact_all;
use crate::workload::{self, GenTx, Generator};

/// Sizes of one run.
#[derive(Clone, Debug)]
pub struct ConcurrencyConfig {
    /// Datoms in the db the readers query.
    pub datoms: u64,
    /// How long each configuration runs.
    pub duration: Duration,
    /// Reader counts measured beside the writer (and alone).
    pub readers: Vec<usize>,
    /// The workload seed.
    pub seed: u64,
}

impl ConcurrencyConfig {
    /// The figures of docs/benchmarks.md: 200k datoms, 5 s per configuration.
    pub fn full() -> ConcurrencyConfig {
        ConcurrencyConfig {
            datoms: 200_000,
            duration: Duration::from_secs(5),
            readers: vec![1, 2],
            seed: 42,
        }
    }

    /// Small and short, every row exercised.
    pub fn quick() -> ConcurrencyConfig {
        ConcurrencyConfig {
            datoms: 20_000,
            duration: Duration::from_millis(500),
            readers: vec![1, 2],
            seed: 42,
        }
    }
}

/// One configuration: how many readers, whether the writer ran, and what each side did.
#[derive(Clone, Debug)]
pub struct ConcurrencyRow {
    /// Reader threads.
    pub readers: usize,
    /// True when the writer ran.
    pub writer: bool,
    /// Transactions the writer landed per second (0 without a writer).
    pub writer_tx_per_s: f64,
    /// Join queries per second, all readers together (0 without readers).
    pub reader_q_per_s: f64,
    /// The smallest and largest db (in transactions landed) any reader queried: proof
    /// that the readers saw the writer's progress.
    pub versions_seen: (u64, u64),
}

/// A run: the rows, and what went wrong (an answer that differs between readers of one
/// db version).
#[derive(Clone, Debug)]
pub struct ConcurrencyReport {
    /// Writer alone, each reader count alone, then each reader count beside the writer.
    pub rows: Vec<ConcurrencyRow>,
    /// Datoms in the base db.
    pub datoms: u64,
    /// Problems found.
    pub problems: Vec<String>,
}

/// Runs every configuration of `config`.
///
/// # Errors
/// Building the base db or a transaction failing.
pub fn run_concurrency(config: &ConcurrencyConfig) -> Result<ConcurrencyReport, BenchError> {
    let schema = workload::schema()?;
    let mut gen = Generator::new(config.seed);
    let base = gen.base(config.datoms, 100);
    let ops: Vec<Vec<TxOp>> = base.iter().map(GenTx::to_tx_ops).collect();
    let db = transact_all(&schema, &ops)?;
    let datoms = db.len();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut configs = vec![(0, true)];
    configs.extend(config.readers.iter().map(|r| (*r, false)));
    configs.extend(config.readers.iter().map(|r| (*r, true)));
    for (readers, writer) in configs {
        let (row, mut p) = measure(&db, &gen, readers, writer, config.duration)?;
        rows.push(row);
        problems.append(&mut p);
    }
    Ok(ConcurrencyReport {
        rows,
        datoms,
        problems,
    })
}

fn measure(
    db: &Db,
    gen: &Generator,
    readers: usize,
    writer: bool,
    duration: Duration,
) -> Result<(ConcurrencyRow, Vec<String>), BenchError> {
    let conn = Arc::new(Conn::new(db.clone()));
    let base_tx = db.max_tx();
    let stop = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(AtomicU64::new(0));
    // Per version: the answer's size, to check readers of one version agree.
    let answers: Arc<std::sync::Mutex<std::collections::HashMap<u64, usize>>> = Arc::default();
    let problems: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::new(std::sync::Mutex::new((u64::MAX, 0u64)));
    let began = Instant::now();
    std::thread::scope(|s| -> Result<(ConcurrencyRow, Vec<String>), BenchError> {
        let mut reader_handles = Vec::new();
        for _ in 0..readers {
            let (conn, stop, queries) = (conn.clone(), stop.clone(), queries.clone());
            let (answers, problems, seen) = (answers.clone(), problems.clone(), seen.clone());
            reader_handles.push(s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let db = conn.db();
                    let version = db.max_tx() - base_tx;
                    match q(workload::JOIN_QUERY, &[Input::Db(&db)]) {
                        Ok(result) => {
                            let mut known = answers.lock().unwrap_or_else(|e| e.into_inner());
                            let size = *known.entry(version).or_insert(result.len());
                            if size != result.len() {
                                problems
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(format!(
                                        "two readers of version {version} got {size} and {} rows",
                                        result.len()
                                    ));
                            }
                        }
                        Err(e) => problems
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("a reader's query failed: {e}")),
                    }
                    queries.fetch_add(1, Ordering::Relaxed);
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    *s = (s.0.min(version), s.1.max(version));
                }
            }));
        }
        let mut landed = 0u64;
        if writer {
            let mut gen = gen.clone();
            while began.elapsed() < duration {
                conn.transact(&gen.delta(5).to_tx_ops())?;
                landed += 1;
            }
        } else {
            std::thread::sleep(duration);
        }
        stop.store(true, Ordering::Relaxed);
        for h in reader_handles {
            h.join()
                .map_err(|_| BenchError::Inconsistent("a reader thread panicked".into()))?;
        }
        let secs = began.elapsed().as_secs_f64();
        let seen = *seen.lock().unwrap_or_else(|e| e.into_inner());
        let problems = problems.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok((
            ConcurrencyRow {
                readers,
                writer,
                writer_tx_per_s: landed as f64 / secs,
                reader_q_per_s: queries.load(Ordering::Relaxed) as f64 / secs,
                versions_seen: if readers == 0 { (0, 0) } else { seen },
            },
            problems,
        ))
    })
}

impl ConcurrencyReport {
    /// The report as markdown: each row with its throughputs as a fraction of the same
    /// side alone (same run).
    pub fn to_markdown(&self, command: &str) -> String {
        let alone_writer = self
            .rows
            .iter()
            .find(|r| r.writer && r.readers == 0)
            .map_or(0.0, |r| r.writer_tx_per_s);
        let alone_readers = |n: usize| {
            self.rows
                .iter()
                .find(|r| !r.writer && r.readers == n)
                .map_or(0.0, |r| r.reader_q_per_s)
        };
        let ratio = |x: f64, of: f64| {
            if of > 0.0 {
                format!("{:.2}", x / of)
            } else {
                "—".into()
            }
        };
        let mut out = format!(
            "## Readers beside a writer\n\n`{command}` ({} datoms; join query; one-person transactions)\n\n\
             | readers | writer | writer tx/s | of writer alone | reader queries/s | of readers alone | versions seen |\n\
             |---|---|---|---|---|---|---|\n",
            self.datoms
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {} | {:.1} | {} | {}–{} |\n",
                r.readers,
                if r.writer { "yes" } else { "no" },
                r.writer_tx_per_s,
                if r.writer {
                    ratio(r.writer_tx_per_s, alone_writer)
                } else {
                    "—".into()
                },
                r.reader_q_per_s,
                if r.readers > 0 {
                    ratio(r.reader_q_per_s, alone_readers(r.readers))
                } else {
                    "—".into()
                },
                r.versions_seen.0,
                r.versions_seen.1,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_the_writer_progress_and_agree() {
        let config = ConcurrencyConfig {
            datoms: 3_000,
            duration: Duration::from_millis(200),
            readers: vec![2],
            seed: 7,
        };
        let report = run_concurrency(&config).expect("run");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let beside = report
            .rows
            .iter()
            .find(|r| r.writer && r.readers == 2)
            .expect("row");
        assert!(beside.writer_tx_per_s > 0.0 && beside.reader_q_per_s > 0.0);
        let md = report.to_markdown("test");
        assert_eq!(md.matches("\n| ").count(), 4, "{md}");
    }
}
