//! `datoms-bench`: the benchmark harness of datoms. It generates a seeded workload
//! ([`workload`]), transacts it, stores and restores it through every backend
//! ([`backends`]) — full and incremental restore, log replay, replicas several commits
//! behind, per-request latency through `FaultyStorage` — runs the same workload in
//! Datascript on node ([`peer`]) for ratios measured side by side in one run, measures
//! the resident memory of a materialized db in a child process, and reports it all
//! ([`report`]) with the performance targets evaluated.
//!
//! The `datoms-bench` binary runs it: `--quick` (small sizes, CI; asserts nothing about
//! time) or `--full` (1M datoms, the real figures). `docs/benchmarks.md` holds measured
//! figures and says how they were made.
//!
//! Cargo features add backends to the comparison: `rocks` (RocksDB, built from source)
//! and `s3` (`backend-s3` against moto's S3 server, which the harness starts on
//! loopback; `scripts/setup/s3.sh` installs it).
//!
//! ```no_run
//! # async fn demo() -> Result<(), datoms_bench::BenchError> {
//! let report = datoms_bench::run(&datoms_bench::Config::quick()).await?;
//! assert!(report.check().is_empty());
//! println!("{}", report.to_markdown());
//! # Ok(()) }
//! ```

pub mod backends;
pub mod concurrency;
pub mod diff;
pub mod dsbench;
pub mod error;
pub mod follow;
pub mod gc;
pub mod history;
pub mod http;
pub mod large_values;
pub mod live;
pub mod measure;
pub mod peer;
pub mod report;
pub mod rng;
pub mod run;
#[cfg(feature = "s3")]
pub mod s3;
pub mod small;
pub mod suite;
pub mod time_travel;
pub mod workload;
pub mod writers;

pub use error::BenchError;
pub use report::Report;
pub use run::{rss_child, run, Config};
