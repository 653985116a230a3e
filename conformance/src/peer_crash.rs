//! kill -9 of a pushing peer, at random moments, many times: after every restart nothing
//! acknowledged is lost and nothing is applied twice.
//!
//! A child process (the test binary, re-run on one ignored test, see [`crate::child`])
//! opens a [`Peer`] on the backend's storage with a file [`Outbox`] in the same directory,
//! and transacts and pushes in a loop: transaction `s` (the `s`-th the outbox ever
//! acknowledged, `s` from its id) is [`tx_ops`]`(s)`, a `:db/cas` of a counter from `s`
//! to `s + 1`, a new note, an upsert by a unique identity and now and then a
//! retraction. The cas chain makes any loss or repeat visible: a lost transaction makes
//! every later cas fail, one applied twice fails its own. The child prints `acked s`
//! after each acknowledgement and `pushing` / `pushed` around each push; at start it
//! prints what its restart found (`opened next=… counter=… pending=…`).
//!
//! The parent kills it with SIGKILL after a random delay, so kills land in every phase:
//! an outbox append, a node write, the head CAS, the outbox record after the CAS. After
//! each kill it checks:
//! - the restarted child's local db holds every acknowledged transaction exactly once:
//!   the next id is past every `acked` printed, and the counter equals it;
//! - the head's commits hold transactions `0, 1, 2, …` in order, each once;
//! - the head names a complete commit: [`verify()`](datoms_storage::verify()) passes;
//!
//! and at the end it lands what is pending in-process and checks the head against a serial
//! replay ([`crate::exactly_once::check`]).
//!
//! Use it with [`crate::peer_crash_test!`], like [`crate::crash_test!`]. Kills:
//! `DATOMS_KILLS` (default [`DEFAULT_KILLS`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datoms_core::tx::TxOp;
use datoms_core::{Address, Commit, Schema, TxId, Value};
use datoms_storage::{verify, Outbox, Peer, PeerOptions, Storage};

use crate::child;
use crate::exactly_once::{self, Ledger};
use crate::failure::Failure;

/// The environment variable that puts the test binary in child mode; its value is the
/// directory of the storage and the outbox.
pub const CHILD_ENV: &str = "DATOMS_PEER_CRASH_CHILD";

/// The environment variable giving the number of kills.
pub const KILLS_VAR: &str = "DATOMS_KILLS";

/// Kills at CI size.
pub const DEFAULT_KILLS: usize = 100;

/// The head the test writes.
pub const HEAD: &str = "peers";

/// The outbox file's name in the test's directory.
pub const OUTBOX_FILE: &str = "peer.outbox";

/// What a child reports on stderr when it fails on its own.
const CHILD_FAILED: &str = "peer crash child failed";

/// The schema of the test's transactions.
pub fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:counter/value {:db/valueType :db.type/long}
          :note/n {:db/valueType :db.type/long :db/unique :db.unique/identity}
          :person/email {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :person/visits {:db/valueType :db.type/long}}",
    )
    .unwrap_or_default()
}

/// The EDN of transaction `s` (see the module docs). Transaction 0 makes the counter
/// (entity 1, the first one made).
pub fn tx_text(s: u64) -> String {
    if s == 0 {
        return "[{:db/id \"counter\" :counter/value 1}]".to_owned();
    }
    let mut t = format!(
        "[[:db/cas 1 :counter/value {s} {}] {{:note/n {s}}} \
         {{:person/email \"p{}@x\" :person/visits {s}}}",
        s + 1,
        s % 7
    );
    if s % 5 == 0 && s > 1 {
        // Retract what transaction s - 1 asserted.
        t.push_str(&format!(
            " [:db/retract [:person/email \"p{}@x\"] :person/visits {}]",
            (s - 1) % 7,
            s - 1
        ));
    }
    t.push(']');
    t
}

/// The ops of transaction `s`.
///
/// # Errors
/// A parse error (a bug in [`tx_text`]).
pub fn tx_ops(s: u64) -> Result<Vec<TxOp>, datoms_core::Error> {
    datoms_core::parse_tx(&tx_text(s), &schema())
}

fn options() -> PeerOptions {
    PeerOptions {
        schema: schema(),
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        ..PeerOptions::default()
    }
}

/// The sequence number of a peer's transaction id (its last 8 bytes).
pub fn seq(id: TxId) -> u64 {
    let mut s = [0u8; 8];
    s.copy_from_slice(&id.0[8..]);
    u64::from_be_bytes(s)
}

/// The id of transaction `s` of the outbox that gave out `id`.
pub fn with_seq(id: TxId, s: u64) -> TxId {
    let mut bytes = id.0;
    bytes[8..].copy_from_slice(&s.to_be_bytes());
    TxId(bytes)
}

/// The counter's value in `db`.
fn counter(db: &datoms_core::Db) -> Result<u64, Failure> {
    match db
        .entity_attr(1, &":counter/value".into())?
        .first()
        .map(|d| d.v.clone())
    {
        None => Ok(0),
        Some(Value::Long(n)) => Ok(n.unsigned_abs()),
        Some(other) => Err(Failure::new(format_args!("the counter is {other}"))),
    }
}

/// Child mode: if [`CHILD_ENV`] is set, open the peer and transact and push in a loop
/// until killed (see the module docs). Returns at once when the variable is not set.
pub fn child_main(open: impl Fn(&Path) -> Arc<dyn Storage>) {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = child::child_runtime(CHILD_FAILED);
    let dir = Path::new(&dir);
    let storage = open(dir);
    let result: Result<(), Failure> = runtime.block_on(async {
        let outbox = Outbox::open(dir.join(OUTBOX_FILE))?;
        let peer = Peer::open(storage, HEAD, outbox, options()).await?;
        // A transaction that landed before the kill and is run again on the head fails
        // its cas: a restart that rejects anything applied something twice.
        let rejected = peer.rejected();
        if !rejected.is_empty() {
            return Err(Failure::new(format_args!(
                "the restart rejected {} acknowledged transactions: {:?}",
                rejected.len(),
                rejected.first()
            )));
        }
        println!(
            "opened next={} counter={} pending={}",
            seq(peer.next_id()),
            counter(&peer.db())?,
            peer.pending().len()
        );
        let mut rng = fastrand::Rng::new();
        loop {
            let s = seq(peer.next_id());
            peer.transact(&tx_ops(s)?)?;
            println!("acked {s}");
            if rng.u32(0..3) == 0 {
                println!("pushing");
                let report = peer.push().await?;
                if !report.rejected.is_empty() {
                    return Err(Failure::new(format_args!(
                        "a push rejected {:?}",
                        report.rejected
                    )));
                }
                println!("pushed {}", report.landed.len());
            }
        }
    });
    if let Err(e) = result {
        eprintln!("{CHILD_FAILED}: {e}");
        std::process::exit(3);
    }
}

/// What one run of the test did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PeerCrashReport {
    /// Kills performed.
    pub kills: usize,
    /// Kills that hit a push (the child had printed `pushing` and not `pushed`).
    pub kills_in_push: usize,
    /// Restarts that found pending transactions in the outbox.
    pub restarts_with_pending: usize,
    /// Transactions acknowledged in all.
    pub acknowledged: u64,
    /// Transactions on the head at the end.
    pub landed: u64,
    /// Kills after which the head had moved and was verified complete.
    pub heads_verified: usize,
}

/// The commits from `head` back to `known` (excluded), newest first.
async fn new_commits(
    storage: &dyn Storage,
    head: Option<Address>,
    known: Option<Address>,
) -> Result<Vec<Commit>, Failure> {
    let mut out = Vec::new();
    let mut next = head;
    while let Some(a) = next.filter(|a| Some(*a) != known) {
        let bytes = storage
            .get_many(&[a])
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| Failure::new(format_args!("commit {a} is missing")))?;
        let c = Commit::decode(a, &bytes)?;
        next = c.parent;
        out.push(c);
    }
    Ok(out)
}

/// Parent mode: runs the child (this test binary, running only the ignored test
/// `child_test`) `kills` times in `dir`, killing it after a random delay, and checks
/// after every kill and at the end (see the module docs).
///
/// # Panics
/// When a check fails — this is a test harness; the message says which.
pub fn run_parent(
    child_test: &str,
    dir: &Path,
    kills: usize,
    seed: u64,
    open: impl Fn(&Path) -> Arc<dyn Storage>,
) -> PeerCrashReport {
    let runtime = child::runtime();
    let mut rng = seed | 1;
    let mut report = PeerCrashReport::default();
    // Every acknowledgement printed so far: 0..acked.
    let mut acked = 0u64;
    // The head's transactions so far, in commit order, and the last head checked.
    let mut landed: Vec<u64> = Vec::new();
    let mut known: Option<Address> = None;
    for round in 0..kills {
        // After the restart's report, so the kills land in transactions and pushes
        // however slow the start-up.
        let delay = Duration::from_millis(child::xorshift(&mut rng) % 260);
        let out = child::kill_after_marker(
            child::command(child_test, CHILD_ENV, dir),
            "opened ",
            delay,
            Duration::from_secs(120),
        );
        if let Some(e) = out.failure(CHILD_FAILED) {
            panic!(
                "round {round}: the child failed on its own ({}): {e}",
                out.status
            );
        }
        for line in out.reports("opened ") {
            let field = |name: &str| -> u64 {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("round {round}: no {name} in {line:?}"))
            };
            let (next, count, pending) = (field("next"), field("counter"), field("pending"));
            assert!(
                next >= acked,
                "round {round}: the restarted peer gives out id {next} again, but {acked} \
                 transactions were acknowledged: an acknowledged transaction was lost"
            );
            assert_eq!(
                count, next,
                "round {round}: the restarted peer's db holds the counter at {count}, but \
                 {next} transactions were acknowledged: one was lost or applied twice"
            );
            if pending > 0 {
                report.restarts_with_pending += 1;
            }
        }
        acked = out
            .reports("acked ")
            .filter_map(|s| s.parse::<u64>().ok())
            .map(|s| s + 1)
            .fold(acked, u64::max);
        let last = out
            .stdout
            .iter()
            .rev()
            .find(|l| l.contains("pushing") || l.contains("pushed"));
        if last.is_some_and(|l| l.contains("pushing")) {
            report.kills_in_push += 1;
        }

        let storage = open(dir);
        let head = runtime
            .block_on(storage.get_head(HEAD))
            .unwrap_or_else(|e| panic!("round {round}: reading the head: {e}"))
            .map(|h| h.commit);
        let commits = runtime
            .block_on(new_commits(&*storage, head, known))
            .unwrap_or_else(|e| panic!("round {round}: reading the new commits: {e}"));
        if let Some(head) = head.filter(|h| Some(*h) != known) {
            let verified = runtime
                .block_on(verify(&*storage, HEAD))
                .unwrap_or_else(|e| panic!("round {round}: verify of head {head} fails: {e}"));
            assert_eq!(
                verified.commit, head,
                "round {round}: verify read another head"
            );
            report.heads_verified += 1;
        }
        drop(storage);
        for c in commits.iter().rev() {
            let entries = c
                .log_entries()
                .unwrap_or_else(|e| panic!("round {round}: a commit's log: {e}"));
            for id in entries.iter().filter_map(|e| e.id) {
                let s = seq(id);
                assert_eq!(
                    s,
                    landed.len() as u64,
                    "round {round}: transaction {s} landed after {} others: one was lost \
                     or applied twice ({landed:?})",
                    landed.len()
                );
                landed.push(s);
            }
        }
        known = head;
        report.kills += 1;
        if report.kills % 100 == 0 {
            eprintln!("after {round} rounds: {report:?}");
        }
    }

    // Land what is pending, in this process, and check the whole head.
    let storage = open(dir);
    let final_check = runtime.block_on(async {
        let outbox = Outbox::open(dir.join(OUTBOX_FILE))?;
        let peer = Peer::open(storage.clone(), HEAD, outbox, options()).await?;
        let next = seq(peer.next_id());
        let pushed = peer.push_until_landed().await?;
        if !pushed.rejected.is_empty() {
            return Err(Failure::new(format_args!(
                "the last push rejected {:?}",
                pushed.rejected
            )));
        }
        if next < acked {
            return Err(Failure::new(format_args!(
                "{acked} acknowledged, but the outbox gives out id {next} again"
            )));
        }
        let mut ledger = Ledger::default();
        for s in 0..next {
            let id = with_seq(peer.next_id(), s);
            ledger.acknowledge(id, tx_ops(s)?);
        }
        let landed = exactly_once::check(&*storage, HEAD, &schema(), &ledger).await?;
        Ok::<_, Failure>((next, landed.len() as u64))
    });
    let (next, total) = final_check.unwrap_or_else(|e| panic!("after the last kill: {e}"));
    report.acknowledged = next;
    report.landed = total;
    report
}

/// Generates the kill -9 test of a pushing peer for a backend that keeps its data in a
/// directory (see [`crate::peer_crash`]). `$open` is an expression of type
/// `Fn(&Path) -> Arc<dyn Storage>`. The number of kills comes from `DATOMS_KILLS`
/// (default 100).
#[macro_export]
macro_rules! peer_crash_test {
    ($open:expr) => {
        #[test]
        #[ignore = "the child process of the kill -9 test of a pushing peer, run by it"]
        fn peer_crash_child() {
            $crate::peer_crash::child_main($open);
        }

        #[test]
        fn kill_9_of_a_pushing_peer_loses_nothing_acknowledged_and_applies_nothing_twice() {
            let dir = $crate::tempdir().expect("a temp dir");
            let kills = std::env::var($crate::peer_crash::KILLS_VAR)
                .ok()
                .and_then(|k| k.parse().ok())
                .unwrap_or($crate::peer_crash::DEFAULT_KILLS);
            let report = $crate::peer_crash::run_parent(
                "peer_crash_child",
                dir.path(),
                kills,
                0x9ee2_c0ffee,
                $open,
            );
            eprintln!("{report:?}");
            assert_eq!(report.kills, kills, "{report:?}");
            assert!(report.kills_in_push > 0, "no kill hit a push: {report:?}");
            assert!(
                report.landed == report.acknowledged && report.landed > 0,
                "every acknowledged transaction lands: {report:?}"
            );
        }
    };
}
