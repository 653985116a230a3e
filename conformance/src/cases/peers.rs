//! Many writers on one head: peers that transact locally and push through faults.
//!
//! Every case checks, on every backend, the invariants of [`crate::exactly_once`]: every
//! acknowledged transaction is in the final db exactly once or was reported rejected,
//! and the final db equals a serial replay of the landed ones in commit order.
//!
//! Sizes: [`writers_and_txs`] — 8 writers × 25 transactions in CI,
//! `DATOMS_PEER_TXS=200` for the full size.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datoms_core::tx::TxOp;
use datoms_core::{Db, Schema, Value};
use datoms_storage::{
    restore_from, FailOn, FaultyStorage, MemoryOutbox, Outbox, Peer, PeerOptions, Storage,
};

use crate::exactly_once::{self, id_of, Ledger};
use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::support::HEAD;

/// The environment variable giving the transactions per writer (default 25).
pub const TXS_VAR: &str = "DATOMS_PEER_TXS";

/// (writers, transactions per writer) of the multi-writer case.
pub fn writers_and_txs() -> (usize, usize) {
    let txs = std::env::var(TXS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    (8, txs)
}

/// The schema of the peer cases.
pub fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:person/email {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :person/name {:db/valueType :db.type/string}
          :person/visits {:db/valueType :db.type/long}
          :note/writer {:db/valueType :db.type/long}
          :note/n {:db/valueType :db.type/long}
          :counter/value {:db/valueType :db.type/long}}",
    )
    .unwrap_or_default()
}

pub(crate) fn parse(text: &str) -> Result<Vec<TxOp>, Failure> {
    Ok(datoms_core::parse_tx(text, &schema())?)
}

pub(crate) fn options() -> PeerOptions {
    PeerOptions {
        schema: schema(),
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(50),
        ..PeerOptions::default()
    }
}

/// The first transaction of the multi-writer tests: the shared counter, entity 1.
pub(crate) const COUNTER_TX: &str = "[{:db/id \"c\" :counter/value 0}]";

/// Writer `w`'s transaction `n` of the multi-writer tests, drawn from `rng`: a `:db/cas`
/// of the shared counter from its value in `peer`'s local db (it loses races: some are
/// rejected), an upsert of one of five people by email, or a new note.
///
/// # Errors
/// The counter is not a long, or the local db cannot be read.
pub(crate) fn random_tx(
    peer: &Peer,
    rng: &mut fastrand::Rng,
    w: usize,
    n: usize,
) -> Result<String, Failure> {
    Ok(match rng.u32(0..10) {
        0 | 1 => {
            let c = peer
                .db()
                .entity_attr(1, &":counter/value".into())?
                .first()
                .map(|d| d.v.clone())
                .unwrap_or(Value::Long(0));
            let Value::Long(c) = c else {
                return Err(Failure::new("the counter is not a long"));
            };
            format!("[[:db/cas 1 :counter/value {c} {}]]", c + 1)
        }
        2 | 3 => format!(
            "[{{:person/email \"p{}@x\" :person/visits {n} :person/name \"w{w}\"}}]",
            rng.u32(0..5)
        ),
        _ => format!("[{{:note/writer {w} :note/n {n}}}]"),
    })
}

/// 8 peers × N transactions on one head, each over its own faults (latency, transient
/// failures, lost CAS replies), pushing at random moments: every acknowledged
/// transaction lands exactly once or is reported rejected (a `:db/cas` on a shared
/// counter loses races), and the head equals a serial replay of what landed.
pub async fn concurrent_peers_land_every_acknowledged_transaction_exactly_once<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let store: Arc<dyn Storage> = Arc::new(factory.create().await.context("creating a store")?);
    let (writers, txs) = writers_and_txs();
    {
        let first = Peer::open(
            store.clone(),
            HEAD,
            Outbox::memory(&MemoryOutbox::new()).context("an outbox")?,
            options(),
        )
        .await
        .context("opening the first peer")?;
        first.transact(&parse(COUNTER_TX)?).context("the counter")?;
        first.push().await.context("storing the counter")?;
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let faulty = Arc::new(FaultyStorage::new(store));
            faulty.faults().set_transient_failures(20_000);
            let mut rng = fastrand::Rng::with_seed(0x9EE5 + w as u64);
            let s: Arc<dyn Storage> = faulty.clone();
            let peer = Peer::open(
                s,
                HEAD,
                Outbox::memory(&MemoryOutbox::new()).context("an outbox")?,
                options(),
            )
            .await
            .context(format_args!("opening writer {w}"))?;
            // The first commit holds the counter and the peer's first landing, but the
            // ledger of the others starts empty: record the counter's transaction.
            for n in 0..txs {
                let text = random_tx(&peer, &mut rng, w, n)?;
                let ops = parse(&text)?;
                let report = peer
                    .transact(&ops)
                    .context(format_args!("writer {w} transaction {n}"))?;
                let id = id_of(&report)?;
                ledger
                    .lock()
                    .map_err(|_| Failure::new("ledger"))?
                    .acknowledge(id, ops);
                if rng.u32(0..4) == 0 {
                    faulty
                        .faults()
                        .set_latency(Duration::from_micros(rng.u64(0..1500)));
                    if rng.u32(0..4) == 0 {
                        faulty.faults().lose_next_cas_reply();
                    }
                    let r = peer.push_until_landed().await.context("a push")?;
                    ledger
                        .lock()
                        .map_err(|_| Failure::new("ledger"))?
                        .reject(&r.rejected);
                }
            }
            let r = peer.push_until_landed().await.context("the last push")?;
            ledger
                .lock()
                .map_err(|_| Failure::new("ledger"))?
                .reject(&r.rejected);
            ensure!(peer.pending().is_empty(), "writer {w} has pending work");
            Ok::<_, Failure>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut ledger = Arc::try_unwrap(ledger)
        .map_err(|_| Failure::new("ledger still shared"))?
        .into_inner()
        .map_err(|_| Failure::new("ledger"))?;
    // The counter's transaction came from a peer outside the ledger: add it.
    let first_commit = exactly_once::commits(&*store, HEAD).await?;
    if let Some((_, c)) = first_commit.first() {
        for e in c.log_entries()? {
            if let Some(id) = e.id {
                ledger.acknowledged.entry(id).or_insert(parse(COUNTER_TX)?);
            }
        }
    }
    exactly_once::check(&*store, HEAD, &schema(), &ledger).await?;
    Ok(())
}

/// Peers A and B start from one commit. A transacts with no storage reachable, is
/// dropped and reopened in the middle (its outbox surviving), while B pushes as many;
/// A reconnects: everything lands, A's upserts by unique identity merge into B's
/// entities (one entity per email), and A's `:db/cas` that B's write made stale is
/// reported, the others landing.
pub async fn an_offline_peer_reconnects_and_lands_everything_once<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let store: Arc<dyn Storage> = Arc::new(factory.create().await.context("creating a store")?);
    let half = 25;
    let shared = MemoryOutbox::new();
    let faulty = Arc::new(FaultyStorage::new(store.clone()));
    let a_storage: Arc<dyn Storage> = faulty.clone();
    let a = Peer::open(
        a_storage.clone(),
        HEAD,
        Outbox::memory(&shared).context("A's outbox")?,
        options(),
    )
    .await
    .context("opening A")?;
    a.transact(&parse("[{:db/id \"c\" :counter/value 0}]")?)?;
    a.push().await.context("the first commit")?;
    let b = Peer::open(
        store.clone(),
        HEAD,
        Outbox::memory(&MemoryOutbox::new()).context("B's outbox")?,
        options(),
    )
    .await
    .context("opening B")?;
    // A goes offline.
    faulty.faults().fail_after(0, FailOn::Any);
    let a_tx = |n: usize| -> String {
        match n {
            0 => "[[:db/cas 1 :counter/value 0 1]]".to_owned(),
            n if n % 2 == 0 => format!("[{{:person/email \"p{n}@x\" :person/visits {n}}}]"),
            n => format!("[{{:note/writer 0 :note/n {n}}}]"),
        }
    };
    let mut a_ids = Vec::new();
    for n in 0..half {
        a_ids.push(id_of(&a.transact(&parse(&a_tx(n))?)?)?);
    }
    ensure!(
        a.push().await.is_err(),
        "A pushed with no storage reachable"
    );
    // A's process dies; it restarts offline on what it had.
    let base = a.base_db();
    drop(a);
    let a = Peer::open_at(
        a_storage,
        HEAD,
        Outbox::memory(&shared).context("A's outbox after the restart")?,
        base,
        options(),
    )
    .context("reopening A offline")?;
    ensure_eq!(
        a.pending().len(),
        half,
        "A's pending transactions after the restart"
    );
    for n in half..2 * half {
        a_ids.push(id_of(&a.transact(&parse(&a_tx(n))?)?)?);
    }
    // B lands as many, creating the entities A upserts and moving the counter.
    b.transact(&parse("[[:db/cas 1 :counter/value 0 7]]")?)?;
    for n in 1..2 * half {
        b.transact(&parse(&format!(
            "[{{:person/email \"p{n}@x\" :person/name \"B{n}\"}}]"
        ))?)?;
    }
    b.push().await.context("B's push")?;
    // A reconnects.
    faulty.faults().heal();
    let report = a.push().await.context("A's push after reconnecting")?;
    ensure_eq!(
        report.rejected.len(),
        1,
        "A's rejections: {:?}",
        report.rejected
    );
    ensure_eq!(report.rejected[0].id, a_ids[0], "the rejected transaction");
    ensure!(
        matches!(
            report.rejected[0].error,
            Some(datoms_core::Error::CasMismatch { .. })
        ),
        "the rejection's error: {:?}",
        report.rejected[0].error
    );
    ensure_eq!(report.landed.len(), 2 * half - 1, "A's landed transactions");
    let head = restore_from(&Db::new(schema()), &*store, HEAD)
        .await
        .context("restoring the head")?
        .db;
    for n in (2..2 * half).step_by(2) {
        let email = Value::from(format!("p{n}@x").as_str());
        let e = head
            .lookup_ref(&":person/email".into(), &email)?
            .ok_or_else(|| Failure::new(format_args!("no entity for p{n}@x")))?;
        let datoms: BTreeMap<String, Value> = head
            .entity_datoms(e)?
            .into_iter()
            .map(|d| (d.a.to_string(), d.v))
            .collect();
        ensure_eq!(
            datoms.get(":person/visits"),
            Some(&Value::Long(n as i64)),
            "A's upsert of p{n}@x merged into B's entity"
        );
        ensure_eq!(
            datoms.get(":person/name"),
            Some(&Value::from(format!("B{n}").as_str())),
            "B's name on p{n}@x"
        );
    }
    let notes = head
        .datoms(
            datoms_core::IndexKind::Aevt,
            &[datoms_core::Component::A(":note/n".into())],
        )?
        .count();
    ensure_eq!(notes, half, "A's notes, each once");
    ensure_eq!(
        head.entity_attr(1, &":counter/value".into())?
            .first()
            .map(|d| d.v.clone()),
        Some(Value::Long(7)),
        "B's counter"
    );
    ensure_eq!(
        a.db().root_addresses(),
        head.root_addresses(),
        "A's db after landing"
    );
    Ok(())
}
