//! One index as a persistent, content-addressed, history-independent search tree.
//!
//! Node boundaries come from content ([`chunker`]), so a set of datoms has exactly one
//! tree: building it in bulk, updating it in any order and batching, or restoring it from
//! storage all give byte-identical nodes and the same root address. Nodes are immutable
//! and shared between versions through `Arc`: an update copies only the path from the
//! changed leaves to the root.

pub mod chunker;
pub mod cursor;
mod edit;
pub mod node;
mod packed;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::address::Address;
use crate::datom::{Datom, IndexKind};
use crate::error::Error;

pub use chunker::TreeConfig;
pub use cursor::Cursor;
pub use node::{Child, Node, NodeSource, FORMAT_VERSION};

/// One index tree. Cheap to clone (an `Arc` and a little config).
#[derive(Clone)]
pub struct Tree {
    kind: IndexKind,
    config: TreeConfig,
    root: Arc<Node>,
}

/// One change to a tree: put (insert, or replace an equal key) or delete a datom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Insert the datom, replacing a datom with the same key if there is one.
    Put(Datom),
    /// Remove the datom with this key, if there is one.
    Delete(Datom),
}

impl Edit {
    fn key(&self) -> &Datom {
        match self {
            Edit::Put(d) | Edit::Delete(d) => d,
        }
    }
}

impl Tree {
    /// An empty tree.
    pub fn empty(kind: IndexKind, config: TreeConfig) -> Tree {
        Tree {
            kind,
            config,
            root: Arc::new(Node::leaf(kind, Vec::new())),
        }
    }

    /// A tree over an existing root (e.g. one decoded from storage).
    pub fn from_root(kind: IndexKind, config: TreeConfig, root: Arc<Node>) -> Tree {
        Tree { kind, config, root }
    }

    /// Builds the tree of `datoms` in one pass. The datoms need not be sorted; duplicates
    /// (same key) keep the last one.
    pub fn build(kind: IndexKind, config: TreeConfig, mut datoms: Vec<Datom>) -> Tree {
        datoms.sort_by(|a, b| kind.cmp(a, b));
        datoms.reverse();
        datoms.dedup_by(|a, b| kind.cmp(a, b).is_eq());
        datoms.reverse();
        let leaves = edit::chunk_leaves(kind, &config, datoms);
        Tree {
            kind,
            config,
            root: edit::build_up(kind, &config, leaves, 0),
        }
    }

    /// The index this tree holds.
    pub fn kind(&self) -> IndexKind {
        self.kind
    }

    /// The chunking parameters.
    pub fn config(&self) -> TreeConfig {
        self.config
    }

    /// The root node.
    pub fn root(&self) -> &Arc<Node> {
        &self.root
    }

    /// The root's address (encodes the nodes that have no address yet).
    pub fn root_address(&self) -> Address {
        self.root.address()
    }

    /// The number of datoms in the tree.
    pub fn len(&self) -> u64 {
        self.root.count()
    }

    /// True if the tree holds no datom.
    pub fn is_empty(&self) -> bool {
        self.root.count() == 0
    }

    /// The tree with `edits` applied. Only the nodes whose content changes are rebuilt;
    /// the result is identical to [`Tree::build`] of the resulting datom set.
    ///
    /// # Errors
    /// Only for a lazily restored tree whose nodes cannot be loaded.
    pub fn apply(
        &self,
        edits: Vec<Edit>,
        source: Option<&Arc<dyn NodeSource>>,
    ) -> Result<Tree, Error> {
        let root = edit::apply(self, edits, source)?;
        Ok(Tree {
            kind: self.kind,
            config: self.config,
            root,
        })
    }
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("kind", &self.kind)
            .field("datoms", &self.len())
            .field("height", &self.root.level())
            .finish()
    }
}
