//! Child processes of the multi-process tests: the test binary itself, re-run on one
//! ignored test with an environment variable that puts it in child mode. The crash
//! tests kill such children with SIGKILL at random moments; the multi-process tests let
//! them run to their end.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The test binary re-run on the ignored test `child_test` alone, with `var=value` set,
/// its output piped.
///
/// # Panics
/// When the test binary's path is unknown (this is a test harness).
pub fn command(child_test: &str, var: &str, value: impl AsRef<OsStr>) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut c = Command::new(exe);
    c.args([
        child_test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(var, value)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// What a child printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status (a killed child's says so).
    pub status: ExitStatus,
    /// Its stdout, line by line.
    pub stdout: Vec<String>,
    /// Its stderr, line by line.
    pub stderr: Vec<String>,
}

impl Finished {
    /// The lines of stdout that carry `tag` (anywhere: libtest may print its banner on
    /// the line of the first report), each with what follows the tag, trimmed.
    pub fn reports<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.stdout
            .iter()
            .filter_map(move |l| l.find(tag).map(|i| l[i + tag.len()..].trim()))
    }

    /// The first line of stderr that contains `marker` (a child's own failure report).
    pub fn failure(&self, marker: &str) -> Option<&str> {
        self.stderr
            .iter()
            .find(|l| l.contains(marker))
            .map(String::as_str)
    }
}

/// A started child whose output is being collected.
#[derive(Debug)]
pub struct Running {
    child: Child,
    stdout: JoinHandle<Vec<String>>,
    stderr: JoinHandle<Vec<String>>,
}

fn collect(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || match pipe {
        Some(p) => BufReader::new(p).lines().map_while(Result::ok).collect(),
        None => Vec::new(),
    })
}

impl Running {
    /// Starts `command`, reading its output on threads of its own (so a child that
    /// prints much never blocks on a full pipe).
    ///
    /// # Panics
    /// When the child cannot be spawned.
    pub fn start(mut command: Command) -> Running {
        let mut child = command.spawn().expect("spawning a child process");
        let stdout = collect(child.stdout.take());
        let stderr = collect(child.stderr.take());
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child with SIGKILL (no destructor, no flush, no fsync of its own) and
    /// collects what it printed.
    pub fn kill(mut self) -> Finished {
        let _ = self.child.kill();
        self.wait()
    }

    /// Waits for the child's end and collects what it printed.
    ///
    /// # Panics
    /// When waiting fails.
    pub fn wait(mut self) -> Finished {
        let status = self.child.wait().expect("waiting for a child process");
        Finished {
            status,
            stdout: self.stdout.join().unwrap_or_default(),
            stderr: self.stderr.join().unwrap_or_default(),
        }
    }
}

/// Runs `command` and kills it after `delay`.
pub fn kill_after(command: Command, delay: Duration) -> Finished {
    let running = Running::start(command);
    std::thread::sleep(delay);
    running.kill()
}

/// Runs `command`, waits until its stdout shows a line containing `marker` (at most
/// `patience`, or until it exits), then kills it after `delay`: the kill lands in the
/// work the child does after its start-up, however long the start-up took.
///
/// # Panics
/// When the child cannot be spawned.
pub fn kill_after_marker(
    mut command: Command,
    marker: &str,
    delay: Duration,
    patience: Duration,
) -> Finished {
    let mut child = command.spawn().expect("spawning a child process");
    let (tx, rx) = mpsc::channel();
    let pipe = child.stdout.take();
    let stdout = std::thread::spawn(move || {
        let mut lines = Vec::new();
        if let Some(p) = pipe {
            for line in BufReader::new(p).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                lines.push(line);
            }
        }
        lines
    });
    let stderr = collect(child.stderr.take());
    let deadline = Instant::now() + patience;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(marker) {
            break;
        }
    }
    std::thread::sleep(delay);
    Running {
        child,
        stdout,
        stderr,
    }
    .kill()
}

/// Runs `command` to its end.
pub fn run(command: Command) -> Finished {
    Running::start(command).wait()
}

/// The runtime a child or a parent drives its async work on: multi-thread, two workers.
///
/// # Panics
/// When no runtime can start (this is a test harness).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The runtime of a child: as [`runtime`], but a child that cannot start one reports it
/// on stderr (with `marker`) and exits with status 2.
pub fn child_runtime(marker: &str) -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{marker}: no runtime: {e}");
            std::process::exit(2);
        }
    }
}

/// A xorshift step: the parents' reproducible source of delays.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
