//! The one error type of `datoms-core`. Every variant names what is at fault: the node
//! address, the attribute, the entity, the value, or the line and column of EDN text.

use crate::address::Address;
use crate::datom::IndexKind;
use crate::value::{Eid, Keyword, Value, ValueType};

/// Everything that can go wrong in `datoms-core`. No operation that returns an error has
/// changed any database: dbs are immutable values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- bytes and nodes -------------------------------------------------------------
    /// The bytes fetched for `address` do not hash to it (bit rot, a torn write, a wrong
    /// backend key).
    #[error("node {address} is corrupt: its bytes hash to {actual}")]
    Corrupt {
        /// The address asked for.
        address: Address,
        /// What the bytes actually hash to.
        actual: Address,
    },
    /// The bytes at `address` hash correctly but are not a valid node or commit.
    #[error("node {address} cannot be decoded: {reason}")]
    Malformed {
        /// The address of the bad node or commit.
        address: Address,
        /// What is wrong with it.
        reason: String,
    },
    /// The node or commit at `address` was written by a newer, unknown format version.
    #[error("node {address} has format version {version}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The address of the node.
        address: Address,
        /// The version byte found.
        version: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A node needed by a lazily restored db could not be loaded.
    #[error("node {address} could not be loaded: {reason}")]
    NodeUnavailable {
        /// The node's address.
        address: Address,
        /// Why (missing from storage, I/O error, …).
        reason: String,
    },
    /// Bytes were handed to a restore that did not ask for them.
    #[error("restore did not request node {address}")]
    Unrequested {
        /// The address of the unrequested bytes.
        address: Address,
    },

    // ---- values, schema and index access -----------------------------------------------
    /// A value that has no place in a datom (e.g. `NaN`).
    #[error("invalid value: {reason}")]
    InvalidValue {
        /// What is wrong.
        reason: String,
    },
    /// An attribute declaration that makes no sense.
    #[error("bad schema for {attr}: {reason}")]
    BadSchema {
        /// The attribute.
        attr: Keyword,
        /// What is wrong.
        reason: String,
    },
    /// An attribute the (strict) schema does not declare.
    #[error("unknown attribute {attr}")]
    UnknownAttribute {
        /// The attribute.
        attr: Keyword,
    },
    /// Index components given in the wrong order or number.
    #[error("bad components for {index:?}: {reason}")]
    InvalidIndexComponents {
        /// The index.
        index: IndexKind,
        /// What is wrong.
        reason: String,
    },

    // ---- transactions ------------------------------------------------------------------
    /// Tx data that is not a valid transaction form.
    #[error("malformed tx data: {reason}")]
    MalformedTx {
        /// What is wrong, quoting the offending form.
        reason: String,
    },
    /// A value whose type differs from the attribute's `:db/valueType`.
    #[error("value {value:?} for {attr} on entity {entity} is not a {expected:?}")]
    WrongValueType {
        /// The entity (or tempid text) being asserted.
        entity: String,
        /// The attribute.
        attr: Keyword,
        /// The declared type.
        expected: ValueType,
        /// The value given.
        value: Value,
    },
    /// A lookup ref `[attr value]` that matches no entity.
    #[error("nothing found for lookup ref [{attr} {value:?}]")]
    UnknownLookupRef {
        /// The attribute.
        attr: Keyword,
        /// The value looked up.
        value: Value,
    },
    /// A lookup ref on an attribute that is not `:db/unique`.
    #[error("lookup ref attribute {attr} must be :db/unique")]
    LookupRefNotUnique {
        /// The attribute.
        attr: Keyword,
    },
    /// A tempid in value position that no entity in the transaction resolves.
    #[error("tempid {tempid} used as a value of {attr} is never asserted as an entity")]
    UnknownTempid {
        /// The tempid text.
        tempid: String,
        /// The attribute where it appears.
        attr: Keyword,
    },
    /// A tempid that upserts to two different entities.
    #[error("conflicting upsert: tempid {tempid} resolves to both {first} and {second}")]
    UpsertConflict {
        /// The tempid text.
        tempid: String,
        /// One entity it resolves to.
        first: Eid,
        /// The other.
        second: Eid,
    },
    /// A `:db.unique/value` (or identity, for a non-tempid entity) value already held by
    /// another entity.
    #[error("unique constraint on {attr}: {value:?} is already held by entity {existing}, cannot assert it on {entity}")]
    UniqueConflict {
        /// The attribute.
        attr: Keyword,
        /// The value.
        value: Value,
        /// The entity that holds it.
        existing: Eid,
        /// The entity that tried to assert it.
        entity: Eid,
    },
    /// `[:db/cas e a old new]` whose `old` is not the current value.
    #[error("cas failed on entity {entity} {attr}: expected {expected:?}, found {actual:?}")]
    CasMismatch {
        /// The entity.
        entity: Eid,
        /// The attribute.
        attr: Keyword,
        /// The value the tx expected (`None` = no value).
        expected: Option<Value>,
        /// The current values.
        actual: Vec<Value>,
    },
    /// An entity id outside the entity range.
    #[error("invalid entity id {entity}: {reason}")]
    InvalidEntityId {
        /// The id given.
        entity: i64,
        /// Why it is invalid.
        reason: String,
    },

    // ---- EDN ------------------------------------------------------------------------------
    /// EDN text that does not parse.
    #[error("EDN syntax error at line {line}, column {column}: {message}")]
    EdnSyntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected or found.
        message: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
