//! The S3 server the tests run against, and the factory that gives each test a fresh
//! prefix in it.
//!
//! By default the harness starts moto's S3 server (installed by `scripts/setup/s3.sh`
//! in a pinned venv) on a free port of 127.0.0.1, once per test process, and creates one
//! bucket; each store a test makes gets its own prefix. The server runs in a small Python
//! launcher that exits as soon as its standard input closes, which happens when the test
//! process ends however it ends (even killed), so no server outlives `cargo test` or
//! `cargo nextest`. If the server cannot start, every test fails with the reason: none
//! is skipped.
//!
//! With `DATOMS_S3_URL=s3://bucket/prefix?…` set, no server is started: the tests run
//! against that location with the standard AWS credential chain, each store under
//! `prefix/datoms-test-<run>/<n>`, so that a user can check their provider. Objects the
//! tests write there are left in place.

#![allow(dead_code)] // Each test binary uses part of the harness.

pub mod proxy;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_s3::{S3Options, S3Storage};
use datoms_storage::StorageError;

/// The bucket the harness creates in its own server.
pub const BUCKET: &str = "datoms-tests";

/// How long the server may take to start before the tests fail.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs moto's threaded server on an OS-chosen port of 127.0.0.1, prints the port, and
/// exits when stdin reaches EOF (the parent is gone).
///
/// moto checks `If-Match` / `If-None-Match` and then writes, with no lock between: two
/// conditional PUTs naming the same ETag can both succeed when the GIL switches threads
/// between the check and the write (seen as a peer's landed commit overwritten by
/// another's under load). S3 makes a conditional write atomic, so the launcher does too:
/// conditional PUTs run one at a time (unconditional ones, the nodes, still in parallel).
const LAUNCHER: &str = r#"
import logging, os, sys, threading
logging.disable(logging.CRITICAL)  # no line per request
import moto.s3.responses as responses
from moto.server import ThreadedMotoServer
_put_object = responses.S3Response.put_object
_conditional = threading.Lock()
def put_object(self, *args, **kwargs):
    if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
        with _conditional:
            return _put_object(self, *args, **kwargs)
    return _put_object(self, *args, **kwargs)
responses.S3Response.put_object = put_object
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("PORT", server.get_host_and_port()[1], flush=True)
try:
    sys.stdin.buffer.read()
finally:
    os._exit(0)
"#;

/// Where the tests' stores live.
pub enum Target {
    /// The harness's own server.
    Local(&'static LocalServer),
    /// The user's location from `DATOMS_S3_URL`.
    User(Box<S3Options>),
}

/// A running moto server. Its process ends with the test process (see the module doc).
pub struct LocalServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The launcher process; kept so that its stdin pipe stays open.
    _child: Mutex<Child>,
}

static TARGET: OnceLock<Result<Target, String>> = OnceLock::new();
static LOCAL: OnceLock<Result<LocalServer, String>> = OnceLock::new();
static NEXT_PREFIX: AtomicU64 = AtomicU64::new(0);

/// The target of this test process: `DATOMS_S3_URL`, else the local server.
///
/// # Errors
/// Why the server could not be started (the test fails with it).
pub fn target() -> Result<&'static Target, StorageError> {
    TARGET
        .get_or_init(|| match std::env::var("DATOMS_S3_URL") {
            Ok(url) if !url.is_empty() => S3Options::from_url(&url)
                .map(|o| Target::User(Box::new(o)))
                .map_err(|e| format!("DATOMS_S3_URL: {e}")),
            _ => local().map(Target::Local).map_err(|e| e.to_string()),
        })
        .as_ref()
        .map_err(|e| StorageError::backend(e.clone()))
}

/// The local server of this test process, started on first use. The fault-injection
/// tests use it even when `DATOMS_S3_URL` is set: they need a server behind a proxy.
///
/// # Errors
/// Why the server could not be started.
pub fn local() -> Result<&'static LocalServer, StorageError> {
    LOCAL
        .get_or_init(start_local)
        .as_ref()
        .map_err(|e| StorageError::backend(e.clone()))
}

/// A fresh prefix name in the local server.
pub fn fresh_prefix() -> String {
    format!("t{}", NEXT_PREFIX.fetch_add(1, Ordering::Relaxed))
}

/// Options for a new, empty place (a fresh prefix) in the target.
///
/// # Errors
/// Why the server could not be started.
pub fn fresh_options() -> Result<S3Options, StorageError> {
    let n = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
    Ok(match target()? {
        Target::Local(server) => local_options(&server.endpoint, &format!("t{n}")),
        Target::User(base) => {
            let mut o = (**base).clone();
            let run = run_id();
            o.prefix = if base.prefix.is_empty() {
                format!("datoms-test-{run}/{n}")
            } else {
                format!("{}/datoms-test-{run}/{n}", base.prefix)
            };
            o
        }
    })
}

/// Options for `prefix` in the local server at `endpoint`.
pub fn local_options(endpoint: &str, prefix: &str) -> S3Options {
    let mut o = S3Options::new(BUCKET, prefix)
        .with_endpoint(endpoint)
        .with_credentials("testing", "testing");
    o.region = Some("us-east-1".into());
    o
}

/// One id per test process, so that runs against a user's bucket do not meet.
fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}-{nanos}", std::process::id())
    })
}

/// A fresh, empty store.
///
/// # Errors
/// Why the server could not be started.
pub async fn fresh_store() -> Result<S3Storage, StorageError> {
    S3Storage::connect(fresh_options()?).await
}

/// The Python venv holding moto: `DATOMS_MOTO_VENV`, else the path the setup script
/// uses, beside the cargo target directory.
fn venv_candidates() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os("DATOMS_MOTO_VENV") {
        return vec![PathBuf::from(v)];
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/datoms-target"));
    let mut out = Vec::new();
    if let Some(parent) = target.parent() {
        out.push(parent.join("datoms-moto-venv"));
    }
    out.push(home.join(".cache/datoms-moto-venv"));
    out.dedup();
    out
}

fn start_local() -> Result<LocalServer, String> {
    let candidates = venv_candidates();
    let python = candidates
        .iter()
        .map(|v| v.join("bin/python"))
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "the S3 test server (moto) is not installed: run `bash scripts/setup/s3.sh` \
                 (or scripts/test.sh, which runs it), or point DATOMS_MOTO_VENV at a venv \
                 with moto[server]; looked in {candidates:?}"
            )
        })?;
    let log_path = std::env::temp_dir().join(format!("datoms-moto-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut child = Command::new(&python)
        .args(["-u", "-c", LAUNCHER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    let failed = |child: &mut Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        let mut tail = String::new();
        if let Ok(mut f) = std::fs::File::open(&log_path) {
            let _ = f.read_to_string(&mut tail);
        }
        let _ = std::fs::remove_file(&log_path);
        let tail: String = tail
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "the S3 test server (moto, {}) did not start: {why}\n{tail}",
            python.display()
        )
    };
    let Some(stdout) = child.stdout.take() else {
        return Err(failed(&mut child, "no stdout pipe".into()));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            return Err(failed(
                &mut child,
                format!("no port after {START_TIMEOUT:?}"),
            ))
        }
    };
    let port: u16 = match line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
    {
        Some(p) => p,
        None => return Err(failed(&mut child, format!("unexpected output {line:?}"))),
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    if let Err(e) = create_bucket(&endpoint) {
        return Err(failed(&mut child, format!("creating bucket {BUCKET}: {e}")));
    }
    // The log only serves a failed start; the server keeps its (now unnamed) file.
    let _ = std::fs::remove_file(&log_path);
    Ok(LocalServer {
        endpoint,
        _child: Mutex::new(child),
    })
}

/// Creates the bucket on a runtime of its own (the tests' runtimes come and go).
fn create_bucket(endpoint: &str) -> Result<(), String> {
    let endpoint = endpoint.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let s = S3Storage::connect(local_options(&endpoint, ""))
                .await
                .map_err(|e| e.to_string())?;
            s.client()
                .create_bucket()
                .bucket(BUCKET)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())
        })
    })
    .join()
    .map_err(|_| "the bucket-creating thread panicked".to_owned())?
}
