//! Live queries against a fresh query, after every change: random transaction streams
//! from the differential test's generator (upserts, retractions, `:db/cas`,
//! cardinality-many values, components, `retractEntity`) under random queries of every
//! shape it makes (joins, predicates, input functions, aggregates, `:with`, `:keys`,
//! scalars and collections, rules, `not`, `or`, `get-else`, pulls), on a [`Conn`], on a
//! peer across local transactions and rebases, and on a follower across followed
//! commits. After each change the live result equals the query run afresh, and the
//! diffs sent so far, applied in order, give the same rows.
//!
//! `LIVE_CASES` sets the number of random cases (default 24).

use std::sync::Arc;

use datoms_bench::diff::generator::{generate, Case, QueryCheck};
use datoms_bench::diff::input_fn;
use datoms_core::edn::parse_schema;
use datoms_core::live::{LiveInput, Watch};
use datoms_core::{Conn, Db, Query, QueryValue};
use datoms_storage::{
    FollowOptions, Follower, MemoryOutbox, MemoryStorage, Outbox, Peer, PeerOptions, Storage,
};
use proptest::prelude::*;

type Row = Vec<QueryValue>;

/// One live query under test and the rows its diffs add up to.
struct Live {
    query: String,
    inputs: Vec<LiveInput>,
    watch: Watch,
    rows: Vec<Row>,
}

fn inputs(q: &QueryCheck) -> Vec<LiveInput> {
    let mut out = vec![LiveInput::Db];
    for i in &q.inputs {
        out.push(match i.strip_prefix("#fn ") {
            Some(name) => LiveInput::Fn(input_fn(name).expect("known function")),
            None => LiveInput::Edn(i.clone()),
        });
    }
    out
}

/// Queries whose patterns the interest index narrows to a few entities, from a
/// constant through unique attributes and refs (forward and back), with an input.
const NARROWED: [(&str, &str); 9] = [
    ("[:find ?fn :where [?e :person/name \"Ann\"] [?e :person/friend ?f] [?f :person/name ?fn]]", ""),
    ("[:find ?x :where [?e :person/name \"Bob\"] [?e :person/friend ?f] [?f :person/friend ?g] [?g :person/nick ?x]]", ""),
    ("[:find ?e ?n :where [?f :person/name \"Cid\"] [?e :person/friend ?f] [?e :person/nick ?n]]", ""),
    ("[:find ?f ?a :where [3 :person/friend ?f] [?f :person/age ?a]]", ""),
    ("[:find ?t :where [?e :person/name \"Dee\"] [?e :person/pet ?p] [?p :pet/toy ?y] [?y :toy/name ?t]]", ""),
    ("[:find ?a :where [?e :person/email \"a@x.org\"] [?e :person/age ?a]]", ""),
    ("[:find ?fn :in $ ?n :where [?e :person/name ?n] [?e :person/friend ?f] [?f :person/name ?fn]]", "\"Eve\""),
    ("[:find ?b ?bn :where [?e :person/name \"Fay\"] [?e :person/boss ?b] [?b :person/name ?bn]]", ""),
    ("[:find ?e (count ?f) :where [?x :person/name \"Ann\"] [?e :person/friend ?x] [?e :person/friend ?f]]", ""),
];

/// The queries of a few cases plus [`NARROWED`], and the transactions of them all.
fn stream(seed: u64) -> (String, Vec<String>, Vec<QueryCheck>) {
    let cases: Vec<Case> = (0..3)
        .map(|k| generate(seed.wrapping_mul(3).wrapping_add(k)))
        .collect();
    let schema = cases[0].schema.clone();
    let txs = cases.iter().flat_map(|c| c.txs.clone()).collect();
    let mut queries: Vec<QueryCheck> = cases.iter().flat_map(|c| c.queries.clone()).collect();
    let template = queries[0].clone();
    for (query, input) in NARROWED {
        let mut q = template.clone();
        q.query = query.into();
        q.inputs = if input.is_empty() {
            vec![]
        } else {
            vec![input.into()]
        };
        queries.push(q);
    }
    (schema, txs, queries)
}

fn start(
    watch: impl Fn(&str, Vec<LiveInput>) -> Option<Watch>,
    queries: &[QueryCheck],
) -> Vec<Live> {
    queries
        .iter()
        .filter_map(|q| {
            let ins = inputs(q);
            watch(&q.query, ins.clone()).map(|w| Live {
                query: q.query.clone(),
                inputs: ins,
                watch: w,
                rows: Vec::new(),
            })
        })
        .collect()
}

/// Every live query equals a fresh run on `db`, and its diffs add up to it.
fn check(db: &Db, lives: &mut [Live], when: &str) -> Result<(), TestCaseError> {
    for live in lives {
        let ins: Vec<_> = live.inputs.iter().map(|i| i.as_input(db)).collect();
        let fresh = Query::parse(&live.query).and_then(|q| q.run(&ins));
        let updates = live.watch.drain();
        let Ok(fresh) = fresh else {
            // The query fails on this db (a comparison of mixed types, say): the live
            // query reports an error and starts over with a full result.
            live.rows.clear();
            continue;
        };
        for u in updates {
            let Ok(u) = u else {
                live.rows.clear();
                continue;
            };
            if u.full {
                live.rows.clear();
            }
            for r in &u.removed {
                let pos = live.rows.iter().position(|x| x == r);
                prop_assert!(
                    pos.is_some(),
                    "{when}: {} removed {r:?}, not in the result",
                    live.query
                );
                if let Some(p) = pos {
                    live.rows.remove(p);
                }
            }
            live.rows.extend(u.added.iter().cloned());
        }
        let result = live.watch.result();
        prop_assert_eq!(
            result.as_ref(),
            Some(&fresh),
            "{}: live result of {}",
            when,
            live.query
        );
        let mut expected = fresh.rows();
        expected.sort();
        live.rows.sort();
        prop_assert_eq!(&live.rows, &expected, "{}: diffs of {}", when, live.query);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("LIVE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn live_queries_on_a_conn_equal_a_fresh_query_after_every_transaction(seed in any::<u64>()) {
        let (schema, txs, queries) = stream(seed);
        let conn = Conn::new(Db::new(parse_schema(&schema).expect("schema")));
        let mut lives = start(|q, ins| conn.watch(q, ins).ok(), &queries);
        check(&conn.db(), &mut lives, "start")?;
        for (i, tx) in txs.iter().enumerate() {
            let _ = conn.transact_edn(tx);
            check(&conn.db(), &mut lives, &format!("tx {i} {tx}"))?;
        }
        // A reset to an earlier db is one more diff.
        let empty = Db::new(parse_schema(&schema).expect("schema"));
        conn.reset(empty).expect("reset");
        check(&conn.db(), &mut lives, "reset")?;
    }

    #[test]
    fn live_queries_on_a_peer_and_a_follower_equal_a_fresh_query_across_rebases_and_follows(seed in any::<u64>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (schema, txs, queries) = stream(seed);
            let options = || PeerOptions {
                schema: parse_schema(&schema).expect("schema"),
                ..PeerOptions::default()
            };
            let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
            let writer = Peer::open(storage.clone(), "main", Outbox::memory(&MemoryOutbox::new()).expect("outbox"), options())
                .await
                .expect("writer");
            writer.transact_edn("[{:person/nick \"a\"}]").expect("first tx");
            writer.push().await.expect("push");
            let peer = Peer::open(storage.clone(), "main", Outbox::memory(&MemoryOutbox::new()).expect("outbox"), options())
                .await
                .expect("peer");
            let mut follower = Follower::at_head(storage.clone(), "main", FollowOptions::default())
                .await
                .expect("follower");
            let mut on_peer = start(|q, ins| peer.watch(q, ins).ok(), &queries);
            let mut on_follower = start(|q, ins| follower.watch_query(q, ins).ok(), &queries);
            check(&peer.db(), &mut on_peer, "peer start")?;
            check(follower.db(), &mut on_follower, "follower start")?;
            for (i, tx) in txs.iter().enumerate() {
                if i % 3 == 0 {
                    // Optimistic, local only until the next push.
                    let _ = peer.transact_edn(tx);
                    check(&peer.db(), &mut on_peer, &format!("local tx {i} {tx}"))?;
                    continue;
                }
                let _ = writer.transact_edn(tx);
                writer.push().await.expect("push");
                // The peer rebases its pending transactions on the new head.
                peer.pull().await.expect("pull");
                check(&peer.db(), &mut on_peer, &format!("rebase after {i} {tx}"))?;
                if i % 4 == 1 {
                    peer.push().await.expect("peer push");
                    writer.pull().await.expect("writer pull");
                    check(&peer.db(), &mut on_peer, &format!("push after {i}"))?;
                }
                while follower.try_next().await.expect("follow").is_some() {
                    let db = follower.db().clone();
                    check(&db, &mut on_follower, &format!("follow after {i} {tx}"))?;
                }
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
