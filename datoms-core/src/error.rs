//! The one error type of `datoms-core`. Every variant names what is at fault: the node
//! address, the attribute, the entity, the value, or the line and column of EDN text.

use crate::address::Address;
use crate::check::Violation;
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
    /// The tx log of a commit hashes correctly (with its commit) but is not a valid log:
    /// found when the log is decoded ([`crate::Commit::log_entries`]), not when the commit
    /// is.
    #[error("the tx log of commit {} cannot be decoded: {reason}", .commit.map_or_else(|| "(not stored)".to_owned(), |a| a.to_string()))]
    MalformedLog {
        /// The commit whose log it is, if it was decoded from storage.
        commit: Option<Address>,
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
    /// A node or tx log references large values (stored out of line, see
    /// [`crate::large`]) that nothing in this process holds: fetch the blobs at
    /// `addresses`, decode them with [`crate::LargeValue::decode`], and decode `object`
    /// again while holding them.
    #[error("{object} references {} large value(s) not loaded yet, the first {}", addresses.len(), addresses.first().map(ToString::to_string).unwrap_or_default())]
    LargeValuesMissing {
        /// The node or commit being decoded.
        object: Address,
        /// The blobs it needs, sorted, each once.
        addresses: Vec<Address>,
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
    /// Text that is not a keyword EDN reads back (`""`, `:a/b/c`, `:a b`, …), given to
    /// [`Keyword::parse`](crate::Keyword::parse) or met where a keyword is made from
    /// input.
    #[error("invalid keyword {text:?}: {reason}")]
    InvalidKeyword {
        /// The text as given.
        text: String,
        /// What is wrong with it.
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
    #[error("bad components for {}: {reason}", index_name(.index))]
    InvalidIndexComponents {
        /// The index.
        index: IndexKind,
        /// What is wrong.
        reason: String,
    },

    /// Datoms that break the schema or the id invariants (a bulk load): every
    /// violation found, each naming its entity, attribute and value.
    #[error("{}", violations_text(.violations))]
    Invariants {
        /// What is wrong, in the order [`crate::check::Checker::finish`] reports it.
        violations: Vec<Violation>,
    },

    // ---- transactions ------------------------------------------------------------------
    /// Tx data that is not a valid transaction form.
    #[error("malformed tx data: {reason}")]
    MalformedTx {
        /// What is wrong, quoting the offending form.
        reason: String,
    },
    /// A value whose type differs from the attribute's `:db/valueType`.
    #[error("value {value} for {attr} on entity {entity} is not a {}", .expected.keyword())]
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
    #[error("nothing found for lookup ref [{attr} {value}]")]
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
    /// Tempids that name an entity only in value positions: no datom of the transaction
    /// is about them (Datascript's "Tempids used only as value in transaction").
    #[error("Tempids used only as value in transaction: ({})", .tempids.join(" "))]
    TempidsOnlyAsValue {
        /// The tempids, sorted, as written (string tempids quoted).
        tempids: Vec<String>,
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
    #[error("unique constraint on {attr}: {value} is already held by entity {existing}, cannot assert it on {entity}")]
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
    #[error("cas failed on entity {entity} {attr}: expected {}, found {}", one_value(.expected.as_ref()), values(.actual))]
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

    /// An EDN number that datoms cannot hold exactly: a big decimal (`1.5M`) or a
    /// big integer that does not fit in 64 bits (`12345678901234567890`, with or without
    /// `N`). datoms has no arbitrary-precision numbers, and never rounds one silently to
    /// a double or a long.
    #[error("unsupported number `{literal}` at line {line}, column {column}: {reason}")]
    UnsupportedNumber {
        /// The number as written.
        literal: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Why it is not supported, and what to write instead.
        reason: String,
    },

    // ---- queries ------------------------------------------------------------------------
    /// A query, rule set or `:find` element that does not parse, or that is inconsistent
    /// (e.g. `:keys` not matching `:find`).
    #[error("malformed query: {reason}, in {clause}")]
    QueryParse {
        /// The clause or fragment at fault, printed as EDN.
        clause: String,
        /// What is wrong.
        reason: String,
    },
    /// A variable that must be bound (a predicate or function argument, a `not-join`,
    /// `or-join` or rule variable, a `:find` variable) that nothing binds.
    #[error("insufficient bindings: {var} not bound in {clause}")]
    UnboundVariable {
        /// The variable(s).
        var: String,
        /// The clause that needs it.
        clause: String,
    },
    /// A function, aggregate or rule called with the wrong number of arguments.
    #[error("wrong number of arguments to {name}: expected {expected}, got {got}, in {clause}")]
    WrongArity {
        /// The function, aggregate or rule.
        name: String,
        /// The arities it accepts.
        expected: String,
        /// The number of arguments given.
        got: usize,
        /// The clause.
        clause: String,
    },
    /// A predicate, function or aggregate that is neither built in nor registered.
    #[error("unknown function {name} in {clause}")]
    UnknownFunction {
        /// Its name.
        name: String,
        /// The clause.
        clause: String,
    },
    /// A rule call with no rule of that name in the rules given.
    #[error("unknown rule {name} in {clause}")]
    UnknownRule {
        /// The rule name.
        name: String,
        /// The clause.
        clause: String,
    },
    /// Query inputs that do not match `:in`: their number, or a value that does not fit
    /// its binding form.
    #[error("bad query input: {reason}")]
    QueryInput {
        /// What is wrong.
        reason: String,
    },
    /// A function or aggregate that failed on its arguments (a type error, a division by
    /// zero, an overflow, a failing registered function), or a query that does not
    /// terminate within the evaluation limits.
    #[error("{function} failed: {reason}, in {clause}")]
    QueryEval {
        /// The function, aggregate or construct.
        function: String,
        /// Why.
        reason: String,
        /// The clause.
        clause: String,
    },
    /// A pull pattern that does not parse or does not fit the schema.
    #[error("malformed pull pattern: {reason}, in {fragment}")]
    PullPattern {
        /// The fragment of the pattern at fault.
        fragment: String,
        /// What is wrong.
        reason: String,
    },
    /// A write (a transaction, a log replay, a store) of a filtered db ([`crate::Db::filter`]):
    /// a filtered db is a read-only view, as in Datascript; write to
    /// [`crate::Db::unfiltered`].
    #[error(
        "a filtered db cannot be {operation}: it is a read-only view (write to its unfiltered db)"
    )]
    FilteredDb {
        /// What was attempted (`transacted`, `stored`, …).
        operation: &'static str,
    },
    /// A three-way merge met conflicts and its strategy was to fail ([`crate::merge`]):
    /// nothing was merged.
    #[error("the merge has {} conflict(s), nothing was merged: {}", .conflicts.len(), conflict_list(.conflicts))]
    MergeConflicts {
        /// Every conflict, each naming the entity, the attribute and both values.
        conflicts: Vec<crate::merge::Conflict>,
    },
    /// A three-way merge of dbs with different schemas or tree configurations: merge
    /// the schema change first (transact it on both sides).
    #[error("cannot merge dbs with different schemas or tree configurations")]
    MergeSchemaDiffers,
    /// A transaction function ([`crate::tx::TxOp::Call`]) that no registry names.
    #[error("unknown transaction function {name}: register it on the connection (or peer) that runs the transaction")]
    UnknownTxFunction {
        /// The name the transaction gave.
        name: String,
    },
    /// A transaction function that failed, with its reason.
    #[error("transaction function {name} failed: {reason}")]
    TxFunction {
        /// The function's name.
        name: String,
        /// Why it failed.
        reason: String,
    },
}

/// `EAVT`, `AEVT` or `AVET`, for messages.
fn index_name(index: &IndexKind) -> &'static str {
    match index {
        IndexKind::Eavt => "EAVT",
        IndexKind::Aevt => "AEVT",
        IndexKind::Avet => "AVET",
    }
}

/// An optional value for messages: its EDN text, or `no value`.
fn one_value(v: Option<&Value>) -> String {
    v.map_or_else(|| "no value".to_owned(), Value::to_string)
}

/// Current values for messages: `no value`, the one value, or `[v1 v2 …]`.
fn values(vs: &[Value]) -> String {
    match vs {
        [] => "no value".to_owned(),
        [one] => one.to_string(),
        many => {
            let text: Vec<String> = many.iter().map(Value::to_string).collect();
            format!("[{}]", text.join(" "))
        }
    }
}

/// Violations for one message line: the count, then the first few.
fn violations_text(vs: &[Violation]) -> String {
    const SHOWN: usize = 5;
    let mut text = format!(
        "{} violation{} of the schema or the id invariants: ",
        vs.len(),
        if vs.len() == 1 { "" } else { "s" }
    );
    let shown: Vec<String> = vs.iter().take(SHOWN).map(Violation::to_string).collect();
    text.push_str(&shown.join("; "));
    if vs.len() > SHOWN {
        text.push_str(&format!("; and {} more", vs.len() - SHOWN));
    }
    text
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The conflicts of a merge, for messages: the first few, and how many more.
fn conflict_list(conflicts: &[crate::merge::Conflict]) -> String {
    const SHOWN: usize = 5;
    let mut out: Vec<String> = conflicts
        .iter()
        .take(SHOWN)
        .map(|c| format!("{}: {c}", c.kind()))
        .collect();
    if conflicts.len() > SHOWN {
        out.push(format!("and {} more", conflicts.len() - SHOWN));
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datom::Component;

    #[test]
    fn messages_show_values_as_edn_never_as_rust_debug_text() {
        let attr = Keyword::new(":person/age");
        let cases = [
            (
                Error::CasMismatch {
                    entity: 1,
                    attr: attr.clone(),
                    expected: Some(Value::Long(31)),
                    actual: vec![Value::Long(32)],
                },
                "cas failed on entity 1 :person/age: expected 31, found 32",
            ),
            (
                Error::CasMismatch {
                    entity: 1,
                    attr: attr.clone(),
                    expected: None,
                    actual: vec![Value::Long(1), Value::Long(2)],
                },
                "cas failed on entity 1 :person/age: expected no value, found [1 2]",
            ),
            (
                Error::WrongValueType {
                    entity: "-1".into(),
                    attr: attr.clone(),
                    expected: ValueType::Long,
                    value: Value::string("old"),
                },
                "value \"old\" for :person/age on entity -1 is not a :db.type/long",
            ),
            (
                Error::UnknownLookupRef {
                    attr: attr.clone(),
                    value: Value::Ref(7),
                },
                "nothing found for lookup ref [:person/age 7]",
            ),
            (
                Error::UniqueConflict {
                    attr: attr.clone(),
                    value: Value::keyword(":x/y"),
                    existing: 1,
                    entity: 2,
                },
                "unique constraint on :person/age: :x/y is already held by entity 1, cannot assert it on 2",
            ),
            (
                IndexKind::Avet
                    .check_prefix(&[Component::E(1)])
                    .unwrap_err(),
                "bad components for AVET: component 0 is entity 1, expected an attribute",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
