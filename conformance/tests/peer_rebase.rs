//! Property: whatever the interleaving of two or three peers' transactions, pushes
//! (some losing their CAS reply) and pulls on one head of `MemoryStorage`, rebasing
//! lands every acknowledged transaction exactly once or reports it rejected, and the head
//! equals a serial replay of the landed transactions in commit order (same roots); every
//! peer that pulled at the end holds the head.
//!
//! The transactions mix tempids (two new entities, one referring to the other), upserts by
//! a unique identity attribute, retractions through lookup refs, `:db/retractEntity` and
//! `:db/cas` on a shared counter, each built from the peer's local db when it is made, so
//! that a rebase meets a state the writer did not see.

use std::sync::Arc;

use conformance::exactly_once::{self, id_of, Ledger};
use conformance::Failure;
use datoms_core::{Db, Schema, Value};
use datoms_storage::{
    FaultyStorage, MemoryOutbox, MemoryStorage, Outbox, Peer, PeerOptions, Storage as _,
};
use proptest::prelude::*;

const HEAD: &str = "main";

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:person/email {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :person/name {:db/valueType :db.type/string}
          :person/visits {:db/valueType :db.type/long}
          :person/friend {:db/valueType :db.type/ref}
          :counter/value {:db/valueType :db.type/long}}",
    )
    .unwrap_or_default()
}

fn options() -> PeerOptions {
    PeerOptions {
        schema: schema(),
        first_backoff: std::time::Duration::from_micros(100),
        max_backoff: std::time::Duration::from_millis(2),
        ..PeerOptions::default()
    }
}

/// What a transaction does; its exact text is built from the local db when it is made.
#[derive(Clone, Debug)]
enum Kind {
    /// Two new entities by tempid, the second naming the first.
    Tempids(u8),
    /// An upsert of person `p` by email.
    Upsert { p: u8, visits: i64 },
    /// A retraction of person `p`'s visits, at the value the local db shows.
    RetractVisits(u8),
    /// `:db/retractEntity` of person `p`.
    RetractEntity(u8),
    /// A `:db/cas` of the counter from its local value.
    Cas,
}

#[derive(Clone, Debug)]
enum Action {
    Transact(usize, Kind),
    Push { peer: usize, lose_reply: bool },
    Pull(usize),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        any::<u8>().prop_map(Kind::Tempids),
        (0u8..4, 0i64..100).prop_map(|(p, visits)| Kind::Upsert { p, visits }),
        (0u8..4).prop_map(Kind::RetractVisits),
        (0u8..4).prop_map(Kind::RetractEntity),
        Just(Kind::Cas),
    ]
}

fn actions(peers: usize) -> impl Strategy<Value = Vec<Action>> {
    let action = prop_oneof![
        5 => (0..peers, kind()).prop_map(|(p, k)| Action::Transact(p, k)),
        2 => (0..peers, any::<bool>()).prop_map(|(peer, lose)| Action::Push {
            peer,
            lose_reply: lose,
        }),
        1 => (0..peers).prop_map(Action::Pull),
    ];
    proptest::collection::vec(action, 1..40)
}

/// The local value of `attr` on entity `e`, if any.
fn value(db: &Db, e: u64, attr: &str) -> Result<Option<Value>, Failure> {
    Ok(db
        .entity_attr(e, &attr.into())?
        .first()
        .map(|d| d.v.clone()))
}

/// The text of a transaction of `kind` on `db`; `None` when it cannot be written there
/// (a retraction of what the db does not hold).
fn text(db: &Db, kind: &Kind) -> Result<Option<String>, Failure> {
    let email = |p: &u8| format!("\"p{p}@x\"");
    let person = |p: &u8| -> Result<Option<u64>, Failure> {
        Ok(db.lookup_ref(
            &":person/email".into(),
            &Value::from(format!("p{p}@x").as_str()),
        )?)
    };
    Ok(match kind {
        Kind::Tempids(n) => Some(format!(
            "[{{:db/id \"a\" :person/name \"a{n}\"}} {{:db/id \"b\" :person/name \"b{n}\" :person/friend \"a\"}}]"
        )),
        Kind::Upsert { p, visits } => Some(format!(
            "[{{:person/email {} :person/visits {visits}}}]",
            email(p)
        )),
        Kind::RetractVisits(p) => match person(p)? {
            Some(e) => value(db, e, ":person/visits")?.map(|v| {
                format!(
                    "[[:db/retract [:person/email {}] :person/visits {v}]]",
                    email(p)
                )
            }),
            None => None,
        },
        Kind::RetractEntity(p) => person(p)?.map(|_| {
            format!("[[:db/retractEntity [:person/email {}]]]", email(p))
        }),
        Kind::Cas => match value(db, 1, ":counter/value")? {
            Some(Value::Long(c)) => Some(format!("[[:db/cas 1 :counter/value {c} {}]]", c + 1)),
            _ => None,
        },
    })
}

async fn run(peers: usize, actions: Vec<Action>) -> Result<(), Failure> {
    let storage = Arc::new(MemoryStorage::new());
    let mut ledger = Ledger::default();
    {
        let first = Peer::open(
            storage.clone(),
            HEAD,
            Outbox::memory(&MemoryOutbox::new())?,
            options(),
        )
        .await?;
        let ops = datoms_core::parse_tx("[{:db/id \"c\" :counter/value 0}]", &schema())?;
        ledger.acknowledge(id_of(&first.transact(&ops)?)?, ops);
        first.push().await?;
    }
    let mut writers = Vec::new();
    for _ in 0..peers {
        let faulty = Arc::new(FaultyStorage::new(storage.clone()));
        let peer = Peer::open(
            faulty.clone(),
            HEAD,
            Outbox::memory(&MemoryOutbox::new())?,
            options(),
        )
        .await?;
        writers.push((faulty, peer));
    }
    for action in actions {
        match action {
            Action::Transact(p, kind) => {
                let peer = &writers[p].1;
                let Some(text) = text(&peer.db(), &kind)? else {
                    continue;
                };
                let ops = datoms_core::parse_tx(&text, &schema())?;
                // A transaction invalid on the local db is refused and never acknowledged.
                if let Ok(report) = peer.transact(&ops) {
                    ledger.acknowledge(id_of(&report)?, ops);
                }
            }
            Action::Push { peer, lose_reply } => {
                let (faulty, peer) = &writers[peer];
                if lose_reply {
                    faulty.faults().lose_next_cas_reply();
                }
                ledger.reject(&peer.push_until_landed().await?.rejected);
            }
            Action::Pull(p) => {
                ledger.reject(&writers[p].1.pull().await?.rejected);
            }
        }
    }
    for (_, peer) in &writers {
        ledger.reject(&peer.push_until_landed().await?.rejected);
    }
    exactly_once::check(&*storage, HEAD, &schema(), &ledger).await?;
    let head = storage
        .get_head(HEAD)
        .await?
        .ok_or_else(|| Failure::new("no head"))?;
    for (i, (_, peer)) in writers.iter().enumerate() {
        peer.pull().await?;
        let db = peer.db();
        if db.base_commit() != Some(head.commit) || db.pending_txs() != 0 {
            return Err(Failure::new(format_args!(
                "peer {i} after its pull is not at the head"
            )));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rebase_equals_a_serial_replay_of_the_landed_transactions(
        (peers, actions) in (2usize..=3).prop_flat_map(|n| (Just(n), actions(n)))
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime
            .block_on(run(peers, actions))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}
