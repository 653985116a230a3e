//! Runs the suite's Datascript side, `bench/peer/dsbench.js` on node, one benchmark at a
//! time, interleaved with datoms' runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::{Deserialize, Serialize};

use super::suite::Bench;
use super::timing::Timing;
use crate::error::BenchError;

/// What the peer says once its dbs are built.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerHello {
    /// Datascript's version.
    pub datascript: String,
    /// Node's version.
    pub node: String,
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

/// The running peer: it has the suite and its dbs, and runs one benchmark when asked, so
/// each of its timings is taken right before datoms' timing of the same benchmark.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Its versions.
    pub hello: PeerHello,
    names: Vec<String>,
}

impl Peer {
    /// Starts the peer in `dir` (which must hold `dsbench.js` and an installed
    /// `node_modules`) and hands it the suite.
    ///
    /// # Errors
    /// [`BenchError::PeerNotInstalled`] if Datascript is not installed there;
    /// [`BenchError::Peer`] if node cannot be started or the peer fails.
    pub fn start(
        dir: &Path,
        timing: &Timing,
        dbs: &[(String, String)],
        benches: &[Bench],
    ) -> Result<Peer, BenchError> {
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
        let mut json = serde_json::to_vec(&input)
            .map_err(|e| BenchError::Peer(format!("serializing the suite: {e}")))?;
        json.push(b'\n');
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
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::Peer("dsbench.js has no stdin or stdout".into()));
        };
        let mut peer = Peer {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            hello: PeerHello {
                datascript: String::new(),
                node: String::new(),
            },
            names: benches.iter().map(|b| b.name.clone()).collect(),
        };
        peer.send(&json)?;
        peer.hello = peer.receive()?;
        Ok(peer)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), BenchError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| BenchError::Peer("dsbench.js was closed".into()))?;
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .map_err(|e| BenchError::io("writing to dsbench.js", e))
    }

    fn receive<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T, BenchError> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| BenchError::io("reading from dsbench.js", e))?;
        if n == 0 {
            let mut err = String::new();
            if let Some(stderr) = self.child.stderr.as_mut() {
                let _ = stderr.read_to_string(&mut err);
            }
            return Err(BenchError::Peer(format!(
                "dsbench.js ended early: {}",
                err.trim()
            )));
        }
        serde_json::from_str(&line).map_err(|e| {
            BenchError::Peer(format!(
                "unexpected output from dsbench.js ({e}): {}",
                line.chars().take(200).collect::<String>()
            ))
        })
    }

    /// Runs benchmark `i` of the suite on the peer.
    ///
    /// # Errors
    /// [`BenchError::Peer`] if the peer fails or answers another benchmark.
    pub fn run(&mut self, i: usize) -> Result<PeerResult, BenchError> {
        self.send(format!("{i}\n").as_bytes())?;
        let r: PeerResult = self.receive()?;
        if self.names.get(i) != Some(&r.name) {
            return Err(BenchError::Peer(format!(
                "dsbench.js answered {} when asked for benchmark {i}",
                r.name
            )));
        }
        Ok(r)
    }

    /// Closes the peer's input and waits for it to end.
    ///
    /// # Errors
    /// [`BenchError::Peer`] if it fails.
    pub fn finish(mut self) -> Result<(), BenchError> {
        drop(self.stdin.take());
        let status = self
            .child
            .wait()
            .map_err(|e| BenchError::io("waiting for dsbench.js", e))?;
        if !status.success() {
            return Err(BenchError::Peer(format!("dsbench.js failed ({status})")));
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Ends a peer left running by an error; one that already ended is reaped.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
