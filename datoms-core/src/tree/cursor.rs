//! Ordered iteration over a tree's datoms, forward or backward from a seek position.
//! Nodes of a lazily restored tree are loaded as the cursor reaches them.

use std::cmp::Ordering;
use std::sync::Arc;

use super::node::{load_child, Node, NodeSource};
use super::packed::Position;
use super::Tree;
use crate::datom::{Component, Datom, IndexKind};
use crate::error::Error;

/// Iterates a tree's datoms in index order (or reverse), yielding `Result<Datom>` because a
/// lazily restored tree may fail to load a node.
pub struct Cursor {
    kind: IndexKind,
    source: Option<Arc<dyn NodeSource>>,
    path: Vec<(Arc<Node>, usize)>,
    /// Where the cursor is in the current leaf; `None` once iteration has ended.
    leaf: Option<InLeaf>,
    reverse: bool,
    /// Stop once a datom no longer matches this prefix.
    within: Option<Vec<Component>>,
}

/// A cursor's place in its current leaf.
enum InLeaf {
    /// Moving forward: the leaf and the position of the next datom in it. Datoms are
    /// unpacked one at a time as they are yielded, so a seek that reads a few datoms
    /// unpacks only those.
    Forward(Arc<Node>, Position),
    /// Moving backward: the leaf's datoms up to the cursor, yielded from the back.
    Backward(std::vec::IntoIter<Datom>),
}

impl InLeaf {
    fn next(&mut self) -> Option<Datom> {
        match self {
            InLeaf::Forward(node, pos) => node.packed()?.next_at(pos),
            InLeaf::Backward(datoms) => datoms.next_back(),
        }
    }
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
            .packed()
            .map(|p| p.seek(|d| kind.cmp_prefix_ref(d, prefix) == Ordering::Less))
            .unwrap_or_default();
        Ok(Cursor {
            kind,
            source,
            path,
            leaf: Some(InLeaf::Forward(node, pos)),
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
        let leaf = leaf.map(|()| {
            let mut datoms = node.datoms();
            let pos = datoms.partition_point(|d| kind.cmp_prefix(d, prefix) != Ordering::Greater);
            datoms.truncate(pos);
            InLeaf::Backward(datoms.into_iter())
        });
        Ok(Cursor {
            kind,
            source,
            path,
            leaf,
            reverse: true,
            within: None,
        })
    }

    fn step(&mut self) -> Result<Option<Datom>, Error> {
        loop {
            let Some(leaf) = &mut self.leaf else {
                return Ok(None);
            };
            let next = leaf.next();
            if next.is_some() {
                return Ok(next);
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
        self.leaf = Some(if reverse {
            InLeaf::Backward(node.datoms().into_iter())
        } else {
            let start = node.packed().map(|p| p.start()).unwrap_or_default();
            InLeaf::Forward(node, start)
        });
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
