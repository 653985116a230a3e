//! Runs datoms-core's restore machine against a [`Fetcher`]: every step's addresses are
//! fetched concurrently (a bounded number at a time), then handed to the machine, which
//! verifies each blob against its address before using it.

use datoms_core::restore::{Machine, Step};
use datoms_core::{Db, RestoreStats};
use futures::{StreamExt as _, TryStreamExt as _};

use crate::error::ReplicaError;
use crate::fetcher::Fetcher;

/// How many blob requests a replica keeps in flight (browsers allow 6 per HTTP/1.1 host
/// and many more over HTTP/2; the rest queue in the browser).
pub const CONCURRENCY: usize = 32;

/// Drives `machine` to the end, one batch per step.
///
/// # Errors
/// A failed request, or what the machine reports: a missing, corrupt or malformed blob.
pub async fn run<F: Fetcher, M: Machine>(
    fetcher: &F,
    mut machine: M,
) -> Result<(Db, RestoreStats), ReplicaError> {
    loop {
        match machine.poll()? {
            Step::Need(addresses) => {
                let blobs: Vec<_> = futures::stream::iter(addresses)
                    .map(|address| async move {
                        fetcher.blob(address).await.map(|bytes| (address, bytes))
                    })
                    .buffered(CONCURRENCY)
                    .try_collect()
                    .await?;
                for (address, bytes) in blobs {
                    machine.accept(address, bytes.as_deref())?;
                }
            }
            Step::Done(db) => return Ok((db, machine.stats())),
        }
    }
}
