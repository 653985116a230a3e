//! `backend-rocks`: a datoms storage backend. It implements `datoms-storage`'s `Storage` trait
//! once that trait lands (see the storage issue); until then it only names the core
//! address type its keys are built from.

pub use datoms_core::Address;
