//! The S3 backend on loopback: moto's S3 server (installed by `scripts/setup/s3.sh` in a
//! pinned venv) on a free port of 127.0.0.1, one per opened storage, with one bucket.
//!
//! The server runs in a small Python launcher that creates the bucket, prints its port,
//! and exits as soon as its standard input closes — when the [`Opened`] guard drops the
//! child, or when the harness dies however it dies — so no server outlives a run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backend_s3::{S3Options, S3Storage};

use crate::backends::Opened;
use crate::error::BenchError;

const BUCKET: &str = "datoms-bench";

/// How long the server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(90);

const LAUNCHER: &str = r#"
import logging, os, sys
logging.disable(logging.CRITICAL)
from moto.server import ThreadedMotoServer
import boto3
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port = server.get_host_and_port()[1]
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
             aws_access_key_id="testing", aws_secret_access_key="testing"
             ).create_bucket(Bucket=sys.argv[1])
print("PORT", port, flush=True)
try:
    sys.stdin.buffer.read()
finally:
    os._exit(0)
"#;

/// The launcher process; dropping it closes its stdin, which stops the server.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where moto's venv is: `DATOMS_MOTO_VENV`, else beside the cargo target directory (as
/// `scripts/setup/s3.sh` installs it), else `~/.cache/datoms-moto-venv`.
fn python() -> Result<PathBuf, BenchError> {
    let mut candidates = Vec::new();
    if let Some(v) = std::env::var_os("DATOMS_MOTO_VENV") {
        candidates.push(PathBuf::from(v));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        if let Some(parent) = PathBuf::from(t).parent() {
            candidates.push(parent.join("datoms-moto-venv"));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/datoms-moto-venv"));
    }
    candidates
        .iter()
        .map(|v| v.join("bin/python"))
        .find(|p| p.exists())
        .ok_or_else(|| {
            BenchError::Usage(format!(
                "the s3 backend needs moto: run `bash scripts/setup/s3.sh` or set DATOMS_MOTO_VENV (looked in {candidates:?})"
            ))
        })
}

fn start() -> Result<(Server, String), BenchError> {
    let python = python()?;
    let child = Command::new(&python)
        .args(["-u", "-c", LAUNCHER, BUCKET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::io(format!("starting {}", python.display()), e))?;
    let mut server = Server(child);
    let stdout = server
        .0
        .stdout
        .take()
        .ok_or_else(|| BenchError::Inconsistent("moto launcher without stdout".into()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(START_TIMEOUT).map_err(|_| {
        BenchError::Inconsistent(format!("moto did not start within {START_TIMEOUT:?}"))
    })?;
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| BenchError::Inconsistent(format!("moto launcher said {line:?}")))?;
    Ok((server, format!("http://127.0.0.1:{port}")))
}

/// A fresh S3 storage in a moto server of its own on loopback.
///
/// # Errors
/// moto missing or not starting; the storage not connecting.
pub async fn open() -> Result<Opened, BenchError> {
    let (server, endpoint) = tokio::task::spawn_blocking(start)
        .await
        .map_err(|e| BenchError::Inconsistent(format!("starting moto: {e}")))??;
    let mut options = S3Options::new(BUCKET, "bench")
        .with_endpoint(&endpoint)
        .with_credentials("testing", "testing");
    options.region = Some("us-east-1".into());
    let storage = S3Storage::connect(options).await?;
    let mut opened = Opened::new(storage)?;
    opened.guard = Some(Box::new(server));
    Ok(opened)
}
