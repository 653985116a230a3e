//! The tx-data model: what a transaction says, as plain Rust values, and a builder that
//! writes it almost as compactly as EDN.
//!
//! | EDN                                         | Rust                                                        |
//! |---------------------------------------------|-------------------------------------------------------------|
//! | `{:db/id "a" :person/name "Ann"}`           | `TxBuilder::new().entity("a", \|m\| m.set(":person/name", "Ann"))` |
//! | `{:person/name "Ann"}`                      | `.new_entity(\|m\| m.set(":person/name", "Ann"))`            |
//! | `[:db/add "a" :person/age 30]`              | `.add("a", ":person/age", 30)`                              |
//! | `[:db/retract 1 :person/age 30]`            | `.retract(1, ":person/age", 30)`                            |
//! | `[:db/retract 1 :person/age]`               | `.retract_attr(1, ":person/age")`                           |
//! | `[:db/retractEntity [:person/name "Ann"]]`  | `.retract_entity(lookup(":person/name", "Ann"))`            |
//! | `[:db/cas 1 :person/age 30 31]`             | `.cas(1, ":person/age", Some(30), 31)`                      |
//! | `[:db/add :db/current-tx :tx/note "x"]`     | `.add(current_tx(), ":tx/note", "x")`                       |
//! | `[:db.fn/call inc "hits"]`                  | `TxOp::Call { name: "inc".into(), args: vec!["hits".into()] }` |
//!
//! Entity positions take an [`EntityRef`]: a string (`"a"`) or negative number (`-1`) is
//! a tempid, a positive number an entity id, [`lookup`] a lookup ref. Value positions take
//! a [`TxValue`]: any scalar, and for ref attributes also everything an entity position
//! takes (a string or negative number under a ref attribute is a tempid, as in EDN), a
//! nested [`EntityMap`], or a `Vec`/array of values for cardinality-many attributes.
//!
//! The tx-data types are `Serialize`/`Deserialize` (serde's derived shapes over the
//! value encoding of nodes): a peer keeps pending transactions *as written* in its outbox
//! with them, so a change to these types is a change to the outbox format (its golden
//! fixture fails).
//!
//! Attributes take any `impl Into<Keyword>`: a `&str` is a keyword literal
//! ([`Keyword::new`], which panics on text that is not a keyword); attribute names that
//! come from input go in as `Keyword::parse(text)?`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::{Eid, Keyword, Uuid, Value};

/// The keyword of an entity map's id: `:db/id`.
pub const DB_ID: &str = "db/id";

/// The keyword (and, as a string, the tempid) naming the transaction being run.
pub const CURRENT_TX: &str = ":db/current-tx";

/// Which entity an operation is about: the `e` of `[:db/add e a v]` or an entity map's
/// `:db/id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityRef {
    /// An existing entity id (or an existing transaction id).
    Id(Eid),
    /// A tempid: any string (`"alice"`) or a negative number written as text (`"-1"`).
    /// The same tempid everywhere in one transaction is the same entity.
    Tempid(String),
    /// A lookup ref `[attr value]`; `attr` must be `:db/unique`.
    Lookup(Keyword, Value),
    /// `:db/current-tx`: the transaction entity itself.
    CurrentTx,
}

/// The value of an assertion: the `v` of `[:db/add e a v]` or a value in an entity map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxValue {
    /// A plain value. Under a ref attribute a positive `Long` is an entity id, a negative
    /// `Long` or a `String` is a tempid, and `:db/current-tx` is the transaction.
    Value(Value),
    /// A tempid (ref attributes only).
    Tempid(String),
    /// A lookup ref `[attr value]` (ref attributes only).
    Lookup(Keyword, Value),
    /// A nested entity map (ref attributes in entity maps only). Without `:db/id` it is a
    /// new entity (or upserts through its `:db.unique/identity` attributes).
    Nested(EntityMap),
    /// Several values (cardinality-many and reverse attributes in entity maps only).
    Many(Vec<TxValue>),
    /// `:db/current-tx` (ref attributes only).
    CurrentTx,
}

/// An entity map `{:db/id … :attr value …}`. Its attributes keep the order they were
/// written in, which is the order their datoms are produced in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityMap {
    /// `:db/id`; `None` is a new entity (unless it upserts).
    pub id: Option<EntityRef>,
    /// The attributes and their values. A reverse attribute such as `:person/_friend`
    /// asserts `[value :person/friend this-entity]`.
    pub attrs: Vec<(Keyword, TxValue)>,
}

/// One transaction operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxOp {
    /// An entity map.
    Map(EntityMap),
    /// `[:db/add e a v]`.
    Add(EntityRef, Keyword, TxValue),
    /// `[:db/retract e a v]`; retracting an absent datom does nothing.
    Retract(EntityRef, Keyword, TxValue),
    /// `[:db/retract e a]` (`:db.fn/retractAttribute`): retracts every value of `a` on `e`
    /// (and, for a component attribute, the component entities).
    RetractAttr(EntityRef, Keyword),
    /// `[:db/retractEntity e]`: retracts every datom of `e`, every datom referencing `e`,
    /// and recursively the entities `e` holds through component attributes.
    RetractEntity(EntityRef),
    /// `[:db/cas e a old new]`: asserts `new` if the current value is `old` (`None`: if
    /// there is no current value), else fails with [`crate::Error::CasMismatch`].
    Cas(EntityRef, Keyword, Option<TxValue>, TxValue),
    /// `[:db.fn/call name args…]`: runs the transaction function registered as `name`
    /// ([`super::TxFunctions`]) on the db as the transaction has made it so far, and the
    /// tx data it returns in its place (see [`super::function`]). Stored as written, so
    /// a rebase runs the function again on the newer db.
    Call {
        /// The registered name.
        name: String,
        /// The arguments.
        args: Vec<TxValue>,
    },
    /// `:db.fn/call` with a Rust closure: as [`TxOp::Call`], for a transaction run once
    /// in this process. It cannot be stored: serializing it is an error, and a peer
    /// refuses it.
    Fn(
        #[serde(with = "super::function::closure_serde")] super::function::TxFn,
        Vec<TxValue>,
    ),
}

/// A tempid, for entity and value positions: `tempid("bob")`.
pub fn tempid(name: impl Into<String>) -> EntityRef {
    EntityRef::Tempid(name.into())
}

/// A lookup ref `[attr value]`, for entity and value positions:
/// `lookup(":person/email", "ann@example.com")`.
pub fn lookup(attr: impl Into<Keyword>, value: impl Into<Value>) -> EntityRef {
    EntityRef::Lookup(attr.into(), value.into())
}

/// `:db/current-tx`, for entity and value positions.
pub fn current_tx() -> EntityRef {
    EntityRef::CurrentTx
}

/// True for `:db/current-tx`.
pub(crate) fn is_current_tx_keyword(k: &Keyword) -> bool {
    k.as_str() == "db/current-tx"
}

/// True for the texts Datascript accepts as naming the current transaction.
pub(crate) fn is_current_tx_text(text: &str) -> bool {
    matches!(text, CURRENT_TX | "datomic.tx" | "datascript.tx")
}

impl fmt::Display for EntityRef {
    /// EDN-like: `5`, `alice` (the tempid text), `[:person/name "Ann"]`, `:db/current-tx`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityRef::Id(e) => write!(f, "{e}"),
            EntityRef::Tempid(t) => f.write_str(t),
            EntityRef::Lookup(a, v) => write!(f, "[{a} {v}]"),
            EntityRef::CurrentTx => f.write_str(CURRENT_TX),
        }
    }
}

impl From<&str> for EntityRef {
    /// A tempid.
    fn from(t: &str) -> EntityRef {
        EntityRef::Tempid(t.to_owned())
    }
}

impl From<String> for EntityRef {
    /// A tempid.
    fn from(t: String) -> EntityRef {
        EntityRef::Tempid(t)
    }
}

impl From<&String> for EntityRef {
    /// A tempid.
    fn from(t: &String) -> EntityRef {
        EntityRef::Tempid(t.clone())
    }
}

impl From<u64> for EntityRef {
    /// An entity id.
    fn from(e: u64) -> EntityRef {
        EntityRef::Id(e)
    }
}

impl From<i64> for EntityRef {
    /// A positive number is an entity id, a negative one a tempid (as in EDN). `0` is
    /// kept as id 0, which transacting rejects.
    fn from(n: i64) -> EntityRef {
        if n < 0 {
            EntityRef::Tempid(n.to_string())
        } else {
            EntityRef::Id(n.unsigned_abs())
        }
    }
}

impl From<i32> for EntityRef {
    /// As `From<i64>`.
    fn from(n: i32) -> EntityRef {
        EntityRef::from(i64::from(n))
    }
}

impl From<Value> for TxValue {
    fn from(v: Value) -> TxValue {
        TxValue::Value(v)
    }
}

impl From<&str> for TxValue {
    /// A string value (a tempid under a ref attribute).
    fn from(s: &str) -> TxValue {
        TxValue::Value(Value::string(s))
    }
}

impl From<String> for TxValue {
    /// A string value (a tempid under a ref attribute).
    fn from(s: String) -> TxValue {
        TxValue::Value(Value::from(s))
    }
}

impl From<i64> for TxValue {
    /// A long (an entity id or, when negative, a tempid under a ref attribute).
    fn from(n: i64) -> TxValue {
        TxValue::Value(Value::Long(n))
    }
}

impl From<i32> for TxValue {
    /// A long (an entity id or, when negative, a tempid under a ref attribute).
    fn from(n: i32) -> TxValue {
        TxValue::Value(Value::Long(i64::from(n)))
    }
}

impl From<bool> for TxValue {
    fn from(b: bool) -> TxValue {
        TxValue::Value(Value::Bool(b))
    }
}

impl From<Keyword> for TxValue {
    fn from(k: Keyword) -> TxValue {
        TxValue::Value(Value::Keyword(k))
    }
}

impl From<Uuid> for TxValue {
    fn from(u: Uuid) -> TxValue {
        TxValue::Value(Value::Uuid(u))
    }
}

impl From<EntityRef> for TxValue {
    /// The entity as a ref value: an id becomes `Value::Ref`.
    fn from(r: EntityRef) -> TxValue {
        match r {
            EntityRef::Id(e) => TxValue::Value(Value::Ref(e)),
            EntityRef::Tempid(t) => TxValue::Tempid(t),
            EntityRef::Lookup(a, v) => TxValue::Lookup(a, v),
            EntityRef::CurrentTx => TxValue::CurrentTx,
        }
    }
}

impl From<EntityMap> for TxValue {
    /// A nested entity map.
    fn from(m: EntityMap) -> TxValue {
        TxValue::Nested(m)
    }
}

impl<T: Into<TxValue>> From<Vec<T>> for TxValue {
    /// Several values.
    fn from(vs: Vec<T>) -> TxValue {
        TxValue::Many(vs.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<TxValue>, const N: usize> From<[T; N]> for TxValue {
    /// Several values.
    fn from(vs: [T; N]) -> TxValue {
        TxValue::Many(vs.into_iter().map(Into::into).collect())
    }
}

impl TxValue {
    /// The value as an entity reference, when it can name one (used for reverse
    /// attributes and `:db/id`): ids, tempids, lookup refs and the current tx.
    pub fn as_entity_ref(&self) -> Option<EntityRef> {
        Some(match self {
            TxValue::Value(Value::Ref(e)) => EntityRef::Id(*e),
            TxValue::Value(Value::Long(n)) => EntityRef::from(*n),
            TxValue::Value(Value::String(s)) => EntityRef::Tempid(s.to_string()),
            TxValue::Value(Value::Keyword(k)) if is_current_tx_keyword(k) => EntityRef::CurrentTx,
            TxValue::Tempid(t) => EntityRef::Tempid(t.clone()),
            TxValue::Lookup(a, v) => EntityRef::Lookup(a.clone(), v.clone()),
            TxValue::CurrentTx => EntityRef::CurrentTx,
            _ => return None,
        })
    }
}

impl EntityMap {
    /// An empty map without `:db/id` (a new entity).
    pub fn new() -> EntityMap {
        EntityMap::default()
    }

    /// An empty map with this `:db/id`.
    pub fn with_id(id: impl Into<EntityRef>) -> EntityMap {
        EntityMap {
            id: Some(id.into()),
            attrs: Vec::new(),
        }
    }

    /// Sets `:db/id`.
    pub fn id(mut self, id: impl Into<EntityRef>) -> EntityMap {
        self.id = Some(id.into());
        self
    }

    /// Adds `attr value`. `set(":db/id", x)` sets the id instead (when `x` can name an
    /// entity), so maps can be written entirely with `set` (see [`crate::tx_entity!`]).
    pub fn set(mut self, attr: impl Into<Keyword>, value: impl Into<TxValue>) -> EntityMap {
        let attr = attr.into();
        let value = value.into();
        if attr.as_str() == DB_ID {
            if let Some(id) = value.as_entity_ref() {
                self.id = Some(id);
                return self;
            }
        }
        self.attrs.push((attr, value));
        self
    }
}

impl TxOp {
    /// `[:db/add e a v]`.
    pub fn add(e: impl Into<EntityRef>, a: impl Into<Keyword>, v: impl Into<TxValue>) -> TxOp {
        TxOp::Add(e.into(), a.into(), v.into())
    }

    /// `[:db/retract e a v]`.
    pub fn retract(e: impl Into<EntityRef>, a: impl Into<Keyword>, v: impl Into<TxValue>) -> TxOp {
        TxOp::Retract(e.into(), a.into(), v.into())
    }

    /// `[:db/retract e a]`.
    pub fn retract_attr(e: impl Into<EntityRef>, a: impl Into<Keyword>) -> TxOp {
        TxOp::RetractAttr(e.into(), a.into())
    }

    /// `[:db/retractEntity e]`.
    pub fn retract_entity(e: impl Into<EntityRef>) -> TxOp {
        TxOp::RetractEntity(e.into())
    }

    /// `[:db/cas e a old new]`; `old == None` expects no current value.
    pub fn cas<O: Into<TxValue>>(
        e: impl Into<EntityRef>,
        a: impl Into<Keyword>,
        old: Option<O>,
        new: impl Into<TxValue>,
    ) -> TxOp {
        TxOp::Cas(e.into(), a.into(), old.map(Into::into), new.into())
    }
}

impl From<EntityMap> for TxOp {
    fn from(m: EntityMap) -> TxOp {
        TxOp::Map(m)
    }
}

/// Builds tx data one operation at a time:
///
/// ```
/// use datoms_core::tx::{lookup, tempid, TxBuilder};
///
/// let ops = TxBuilder::new()
///     .entity("alice", |m| m.set(":person/name", "Alice").set(":person/friend", tempid("bob")))
///     .entity("bob", |m| m.set(":person/name", "Bob"))
///     .add("carol", ":person/name", "Carol")
///     .retract_entity(lookup(":person/name", "Dave"))
///     .build();
/// assert_eq!(ops.len(), 4);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxBuilder {
    ops: Vec<TxOp>,
}

impl TxBuilder {
    /// No operations yet.
    pub fn new() -> TxBuilder {
        TxBuilder::default()
    }

    /// An entity map with `:db/id id`, filled in by `f`.
    pub fn entity(
        self,
        id: impl Into<EntityRef>,
        f: impl FnOnce(EntityMap) -> EntityMap,
    ) -> TxBuilder {
        self.op(TxOp::Map(f(EntityMap::with_id(id))))
    }

    /// An entity map without `:db/id` (a new entity, or an upsert), filled in by `f`.
    pub fn new_entity(self, f: impl FnOnce(EntityMap) -> EntityMap) -> TxBuilder {
        self.op(TxOp::Map(f(EntityMap::new())))
    }

    /// `[:db/add e a v]`.
    pub fn add(
        self,
        e: impl Into<EntityRef>,
        a: impl Into<Keyword>,
        v: impl Into<TxValue>,
    ) -> TxBuilder {
        self.op(TxOp::add(e, a, v))
    }

    /// `[:db/retract e a v]`.
    pub fn retract(
        self,
        e: impl Into<EntityRef>,
        a: impl Into<Keyword>,
        v: impl Into<TxValue>,
    ) -> TxBuilder {
        self.op(TxOp::retract(e, a, v))
    }

    /// `[:db/retract e a]`.
    pub fn retract_attr(self, e: impl Into<EntityRef>, a: impl Into<Keyword>) -> TxBuilder {
        self.op(TxOp::retract_attr(e, a))
    }

    /// `[:db/retractEntity e]`.
    pub fn retract_entity(self, e: impl Into<EntityRef>) -> TxBuilder {
        self.op(TxOp::retract_entity(e))
    }

    /// `[:db/cas e a old new]`; `old == None` expects no current value.
    pub fn cas<O: Into<TxValue>>(
        self,
        e: impl Into<EntityRef>,
        a: impl Into<Keyword>,
        old: Option<O>,
        new: impl Into<TxValue>,
    ) -> TxBuilder {
        self.op(TxOp::cas(e, a, old, new))
    }

    /// Any operation.
    pub fn op(mut self, op: impl Into<TxOp>) -> TxBuilder {
        self.ops.push(op.into());
        self
    }

    /// The operations so far.
    pub fn ops(&self) -> &[TxOp] {
        &self.ops
    }

    /// The finished tx data.
    pub fn build(self) -> Vec<TxOp> {
        self.ops
    }
}

impl From<TxBuilder> for Vec<TxOp> {
    fn from(b: TxBuilder) -> Vec<TxOp> {
        b.ops
    }
}

/// An [`EntityMap`] written like EDN, with `=>` between attribute and value:
///
/// ```
/// use datoms_core::tx_entity;
/// use datoms_core::tx::{EntityRef, TxValue};
///
/// let m = tx_entity! { ":db/id" => "alice", ":person/name" => "Alice", ":person/age" => 30 };
/// assert_eq!(m.id, Some(EntityRef::Tempid("alice".into())));
/// assert_eq!(m.attrs.len(), 2);
/// let nested = tx_entity! { ":person/address" => tx_entity! { ":address/city" => "Paris" } };
/// assert!(matches!(nested.attrs[0].1, TxValue::Nested(_)));
/// ```
#[macro_export]
macro_rules! tx_entity {
    ($($attr:expr => $value:expr),* $(,)?) => {
        $crate::tx::EntityMap::new()$(.set($attr, $value))*
    };
}

/// A `Vec<TxOp>` from entity maps and [`TxOp`]s:
///
/// ```
/// use datoms_core::{tx_data, tx_entity};
/// use datoms_core::tx::TxOp;
///
/// let ops = tx_data![
///     tx_entity! { ":db/id" => -1, ":person/name" => "Alice" },
///     TxOp::add("c", ":person/name", "Carol"),
///     TxOp::retract_entity(-1),
/// ];
/// assert_eq!(ops.len(), 3);
/// ```
#[macro_export]
macro_rules! tx_data {
    ($($op:expr),* $(,)?) => {
        ::std::vec![$($crate::tx::TxOp::from($op)),*]
    };
}

/// An entity position as EDN: string tempids quoted, negative-number tempids bare.
struct EdnRef<'a>(&'a EntityRef);

impl fmt::Display for EdnRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            EntityRef::Tempid(t) if t.parse::<i64>().is_err() => write!(f, "{t:?}"),
            other => write!(f, "{other}"),
        }
    }
}

impl fmt::Display for TxValue {
    /// EDN-like, for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxValue::Value(v) => write!(f, "{v}"),
            TxValue::Tempid(t) => write!(f, "{}", EdnRef(&EntityRef::Tempid(t.clone()))),
            TxValue::Lookup(a, v) => write!(f, "[{a} {v}]"),
            TxValue::Nested(m) => write!(f, "{m}"),
            TxValue::Many(vs) => {
                f.write_str("[")?;
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            TxValue::CurrentTx => f.write_str(CURRENT_TX),
        }
    }
}

impl fmt::Display for EntityMap {
    /// EDN-like, for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let mut first = true;
        if let Some(id) = &self.id {
            write!(f, ":{DB_ID} {}", EdnRef(id))?;
            first = false;
        }
        for (a, v) in &self.attrs {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{a} {v}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Display for TxOp {
    /// The operation as EDN tx data, for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxOp::Map(m) => write!(f, "{m}"),
            TxOp::Add(e, a, v) => write!(f, "[:db/add {} {a} {v}]", EdnRef(e)),
            TxOp::Retract(e, a, v) => write!(f, "[:db/retract {} {a} {v}]", EdnRef(e)),
            TxOp::RetractAttr(e, a) => write!(f, "[:db/retract {} {a}]", EdnRef(e)),
            TxOp::RetractEntity(e) => write!(f, "[:db/retractEntity {}]", EdnRef(e)),
            TxOp::Cas(e, a, old, new) => {
                write!(f, "[:db/cas {} {a} ", EdnRef(e))?;
                match old {
                    Some(o) => write!(f, "{o}")?,
                    None => f.write_str("nil")?,
                }
                write!(f, " {new}]")
            }
            TxOp::Call { name, args } => {
                write!(f, "[:db.fn/call {name}")?;
                args.iter().try_for_each(|a| write!(f, " {a}"))?;
                f.write_str("]")
            }
            TxOp::Fn(func, args) => {
                write!(f, "[:db.fn/call #fn[{}]", func.name())?;
                args.iter().try_for_each(|a| write!(f, " {a}"))?;
                f.write_str("]")
            }
        }
    }
}
