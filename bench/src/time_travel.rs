//! `datoms-bench time-travel [--quick]` (issue #19): what a three-way merge costs as the
//! diff grows, and what a view of a commit `k` commits back costs a process that holds
//! the head's db.
//!
//! - **Merge:** a db of `people` people (name, age, score); `main` changes the age of
//!   `d/2` people, the branch `theirs` the score of `d/2` others (disjoint, no conflict).
//!   Measured: the pure merge of the three dbs in memory (median of `repeats`), and the
//!   whole `merge` through a memory storage once, cold (finding the common ancestor,
//!   restoring the base and `theirs` incrementally from `main`, merging, storing the
//!   merge commit): nodes and bytes read, round trips, bytes written.
//! - **As of `k` back:** a history of commits of `per_commit` changed ages each; from a
//!   process holding the head's db fully loaded, the view as of the commit `k` commits
//!   back (`as_of` with the held db: an incremental restore that fetches only the nodes
//!   the held db lacks), beside a full restore of that commit.

use std::sync::Arc;
use std::time::Instant;

use datoms_core::merge::Strategy;
use datoms_core::restore::Mode;
use datoms_core::{Address, Db, RestoreStats};
use datoms_storage::{
    as_of, merge, restore_commit, store, At, FaultyStorage, IoCounters, MemoryStorage, Storage,
    StoreOptions,
};

use crate::error::BenchError;
use crate::measure::{median_time, ms};

/// Sizes of the time-travel figures.
#[derive(Clone, Debug)]
pub struct TimeTravelConfig {
    /// People in the db (3 datoms each).
    pub people: usize,
    /// Diff sizes (datoms changed on both sides together, before retractions).
    pub diffs: Vec<usize>,
    /// How many commits back the as-of views go.
    pub back: Vec<usize>,
    /// People whose age each commit of the history changes.
    pub per_commit: usize,
    /// Repeats of the in-memory merge (the median is reported).
    pub repeats: usize,
}

impl TimeTravelConfig {
    /// Seconds: what CI runs.
    pub fn quick() -> TimeTravelConfig {
        TimeTravelConfig {
            people: 5_000,
            diffs: vec![10, 100, 1_000],
            back: vec![1, 10, 100],
            per_commit: 10,
            repeats: 3,
        }
    }

    /// The figures of docs/benchmarks.md.
    pub fn full() -> TimeTravelConfig {
        TimeTravelConfig {
            people: 100_000,
            diffs: vec![10, 100, 1_000, 10_000],
            back: vec![1, 10, 100],
            per_commit: 10,
            repeats: 5,
        }
    }
}

/// One merge measurement.
#[derive(Clone, Debug)]
pub struct MergeRow {
    /// Datoms changed on both sides together.
    pub diff: usize,
    /// Datoms the merge added to `main` (their changes).
    pub applied: usize,
    /// The pure merge in memory, median.
    pub merge_ms: f64,
    /// The whole storage merge, cold.
    pub storage_merge_ms: f64,
    /// What the storage merge asked of the storage: requests, blobs and bytes read
    /// (the lazy loads of the diffs included), blobs and bytes written.
    pub io: IoCounters,
}

/// One as-of measurement.
#[derive(Clone, Debug)]
pub struct AsOfRow {
    /// Commits back from the head.
    pub back: usize,
    /// The view restored from the held head db.
    pub held: RestoreStats,
    /// Its wall time.
    pub held_ms: f64,
    /// A full restore of the same commit.
    pub full: RestoreStats,
}

fn people_tx(people: usize) -> String {
    let mut tx = String::from("[");
    for i in 0..people {
        tx.push_str(&format!(
            "{{:p/name \"person {i}\" :p/age {} :p/score {}}}",
            i % 90,
            i * 3
        ));
    }
    tx.push(']');
    tx
}

fn schema() -> Result<datoms_core::Schema, BenchError> {
    Ok(datoms_core::edn::parse_schema(
        "{:p/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :p/age {:db/valueType :db.type/long :db/index true}
          :p/score {:db/valueType :db.type/long}}",
    )?)
}

/// `[:db/add e attr v]` for `n` people from `first`, spread over the db.
fn changes(people: usize, first: usize, n: usize, attr: &str, salt: i64) -> String {
    let mut tx = String::from("[");
    for i in 0..n {
        let e = 1 + ((first + i) * 7919) % people;
        tx.push_str(&format!(
            "[:db/add {e} {attr} {}]",
            1_000_000 + salt + i as i64
        ));
    }
    tx.push(']');
    tx
}

/// The merge figures.
///
/// # Errors
/// Storage or database errors.
pub async fn merges(config: &TimeTravelConfig) -> Result<Vec<MergeRow>, BenchError> {
    let base = Db::new(schema()?)
        .with_edn(&people_tx(config.people))?
        .db_after;
    let mut rows = Vec::new();
    for &d in &config.diffs {
        let half = (d / 2).max(1);
        let counted = Arc::new(FaultyStorage::new(MemoryStorage::new()));
        let storage: Arc<dyn Storage> = counted.clone();
        let stored = store(&base, &*storage, "main").await?;
        storage.cas_head("theirs", None, stored.commit).await?;
        // Disjoint people: ours from 0, theirs from `half` on.
        let ours = stored
            .db
            .with_edn(&changes(config.people, 0, half, ":p/age", 0))?
            .db_after;
        let theirs = stored
            .db
            .with_edn(&changes(config.people, half, half, ":p/score", 7))?
            .db_after;
        let (_, merge_time) = median_time(config.repeats, || async {
            datoms_core::merge::merge(&stored.db, &ours, &theirs, Strategy::Fail)
        })
        .await?;
        store(&ours, &*storage, "main").await?;
        let theirs_commit = store(&theirs, &*storage, "theirs").await?.commit;
        let before = counted.counters();
        let start = Instant::now();
        let out = merge(
            storage.clone(),
            "main",
            theirs_commit,
            Strategy::Fail,
            StoreOptions::default(),
        )
        .await?;
        let storage_merge_ms = ms(start.elapsed());
        let after = counted.counters();
        rows.push(MergeRow {
            diff: 2 * half,
            applied: out.applied.added.len(),
            merge_ms: ms(merge_time),
            storage_merge_ms,
            io: IoCounters {
                gets: after.gets - before.gets,
                puts: after.puts - before.puts,
                head_reads: after.head_reads - before.head_reads,
                cas: after.cas - before.cas,
                other: after.other - before.other,
                blobs_read: after.blobs_read - before.blobs_read,
                bytes_read: after.bytes_read - before.bytes_read,
                blobs_written: after.blobs_written - before.blobs_written,
                bytes_written: after.bytes_written - before.bytes_written,
            },
        });
    }
    Ok(rows)
}

/// The as-of figures.
///
/// # Errors
/// Storage or database errors.
pub async fn as_of_back(config: &TimeTravelConfig) -> Result<Vec<AsOfRow>, BenchError> {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut db = Db::new(schema()?)
        .with_edn(&people_tx(config.people))?
        .db_after;
    let mut commits: Vec<Address> = Vec::new();
    let depth = config.back.iter().copied().max().unwrap_or(0);
    for i in 0..=depth {
        let next = db
            .with_edn(&changes(
                config.people,
                i * config.per_commit,
                config.per_commit,
                ":p/age",
                i as i64,
            ))?
            .db_after;
        let stored = store(&next, &*storage, "main").await?;
        commits.push(stored.commit);
        db = stored.db;
    }
    let head = *commits
        .last()
        .ok_or_else(|| BenchError::Usage("no commits".into()))?;
    // The held db: the head's, every node in memory.
    let held = restore_commit(&*storage, head, None, Mode::Eager).await?.db;
    let mut rows = Vec::new();
    for &k in &config.back {
        let target = commits[commits.len() - 1 - k];
        let start = Instant::now();
        let view = as_of(storage.clone(), "main", At::Commit(target), Some(&held)).await?;
        let held_ms = ms(start.elapsed());
        let full = restore_commit(&*storage, target, None, Mode::Eager).await?;
        rows.push(AsOfRow {
            back: k,
            held: view.stats,
            held_ms,
            full: full.stats,
        });
    }
    Ok(rows)
}

/// Both tables, in markdown.
pub fn markdown(
    config: &TimeTravelConfig,
    merges: &[MergeRow],
    views: &[AsOfRow],
    command: &str,
) -> String {
    let mut out = format!(
        "### Three-way merge against diff size ({} people, {} datoms; memory storage)\n\n\
         Command: `{command}`\n\n\
         | datoms changed (both sides) | applied to main | merge in memory (median) | storage merge, cold | blobs read | bytes read | read requests | blobs written | bytes written |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        config.people,
        3 * config.people
    );
    for r in merges {
        out.push_str(&format!(
            "| {} | {} | {:.2} ms | {:.2} ms | {} | {} | {} | {} | {} |\n",
            r.diff,
            r.applied,
            r.merge_ms,
            r.storage_merge_ms,
            r.io.blobs_read,
            r.io.bytes_read,
            r.io.gets + r.io.head_reads,
            r.io.blobs_written,
            r.io.bytes_written
        ));
    }
    out.push_str(&format!(
        "\n### As of a commit k back, from a process holding the head's db ({} people, {} ages changed per commit)\n\n\
         | k | nodes fetched | bytes fetched | round trips | time | full restore: nodes | full restore: bytes | full restore: round trips |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        config.people, config.per_commit
    ));
    for r in views {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} ms | {} | {} | {} |\n",
            r.back,
            r.held.nodes_fetched,
            r.held.bytes_fetched,
            r.held.round_trips,
            r.held_ms,
            r.full.nodes_fetched,
            r.full.bytes_fetched,
            r.full.round_trips
        ));
    }
    out
}

/// What must hold whatever the timings: the merge applied their changes, and a view from
/// a held db never fetched more than a full restore.
pub fn check(merges: &[MergeRow], views: &[AsOfRow]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in merges {
        if r.applied != r.diff / 2 {
            problems.push(format!(
                "merge of {} changed datoms applied {}, expected {}",
                r.diff,
                r.applied,
                r.diff / 2
            ));
        }
    }
    for r in views {
        if r.held.nodes_fetched > r.full.nodes_fetched {
            problems.push(format!(
                "as of {} back fetched {} nodes from a held db, more than a full restore's {}",
                r.back, r.held.nodes_fetched, r.full.nodes_fetched
            ));
        }
    }
    problems
}
