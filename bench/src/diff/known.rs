//! Divergences already known: each an item of an open issue that other work is fixing,
//! recognised by what its first divergence looks like. When a fix lands, its entry goes
//! (the CI run then proves the divergence gone), so this list only shrinks.

use super::Divergence;

/// A known divergence: the issue item it is, and how to recognise it.
pub struct Known {
    /// The issue and item (`"#16.1 entity id allocation order"`).
    pub item: &'static str,
    /// Whether a first divergence is this one.
    pub matches: fn(&Divergence) -> bool,
}

/// Every known divergence, most specific first.
pub const KNOWN: &[Known] = &[];

/// The known item `d` is, if any.
pub fn classify(d: &Divergence) -> Option<&'static str> {
    KNOWN.iter().find(|k| (k.matches)(d)).map(|k| k.item)
}
