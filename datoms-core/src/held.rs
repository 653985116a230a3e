//! What a db value already holds, found by position — never by a map of all its nodes.
//!
//! Trees are history-independent, so a node of another version that a db also holds
//! sits in the db's tree of the same index at the same level, where its first datom (the
//! key in its parent's entry) leads. A node is looked up by descending the db's tree from
//! the root to that level by that key (the last child whose first datom is not after it,
//! as a cursor seeks) and comparing the one candidate there: the same `Arc`, or count
//! and first datom, then address (known, or computed for this one node). The children of
//! one parent are looked up together: one descent finds the db's node at the parent's
//! level and position, and the children are matched against its children in one forward
//! pass, as a merge; a child past that node's range descends on its own.
//!
//! Two users: restore (which nodes of the target `db1` holds, so they are not fetched)
//! and store (which nodes of a db its base commit's trees hold, so they are not written).

use std::cmp::Ordering;
use std::sync::Arc;

use crate::address::Address;
use crate::datom::{Datom, IndexKind};
use crate::db::Db;
use crate::tree::node::Child;
use crate::tree::{Node, Tree};

/// Where a node of the other version stands in the held trees.
pub(crate) enum Found {
    /// The held trees have it in memory.
    Loaded(Arc<Node>),
    /// The held trees know it by address only: a child not loaded.
    Unloaded,
    /// The held trees do not have it in memory (it may be below a child not loaded).
    No,
}

/// A node of the other version as its parent's entry describes it.
pub(crate) struct Entry<'a> {
    pub(crate) kind: IndexKind,
    pub(crate) level: u8,
    pub(crate) first: &'a Datom,
    pub(crate) count: u64,
    pub(crate) address: EntryAddress<'a>,
}

/// The address of an [`Entry`]: known, or that of a child in memory, computed only when
/// count and first datom match a candidate (hashing a new node that cannot match would
/// encode it once more than a store needs).
pub(crate) enum EntryAddress<'a> {
    Known(Address),
    Of(&'a Child),
}

impl EntryAddress<'_> {
    fn get(&self) -> Address {
        match self {
            EntryAddress::Known(a) => *a,
            EntryAddress::Of(c) => c.address(),
        }
    }

    /// The child in memory, if this entry is one.
    fn loaded(&self) -> Option<&Arc<Node>> {
        match self {
            EntryAddress::Known(_) => None,
            EntryAddress::Of(c) => c.loaded(),
        }
    }
}

/// The trees of one db version, looked up by position (see the module docs).
#[derive(Default)]
pub(crate) struct Held {
    /// The held roots, by index slot (none: nothing is held).
    roots: Option<[Arc<Node>; 3]>,
    /// The held db has a node source, so subtrees it knows only by address can be
    /// shared: the new db loads them the way the held one does.
    pub(crate) share_unloaded: bool,
    /// Whether the held trees have a child not loaded, once known.
    has_unloaded: Option<bool>,
    /// Where the children of the last parent looked up are found.
    region: Option<Region>,
    /// Held nodes examined so far.
    pub(crate) examined: u64,
}

/// The held node at the level and position of a new parent, and the range of keys it
/// covers: the parent's children (in key order) are looked up among its children in one
/// forward pass, as a merge, instead of descending from the root for each.
struct Region {
    /// The new version's parent whose children are looked up.
    parent: Arc<Node>,
    /// The held node at the parent's level where the parent's first datom leads (`None`:
    /// there is none in memory; each child is then looked up from the root).
    node: Option<Arc<Node>>,
    /// The first datom after `node`'s range (`None`: it reaches the end of the index).
    end: Option<Datom>,
    /// The child of `node` the last lookup stopped at.
    at: usize,
}

impl Held {
    /// What `db1` holds: its trees, and its unloaded subtrees if it has a source.
    pub(crate) fn of(db1: &Db) -> Held {
        Held {
            share_unloaded: db1.source().is_some(),
            ..Held::of_trees(&IndexKind::ALL.map(|k| db1.tree(k).clone()))
        }
    }

    /// What these trees hold (a db's base commit's trees).
    pub(crate) fn of_trees(trees: &[Tree; 3]) -> Held {
        Held {
            roots: Some(trees.each_ref().map(|t| t.root().clone())),
            ..Held::default()
        }
    }

    /// The held root of index `kind`.
    fn root(&self, kind: IndexKind) -> Option<Arc<Node>> {
        let slot = IndexKind::ALL.iter().position(|k| *k == kind)?;
        self.roots.as_ref().map(|r| r[slot].clone())
    }

    /// Looks up child `i` of `parent` (a node of the other version) by its entry.
    pub(crate) fn find_child(&mut self, parent: &Arc<Node>, i: usize) -> Found {
        let child = &parent.children()[i];
        let entry = Entry {
            kind: parent.kind(),
            level: parent.level().saturating_sub(1),
            first: child.first(),
            count: child.count(),
            address: EntryAddress::Of(child),
        };
        match self.find_in_region(parent, &entry) {
            Some(found) => found,
            None => self.find_entry(&entry),
        }
    }

    /// The held root of index `kind` if it is `address`.
    pub(crate) fn find_root(&mut self, kind: IndexKind, address: Address) -> Found {
        let Some(root) = self.root(kind) else {
            return Found::No;
        };
        self.examined += 1;
        if root.address() == address {
            Found::Loaded(root.clone())
        } else {
            Found::No
        }
    }

    /// Looks up `entry`, a child of `parent`, in the region of `parent` (found once per
    /// parent); `None` if the entry's key lies outside it.
    fn find_in_region(&mut self, parent: &Arc<Node>, entry: &Entry<'_>) -> Option<Found> {
        if !self
            .region
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(&r.parent, parent))
        {
            self.region = Some(self.region_of(entry.kind, parent));
        }
        let region = self.region.as_mut()?;
        let i = region.child_leading_to(entry)?;
        let node = region.node.clone()?;
        Some(self.compare_child(&node.children()[i], entry))
    }

    /// Descends the held tree of `kind` by `parent`'s first datom to `parent`'s level.
    fn region_of(&mut self, kind: IndexKind, parent: &Arc<Node>) -> Region {
        let mut region = Region {
            parent: parent.clone(),
            node: None,
            end: None,
            at: 0,
        };
        let (Some(mut node), Some(first)) = (self.root(kind), parent.first()) else {
            return region;
        };
        self.examined += 1;
        while node.level() > parent.level() {
            let Some(i) = last_not_after(kind, node.children(), first) else {
                return region;
            };
            if let Some(next) = node.children().get(i + 1) {
                region.end = Some(next.first().clone());
            }
            let Some(child) = node.children()[i].loaded().cloned() else {
                self.has_unloaded = Some(true);
                return region;
            };
            self.examined += 1;
            node = child;
        }
        if node.level() == parent.level() {
            region.node = Some(node);
        }
        region
    }

    /// Descends the held tree of `entry.kind` by `entry.first` to `entry.level` and
    /// compares the node there with `entry`.
    pub(crate) fn find_entry(&mut self, entry: &Entry<'_>) -> Found {
        let Some(mut node) = self.root(entry.kind) else {
            return Found::No;
        };
        self.examined += 1;
        if node.level() == entry.level {
            return matches_loaded(&node, entry);
        }
        while node.level() > entry.level {
            let Some(i) = last_not_after(entry.kind, node.children(), entry.first) else {
                return Found::No;
            };
            let child = &node.children()[i];
            if node.level() == entry.level + 1 {
                return self.compare_child(child, entry);
            }
            let Some(next) = child.loaded().cloned() else {
                // the held db holds this region only in storage.
                self.has_unloaded = Some(true);
                return Found::No;
            };
            self.examined += 1;
            node = next;
        }
        Found::No
    }

    /// Compares the held child where `entry` would sit with `entry`: the fields of the two
    /// entries, then the content when both are in memory (no hashing), else the address
    /// (computed only for this one node if it has none yet).
    fn compare_child(&mut self, child: &Child, entry: &Entry<'_>) -> Found {
        self.examined += 1;
        let loaded = child.loaded();
        if loaded.is_none() {
            self.has_unloaded = Some(true);
        }
        if child.count() != entry.count || child.first() != entry.first {
            return Found::No;
        }
        let same = match (loaded, entry.address.loaded()) {
            // Both in memory: compared without hashing either.
            (Some(held), Some(wanted)) => held.same_content(wanted),
            _ => child.address() == entry.address.get(),
        };
        if !same {
            return Found::No;
        }
        match loaded {
            Some(node) => Found::Loaded(node.clone()),
            None => Found::Unloaded,
        }
    }

    /// True if the held db can share subtrees unloaded and has a child it has not loaded (it
    /// was lazily restored). Usually known from a lookup that met such a child;
    /// otherwise found by a walk over the loaded nodes that stops at the first one.
    pub(crate) fn is_lazy(&mut self) -> bool {
        if !self.share_unloaded {
            return false;
        }
        if let Some(known) = self.has_unloaded {
            return known;
        }
        let found = self.find_unloaded_child();
        self.has_unloaded = Some(found);
        found
    }

    fn find_unloaded_child(&mut self) -> bool {
        let roots = IndexKind::ALL
            .iter()
            .filter_map(|k| self.root(*k))
            .collect();
        has_unloaded_child(roots, &mut self.examined)
    }
}

/// True if a node below `roots` has a child not loaded, counting the nodes examined;
/// stops at the first one.
pub(crate) fn has_unloaded_child(roots: Vec<Arc<Node>>, examined: &mut u64) -> bool {
    let mut stack = roots;
    while let Some(node) = stack.pop() {
        *examined += 1;
        for c in node.children() {
            match c.loaded() {
                Some(n) => stack.push(n.clone()),
                None => return true,
            }
        }
    }
    false
}

impl Region {
    /// The index of the child of the region's node whose range holds `entry.first`,
    /// moving forward from the last one; `None` if the key lies outside the region.
    fn child_leading_to(&mut self, entry: &Entry<'_>) -> Option<usize> {
        let kind = entry.kind;
        let children = self.node.as_ref()?.children();
        if self
            .end
            .as_ref()
            .is_some_and(|end| kind.cmp(entry.first, end) != Ordering::Less)
        {
            return None;
        }
        let not_after = |c: &Child| kind.cmp(c.first(), entry.first) != Ordering::Greater;
        if !children.get(self.at).is_some_and(not_after) {
            // Behind the last position (or before the node): search from the start.
            self.at = last_not_after(kind, children, entry.first)?;
        }
        while children.get(self.at + 1).is_some_and(not_after) {
            self.at += 1;
        }
        Some(self.at)
    }
}

/// The index of the last of `children` whose first datom is not after `key` (`None` if
/// all start after it): the child whose range holds `key`.
fn last_not_after(kind: IndexKind, children: &[Child], key: &Datom) -> Option<usize> {
    children
        .partition_point(|c| kind.cmp(c.first(), key) != Ordering::Greater)
        .checked_sub(1)
}

/// `node` if it is the node `entry` describes.
fn matches_loaded(node: &Arc<Node>, entry: &Entry<'_>) -> Found {
    if node.level() == entry.level
        && node.count() == entry.count
        && node.first() == Some(entry.first)
        && node.address() == entry.address.get()
    {
        Found::Loaded(node.clone())
    } else {
        Found::No
    }
}
