//! `datoms-storage`: the `Storage` trait and the drivers that run `datoms-core`'s sans-IO
//! algorithms against it (store, restore, incremental restore, log replay).
//!
//! This crate is grown by the storage issue; today it re-exports the core types its
//! drivers are built on.

pub use datoms_core::{Address, Error};
