//! Serving over HTTP: what a remote replica pays to restore through `datoms serve`, with
//! one-round-trip sync and with the plain blob API, side by side in one run; and how
//! many blob GETs per second the server answers to 1–64 concurrent clients.
//!
//! The server runs in this process (`datoms_server::router` over a memory storage, on a
//! loopback port). The restores go through a TCP proxy that delays every chunk by half
//! the configured round-trip latency in each direction (pipelined: bandwidth is not
//! cut, each byte arrives `latency / 2` later), so each request costs one round trip of
//! `--latency-ms` as it would across a network. The replicas are the `backend-http`
//! client, fresh per measurement (connected before the clock starts); requests are
//! counted by the client ([`HttpStorage::requests_sent`]). The server prepares a bundle
//! by running the restore against its own replica at `have` (restored incrementally from
//! the replicas it keeps), so the first client at a new commit pays that work; the row
//! `new replica, again` shows a bundle the server kept. The throughput rows talk to the
//! server directly (no added latency), each client on its own connection, client and
//! server in this one process.
//!
//! `datoms-bench http [--quick] [--latency-ms MS] [--datoms N]`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_http::{HttpOptions, HttpStorage};
use datoms_core::{Address, Db};
use datoms_storage::{restore_from, store, MemoryStorage, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::error::BenchError;
use crate::workload::{schema, GenTx, Generator};

const TOKEN: &str = "bench-token";

/// Sizes of one run.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Datoms of the base database.
    pub datoms: u64,
    /// People per base transaction.
    pub batch: usize,
    /// Datoms per later commit.
    pub delta: usize,
    /// How many commits behind the incremental replicas are.
    pub behind: Vec<usize>,
    /// The added round-trip latency of the restores.
    pub latency: Duration,
    /// Concurrent clients of the throughput rows.
    pub clients: Vec<usize>,
    /// Blob GETs per client in a throughput row.
    pub gets_per_client: usize,
    /// The workload's seed.
    pub seed: u64,
}

impl HttpConfig {
    /// The figures of docs/benchmarks.md.
    pub fn full() -> HttpConfig {
        HttpConfig {
            datoms: 200_000,
            batch: 1000,
            delta: 100,
            behind: vec![1, 10, 100],
            latency: Duration::from_millis(20),
            clients: vec![1, 4, 16, 64],
            gets_per_client: 2000,
            seed: 42,
        }
    }

    /// Small sizes, every row exercised.
    pub fn quick() -> HttpConfig {
        HttpConfig {
            datoms: 20_000,
            batch: 500,
            delta: 100,
            behind: vec![1, 10],
            latency: Duration::from_millis(20),
            clients: vec![1, 4, 16, 64],
            gets_per_client: 100,
            seed: 42,
        }
    }
}

/// One restore measured.
#[derive(Clone, Debug)]
pub struct RestoreRow {
    /// `new replica` or `N commits behind`.
    pub replica: String,
    /// `sync` (one round trip) or `blobs` (the plain API).
    pub api: &'static str,
    /// HTTP requests the restore sent.
    pub requests: u64,
    /// Blob bytes received.
    pub bytes: u64,
    /// Nodes and commits the restore took.
    pub blobs: u64,
    /// Wall time.
    pub ms: f64,
}

/// One throughput row.
#[derive(Clone, Debug)]
pub struct ThroughputRow {
    /// Concurrent clients.
    pub clients: usize,
    /// GETs answered.
    pub requests: u64,
    /// Bytes of blobs received.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct HttpReport {
    /// The restores.
    pub restores: Vec<RestoreRow>,
    /// The throughput rows.
    pub throughput: Vec<ThroughputRow>,
    /// Datoms of the base db.
    pub datoms: u64,
    /// Blobs stored.
    pub stored_blobs: usize,
    /// Problems the checks found.
    pub problems: Vec<String>,
}

/// A TCP proxy to `upstream` on a loopback port that delays every chunk by `one_way` in
/// each direction. It runs until the process ends.
async fn latency_proxy(upstream: SocketAddr, one_way: Duration) -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::io("binding the latency proxy", e))?;
    let address = listener
        .local_addr()
        .map_err(|e| BenchError::io("the latency proxy's address", e))?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::join!(delayed_pipe(cr, sw, one_way), delayed_pipe(sr, cw, one_way));
            });
        }
    });
    Ok(address)
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn delayed_pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// The server over `storage` on a loopback port.
async fn start_server(storage: Arc<MemoryStorage>) -> Result<SocketAddr, BenchError> {
    let config = datoms_server::Config {
        token: Some(TOKEN.into()),
        ..datoms_server::Config::default()
    };
    let app = datoms_server::router(storage, config)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::io("binding the server", e))?;
    let address = listener
        .local_addr()
        .map_err(|e| BenchError::io("the server's address", e))?;
    tokio::spawn(datoms_server::serve(listener, app, None, futures_pending()));
    Ok(address)
}

/// A future that never completes (the server runs until the process ends).
async fn futures_pending() {
    std::future::pending::<()>().await;
}

fn transact(db: &Db, tx: &GenTx) -> Result<Db, BenchError> {
    Ok(db.with(&tx.to_tx_ops())?.db_after)
}

/// Runs the restores and the throughput rows.
///
/// # Errors
/// A failing transaction, store, restore or request; a replica whose roots differ
/// from the head's.
pub async fn run_http(c: &HttpConfig) -> Result<HttpReport, BenchError> {
    let storage = Arc::new(MemoryStorage::new());
    let server = start_server(storage.clone()).await?;
    let proxy = latency_proxy(server, c.latency / 2).await?;

    // The primary: a base db, then commits of `delta` datoms, each stored.
    let mut gen = Generator::new(c.seed);
    let mut primary = Db::new(schema()?);
    for tx in gen.base(c.datoms, c.batch) {
        primary = transact(&primary, &tx)?;
    }
    primary = store(&primary, &*storage, "main").await?.db;
    let mut history = vec![primary.clone()];
    let most_behind = c.behind.iter().copied().max().unwrap_or(0);
    for _ in 0..most_behind {
        primary = transact(&primary, &gen.delta(c.delta))?;
        primary = store(&primary, &*storage, "main").await?.db;
        history.push(primary.clone());
    }
    let head_roots = primary.root_addresses();
    let mut problems = Vec::new();

    let mut restores = Vec::new();
    // The second new replica finds the head's full bundle ready on the server; each
    // incremental one asks for a `have` the server has not prepared yet.
    let mut replicas: Vec<(String, Db)> = vec![
        ("new replica".into(), Db::new(schema()?)),
        ("new replica, again".into(), Db::new(schema()?)),
    ];
    for k in &c.behind {
        replicas.push((
            format!("{k} commits behind"),
            history[history.len() - 1 - k].clone(),
        ));
    }
    for (replica, db1) in &replicas {
        for (api, smart) in [("sync", true), ("blobs", false)] {
            let mut options = HttpOptions::new(&format!("http://{proxy}"))?.with_token(TOKEN);
            options.smart_sync = smart;
            let client = HttpStorage::connect(options).await?;
            let before = client.requests_sent();
            let start = Instant::now();
            let r = restore_from(db1, &client, "main").await?;
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            if r.db.root_addresses() != head_roots {
                return Err(BenchError::Inconsistent(format!(
                    "{replica} over {api}: the restored roots are not the head's"
                )));
            }
            let requests = client.requests_sent() - before;
            if smart && requests != 1 {
                problems.push(format!(
                    "{replica}: smart sync took {requests} requests, not 1"
                ));
            }
            restores.push(RestoreRow {
                replica: replica.clone(),
                api,
                requests,
                bytes: r.stats.bytes_fetched,
                blobs: r.stats.nodes_fetched + r.stats.commits_fetched,
                ms,
            });
        }
    }

    // Throughput: GETs of stored blobs, straight to the server.
    let mut addresses: Vec<Address> = Vec::new();
    let mut after = None;
    loop {
        let page = storage.list_blobs(after, 4096).await?;
        let Some(last) = page.last() else { break };
        after = Some(*last);
        addresses.extend(page);
    }
    let addresses = Arc::new(addresses);
    let mut throughput = Vec::new();
    for &n in &c.clients {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let addresses = addresses.clone();
                let gets = c.gets_per_client;
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut bytes = 0u64;
                    for j in 0..gets {
                        let a = addresses[(i * 7919 + j * 104_729) % addresses.len()];
                        let body = http
                            .get(format!("http://{server}/blobs/{a}"))
                            .bearer_auth(TOKEN)
                            .send()
                            .await?
                            .error_for_status()?
                            .bytes()
                            .await?;
                        bytes += body.len() as u64;
                    }
                    Ok::<u64, reqwest::Error>(bytes)
                })
            })
            .collect();
        let mut bytes = 0;
        for t in tasks {
            bytes += t
                .await
                .map_err(|e| BenchError::Inconsistent(format!("a client task failed: {e}")))?
                .map_err(|e| BenchError::Inconsistent(format!("a blob GET failed: {e}")))?;
        }
        throughput.push(ThroughputRow {
            clients: n,
            requests: (n * c.gets_per_client) as u64,
            bytes,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    Ok(HttpReport {
        restores,
        throughput,
        datoms: c.datoms,
        stored_blobs: addresses.len(),
        problems,
    })
}

impl HttpReport {
    /// The report as markdown.
    pub fn to_markdown(&self, c: &HttpConfig, command: &str) -> String {
        let mut out = format!(
            "## Serving over HTTP\n\n`{command}`\n\n{} datoms, {} blobs stored; restores through a proxy adding {} ms per round trip.\n\n| replica | API | requests | blobs | blob bytes | ms |\n|---|---|---|---|---|---|\n",
            self.datoms,
            self.stored_blobs,
            c.latency.as_millis()
        );
        for r in &self.restores {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.1} |\n",
                r.replica, r.api, r.requests, r.blobs, r.bytes, r.ms
            ));
        }
        out.push_str("\n| clients | GETs | GET/s | MB/s |\n|---|---|---|---|\n");
        for t in &self.throughput {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.1} |\n",
                t.clients,
                t.requests,
                t.requests as f64 / t.seconds,
                t.bytes as f64 / t.seconds / 1e6
            ));
        }
        out
    }
}
