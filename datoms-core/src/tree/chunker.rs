//! Where node boundaries fall: a pure function of content, so the same datoms always give
//! the same nodes.
//!
//! # The rule
//! Scanning one tree level's items left to right, a node ends after item `x` when either
//! - the node has at least `min` items and `xxh3(key(x), seed = level salt) < threshold`
//!   (the content-defined cut; the probability is `1 / (target - min)`), or
//! - the node has reached `max` items (a forced cut).
//!
//! `key(x)` is the index key of the datom (for branches: of the child's first datom)
//! without `tx` (see [`IndexKind::boundary_key`]). The level salt makes the levels
//! independent of each other.
//!
//! # Why this stays history-independent under incremental edits
//! The chunker's only state is the item count since the last cut, and that count is zero
//! at the start of every node. So re-chunking may start at the first item of any existing
//! node, and once it cuts exactly where an old node ended, with no edits left before the
//! next node, everything after is unchanged. [`crate::tree`]'s incremental update relies on
//! this, and the proptest `same_set_any_batching_gives_the_same_root` guards it.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::datom::{Datom, IndexKind};

/// Node size parameters of a tree. Stored in every commit: all replicas of a database must
/// chunk alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TreeConfig {
    /// Mean number of datoms per leaf.
    pub leaf_target: u32,
    /// Mean number of children per branch.
    pub branch_target: u32,
}

impl Default for TreeConfig {
    /// 64 datoms per leaf and 64 children per branch: about 2–3 KiB leaves and 4–5 KiB
    /// branches for typical datoms, so one changed datom costs a few KiB of I/O per level,
    /// while a 1M-datom index is only 4 levels deep (few round trips for a deep walk).
    fn default() -> TreeConfig {
        TreeConfig {
            leaf_target: 64,
            branch_target: 64,
        }
    }
}

impl TreeConfig {
    /// Checks the parameters are usable (targets of at least 4).
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.leaf_target < 4 || self.branch_target < 4 {
            return Err(crate::Error::InvalidValue {
                reason: format!("tree targets must be at least 4, got {self:?}"),
            });
        }
        Ok(())
    }

    pub(crate) fn target(&self, level: u8) -> u32 {
        if level == 0 {
            self.leaf_target
        } else {
            self.branch_target
        }
    }
}

/// Decides the cuts of one level, item by item.
pub(crate) struct Chunker {
    kind: IndexKind,
    seed: u64,
    min: u32,
    max: u32,
    threshold: u64,
    count: u32,
    scratch: Vec<u8>,
}

impl Chunker {
    pub(crate) fn new(kind: IndexKind, level: u8, config: &TreeConfig) -> Chunker {
        let target = config.target(level).max(4);
        let min = target / 4;
        let max = target * 4;
        let span = u64::from(target - min).max(1);
        Chunker {
            kind,
            // Golden-ratio multiples keep the seeds of adjacent levels far apart.
            seed: 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(u64::from(level) + 1),
            min,
            max,
            threshold: u64::MAX / span,
            count: 0,
            scratch: Vec::with_capacity(64),
        }
    }

    /// Starts a new node (the state at the first item of every node).
    pub(crate) fn reset(&mut self) {
        self.count = 0;
    }

    /// Feeds the next item's key; true if the node ends after it.
    pub(crate) fn push(&mut self, key: &Datom) -> bool {
        self.count += 1;
        let cut = self.count >= self.max || (self.count >= self.min && self.hits(key));
        if cut {
            self.count = 0;
        }
        cut
    }

    fn hits(&mut self, key: &Datom) -> bool {
        self.kind.boundary_key(key, &mut self.scratch);
        xxh3_64_with_seed(&self.scratch, self.seed) < self.threshold
    }
}
