//! Bulk building and incremental updating of a tree, one level at a time.
//!
//! An update turns sorted datom edits into new leaves, which are edits (delete the old
//! leaf's entry, put the new leaf's entry) for the level above, and so on up to the root.
//! At each level, re-chunking starts at the first item of the old node holding the first
//! edit (the chunker's state is zero there) and stops as soon as a cut falls exactly at an
//! old node's end with no edit left before the next old node: from there on the old nodes
//! are what a bulk build would produce, so they are kept (and shared). New nodes equal to
//! the old ones they replace are dropped from the edits, so unchanged parents stay
//! untouched.

use std::cmp::Ordering;
use std::sync::Arc;

use super::chunker::{Chunker, TreeConfig};
use super::node::{load_child, Child, Node, NodeSource};
use super::packed::{LeafBuilder, PackedLeaf};
use super::{Edit, Tree};
use crate::datom::{Datom, DatomRef, IndexKind};
use crate::error::Error;

/// What one level's nodes hold: datoms in leaves, children in branches. Items are read
/// borrowed (a leaf's straight from its packed form) and copied into the node being
/// built, so rewriting a leaf never unpacks it into owned datoms.
trait Item: Sized {
    /// An item borrowed from a node or from an edit.
    type Ref<'a>: Copy;
    /// Collects the items of one new node.
    type Builder: Default;
    fn key<'a>(item: Self::Ref<'a>) -> DatomRef<'a>;
    fn borrow(owned: &Self) -> Self::Ref<'_>;
    fn items(node: &Node) -> impl Iterator<Item = Self::Ref<'_>>;
    fn push(builder: &mut Self::Builder, item: Self::Ref<'_>);
    fn is_empty(builder: &Self::Builder) -> bool;
    /// The node built so far; the builder starts over.
    fn finish(builder: &mut Self::Builder, kind: IndexKind, level: u8) -> Node;
    /// True if two nodes of this level hold the same items.
    fn same_items(a: &Node, b: &Node) -> bool;
}

impl Item for Datom {
    type Ref<'a> = DatomRef<'a>;
    type Builder = LeafBuilder;
    fn key<'a>(item: Self::Ref<'a>) -> DatomRef<'a> {
        item
    }
    fn borrow(owned: &Datom) -> DatomRef<'_> {
        owned.borrowed()
    }
    fn items(node: &Node) -> impl Iterator<Item = DatomRef<'_>> {
        node.packed().into_iter().flat_map(PackedLeaf::refs)
    }
    fn push(builder: &mut LeafBuilder, item: DatomRef<'_>) {
        builder.push(item);
    }
    fn is_empty(builder: &LeafBuilder) -> bool {
        builder.is_empty()
    }
    fn finish(builder: &mut LeafBuilder, kind: IndexKind, _level: u8) -> Node {
        Node::packed_leaf(kind, builder.finish())
    }
    fn same_items(a: &Node, b: &Node) -> bool {
        // Full equality: a re-asserted datom with a new tx is new content.
        a.same_datoms(b)
    }
}

impl Item for Child {
    type Ref<'a> = &'a Child;
    type Builder = Vec<Child>;
    fn key<'a>(item: Self::Ref<'a>) -> DatomRef<'a> {
        item.first.borrowed()
    }
    fn borrow(owned: &Child) -> &Child {
        owned
    }
    fn items(node: &Node) -> impl Iterator<Item = &Child> {
        node.children().iter()
    }
    fn push(builder: &mut Vec<Child>, item: &Child) {
        builder.push(item.clone());
    }
    fn is_empty(builder: &Vec<Child>) -> bool {
        builder.is_empty()
    }
    fn finish(builder: &mut Vec<Child>, kind: IndexKind, level: u8) -> Node {
        Node::branch(kind, level, std::mem::take(builder))
    }
    fn same_items(a: &Node, b: &Node) -> bool {
        let (x, y) = (a.children(), b.children());
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.same_as(q))
    }
}

/// Cuts a stream of one level's items into new nodes.
struct Cutter<I: Item> {
    kind: IndexKind,
    level: u8,
    chunker: Chunker,
    builder: I::Builder,
    nodes: Vec<Arc<Node>>,
}

impl<I: Item> Cutter<I> {
    fn new(kind: IndexKind, level: u8, config: &TreeConfig) -> Cutter<I> {
        Cutter {
            kind,
            level,
            chunker: Chunker::new(kind, level, config),
            builder: I::Builder::default(),
            nodes: Vec::new(),
        }
    }

    /// Adds the next item, ending the node after it if the chunker cuts there.
    fn push(&mut self, item: I::Ref<'_>) {
        let cut = self.chunker.push(&I::key(item));
        I::push(&mut self.builder, item);
        if cut {
            self.flush();
        }
    }

    /// Ends the node being built, if it has items.
    fn flush(&mut self) {
        if !I::is_empty(&self.builder) {
            let node = I::finish(&mut self.builder, self.kind, self.level);
            self.nodes.push(Arc::new(node));
        }
    }
}

/// Cuts one level's items into nodes.
fn chunk<I: Item>(
    kind: IndexKind,
    config: &TreeConfig,
    level: u8,
    items: Vec<I>,
) -> Vec<Arc<Node>> {
    let mut cutter = Cutter::<I>::new(kind, level, config);
    for item in &items {
        cutter.push(I::borrow(item));
    }
    cutter.flush();
    cutter.nodes
}

/// Cuts sorted, distinct datoms into leaves.
pub(super) fn chunk_leaves(
    kind: IndexKind,
    config: &TreeConfig,
    datoms: Vec<Datom>,
) -> Vec<Arc<Node>> {
    chunk(kind, config, 0, datoms)
}

/// Builds the levels above `nodes` (all at `level`) until one node remains: the root.
pub(super) fn build_up(
    kind: IndexKind,
    config: &TreeConfig,
    mut nodes: Vec<Arc<Node>>,
    mut level: u8,
) -> Arc<Node> {
    while nodes.len() > 1 {
        let children: Vec<Child> = nodes.into_iter().filter_map(Child::new).collect();
        level += 1;
        nodes = chunk(kind, config, level, children);
    }
    nodes
        .pop()
        .unwrap_or_else(|| Arc::new(Node::leaf(kind, Vec::new())))
}

/// An edit of one level: put (insert or replace) or delete (`None`) the item at a key.
type LevelEdit<I> = (Datom, Option<I>);

pub(super) fn apply(
    tree: &Tree,
    mut edits: Vec<Edit>,
    source: Option<&Arc<dyn NodeSource>>,
) -> Result<Arc<Node>, Error> {
    let kind = tree.kind;
    let config = tree.config;
    let root = &tree.root;
    if edits.is_empty() {
        return Ok(root.clone());
    }
    // Sort by key; of several edits to one key the last one wins.
    edits.reverse();
    edits.sort_by(|a, b| kind.cmp(a.key(), b.key()));
    edits.dedup_by(|later, earlier| kind.cmp(later.key(), earlier.key()).is_eq());

    if root.is_empty() {
        let datoms: Vec<Datom> = edits
            .into_iter()
            .filter_map(|e| match e {
                Edit::Put(d) => Some(d),
                Edit::Delete(_) => None,
            })
            .collect();
        return Ok(build_up(
            kind,
            &config,
            chunk_leaves(kind, &config, datoms),
            0,
        ));
    }

    let leaf_edits: Vec<LevelEdit<Datom>> = edits
        .into_iter()
        .map(|e| match e {
            Edit::Put(d) => (d.clone(), Some(d)),
            Edit::Delete(d) => (d, None),
        })
        .collect();
    let top = root.level();
    let mut up = rechunk(tree, 0, leaf_edits, top == 0, source)?;
    for level in 1..=top {
        if up.is_empty() {
            return Ok(root.clone());
        }
        up = rechunk(tree, level, up, level == top, source)?;
    }
    // The old root was consumed, so the puts are the whole new level at the root's height
    // (unchanged nodes included: see `keep_unchanged`).
    if let [(_, Some(only))] = up.as_slice() {
        if only.link.get().is_some_and(|n| Arc::ptr_eq(n, root)) {
            return Ok(root.clone());
        }
    }
    let nodes: Vec<Arc<Node>> = up
        .into_iter()
        .filter_map(|(_, child)| child.and_then(|c| c.link.get().cloned()))
        .collect();
    let mut new_root = build_up(kind, &config, nodes, root.level());
    // A bulk build stops at the first level with one node, so a branch with a single
    // child is never a root.
    while new_root.children().len() == 1 {
        let next = load_child(&new_root, &new_root.children()[0], source)?;
        new_root = next;
    }
    Ok(new_root)
}

/// Applies `edits` to the items of the level-`level` nodes of `tree`, returning the edits
/// of the level above. With `keep_unchanged` (at the root's level, where the result must
/// list the whole new level), rebuilt nodes identical to old ones are kept as puts of the
/// old node instead of being dropped.
fn rechunk<I: Item>(
    tree: &Tree,
    level: u8,
    edits: Vec<LevelEdit<I>>,
    keep_unchanged: bool,
    source: Option<&Arc<dyn NodeSource>>,
) -> Result<Vec<LevelEdit<Child>>, Error> {
    let kind = tree.kind;
    let mut cutter = Cutter::<I>::new(kind, level, &tree.config);
    let mut removed: Vec<Arc<Node>> = Vec::new();
    let mut edits = edits.into_iter().peekable();

    while let Some((first_key, _)) = edits.peek() {
        let mut cursor = LevelCursor::locate(&tree.root, level, first_key, source)?;
        cutter.chunker.reset();
        loop {
            let node = cursor.node.clone();
            removed.push(node.clone());
            let limit = cursor.next_first().cloned();
            let before_limit = |k: &Datom| {
                limit
                    .as_ref()
                    .is_none_or(|l| kind.cmp(k, l) == Ordering::Less)
            };
            let mut items = I::items(&node).peekable();
            loop {
                let edit_key = edits.peek().map(|(k, _)| k).filter(|k| before_limit(k));
                match (items.peek(), edit_key) {
                    (None, None) => break,
                    (Some(_), None) => {
                        if let Some(item) = items.next() {
                            cutter.push(item);
                        }
                    }
                    (item, Some(ek)) => {
                        let ord = item.map_or(Ordering::Greater, |i| {
                            kind.cmp_ref(&I::key(*i), &ek.borrowed())
                        });
                        if ord == Ordering::Less {
                            if let Some(item) = items.next() {
                                cutter.push(item);
                            }
                            continue;
                        }
                        if ord == Ordering::Equal {
                            items.next();
                        }
                        if let Some((_, Some(item))) = edits.next() {
                            cutter.push(I::borrow(&item));
                        }
                    }
                }
            }
            if I::is_empty(&cutter.builder) {
                break;
            }
            if !cursor.advance(source)? {
                cutter.flush();
                break;
            }
        }
    }
    let added = cutter.nodes;
    Ok(merge_up::<I>(kind, removed, added, keep_unchanged))
}

/// Pairs removed and added nodes into the edits of the level above, dropping every node
/// that was rebuilt identical to the one it replaces.
fn merge_up<I: Item>(
    kind: IndexKind,
    removed: Vec<Arc<Node>>,
    added: Vec<Arc<Node>>,
    keep_unchanged: bool,
) -> Vec<LevelEdit<Child>> {
    let mut out = Vec::with_capacity(removed.len() + added.len());
    let mut removed = removed.into_iter().peekable();
    let mut added = added.into_iter().peekable();
    loop {
        let ord = match (removed.peek(), added.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(r), Some(a)) => match (r.first(), a.first()) {
                (Some(rf), Some(af)) => kind.cmp(rf, af),
                _ => Ordering::Less,
            },
        };
        match ord {
            Ordering::Less => {
                if let Some(r) = removed.next() {
                    if let Some(first) = r.first() {
                        out.push((first.clone(), None));
                    }
                }
            }
            Ordering::Greater => {
                if let Some(child) = added.next().and_then(Child::new) {
                    out.push((child.first.clone(), Some(child)));
                }
            }
            Ordering::Equal => {
                let (Some(r), Some(a)) = (removed.next(), added.next()) else {
                    break;
                };
                let keep = if I::same_items(&r, &a) {
                    keep_unchanged.then_some(r)
                } else {
                    Some(a)
                };
                if let Some(child) = keep.and_then(Child::new) {
                    out.push((child.first.clone(), Some(child)));
                }
            }
        }
    }
    out
}

/// A position at one level of a tree: the node there and the path from the root to it.
struct LevelCursor {
    path: Vec<(Arc<Node>, usize)>,
    node: Arc<Node>,
    level: u8,
}

impl LevelCursor {
    /// The level-`level` node that holds `key` (or would: the last node whose first key is
    /// not after `key`, else the first node).
    fn locate(
        root: &Arc<Node>,
        level: u8,
        key: &Datom,
        source: Option<&Arc<dyn NodeSource>>,
    ) -> Result<LevelCursor, Error> {
        let kind = root.kind();
        let mut path = Vec::new();
        let mut node = root.clone();
        while node.level() > level {
            let children = node.children();
            let idx = children
                .partition_point(|c| kind.cmp(&c.first, key) != Ordering::Greater)
                .saturating_sub(1);
            let child = load_child(&node, &children[idx], source)?;
            path.push((node, idx));
            node = child;
        }
        Ok(LevelCursor { path, node, level })
    }

    /// The first key of the next node at this level, read from a parent (no load).
    fn next_first(&self) -> Option<&Datom> {
        self.path.iter().rev().find_map(|(n, i)| {
            let children = n.children();
            children.get(i + 1).map(|c| &c.first)
        })
    }

    /// Moves to the next node at this level; false at the end.
    fn advance(&mut self, source: Option<&Arc<dyn NodeSource>>) -> Result<bool, Error> {
        while let Some((n, i)) = self.path.last_mut() {
            if *i + 1 < n.children().len() {
                *i += 1;
                break;
            }
            self.path.pop();
        }
        let Some((n, i)) = self.path.last() else {
            return Ok(false);
        };
        let mut node = load_child(n, &n.children()[*i], source)?;
        while node.level() > self.level {
            let child = load_child(&node, &node.children()[0], source)?;
            self.path.push((node, 0));
            node = child;
        }
        self.node = node;
        Ok(true)
    }
}
