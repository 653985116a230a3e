//! Runs the suite's Datascript side, `bench/peer/dsbench.js` on node.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::suite::Bench;
use super::timing::Timing;
use crate::error::BenchError;

/// What the peer measured.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerOutput {
    /// Datascript's version.
    pub datascript: String,
    /// Node's version.
    pub node: String,
    /// One result per benchmark, in order.
    pub results: Vec<PeerResult>,
}

/// One benchmark on the peer.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerResult {
    /// The benchmark's name.
    pub name: String,
    /// The median sample, ms per run.
    pub ms: f64,
    /// Every sample.
    pub samples: Vec<f64>,
    /// The answer, printed with `pr-str`.
    pub answer: String,
}

#[derive(Serialize)]
struct PeerInput<'a> {
    timing: &'a Timing,
    schema: &'a str,
    dbs: serde_json::Map<String, serde_json::Value>,
    benches: &'a [Bench],
}

/// Runs `benches` on the peer in `dir` (which must hold `dsbench.js` and an installed
/// `node_modules`).
///
/// # Errors
/// [`BenchError::PeerNotInstalled`] if Datascript is not installed there;
/// [`BenchError::Peer`] if node cannot be started, the peer fails, or its output does not
/// answer every benchmark.
pub fn run(
    dir: &Path,
    timing: &Timing,
    dbs: &[(String, String)],
    benches: &[Bench],
) -> Result<PeerOutput, BenchError> {
    if !dir
        .join("node_modules")
        .join("datascript")
        .join("package.json")
        .is_file()
    {
        return Err(BenchError::PeerNotInstalled(dir.to_path_buf()));
    }
    let input = PeerInput {
        timing,
        schema: super::data::SCHEMA,
        dbs: dbs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        benches,
    };
    let json = serde_json::to_vec(&input)
        .map_err(|e| BenchError::Peer(format!("serializing the suite: {e}")))?;
    let mut child = Command::new("node")
        .args(["--max-old-space-size=8192", "dsbench.js"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            BenchError::Peer(format!(
                "cannot run `node` ({e}); install Node.js >= 18 and run scripts/setup/bench-peer.sh"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&json)
            .map_err(|e| BenchError::io("writing the suite to dsbench.js", e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| BenchError::io("waiting for dsbench.js", e))?;
    if !output.status.success() {
        return Err(BenchError::Peer(format!(
            "dsbench.js failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let out: PeerOutput = serde_json::from_str(line).map_err(|e| {
        BenchError::Peer(format!(
            "unexpected output from dsbench.js ({e}): {}",
            line.chars().take(200).collect::<String>()
        ))
    })?;
    let names_match = out.results.len() == benches.len()
        && out
            .results
            .iter()
            .zip(benches)
            .all(|(r, b)| r.name == b.name);
    if !names_match {
        return Err(BenchError::Peer(
            "dsbench.js did not answer the benchmarks asked, in order".into(),
        ));
    }
    Ok(out)
}
