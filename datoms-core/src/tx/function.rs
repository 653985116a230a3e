//! Transaction functions: Datascript's `:db.fn/call`.
//!
//! A transaction function takes the db **as the transaction has made it so far** (every
//! operation before the call applied) and arguments, and returns tx data, which runs in
//! its place, in the same transaction: its tempids are the transaction's tempids, and it
//! may call functions in turn.
//!
//! Two forms:
//! * [`TxOp::Call`] names a function registered in [`TxFunctions`] (on a [`super::Conn`]
//!   with [`super::Conn::register_tx_fn`], on a peer in its options) and gives its
//!   arguments as [`TxValue`]s. It is plain data, so a transaction holding it is stored
//!   as its *intent*: a peer that rebases a pending transaction onto a newer db runs the
//!   function again, against that db. In EDN: `[:db.fn/call inc-age [:person/name "Ann"] 1]`
//!   (the name a symbol, keyword or string), or, as Datascript calls the function of an
//!   ident, `[:inc-age [:person/name "Ann"] 1]` (any keyword outside the `db` and
//!   `db.fn` namespaces).
//! * [`TxOp::Fn`] holds a Rust closure ([`TxFn`]), for a transaction run once, in
//!   process. It cannot be stored (serializing it is an error), so a peer refuses it.
//!
//! **A transaction function must be deterministic**: a function of its db and arguments
//! only — no clock, no randomness, no I/O, no state of its own. A transaction is run
//! again where its outcome must be the same (an upsert restart within the transaction)
//! and where it must be computed anew on a newer db (a peer's rebase); a function that
//! reads anything else gives answers that depend on when and where it ran, and replicas
//! diverge.
//!
//! ```
//! use datoms_core::tx::{Conn, TxFunctions, TxOp, TxValue};
//! use datoms_core::{AttributeSchema, Db, Schema, Value, ValueType};
//!
//! let schema = Schema::new()
//!     .with(":counter/name", AttributeSchema::default().value_type(ValueType::String).identity())?;
//! let conn = Conn::new(Db::new(schema));
//! conn.register_tx_fn("inc", |db, args| {
//!     let Some(TxValue::Value(Value::String(name))) = args.first() else {
//!         return Err("inc takes a counter name".into());
//!     };
//!     let e = db.lookup_ref(&":counter/name".into(), &Value::from(name.as_ref()))
//!         .map_err(|e| e.to_string())?;
//!     let now = match e {
//!         Some(e) => db.entity_attr(e, &":counter/value".into()).map_err(|e| e.to_string())?
//!             .first().and_then(|d| if let Value::Long(n) = d.v { Some(n) } else { None }).unwrap_or(0),
//!         None => 0,
//!     };
//!     Ok(datoms_core::tx::parse_tx(
//!         &format!("[{{:counter/name {name:?} :counter/value {}}}]", now + 1),
//!         db.schema(),
//!     ).map_err(|e| e.to_string())?)
//! });
//! conn.transact_edn(r#"[[:db.fn/call inc "hits"]]"#)?;
//! conn.transact_edn(r#"[[:db.fn/call inc "hits"]]"#)?;
//! let hits = conn.db().pull("[:counter/value]", 1)?;
//! assert_eq!(hits.to_string(), "{:counter/value 2}");
//! # Ok::<(), datoms_core::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::data::{TxOp, TxValue};
use crate::db::Db;

/// The body of a transaction function: the db so far and the arguments in, tx data (or
/// why not) out.
pub type TxFnImpl = Arc<dyn Fn(&Db, &[TxValue]) -> Result<Vec<TxOp>, String> + Send + Sync>;

/// A transaction function as a closure, for [`TxOp::Fn`] (not storable).
#[derive(Clone)]
pub struct TxFn {
    name: String,
    f: TxFnImpl,
}

impl TxFn {
    /// A closure named `name` (what errors and the op's text name it by).
    pub fn new(
        name: &str,
        f: impl Fn(&Db, &[TxValue]) -> Result<Vec<TxOp>, String> + Send + Sync + 'static,
    ) -> TxFn {
        TxFn {
            name: name.to_owned(),
            f: Arc::new(f),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls it.
    pub(crate) fn call(&self, db: &Db, args: &[TxValue]) -> Result<Vec<TxOp>, String> {
        (self.f)(db, args)
    }
}

impl fmt::Debug for TxFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxFn({})", self.name)
    }
}

impl PartialEq for TxFn {
    /// The same closure (one is a clone of the other).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.f, &other.f)
    }
}

impl Eq for TxFn {}

/// Named transaction functions, for [`TxOp::Call`].
#[derive(Clone, Default)]
pub struct TxFunctions {
    fns: BTreeMap<String, TxFnImpl>,
}

impl TxFunctions {
    /// No functions.
    pub fn new() -> TxFunctions {
        TxFunctions::default()
    }

    /// Registers `f` under `name` (replacing a function of that name). It must be
    /// deterministic: see the [module docs](self).
    pub fn with(
        mut self,
        name: &str,
        f: impl Fn(&Db, &[TxValue]) -> Result<Vec<TxOp>, String> + Send + Sync + 'static,
    ) -> TxFunctions {
        self.insert(name, f);
        self
    }

    /// Registers `f` under `name` in place ([`TxFunctions::with`]).
    pub fn insert(
        &mut self,
        name: &str,
        f: impl Fn(&Db, &[TxValue]) -> Result<Vec<TxOp>, String> + Send + Sync + 'static,
    ) {
        self.fns.insert(name.to_owned(), Arc::new(f));
    }

    /// The function registered under `name`.
    pub fn get(&self, name: &str) -> Option<&TxFnImpl> {
        self.fns.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.fns.keys().map(String::as_str).collect()
    }
}

impl fmt::Debug for TxFunctions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TxFunctions").field(&self.names()).finish()
    }
}

/// Serde for [`TxOp::Fn`]: a closure cannot be written (the error says to name a
/// registered function instead) and is never read.
pub(crate) mod closure_serde {
    use super::TxFn;

    pub(crate) fn serialize<S: serde::Serializer>(f: &TxFn, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(format!(
            "transaction function {} is a closure and cannot be stored: register it and \
             call it by name (TxOp::Call)",
            f.name()
        )))
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(_: D) -> Result<TxFn, D::Error> {
        Err(serde::de::Error::custom(
            "a transaction function closure is never stored",
        ))
    }
}
