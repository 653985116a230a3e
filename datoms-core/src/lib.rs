//! `datoms-core`: the pure heart of datoms. Values, datoms and schema; Datascript-style
//! transactions; the three content-addressed, history-independent index trees (EAVT,
//! AEVT, AVET) with their canonical node and commit codecs; and the sans-IO algorithms
//! that storage drivers run: addressing (what `store` must write), restore (what a
//! replica must fetch, one batch per tree level), diff, and index access.
//!
//! Nothing here does I/O or async. Algorithms that need bytes they do not have say which
//! addresses they need and accept the bytes when the caller has them.

pub mod address;
pub mod addressing;
mod buffer;
pub mod check;
pub mod commit;
pub mod composite;
pub mod datom;
pub mod db;
pub mod diff;
pub mod edn;
pub mod entity;
pub mod error;
pub mod filter;
mod held;
pub mod history;
pub mod large;
pub mod live;
pub mod merge;
pub mod pull;
pub mod query;
pub mod restore;
pub mod schema;
mod tuples;
pub mod tx;
pub mod value;

pub use address::Address;
pub use check::Violation;
pub use commit::{Commit, CommitLog, TxId, TxLogEntry};
pub use datom::{Component, Datom, IndexKind, Tx, EMAX, TX0};
pub use db::{Datoms, Db, DEFAULT_EDIT_BUFFER};
pub use diff::{diff, Diff};
pub use entity::{Entity, EntityValue};
pub use error::{Error, Result};
pub use filter::DatomPredicate;
pub use history::History;
pub use large::{LargeValue, OUT_OF_LINE_BYTES};
pub use pull::{PullPattern, PullValue};
pub use query::{q, q_with, FnArg, Functions, Input, Query, QueryFn, QueryResult, QueryValue};
pub use restore::{Restore, RestoreStats, Step};
pub use schema::{AttributeSchema, Cardinality, Schema, Unique};
pub use tx::{
    parse_tx, Conn, EntityMap, EntityRef, TxBuilder, TxFn, TxFunctions, TxOp, TxReport, TxValue,
};
pub use value::{Double, Eid, Keyword, Uuid, Value, ValueType};
pub mod tree;
pub use tree::{Tree, TreeConfig};
