//! `datoms`: the facade crate. It re-exports the public API of `datoms-core` (and, once
//! they land, the storage layer and the backends behind feature flags).

pub use datoms_core::*;
