//! Follow latency: how long from a head's move (the writer's CAS returned) to the
//! follower's update delivered, p50 and p99, per backend, with the backend's change
//! signal and with polling alone, side by side in one run.
//!
//! `datoms-bench follow [--backends mem,redb,s3] [--updates N] [--poll-ms P]`
//!
//! A writer stores one small transaction per commit onto a 1,000-person db, pausing a
//! random 0–P ms between commits so moves land at every phase of the poll. The
//! follower runs in its own task over the same storage (so the embedded backends'
//! signal reaches it); the polling-only rows hide the signal behind a wrapper. Targets
//! (issue 15): polling p99 ≤ poll interval + 3 round trips, signal p99 ≤ 5 ms. A round
//! trip is the median head read measured during the run (the writer's and the
//! follower's, with the store as loaded as the follower found it); the idle median,
//! measured after the run, is reported beside it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::{Address, Db};
use datoms_storage::{
    store, Capabilities, FollowOptions, Follower, Head, HeadChanges, Storage, StorageError, Version,
};

use crate::backends::Backend;
use crate::error::BenchError;
use crate::rng::SplitMix64 as Rng;
use crate::workload::{schema, Generator};

/// One row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// Backend name.
    pub backend: &'static str,
    /// True if the follower had the change signal.
    pub signal: bool,
    /// The poll interval.
    pub poll: Duration,
    /// Median head read during the run (one round trip, loaded).
    pub round_trip: Duration,
    /// Median head read after the run, nothing else running (one round trip, idle).
    pub idle_round_trip: Duration,
    /// The 99th percentile of the head reads during the run: how long a round trip
    /// took when the store was busiest.
    pub round_trip_p99: Duration,
    /// Latencies of the updates, sorted.
    pub latencies: Vec<Duration>,
}

impl Row {
    fn quantile(&self, q: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }

    /// The target this row is held to.
    pub fn target(&self) -> Duration {
        if self.signal {
            Duration::from_millis(5)
        } else {
            self.poll + self.round_trip * 3
        }
    }

    /// A markdown table row.
    pub fn markdown(&self) -> String {
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
        let p99 = self.quantile(0.99);
        format!(
            "| {} | {} | {} | {} / {} / {} | {} | {} | {} | {} ≤ {} ms: {} |",
            self.backend,
            if self.signal {
                "signal + poll"
            } else {
                "poll only"
            },
            self.poll.as_millis(),
            ms(self.idle_round_trip),
            ms(self.round_trip),
            ms(self.round_trip_p99),
            self.latencies.len(),
            ms(self.quantile(0.5)),
            ms(p99),
            ms(p99),
            ms(self.target()),
            if p99 <= self.target() {
                "met"
            } else {
                "missed"
            },
        )
    }
}

/// Hides the inner storage's change signal, records when a CAS returns and how long
/// each head read took.
#[derive(Debug)]
struct Probe {
    inner: Arc<dyn Storage>,
    signal: bool,
    moved: Mutex<Vec<(Address, Instant)>>,
    head_reads: Mutex<Vec<Duration>>,
}

#[async_trait]
impl Storage for Probe {
    async fn get_many(&self, a: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        self.inner.get_many(a).await
    }
    async fn put_many(&self, b: &[(Address, Bytes)]) -> Result<(), StorageError> {
        self.inner.put_many(b).await
    }
    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        let t = Instant::now();
        let head = self.inner.get_head(name).await;
        if let Ok(mut reads) = self.head_reads.lock() {
            reads.push(t.elapsed());
        }
        head
    }
    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        let v = self.inner.cas_head(name, expected, new).await?;
        if let Ok(mut m) = self.moved.lock() {
            m.push((new, Instant::now()));
        }
        Ok(v)
    }
    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.inner.list_heads().await
    }
    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        self.inner.delete_head(name, expected).await
    }
    async fn list_blobs(
        &self,
        after: Option<Address>,
        l: usize,
    ) -> Result<Vec<Address>, StorageError> {
        self.inner.list_blobs(after, l).await
    }
    async fn delete_many(&self, a: &[Address]) -> Result<(), StorageError> {
        self.inner.delete_many(a).await
    }
    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<datoms_storage::BlobStamp>, StorageError> {
        self.inner.list_blob_stamps(after, limit).await
    }
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        self.inner.delete_stale(addresses, written_before).await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn head_changes(&self) -> Option<HeadChanges> {
        if self.signal {
            self.inner.head_changes()
        } else {
            None
        }
    }
}

/// Measures one backend, with its signal (if it has one) and by polling alone.
///
/// # Errors
/// Storage errors, a follower that delivers a commit never stored.
pub async fn measure(
    backend: Backend,
    updates: usize,
    poll: Duration,
) -> Result<Vec<Row>, BenchError> {
    let mut rows = Vec::new();
    for signal in [true, false] {
        let dir = tempfile::tempdir().map_err(|e| BenchError::io("a scratch folder", e))?;
        let opened = (backend.open)(dir.path().to_path_buf()).await?;
        if signal && opened.storage.head_changes().is_none() {
            continue;
        }
        let probe = Arc::new(Probe {
            inner: opened.storage.clone(),
            signal,
            moved: Mutex::new(Vec::new()),
            head_reads: Mutex::new(Vec::new()),
        });
        rows.push(run(backend.name, probe, updates, poll, signal).await?);
        drop(opened);
    }
    Ok(rows)
}

async fn run(
    name: &'static str,
    probe: Arc<Probe>,
    updates: usize,
    poll: Duration,
    signal: bool,
) -> Result<Row, BenchError> {
    let mut generator = Generator::new(15);
    let mut db = Db::new(schema()?);
    for tx in generator.base(3_000, 500) {
        db = db.with(&tx.to_tx_ops())?.db_after;
    }
    db = store(&db, &*probe, "main").await?.db;
    let options = FollowOptions {
        poll,
        max_poll: poll,
        ..FollowOptions::default()
    };
    let storage: Arc<dyn Storage> = probe.clone();
    let mut follower = Follower::new(storage, "main", db.clone(), options);
    let follow = tokio::spawn(async move {
        let mut delivered = Vec::with_capacity(updates);
        while delivered.len() < updates {
            let u = follower.next().await?;
            delivered.push((u.commit, Instant::now()));
        }
        Ok::<_, StorageError>(delivered)
    });
    let mut rng = Rng::new(16);
    for _ in 0..updates {
        tokio::time::sleep(Duration::from_micros(
            rng.below(poll.as_micros() as u64 + 1),
        ))
        .await;
        db = db.with(&generator.delta(1).to_tx_ops())?.db_after;
        db = store(&db, &*probe, "main").await?.db;
    }
    let delivered = follow
        .await
        .map_err(|e| BenchError::Inconsistent(format!("the follower task: {e}")))??;
    let moved = probe.moved.lock().map(|m| m.clone()).unwrap_or_default();
    let mut latencies = Vec::with_capacity(updates);
    for (commit, at) in delivered {
        let (_, was) = moved.iter().find(|(c, _)| *c == commit).ok_or_else(|| {
            BenchError::Inconsistent(format!("follower delivered {commit}, never stored"))
        })?;
        latencies.push(at.saturating_duration_since(*was));
    }
    latencies.sort();
    let at = |reads: &[Duration], q: f64| {
        let i = ((reads.len().max(1) - 1) as f64 * q).round() as usize;
        reads.get(i).copied().unwrap_or_default()
    };
    let mut loaded = std::mem::take(
        &mut *probe
            .head_reads
            .lock()
            .map_err(|_| BenchError::Inconsistent("a head read panicked".into()))?,
    );
    loaded.sort();
    let mut idle = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        probe.get_head("main").await?;
        idle.push(t.elapsed());
    }
    idle.sort();
    Ok(Row {
        backend: name,
        signal,
        poll,
        round_trip: at(&loaded, 0.5),
        idle_round_trip: at(&idle, 0.5),
        round_trip_p99: at(&loaded, 0.99),
        latencies,
    })
}

/// The report: a markdown table.
pub fn markdown(rows: &[Row], command: &str) -> String {
    let mut out = format!(
        "## Follow latency (head moved → update delivered)\n\n`{command}`\n\n| backend | wake-up | poll ms | round trip ms: idle / loaded p50 / loaded p99 | updates | p50 ms | p99 ms | target |\n|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        out.push_str(&r.markdown());
        out.push('\n');
    }
    out
}
