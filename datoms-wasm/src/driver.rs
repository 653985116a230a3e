//! Runs datoms-core's restore machine against a [`Fetcher`]: every step's addresses are
//! taken from a sync bundle where one was received, the others fetched concurrently (a
//! bounded number at a time), then handed to the machine, which verifies each blob
//! against its address before using it.

use std::collections::HashMap;

use datoms_core::restore::{Machine, Step};
use datoms_core::{Address, Db, RestoreStats};
use futures::{StreamExt as _, TryStreamExt as _};

use crate::error::ReplicaError;
use crate::fetcher::Fetcher;

/// How many blob requests a replica keeps in flight (browsers allow 6 per HTTP/1.1 host
/// and many more over HTTP/2; the rest queue in the browser).
pub const CONCURRENCY: usize = 32;

/// The blobs of a sync bundle, served to a restore before anything is fetched. It counts
/// what was really exchanged: the bundle's request and bytes, then each batch of misses.
#[derive(Debug, Default)]
pub struct Prefetched {
    blobs: HashMap<Address, Vec<u8>>,
    round_trips: u64,
    bytes: u64,
}

impl Prefetched {
    /// The blobs of a bundle received in one request.
    pub fn new(blobs: Vec<(Address, Vec<u8>)>) -> Prefetched {
        let bytes = blobs.iter().map(|(_, b)| b.len() as u64).sum();
        Prefetched {
            blobs: blobs.into_iter().collect(),
            round_trips: 1,
            bytes,
        }
    }
}

/// Drives `machine` to the end, one batch per step, taking blobs from `prefetched` (a
/// sync bundle) first when given. With a bundle the stats' round trips and bytes are
/// the bundle's request and bytes plus each batch of misses.
///
/// # Errors
/// A failed request, or what the machine reports: a missing, corrupt or malformed blob.
pub async fn run<F: Fetcher, M: Machine>(
    fetcher: &F,
    mut machine: M,
    mut prefetched: Option<&mut Prefetched>,
) -> Result<(Db, RestoreStats), ReplicaError> {
    loop {
        match machine.poll()? {
            Step::Need(addresses) => {
                let mut missing = Vec::with_capacity(addresses.len());
                for address in addresses {
                    match prefetched.as_mut().and_then(|p| p.blobs.remove(&address)) {
                        Some(bytes) => machine.accept(address, Some(&bytes))?,
                        None => missing.push(address),
                    }
                }
                if missing.is_empty() {
                    continue;
                }
                let blobs: Vec<_> = futures::stream::iter(missing)
                    .map(|address| async move {
                        fetcher.blob(address).await.map(|bytes| (address, bytes))
                    })
                    .buffered(CONCURRENCY)
                    .try_collect()
                    .await?;
                if let Some(p) = prefetched.as_mut() {
                    p.round_trips += 1;
                    p.bytes += blobs
                        .iter()
                        .filter_map(|(_, b)| b.as_ref())
                        .map(|b| b.len() as u64)
                        .sum::<u64>();
                }
                for (address, bytes) in blobs {
                    machine.accept(address, bytes.as_deref())?;
                }
            }
            Step::Done(db) => {
                let mut stats = machine.stats();
                if let Some(p) = prefetched {
                    stats.round_trips = p.round_trips;
                    stats.bytes_fetched = p.bytes;
                }
                return Ok((db, stats));
            }
        }
    }
}
