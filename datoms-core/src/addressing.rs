//! Addressing: which nodes `store` must write.
//!
//! A node read from storage, or written by a store that completed, is *persisted*; its
//! subtree is persisted too. [`unpersisted_nodes`] walks the three trees, pruning at
//! persisted nodes, and yields every other node with its address and canonical bytes,
//! children before parents — exactly what a store must write before its commit. After the
//! commit is durable, [`NewNodes::mark_persisted`] records it, so the next store of a
//! descendant db writes only what changed since.
//!
//! A node's address is cached when first computed, but computing an address does not
//! make a node persisted: only a completed store does.

use std::collections::HashSet;
use std::sync::Arc;

use crate::address::Address;
use crate::datom::IndexKind;
use crate::db::Db;
use crate::tree::Node;

/// A node that storage lacks: its address, its bytes, and the node itself (to mark it
/// persisted once the commit that needs it is durable).
#[derive(Clone)]
pub struct NewNode {
    /// The node's address.
    pub address: Address,
    /// Its canonical bytes.
    pub bytes: Vec<u8>,
    node: Arc<Node>,
}

/// The unpersisted nodes of a db, children before parents, each address once.
#[derive(Clone, Default)]
pub struct NewNodes {
    /// The nodes, children before parents.
    pub nodes: Vec<NewNode>,
}

impl NewNodes {
    /// Their addresses, in order (the delta manifest of the commit that stores them).
    pub fn addresses(&self) -> Vec<Address> {
        self.nodes.iter().map(|n| n.address).collect()
    }

    /// Total encoded bytes.
    pub fn byte_len(&self) -> usize {
        self.nodes.iter().map(|n| n.bytes.len()).sum()
    }

    /// Records that all these nodes are in storage.
    pub fn mark_persisted(&self) {
        for n in &self.nodes {
            n.node.mark_persisted();
        }
    }
}

/// Every node of `db` not yet known to be in storage, children first.
pub fn unpersisted_nodes(db: &Db) -> NewNodes {
    let mut out = NewNodes::default();
    let mut seen = HashSet::new();
    for kind in IndexKind::ALL {
        collect(db.tree(kind).root(), &mut seen, &mut out.nodes);
    }
    out
}

/// Every node of `db` that is in memory, persisted or not, children first — what a store
/// into a *different* storage must consider.
pub fn all_loaded_nodes(db: &Db) -> NewNodes {
    let mut out = NewNodes::default();
    let mut seen = HashSet::new();
    for kind in IndexKind::ALL {
        collect_all(db.tree(kind).root(), &mut seen, &mut out.nodes);
    }
    out
}

fn collect(node: &Arc<Node>, seen: &mut HashSet<Address>, out: &mut Vec<NewNode>) {
    if node.is_persisted() {
        return;
    }
    for child in node.children() {
        // An unloaded child came from storage, so it is persisted.
        if let Some(c) = child.link.get() {
            collect(c, seen, out);
        }
    }
    push(node, seen, out);
}

fn collect_all(node: &Arc<Node>, seen: &mut HashSet<Address>, out: &mut Vec<NewNode>) {
    for child in node.children() {
        if let Some(c) = child.link.get() {
            collect_all(c, seen, out);
        }
    }
    push(node, seen, out);
}

fn push(node: &Arc<Node>, seen: &mut HashSet<Address>, out: &mut Vec<NewNode>) {
    let bytes = node.encode();
    let address = Address::of(&bytes);
    node.set_address(address);
    if seen.insert(address) {
        out.push(NewNode {
            address,
            bytes,
            node: node.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::TxLogEntry;
    use crate::datom::{Datom, TX0};
    use crate::schema::Schema;

    fn db_with(n: u64) -> Db {
        let datoms = (1..=n)
            .map(|e| Datom::new(e, ":a/b", e as i64, TX0 + 1))
            .collect();
        Db::new(Schema::new())
            .apply_log_entry(TxLogEntry {
                tx: TX0 + 1,
                datoms,
            })
            .unwrap()
    }

    #[test]
    fn storing_twice_writes_nothing_the_second_time() {
        let db = db_with(1000);
        let first = unpersisted_nodes(&db);
        assert!(!first.nodes.is_empty());
        first.mark_persisted();
        assert!(unpersisted_nodes(&db).nodes.is_empty());
    }

    #[test]
    fn a_small_change_yields_only_the_changed_path() {
        let db = db_with(5000);
        unpersisted_nodes(&db).mark_persisted();
        let next = db
            .apply_log_entry(TxLogEntry {
                tx: TX0 + 2,
                datoms: vec![Datom::new(2500, ":a/c", 1i64, TX0 + 2)],
            })
            .unwrap();
        let new = unpersisted_nodes(&next);
        let height: usize = IndexKind::ALL
            .iter()
            .map(|k| usize::from(next.tree(*k).root().level()) + 1)
            .sum();
        assert!(
            new.nodes.len() <= 2 * height,
            "{} new nodes",
            new.nodes.len()
        );
        // Children come before parents: every branch's children are persisted or listed
        // earlier.
        let mut listed = HashSet::new();
        for n in &new.nodes {
            for c in n.node.children() {
                let child = c.link.get().unwrap();
                assert!(child.is_persisted() || listed.contains(&child.address()));
            }
            listed.insert(n.address);
        }
    }

    #[test]
    fn computing_an_address_does_not_count_as_stored() {
        let db = db_with(300);
        let _ = db.root_addresses();
        assert!(!unpersisted_nodes(&db).nodes.is_empty());
    }
}
