//! `datoms serve`: the storage at `--db` over HTTP (`datoms-server`), until Ctrl-C.
//! The first line on stdout says where it listens (`listening on http://ADDR`, or one
//! JSON object under `--json`), so a script that asked for port 0 learns the port.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use datoms_server::{Config, Tls};
use serde::Serialize;

use super::lock::{open_waiting, Access};
use super::output::Ctx;
use super::CliError;

/// Arguments of `datoms serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Routes: GET /blobs/{address}, POST /blobs:get, POST /blobs, GET/PUT \
/heads/{name} (PUT with If-Match or If-None-Match: *), GET /sync/{name}?have=COMMIT, GET \
/heads/{name}/watch, GET /watch, GET /capabilities. Writes need `Authorization: Bearer \
<token>` with the token of --token-file; without one the server takes no writes. Clients \
open it as http://ADDR (datoms::open, or --db http://ADDR), with DATOMS_TOKEN set to write."
)]
pub struct Args {
    /// Storage URL to serve, e.g. redb:./people.datoms.
    #[arg(long, value_name = "URL", env = "DATOMS_DB")]
    db: String,

    /// Address to listen on (port 0: any free port, printed on the first line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,

    /// A file holding the bearer token writes need (and reads, unless --public-reads).
    /// Without one, the server takes no writes and all reads are public.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Reads need no token.
    #[arg(long)]
    public_reads: bool,

    /// TLS certificate chain (PEM); with --tls-key, serve https.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// The largest request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().max_body_bytes)]
    max_body_bytes: usize,

    /// The most addresses or blobs in one batched request.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_batch)]
    max_batch: usize,

    /// How large a one-round-trip sync answer grows before it is cut, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().bundle.max_bytes)]
    max_sync_bytes: u64,

    /// How often a head watch reads the head, in milliseconds, for moves the server does
    /// not see itself (another process writing the same storage).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    watch_poll_ms: u64,

    /// How long to wait for a file another process holds, as for other commands.
    #[arg(long, value_name = "SECONDS", env = "DATOMS_LOCK_WAIT", default_value_t = super::lock::DEFAULT_LOCK_WAIT_SECONDS)]
    lock_wait: u64,

    /// Stop when standard input closes: a supervising process (a test harness) that
    /// ends, however it ends, takes the server with it.
    #[arg(long, hide = true)]
    stop_on_stdin_close: bool,
}

#[derive(Serialize)]
struct ListeningJson {
    listening: String,
}

/// Serves until interrupted.
///
/// # Errors
/// A storage that cannot be opened, an unreadable token file or TLS files, an address
/// that cannot be bound; interrupted is a clean stop, not an error.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::File {
                path: path.display().to_string(),
                source,
            })?;
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(CliError::Usage(format!(
                    "{}: the token file is empty",
                    path.display()
                )));
            }
            Some(token)
        }
        None => None,
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls { cert, key }),
        _ => None,
    };
    let storage = open_waiting(
        &args.db,
        Access::Write,
        Duration::from_secs(args.lock_wait),
        ctx,
    )
    .await?;
    let config = Config {
        token,
        public_reads: args.public_reads,
        max_body_bytes: args.max_body_bytes,
        max_batch: args.max_batch.max(1),
        bundle: datoms::storage::BundleLimits {
            max_bytes: args.max_sync_bytes,
        },
        watch_poll: Duration::from_millis(args.watch_poll_ms.max(10)),
        ..Config::default()
    };
    let app = datoms_server::router(storage, config)?;
    let listener = std::net::TcpListener::bind(&args.listen).map_err(|source| CliError::File {
        path: format!("listen address {}", args.listen),
        source,
    })?;
    let address = listener.local_addr().map_err(CliError::Output)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{address}");
    // One line, flushed at once: a supervisor reads it to learn the port.
    let line = if ctx.json {
        serde_json::to_string(&ListeningJson { listening: url })?
    } else {
        format!("listening on {url}")
    };
    ctx.print(&format!("{line}\n"))?;
    let stdin_watch = args.stop_on_stdin_close;
    let stop = async move {
        let closed = async {
            if stdin_watch {
                // Reads until EOF on a thread of its own; nothing is done with the bytes.
                let _ = tokio::task::spawn_blocking(|| {
                    let _ = std::io::stdin().read_to_end(&mut Vec::new());
                })
                .await;
            } else {
                futures::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = closed => {}
        }
    };
    datoms_server::serve(listener, app, tls, stop)
        .await
        .map_err(|source| CliError::File {
            path: format!("server on {address}"),
            source,
        })
}
