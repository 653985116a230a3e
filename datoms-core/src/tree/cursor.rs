//! Ordered iteration over a tree's datoms, forward or backward from a seek position.
//! Nodes of a lazily restored tree are loaded as the cursor reaches them.

use std::cmp::Ordering;
use std::sync::Arc;

use super::node::{load_child, Node, NodeSource};
use super::Tree;
use crate::datom::{Component, Datom, IndexKind};
use crate::error::Error;

/// Iterates a tree's datoms in index order (or reverse), yielding `Result<Datom>` because a
/// lazily restored tree may fail to load a node.
pub struct Cursor {
    kind: IndexKind,
    source: Option<Arc<dyn NodeSource>>,
    path: Vec<(Arc<Node>, usize)>,
    leaf: Option<Arc<Node>>,
    /// Forward: index of the next datom. Backward: number of datoms left in the leaf.
    pos: usize,
    reverse: bool,
    /// Stop once a datom no longer matches this prefix.
    within: Option<Vec<Component>>,
}

impl Cursor {
    /// A cursor at the first datom `d` with `cmp_prefix(d, prefix) >= Equal`, moving
    /// forward. With `within`, iteration stops at the first datom not matching it.
    pub fn seek(
        tree: &Tree,
        source: Option<Arc<dyn NodeSource>>,
        prefix: &[Component],
        within: Option<Vec<Component>>,
    ) -> Result<Cursor, Error> {
        let kind = tree.kind();
        let mut path = Vec::new();
        let mut node = tree.root().clone();
        while node.level() > 0 {
            let idx = node
                .children()
                .partition_point(|c| kind.cmp_prefix(&c.first, prefix) == Ordering::Less)
                .saturating_sub(1);
            let child = load_child(&node, &node.children()[idx], source.as_ref())?;
            path.push((node, idx));
            node = child;
        }
        let pos = node
            .datoms()
            .partition_point(|d| kind.cmp_prefix(d, prefix) == Ordering::Less);
        Ok(Cursor {
            kind,
            source,
            path,
            leaf: Some(node),
            pos,
            reverse: false,
            within,
        })
    }

    /// A cursor at the last datom `d` with `cmp_prefix(d, prefix) <= Equal`, moving
    /// backward.
    pub fn seek_back(
        tree: &Tree,
        source: Option<Arc<dyn NodeSource>>,
        prefix: &[Component],
    ) -> Result<Cursor, Error> {
        let kind = tree.kind();
        let mut path = Vec::new();
        let mut node = tree.root().clone();
        let mut leaf = Some(());
        while node.level() > 0 {
            let n = node
                .children()
                .partition_point(|c| kind.cmp_prefix(&c.first, prefix) != Ordering::Greater);
            if n == 0 {
                leaf = None;
                break;
            }
            let child = load_child(&node, &node.children()[n - 1], source.as_ref())?;
            path.push((node, n - 1));
            node = child;
        }
        let pos = node
            .datoms()
            .partition_point(|d| kind.cmp_prefix(d, prefix) != Ordering::Greater);
        Ok(Cursor {
            kind,
            source,
            path,
            leaf: leaf.map(|()| node),
            pos,
            reverse: true,
            within: None,
        })
    }

    fn step(&mut self) -> Result<Option<Datom>, Error> {
        loop {
            let Some(leaf) = &self.leaf else {
                return Ok(None);
            };
            if self.reverse {
                if self.pos > 0 {
                    self.pos -= 1;
                    return Ok(leaf.datoms().get(self.pos).cloned());
                }
            } else if let Some(d) = leaf.datoms().get(self.pos) {
                self.pos += 1;
                return Ok(Some(d.clone()));
            }
            self.next_leaf()?;
        }
    }

    fn next_leaf(&mut self) -> Result<(), Error> {
        let reverse = self.reverse;
        while let Some((n, i)) = self.path.last_mut() {
            let has_next = if reverse {
                *i > 0
            } else {
                *i + 1 < n.children().len()
            };
            if has_next {
                if reverse {
                    *i -= 1;
                } else {
                    *i += 1;
                }
                break;
            }
            self.path.pop();
        }
        let Some((n, i)) = self.path.last() else {
            self.leaf = None;
            return Ok(());
        };
        let mut node = load_child(n, &n.children()[*i], self.source.as_ref())?;
        while node.level() > 0 {
            let idx = if reverse {
                node.children().len() - 1
            } else {
                0
            };
            let child = load_child(&node, &node.children()[idx], self.source.as_ref())?;
            self.path.push((node, idx));
            node = child;
        }
        self.pos = if reverse { node.datoms().len() } else { 0 };
        self.leaf = Some(node);
        Ok(())
    }
}

impl Iterator for Cursor {
    type Item = Result<Datom, Error>;

    fn next(&mut self) -> Option<Result<Datom, Error>> {
        match self.step() {
            Ok(Some(d)) => {
                if let Some(w) = &self.within {
                    if self.kind.cmp_prefix(&d, w) != Ordering::Equal {
                        self.leaf = None;
                        return None;
                    }
                }
                Some(Ok(d))
            }
            Ok(None) => None,
            Err(e) => {
                // A load failure ends the iteration after reporting it once.
                self.leaf = None;
                Some(Err(e))
            }
        }
    }
}
