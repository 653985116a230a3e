//! Decoding what references large values: nodes and tx logs name large strings and byte
//! strings by address (stored out of line, see [`datoms_core::large`]); a decode that
//! meets one nobody in this process holds fails with
//! [`datoms_core::Error::LargeValuesMissing`]. These helpers fetch what it names, verify
//! it, and decode again while holding it.

use bytes::Bytes;
use datoms_core::{Address, LargeValue};

use crate::batch::get_batched;
use crate::error::StorageError;
use crate::storage::Storage;

/// Runs `decode`, and when it misses large values, fetches them from `storage` (one
/// batched request), holds them and runs it once more. Returns the result and the large
/// values fetched (with their bytes counted, for I/O statistics).
///
/// # Errors
/// A fetch error; [`StorageError::NotFound`] for a large value the storage lacks;
/// [`datoms_core::Error::Corrupt`] or `Malformed` for a blob that is not what its
/// address names; `decode`'s own errors.
pub async fn decode_fetching<S, T>(
    storage: &S,
    mut decode: impl FnMut() -> Result<T, datoms_core::Error>,
) -> Result<(T, Fetched), StorageError>
where
    S: Storage + ?Sized,
{
    let addresses = match decode() {
        Err(datoms_core::Error::LargeValuesMissing { addresses, .. }) => addresses,
        other => return Ok((other?, Fetched::default())),
    };
    let blobs = get_batched(storage, &addresses).await?;
    let fetched = take(&addresses, blobs)?;
    let out = decode()?;
    Ok((out, fetched))
}

/// Large values fetched for a decode, held while it runs again.
#[derive(Default)]
pub struct Fetched {
    /// The values, decoded and verified.
    pub values: Vec<LargeValue>,
    /// Their encoded bytes, all together.
    pub bytes: u64,
}

/// Decodes and verifies the blobs fetched for `addresses`.
///
/// # Errors
/// [`StorageError::NotFound`] for a blob the storage lacks; a decode error for one that
/// is not what its address names.
pub fn take(addresses: &[Address], blobs: Vec<Option<Bytes>>) -> Result<Fetched, StorageError> {
    let mut out = Fetched::default();
    for (address, bytes) in addresses.iter().zip(blobs) {
        let bytes = bytes.ok_or(StorageError::NotFound { address: *address })?;
        out.bytes += bytes.len() as u64;
        out.values.push(LargeValue::decode(*address, &bytes)?);
    }
    Ok(out)
}
