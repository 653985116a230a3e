//! Datoms, id ranges, and the three index orders.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::value::{checked_stored, CowText, Eid, Keyword, Value, ValueRef, WireValue};

/// A transaction id. Transaction ids are `> TX0`; entity ids are `< TX0`.
pub type Tx = u64;

/// The first transaction id minus one, as in Datascript (`0x20000000`). Entity ids are
/// allocated in `1..TX0`, transaction ids from `TX0 + 1` on, so the two never collide.
pub const TX0: Tx = 0x2000_0000;

/// The largest id Datascript allows (`0x7FFFFFFF`).
pub const EMAX: Eid = 0x7FFF_FFFF;

/// One fact: entity `e` has value `v` for attribute `a`, asserted (or, in tx-data,
/// retracted when `added` is false) by transaction `tx`.
///
/// Indexes hold only current, asserted datoms; `added` matters in tx reports and the log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Datom {
    /// The entity id.
    pub e: Eid,
    /// The attribute.
    pub a: Keyword,
    /// The value.
    pub v: Value,
    /// The transaction that asserted (or retracted) it.
    pub tx: Tx,
    /// `true` for an assertion, `false` for a retraction.
    pub added: bool,
}

impl Datom {
    /// An asserted datom.
    pub fn new(e: Eid, a: impl Into<Keyword>, v: impl Into<Value>, tx: Tx) -> Datom {
        Datom {
            e,
            a: a.into(),
            v: v.into(),
            tx,
            added: true,
        }
    }

    /// The same datom with `added` set to `false`.
    pub fn retraction(mut self) -> Datom {
        self.added = false;
        self
    }
}

/// A datom whose parts are borrowed (e.g. from a packed leaf): what index comparisons
/// read, so a seek compares without allocating.
#[derive(Clone, Copy)]
pub(crate) struct DatomRef<'a> {
    pub(crate) e: Eid,
    pub(crate) a: &'a Keyword,
    pub(crate) v: ValueRef<'a>,
    pub(crate) tx: Tx,
}

impl DatomRef<'_> {
    /// The owned (asserted) datom.
    pub(crate) fn to_datom(self) -> Datom {
        Datom {
            e: self.e,
            a: self.a.clone(),
            v: self.v.to_value(),
            tx: self.tx,
            added: true,
        }
    }
}

impl Datom {
    /// The datom borrowed.
    pub(crate) fn borrowed(&self) -> DatomRef<'_> {
        DatomRef {
            e: self.e,
            a: &self.a,
            v: self.v.borrowed(),
            tx: self.tx,
        }
    }
}

/// The encoded form of a datom in a leaf: `[e, a, v, tx]` (indexes hold only asserted
/// datoms, so `added` is not stored).
impl Serialize for Datom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.e, &self.a, &self.v, self.tx).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Datom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Datom, D::Error> {
        let w = WireDatom::deserialize(d)?;
        Ok(Datom {
            e: w.e,
            a: checked_stored(&w.a).map_err(serde::de::Error::custom)?,
            v: w.v.into_checked_value().map_err(serde::de::Error::custom)?,
            tx: w.tx,
            added: true,
        })
    }
}

/// A datom as `[e, a, v, tx]` decodes, its text borrowed from the input where the
/// deserializer lends it: what the leaf decoder packs without allocating per datom.
pub(crate) struct WireDatom<'de> {
    pub(crate) e: Eid,
    pub(crate) a: Cow<'de, str>,
    pub(crate) v: WireValue<'de>,
    pub(crate) tx: Tx,
}

impl<'de> Deserialize<'de> for WireDatom<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<WireDatom<'de>, D::Error> {
        let (e, a, v, tx) = <(Eid, CowText<'de>, WireValue<'de>, Tx)>::deserialize(d)?;
        Ok(WireDatom { e, a: a.0, v, tx })
    }
}

/// Which index: the sort order of its datoms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IndexKind {
    /// Entity, attribute, value, tx: every datom.
    Eavt,
    /// Attribute, entity, value, tx: every datom.
    Aevt,
    /// Attribute, value, entity, tx: datoms of indexed, unique and ref attributes.
    Avet,
}

impl std::fmt::Display for IndexKind {
    /// The index as EDN names it: `:eavt`, `:aevt`, `:avet`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IndexKind::Eavt => ":eavt",
            IndexKind::Aevt => ":aevt",
            IndexKind::Avet => ":avet",
        })
    }
}

impl IndexKind {
    /// All three indexes, in the order commits list their roots.
    pub const ALL: [IndexKind; 3] = [IndexKind::Eavt, IndexKind::Aevt, IndexKind::Avet];

    /// Compares two datoms in this index's order. `tx` and `added` are not part of the
    /// key: an index holds at most one current datom per (e, a, v), so a retraction finds
    /// its datom whatever tx asserted it.
    pub fn cmp(self, x: &Datom, y: &Datom) -> Ordering {
        self.cmp_ref(&x.borrowed(), &y.borrowed())
    }

    /// [`IndexKind::cmp`] of borrowed datoms.
    pub(crate) fn cmp_ref(self, x: &DatomRef<'_>, y: &DatomRef<'_>) -> Ordering {
        match self {
            IndexKind::Eavt => {
                x.e.cmp(&y.e)
                    .then_with(|| x.a.cmp(y.a))
                    .then_with(|| x.v.cmp(&y.v))
            }
            IndexKind::Aevt => {
                x.a.cmp(y.a)
                    .then_with(|| x.e.cmp(&y.e))
                    .then_with(|| x.v.cmp(&y.v))
            }
            IndexKind::Avet => {
                x.a.cmp(y.a)
                    .then_with(|| x.v.cmp(&y.v))
                    .then_with(|| x.e.cmp(&y.e))
            }
        }
    }

    /// Compares a datom with a prefix of components given in this index's order (e.g.
    /// `[e, a]` for EAVT). Components past the prefix compare equal, so
    /// `cmp_prefix(d, p) == Equal` means "d matches p".
    pub fn cmp_prefix(self, d: &Datom, prefix: &[Component]) -> Ordering {
        self.cmp_prefix_ref(&d.borrowed(), prefix)
    }

    /// [`IndexKind::cmp_prefix`] of a borrowed datom.
    pub(crate) fn cmp_prefix_ref(self, d: &DatomRef<'_>, prefix: &[Component]) -> Ordering {
        for (i, c) in prefix.iter().enumerate() {
            let slot = self.slot(i);
            let ord = match (slot, c) {
                (Slot::E, Component::E(e)) => d.e.cmp(e),
                (Slot::A, Component::A(a)) => d.a.cmp(a),
                (Slot::V, Component::V(v)) => d.v.cmp(&v.borrowed()),
                (Slot::Tx, Component::Tx(t)) => d.tx.cmp(t),
                // A component of the wrong kind for this position never matches; callers
                // validate prefixes with `check_prefix` first.
                _ => Ordering::Less,
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }

    /// Checks that `prefix` names components in this index's order.
    pub fn check_prefix(self, prefix: &[Component]) -> Result<(), crate::Error> {
        if prefix.len() > 4 {
            return Err(crate::Error::InvalidIndexComponents {
                index: self,
                reason: format!("{} components given, at most 4", prefix.len()),
            });
        }
        for (i, c) in prefix.iter().enumerate() {
            let ok = matches!(
                (self.slot(i), c),
                (Slot::E, Component::E(_))
                    | (Slot::A, Component::A(_))
                    | (Slot::V, Component::V(_))
                    | (Slot::Tx, Component::Tx(_))
            );
            if !ok {
                return Err(crate::Error::InvalidIndexComponents {
                    index: self,
                    reason: format!(
                        "component {i} is {}, expected {}",
                        c.describe(),
                        self.slot(i).describe()
                    ),
                });
            }
        }
        Ok(())
    }

    fn slot(self, i: usize) -> Slot {
        const EAVT: [Slot; 4] = [Slot::E, Slot::A, Slot::V, Slot::Tx];
        const AEVT: [Slot; 4] = [Slot::A, Slot::E, Slot::V, Slot::Tx];
        const AVET: [Slot; 4] = [Slot::A, Slot::V, Slot::E, Slot::Tx];
        match self {
            IndexKind::Eavt => EAVT[i],
            IndexKind::Aevt => AEVT[i],
            IndexKind::Avet => AVET[i],
        }
    }

    /// Feeds the bytes that decide node boundaries for `d` into `out`: the index key
    /// without `tx`, so re-asserting a datom never moves a boundary.
    pub(crate) fn boundary_key(self, d: &DatomRef<'_>, out: &mut Vec<u8>) {
        out.clear();
        let e = d.e.to_be_bytes();
        let a = d.a.as_str().as_bytes();
        let push_v = |out: &mut Vec<u8>| {
            // The value's canonical encoding as nodes store it (a large value as its
            // reference); encoding a Value into a Vec cannot fail.
            let _ = crate::large::out_of_line(|| rmp_serde::encode::write(out, &d.v));
        };
        match self {
            IndexKind::Eavt => {
                out.extend_from_slice(&e);
                out.extend_from_slice(a);
                out.push(0);
                push_v(out);
            }
            IndexKind::Aevt => {
                out.extend_from_slice(a);
                out.push(0);
                out.extend_from_slice(&e);
                push_v(out);
            }
            IndexKind::Avet => {
                out.extend_from_slice(a);
                out.push(0);
                push_v(out);
                out.extend_from_slice(&e);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    E,
    A,
    V,
    Tx,
}

impl Slot {
    /// What goes in this slot, for messages.
    fn describe(self) -> &'static str {
        match self {
            Slot::E => "an entity id",
            Slot::A => "an attribute",
            Slot::V => "a value",
            Slot::Tx => "a transaction id",
        }
    }
}

/// One component of an index lookup, as in Datascript's `(d/datoms db :eavt e a v)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Component {
    /// An entity id.
    E(Eid),
    /// An attribute.
    A(Keyword),
    /// A value.
    V(Value),
    /// A transaction id.
    Tx(Tx),
}

impl Component {
    /// The component for messages: `entity 1`, `attribute :a/b`, `value "x"`, `tx 536870913`.
    fn describe(&self) -> String {
        match self {
            Component::E(e) => format!("entity {e}"),
            Component::A(a) => format!("attribute {a}"),
            Component::V(v) => format!("value {v}"),
            Component::Tx(t) => format!("tx {t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_orders_sort_by_their_components() {
        let d1 = Datom::new(1, ":b", 5i64, TX0 + 1);
        let d2 = Datom::new(2, ":a", 9i64, TX0 + 1);
        assert_eq!(IndexKind::Eavt.cmp(&d1, &d2), Ordering::Less);
        assert_eq!(IndexKind::Aevt.cmp(&d1, &d2), Ordering::Greater);
        let d3 = Datom::new(3, ":a", 1i64, TX0 + 1);
        assert_eq!(IndexKind::Avet.cmp(&d3, &d2), Ordering::Less);
        assert_eq!(IndexKind::Aevt.cmp(&d3, &d2), Ordering::Greater);
    }

    #[test]
    fn prefix_compare_matches_partial_keys() {
        let d = Datom::new(7, ":person/name", "Ann", TX0 + 3);
        let p = [Component::E(7), Component::A(Keyword::new(":person/name"))];
        assert_eq!(IndexKind::Eavt.cmp_prefix(&d, &p), Ordering::Equal);
        assert_eq!(
            IndexKind::Eavt.cmp_prefix(&d, &[Component::E(8)]),
            Ordering::Less
        );
        assert!(IndexKind::Eavt.check_prefix(&p).is_ok());
        assert!(IndexKind::Aevt.check_prefix(&p).is_err());
    }

    #[test]
    fn boundary_key_ignores_tx() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        IndexKind::Avet.boundary_key(&Datom::new(1, ":x", 2i64, TX0 + 1).borrowed(), &mut a);
        IndexKind::Avet.boundary_key(&Datom::new(1, ":x", 2i64, TX0 + 9).borrowed(), &mut b);
        assert_eq!(a, b);
    }
}
