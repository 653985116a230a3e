//! One index as a history-independent tree plus the edits not merged into it yet.
//!
//! A small transaction changes a few datoms, but merging them into a content-defined tree
//! rewrites a leaf per datom and the path above it (chunking every item, packing every
//! entry). Nothing needs those nodes until someone observes the tree: its root address,
//! a store, a diff, a restore. So a transaction records its edits in a persistent ordered
//! set ([`imbl::OrdSet`], shared between db versions like the trees are) and reads merge
//! the set into the tree's datoms on the fly ([`Datoms`]). The first observation merges
//! the edits into the tree ([`crate::tree::Tree::apply`], the same update a transaction
//! used to run) and caches the result, which is safe because a db is an immutable value
//! and the merge a deterministic function of it. The merged tree is the one a bulk build
//! of the same datoms gives, so history independence holds whenever a tree is observed.
//!
//! The set is merged at once when it outgrows its limit (see [`BufferedIndex::with_edits`])
//! and never used by a db that loads nodes lazily: a merge there may need to load a node,
//! and that can fail, which an observation (an infallible `&Tree`) cannot report.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use equivalent::{Comparable, Equivalent};
use imbl::OrdSet;

use crate::datom::{Component, Datom, IndexKind};
use crate::error::Error;
use crate::tree::{Cursor, Edit, NodeSource, Tree};

/// Edits per index a db holds unmerged by default (see [`crate::Db::with_edit_buffer`]).
pub const DEFAULT_EDIT_BUFFER: usize = 8192;

/// One unmerged edit of an index: the datom to put (`added`) or the key to delete
/// (`!added`), ordered by the index's key (tx and `added` are not part of it). The datom
/// is behind an `Arc` because inserting into the persistent set copies the set's nodes on
/// the path (up to 64 entries each): copying a pointer is much cheaper than a datom.
#[derive(Clone, Debug)]
struct Pending {
    kind: IndexKind,
    datom: Arc<Datom>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Pending) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Pending) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Pending) -> Ordering {
        self.kind.cmp(&self.datom, &other.datom)
    }
}

/// An entry of a persistent ordered set keyed in one index's order: a pending edit here,
/// a history entry in [`crate::history`].
pub(crate) trait IndexKeyed {
    /// The index whose order the entry's datom is keyed in, and the datom.
    fn index_key(&self) -> (IndexKind, &Datom);
}

impl IndexKeyed for Pending {
    fn index_key(&self) -> (IndexKind, &Datom) {
        (self.kind, &self.datom)
    }
}

/// A position between keyed entries, from a seek prefix: just before every key that
/// matches or follows the prefix (`after: false`), or just after every key that matches
/// or precedes it (`after: true`). Never equal to a key.
pub(crate) struct Probe<'a> {
    pub(crate) kind: IndexKind,
    pub(crate) prefix: &'a [Component],
    pub(crate) after: bool,
}

impl<K: IndexKeyed> Equivalent<K> for Probe<'_> {
    fn equivalent(&self, _: &K) -> bool {
        false
    }
}

impl<K: IndexKeyed> Comparable<K> for Probe<'_> {
    fn compare(&self, key: &K) -> Ordering {
        let (_, datom) = key.index_key();
        let ord = self.kind.cmp_prefix(datom, self.prefix);
        if self.after {
            if ord == Ordering::Greater {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        } else if ord == Ordering::Less {
            Ordering::Greater
        } else {
            Ordering::Less
        }
    }
}

/// An index: its tree and, when transactions left edits unmerged, those edits. Cheap to
/// clone; clones share the merged tree once one of them computes it.
#[derive(Clone)]
pub(crate) struct BufferedIndex {
    tree: Tree,
    buffer: Option<Arc<Buffer>>,
}

/// The edits an index has not merged into its tree yet (never empty).
struct Buffer {
    edits: OrdSet<Pending>,
    /// Datoms of the tree with the edits applied.
    len: u64,
    /// The tree with `edits` merged, computed on first observation.
    merged: OnceLock<Tree>,
}

impl From<Tree> for BufferedIndex {
    fn from(tree: Tree) -> BufferedIndex {
        BufferedIndex { tree, buffer: None }
    }
}

impl BufferedIndex {
    /// The tree with every edit merged: the tree a bulk build of the index's datoms gives.
    /// Merges on the first call (a tree with no unloaded node: see [`Self::with_edits`]).
    pub(crate) fn tree(&self) -> &Tree {
        let Some(buffer) = &self.buffer else {
            return &self.tree;
        };
        buffer.merged.get_or_init(|| {
            let edits = buffer.edits.iter().map(Pending::edit).collect();
            // Edits are buffered only for trees without unloaded nodes, and only a load
            // can make `apply` fail.
            self.tree
                .apply(edits, None)
                .expect("a buffered index's tree has every node loaded")
        })
    }

    /// The number of datoms in the index.
    pub(crate) fn len(&self) -> u64 {
        self.buffer
            .as_ref()
            .map_or_else(|| self.tree.len(), |b| b.len)
    }

    /// The number of edits not merged into the tree yet (0 once observed).
    pub(crate) fn pending(&self) -> usize {
        self.unmerged().map_or(0, OrdSet::len)
    }

    /// The edits not merged yet, if any (none once the merged tree is computed).
    fn unmerged(&self) -> Option<&OrdSet<Pending>> {
        self.buffer
            .as_ref()
            .filter(|b| b.merged.get().is_none())
            .map(|b| &b.edits)
    }

    /// The index with `edits` applied in order (of several edits of one key the last
    /// wins). Each put must add a key the index does not hold and each delete remove one
    /// it holds, as [`crate::Db::apply_log_entry`]'s caller guarantees: the datom count
    /// follows from that.
    ///
    /// The edits are buffered unless `limit` is 0 or `source` is set (a lazily restored
    /// db); the buffer is merged into the tree at once when it grows past `limit` edits
    /// and past half the tree's datoms, so merging costs each edit at most two datoms
    /// rewritten, amortized, however large the tree.
    ///
    /// # Errors
    /// A load error of a lazily restored tree (then nothing is buffered).
    pub(crate) fn with_edits(
        &self,
        edits: Vec<Edit>,
        limit: usize,
        source: Option<&Arc<dyn NodeSource>>,
    ) -> Result<BufferedIndex, Error> {
        if edits.is_empty() {
            return Ok(self.clone());
        }
        let mut len = self.len();
        for e in &edits {
            match e {
                Edit::Put(_) => len += 1,
                Edit::Delete(_) => len = len.saturating_sub(1),
            }
        }
        if limit == 0 || source.is_some() {
            return Ok(self.tree().apply(edits, source)?.into());
        }
        let kind = self.tree.kind();
        let (tree, mut buffer) = match self.unmerged() {
            Some(edits) => (self.tree.clone(), edits.clone()),
            None => (self.tree().clone(), OrdSet::new()),
        };
        for e in edits {
            let datom = match e {
                Edit::Put(d) => Datom { added: true, ..d },
                Edit::Delete(d) => Datom { added: false, ..d },
            };
            buffer.insert(Pending {
                kind,
                datom: Arc::new(datom),
            });
        }
        let half = usize::try_from(tree.len() / 2).unwrap_or(usize::MAX);
        let full = buffer.len() > limit.max(half);
        let index = BufferedIndex {
            tree,
            buffer: Some(Arc::new(Buffer {
                edits: buffer,
                len,
                merged: OnceLock::new(),
            })),
        };
        if full {
            return Ok(index.tree().clone().into());
        }
        Ok(index)
    }

    /// Datoms from the first at or after `prefix`, forward; with `within`, only those
    /// matching it. Buffered edits are merged in.
    ///
    /// # Errors
    /// A load error of a lazily restored tree.
    pub(crate) fn seek(
        &self,
        source: Option<Arc<dyn NodeSource>>,
        prefix: &[Component],
        within: Option<Vec<Component>>,
    ) -> Result<Datoms, Error> {
        let (tree, edits) = self.view();
        let cursor = Cursor::seek(tree, source, prefix, within.clone())?;
        let Some(edits) = edits else {
            return Ok(Datoms::plain(cursor));
        };
        let probe = Probe {
            kind: self.tree.kind(),
            prefix,
            after: false,
        };
        let next = edits
            .range::<_, Probe<'_>>((Bound::Included(&probe), Bound::Unbounded))
            .next()
            .cloned();
        Ok(Datoms::merging(cursor, edits.clone(), next, false, within))
    }

    /// Datoms from the last at or before `prefix`, backward. Buffered edits are merged in.
    ///
    /// # Errors
    /// A load error of a lazily restored tree.
    pub(crate) fn seek_back(
        &self,
        source: Option<Arc<dyn NodeSource>>,
        prefix: &[Component],
    ) -> Result<Datoms, Error> {
        let (tree, edits) = self.view();
        let cursor = Cursor::seek_back(tree, source, prefix)?;
        let Some(edits) = edits else {
            return Ok(Datoms::plain(cursor));
        };
        let probe = Probe {
            kind: self.tree.kind(),
            prefix,
            after: true,
        };
        let next = edits
            .range::<_, Probe<'_>>((Bound::Unbounded, Bound::Included(&probe)))
            .next_back()
            .cloned();
        Ok(Datoms::merging(cursor, edits.clone(), next, true, None))
    }

    /// The tree to read and the edits to merge into it (none once merged).
    fn view(&self) -> (&Tree, Option<&OrdSet<Pending>>) {
        match &self.buffer {
            None => (&self.tree, None),
            Some(b) => match b.merged.get() {
                Some(merged) => (merged, None),
                None => (&self.tree, Some(&b.edits)),
            },
        }
    }
}

impl Pending {
    fn edit(&self) -> Edit {
        let datom = Datom::clone(&self.datom);
        if datom.added {
            Edit::Put(datom)
        } else {
            Edit::Delete(datom)
        }
    }
}

/// An iterator of datoms from an index, in index order (or reverse); `Err` only when a
/// lazily restored db cannot load a node. Edits a db has not merged into its trees yet
/// are merged in as it goes, so it yields exactly the index's current datoms.
pub struct Datoms {
    tree: Cursor,
    merge: Option<Merge>,
}

/// The buffered side of a [`Datoms`].
struct Merge {
    edits: OrdSet<Pending>,
    /// The next buffered edit in iteration order, if any is left in range.
    next: Option<Pending>,
    reverse: bool,
    within: Option<Vec<Component>>,
    /// A datom read from the tree and not yielded yet.
    peeked: Option<Datom>,
    tree_done: bool,
}

impl Datoms {
    fn plain(tree: Cursor) -> Datoms {
        Datoms { tree, merge: None }
    }

    fn merging(
        tree: Cursor,
        edits: OrdSet<Pending>,
        next: Option<Pending>,
        reverse: bool,
        within: Option<Vec<Component>>,
    ) -> Datoms {
        let mut merge = Merge {
            edits,
            next: None,
            reverse,
            within,
            peeked: None,
            tree_done: false,
        };
        merge.next = next.filter(|p| merge.in_range(p));
        Datoms {
            tree,
            merge: Some(merge),
        }
    }
}

impl Merge {
    fn in_range(&self, p: &Pending) -> bool {
        self.within
            .as_ref()
            .is_none_or(|w| p.kind.cmp_prefix(&p.datom, w).is_eq())
    }

    /// Takes the next buffered edit and finds the one after it.
    fn advance(&mut self) -> Option<Pending> {
        let current = self.next.take()?;
        let after = if self.reverse {
            self.edits
                .range::<_, Pending>((Bound::Unbounded, Bound::Excluded(&current)))
                .next_back()
        } else {
            self.edits
                .range::<_, Pending>((Bound::Excluded(&current), Bound::Unbounded))
                .next()
        };
        self.next = after.filter(|p| self.in_range(p)).cloned();
        Some(current)
    }

    fn step(&mut self, tree: &mut Cursor) -> Option<Result<Datom, Error>> {
        loop {
            if self.peeked.is_none() && !self.tree_done {
                match tree.next() {
                    Some(Ok(d)) => self.peeked = Some(d),
                    Some(Err(e)) => {
                        // A load failure ends the iteration after reporting it once.
                        self.tree_done = true;
                        self.next = None;
                        return Some(Err(e));
                    }
                    None => self.tree_done = true,
                }
            }
            let Some(edit) = &self.next else {
                return self.peeked.take().map(Ok);
            };
            let ord = match &self.peeked {
                None => Ordering::Greater,
                Some(d) => {
                    let ord = edit.kind.cmp(d, &edit.datom);
                    if self.reverse {
                        ord.reverse()
                    } else {
                        ord
                    }
                }
            };
            if ord == Ordering::Less {
                return self.peeked.take().map(Ok);
            }
            if ord == Ordering::Equal {
                self.peeked = None;
            }
            if let Some(edit) = self.advance() {
                if edit.datom.added {
                    return Some(Ok(Arc::unwrap_or_clone(edit.datom)));
                }
            }
        }
    }
}

impl Iterator for Datoms {
    type Item = Result<Datom, Error>;

    fn next(&mut self) -> Option<Result<Datom, Error>> {
        match &mut self.merge {
            None => self.tree.next(),
            Some(merge) => merge.step(&mut self.tree),
        }
    }
}
