//! Tree invariants: one datom set, one tree — whatever the order and batching of edits.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;
use crate::datom::{Component, TX0};
use crate::value::Value;

fn small() -> TreeConfig {
    TreeConfig {
        leaf_target: 4,
        branch_target: 4,
    }
}

fn datom(e: u64, a: u8, v: i64) -> Datom {
    Datom::new(e, format!(":attr/{a}").as_str(), Value::Long(v), TX0 + 1)
}

/// Like [`datom`], with a string value of 1 to 200 bytes: items of very different weights.
fn sized_datom(e: u64, a: u8, v: i64) -> Datom {
    let text = format!("{v}-{}", "s".repeat((v as usize * 37) % 200));
    Datom::new(
        e,
        format!(":attr/{a}").as_str(),
        Value::string(&text),
        TX0 + 1,
    )
}

fn all(tree: &Tree) -> Vec<Datom> {
    Cursor::seek(tree, None, &[], None)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Every node's address, level by level, so two trees can be compared node for node.
fn shape(tree: &Tree) -> Vec<(u8, Address, u64)> {
    let mut out = Vec::new();
    let mut level = vec![tree.root().clone()];
    while !level.is_empty() {
        let mut next = Vec::new();
        for n in &level {
            out.push((n.level(), n.address(), n.count()));
            for c in n.children() {
                next.push(c.link.get().unwrap().clone());
            }
        }
        level = next;
    }
    out
}

fn check_invariants(tree: &Tree) {
    let mut level = vec![tree.root().clone()];
    while let Some(n) = level.pop() {
        if n.level() > 0 {
            assert!(!n.is_empty());
            let sum: u64 = n.children().iter().map(|c| c.count).sum();
            assert_eq!(sum, n.count());
            for c in n.children() {
                let child = c.link.get().unwrap();
                assert_eq!(child.level() + 1, n.level());
                assert_eq!(child.first(), Some(&c.first));
                level.push(child.clone());
            }
        }
    }
}

fn datom_strategy() -> impl Strategy<Value = (u64, u8, i64)> {
    (1u64..60, 0u8..4, 0i64..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64)))]

    #[test]
    fn same_set_any_batching_gives_the_same_root(
        base in proptest::collection::vec(datom_strategy(), 0..300),
        ops in proptest::collection::vec((any::<bool>(), datom_strategy()), 0..300),
        batch in 1usize..40,
        kind_idx in 0usize..3,
        sized in any::<bool>(),
    ) {
        let kind = IndexKind::ALL[kind_idx];
        let make: fn(u64, u8, i64) -> Datom = if sized { sized_datom } else { datom };
        let mut model: BTreeSet<(u64, u8, i64)> = base.iter().copied().collect();
        let mut tree = Tree::build(kind, small(), base.iter().map(|&(e, a, v)| make(e, a, v)).collect());
        for chunk in ops.chunks(batch) {
            let mut edits = Vec::new();
            for &(put, (e, a, v)) in chunk {
                if put { model.insert((e, a, v)); edits.push(Edit::Put(make(e, a, v))); }
                else { model.remove(&(e, a, v)); edits.push(Edit::Delete(make(e, a, v))); }
            }
            tree = tree.apply(edits, None).unwrap();
            check_invariants(&tree);
        }
        let bulk = Tree::build(kind, small(), model.iter().map(|&(e, a, v)| make(e, a, v)).collect());
        prop_assert_eq!(all(&tree), all(&bulk));
        prop_assert_eq!(shape(&tree), shape(&bulk));
        prop_assert_eq!(tree.root_address(), bulk.root_address());
    }

    #[test]
    fn insertion_order_does_not_matter(
        set in proptest::collection::btree_set(datom_strategy(), 0..200),
        seed in any::<u64>(),
    ) {
        let mut items: Vec<_> = set.iter().copied().collect();
        // A cheap deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..items.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            items.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut tree = Tree::empty(IndexKind::Eavt, small());
        for (e, a, v) in items {
            tree = tree.apply(vec![Edit::Put(datom(e, a, v))], None).unwrap();
        }
        let bulk = Tree::build(IndexKind::Eavt, small(), set.iter().map(|&(e, a, v)| datom(e, a, v)).collect());
        prop_assert_eq!(tree.root_address(), bulk.root_address());
    }
}

#[test]
fn deleting_everything_gives_the_empty_tree() {
    let datoms: Vec<Datom> = (0..500).map(|i| datom(i, 1, 1)).collect();
    let tree = Tree::build(IndexKind::Eavt, small(), datoms.clone());
    assert!(tree.root().level() >= 2);
    let empty = tree
        .apply(datoms.into_iter().map(Edit::Delete).collect(), None)
        .unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        empty.root_address(),
        Tree::empty(IndexKind::Eavt, small()).root_address()
    );
}

#[test]
fn an_update_shares_every_untouched_leaf() {
    let datoms: Vec<Datom> = (0..2000).map(|i| datom(i, 1, 1)).collect();
    let tree = Tree::build(IndexKind::Eavt, TreeConfig::default(), datoms);
    let next = tree
        .apply(vec![Edit::Put(datom(1000, 2, 5))], None)
        .unwrap();
    let leaves = |t: &Tree| {
        let mut out = Vec::new();
        let mut stack = vec![t.root().clone()];
        while let Some(n) = stack.pop() {
            if n.level() == 0 {
                out.push(n);
            } else {
                stack.extend(n.children().iter().map(|c| c.link.get().unwrap().clone()));
            }
        }
        out
    };
    let old = leaves(&tree);
    let new = leaves(&next);
    let shared = new
        .iter()
        .filter(|n| old.iter().any(|o| Arc::ptr_eq(o, n)))
        .count();
    assert!(
        shared >= new.len() - 2,
        "{shared} of {} leaves shared",
        new.len()
    );
}

#[test]
fn seek_and_reverse_seek_follow_index_order() {
    let datoms: Vec<Datom> = (1..300)
        .map(|i| datom(i, (i % 3) as u8, i as i64))
        .collect();
    let tree = Tree::build(IndexKind::Eavt, small(), datoms);
    let from: Vec<u64> = Cursor::seek(&tree, None, &[Component::E(250)], None)
        .unwrap()
        .map(|d| d.unwrap().e)
        .collect();
    assert_eq!(from, (250..300).collect::<Vec<_>>());
    let back: Vec<u64> = Cursor::seek_back(&tree, None, &[Component::E(5)])
        .unwrap()
        .map(|d| d.unwrap().e)
        .collect();
    assert_eq!(back, vec![5, 4, 3, 2, 1]);
    let within: Vec<u64> =
        Cursor::seek(&tree, None, &[Component::E(7)], Some(vec![Component::E(7)]))
            .unwrap()
            .map(|d| d.unwrap().e)
            .collect();
    assert_eq!(within, vec![7]);
    assert_eq!(
        Cursor::seek_back(&tree, None, &[Component::E(0)])
            .unwrap()
            .count(),
        0
    );
}

/// A node source over a map, counting loads.
pub(crate) struct MapSource {
    pub nodes: HashMap<Address, Vec<u8>>,
    pub loads: Mutex<usize>,
}

impl NodeSource for MapSource {
    fn load(&self, address: &Address, kind: IndexKind) -> Result<Arc<Node>, Error> {
        *self.loads.lock().unwrap() += 1;
        let bytes = self
            .nodes
            .get(address)
            .ok_or_else(|| Error::NodeUnavailable {
                address: *address,
                reason: "not in map".into(),
            })?;
        Node::decode(*address, bytes, kind).map(Arc::new)
    }
}

pub(crate) fn encode_all(tree: &Tree) -> HashMap<Address, Vec<u8>> {
    let mut out = HashMap::new();
    let mut stack = vec![tree.root().clone()];
    while let Some(n) = stack.pop() {
        out.insert(n.address(), n.encode());
        stack.extend(n.children().iter().map(|c| c.link.get().unwrap().clone()));
    }
    out
}

#[test]
fn a_lazy_tree_loads_only_the_nodes_a_seek_touches() {
    let datoms: Vec<Datom> = (1..3000).map(|i| datom(i, 1, i as i64)).collect();
    let tree = Tree::build(IndexKind::Eavt, small(), datoms);
    let nodes = encode_all(&tree);
    let total = nodes.len();
    let root_addr = tree.root_address();
    let source = Arc::new(MapSource {
        nodes,
        loads: Mutex::new(0),
    });
    let root = Node::decode(root_addr, &source.nodes[&root_addr], IndexKind::Eavt).unwrap();
    let lazy = Tree::from_root(IndexKind::Eavt, small(), Arc::new(root));
    let dyn_source: Arc<dyn NodeSource> = source.clone();
    let got: Vec<Datom> = Cursor::seek(
        &lazy,
        Some(dyn_source.clone()),
        &[Component::E(1500)],
        Some(vec![Component::E(1500)]),
    )
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap();
    assert_eq!(got, vec![datom(1500, 1, 1500)]);
    let loads = *source.loads.lock().unwrap();
    assert!(
        loads <= 2 * usize::from(tree.root().level()) + 2,
        "{loads} loads"
    );
    assert!(loads < total / 10);
    // An update of a lazy tree loads only the path it rewrites and gives the same root.
    let updated = lazy
        .apply(vec![Edit::Put(datom(1500, 2, 7))], Some(&dyn_source))
        .unwrap();
    let expected = tree
        .apply(vec![Edit::Put(datom(1500, 2, 7))], None)
        .unwrap();
    assert_eq!(updated.root_address(), expected.root_address());
}

#[test]
fn corrupt_and_truncated_node_bytes_are_typed_errors() {
    let tree = Tree::build(
        IndexKind::Eavt,
        small(),
        (1..100).map(|i| datom(i, 1, 1)).collect(),
    );
    let addr = tree.root_address();
    let bytes = tree.root().encode();
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    assert!(matches!(
        Node::decode(addr, &flipped, IndexKind::Eavt),
        Err(Error::Corrupt { address, .. }) if address == addr
    ));
    for cut in 0..bytes.len() {
        let truncated = &bytes[..cut];
        // Addressed as itself, so the hash check passes and the decoder must reject it.
        let err = Node::decode(Address::of(truncated), truncated, IndexKind::Eavt).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    }
    assert!(matches!(
        Node::decode(addr, &bytes, IndexKind::Aevt),
        Err(Error::Malformed { .. })
    ));
    let mut future = bytes.clone();
    future[1] = FORMAT_VERSION + 1;
    assert!(matches!(
        Node::decode(Address::of(&future), &future, IndexKind::Eavt),
        Err(Error::UnsupportedVersion { .. })
    ));
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Node::decode(Address::of(&bytes), &bytes, IndexKind::Avet);
    }
}

/// Encoded sizes of every node of `tree` at `level`, sorted.
fn node_sizes(tree: &Tree, level: u8) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![tree.root().clone()];
    while let Some(n) = stack.pop() {
        if n.level() == level {
            out.push(n.encode().len());
        } else if n.level() > level {
            stack.extend(n.children().iter().map(|c| c.link.get().unwrap().clone()));
        }
    }
    out.sort_unstable();
    out
}

/// A people-like data set of `n` entities: short and long strings, small and big numbers,
/// refs, from a fixed xorshift sequence (the same content on every run).
fn people(n: u64) -> Vec<Datom> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::new();
    for e in 1..=n {
        let tx = TX0 + 1 + e / 1000;
        let name = format!(
            "name-{}-{}",
            next() % 16,
            "x".repeat((next() % 24) as usize)
        );
        out.push(Datom::new(e, ":person/name", Value::string(&name), tx));
        out.push(Datom::new(
            e,
            ":person/age",
            Value::Long((next() % 80) as i64),
            tx,
        ));
        let score = (next() % 1_000_000) as i64;
        out.push(Datom::new(e, ":person/score", Value::Long(score), tx));
        if next() % 3 == 0 {
            out.push(Datom::new(
                e,
                ":person/friend",
                Value::Ref(1 + next() % n),
                tx,
            ));
        }
    }
    out
}

/// Nearest-rank quantile of sorted sizes.
fn quantile(sorted: &[usize], p: f64) -> usize {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The size distribution the chunker is for: node sizes gather around the target, so the
/// node a random change lands in (picked in proportion to its size) is barely bigger than
/// the mean. The constant-probability rule this replaced gave, on the same data, a leaf
/// p90/median of 2.5–2.8, max/median of 5–8.5 and size-biased mean / mean of 1.5–1.6, and
/// a level-1 p90/median of 1.8–2.3.
#[test]
fn node_sizes_gather_around_the_target() {
    let datoms = people(40_000);
    for kind in IndexKind::ALL {
        let tree = Tree::build(kind, TreeConfig::default(), datoms.clone());
        for level in 0..=1 {
            let sizes = node_sizes(&tree, level);
            assert!(
                sizes.len() >= 80,
                "{kind:?} level {level}: {} nodes",
                sizes.len()
            );
            let median = quantile(&sizes, 0.5) as f64;
            let p90 = quantile(&sizes, 0.9) as f64;
            let max = sizes[sizes.len() - 1] as f64;
            let total: usize = sizes.iter().sum();
            let mean = total as f64 / sizes.len() as f64;
            let biased = sizes.iter().map(|&x| (x * x) as f64).sum::<f64>() / total as f64;
            let report = format!(
                "{kind:?} level {level}: median {median}, p90 {p90}, max {max}, mean {mean:.0}, \
                 size-biased mean {biased:.0}"
            );
            assert!(p90 / median <= 1.5, "{report}");
            assert!(max / median <= 2.5, "{report}");
            assert!(biased / mean <= 1.15, "{report}");
            if level == 0 {
                // The target: 64 datoms of 32 bytes, give or take the datoms' real size.
                assert!((1600.0..=2500.0).contains(&mean), "{report}");
                assert!(max <= 4.0 * 2048.0, "{report}");
            }
        }
    }
}

/// A size-aware rule moves boundaries a little more often than a constant probability
/// (which rewrote about 1.02 leaves per single edit here), but an edit still rewrites
/// about one node per level.
#[test]
fn a_single_edit_rewrites_about_one_node_per_level() {
    let datoms = people(20_000);
    let trials = 200;
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for kind in IndexKind::ALL {
        let tree = Tree::build(kind, TreeConfig::default(), datoms.clone());
        let old: std::collections::HashSet<Address> =
            shape(&tree).into_iter().map(|(_, a, _)| a).collect();
        let mut rewritten = [0usize; 8];
        for i in 0..trials {
            let edit = if i % 2 == 0 {
                let e = 1 + next() % 20_000;
                let tag = format!("tag-{}", next() % 100);
                Edit::Put(Datom::new(e, ":person/tag", Value::string(&tag), TX0 + 99))
            } else {
                Edit::Delete(datoms[(next() % datoms.len() as u64) as usize].clone())
            };
            let after = tree.apply(vec![edit], None).unwrap();
            for (level, address, _) in shape(&after) {
                if !old.contains(&address) {
                    rewritten[usize::from(level)] += 1;
                }
            }
        }
        let per_edit = |level: usize| rewritten[level] as f64 / f64::from(trials);
        assert!(
            per_edit(0) <= 1.2,
            "{kind:?}: {rewritten:?} in {trials} edits"
        );
        for level in 1..usize::from(tree.root().level()) {
            assert!(
                per_edit(level) <= 1.1,
                "{kind:?}: {rewritten:?} in {trials} edits"
            );
        }
    }
}
