//! The S3 backend against a second loopback server: `s3s-fs`, an S3-compatible server in
//! Rust (tokio and hyper) that keeps objects as files and serves requests in parallel.
//!
//! moto, the suite's server, is one Python process: a head read queues behind the
//! writer's store (see docs/benchmarks.md, "Follow latency"), so its tail measures moto.
//! `s3s-fs` shows what the follower costs against a server that does not queue. Its
//! conditional writes check then write without a lock, so it is a server for one writer
//! at a time (the follow bench's setup), never for the multi-writer benches.
//!
//! Installed, outside the clone, by `scripts/setup/s3s-fs.sh`; found through
//! `DATOMS_S3S_FS` (the binary), else `~/.cache/datoms-s3s-fs/bin/s3s-fs`. Not part of
//! `--backends all`: name it (`--backends s3s`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backend_s3::S3Options;

use crate::backends::Opened;
use crate::error::BenchError;

const BUCKET: &str = "datoms-bench";

/// How long the server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The server process and its data folder; dropping it stops the one and removes the other.
struct Server {
    child: Child,
    #[allow(dead_code)] // held only to be removed on drop
    root: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `root` is removed after this, as the field drops.
    }
}

/// The `s3s-fs` binary: `DATOMS_S3S_FS`, else where the setup script installs it.
fn binary() -> Result<PathBuf, BenchError> {
    let mut candidates = Vec::new();
    if let Some(b) = std::env::var_os("DATOMS_S3S_FS") {
        candidates.push(PathBuf::from(b));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/datoms-s3s-fs/bin/s3s-fs"));
    }
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        BenchError::Usage(format!(
            "the s3s backend needs s3s-fs: run `bash scripts/setup/s3s-fs.sh` or set DATOMS_S3S_FS (looked in {candidates:?})"
        ))
    })
}

fn start() -> Result<(Server, String), BenchError> {
    let binary = binary()?;
    let root = tempfile::tempdir().map_err(|e| BenchError::io("creating s3s-fs root", e))?;
    std::fs::create_dir(root.path().join(BUCKET))
        .map_err(|e| BenchError::io("creating the s3s-fs bucket", e))?;
    // A free port: the kernel picks one, the listener lets it go, the server takes it.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| BenchError::io("finding a free port", e))?
        .port();
    let child = Command::new(&binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "testing", "--secret-key", "testing"])
        .arg(root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::io(format!("starting {}", binary.display()), e))?;
    let mut server = Server { child, root };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let began = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(BenchError::Inconsistent(format!(
                "s3s-fs exited before listening: {status}"
            )));
        }
        if began.elapsed() > START_TIMEOUT {
            return Err(BenchError::Inconsistent(format!(
                "s3s-fs did not listen on {addr} within {START_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((server, format!("http://{addr}")))
}

/// A fresh S3 storage in an `s3s-fs` server of its own on loopback.
///
/// # Errors
/// `s3s-fs` missing or not starting; the storage not connecting.
pub async fn open() -> Result<Opened, BenchError> {
    let (server, endpoint) = tokio::task::spawn_blocking(start)
        .await
        .map_err(|e| BenchError::Inconsistent(format!("starting s3s-fs: {e}")))??;
    crate::s3::connect(Box::new(server), &endpoint, S3Options::new(BUCKET, "bench")).await
}
