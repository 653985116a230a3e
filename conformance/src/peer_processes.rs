//! Writers in separate OS processes on one head: for backends that several processes can
//! reach at once (S3; redb and RocksDB lock their files to one process).
//!
//! The parent stores the first commit (a shared counter), then starts [`WRITERS`] child
//! processes (the test binary, re-run on one ignored test, see [`crate::child`]) at once.
//! Each opens a [`Peer`] with a file outbox of its own on the backend behind
//! [`FaultyStorage`] (transient failures, random latency, now and then a lost CAS
//! reply), makes N transactions drawn as the in-process multi-writer case draws them (a
//! `:db/cas` of the counter that loses races, upserts by a unique identity, new notes)
//! with random delays, pushes at random moments, and prints every acknowledgement (`acked
//! <id> <edn>`) and every rejection it was told of (`rejected <id>`). When all have
//! finished, the parent checks the head against what they printed with
//! [`crate::exactly_once::check`]: every acknowledged transaction landed exactly once or
//! was reported rejected, and the head equals a serial replay of the landed ones in
//! commit order.
//!
//! Use it with [`crate::peer_processes_test!`]. Transactions per writer:
//! `DATOMS_PEER_PROCESS_TXS` (default [`DEFAULT_TXS`]).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datoms_core::TxId;
use datoms_storage::{FaultyStorage, MemoryOutbox, Outbox, Peer, Storage};

use crate::cases::peers::{options, parse, random_tx, schema, COUNTER_TX};
use crate::child;
use crate::exactly_once::{self, id_of, Ledger};
use crate::failure::{Context, Failure};

/// The environment variable that puts the test binary in child mode:
/// `writer\ttransactions\toutbox path\tlocation`.
pub const CHILD_ENV: &str = "DATOMS_PEER_PROCESSES_CHILD";

/// The environment variable giving the transactions per writer.
pub const TXS_VAR: &str = "DATOMS_PEER_PROCESS_TXS";

/// Transactions per writer at CI size.
pub const DEFAULT_TXS: usize = 25;

/// Writer processes.
pub const WRITERS: usize = 4;

/// The head the writers share.
pub const HEAD: &str = "main";

/// What a child reports on stderr when it fails on its own.
const CHILD_FAILED: &str = "peer process child failed";

/// A transaction id from its 32 hex digits.
fn parse_id(hex: &str) -> Option<TxId> {
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(TxId(id))
}

/// Child mode: if [`CHILD_ENV`] is set, write as the module docs say and exit; returns
/// at once when it is not set. `open` connects to the storage at a location the parent's
/// `location` made.
pub fn child_main<F, Fut>(open: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Arc<dyn Storage>>,
{
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = child::child_runtime(CHILD_FAILED);
    let result = runtime.block_on(async {
        let mut parts = spec.splitn(4, '\t');
        let (Some(w), Some(txs), Some(outbox), Some(location)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Failure::new(format_args!("bad {CHILD_ENV}: {spec:?}")));
        };
        let w: usize = w.parse().map_err(|_| Failure::new("bad writer number"))?;
        let txs: usize = txs
            .parse()
            .map_err(|_| Failure::new("bad transaction count"))?;
        write(open(location.to_owned()).await, w, txs, Path::new(outbox)).await
    });
    if let Err(e) = result {
        eprintln!("{CHILD_FAILED}: {e}");
        std::process::exit(3);
    }
}

async fn write(
    storage: Arc<dyn Storage>,
    w: usize,
    txs: usize,
    outbox: &Path,
) -> Result<(), Failure> {
    let faulty = Arc::new(FaultyStorage::new(storage));
    faulty.faults().set_transient_failures(20_000);
    let s: Arc<dyn Storage> = faulty.clone();
    let peer = Peer::open(s, HEAD, Outbox::open(outbox)?, options())
        .await
        .context(format_args!("opening writer {w}"))?;
    let mut rng = fastrand::Rng::new();
    let report_rejections = |r: &datoms_storage::PushReport| {
        for rejection in &r.rejected {
            println!("rejected {}", rejection.id);
        }
    };
    for n in 0..txs {
        let text = random_tx(&peer, &mut rng, w, n)?;
        let report = peer
            .transact(&parse(&text)?)
            .context(format_args!("writer {w} transaction {n}"))?;
        println!("acked {} {text}", id_of(&report)?);
        tokio::time::sleep(Duration::from_micros(rng.u64(0..3000))).await;
        if rng.u32(0..3) == 0 {
            faulty
                .faults()
                .set_latency(Duration::from_micros(rng.u64(0..1500)));
            if rng.u32(0..4) == 0 {
                faulty.faults().lose_next_cas_reply();
            }
            report_rejections(&peer.push_until_landed().await.context("a push")?);
        }
    }
    report_rejections(&peer.push_until_landed().await.context("the last push")?);
    if !peer.pending().is_empty() {
        return Err(Failure::new(format_args!("writer {w} has pending work")));
    }
    println!("done");
    Ok(())
}

/// Parent mode: makes a location with `location`, stores the counter there, runs the
/// writer processes (this test binary, running only the ignored test `child_test`) and
/// checks the head (see the module docs).
///
/// # Panics
/// When a check fails — this is a test harness; the message says which.
pub fn run_parent<F, Fut>(child_test: &str, location: &str, txs: usize, open: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Arc<dyn Storage>>,
{
    let runtime = child::runtime();
    let dir = tempfile::tempdir().expect("a temp dir for the outboxes");
    let storage = runtime.block_on(open(location.to_owned()));
    let mut ledger = Ledger::default();
    runtime
        .block_on(async {
            let first = Peer::open(
                storage.clone(),
                HEAD,
                Outbox::memory(&MemoryOutbox::new())?,
                options(),
            )
            .await?;
            let ops = parse(COUNTER_TX)?;
            let id = id_of(&first.transact(&ops)?)?;
            first.push().await?;
            ledger.acknowledge(id, ops);
            Ok::<_, Failure>(())
        })
        .unwrap_or_else(|e| panic!("storing the counter: {e}"));
    let writers: Vec<child::Running> = (0..WRITERS)
        .map(|w| {
            let outbox = dir.path().join(format!("writer-{w}.outbox"));
            let spec = format!("{w}\t{txs}\t{}\t{location}", outbox.display());
            child::Running::start(child::command(child_test, CHILD_ENV, spec))
        })
        .collect();
    for (w, running) in writers.into_iter().enumerate() {
        let out = running.wait();
        let failure = out.failure(CHILD_FAILED);
        assert!(
            out.status.success() && failure.is_none() && out.reports("done").next().is_some(),
            "writer {w} failed ({}): {}",
            out.status,
            failure.map_or_else(|| out.stderr.join("\n"), str::to_owned)
        );
        let mut acked = 0;
        for line in out.reports("acked ") {
            let (id, text) = line.split_once(' ').unwrap_or((line, ""));
            let id = parse_id(id).unwrap_or_else(|| panic!("writer {w}: bad line {line:?}"));
            let ops = parse(text).unwrap_or_else(|e| panic!("writer {w}: {line:?}: {e}"));
            ledger.acknowledge(id, ops);
            acked += 1;
        }
        assert_eq!(acked, txs, "writer {w}'s acknowledgements");
        for line in out.reports("rejected ") {
            ledger
                .rejected
                .push(parse_id(line).unwrap_or_else(|| panic!("writer {w}: bad line {line:?}")));
        }
    }
    let landed = runtime
        .block_on(exactly_once::check(&*storage, HEAD, &schema(), &ledger))
        .unwrap_or_else(|e| panic!("after {WRITERS} writer processes: {e}"));
    assert!(
        landed.len() > txs,
        "the writers landed only {} transactions",
        landed.len()
    );
}

/// Generates the multi-process writers test for a backend several processes can reach
/// (see [`crate::peer_processes`]). `$location` is an expression of type `Fn() -> String`
/// that makes a fresh place in the backend and names it (in the parent); `$open`, of type
/// `Fn(String) -> impl Future<Output = Arc<dyn Storage>>`, connects to a named place (in
/// the parent and in every writer).
#[macro_export]
macro_rules! peer_processes_test {
    ($location:expr, $open:expr) => {
        #[test]
        #[ignore = "a writer process of the multi-process peers test, run by it"]
        fn peer_process_child() {
            $crate::peer_processes::child_main($open);
        }

        #[test]
        fn writer_processes_land_every_acknowledged_transaction_exactly_once() {
            let txs = std::env::var($crate::peer_processes::TXS_VAR)
                .ok()
                .and_then(|k| k.parse().ok())
                .unwrap_or($crate::peer_processes::DEFAULT_TXS);
            let location = ($location)();
            $crate::peer_processes::run_parent("peer_process_child", &location, txs, $open);
        }
    };
}
