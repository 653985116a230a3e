//! Batched, concurrent, retried requests: how every driver talks to a backend, sized by
//! its [`Capabilities`](crate::Capabilities).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use datoms_core::Address;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::StorageError;
use crate::storage::Storage;

/// Transient failures are retried this many times, with exponential backoff from
/// [`FIRST_BACKOFF`].
pub const RETRIES: u32 = 4;

/// The first retry waits this long; each later one twice as long.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// Runs `op`, retrying transient failures with exponential backoff.
///
/// # Errors
/// The last error if every try failed, or the first non-transient error.
pub async fn retry<T, F, Fut>(mut op: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut wait = FIRST_BACKOFF;
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if e.is_transient() && tries < RETRIES => {
                tries += 1;
                crate::pause::pause(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
}

/// Fetches `addresses` in batches of the backend's `max_batch`, `concurrency` batches
/// in flight: one logical round trip. The result is in the order of `addresses`.
///
/// # Errors
/// The first failing batch's error (after retries).
pub async fn get_batched<S: Storage + ?Sized>(
    storage: &S,
    addresses: &[Address],
) -> Result<Vec<Option<Bytes>>, StorageError> {
    let caps = storage.capabilities();
    // The requests are made before the stream (not by a closure inside it), so that the
    // driver futures are `Send` where a caller spawns them (a closure returning a future
    // borrowing its argument defeats rustc's `Send` proof, rust-lang/rust#102211).
    let requests: Vec<_> = addresses
        .chunks(caps.max_batch.max(1))
        .map(|chunk| retry(move || storage.get_many(chunk)))
        .collect();
    let batches: Vec<Vec<Option<Bytes>>> = stream::iter(requests)
        .buffered(caps.concurrency.max(1))
        .try_collect()
        .await?;
    Ok(batches.into_iter().flatten().collect())
}

/// Stores `blobs` in batches, `concurrency` batches in flight.
///
/// # Errors
/// The first failing batch's error (after retries); other batches may have been written.
pub async fn put_batched<S: Storage + ?Sized>(
    storage: &S,
    blobs: &[(Address, Bytes)],
) -> Result<(), StorageError> {
    let caps = storage.capabilities();
    // Made before the stream, as in `get_batched`.
    let requests: Vec<_> = blobs
        .chunks(caps.max_batch.max(1))
        .map(|chunk| retry(move || storage.put_many(chunk)))
        .collect();
    stream::iter(requests)
        .buffer_unordered(caps.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Fetches `addresses`, requiring every one to be present.
///
/// # Errors
/// [`StorageError::NotFound`] naming the first missing address, or a fetch error.
pub async fn get_all<S: Storage + ?Sized>(
    storage: &S,
    addresses: &[Address],
) -> Result<Vec<Bytes>, StorageError> {
    let got = get_batched(storage, addresses).await?;
    addresses
        .iter()
        .zip(got)
        .map(|(a, b)| b.ok_or(StorageError::NotFound { address: *a }))
        .collect()
}
