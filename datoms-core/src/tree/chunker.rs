//! Where node boundaries fall: a pure function of content, so the same datoms always give
//! the same nodes.
//!
//! # The rule
//! Scanning one tree level's items left to right, the chunker keeps the node's estimated
//! size so far, `s` (in bytes; zero at the start of every node). Item `x` adds its weight
//! `w(x)` = the length of its boundary key plus a per-level constant for the rest of its
//! encoding ([`LEAF_ITEM_OVERHEAD`], [`BRANCH_ITEM_OVERHEAD`]), about its encoded size.
//! The node ends after `x` when
//! - `xxh3(key(x), seed = level salt) < 2⁶⁴ · ((s + w)⁴ − s⁴) / λ⁴` (the content-defined
//!   cut; certain once the fraction reaches 1), or
//! - `s + w` reaches the hard maximum, 4 × the target size (a forced cut),
//!
//! except that a branch never ends after its first child (so each level above the leaves
//! has fewer nodes than the one below, and a tree always has a root).
//!
//! The cut probability is the hazard of a Weibull distribution of shape 4 and scale λ over
//! the bytes `(s, s + w]`, to first order (Dolt's size-aware rule): it is tiny for a small
//! node and rises steeply past the target, so node sizes gather around the target instead
//! of spreading geometrically as with a constant probability (Noms' rule). That matters for
//! I/O: a random change lands in a node with probability proportional to its size, so the
//! node it fetches is on average `E[size²] / E[size]` bytes, about 1.08 × the mean here
//! against 1.5–2 × with the geometric rule. λ is 1.1 × the target, which puts the mean
//! size at the target. Sizes are measured in estimated bytes rather than items so that
//! nodes of long strings hold fewer datoms and all nodes cost about the same to fetch. The
//! target is [`TreeConfig`]'s item target times [`LEAF_ITEM_BYTES`] or
//! [`BRANCH_ITEM_BYTES`] (capped at [`MAX_TARGET_BYTES`]); all arithmetic is on integers,
//! so every platform cuts alike.
//!
//! `key(x)` is the index key of the datom (for branches: of the child's first datom)
//! without `tx` (see `IndexKind::boundary_key`), so a re-asserted datom neither moves
//! a boundary nor changes a weight. The level salt makes the levels independent of each
//! other.
//!
//! # Why this stays history-independent under incremental edits
//! The chunker's only state is the size and item count since the last cut, both zero at
//! the start of every node: whether a node ends after an item depends only on the items
//! from the node's start up to it. So re-chunking may start at the first item of any
//! existing node, and once it cuts exactly where an old node ended, with no edits left
//! before the next node, everything after is unchanged. [`crate::tree`]'s incremental
//! update relies on this, and the proptests in `tree/tests.rs` (same set, any order or
//! batching: the same nodes as a bulk build) guard it.
//!
//! The price of a size-aware rule is that an edit moves a boundary a little more often
//! than with a constant probability (a deletion lowers the cut probability at the node's
//! end; an insertion raises it before the end), so an edit rewrites on average a few
//! percent more nodes, which the smaller fetched nodes more than pay for.

use xxhash_rust::xxh3::xxh3_64_with_seed;

#[cfg(test)]
use crate::datom::Datom;
use crate::datom::{DatomRef, IndexKind};

/// Bytes per leaf item that [`TreeConfig::leaf_target`] counts in: about one encoded
/// datom of the typical size (an entity id, a keyword, a short value and a tx).
pub const LEAF_ITEM_BYTES: u32 = 32;

/// Bytes per branch item that [`TreeConfig::branch_target`] counts in: about one
/// encoded branch entry (a first datom, a 32-byte address and a count).
pub const BRANCH_ITEM_BYTES: u32 = 72;

/// The weight of a leaf item beyond its boundary key: array header and tx, less the
/// fixed-width entity id of the key.
pub const LEAF_ITEM_OVERHEAD: u32 = 3;

/// The weight of a branch item beyond its boundary key: the entry's and the datom's array
/// headers, the datom's tx, the child address and the count.
pub const BRANCH_ITEM_OVERHEAD: u32 = 42;

/// The largest target node size, in bytes; larger targets are capped (this keeps the
/// cut arithmetic within 128 bits).
pub const MAX_TARGET_BYTES: u32 = 1 << 22;

/// Node size parameters of a tree. Stored in every commit: all replicas of a database must
/// chunk alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TreeConfig {
    /// Target leaf size, in typical datoms: leaves aim at `leaf_target ×`
    /// [`LEAF_ITEM_BYTES`] encoded bytes, so they hold about this many datoms of 32 bytes,
    /// fewer larger ones.
    pub leaf_target: u32,
    /// Target branch size, in children: branches aim at `branch_target ×`
    /// [`BRANCH_ITEM_BYTES`] encoded bytes.
    pub branch_target: u32,
}

impl Default for TreeConfig {
    /// 64 datoms per leaf and 24 children per branch: about 2 KiB leaves and 1.7 KiB
    /// branches. A random change then costs about 2 KiB of I/O per level. Small branches
    /// keep the level-1 nodes that almost every change rewrites cheap, at the cost of one
    /// more level: a 1M-datom index is 4 to 5 levels deep (a replica a few commits behind
    /// fetches every level in one round trip anyway, from the commit manifests).
    fn default() -> TreeConfig {
        TreeConfig {
            leaf_target: 64,
            branch_target: 24,
        }
    }
}

impl TreeConfig {
    /// Checks the parameters are usable (targets of at least 4).
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.leaf_target < 4 || self.branch_target < 4 {
            return Err(crate::Error::InvalidValue {
                reason: format!(
                    "tree targets must be at least 4, got a leaf target of {} and a branch \
                     target of {}",
                    self.leaf_target, self.branch_target
                ),
            });
        }
        Ok(())
    }

    /// The target node size at `level`, in estimated bytes.
    fn target_bytes(&self, level: u8) -> u64 {
        let (items, unit) = if level == 0 {
            (self.leaf_target, LEAF_ITEM_BYTES)
        } else {
            (self.branch_target, BRANCH_ITEM_BYTES)
        };
        (u64::from(items.max(4)) * u64::from(unit)).min(u64::from(MAX_TARGET_BYTES))
    }
}

/// Decides the cuts of one level, item by item.
pub(crate) struct Chunker {
    kind: IndexKind,
    seed: u64,
    /// The weight of an item beyond its boundary key.
    overhead: u64,
    /// Items a node holds at least (unless it is the last of its level).
    min_items: u32,
    /// The hard maximum size: a node ends once its size reaches it.
    max: u64,
    /// `λ⁴`, λ in bytes.
    lambda4: u128,
    /// `⌊2⁹⁶ / λ⁴⌋`: `(numerator × factor) >> 32` is the 64-bit cut threshold.
    factor: u128,
    /// The node's estimated size so far, in bytes.
    size: u64,
    /// The node's items so far.
    items: u32,
    scratch: Vec<u8>,
}

impl Chunker {
    pub(crate) fn new(kind: IndexKind, level: u8, config: &TreeConfig) -> Chunker {
        let target = config.target_bytes(level);
        let lambda = u128::from(target + target / 10);
        let lambda4 = lambda.pow(4);
        let (overhead, min_items) = if level == 0 {
            (LEAF_ITEM_OVERHEAD, 1)
        } else {
            (BRANCH_ITEM_OVERHEAD, 2)
        };
        Chunker {
            kind,
            // Golden-ratio multiples keep the seeds of adjacent levels far apart.
            seed: 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(u64::from(level) + 1),
            overhead: u64::from(overhead),
            min_items,
            max: 4 * target,
            lambda4,
            factor: (1u128 << 96) / lambda4,
            size: 0,
            items: 0,
            scratch: Vec::with_capacity(64),
        }
    }

    /// Starts a new node (the state at the first item of every node).
    pub(crate) fn reset(&mut self) {
        self.size = 0;
        self.items = 0;
    }

    /// Feeds the next item's key; true if the node ends after it.
    pub(crate) fn push(&mut self, key: &DatomRef<'_>) -> bool {
        self.kind.boundary_key(key, &mut self.scratch);
        // At most `max`, so `after < 2 × max ≤ 2²⁵` and its fourth power fits in 128 bits.
        let weight = (self.scratch.len() as u64 + self.overhead).min(self.max);
        let before = self.size;
        let after = before + weight;
        self.size = after;
        self.items += 1;
        if self.items < self.min_items {
            return false;
        }
        let cut = after >= self.max || {
            let grown = u128::from(after).pow(4) - u128::from(before).pow(4);
            // `grown < λ⁴` below, so the product stays under 2⁹⁶.
            grown >= self.lambda4 || {
                let threshold = (grown * self.factor) >> 32;
                u128::from(xxh3_64_with_seed(&self.scratch, self.seed)) < threshold
            }
        };
        if cut {
            self.reset();
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datom::TX0;
    use crate::value::Value;

    /// The lengths of the nodes `chunker` cuts `keys` into (the last one may be partial).
    fn runs(chunker: &mut Chunker, keys: &[Datom]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut n = 0;
        for k in keys {
            n += 1;
            if chunker.push(&k.borrowed()) {
                out.push(n);
                n = 0;
            }
        }
        out
    }

    #[test]
    fn the_hard_maximum_bounds_every_node() {
        // One key repeated: whether the hash cuts early or not, a node ends by `max`.
        let key = Datom::new(7, ":a/b", Value::Long(1), TX0 + 1);
        let mut key_bytes = Vec::new();
        IndexKind::Eavt.boundary_key(&key.borrowed(), &mut key_bytes);
        let config = TreeConfig::default();
        let mut chunker = Chunker::new(IndexKind::Eavt, 0, &config);
        let weight = (key_bytes.len() as u64 + u64::from(LEAF_ITEM_OVERHEAD)) as usize;
        let max_items = (4 * config.target_bytes(0) as usize).div_ceil(weight);
        let lens = runs(&mut chunker, &vec![key; 10 * max_items]);
        assert!(!lens.is_empty());
        assert!(lens.iter().all(|&n| n <= max_items), "{lens:?}");
    }

    #[test]
    fn a_branch_never_ends_after_its_first_child() {
        // Children whose first datoms are far bigger than the target: every branch still
        // gets two of them, so building up levels always ends in one root. (The longest
        // value a key holds inline: a longer one is a fixed-size reference.)
        let big = "x".repeat(crate::large::OUT_OF_LINE_BYTES - 1);
        let keys: Vec<Datom> = (1..50)
            .map(|e| Datom::new(e, ":a/b", Value::string(&big), TX0 + 1))
            .collect();
        let small = TreeConfig {
            leaf_target: 4,
            branch_target: 4,
        };
        let mut leaves = Chunker::new(IndexKind::Eavt, 0, &small);
        assert!(runs(&mut leaves, &keys).iter().all(|&n| n == 1));
        let mut branches = Chunker::new(IndexKind::Eavt, 1, &small);
        assert!(runs(&mut branches, &keys).iter().all(|&n| n == 2));
    }

    #[test]
    fn huge_targets_are_capped_without_overflow() {
        let config = TreeConfig {
            leaf_target: u32::MAX,
            branch_target: u32::MAX,
        };
        assert_eq!(config.target_bytes(0), u64::from(MAX_TARGET_BYTES));
        let big = "y".repeat(crate::large::OUT_OF_LINE_BYTES - 1);
        let keys: Vec<Datom> = (1..6000)
            .map(|e| Datom::new(e, ":a/b", Value::string(&big), TX0 + 1))
            .collect();
        for level in [0, 1] {
            let mut chunker = Chunker::new(IndexKind::Avet, level, &config);
            let lens = runs(&mut chunker, &keys);
            assert!(lens.iter().sum::<usize>() <= keys.len(), "{lens:?}");
            assert!(lens.len() < keys.len() / 100, "{} nodes", lens.len());
        }
    }
}
