//! Leaves in memory: a leaf's datoms packed into one byte buffer.
//!
//! A materialized database holds every leaf of its three indexes, and every datom sits in
//! two or three of them. As a `Vec<Datom>` an index entry costs 64 bytes plus an allocation
//! for its attribute and one for a string value, over 500 bytes per datom in all at 1M
//! datoms. Packed, an entry is typically 5–12 bytes plus its string bytes, and a leaf holds
//! two allocations. Readers work on the packed form: a seek compares borrowed entries
//! ([`DatomRef`]) without allocating, a cursor ([`super::cursor`]) unpacks only the datoms
//! it yields, the incremental update copies entries into new leaves ([`LeafBuilder`])
//! without unpacking them, and only [`crate::diff`] and a backward cursor unpack a whole
//! leaf (tens of datoms, a few microseconds).
//!
//! # Layout
//! This form never leaves the process (nodes are stored in the format of
//! [`super::node`]), so it is free to change. A packed leaf is a table of the keywords it
//! uses (attributes and keyword values, each once, as shared [`Keyword`]s), a table of
//! its symbol and collection values (each once, shared `Arc`s), a table of
//! its large values ([`crate::large`]: strings and byte strings held once per process,
//! shared, not copied into the leaf) and a byte
//! buffer with one entry per datom, in index order:
//!
//! | field | encoding |
//! |---|---|
//! | tag | 1 byte: the value's type ([`Tag`]); for booleans, the value itself |
//! | `e` | zigzag LEB128 of the difference from the previous entry's `e` (0 before the first) |
//! | `a` | LEB128 index into the keyword table |
//! | `tx` | zigzag LEB128 of the difference from the previous entry's `tx` |
//! | `v` | by tag: zigzag LEB128 for longs and instants, LEB128 for refs, 8 bytes for doubles, 16 for UUIDs, a LEB128 keyword-table index for keywords, LEB128 length + bytes for strings and byte strings, a LEB128 index into the large-value table for a large one, a LEB128 index into the composite table for a symbol or collection |
//!
//! Neighbouring entries of an index share or nearly share `e` (EAVT, AEVT) and `tx`, so
//! the differences take one byte or two. Packing is deterministic, so two leaves hold the
//! same datoms exactly when their packed forms are equal.

use std::collections::HashMap;
use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::datom::{Datom, DatomRef, WireDatom};
use crate::large::LargeValue;
use crate::value::{Double, Keyword, Uuid, Value, ValueRef};

/// True for a string or byte string stored out of line.
fn is_large_value(v: ValueRef<'_>) -> bool {
    match v {
        ValueRef::String(s) => crate::large::is_large(s.len()),
        ValueRef::Bytes(b) => crate::large::is_large(b.len()),
        _ => false,
    }
}

/// A leaf's datoms in packed form. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PackedLeaf {
    keywords: Box<[Keyword]>,
    /// Large strings and byte strings (see [`crate::large`]), each held once and shared
    /// with every leaf, db version and log that holds the same value.
    large: Box<[LargeValue]>,
    /// Symbols and collections ([`crate::composite`]), each once, shared.
    composites: Box<[Value]>,
    bytes: Box<[u8]>,
    len: u32,
}

/// The type byte of an entry.
#[repr(u8)]
enum Tag {
    False = 0,
    True = 1,
    Long = 2,
    Double = 3,
    Instant = 4,
    String = 5,
    Keyword = 6,
    Uuid = 7,
    Bytes = 8,
    Ref = 9,
    Large = 10,
    Composite = 11,
}

impl PackedLeaf {
    /// Packs `datoms` (in index order; `added` is not kept: leaves hold assertions).
    pub(crate) fn pack(datoms: &[Datom]) -> PackedLeaf {
        let mut b = LeafBuilder::with_capacity(datoms.len());
        for d in datoms {
            b.push(d.borrowed());
        }
        b.finish()
    }

    /// The datoms, borrowed, in order.
    pub(crate) fn refs(&self) -> impl Iterator<Item = DatomRef<'_>> {
        let mut it = self.iter();
        std::iter::from_fn(move || it.next_ref())
    }

    /// The number of datoms.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// The datoms, in index order.
    pub(crate) fn unpack(&self) -> Vec<Datom> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.iter());
        out
    }

    /// The datoms one at a time, in index order.
    pub(crate) fn iter(&self) -> Unpack<'_> {
        Unpack {
            leaf: self,
            pos: self.start(),
        }
    }

    /// The large values of this leaf, each allocation once.
    pub(crate) fn large(&self) -> &[LargeValue] {
        &self.large
    }

    /// Heap bytes this leaf holds (not counting the keywords' shared text).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.len() + self.keywords.len() * std::mem::size_of::<Keyword>()
    }
}

/// Packs a leaf one datom at a time, from borrowed datoms: the incremental update copies
/// the entries of the leaves it rewrites from their packed form without unpacking them.
#[derive(Default)]
pub(crate) struct LeafBuilder {
    writer: Writer,
    e: u64,
    tx: u64,
    len: usize,
}

impl LeafBuilder {
    /// A builder with room for about `datoms` entries.
    fn with_capacity(datoms: usize) -> LeafBuilder {
        LeafBuilder {
            writer: Writer::new(datoms),
            ..LeafBuilder::default()
        }
    }

    /// Appends the next datom (in index order).
    pub(crate) fn push(&mut self, d: DatomRef<'_>) {
        self.writer.entry(d, self.e, self.tx);
        (self.e, self.tx) = (d.e, d.tx);
        self.len += 1;
    }

    /// True if nothing has been pushed since the last [`LeafBuilder::finish`].
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The leaf packed so far; the builder starts over.
    pub(crate) fn finish(&mut self) -> PackedLeaf {
        let leaf = self.writer.finish(self.len);
        (self.e, self.tx, self.len) = (0, 0, 0);
        leaf
    }
}

#[derive(Default)]
struct Writer {
    keywords: Vec<Keyword>,
    large: Vec<LargeValue>,
    composites: Vec<Value>,
    /// Index of `keywords` by text, kept once the table outgrows a linear scan (a leaf of
    /// keyword values, e.g. AVET of `:db/ident`, can hold hundreds of distinct ones).
    index: HashMap<Keyword, usize>,
    bytes: Vec<u8>,
}

/// Keyword tables up to this size are scanned; larger ones are indexed.
const SCANNED_KEYWORDS: usize = 16;

impl Writer {
    fn new(capacity: usize) -> Writer {
        Writer {
            bytes: Vec::with_capacity(capacity * 12),
            ..Writer::default()
        }
    }

    /// The leaf written so far, in exact-size allocations; the writer's buffers are
    /// cleared and kept, so a builder cutting many leaves grows them once.
    fn finish(&mut self, len: usize) -> PackedLeaf {
        let leaf = PackedLeaf {
            keywords: Box::from(self.keywords.as_slice()),
            large: Box::from(self.large.as_slice()),
            composites: Box::from(self.composites.as_slice()),
            bytes: Box::from(self.bytes.as_slice()),
            // A leaf holds at most 4 × the leaf target datoms (`u32` targets).
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        self.keywords.clear();
        self.large.clear();
        self.composites.clear();
        self.index.clear();
        self.bytes.clear();
        leaf
    }

    fn entry(&mut self, d: DatomRef<'_>, prev_e: u64, prev_tx: u64) {
        let at = self.bytes.len();
        self.bytes.push(0);
        self.zigzag(d.e.wrapping_sub(prev_e));
        let a = self.keyword(d.a);
        self.varint(a);
        self.zigzag(d.tx.wrapping_sub(prev_tx));
        let tag = match d.v {
            v @ (ValueRef::String(_) | ValueRef::Bytes(_)) if is_large_value(v) => {
                let i = self.large_value(v);
                self.varint(i);
                Tag::Large
            }
            ValueRef::Bool(false) => Tag::False,
            ValueRef::Bool(true) => Tag::True,
            ValueRef::Long(n) => {
                self.zigzag(n as u64);
                Tag::Long
            }
            ValueRef::Double(f) => {
                self.bytes
                    .extend_from_slice(&f.get().to_bits().to_le_bytes());
                Tag::Double
            }
            ValueRef::Instant(ms) => {
                self.zigzag(ms as u64);
                Tag::Instant
            }
            ValueRef::String(s) => {
                self.blob(s.as_bytes());
                Tag::String
            }
            ValueRef::Keyword(k) => {
                let i = self.keyword(k);
                self.varint(i);
                Tag::Keyword
            }
            ValueRef::Uuid(u) => {
                self.bytes.extend_from_slice(&u.0);
                Tag::Uuid
            }
            ValueRef::Bytes(b) => {
                self.blob(b);
                Tag::Bytes
            }
            ValueRef::Ref(r) => {
                self.varint(r);
                Tag::Ref
            }
            ValueRef::Composite(v) => {
                let i = match self.composites.iter().position(|c| c == v) {
                    Some(i) => i,
                    None => {
                        self.composites.push(v.clone());
                        self.composites.len() - 1
                    }
                };
                self.varint(i as u64);
                Tag::Composite
            }
        };
        self.bytes[at] = tag as u8;
    }

    /// The index of large value `v` in the leaf's table, adding it on first use (shared
    /// with the allocation `v` borrows from when it is held).
    fn large_value(&mut self, v: ValueRef<'_>) -> u64 {
        let Some(large) = LargeValue::of(v) else {
            return 0;
        };
        let i = match self.large.iter().position(|l| *l == large) {
            Some(i) => i,
            None => {
                self.large.push(large);
                self.large.len() - 1
            }
        };
        i as u64
    }

    /// The table's keyword with this text, added on first use: decoding a leaf makes one
    /// `Keyword` per distinct keyword, not one per datom.
    fn keyword_for_text(&mut self, text: &str) -> Keyword {
        match self.position(text) {
            Some(i) => self.keywords[i].clone(),
            None => {
                let k = Keyword::new_stored(text);
                self.add(k.clone());
                k
            }
        }
    }

    /// The index of `k` in the keyword table, adding it on first use.
    fn keyword(&mut self, k: &Keyword) -> u64 {
        let i = match self.position(k.as_str()) {
            Some(i) => i,
            None => self.add(k.clone()),
        };
        i as u64
    }

    fn position(&self, text: &str) -> Option<usize> {
        if self.keywords.len() <= SCANNED_KEYWORDS {
            self.keywords.iter().position(|k| k.as_str() == text)
        } else {
            self.index.get(text).copied()
        }
    }

    /// Appends `k` to the table (indexing the table once it outgrows a scan); its index.
    fn add(&mut self, k: Keyword) -> usize {
        let i = self.keywords.len();
        self.keywords.push(k);
        if self.keywords.len() > SCANNED_KEYWORDS {
            if self.index.is_empty() {
                let all = self.keywords.iter().enumerate();
                self.index.extend(all.map(|(j, k)| (k.clone(), j)));
            } else {
                self.index.insert(self.keywords[i].clone(), i);
            }
        }
        i
    }

    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.bytes.push(n as u8);
    }

    /// A signed difference (as the two's-complement `u64` of a wrapping subtraction).
    fn zigzag(&mut self, n: u64) {
        let n = n as i64;
        self.varint(((n << 1) ^ (n >> 63)) as u64);
    }

    fn blob(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.bytes.extend_from_slice(b);
    }
}

/// Decodes a leaf's items (`[[e, a, v, tx]…]`, see [`super::node`]) straight into packed
/// form: text is borrowed from the input bytes, so decoding a fetched leaf allocates per
/// leaf, not per datom. The caller checks the order (see [`PackedLeaf::refs`]).
impl<'de> Deserialize<'de> for PackedLeaf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PackedLeaf, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PackedLeaf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of [e, a, v, tx] datoms")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PackedLeaf, A::Error> {
                let mut b = LeafBuilder::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(d) = seq.next_element::<WireDatom<'de>>()? {
                    let a = b.writer.keyword_for_text(&d.a);
                    let kv = d.v.keyword_text().map(|t| b.writer.keyword_for_text(t));
                    let v = match &kv {
                        Some(k) => ValueRef::Keyword(k),
                        None => d.v.borrowed().ok_or_else(|| {
                            serde::de::Error::custom("keyword value without a keyword")
                        })?,
                    };
                    b.push(DatomRef {
                        e: d.e,
                        a: &a,
                        v,
                        tx: d.tx,
                    });
                }
                Ok(b.finish())
            }
        }
        d.deserialize_seq(V)
    }
}

/// Where an unpacking stands: the next entry's byte offset, the entries left, and the
/// previous entry's `e` and `tx` (the bases of the next differences). Plain data, so a
/// cursor can keep it next to the node it reads.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Position {
    at: usize,
    left: usize,
    e: u64,
    tx: u64,
}

impl PackedLeaf {
    /// The position of the first entry.
    pub(crate) fn start(&self) -> Position {
        Position {
            left: self.len(),
            ..Position::default()
        }
    }

    /// The position of the first entry for which `before` is false (all entries for
    /// which it is true must come first, as for `slice::partition_point`). Compares
    /// borrowed entries: nothing is allocated.
    pub(crate) fn seek(&self, mut before: impl FnMut(&DatomRef<'_>) -> bool) -> Position {
        let mut it = self.iter();
        loop {
            let here = it.pos;
            match it.next_ref() {
                Some(d) if before(&d) => {}
                _ => return here,
            }
        }
    }

    /// The entry at `pos`, and `pos` moved past it; `None` at the end.
    pub(crate) fn next_at(&self, pos: &mut Position) -> Option<Datom> {
        let mut it = Unpack {
            leaf: self,
            pos: *pos,
        };
        let d = it.next_ref().map(DatomRef::to_datom);
        *pos = it.pos;
        d
    }
}

/// Unpacks a leaf's datoms in order.
pub(crate) struct Unpack<'a> {
    leaf: &'a PackedLeaf,
    pos: Position,
}

impl<'a> Unpack<'a> {
    fn byte(&mut self) -> u8 {
        let b = self.leaf.bytes.get(self.pos.at).copied().unwrap_or(0);
        self.pos.at += 1;
        b
    }

    fn varint(&mut self) -> u64 {
        let mut n = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            n |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 || shift >= 63 {
                return n;
            }
            shift += 7;
        }
    }

    fn zigzag(&mut self) -> u64 {
        let n = self.varint();
        ((n >> 1) as i64 ^ -((n & 1) as i64)) as u64
    }

    fn take(&mut self, len: usize) -> &'a [u8] {
        let bytes: &'a [u8] = &self.leaf.bytes;
        let start = self.pos.at.min(bytes.len());
        let end = start.saturating_add(len).min(bytes.len());
        self.pos.at = start.saturating_add(len);
        &bytes[start..end]
    }

    fn fixed<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.take(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    fn keyword(&mut self) -> &'a Keyword {
        let i = self.varint() as usize;
        // Written by `Writer::keyword`, so the index is in the table.
        &self.leaf.keywords[i]
    }

    fn value(&mut self, tag: u8) -> ValueRef<'a> {
        match tag {
            t if t == Tag::False as u8 => ValueRef::Bool(false),
            t if t == Tag::True as u8 => ValueRef::Bool(true),
            t if t == Tag::Long as u8 => ValueRef::Long(self.zigzag() as i64),
            t if t == Tag::Double as u8 => {
                let f = f64::from_bits(u64::from_le_bytes(self.fixed()));
                // Packed from a `Double`, so never NaN.
                ValueRef::Double(Double::new(f).unwrap_or(Double::ZERO))
            }
            t if t == Tag::Instant as u8 => ValueRef::Instant(self.zigzag() as i64),
            t if t == Tag::String as u8 => {
                let len = self.varint() as usize;
                // Packed from a `str`, so always valid UTF-8.
                ValueRef::String(std::str::from_utf8(self.take(len)).unwrap_or_default())
            }
            t if t == Tag::Keyword as u8 => ValueRef::Keyword(self.keyword()),
            t if t == Tag::Uuid as u8 => ValueRef::Uuid(Uuid(self.fixed())),
            t if t == Tag::Bytes as u8 => {
                let len = self.varint() as usize;
                ValueRef::Bytes(self.take(len))
            }
            t if t == Tag::Large as u8 => {
                let i = self.varint() as usize;
                // Written by `Writer::large_value`, so the index is in the table.
                match self.leaf.large.get(i) {
                    Some(large) => large.borrowed(),
                    None => ValueRef::Bytes(&[]),
                }
            }
            t if t == Tag::Composite as u8 => {
                let i = self.varint() as usize;
                // Written by `Writer::entry`, so the index is in the table.
                match self.leaf.composites.get(i) {
                    Some(v) => ValueRef::Composite(v),
                    None => ValueRef::Bytes(&[]),
                }
            }
            _ => ValueRef::Ref(self.varint()),
        }
    }

    /// The next entry, borrowed from the leaf.
    fn next_ref(&mut self) -> Option<DatomRef<'a>> {
        if self.pos.left == 0 {
            return None;
        }
        self.pos.left -= 1;
        let tag = self.byte();
        self.pos.e = self.pos.e.wrapping_add(self.zigzag());
        let a = self.keyword();
        self.pos.tx = self.pos.tx.wrapping_add(self.zigzag());
        let v = self.value(tag);
        Some(DatomRef {
            e: self.pos.e,
            a,
            v,
            tx: self.pos.tx,
        })
    }
}

impl Iterator for Unpack<'_> {
    type Item = Datom;

    fn next(&mut self) -> Option<Datom> {
        self.next_ref().map(DatomRef::to_datom)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.pos.left, Some(self.pos.left))
    }
}

impl ExactSizeIterator for Unpack<'_> {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::sync::Arc;

    use super::*;
    use crate::value::Value;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Long),
            any::<f64>()
                .prop_filter("not NaN", |f| !f.is_nan())
                .prop_map(|f| Value::double(f).unwrap_or(Value::Long(0))),
            any::<i64>().prop_map(Value::Instant),
            ".{0,40}".prop_map(|s| Value::string(&s)),
            "[a-z]{1,3}/[a-z]{1,5}".prop_map(|s| Value::keyword(&s)),
            any::<[u8; 16]>().prop_map(|b| Value::Uuid(Uuid(b))),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(Arc::from(b))),
            any::<u64>().prop_map(Value::Ref),
            crate::composite::tests::value(),
        ]
    }

    fn datom() -> impl Strategy<Value = Datom> {
        (any::<u64>(), "[a-c]/[a-c]{1,3}", value(), any::<u64>())
            .prop_map(|(e, a, v, tx)| Datom::new(e, a.as_str(), v, tx))
    }

    proptest! {
        #[test]
        fn unpack_gives_back_what_was_packed(datoms in proptest::collection::vec(datom(), 0..80)) {
            let leaf = PackedLeaf::pack(&datoms);
            prop_assert_eq!(leaf.len(), datoms.len());
            prop_assert_eq!(leaf.unpack(), datoms.clone());
            prop_assert!(leaf == PackedLeaf::pack(&leaf.unpack()), "packing is deterministic");
        }

        #[test]
        fn decoding_leaf_items_packs_exactly_as_packing_the_datoms(
            datoms in proptest::collection::vec(datom(), 0..80),
        ) {
            let bytes = rmp_serde::to_vec(&datoms).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded: PackedLeaf =
                rmp_serde::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(decoded == PackedLeaf::pack(&datoms));
        }

        #[test]
        fn seek_then_next_at_reads_what_partition_point_finds(
            mut datoms in proptest::collection::vec(datom(), 0..80),
            key in datom(),
        ) {
            let kind = crate::datom::IndexKind::Eavt;
            datoms.sort_by(|x, y| kind.cmp(x, y));
            datoms.dedup_by(|x, y| kind.cmp(x, y).is_eq());
            let leaf = PackedLeaf::pack(&datoms);
            let before = |d: &Datom| kind.cmp(d, &key).is_lt();
            let expected = &datoms[datoms.partition_point(before)..];
            let mut pos = leaf.seek(|d| before(&d.to_datom()));
            let mut got = Vec::new();
            while let Some(d) = leaf.next_at(&mut pos) {
                got.push(d);
            }
            prop_assert_eq!(got.as_slice(), expected);
        }

        #[test]
        fn different_datoms_pack_differently(
            x in proptest::collection::vec(datom(), 0..20),
            y in proptest::collection::vec(datom(), 0..20),
        ) {
            prop_assert_eq!(PackedLeaf::pack(&x) == PackedLeaf::pack(&y), x == y);
        }
    }

    #[test]
    fn a_leaf_of_many_distinct_keywords_round_trips() {
        // Past `SCANNED_KEYWORDS` the table is indexed; first-use order must not change.
        let datoms: Vec<Datom> = (0..500u64)
            .map(|i| {
                Datom::new(
                    i,
                    "db/ident",
                    Value::keyword(&format!("k/v{i}")),
                    0x2000_0001,
                )
            })
            .collect();
        let leaf = PackedLeaf::pack(&datoms);
        assert_eq!(leaf.keywords.len(), 501);
        assert_eq!(leaf.unpack(), datoms);
        let bytes = rmp_serde::to_vec(&datoms).unwrap();
        let decoded: PackedLeaf = rmp_serde::from_slice(&bytes).unwrap();
        assert!(decoded == leaf, "decoding packs exactly as packing");
    }

    #[test]
    fn a_typical_entry_packs_into_a_few_bytes() {
        let datoms: Vec<Datom> = (0..64u64)
            .map(|i| {
                Datom::new(
                    1000 + i / 4,
                    "person/age",
                    Value::Long(20 + (i % 40) as i64),
                    0x2000_0100,
                )
            })
            .collect();
        let leaf = PackedLeaf::pack(&datoms);
        // tag + e delta + attribute index + tx delta + value: 5 bytes a datom, plus the
        // first entry's absolute e and tx (6 more bytes) and one keyword in the table.
        let bytes = leaf.heap_bytes();
        assert!(bytes <= 64 * 5 + 6 + 16, "{bytes} bytes");
    }
}
