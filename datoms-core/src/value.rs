//! Values a datom can hold, and the one total order every index uses.
//!
//! # Order across types
//! Values of different types compare by their type tag, in this order:
//! `Bool < Long < Double < Instant < String < Keyword < Uuid < Bytes < Ref < Symbol <
//! Vector < Set < Map`.
//! Values of the same type compare naturally (numbers numerically, strings by their UTF-8
//! bytes, keywords and symbols as Clojure's (no namespace first, then namespace, then
//! name), uuids and bytes lexicographically, `false < true`; collections as
//! [`crate::composite`] says: by size, then element by element).
//! A typed attribute only ever holds one type, so the cross-type order matters only for
//! untyped attributes; it is fixed so that every replica sorts identically.
//!
//! # Canonical doubles
//! `NaN` is rejected (it has no place in a total order) and `-0.0` is stored as `0.0`, so
//! equal numbers always encode to the same bytes and hash to the same node address.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::address::Address;
pub use crate::composite::{Element, Symbol, ValueMap, ValueSet};
use crate::error::Error;
use crate::large::LargeValue;

/// An entity id. Entity ids live in `1..TX0`, transaction ids in `TX0..`.
pub type Eid = u64;

/// A keyword such as `:person/name`, stored without its leading colon.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Keyword(Arc<str>);

/// A keyword hashes and is equal as its text, so hash maps keyed by keywords can be looked
/// up by `&str`. (Its order is not its text's: ordered maps are looked up by keyword.)
impl std::borrow::Borrow<str> for Keyword {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Keywords order as Clojure's do: a keyword without a namespace before every keyword
/// with one, then by namespace, then by name (each part by its UTF-8 bytes). So
/// `:zz < :a/b < :a/c < :b/a`, in every index, comparison and sorted answer. Most
/// comparisons in an index are of an attribute with itself (one shared `Arc` per leaf
/// and per transaction), so the same allocation compares equal without reading the text.
impl Ord for Keyword {
    fn cmp(&self, other: &Keyword) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return Ordering::Equal;
        }
        crate::composite::cmp_qualified(&self.0, &other.0)
    }
}

impl PartialOrd for Keyword {
    fn partial_cmp(&self, other: &Keyword) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Keyword {
    /// Makes a keyword from its text, with or without the leading `:`, checking that it
    /// is a keyword EDN reads back (see [`Keyword::parse`]). For keywords written in code;
    /// text that comes from input goes through [`Keyword::parse`].
    ///
    /// ```
    /// use datoms_core::Keyword;
    /// assert_eq!(Keyword::new(":person/name"), Keyword::new("person/name"));
    /// assert_eq!(Keyword::new("person/name").name(), "name");
    /// ```
    ///
    /// # Panics
    /// If `text` is not a valid keyword (`""`, `:a/b/c`, `:a b`, …): a bug in the code
    /// that wrote it, as an invalid literal would be.
    pub fn new(text: &str) -> Keyword {
        match Keyword::parse(text) {
            Ok(k) => k,
            Err(e) => panic!("Keyword::new: {e}"),
        }
    }

    /// Makes a keyword from its text, with or without the leading `:`, if EDN reads
    /// `:text` back as this very keyword: the text is not empty, holds no whitespace,
    /// comma, control character or delimiter (`( ) [ ] { } " ; \`), does not start with
    /// `:` (Clojure's auto-resolved `::kw`), and has at most one `/`, with text on both
    /// sides of it (`:/` alone is the keyword named `/`). So every keyword prints as EDN
    /// that reads back to itself, and an export always re-imports.
    ///
    /// ```
    /// use datoms_core::{Error, Keyword};
    /// assert_eq!(Keyword::parse(":person/name")?, Keyword::new("person/name"));
    /// for bad in ["", ":", "a/b/c", "a b", "::a", "a/", "/a", "a]"] {
    ///     assert!(matches!(Keyword::parse(bad), Err(Error::InvalidKeyword { .. })), "{bad}");
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidKeyword`] naming the text and what is wrong with it.
    pub fn parse(text: &str) -> Result<Keyword, Error> {
        let bare = text.strip_prefix(':').unwrap_or(text);
        match crate::edn::keyword_problem(bare) {
            None => Ok(Keyword(Arc::from(bare))),
            Some((_, reason)) => Err(Error::InvalidKeyword {
                text: text.to_owned(),
                reason,
            }),
        }
    }

    /// A keyword from its stored text (already without the leading colon), taken as is:
    /// for text a valid keyword wrote (decoded nodes) and internal sentinels.
    pub(crate) fn new_stored(text: &str) -> Keyword {
        Keyword(Arc::from(text))
    }

    /// The text without the leading colon, e.g. `person/name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace part (`person` in `:person/name`), if any. `:/` has none.
    pub fn namespace(&self) -> Option<&str> {
        self.split().0
    }

    /// The name part (`name` in `:person/name`; `/` for `:/`).
    pub fn name(&self) -> &str {
        self.split().1
    }

    /// The namespace and the name.
    fn split(&self) -> (Option<&str>, &str) {
        match self.0.split_once('/') {
            Some((ns, name)) if !ns.is_empty() => (Some(ns), name),
            _ => (None, &self.0),
        }
    }

    /// True for a reverse attribute reference such as `:person/_friend`.
    pub fn is_reverse(&self) -> bool {
        self.name().starts_with('_')
    }

    /// The forward attribute of a reverse reference: `:person/_friend` → `:person/friend`.
    /// Returns `None` if this keyword is not a reverse reference (or is `:_` or `:ns/_`,
    /// whose forward name would be empty).
    pub fn reverse_of(&self) -> Option<Keyword> {
        let name = self.name().strip_prefix('_')?;
        self.with_name(name)
    }

    /// The reverse reference of this attribute: `:person/friend` → `:person/_friend`.
    /// `None` for `:/`, which has no reverse keyword.
    pub fn reversed(&self) -> Option<Keyword> {
        self.with_name(&format!("_{}", self.name()))
    }

    /// This keyword's namespace with another name, if that is a valid keyword.
    fn with_name(&self, name: &str) -> Option<Keyword> {
        match self.namespace() {
            Some(ns) => Keyword::parse(&format!("{ns}/{name}")).ok(),
            None => Keyword::parse(name).ok(),
        }
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":{}", self.0)
    }
}

impl fmt::Debug for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":{}", self.0)
    }
}

/// As [`Keyword::new`], for keyword literals written in code (`":person/name".into()`).
///
/// # Panics
/// If the text is not a valid keyword; use [`Keyword::parse`] for text from input.
impl From<&str> for Keyword {
    fn from(s: &str) -> Keyword {
        Keyword::new(s)
    }
}

/// [`Keyword::parse`].
impl std::str::FromStr for Keyword {
    type Err = Error;

    fn from_str(text: &str) -> Result<Keyword, Error> {
        Keyword::parse(text)
    }
}

impl Serialize for Keyword {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Decoding checks the text as [`Keyword::parse`] does (without a leading colon): bytes
/// can never make a keyword that EDN does not read back.
impl<'de> Deserialize<'de> for Keyword {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Keyword, D::Error> {
        let text = CowText::deserialize(d)?.0;
        checked_stored(&text).map_err(de::Error::custom)
    }
}

/// A keyword from stored text (no leading colon), checked as [`Keyword::parse`] checks.
pub(crate) fn checked_stored(text: &str) -> Result<Keyword, String> {
    match crate::edn::keyword_problem(text) {
        None => Ok(Keyword::new_stored(text)),
        Some((_, reason)) => Err(format!("invalid keyword {text:?}: {reason}")),
    }
}

/// A finite `f64` with `-0.0` normalized to `0.0`, so it has a total order and one encoding.
#[derive(Clone, Copy, PartialEq)]
pub struct Double(f64);

impl Double {
    /// Positive zero.
    pub(crate) const ZERO: Double = Double(0.0);

    /// Makes a canonical double; `NaN` is rejected with [`Error::InvalidValue`].
    pub fn new(f: f64) -> Result<Double, Error> {
        if f.is_nan() {
            return Err(Error::InvalidValue {
                reason: "NaN is not a valid value".into(),
            });
        }
        Ok(Double(if f == 0.0 { 0.0 } else { f }))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for Double {}

impl PartialOrd for Double {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Double {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Hash for Double {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl fmt::Debug for Double {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A 128-bit UUID, compared and encoded as its 16 big-endian bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses the canonical `8-4-4-4-12` hex form.
    pub fn parse(text: &str) -> Result<Uuid, Error> {
        let bad = || Error::InvalidValue {
            reason: format!("invalid uuid {text:?}"),
        };
        let groups: Vec<&str> = text.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != 5 || groups.iter().zip(lens).any(|(g, l)| g.len() != l) {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#uuid \"{self}\"")
    }
}

/// The type of a [`Value`], as declared by `:db/valueType` in a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ValueType {
    /// `:db.type/boolean`
    Bool,
    /// `:db.type/long`
    Long,
    /// `:db.type/double`
    Double,
    /// `:db.type/instant` (milliseconds since the Unix epoch)
    Instant,
    /// `:db.type/string`
    String,
    /// `:db.type/keyword`
    Keyword,
    /// `:db.type/uuid`
    Uuid,
    /// `:db.type/bytes`
    Bytes,
    /// `:db.type/ref`
    Ref,
    /// `:db.type/symbol`: a symbol value ([`crate::composite::Symbol`]).
    Symbol,
    /// A vector (or list) value; `:db.type/tuple` in a schema, the type of a composite
    /// tuple (`:db/tupleAttrs`). An attribute without `:db/valueType` holds any
    /// collection, as in Datascript.
    Vector,
    /// A set value. Not a schema type (see [`ValueType::Vector`]).
    Set,
    /// A map value. Not a schema type (see [`ValueType::Vector`]).
    Map,
}

impl ValueType {
    /// The schema keyword for this type, e.g. `:db.type/long`.
    pub fn keyword(self) -> &'static str {
        match self {
            ValueType::Bool => ":db.type/boolean",
            ValueType::Long => ":db.type/long",
            ValueType::Double => ":db.type/double",
            ValueType::Instant => ":db.type/instant",
            ValueType::String => ":db.type/string",
            ValueType::Keyword => ":db.type/keyword",
            ValueType::Uuid => ":db.type/uuid",
            ValueType::Bytes => ":db.type/bytes",
            ValueType::Ref => ":db.type/ref",
            ValueType::Symbol => ":db.type/symbol",
            ValueType::Vector => ":db.type/tuple",
            ValueType::Set => ":db.type/set",
            ValueType::Map => ":db.type/map",
        }
    }

    /// Parses a schema keyword such as `:db.type/string` (leading colon optional);
    /// `:db.type/tuple` is [`ValueType::Vector`]. Sets and maps are not schema types:
    /// `None` for them.
    pub fn from_keyword(k: &str) -> Option<ValueType> {
        let k = k.strip_prefix(':').unwrap_or(k);
        Some(match k {
            "db.type/boolean" => ValueType::Bool,
            "db.type/long" => ValueType::Long,
            "db.type/double" | "db.type/float" => ValueType::Double,
            "db.type/instant" => ValueType::Instant,
            "db.type/string" => ValueType::String,
            "db.type/keyword" => ValueType::Keyword,
            "db.type/uuid" => ValueType::Uuid,
            "db.type/bytes" => ValueType::Bytes,
            "db.type/ref" => ValueType::Ref,
            "db.type/symbol" => ValueType::Symbol,
            "db.type/tuple" => ValueType::Vector,
            _ => return None,
        })
    }

    pub(crate) fn tag(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_tag(tag: u8) -> Option<ValueType> {
        Some(match tag {
            0 => ValueType::Bool,
            1 => ValueType::Long,
            2 => ValueType::Double,
            3 => ValueType::Instant,
            4 => ValueType::String,
            5 => ValueType::Keyword,
            6 => ValueType::Uuid,
            7 => ValueType::Bytes,
            8 => ValueType::Ref,
            crate::composite::SYMBOL_TAG => ValueType::Symbol,
            crate::composite::VECTOR_TAG => ValueType::Vector,
            crate::composite::SET_TAG => ValueType::Set,
            crate::composite::MAP_TAG => ValueType::Map,
            _ => return None,
        })
    }
}

/// A value in a datom. See the module docs for the total order across types.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Long(i64),
    /// A canonical finite double.
    Double(Double),
    /// An instant, in milliseconds since the Unix epoch.
    Instant(i64),
    /// A UTF-8 string.
    String(Arc<str>),
    /// A keyword.
    Keyword(Keyword),
    /// A UUID.
    Uuid(Uuid),
    /// An opaque byte string.
    Bytes(Arc<[u8]>),
    /// A reference to an entity.
    Ref(Eid),
    /// A symbol, e.g. `a` in `{:db/id 1 :s a}`.
    Symbol(Symbol),
    /// A vector (also what a list is stored as); `None` elements are `nil`.
    Vector(Arc<[Element]>),
    /// A set.
    Set(ValueSet),
    /// A map.
    Map(ValueMap),
}

impl Value {
    /// The type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Bool(_) => ValueType::Bool,
            Value::Long(_) => ValueType::Long,
            Value::Double(_) => ValueType::Double,
            Value::Instant(_) => ValueType::Instant,
            Value::String(_) => ValueType::String,
            Value::Keyword(_) => ValueType::Keyword,
            Value::Uuid(_) => ValueType::Uuid,
            Value::Bytes(_) => ValueType::Bytes,
            Value::Ref(_) => ValueType::Ref,
            Value::Symbol(_) => ValueType::Symbol,
            Value::Vector(_) => ValueType::Vector,
            Value::Set(_) => ValueType::Set,
            Value::Map(_) => ValueType::Map,
        }
    }

    /// A vector value of these elements.
    pub fn vector(items: impl IntoIterator<Item = Element>) -> Value {
        Value::Vector(items.into_iter().collect())
    }

    /// True for a symbol, vector, set or map (see [`crate::composite`]).
    pub fn is_composite(&self) -> bool {
        matches!(
            self,
            Value::Symbol(_) | Value::Vector(_) | Value::Set(_) | Value::Map(_)
        )
    }

    /// Checks that this value can be stored: a collection must encode to less than
    /// [`crate::composite::MAX_COMPOSITE_BYTES`].
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a collection too large.
    pub fn check_storable(&self) -> Result<(), Error> {
        crate::composite::check_size(self)
    }

    /// A canonical double value; `NaN` is an error.
    pub fn double(f: f64) -> Result<Value, Error> {
        Double::new(f).map(Value::Double)
    }

    /// A string value.
    pub fn string(s: &str) -> Value {
        Value::String(Arc::from(s))
    }

    /// A keyword value, from a keyword literal written in code (leading `:` optional).
    ///
    /// # Panics
    /// As [`Keyword::new`], if `k` is not a valid keyword.
    pub fn keyword(k: &str) -> Value {
        Value::Keyword(Keyword::new(k))
    }

    /// The referenced entity id, if this is a ref.
    pub fn as_ref(&self) -> Option<Eid> {
        match self {
            Value::Ref(e) => Some(*e),
            _ => None,
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.borrowed().cmp(&other.borrowed())
    }
}

impl Value {
    /// The value borrowed: what comparisons read.
    pub(crate) fn borrowed(&self) -> ValueRef<'_> {
        match self {
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Long(n) => ValueRef::Long(*n),
            Value::Double(f) => ValueRef::Double(*f),
            Value::Instant(ms) => ValueRef::Instant(*ms),
            Value::String(s) => ValueRef::String(s),
            Value::Keyword(k) => ValueRef::Keyword(k),
            Value::Uuid(u) => ValueRef::Uuid(*u),
            Value::Bytes(b) => ValueRef::Bytes(b),
            Value::Ref(e) => ValueRef::Ref(*e),
            Value::Symbol(_) | Value::Vector(_) | Value::Set(_) | Value::Map(_) => {
                ValueRef::Composite(self)
            }
        }
    }
}

/// A [`Value`] whose text and bytes are borrowed, e.g. from a packed leaf: comparing it
/// allocates nothing. The one home of the total order of values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueRef<'a> {
    Bool(bool),
    Long(i64),
    Double(Double),
    Instant(i64),
    String(&'a str),
    Keyword(&'a Keyword),
    Uuid(Uuid),
    Bytes(&'a [u8]),
    Ref(Eid),
    /// A symbol, vector, set or map (its `Arc`s are cheap to share).
    Composite(&'a Value),
}

impl ValueRef<'_> {
    fn value_type(&self) -> ValueType {
        match self {
            ValueRef::Bool(_) => ValueType::Bool,
            ValueRef::Long(_) => ValueType::Long,
            ValueRef::Double(_) => ValueType::Double,
            ValueRef::Instant(_) => ValueType::Instant,
            ValueRef::String(_) => ValueType::String,
            ValueRef::Keyword(_) => ValueType::Keyword,
            ValueRef::Uuid(_) => ValueType::Uuid,
            ValueRef::Bytes(_) => ValueType::Bytes,
            ValueRef::Ref(_) => ValueType::Ref,
            ValueRef::Composite(v) => v.value_type(),
        }
    }

    /// The owned value.
    pub(crate) fn to_value(self) -> Value {
        match self {
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Long(n) => Value::Long(n),
            ValueRef::Double(f) => Value::Double(f),
            ValueRef::Instant(ms) => Value::Instant(ms),
            // A large value read from a leaf is shared, not copied.
            ValueRef::String(s) => match LargeValue::held_at(self) {
                Some(large) => large.to_value(),
                None => Value::String(Arc::from(s)),
            },
            ValueRef::Keyword(k) => Value::Keyword(k.clone()),
            ValueRef::Uuid(u) => Value::Uuid(u),
            ValueRef::Bytes(b) => match LargeValue::held_at(self) {
                Some(large) => large.to_value(),
                None => Value::Bytes(Arc::from(b)),
            },
            ValueRef::Ref(e) => Value::Ref(e),
            ValueRef::Composite(v) => v.clone(),
        }
    }
}

impl PartialOrd for ValueRef<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ValueRef<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (ValueRef::Bool(a), ValueRef::Bool(b)) => a.cmp(b),
            (ValueRef::Long(a), ValueRef::Long(b)) => a.cmp(b),
            (ValueRef::Double(a), ValueRef::Double(b)) => a.cmp(b),
            (ValueRef::Instant(a), ValueRef::Instant(b)) => a.cmp(b),
            (ValueRef::String(a), ValueRef::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (ValueRef::Keyword(a), ValueRef::Keyword(b)) => a.cmp(b),
            (ValueRef::Uuid(a), ValueRef::Uuid(b)) => a.cmp(b),
            (ValueRef::Bytes(a), ValueRef::Bytes(b)) => a.cmp(b),
            (ValueRef::Ref(a), ValueRef::Ref(b)) => a.cmp(b),
            (ValueRef::Composite(a), ValueRef::Composite(b)) => {
                match crate::composite::cmp_same_kind(a, b) {
                    Some(ord) => ord,
                    None => a.value_type().tag().cmp(&b.value_type().tag()),
                }
            }
            _ => self.value_type().tag().cmp(&other.value_type().tag()),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Long(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{:?}", d.get()),
            Value::Instant(ms) => write!(f, "#inst {ms}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Keyword(k) => write!(f, "{k}"),
            Value::Uuid(u) => write!(f, "{u:?}"),
            Value::Bytes(b) => write!(f, "#bytes[{}]", b.len()),
            Value::Ref(e) => write!(f, "#ref {e}"),
            Value::Symbol(_) | Value::Vector(_) | Value::Set(_) | Value::Map(_) => {
                write!(f, "{}", crate::edn::value_to_edn(self))
            }
        }
    }
}

/// The value as EDN text, as `datoms export` and the query printer write it: strings
/// quoted, keywords with their colon, `#inst "…"`, `#uuid "…"`, `#bytes "base64"`, refs
/// as entity ids. Error messages use this form, never the `Debug` one.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::edn::value_to_edn(self))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Long(i)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::string(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(Arc::from(s))
    }
}

impl From<Keyword> for Value {
    fn from(k: Keyword) -> Value {
        Value::Keyword(k)
    }
}

impl From<Uuid> for Value {
    fn from(u: Uuid) -> Value {
        Value::Uuid(u)
    }
}

/// Encoded as a 2-tuple `(type tag, payload)`: compact, canonical, and independent of
/// serde's enum representation.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.borrowed().serialize(s)
    }
}

/// The one home of the value wire format's encoding (see [`Value`]'s).
impl Serialize for ValueRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        self.serialize_parts(&mut t, crate::large::writing_out_of_line())?;
        t.end()
    }
}

impl ValueRef<'_> {
    /// Writes the tag and payload into a 2-tuple; a large string or byte string as a
    /// reference when `out_of_line` (never inside a collection).
    pub(crate) fn serialize_parts<T: SerializeTuple>(
        &self,
        t: &mut T,
        out_of_line: bool,
    ) -> Result<(), T::Error> {
        if out_of_line {
            if let Some(large) = LargeValue::of(*self) {
                t.serialize_element(&(crate::large::REFERENCE_TAG + self.value_type().tag()))?;
                return t.serialize_element(&large.address());
            }
        }
        t.serialize_element(&self.value_type().tag())?;
        match self {
            ValueRef::Bool(b) => t.serialize_element(b),
            ValueRef::Long(i) | ValueRef::Instant(i) => t.serialize_element(i),
            ValueRef::Double(d) => t.serialize_element(&d.get()),
            ValueRef::String(x) => t.serialize_element(*x),
            ValueRef::Keyword(k) => t.serialize_element(k.as_str()),
            ValueRef::Uuid(u) => t.serialize_element(&Bin(&u.0)),
            ValueRef::Bytes(b) => t.serialize_element(&Bin(b)),
            ValueRef::Ref(e) => t.serialize_element(e),
            ValueRef::Composite(v) => t.serialize_element(&crate::composite::Payload(v)),
        }
    }
}

/// Serializes a byte slice as a msgpack `bin`, not as an array of integers.
pub(crate) struct Bin<'a>(pub &'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// A keyword value is checked as [`Keyword`]'s decoding checks it.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        WireValue::deserialize(d)?
            .into_checked_value()
            .map_err(de::Error::custom)
    }
}

/// A value as its `[tag, payload]` tuple decodes: text and bytes borrowed from the input
/// where the deserializer can lend them (msgpack read from a slice, as nodes are), owned
/// otherwise. The one home of the value wire format's decoding; [`Value`] and the
/// leaf decoder that packs without allocating per datom both go through it.
pub(crate) enum WireValue<'de> {
    /// Booleans, numbers, UUIDs and refs: nothing to borrow.
    Plain(ValueRef<'static>),
    String(Cow<'de, str>),
    Keyword(Cow<'de, str>),
    Bytes(Cow<'de, [u8]>),
    /// A large string or byte string, stored out of line (see [`crate::large`]).
    Large(LargeValue),
    /// A symbol, vector, set or map, decoded whole (see [`crate::composite`]).
    Composite(Value),
}

impl WireValue<'_> {
    /// The value a reference to the large value at `address` of type `ty` names: the
    /// one held in this process, else (recorded as missing by the decoding scope) an
    /// empty placeholder the scope's error replaces.
    fn reference(ty: ValueType, address: Address) -> Result<WireValue<'static>, String> {
        Ok(match crate::large::resolve(address)? {
            Some(large) if large.value_type() == ty => WireValue::Large(large),
            Some(_) => return Err(format!("large value {address} is not of type {ty:?}")),
            None if ty == ValueType::String => WireValue::String(Cow::Borrowed("")),
            None => WireValue::Bytes(Cow::Borrowed(&[])),
        })
    }

    /// True for a string or byte string long enough that it must be a reference.
    fn is_large_inline(&self) -> bool {
        match self {
            WireValue::String(s) => crate::large::is_large(s.len()),
            WireValue::Bytes(b) => crate::large::is_large(b.len()),
            _ => false,
        }
    }

    /// The value, borrowed; `None` for a keyword, whose borrowed form needs a
    /// [`Keyword`] the caller makes from [`WireValue::keyword_text`].
    pub(crate) fn borrowed(&self) -> Option<ValueRef<'_>> {
        match self {
            WireValue::Plain(v) => Some(*v),
            WireValue::String(s) => Some(ValueRef::String(s)),
            WireValue::Bytes(b) => Some(ValueRef::Bytes(b)),
            WireValue::Large(large) => Some(large.borrowed()),
            WireValue::Composite(v) => Some(ValueRef::Composite(v)),
            WireValue::Keyword(_) => None,
        }
    }

    /// The text of a keyword value.
    pub(crate) fn keyword_text(&self) -> Option<&str> {
        match self {
            WireValue::Keyword(k) => Some(k),
            _ => None,
        }
    }

    /// The owned value, a keyword checked as [`Keyword`]'s decoding checks it.
    pub(crate) fn into_checked_value(self) -> Result<Value, String> {
        match self {
            WireValue::Keyword(k) => checked_stored(&k).map(Value::Keyword),
            other => Ok(other.into_value()),
        }
    }

    /// The owned value.
    pub(crate) fn into_value(self) -> Value {
        match self {
            WireValue::Plain(v) => v.to_value(),
            WireValue::String(s) => Value::String(Arc::from(s.as_ref())),
            WireValue::Keyword(k) => Value::Keyword(Keyword(Arc::from(k.as_ref()))),
            WireValue::Bytes(b) => Value::Bytes(Arc::from(b.as_ref())),
            WireValue::Large(large) => large.to_value(),
            WireValue::Composite(v) => v,
        }
    }
}

/// Text, borrowed from the input when the deserializer lends it.
pub(crate) struct CowText<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for CowText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CowText<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<CowText<'de>, E> {
                Ok(CowText(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CowText<'de>, E> {
                Ok(CowText(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<CowText<'de>, E> {
                Ok(CowText(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Deserializes a msgpack `bin` (or an array of bytes), borrowed when the input lends it.
pub(crate) struct ByteBuf<'de>(pub Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for ByteBuf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteBuf<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteBuf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<ByteBuf<'de>, E> {
                Ok(ByteBuf(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf<'de>, E> {
                Ok(ByteBuf(Cow::Owned(v.to_vec())))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf<'de>, E> {
                Ok(ByteBuf(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteBuf(Cow::Owned(out)))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A double payload read only from a msgpack float64: the one encoding of a double.
struct F64Only(f64);

impl<'de> Deserialize<'de> for F64Only {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F64Only, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = F64Only;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a float64")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<F64Only, E> {
                Ok(F64Only(v))
            }
            // Integers reach the default `visit_*`, an error; a float32 would be widened
            // to `visit_f64` by default.
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<F64Only, E> {
                Err(E::invalid_type(de::Unexpected::Float(v.into()), &self))
            }
        }
        d.deserialize_f64(V)
    }
}

impl<'de> Deserialize<'de> for WireValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireValue<'de>, D::Error> {
        d.deserialize_tuple(2, WireVisitor { nested: false })
    }
}

/// A value inside a collection: its tuple decoded as [`WireValue`]'s, except that it is
/// never a reference to a large value, and may be large inline.
pub(crate) fn deserialize_nested<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    d.deserialize_tuple(2, WireVisitor { nested: true })?
        .into_checked_value()
        .map_err(de::Error::custom)
}

/// Decodes a value tuple; `nested` inside a collection (see [`deserialize_nested`]).
struct WireVisitor {
    nested: bool,
}

impl<'de> Visitor<'de> for WireVisitor {
    type Value = WireValue<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a (tag, payload) value tuple")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireValue<'de>, A::Error> {
        let missing = || de::Error::custom("value tuple too short");
        let tag: u8 = seq.next_element()?.ok_or_else(missing)?;
        if let Some(ty) = tag
            .checked_sub(crate::large::REFERENCE_TAG)
            .filter(|_| !self.nested)
            .and_then(ValueType::from_tag)
            .filter(|t| matches!(t, ValueType::String | ValueType::Bytes))
        {
            let address: Address = seq.next_element()?.ok_or_else(missing)?;
            if seq.next_element::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::custom("value tuple too long"));
            }
            return WireValue::reference(ty, address).map_err(de::Error::custom);
        }
        let ty = ValueType::from_tag(tag)
            .ok_or_else(|| de::Error::custom(format!("unknown value tag {tag}")))?;
        let plain = WireValue::Plain;
        let v = match ty {
            ValueType::Bool => plain(ValueRef::Bool(seq.next_element()?.ok_or_else(missing)?)),
            ValueType::Long => plain(ValueRef::Long(seq.next_element()?.ok_or_else(missing)?)),
            ValueType::Instant => {
                plain(ValueRef::Instant(seq.next_element()?.ok_or_else(missing)?))
            }
            ValueType::Double => {
                let F64Only(f) = seq.next_element()?.ok_or_else(missing)?;
                // Only canonical bytes are accepted: a non-canonical double would
                // break the one-encoding-per-value rule that addresses rely on (so
                // neither an integer nor a float32 payload, which a plain `f64` would
                // accept and re-encode differently).
                if f.is_nan() || (f == 0.0 && f.is_sign_negative()) {
                    return Err(de::Error::custom("non-canonical double"));
                }
                plain(ValueRef::Double(Double(f)))
            }
            ValueType::String => {
                WireValue::String(seq.next_element::<CowText<'de>>()?.ok_or_else(missing)?.0)
            }
            ValueType::Keyword => {
                WireValue::Keyword(seq.next_element::<CowText<'de>>()?.ok_or_else(missing)?.0)
            }
            ValueType::Uuid => {
                let b: ByteBuf<'de> = seq.next_element()?.ok_or_else(missing)?;
                let arr: [u8; 16] =
                    b.0.as_ref()
                        .try_into()
                        .map_err(|_| de::Error::custom("uuid must be 16 bytes"))?;
                plain(ValueRef::Uuid(Uuid(arr)))
            }
            ValueType::Bytes => {
                WireValue::Bytes(seq.next_element::<ByteBuf<'de>>()?.ok_or_else(missing)?.0)
            }
            ValueType::Ref => plain(ValueRef::Ref(seq.next_element()?.ok_or_else(missing)?)),
            ValueType::Symbol | ValueType::Vector | ValueType::Set | ValueType::Map => {
                crate::composite::decode_payload(tag, &mut seq)?
            }
        };
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("value tuple too long"));
        }
        if !self.nested && crate::large::reading_stored() && v.is_large_inline() {
            return Err(de::Error::custom(
                "a large value stored inline (it must be a reference)",
            ));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_rejected_and_negative_zero_is_canonical() {
        assert!(Value::double(f64::NAN).is_err());
        assert_eq!(Value::double(-0.0).unwrap(), Value::double(0.0).unwrap());
        let a = rmp_serde::to_vec(&Value::double(-0.0).unwrap()).unwrap();
        let b = rmp_serde::to_vec(&Value::double(0.0).unwrap()).unwrap();
        assert_eq!(a, b);
    }

    /// Found by the `tx_log_decode` fuzz target: `[2, 3]` (an integer payload) and a
    /// float32 payload decoded as doubles and re-encoded as float64, two encodings of one
    /// value.
    #[test]
    fn a_double_is_read_only_from_a_float64() {
        let canonical = rmp_serde::to_vec(&Value::double(3.0).unwrap()).unwrap();
        assert_eq!(canonical, [0x92, 2, 0xcb, 0x40, 8, 0, 0, 0, 0, 0, 0]);
        let decoded: Value = rmp_serde::from_slice(&canonical).unwrap();
        assert_eq!(decoded, Value::double(3.0).unwrap());
        for other in [&[0x92, 2, 3][..], &[0x92, 2, 0xca, 0x40, 0x40, 0, 0]] {
            let err = rmp_serde::from_slice::<Value>(other).unwrap_err();
            assert!(err.to_string().contains("float64"), "{err}");
        }
    }

    #[test]
    fn order_across_types_follows_the_tag_order() {
        let vals = [
            Value::Bool(true),
            Value::Long(-5),
            Value::double(-100.0).unwrap(),
            Value::Instant(0),
            Value::string("a"),
            Value::keyword(":a"),
            Value::Uuid(Uuid([0; 16])),
            Value::Bytes(Arc::from(vec![1u8])),
            Value::Ref(1),
        ];
        for w in vals.windows(2) {
            assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
        }
    }

    /// Clojure's keyword order: no namespace first, then namespace, then name; the
    /// text order (`:zz` after `:a/b`, `:a.b/c` before `:a/b`) is not it.
    #[test]
    fn keywords_order_namespace_first_as_clojure_does() {
        let sorted = [":/", ":a", ":zz", ":a/b", ":a/c", ":a.b/a", ":ab/a", ":b/a"];
        for w in sorted.windows(2) {
            let (x, y) = (Keyword::new(w[0]), Keyword::new(w[1]));
            assert_eq!(x.cmp(&y), Ordering::Less, "{x} < {y}");
            assert_eq!(
                Value::Keyword(y.clone()).cmp(&Value::Keyword(x.clone())),
                Ordering::Greater
            );
        }
        assert_eq!(
            Keyword::new(":a/b").cmp(&Keyword::new("a/b")),
            Ordering::Equal
        );
    }

    #[test]
    fn every_value_round_trips_through_msgpack() {
        let vals = [
            Value::Bool(false),
            Value::Long(i64::MIN),
            Value::double(1.5).unwrap(),
            Value::Instant(1_700_000_000_000),
            Value::string("héllo"),
            Value::keyword(":person/name"),
            Value::Uuid(Uuid::parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap()),
            Value::Bytes(Arc::from(vec![0u8, 255])),
            Value::Ref(42),
        ];
        for v in vals {
            let bytes = rmp_serde::to_vec(&v).unwrap();
            let back: Value = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn uuid_parses_and_prints_canonically() {
        let text = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        assert_eq!(Uuid::parse(text).unwrap().to_string(), text);
        assert!(Uuid::parse("6ba7b810-9dad-11d1-80b4").is_err());
        assert!(Uuid::parse("zba7b810-9dad-11d1-80b4-00c04fd430c8").is_err());
    }

    #[test]
    fn reverse_keywords_map_to_their_forward_attribute() {
        let k = Keyword::new(":person/_friend");
        assert!(k.is_reverse());
        assert_eq!(k.reverse_of(), Some(Keyword::new(":person/friend")));
        assert_eq!(Keyword::new(":person/friend").reverse_of(), None);
        assert_eq!(
            Keyword::new(":person/friend").reversed(),
            Some(Keyword::new(":person/_friend"))
        );
        assert_eq!(
            Keyword::new(":friend").reversed(),
            Some(Keyword::new(":_friend"))
        );
        // Forward names that would be empty, and `:/`, have no counterpart.
        assert_eq!(Keyword::new(":a/_").reverse_of(), None);
        assert_eq!(Keyword::new(":_").reverse_of(), None);
        assert_eq!(Keyword::new(":/").reversed(), None);
    }

    #[test]
    fn the_slash_keyword_is_a_name_without_namespace() {
        let k = Keyword::new(":/");
        assert_eq!((k.namespace(), k.name()), (None, "/"));
        let k = Keyword::new(":a/b");
        assert_eq!((k.namespace(), k.name()), (Some("a"), "b"));
    }

    /// Text EDN would not read back as the same keyword is refused where a keyword is
    /// made, with a typed error naming the text.
    #[test]
    fn keywords_edn_cannot_read_back_are_refused() {
        for (text, needle) in [
            ("", "needs a name"),
            (":", "needs a name"),
            (":a/b/c", "more than one `/`"),
            ("a b", "cannot contain ' '"),
            (":a,b", "cannot contain ','"),
            (":a\tb", "cannot contain '\\t'"),
            (":a\u{feff}", "cannot contain"),
            (":a\u{a0}b", "cannot contain"),
            (":a\u{7}", "cannot contain"),
            ("::a", "auto-resolved"),
            (":a/", "no name after `/`"),
            (":/a", "empty namespace"),
            (":a(", "cannot contain '('"),
            (":a]", "cannot contain ']'"),
            (":a\"b", "cannot contain '\"'"),
            (":a;b", "cannot contain ';'"),
            (":a\\b", "cannot contain '\\\\'"),
        ] {
            match Keyword::parse(text) {
                Err(Error::InvalidKeyword { text: t, reason }) => {
                    assert_eq!(t, text);
                    assert!(reason.contains(needle), "{text:?}: {reason}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
            assert!(text.parse::<Keyword>().is_err(), "{text:?}");
        }
        for text in [
            ":a",
            "a",
            ":/",
            ":a/b",
            ":1",
            ":a#b",
            ":a:b",
            ":größe/ä",
            ":...",
            ":_",
        ] {
            let k = Keyword::parse(text).unwrap();
            assert_eq!(k.as_str(), text.strip_prefix(':').unwrap_or(text));
        }
    }

    #[test]
    #[should_panic(expected = "invalid keyword")]
    fn keyword_new_panics_on_text_that_is_not_a_keyword() {
        let _ = Keyword::new("a b");
    }

    /// Bytes cannot make a keyword that `Keyword::parse` refuses either.
    #[test]
    fn decoding_refuses_invalid_keywords() {
        let bytes = rmp_serde::to_vec("a b").unwrap();
        assert!(rmp_serde::from_slice::<Keyword>(&bytes).is_err());
        let bytes = rmp_serde::to_vec(&(5u8, "a/b/c")).unwrap();
        let e = rmp_serde::from_slice::<Value>(&bytes).unwrap_err();
        assert!(e.to_string().contains("invalid keyword"), "{e}");
        let bytes = rmp_serde::to_vec(&(1u64, "", (1u8, 2i64), 3u64)).unwrap();
        assert!(rmp_serde::from_slice::<crate::Datom>(&bytes).is_err());
        let good = rmp_serde::to_vec(&Value::keyword(":a/b")).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Value>(&good).unwrap(),
            Value::keyword(":a/b")
        );
    }

    /// Text for keywords: anything, and strings of the characters that matter to the
    /// reader (colons, slashes, delimiters, whitespace of every kind).
    fn keyword_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<String>(),
            prop::collection::vec(
                prop::sample::select(vec![
                    ":", "/", "a", "b", "_", "-", "?", "#", "1", ".", "+", "é", "😀", " ", ",",
                    "\t", "\n", "\u{feff}", "\u{a0}", "\u{200b}", "\u{0}", "(", ")", "[", "]", "{",
                    "}", "\"", ";", "\\", "'", "^", "@", "~", "nil",
                ]),
                0..8,
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    proptest::proptest! {
        /// The order of any two keywords is the order of their (namespace, name) pairs,
        /// a missing namespace first, and a total order consistent with equality.
        #[test]
        fn keyword_order_is_namespace_then_name(a in keyword_text(), b in keyword_text()) {
            if let (Ok(x), Ok(y)) = (Keyword::parse(&a), Keyword::parse(&b)) {
                let expected = (x.namespace(), x.name()).cmp(&(y.namespace(), y.name()));
                proptest::prop_assert_eq!(x.cmp(&y), expected);
                proptest::prop_assert_eq!(x.cmp(&y) == Ordering::Equal, x == y);
            }
        }

        /// Every keyword that can be made prints as EDN that reads back to itself, alone
        /// and among other forms, and as a value: an export always re-imports. Text that
        /// is refused is text the reader does not read as that keyword either.
        #[test]
        fn every_constructible_keyword_prints_and_reads_back(text in keyword_text()) {
            use crate::edn::{parse, value_to_edn, Edn};
            match Keyword::parse(&text) {
                Ok(k) => {
                    let printed = k.to_string();
                    proptest::prop_assert_eq!(parse(&printed), Ok(Edn::Keyword(k.clone())));
                    let many = format!("[{printed} {printed}]");
                    proptest::prop_assert_eq!(
                        parse(&many),
                        Ok(Edn::Vector(vec![Edn::Keyword(k.clone()), Edn::Keyword(k.clone())]))
                    );
                    let v = Value::Keyword(k.clone());
                    let form = parse(&value_to_edn(&v).to_string());
                    proptest::prop_assert_eq!(form.and_then(|f| f.to_value()), Ok(v));
                    let bytes = rmp_serde::to_vec(&k).unwrap_or_default();
                    proptest::prop_assert_eq!(rmp_serde::from_slice::<Keyword>(&bytes).ok(), Some(k.clone()));
                    for derived in [k.reversed(), k.reverse_of()].into_iter().flatten() {
                        proptest::prop_assert_eq!(
                            parse(&derived.to_string()),
                            Ok(Edn::Keyword(derived.clone()))
                        );
                    }
                }
                Err(e) => {
                    proptest::prop_assert!(matches!(e, Error::InvalidKeyword { .. }), "{e:?}");
                    let bare = text.strip_prefix(':').unwrap_or(&text);
                    let read = parse(&format!(":{bare}"));
                    proptest::prop_assert!(
                        !matches!(&read, Ok(Edn::Keyword(k)) if k.as_str() == bare),
                        "{text:?} refused but read back as {read:?}"
                    );
                }
            }
        }
    }
}
