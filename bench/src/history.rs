//! The history db's cost against history length (issue #19): a head whose people change
//! score again and again is stored commit by commit in memory storage; for each history
//! length the bench measures building the history from the commit logs, extending a
//! cached history by one more commit, and two queries on it: one entity's whole
//! history of an attribute (an EAVT range) and every retraction of an attribute (an
//! AEVT range, the attribute's whole history).
//!
//! `datoms-bench history [--quick]`.

use std::time::Instant;

use datoms_core::{q, Db, Input, TxOp};
use datoms_storage::{history, store, MemoryStorage};

use crate::error::BenchError;
use crate::run::transact_all;
use crate::workload::{self, GenTx, Generator};

/// Sizes of one run.
#[derive(Clone, Debug)]
pub struct HistoryConfig {
    /// People in the base db.
    pub people: usize,
    /// Commits of churn before each measurement, cumulative (each of `txs_per_commit`
    /// transactions moving `changes_per_tx` scores).
    pub commits: Vec<usize>,
    /// Transactions per commit.
    pub txs_per_commit: usize,
    /// Score changes per transaction.
    pub changes_per_tx: usize,
}

impl HistoryConfig {
    /// The figures of docs/benchmarks.md.
    pub fn full() -> HistoryConfig {
        HistoryConfig {
            people: 10_000,
            commits: vec![10, 100, 1000],
            txs_per_commit: 10,
            changes_per_tx: 10,
        }
    }

    /// Small, every row exercised.
    pub fn quick() -> HistoryConfig {
        HistoryConfig {
            people: 500,
            commits: vec![5, 20],
            txs_per_commit: 4,
            changes_per_tx: 5,
        }
    }
}

/// One history length.
#[derive(Clone, Debug)]
pub struct HistoryRow {
    /// Commits in the head's lineage.
    pub commits: usize,
    /// Changes (assertions and retractions) in the history.
    pub changes: usize,
    /// Building the history from every commit's log, ms.
    pub build_ms: f64,
    /// Extending the previous history by one more commit, ms.
    pub extend_ms: f64,
    /// Commits the extension read.
    pub extend_commits: u64,
    /// One entity's `:person/score` history, ms, and its rows.
    pub entity_ms: f64,
    /// Rows of that query.
    pub entity_rows: usize,
    /// Every retracted `:person/score` value, ms.
    pub attribute_ms: f64,
    /// Rows of that query.
    pub attribute_rows: usize,
}

const ENTITY_QUERY: &str = "[:find ?s ?tx ?added :in $ ?e :where [?e :person/score ?s ?tx ?added]]";
const ATTRIBUTE_QUERY: &str = "[:find (count ?s) :where [_ :person/score ?s _ false]]";

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Runs every history length of `config`.
///
/// # Errors
/// A transaction, store, history or query failing.
pub async fn run_history(config: &HistoryConfig) -> Result<Vec<HistoryRow>, BenchError> {
    let schema = workload::schema()?;
    let mut gen = Generator::new(42);
    let base = gen.base(config.people as u64 * 8, 100);
    let ops: Vec<Vec<TxOp>> = base.iter().map(GenTx::to_tx_ops).collect();
    let mut db: Db = transact_all(&schema, &ops)?;
    let storage = MemoryStorage::new();
    db = store(&db, &storage, "main").await?.db;
    let mut rows = Vec::new();
    let mut made = 1;
    for target in &config.commits {
        while made < *target {
            for _ in 0..config.txs_per_commit {
                db = db
                    .with(&gen.delta(config.changes_per_tx * 2).to_tx_ops())?
                    .db_after;
            }
            db = store(&db, &storage, "main").await?.db;
            made += 1;
        }
        let t = Instant::now();
        let whole = history(&storage, "main", None).await?;
        let build_ms = ms(t);
        for _ in 0..config.txs_per_commit {
            db = db
                .with(&gen.delta(config.changes_per_tx * 2).to_tx_ops())?
                .db_after;
        }
        db = store(&db, &storage, "main").await?.db;
        made += 1;
        let t = Instant::now();
        let extended = history(&storage, "main", Some(&whole)).await?;
        let extend_ms = ms(t);
        let h = &extended.history;
        let e = datoms_core::QueryValue::entity(1);
        let t = Instant::now();
        let entity = q(ENTITY_QUERY, &[Input::History(h), Input::Scalar(e)])?;
        let entity_ms = ms(t);
        let t = Instant::now();
        let attribute = q(ATTRIBUTE_QUERY, &[Input::History(h)])?;
        let attribute_ms = ms(t);
        let retracted = attribute
            .rows()
            .first()
            .and_then(|r| r.first().and_then(datoms_core::QueryValue::as_long))
            .unwrap_or(0) as usize;
        rows.push(HistoryRow {
            commits: made,
            changes: h.len(),
            build_ms,
            extend_ms,
            extend_commits: extended.stats.commits_fetched,
            entity_ms,
            entity_rows: entity.len(),
            attribute_ms,
            attribute_rows: retracted,
        });
    }
    Ok(rows)
}

/// What a run found wrong: an extension that read more than the one new commit.
pub fn check(rows: &[HistoryRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.extend_commits != 1)
        .map(|r| {
            format!(
                "extending the history of {} commits read {} commits, not 1",
                r.commits, r.extend_commits
            )
        })
        .collect()
}

/// The rows as markdown.
pub fn to_markdown(rows: &[HistoryRow], command: &str) -> String {
    let mut out = format!(
        "## History queries against history length\n\n`{command}` (memory storage)\n\n\
         | commits | changes | build ms | extend by 1 commit ms | one entity's scores ms (rows) | retracted scores ms (count) |\n\
         |---|---|---|---|---|---|\n"
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.2} | {:.3} ({}) | {:.1} ({}) |\n",
            r.commits,
            r.changes,
            r.build_ms,
            r.extend_ms,
            r.entity_ms,
            r.entity_rows,
            r.attribute_ms,
            r.attribute_rows
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_history_rows_extend_by_one_commit() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let rows = rt
            .block_on(run_history(&HistoryConfig::quick()))
            .expect("run");
        assert_eq!(rows.len(), 2);
        assert!(check(&rows).is_empty(), "{:?}", check(&rows));
        assert!(rows[1].changes > rows[0].changes);
        assert!(rows[1].attribute_rows > 0);
    }
}
