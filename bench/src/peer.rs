//! Runs the Datascript (JS) peer, `bench/peer/peer.js` on node, on the same workload and
//! reads back its figures.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::error::BenchError;
use crate::report::PeerFigures;

/// The peer's folder in this source tree.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer")
}

/// What the peer asks of the workload.
#[derive(Clone, Debug)]
pub struct PeerRun {
    /// The seed.
    pub seed: u64,
    /// Datoms of the base workload.
    pub datoms: u64,
    /// People per transaction.
    pub batch: usize,
    /// Datoms of the one-person-per-transaction workload.
    pub small_datoms: u64,
    /// Delta sizes generated after the base (checksummed, not transacted).
    pub deltas: Vec<usize>,
    /// Runs of each timing (the median is reported).
    pub repeats: usize,
}

#[derive(Deserialize)]
struct Output {
    datascript: String,
    node: String,
    workload_checksum: String,
    delta_checksum: String,
    db_checksum: String,
    datoms: u64,
    transact_ms: f64,
    small_db_checksum: String,
    small_datoms: u64,
    small_transact_ms: f64,
    adds_transact_ms: f64,
    adds_db_checksum: String,
    mix_transact_ms: f64,
    mix_db_checksum: String,
    heap_bytes: f64,
    join_ms: f64,
    join_rows: u64,
    pull_ms: f64,
    pull_entities: u64,
}

/// Runs the peer in `dir` (which must hold `peer.js` and an installed `node_modules`).
///
/// # Errors
/// [`BenchError::PeerNotInstalled`] if `datascript` is not installed there;
/// [`BenchError::Peer`] if node cannot be started, the peer fails, or its output is not
/// what this harness expects.
pub fn run(dir: &Path, what: &PeerRun) -> Result<PeerFigures, BenchError> {
    if !dir
        .join("node_modules")
        .join("datascript")
        .join("package.json")
        .is_file()
    {
        return Err(BenchError::PeerNotInstalled(dir.to_path_buf()));
    }
    let deltas: Vec<String> = what.deltas.iter().map(usize::to_string).collect();
    let output = Command::new("node")
        // A 1M-datom Datascript db needs more than node's default old-space limit on
        // some machines; --expose-gc lets the peer measure the heap its db holds.
        .args(["--expose-gc", "--max-old-space-size=16384", "peer.js"])
        .args(["--seed", &what.seed.to_string()])
        .args(["--datoms", &what.datoms.to_string()])
        .args(["--batch", &what.batch.to_string()])
        .args(["--small-datoms", &what.small_datoms.to_string()])
        .args(["--deltas", &deltas.join(",")])
        .args(["--repeats", &what.repeats.to_string()])
        .current_dir(dir)
        .output()
        .map_err(|e| {
            BenchError::Peer(format!(
                "cannot run `node` ({e}); install Node.js >= 18 and run scripts/setup/bench-peer.sh"
            ))
        })?;
    if !output.status.success() {
        return Err(BenchError::Peer(format!(
            "peer.js failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let o: Output = serde_json::from_str(line)
        .map_err(|e| BenchError::Peer(format!("unexpected output ({e}): {line}")))?;
    let per_s = |datoms: u64, ms: f64| {
        if ms > 0.0 {
            datoms as f64 / (ms / 1e3)
        } else {
            0.0
        }
    };
    Ok(PeerFigures {
        datascript: o.datascript,
        node: o.node,
        workload_checksum: o.workload_checksum,
        delta_checksum: o.delta_checksum,
        db_checksum: o.db_checksum,
        small_db_checksum: o.small_db_checksum,
        datoms: o.datoms,
        transact_ms: o.transact_ms,
        datoms_per_s: per_s(o.datoms, o.transact_ms),
        small_transact_ms: o.small_transact_ms,
        small_datoms_per_s: per_s(o.small_datoms, o.small_transact_ms),
        adds_transact_ms: o.adds_transact_ms,
        adds_db_checksum: o.adds_db_checksum,
        mix_transact_ms: o.mix_transact_ms,
        mix_db_checksum: o.mix_db_checksum,
        heap_bytes: o.heap_bytes.max(0.0) as u64,
        join_ms: o.join_ms,
        join_rows: o.join_rows,
        pull_ms: o.pull_ms,
        pull_entities: o.pull_entities,
    })
}
