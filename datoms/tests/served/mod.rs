//! A real `datoms serve` process for the tests: started on a free loopback port of
//! 127.0.0.1 (port 0, read back from its first line), stopped when dropped. It also
//! stops when its standard input closes (`--stop-on-stdin-close`), which happens when
//! the test process ends however it ends, so no server outlives the tests.

#![allow(dead_code)] // Each test binary uses part of the harness.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use backend_http::{HttpOptions, HttpStorage};
use datoms::StorageError;
use tempfile::TempDir;

/// The token the harness's servers take.
pub const TOKEN: &str = "test-token-7f3a";

/// A running server.
pub struct Server {
    child: Child,
    /// Kept open: closing it stops the server.
    _stdin: Option<ChildStdin>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The storage URL it serves.
    pub db: String,
}

impl Server {
    /// Starts `datoms serve --db db` with the token file in `dir` and `extra` arguments.
    ///
    /// # Errors
    /// Why it did not start (its stderr included).
    pub fn start(db: &str, dir: &Path, extra: &[&str]) -> Result<Server, StorageError> {
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).map_err(StorageError::backend)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_datoms"))
            .args([
                "serve",
                "--db",
                db,
                "--listen",
                "127.0.0.1:0",
                "--stop-on-stdin-close",
            ])
            .arg("--token-file")
            .arg(&token_file)
            .args(extra)
            .env_remove("DATOMS_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StorageError::backend(format!("cannot start datoms serve: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| StorageError::backend("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(StorageError::backend)?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let output = child.wait_with_output().map_err(StorageError::backend)?;
            return Err(StorageError::backend(format!(
                "datoms serve did not start: {line:?} {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        };
        Ok(Server {
            url: url.to_owned(),
            db: db.to_owned(),
            child,
            _stdin: stdin,
        })
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client of this server with the token.
    ///
    /// # Errors
    /// As [`HttpStorage::connect`].
    pub async fn client(&self) -> Result<HttpStorage, StorageError> {
        HttpStorage::connect(HttpOptions::new(&self.url)?.with_token(TOKEN)).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL: a redb file reopened by the next server must have survived it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the servers of a [`ServedFactory`] keep their data in.
#[derive(Clone, Copy, Debug)]
pub enum Backing {
    /// `mem:`: a reopen connects to the same server again.
    Memory,
    /// `redb:FILE`: a reopen kills the server and starts one on the same file.
    Redb,
}

/// The conformance factory: one server per store; the servers stop with the factory
/// (at the end of each case).
pub struct ServedFactory {
    backing: Backing,
    dir: TempDir,
    servers: Mutex<Vec<Server>>,
}

impl ServedFactory {
    /// A factory whose servers keep their data in `backing`.
    ///
    /// # Panics
    /// When no temporary directory can be made (a test harness).
    pub fn new(backing: Backing) -> ServedFactory {
        ServedFactory {
            backing,
            dir: tempfile::tempdir().expect("a temporary directory"),
            servers: Mutex::new(Vec::new()),
        }
    }

    fn start(&self, db: &str) -> Result<String, StorageError> {
        let server = Server::start(db, self.dir.path(), &[])?;
        let url = server.url.clone();
        self.servers
            .lock()
            .map_err(|_| StorageError::backend("poisoned"))?
            .push(server);
        Ok(url)
    }

    fn file(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("store-{n}.redb"))
    }
}

async fn connect(url: &str) -> Result<HttpStorage, StorageError> {
    HttpStorage::connect(HttpOptions::new(url)?.with_token(TOKEN)).await
}

#[async_trait::async_trait]
impl conformance::Factory for ServedFactory {
    type Store = HttpStorage;

    async fn create(&self) -> Result<HttpStorage, StorageError> {
        let db = match self.backing {
            Backing::Memory => "mem:".to_owned(),
            Backing::Redb => {
                let n = self
                    .servers
                    .lock()
                    .map_err(|_| StorageError::backend("poisoned"))?
                    .len();
                format!("redb:{}", self.file(n).display())
            }
        };
        let url = self.start(&db)?;
        connect(&url).await
    }

    async fn reopen(&self, store: HttpStorage) -> Result<HttpStorage, StorageError> {
        let url = store.options().base.clone();
        drop(store);
        match self.backing {
            Backing::Memory => connect(&url).await,
            Backing::Redb => {
                let db = {
                    let mut servers = self
                        .servers
                        .lock()
                        .map_err(|_| StorageError::backend("poisoned"))?;
                    let i = servers
                        .iter()
                        .position(|s| s.url == url)
                        .ok_or_else(|| StorageError::backend("reopen of a store of no server"))?;
                    let server = servers.remove(i);
                    let db = server.db.clone();
                    drop(server);
                    db
                };
                let url = self.start(&db)?;
                connect(&url).await
            }
        }
    }
}
