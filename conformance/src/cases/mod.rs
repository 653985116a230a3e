//! The case bodies, one `pub async fn` per case, each taking the backend's [`Factory`].
//! [`suite!`](crate::suite) runs every one of them as a named test; a case is written
//! here and registered in that macro's list, never picked per backend.
//!
//! [`Factory`]: crate::Factory

pub mod contract;
pub mod database;
pub mod follow;
pub mod gc;
pub mod large_values;
pub mod merge;
pub mod peers;
pub mod replicate;
pub mod runtimes;
pub mod soak;
pub mod storages;
pub mod sync_policy;
