//! `datoms-wasm`: the browser and JavaScript replica of datoms.
//!
//! datoms-core compiled to `wasm32-unknown-unknown` behind a small JavaScript API
//! (wasm-bindgen): a [`js::JsReplica`] (`Replica` in JavaScript) restores one head of a
//! database served over HTTP — by `datoms serve`, or by any static host of a directory
//! laid out as `blobs/<address>` and `heads/<name>` — running datoms-core's restore state
//! machine in wasm and doing the requests with `fetch`. Every blob is verified against its
//! address. It then follows the head incrementally (polling, or a server's event stream
//! from the JavaScript package), fetching only the nodes that changed, and answers
//! Datalog queries, pulls and index reads from memory.
//!
//! The logic lives in plain Rust, generic over a [`fetcher::Fetcher`], so that it is
//! tested natively as well: [`replica::Replica`], [`driver`], [`read`]. [`js`] binds it
//! to JavaScript.
//!
//! The same package carries the writer: [`js_peer::JsPeer`] (`Peer` in JavaScript) is
//! datoms-storage's peer itself compiled to WebAssembly — local transactions, a durable
//! outbox the page stores (IndexedDB, a file), pushes landing exactly once through the
//! head compare-and-swap of `datoms serve` — over [`remote::RemoteStorage`], the
//! `Storage` trait on `fetch`. Build: `scripts/wasm.sh build` (see the package's README).

pub mod driver;
pub mod error;
pub mod fetcher;
pub mod js;
pub mod js_peer;
pub mod read;
pub mod remote;
pub mod replica;
pub mod stats;

pub use error::ReplicaError;
pub use fetcher::{Fetcher, RemoteHead};
pub use read::Format;
pub use replica::{Moved, Replica};
pub use stats::Stats;
