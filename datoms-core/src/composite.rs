//! Composite values: symbols, vectors, sets and maps held as attribute values, as
//! Datascript holds any value (`[:db/add 1 :path [1 2]]`, `{:db/id 1 :s a}`).
//!
//! # Model
//! - A [`Symbol`] is its text, checked to read back as that symbol.
//! - A vector is a sequence of [`Element`]s: `nil` or a [`Value`]. A list is held as the
//!   vector of its elements: Clojure's `(= '(1 2) [1 2])` is true, so the two are one
//!   value (printed as a vector).
//! - A [`ValueSet`] holds its elements sorted in [`cmp_elements`] order, without
//!   duplicates; a [`ValueMap`] its entries sorted by key, keys unique. So equal
//!   collections are equal in memory and in their bytes (one encoding per value, as
//!   content addresses need).
//! - Numbers inside collections are longs and doubles (an integer is never a ref there);
//!   a character is a one-character string, as in ClojureScript.
//!
//! # Order
//! After every scalar type, by kind: `Symbol < Vector < Set < Map` (the order queries
//! already used for these kinds, see [`crate::query::QueryValue`]). Within a kind, as
//! Datascript's `value-compare`: symbols as keywords (without a namespace first, then
//! namespace, then name); vectors by length, then element by element (`nil` first,
//! numbers numerically across longs and doubles, a long before an equal double, other
//! values in [`Value`]'s order); sets and maps by size, then element by element (entry
//! by entry) in their sorted order. Datascript itself orders two maps or two sets by
//! their hash, which differs between its JVM and JS builds; datoms' order is total and
//! the same on every replica.
//!
//! # Size
//! A composite value is stored inline, whole, in every node that holds it; its encoding
//! must stay under [`MAX_COMPOSITE_BYTES`] ([`Error::InvalidValue`] otherwise). Strings
//! inside a collection are always inline: only a top-level string or byte string is
//! stored out of line ([`crate::large`]).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::edn::Edn;
use crate::error::Error;
use crate::value::{Value, WireValue};

/// The largest encoding, in bytes, of a composite value (see the module docs).
pub const MAX_COMPOSITE_BYTES: usize = 64 * 1024;

/// An element of a collection value: `nil` (`None`) or a value.
pub type Element = Option<Value>;

/// A symbol value such as `a` or `my.ns/f`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Symbol(Arc<str>);

impl Symbol {
    /// The symbol with this text, if EDN reads the text back as this very symbol (not
    /// `nil`, `true`, `false`, a number or a keyword; no whitespace or delimiters).
    ///
    /// ```
    /// use datoms_core::composite::Symbol;
    /// assert_eq!(Symbol::parse("my.ns/f")?.name(), "f");
    /// assert!(Symbol::parse("nil").is_err() && Symbol::parse("a b").is_err());
    /// # Ok::<(), datoms_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidValue`] naming the text.
    pub fn parse(text: &str) -> Result<Symbol, Error> {
        match crate::edn::parse(text) {
            Ok(Edn::Symbol(s)) if s == text => Ok(Symbol(Arc::from(text))),
            _ => Err(Error::InvalidValue {
                reason: format!("{text:?} is not a symbol EDN reads back"),
            }),
        }
    }

    /// The text, e.g. `my.ns/f`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace (`my.ns` in `my.ns/f`), if any. `/` has none.
    pub fn namespace(&self) -> Option<&str> {
        split(&self.0).0
    }

    /// The name (`f` in `my.ns/f`).
    pub fn name(&self) -> &str {
        split(&self.0).1
    }
}

/// A symbol's or keyword's text as namespace and name.
fn split(text: &str) -> (Option<&str>, &str) {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() => (Some(ns), name),
        _ => (None, text),
    }
}

/// Clojure's order of symbols (and of keywords, by their text without the colon): no
/// namespace first, then by namespace, then by name.
pub(crate) fn cmp_qualified(a: &str, b: &str) -> Ordering {
    let (a, b) = (split(a), split(b));
    match (a.0, b.0) {
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (x, y) => x.cmp(&y).then_with(|| a.1.cmp(b.1)),
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Symbol) -> Ordering {
        cmp_qualified(&self.0, &other.0)
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Symbol) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set value: its elements sorted in [`cmp_elements`] order, each once.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ValueSet(Arc<[Element]>);

impl ValueSet {
    /// The set of these elements (sorted, duplicates dropped).
    pub fn new(items: impl IntoIterator<Item = Element>) -> ValueSet {
        let mut items: Vec<Element> = items.into_iter().collect();
        items.sort_by(cmp_elements);
        items.dedup();
        ValueSet(Arc::from(items))
    }

    /// The elements, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Element> {
        self.0.iter()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A map value: its entries sorted by key in [`cmp_elements`] order, keys unique.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ValueMap(Arc<[(Element, Element)]>);

impl ValueMap {
    /// The map of these entries.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a key given twice (EDN refuses such a map literal).
    pub fn new(entries: impl IntoIterator<Item = (Element, Element)>) -> Result<ValueMap, Error> {
        let mut entries: Vec<(Element, Element)> = entries.into_iter().collect();
        entries.sort_by(|a, b| cmp_elements(&a.0, &b.0));
        if let Some(w) = entries
            .windows(2)
            .find(|w| cmp_elements(&w[0].0, &w[1].0) == Ordering::Equal)
        {
            return Err(Error::InvalidValue {
                reason: format!("a map value has the key {} twice", show(&w[0].0)),
            });
        }
        Ok(ValueMap(Arc::from(entries)))
    }

    /// The entries, in key order.
    pub fn iter(&self) -> std::slice::Iter<'_, (Element, Element)> {
        self.0.iter()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty map.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value under `key`, if the map has that key.
    pub fn get(&self, key: &Element) -> Option<&Element> {
        self.0
            .binary_search_by(|(k, _)| cmp_elements(k, key))
            .ok()
            .map(|i| &self.0[i].1)
    }
}

fn show(e: &Element) -> String {
    e.as_ref()
        .map_or_else(|| "nil".to_owned(), ToString::to_string)
}

/// The order of elements inside collections: `nil` first; numbers numerically across
/// longs and doubles (a long before an equal double, so the order stays consistent with
/// equality); anything else in [`Value`]'s order.
pub fn cmp_elements(a: &Element, b: &Element) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match crate::query::value::cmp_numbers(x, y) {
            Some(ord) => ord.then_with(|| x.value_type().cmp(&y.value_type())),
            None => x.cmp(y),
        },
    }
}

fn cmp_sequences<'a, T: 'a>(
    a: impl ExactSizeIterator<Item = &'a T>,
    b: impl ExactSizeIterator<Item = &'a T>,
    cmp: impl Fn(&T, &T) -> Ordering,
) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.zip(b)
            .map(|(x, y)| cmp(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    })
}

/// The order of two composite values of the same kind (see the module docs); `None`
/// for values of different kinds or scalars, which order by their type.
pub(crate) fn cmp_same_kind(a: &Value, b: &Value) -> Option<Ordering> {
    Some(match (a, b) {
        (Value::Symbol(x), Value::Symbol(y)) => x.cmp(y),
        (Value::Vector(x), Value::Vector(y)) => cmp_sequences(x.iter(), y.iter(), cmp_elements),
        (Value::Set(x), Value::Set(y)) => cmp_sequences(x.0.iter(), y.0.iter(), cmp_elements),
        (Value::Map(x), Value::Map(y)) => cmp_sequences(x.0.iter(), y.0.iter(), |p, q| {
            cmp_elements(&p.0, &q.0).then_with(|| cmp_elements(&p.1, &q.1))
        }),
        _ => return None,
    })
}

/// The composite value an EDN form is (a symbol, vector, list, set or map), `None` for
/// any other form. Elements are read as [`Edn::to_value`] reads values, `nil` included.
pub(crate) fn from_edn(form: &Edn) -> Option<Result<Value, Error>> {
    let elements = |items: &[Edn]| -> Result<Vec<Element>, Error> {
        items.iter().map(element_from_edn).collect()
    };
    let value = match form {
        Edn::Symbol(s) => Symbol::parse(s).map(Value::Symbol),
        Edn::Vector(items) | Edn::List(items) => {
            elements(items).map(|v| Value::Vector(Arc::from(v)))
        }
        Edn::Set(items) => elements(items).map(|v| Value::Set(ValueSet::new(v))),
        Edn::Map(entries) => entries
            .iter()
            .map(|(k, v)| Ok((element_from_edn(k)?, element_from_edn(v)?)))
            .collect::<Result<Vec<_>, Error>>()
            .and_then(ValueMap::new)
            .map(Value::Map),
        _ => return None,
    };
    Some(value)
}

fn element_from_edn(form: &Edn) -> Result<Element, Error> {
    match form {
        Edn::Nil => Ok(None),
        Edn::Char(c) => Ok(Some(Value::string(&c.to_string()))),
        other => other.to_value().map(Some),
    }
}

/// The EDN form of a composite value; `None` for a scalar.
pub(crate) fn to_edn(v: &Value) -> Option<Edn> {
    let element = |e: &Element| e.as_ref().map_or(Edn::Nil, crate::edn::value_to_edn);
    Some(match v {
        Value::Symbol(s) => Edn::Symbol(s.as_str().to_owned()),
        Value::Vector(items) => Edn::Vector(items.iter().map(element).collect()),
        Value::Set(set) => Edn::Set(set.iter().map(element).collect()),
        Value::Map(map) => Edn::Map(map.iter().map(|(k, v)| (element(k), element(v))).collect()),
        _ => return None,
    })
}

/// Checks that a composite value is small enough to be stored (see the module docs).
///
/// # Errors
/// [`Error::InvalidValue`] for one whose encoding is [`MAX_COMPOSITE_BYTES`] or more.
pub(crate) fn check_size(v: &Value) -> Result<(), Error> {
    if !matches!(v, Value::Vector(_) | Value::Set(_) | Value::Map(_)) {
        return Ok(());
    }
    let mut counter = Counter(0);
    // Counting cannot fail: the counter accepts every byte.
    let _ = rmp_serde::encode::write(&mut counter, &Payload(v));
    if counter.0 >= MAX_COMPOSITE_BYTES {
        return Err(Error::InvalidValue {
            reason: format!(
                "a collection value of {} bytes encoded; at most {MAX_COMPOSITE_BYTES} are stored",
                counter.0
            ),
        });
    }
    Ok(())
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The payload of a composite value on the wire (after its type tag): a symbol's text;
/// a vector's or set's elements as an array; a map's entries as an array of `[key,
/// value]` pairs. An element is `nil` or a value tuple `[tag, payload]`, always inline.
pub(crate) struct Payload<'a>(pub &'a Value);

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Symbol(sym) => s.serialize_str(sym.as_str()),
            Value::Vector(items) => serialize_elements(s, items.iter()),
            Value::Set(set) => serialize_elements(s, set.iter()),
            Value::Map(map) => {
                let mut seq = s.serialize_seq(Some(map.len()))?;
                for (k, v) in map.iter() {
                    seq.serialize_element(&(Inline(k), Inline(v)))?;
                }
                seq.end()
            }
            other => Err(serde::ser::Error::custom(format!(
                "{other:?} is not a composite value"
            ))),
        }
    }
}

fn serialize_elements<'a, S: Serializer>(
    s: S,
    items: impl ExactSizeIterator<Item = &'a Element>,
) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for item in items {
        seq.serialize_element(&Inline(item))?;
    }
    seq.end()
}

/// An element, written inline whatever its size.
struct Inline<'a>(&'a Element);

impl Serialize for Inline<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(v) => {
                let mut t = s.serialize_tuple(2)?;
                v.borrowed().serialize_parts(&mut t, false)?;
                t.end()
            }
        }
    }
}

/// An element as decoded: `nil` or a nested value tuple (large-value rules do not apply
/// inside a collection).
struct DecodedElement(Element);

impl<'de> Deserialize<'de> for DecodedElement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DecodedElement, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DecodedElement;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nil or a value tuple")
            }
            fn visit_none<E: de::Error>(self) -> Result<DecodedElement, E> {
                Ok(DecodedElement(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<DecodedElement, E> {
                Ok(DecodedElement(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<DecodedElement, D::Error> {
                let v = crate::value::deserialize_nested(d)?;
                Ok(DecodedElement(Some(v)))
            }
        }
        d.deserialize_option(V)
    }
}

/// Decodes the payload of a composite value of wire tag `tag` from the rest of the value
/// tuple, checking what the encoder guarantees: a symbol that reads back, a set's
/// elements and a map's keys strictly increasing.
pub(crate) fn decode_payload<'de, A: SeqAccess<'de>>(
    tag: u8,
    seq: &mut A,
) -> Result<WireValue<'de>, A::Error> {
    let missing = || de::Error::custom("value tuple too short");
    let value = match tag {
        SYMBOL_TAG => {
            let text: crate::value::CowText<'de> = seq.next_element()?.ok_or_else(missing)?;
            Value::Symbol(Symbol::parse(&text.0).map_err(de::Error::custom)?)
        }
        VECTOR_TAG | SET_TAG => {
            let items: Vec<DecodedElement> = seq.next_element()?.ok_or_else(missing)?;
            let items: Vec<Element> = items.into_iter().map(|e| e.0).collect();
            if tag == VECTOR_TAG {
                Value::Vector(Arc::from(items))
            } else {
                if items.windows(2).any(|w| cmp_elements(&w[0], &w[1]).is_ge()) {
                    return Err(de::Error::custom("set elements out of order"));
                }
                Value::Set(ValueSet(Arc::from(items)))
            }
        }
        MAP_TAG => {
            let entries: Vec<(DecodedElement, DecodedElement)> =
                seq.next_element()?.ok_or_else(missing)?;
            let entries: Vec<(Element, Element)> =
                entries.into_iter().map(|(k, v)| (k.0, v.0)).collect();
            if entries
                .windows(2)
                .any(|w| cmp_elements(&w[0].0, &w[1].0).is_ge())
            {
                return Err(de::Error::custom("map keys out of order"));
            }
            Value::Map(ValueMap(Arc::from(entries)))
        }
        other => return Err(de::Error::custom(format!("unknown value tag {other}"))),
    };
    Ok(WireValue::Composite(value))
}

/// Wire tags of the composite kinds (their [`crate::ValueType`] tags).
pub(crate) const SYMBOL_TAG: u8 = 9;
/// See [`SYMBOL_TAG`].
pub(crate) const VECTOR_TAG: u8 = 10;
/// See [`SYMBOL_TAG`].
pub(crate) const SET_TAG: u8 = 11;
/// See [`SYMBOL_TAG`].
pub(crate) const MAP_TAG: u8 = 12;

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::query::QueryValue;
    use crate::value::Uuid;

    /// Scalars a collection can hold (no refs: inside a collection a number is a number).
    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(Value::Long),
            (-3i32..3).prop_map(|i| Value::double(f64::from(i) / 2.0).unwrap_or(Value::Long(0))),
            any::<i64>().prop_map(Value::Instant),
            "[ab]{0,3}".prop_map(|s| Value::string(&s)),
            prop::sample::select(vec![":a", ":zz", ":a/b", ":b/a"]).prop_map(Value::keyword),
            any::<[u8; 16]>().prop_map(|b| Value::Uuid(Uuid(b))),
            prop::sample::select(vec!["a", "zz", "a/b", "b/a", "+"])
                .prop_map(|s| Value::Symbol(Symbol::parse(s).unwrap_or_else(|e| panic!("{e}")))),
        ]
    }

    fn element(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Element> {
        prop::option::weighted(0.9, inner)
    }

    /// Any value a collection can hold, collections nested a few levels deep.
    pub(crate) fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(element(inner.clone()), 0..4).prop_map(Value::vector),
                prop::collection::vec(element(inner.clone()), 0..4)
                    .prop_map(|v| Value::Set(ValueSet::new(v))),
                prop::collection::vec((element(inner.clone()), element(inner)), 0..4).prop_map(
                    |entries| {
                        let mut seen: Vec<(Element, Element)> = Vec::new();
                        for (k, v) in entries {
                            if !seen.iter().any(|(s, _)| *s == k) {
                                seen.push((k, v));
                            }
                        }
                        Value::Map(ValueMap::new(seen).unwrap_or_else(|e| panic!("{e}")))
                    }
                ),
            ]
        })
    }

    proptest! {
        /// Encoding then decoding gives the value back, and equal values encode alike.
        #[test]
        fn composite_values_round_trip_through_their_encoding(v in value()) {
            let bytes = rmp_serde::to_vec(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: Value =
                rmp_serde::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(rmp_serde::to_vec(&back).ok(), Some(bytes));
        }

        /// The order is total, antisymmetric and consistent with equality.
        #[test]
        fn the_order_is_total_and_consistent_with_equality(a in value(), b in value()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.cmp(&b).is_eq(), a == b);
        }

        /// A query compares stored composite values as the index orders them, and turns
        /// them back into the same datom values.
        #[test]
        fn queries_see_the_index_order(a in value(), b in value()) {
            let (qa, qb) = (QueryValue::from_value(a.clone()), QueryValue::from_value(b.clone()));
            if a.is_composite() && b.is_composite() {
                prop_assert_eq!(qa.cmp(&qb), a.cmp(&b));
            }
            prop_assert_eq!(qa.to_datom_value(), Some(a));
        }

        /// Nodes keep the in-memory order: a leaf of values sorted by `Ord` encodes, and
        /// its decoding (which checks that the decoded items are strictly increasing in
        /// the order of the decoded values) gives the same datoms in the same order; a
        /// leaf whose two items are swapped is refused.
        #[test]
        fn the_encoded_order_is_the_in_memory_order(
            values in prop::collection::btree_set(value(), 2..24),
        ) {
            use crate::datom::{Datom, IndexKind};
            use crate::tree::{Node, Tree, TreeConfig};
            let datoms: Vec<Datom> = values
                .iter()
                .map(|v| Datom::new(1, ":a", v.clone(), crate::TX0 + 1))
                .collect();
            let config = TreeConfig { leaf_target: 1 << 16, branch_target: 1 << 16 };
            let tree = Tree::build(IndexKind::Avet, config, datoms.clone());
            let bytes = tree.root().encode();
            let node = Node::decode(tree.root_address(), &bytes, IndexKind::Avet)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(node.datoms(), datoms.clone());
            let leaf = |datoms: &[Datom]| {
                let items: Vec<(u64, &str, &Value, u64)> =
                    datoms.iter().map(|d| (d.e, d.a.as_str(), &d.v, d.tx)).collect();
                rmp_serde::to_vec(&(crate::tree::FORMAT_VERSION, 2u8, 0u8, items))
                    .unwrap_or_default()
            };
            let good = leaf(&datoms);
            prop_assert_eq!(&good, &bytes, "the leaf is written as this test writes it");
            let mut swapped = datoms;
            swapped.swap(0, 1);
            let bad = leaf(&swapped);
            prop_assert!(Node::decode(crate::Address::of(&bad), &bad, IndexKind::Avet).is_err());
        }

        /// Every composite value prints as EDN that reads back to itself.
        #[test]
        fn composite_values_print_as_edn_that_reads_back(v in value()) {
            let text = crate::edn::value_to_edn(&v).to_string();
            let back = crate::edn::parse(&text).and_then(|f| f.to_value());
            prop_assert_eq!(back, Ok(v), "{}", text);
        }
    }

    /// Datascript's order within a kind: vectors by length first, then element-wise;
    /// `nil` first; numbers numerically; symbols namespace first; across kinds
    /// `Symbol < Vector < Set < Map`, after every scalar.
    #[test]
    fn composite_values_order_as_datascript_within_a_kind() {
        let read = |t: &str| {
            crate::edn::parse(t)
                .and_then(|f| f.to_value())
                .unwrap_or_else(|e| panic!("{t}: {e}"))
        };
        let sorted = [
            "1", ":a/b", "zz", "a/b", "[9]", "[nil 1]", "[1 nil]", "[1 1.5]", "[1 2]", "[1.5 0]",
            "[1 2 3]", "#{}", "#{9}", "#{1 2}", "{}", "{:a 2}", "{:b 1}",
        ];
        for w in sorted.windows(2) {
            assert!(read(w[0]) < read(w[1]), "{} < {}", w[0], w[1]);
        }
        // A list is the vector of its elements.
        assert_eq!(read("(1 2)"), read("[1 2]"));
    }

    /// Decoding refuses what the encoder never writes: sets and maps out of order, a
    /// symbol that does not read back, a large-value reference inside a collection.
    #[test]
    fn non_canonical_composites_are_refused() {
        let bad = [
            rmp_serde::to_vec(&(SET_TAG, vec![(1u8, 2i64), (1u8, 1i64)])),
            rmp_serde::to_vec(&(SET_TAG, vec![(1u8, 1i64), (1u8, 1i64)])),
            rmp_serde::to_vec(&(
                MAP_TAG,
                vec![((1u8, 2i64), (1u8, 0i64)), ((1u8, 1i64), (1u8, 0i64))],
            )),
            rmp_serde::to_vec(&(SYMBOL_TAG, "a b")),
            rmp_serde::to_vec(&(SYMBOL_TAG, "nil")),
            rmp_serde::to_vec(&(
                VECTOR_TAG,
                vec![(crate::large::REFERENCE_TAG + 4, [0u8; 32])],
            )),
        ];
        for bytes in bad {
            let bytes = bytes.unwrap_or_default();
            assert!(rmp_serde::from_slice::<Value>(&bytes).is_err(), "{bytes:?}");
        }
    }
}
