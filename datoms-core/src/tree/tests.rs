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
    ) {
        let kind = IndexKind::ALL[kind_idx];
        let mut model: BTreeSet<(u64, u8, i64)> = base.iter().copied().collect();
        let mut tree = Tree::build(kind, small(), base.iter().map(|&(e, a, v)| datom(e, a, v)).collect());
        for chunk in ops.chunks(batch) {
            let mut edits = Vec::new();
            for &(put, (e, a, v)) in chunk {
                if put { model.insert((e, a, v)); edits.push(Edit::Put(datom(e, a, v))); }
                else { model.remove(&(e, a, v)); edits.push(Edit::Delete(datom(e, a, v))); }
            }
            tree = tree.apply(edits, None).unwrap();
            check_invariants(&tree);
        }
        let bulk = Tree::build(kind, small(), model.iter().map(|&(e, a, v)| datom(e, a, v)).collect());
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
