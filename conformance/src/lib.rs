//! `conformance`: the test suite every datoms storage backend runs. It is filled in by the
//! storage issue; until then it only re-exports the core types its cases are written in.

pub use datoms_core::{Address, Datom, Error};
