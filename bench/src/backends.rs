//! The backends the harness measures, side by side. Adding one is one line in [`all`]
//! (behind a cargo feature of this crate when it needs a heavy build).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use datoms_storage::{MemoryStorage, Storage};

use crate::error::BenchError;

/// A fresh, empty storage and whatever must live as long as it (a server process, a
/// scratch folder), dropped after it.
pub struct Opened {
    /// The storage.
    pub storage: Arc<dyn Storage>,
    /// Kept alive with the storage; dropped last.
    pub guard: Option<Box<dyn std::any::Any + Send>>,
}

impl Opened {
    /// A storage that needs nothing kept alive beside it.
    pub fn new(storage: impl Storage) -> Result<Opened, BenchError> {
        Ok(Opened {
            storage: Arc::new(storage),
            guard: None,
        })
    }
}

/// What opening a backend returns.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Opened, BenchError>> + Send>>;

/// A backend: its name and how to open a fresh storage in a scratch folder of its own.
#[derive(Clone, Copy)]
pub struct Backend {
    /// The name in reports and on the command line (`--backends mem,redb`).
    pub name: &'static str,
    /// Opens an empty storage; the folder exists and is removed after the run.
    pub open: fn(PathBuf) -> OpenFuture,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every backend this build can measure, in report order. One line each, kept on one
/// line on purpose.
#[rustfmt::skip]
pub fn all() -> Vec<Backend> {
    vec![
        Backend { name: "mem", open: |_| Box::pin(async { Opened::new(MemoryStorage::new()) }) },
        Backend { name: "redb", open: |dir| Box::pin(async move { Opened::new(backend_redb::RedbStorage::open(dir.join("bench.redb"))?) }) },
        #[cfg(feature = "rocks")]
        Backend { name: "rocks", open: |dir| Box::pin(async move { Opened::new(backend_rocks::RocksStorage::open(dir.join("rocks"))?) }) },
        #[cfg(feature = "s3")]
        Backend { name: "s3", open: |_| Box::pin(crate::s3::open()) },
    ]
}

/// The backends named in `names` (comma-separated; `all` for every one), in report order.
///
/// # Errors
/// [`BenchError::Usage`] naming an unknown backend.
pub fn select(names: &str) -> Result<Vec<Backend>, BenchError> {
    let known = all();
    if names == "all" {
        return Ok(known);
    }
    let wanted: Vec<&str> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(unknown) = wanted.iter().find(|n| !known.iter().any(|b| b.name == **n)) {
        let names: Vec<&str> = known.iter().map(|b| b.name).collect();
        return Err(BenchError::Usage(format!(
            "unknown backend {unknown:?}; this build has {} (rocks and s3 need the cargo features of the same name)",
            names.join(", ")
        )));
    }
    Ok(known
        .into_iter()
        .filter(|b| wanted.contains(&b.name))
        .collect())
}
