//! Transactions with Datascript's semantics.
//!
//! [`Db::with`] runs tx data ([`TxOp`]s, built with [`TxBuilder`] or parsed from EDN by
//! [`parse_tx`]) against a db and returns a [`TxReport`] holding the new db; the old db
//! is untouched, and on error nothing at all has changed. [`Conn`] keeps a current db and
//! serialises transactions on it.
//!
//! ```
//! use datoms_core::tx::{tempid, TxBuilder};
//! use datoms_core::{AttributeSchema, Db, Schema, ValueType};
//!
//! let schema = Schema::new()
//!     .with(":person/name", AttributeSchema::default().value_type(ValueType::String).identity())?
//!     .with(":person/friend", AttributeSchema::default().value_type(ValueType::Ref).many())?;
//! let db = Db::new(schema);
//! let report = db.with(
//!     &TxBuilder::new()
//!         .entity("alice", |m| m.set(":person/name", "Alice").set(":person/friend", tempid("bob")))
//!         .entity("bob", |m| m.set(":person/name", "Bob"))
//!         .build(),
//! )?;
//! assert_eq!(report.tempids["alice"], 1);
//! assert_eq!(report.tempids["bob"], 2);
//!
//! // The same in EDN; "Alice" upserts into entity 1 through :db.unique/identity.
//! let report = report.db_after.with_edn(r#"[{:person/name "Alice" :person/friend -1}
//!                                            {:db/id -1 :person/name "Carol"}]"#)?;
//! assert_eq!(report.tempids["-1"], 3);
//! # Ok::<(), datoms_core::Error>(())
//! ```
//!
//! # Semantics
//! As Datascript's `transact`:
//! * operations run in order, each against the db as the previous ones left it (so a
//!   lookup ref can find an entity asserted earlier in the same transaction); an entity
//!   map becomes one `:db/add` per value, run before the next operation;
//! * a tempid (string, or negative number) names one entity throughout the transaction.
//!   New entity ids are Datascript's, exactly: they are given lazily, as each `:db/add`
//!   runs (an entity map's attributes become `:db/add`s in the order written, a nested
//!   map runs, with all it nests, before its parent's next attribute), a tempid in value
//!   position before the entity's, each one above the highest entity id given or asserted
//!   so far (`max_eid()` before the transaction);
//! * a tempid, or an entity map without `:db/id`, whose `:db.unique/identity` value
//!   already exists resolves to that entity (upsert). If a tempid got a fresh id before an
//!   operation upserted it, the transaction is rerun with the tempid pinned and every
//!   other id kept; two upserts of one tempid to different entities are
//!   [`Error::UpsertConflict`];
//! * a tempid whose id is the entity of no assertion (it appears only in value
//!   positions) is [`Error::TempidsOnlyAsValue`]; a tempid as the entity of anything but
//!   `:db/add` is [`Error::MalformedTx`];
//! * cardinality one: asserting a new value retracts the old one (retraction first);
//!   asserting a present datom, or one asserted earlier in the transaction, produces
//!   nothing; retracting an absent datom produces nothing;
//! * a `:db/unique` value held by another entity is [`Error::UniqueConflict`];
//! * `:db/retractEntity` retracts the entity's datoms, then every datom referencing it,
//!   then (recursively) the entities it holds through `:db/isComponent` attributes;
//!   `[:db/retract e a]` of a component attribute retracts the components too;
//! * `:db/current-tx` (or the strings `"datomic.tx"`, `"datascript.tx"`) names the
//!   transaction entity, in entity and ref-value position; the report's tempids map
//!   `":db/current-tx"` to the transaction id, and `"datomic.tx"` / `"datascript.tx"`
//!   too when the transaction used them.
//!
//! * `[:db.fn/call f args…]` runs the transaction function `f` on the db as the
//!   transaction has made it so far and runs the tx data it returns in its place
//!   ([`function`]; `f` is a name registered in [`TxFunctions`], or a closure,
//!   [`TxOp::Fn`]).
//!
//! Beyond Datascript, values are checked against `:db/valueType`
//! ([`Error::WrongValueType`]).
//!
//! Decisions where Datascript leaves room:
//! * a lookup ref that finds nothing in the entity position of a retraction is a no-op
//!   (as Datascript's `entid`), everywhere else it is [`Error::UnknownLookupRef`];
//! * a tempid in the value position of a cas must already have an id
//!   ([`Error::UnknownTempid`] otherwise); Datascript rejects every tempid there;
//! * a map with an explicit `:db/id` whose identity value belongs to another entity is
//!   [`Error::UniqueConflict`] (Datascript calls it a conflicting upsert);
//! * the tempid `-1` (a number in EDN) and the string `"-1"` are the same tempid;
//! * `[:db/cas e a nil v]` succeeds when `e` has no value of `a`, also for
//!   cardinality-many attributes.

mod conn;
mod data;
mod from_edn;
pub mod function;
mod resolve;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use conn::{Conn, Listener};
pub use data::{
    current_tx, lookup, tempid, EntityMap, EntityRef, TxBuilder, TxOp, TxValue, CURRENT_TX,
};
pub use from_edn::parse_tx;
pub use function::{TxFn, TxFnImpl, TxFunctions};

use crate::commit::TxId;
use crate::datom::{Datom, Tx};
use crate::db::Db;
use crate::error::Error;
use crate::value::Eid;

/// What a transaction did.
#[derive(Clone, Debug)]
pub struct TxReport {
    /// The db the transaction ran against.
    pub db_before: Db,
    /// The db with the transaction applied.
    pub db_after: Db,
    /// The datoms the transaction produced (assertions and retractions), in the order
    /// they were applied; exactly the transaction's log entry.
    pub tx_data: Vec<Datom>,
    /// Every tempid and the entity it resolved to, plus `":db/current-tx"` → [`Self::tx`].
    /// Negative-number tempids are keyed by their text (`"-1"`).
    pub tempids: BTreeMap<String, Eid>,
    /// The transaction id.
    pub tx: Tx,
}

impl TxReport {
    /// The entity a tempid resolved to.
    pub fn tempid(&self, tempid: &str) -> Option<Eid> {
        self.tempids.get(tempid).copied()
    }
}

impl Db {
    /// Runs a transaction against this db, Datascript's `d/with`: pure, the new db is in
    /// the report. See the [module docs](self) for the semantics.
    ///
    /// The report's `tx_data` is exactly what [`Db::apply_log_entry`] applies (with
    /// transaction id `max_tx() + 1`), so replaying the log reproduces `db_after`.
    ///
    /// # Errors
    /// [`Error::UnknownAttribute`], [`Error::WrongValueType`],
    /// [`Error::UnknownLookupRef`], [`Error::LookupRefNotUnique`],
    /// [`Error::UnknownTempid`], [`Error::TempidsOnlyAsValue`], [`Error::UpsertConflict`],
    /// [`Error::UniqueConflict`],
    /// [`Error::CasMismatch`], [`Error::InvalidEntityId`], [`Error::MalformedTx`],
    /// [`Error::FilteredDb`] on a filtered db, or a load error of a lazily restored db.
    /// This db is unchanged (it is a value).
    pub fn with(&self, ops: &[TxOp]) -> Result<TxReport, Error> {
        self.with_fns(ops, &TxFunctions::new())
    }

    /// [`Db::with`], running `[:db.fn/call name …]` ([`TxOp::Call`]) with the functions
    /// of `fns` (see [`function`]).
    ///
    /// # Errors
    /// As [`Db::with`]; [`Error::UnknownTxFunction`] for a name `fns` does not hold,
    /// [`Error::TxFunction`] for a function that failed.
    pub fn with_fns(&self, ops: &[TxOp], fns: &TxFunctions) -> Result<TxReport, Error> {
        self.check_writable("transacted")?;
        resolve::transact(self, ops, None, fns)
    }

    /// [`Db::with`], recording `id` with the transaction in the pending log, so the
    /// commit that stores it carries the id in its tx log ([`crate::TxLogEntry::id`]): a
    /// writer that retries after a lost reply finds which of its transactions landed.
    /// The id is not a datom; the db's datoms are those [`Db::with`] gives.
    ///
    /// # Errors
    /// As [`Db::with`].
    pub fn with_id(&self, ops: &[TxOp], id: TxId) -> Result<TxReport, Error> {
        self.with_id_fns(ops, id, &TxFunctions::new())
    }

    /// [`Db::with_id`] with transaction functions ([`Db::with_fns`]).
    ///
    /// # Errors
    /// As [`Db::with_fns`].
    pub fn with_id_fns(
        &self,
        ops: &[TxOp],
        id: TxId,
        fns: &TxFunctions,
    ) -> Result<TxReport, Error> {
        self.check_writable("transacted")?;
        resolve::transact(self, ops, Some(id), fns)
    }

    /// Parses EDN tx data with [`parse_tx`] against this db's schema and runs it with
    /// [`Db::with`].
    ///
    /// # Errors
    /// As [`parse_tx`] and [`Db::with`].
    pub fn with_edn(&self, text: &str) -> Result<TxReport, Error> {
        let ops = parse_tx(text, self.schema())?;
        self.with(&ops)
    }
}
