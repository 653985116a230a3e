#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The restore machine driven from an in-memory map, and diff, against random histories.
//! Only the public API is used: this is what a storage driver sees.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use datoms_core::addressing::commit_for;
use datoms_core::restore::{Materialize, Mode};
use datoms_core::tree::{Node, NodeSource};
use datoms_core::{
    diff, Address, AttributeSchema, Datom, Db, Error, IndexKind, Restore, RestoreStats, Schema,
    Step, TreeConfig, TxLogEntry, Value, ValueType,
};
use proptest::prelude::*;

#[derive(Default)]
struct MemStore {
    blobs: Mutex<HashMap<Address, Vec<u8>>>,
}

impl MemStore {
    fn get(&self, a: &Address) -> Option<Vec<u8>> {
        self.blobs.lock().unwrap().get(a).cloned()
    }
}

impl NodeSource for MemStore {
    fn load(&self, address: &Address, kind: IndexKind) -> Result<Arc<Node>, Error> {
        let bytes = self.get(address).ok_or_else(|| Error::NodeUnavailable {
            address: *address,
            reason: "missing".into(),
        })?;
        Node::decode(*address, &bytes, kind).map(Arc::new)
    }
}

/// Writes what the db lacks in storage and its commit; returns the committed db.
fn store(db: &Db, s: &MemStore) -> (Db, Address, Vec<Address>) {
    let (commit, new) = commit_for(db).unwrap();
    let mut blobs = s.blobs.lock().unwrap();
    for n in &new.nodes {
        blobs.insert(n.address, n.bytes.clone());
    }
    let bytes = commit.encode();
    let addr = Address::of(&bytes);
    blobs.insert(addr, bytes);
    drop(blobs);
    (db.committed(addr, &commit), addr, new.addresses())
}

fn drive(s: &MemStore, mut r: Restore) -> Result<(Db, RestoreStats, Vec<Address>), Error> {
    let mut fetched = Vec::new();
    loop {
        match r.poll()? {
            Step::Need(addrs) => {
                for a in addrs {
                    fetched.push(a);
                    r.accept(a, s.get(&a).as_deref())?;
                }
            }
            Step::Done(db) => return Ok((db, r.stats(), fetched)),
        }
    }
}

fn all_datoms(db: &Db, kind: IndexKind) -> Vec<Datom> {
    db.datoms(kind, &[]).unwrap().map(|d| d.unwrap()).collect()
}

fn assert_same_db(a: &Db, b: &Db) {
    for kind in IndexKind::ALL {
        assert_eq!(all_datoms(a, kind), all_datoms(b, kind), "{kind:?}");
    }
    assert_eq!(a.root_addresses(), b.root_addresses());
    assert_eq!(a.schema(), b.schema());
    assert_eq!(a.max_eid(), b.max_eid());
    assert_eq!(a.max_tx(), b.max_tx());
}

/// Every node address reachable in memory from the db's roots.
fn node_set(db: &Db) -> HashSet<Address> {
    let mut out = HashSet::new();
    let mut stack: Vec<_> = IndexKind::ALL
        .iter()
        .map(|k| db.tree(*k).root().clone())
        .collect();
    while let Some(n) = stack.pop() {
        if out.insert(n.address()) {
            for c in n.children() {
                stack.push(c.loaded().expect("materialized").clone());
            }
        }
    }
    out
}

fn schema() -> Schema {
    Schema::new()
        .with(
            ":p/name",
            AttributeSchema::default()
                .value_type(ValueType::String)
                .identity(),
        )
        .unwrap()
        .with(
            ":p/age",
            AttributeSchema::default()
                .value_type(ValueType::Long)
                .indexed(),
        )
        .unwrap()
        .with(
            ":p/friend",
            AttributeSchema::default().value_type(ValueType::Ref).many(),
        )
        .unwrap()
}

fn small() -> TreeConfig {
    TreeConfig {
        leaf_target: 8,
        branch_target: 4,
    }
}

/// Random transactions applied consistently (no redundant assertion, no absent
/// retraction), as the transaction layer would.
struct History {
    model: BTreeSet<(u64, u8, i64)>,
    db: Db,
}

impl History {
    fn new() -> History {
        History {
            model: BTreeSet::new(),
            db: Db::with_config(schema(), small()),
        }
    }

    fn datom(e: u64, a: u8, v: i64, tx: u64) -> Datom {
        match a {
            0 => Datom::new(e, ":p/name", Value::string(&format!("n{v}")), tx),
            1 => Datom::new(e, ":p/age", Value::Long(v), tx),
            _ => Datom::new(e, ":p/friend", Value::Ref(v as u64 + 1), tx),
        }
    }

    fn transact(&mut self, ops: &[(bool, u64, u8, i64)]) {
        let tx = self.db.max_tx() + 1;
        let mut datoms = Vec::new();
        let mut touched = HashSet::new();
        for &(add, e, a, v) in ops {
            if !touched.insert((e, a, v)) {
                continue;
            }
            let present = self.model.contains(&(e, a, v));
            if add && !present {
                self.model.insert((e, a, v));
                datoms.push(History::datom(e, a, v, tx));
            } else if !add && present {
                self.model.remove(&(e, a, v));
                datoms.push(History::datom(e, a, v, tx).retraction());
            }
        }
        self.db = self
            .db
            .apply_log_entry(TxLogEntry {
                tx,
                datoms,
                id: None,
            })
            .unwrap();
    }
}

fn ops() -> impl Strategy<Value = Vec<Vec<(bool, u64, u8, i64)>>> {
    let op = (prop::bool::weighted(0.8), 1u64..80, 0u8..3, 0i64..30);
    prop::collection::vec(prop::collection::vec(op, 1..40), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48)))]

    /// A replica restoring at random points gets the same db incrementally as by a full
    /// restore, and fetches only what it lacks.
    #[test]
    fn incremental_restore_equals_full_restore(txs in ops(), replica_at in 0usize..12, jump in 0usize..12) {
        let s = MemStore::default();
        let mut h = History::new();
        let mut commits = Vec::new();
        for ops in &txs {
            h.transact(ops);
            let (db, addr, manifest) = store(&h.db, &s);
            h.db = db.clone();
            commits.push((addr, db, manifest));
        }
        let i = replica_at.min(commits.len() - 1);
        let j = (i + jump).min(commits.len() - 1);
        let (db1, _, _) = drive(&s, Restore::new(commits[i].0, None)).unwrap();
        assert_same_db(&db1, &commits[i].1);

        let (full, full_stats, _) = drive(&s, Restore::new(commits[j].0, None)).unwrap();
        let (incr, stats, fetched) = drive(&s, Restore::new(commits[j].0, Some(&db1))).unwrap();
        assert_same_db(&full, &commits[j].1);
        assert_same_db(&incr, &full);
        prop_assert_eq!(incr.base_commit(), Some(commits[j].0));

        let held = node_set(&db1);
        let fetched_nodes: HashSet<Address> = fetched.iter().copied()
            .filter(|a| !commits.iter().any(|c| c.0 == *a)).collect();
        // Only a manifest node (no key to look it up before it is fetched) or a root can
        // be one db1 holds, and then it is counted unused.
        let fetched_held = fetched_nodes.intersection(&held).count() as u64;
        prop_assert!(fetched_held <= stats.nodes_unused, "fetched a node db1 holds: {:?}", stats);
        let lacking: HashSet<Address> = node_set(&incr).difference(&held).copied().collect();
        prop_assert!(lacking.is_subset(&fetched_nodes), "missed a node");
        // Every fetched node is either one db1 lacks or counted unused.
        prop_assert_eq!(fetched_nodes.len() as u64, lacking.len() as u64 + stats.nodes_unused);
        prop_assert_eq!(stats.nodes_fetched, fetched_nodes.len() as u64);
        let new_since: HashSet<Address> = commits[i + 1..=j].iter()
            .flat_map(|c| c.2.iter().copied()).collect();
        prop_assert!(fetched_nodes.is_subset(&new_since), "fetched a node older than db1's commit");
        // Never more than a full restore of the same version fetches.
        prop_assert!(
            stats.nodes_fetched <= full_stats.nodes_fetched,
            "incremental {:?}, full {:?}", stats, full_stats
        );
        if i == j {
            prop_assert_eq!(stats, RestoreStats::default());
        } else if j - i <= 9 && !stats.prefetch_skipped {
            // The head commit, then roots + manifests: no tree walk, no older commit
            // (these manifests are within the budget).
            prop_assert!(stats.round_trips <= 2, "{:?}", stats);
            prop_assert_eq!(stats.commits_fetched, 1);
        }
    }

    /// Diff is exact: db1's datoms with the diff applied are db2's datoms.
    #[test]
    fn applying_the_diff_gives_the_other_db(txs in ops(), split in 0usize..12) {
        let mut h = History::new();
        let split = split.min(txs.len());
        for ops in &txs[..split] { h.transact(ops); }
        let db1 = h.db.clone();
        for ops in &txs[split..] { h.transact(ops); }
        let db2 = h.db.clone();
        let d = diff(&db1, &db2).unwrap();
        let mut set: BTreeSet<(u64, String, Value, u64)> = all_datoms(&db1, IndexKind::Eavt)
            .into_iter().map(|d| (d.e, d.a.to_string(), d.v, d.tx)).collect();
        for r in &d.retracted { prop_assert!(set.remove(&(r.e, r.a.to_string(), r.v.clone(), r.tx))); }
        for a in &d.added { prop_assert!(set.insert((a.e, a.a.to_string(), a.v.clone(), a.tx))); }
        let want: BTreeSet<_> = all_datoms(&db2, IndexKind::Eavt)
            .into_iter().map(|d| (d.e, d.a.to_string(), d.v, d.tx)).collect();
        prop_assert_eq!(set, want);
    }
}

#[test]
fn a_walk_from_an_unrelated_db_fetches_exactly_the_nodes_it_lacks() {
    let s = MemStore::default();
    let mut h = History::new();
    for round in 0..20u64 {
        let ops: Vec<_> = (0..30)
            .map(|i| (true, round * 30 + i + 1, (i % 3) as u8, i as i64))
            .collect();
        h.transact(&ops);
    }
    let (db1, _, _) = store(&h.db, &s);
    // Another branch: a different db (same datoms plus one) stored without lineage.
    h.transact(&[(true, 5, 1, 999)]);
    let other = Db::with_config(schema(), small());
    let datoms: Vec<Datom> = all_datoms(&h.db, IndexKind::Eavt);
    let fresh = other
        .apply_log_entry(TxLogEntry {
            tx: h.db.max_tx(),
            datoms,
            id: None,
        })
        .unwrap();
    let (_, addr, _) = store(&fresh, &s);
    let (db2, stats, fetched) = drive(&s, Restore::new(addr, Some(&db1))).unwrap();
    let lacking: HashSet<Address> = node_set(&db2)
        .difference(&node_set(&db1))
        .copied()
        .collect();
    let fetched: HashSet<Address> = fetched.into_iter().filter(|a| *a != addr).collect();
    assert_eq!(fetched, lacking);
    assert!(stats.nodes_reused > 0);
    let depth = u64::from(db2.tree(IndexKind::Eavt).root().level()) + 1;
    assert!(stats.round_trips <= depth + 1, "{stats:?}");
}

/// A history of 10 transactions of 50 new datoms each (500 entities), unstored.
fn ten_transactions_of_fifty_datoms() -> History {
    let mut h = History::new();
    for round in 0..10u64 {
        let ops: Vec<_> = (0..50)
            .map(|i| (true, round * 50 + i + 1, (i % 3) as u8, i as i64))
            .collect();
        h.transact(&ops);
    }
    h
}

#[test]
fn a_lazy_restore_loads_on_demand_and_materializes_level_by_level() {
    let s = Arc::new(MemStore::default());
    let h = ten_transactions_of_fifty_datoms();
    let (db, addr, _) = store(&h.db, &s);
    let (lazy, stats, _) = drive(&s, Restore::with_mode(addr, None, Mode::Lazy)).unwrap();
    assert_eq!(stats.nodes_fetched, 3);
    let lazy = lazy.with_source(s.clone());
    assert_same_db(&lazy, &db);

    let (lazy2, _, _) = drive(&s, Restore::with_mode(addr, None, Mode::Lazy)).unwrap();
    let mut m = Materialize::new(&lazy2);
    let mut rounds = 0;
    let full = loop {
        match m.poll().unwrap() {
            Step::Need(addrs) => {
                rounds += 1;
                for a in addrs {
                    m.accept(a, s.get(&a).as_deref()).unwrap();
                }
            }
            Step::Done(db) => break db,
        }
    };
    assert_eq!(
        rounds,
        u64::from(db.tree(IndexKind::Eavt).root().level())
            .max(u64::from(db.tree(IndexKind::Avet).root().level())) as usize
    );
    assert_same_db(&full, &db);
}

#[test]
fn restoring_the_db_it_already_is_reads_nothing() {
    let s = MemStore::default();
    let mut h = History::new();
    h.transact(&[(true, 1, 0, 1)]);
    let (db, addr, _) = store(&h.db, &s);
    let (same, stats, fetched) = drive(&s, Restore::new(addr, Some(&db))).unwrap();
    assert!(fetched.is_empty());
    assert_eq!(stats, RestoreStats::default());
    assert_same_db(&same, &db);
}

#[test]
fn corrupt_bytes_and_missing_nodes_are_typed_errors() {
    let s = MemStore::default();
    let mut h = History::new();
    h.transact(&(1..200).map(|e| (true, e, 1u8, 1i64)).collect::<Vec<_>>());
    let (db, addr, _) = store(&h.db, &s);
    let victim = db.tree(IndexKind::Aevt).root_address();
    s.blobs.lock().unwrap().get_mut(&victim).unwrap()[3] ^= 0x10;
    let err = drive(&s, Restore::new(addr, None)).unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { address, .. } if address == victim),
        "{err:?}"
    );
    s.blobs.lock().unwrap().remove(&victim);
    let err = drive(&s, Restore::new(addr, None)).unwrap_err();
    assert!(
        matches!(err, Error::NodeUnavailable { address, .. } if address == victim),
        "{err:?}"
    );
}

#[test]
fn restoring_on_from_a_lazy_db_fetches_only_new_nodes_and_shares_the_rest_unloaded() {
    let s = Arc::new(MemStore::default());
    let mut h = ten_transactions_of_fifty_datoms();
    let (db, first, _) = store(&h.db, &s);
    h.db = db;
    let (lazy, _, _) = drive(&s, Restore::with_mode(first, None, Mode::Lazy)).unwrap();
    let lazy = lazy.with_source(s.clone());
    h.transact(&[(true, 3, 1, 999), (true, 400, 2, 7)]);
    let (db2, second, manifest) = store(&h.db, &s);
    let (next, stats, fetched) = drive(&s, Restore::new(second, Some(&lazy))).unwrap();
    let fetched: HashSet<Address> = fetched.into_iter().filter(|a| *a != second).collect();
    let new: HashSet<Address> = manifest.into_iter().collect();
    assert!(
        fetched.is_subset(&new),
        "{} fetched, {} new, stats {stats:?}",
        fetched.len(),
        new.len()
    );
    assert_same_db(&next, &db2);
}

/// A history of `people` entities with three attributes each, committed in rounds of 100.
fn stored_history(s: &MemStore, people: u64) -> (History, Address) {
    let mut h = History::new();
    let mut addr = None;
    for round in 0..people.div_ceil(100) {
        let ops: Vec<_> = (0..100)
            .flat_map(|i| {
                let e = round * 100 + i + 1;
                (0..3u8).map(move |a| (true, e, a, (e % 97) as i64))
            })
            .collect();
        h.transact(&ops);
        let (db, a, _) = store(&h.db, s);
        h.db = db;
        addr = Some(a);
    }
    (h, addr.expect("at least one round"))
}

#[test]
fn an_incremental_restore_examines_nodes_in_proportion_to_the_delta_not_the_db() {
    let s = Arc::new(MemStore::default());
    let (mut h, first) = stored_history(&s, 5000);
    h.transact(&[(true, 2500, 1, 1234)]);
    let (db2, second, _) = store(&h.db, &s);

    let (eager, _, _) = drive(&s, Restore::new(first, None)).unwrap();
    let db1_nodes = node_set(&eager).len() as u64;
    let height: u64 = IndexKind::ALL
        .iter()
        .map(|k| u64::from(eager.tree(*k).root().level()) + 1)
        .max()
        .unwrap();
    let (next, stats, _) = drive(&s, Restore::new(second, Some(&eager))).unwrap();
    assert_same_db(&next, &db2);
    // A lookup visits one node of db1 per level; each fetched node asks one per child
    // (at most 4 × the branch target of 4).
    let bound = (stats.nodes_fetched + 3) * 16 * height;
    assert!(
        stats.db1_nodes_examined <= bound && stats.db1_nodes_examined * 10 < db1_nodes,
        "{stats:?}: examined {} of db1's {db1_nodes} nodes (bound {bound})",
        stats.db1_nodes_examined
    );

    // From a lazily restored db1 too: nothing old is read, little of db1 is examined.
    let (lazy, _, _) = drive(&s, Restore::with_mode(first, None, Mode::Lazy)).unwrap();
    let lazy = lazy.with_source(s.clone());
    let (next, stats, _) = drive(&s, Restore::new(second, Some(&lazy))).unwrap();
    assert_same_db(&next, &db2);
    assert!(stats.db1_nodes_examined <= bound, "{stats:?}");
}

#[test]
fn a_manifest_node_db1_already_holds_is_fetched_but_counted_unused() {
    let s = MemStore::default();
    let (mut h, first) = stored_history(&s, 300);
    let (db1, _, _) = drive(&s, Restore::new(first, None)).unwrap();
    // Assert a datom, then retract it: the second commit recreates db1's nodes, which
    // its manifest names again (nothing tells the writer they were stored before).
    h.transact(&[(true, 150, 1, 4321)]);
    let (db, _, _) = store(&h.db, &s);
    h.db = db;
    h.transact(&[(false, 150, 1, 4321)]);
    let (db3, third, manifest) = store(&h.db, &s);
    assert_eq!(db3.root_addresses(), db1.root_addresses());
    assert!(!manifest.is_empty());

    let (next, stats, fetched) = drive(&s, Restore::new(third, Some(&db1))).unwrap();
    assert_same_db(&next, &db3);
    let nodes = fetched.iter().filter(|a| **a != third).count() as u64;
    assert_eq!(stats.nodes_fetched, nodes);
    assert_eq!(stats.nodes_unused, nodes, "{stats:?}");
    assert_eq!(stats.nodes_reused, 3, "the three roots are db1's");
}
