//! `NodeCache`: decoded nodes of lazily restored dbs, bounded by a memory budget.
//!
//! Least recently used nodes are evicted first. A node's memory is estimated as three
//! times its encoded size (decoded datoms carry `Arc`s, enum tags and vectors); the
//! estimate only has to be proportional, so the budget holds within a small factor.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datoms_core::tree::Node;
use datoms_core::Address;

/// Decoded size estimate per encoded byte.
const DECODED_PER_ENCODED: usize = 3;

/// An LRU cache of decoded nodes with a byte budget. Shared by every db restored through
/// the same source, so versions of one database share their cached nodes.
#[derive(Debug)]
pub struct NodeCache {
    budget: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Address, (Arc<Node>, usize, u64)>,
    order: BTreeMap<u64, Address>,
    used: usize,
    tick: u64,
}

impl NodeCache {
    /// A cache holding about `budget` bytes of decoded nodes.
    pub fn new(budget: usize) -> NodeCache {
        NodeCache {
            budget,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The node at `address`, if cached (marks it recently used).
    pub fn get(&self, address: &Address) -> Option<Arc<Node>> {
        let Ok(mut inner) = self.inner.lock() else {
            return None;
        };
        inner.tick += 1;
        let tick = inner.tick;
        let found = inner.entries.get_mut(address).map(|(node, _, t)| {
            let old = *t;
            *t = tick;
            (node.clone(), old)
        });
        match found {
            Some((node, old)) => {
                inner.order.remove(&old);
                inner.order.insert(tick, *address);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(node)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Caches a node whose encoding is `encoded_len` bytes, evicting the least recently
    /// used nodes beyond the budget.
    pub fn insert(&self, address: Address, node: Arc<Node>, encoded_len: usize) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let size = encoded_len * DECODED_PER_ENCODED;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((_, old_size, old_tick)) = inner.entries.insert(address, (node, size, tick)) {
            inner.order.remove(&old_tick);
            inner.used -= old_size;
        }
        inner.order.insert(tick, address);
        inner.used += size;
        while inner.used > self.budget && inner.entries.len() > 1 {
            let Some((_, victim)) = inner.order.pop_first() else {
                break;
            };
            if let Some((_, s, _)) = inner.entries.remove(&victim) {
                inner.used -= s;
            }
        }
    }

    /// Estimated bytes held.
    pub fn used(&self) -> usize {
        self.inner.lock().map(|i| i.used).unwrap_or(0)
    }

    /// Cache hits and misses so far.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datoms_core::{Datom, IndexKind, Tree, TreeConfig, TX0};

    fn leaf(i: u64) -> (Address, Arc<Node>, usize) {
        let t = Tree::build(
            IndexKind::Eavt,
            TreeConfig::default(),
            vec![Datom::new(i, ":a", 1i64, TX0 + 1)],
        );
        let bytes = t.root().encode();
        (t.root_address(), t.root().clone(), bytes.len())
    }

    #[test]
    fn the_cache_stays_within_its_budget_evicting_least_recently_used() {
        let (a0, n0, len) = leaf(0);
        let cache = NodeCache::new(len * DECODED_PER_ENCODED * 3);
        cache.insert(a0, n0, len);
        for i in 1..3 {
            let (a, n, l) = leaf(i);
            cache.insert(a, n, l);
        }
        assert!(cache.get(&a0).is_some());
        for i in 3..10 {
            let (a, n, l) = leaf(i);
            cache.insert(a, n, l);
            assert!(cache.used() <= len * DECODED_PER_ENCODED * 3 + 64);
        }
        assert!(
            cache.get(&leaf(1).0).is_none(),
            "least recently used is evicted"
        );
        let (hits, misses) = cache.hits_and_misses();
        assert_eq!((hits, misses), (1, 1));
    }
}
