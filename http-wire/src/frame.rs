//! Many blobs in one body. A framed body is a sequence of entries, each
//!
//! ```text
//! address: 32 bytes (the raw BLAKE3 hash)
//! length:  u32, big-endian; 0xFFFF_FFFF (MISSING) marks an absent blob
//! bytes:   `length` bytes (none when MISSING)
//! ```
//!
//! with nothing before, between or after. The response of `POST /blobs:get` has one
//! entry per requested address, in request order; `POST /blobs` and `GET /sync/…` carry
//! present blobs only. A blob is at most `u32::MAX - 1` bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use datoms_core::Address;

/// The length that marks an absent blob.
pub const MISSING: u32 = u32::MAX;

/// The bytes of an entry before its blob.
const ENTRY_HEADER: usize = 32 + 4;

/// Why a framed body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The body ends inside an entry.
    #[error("the framed body ends inside entry {entry} (at byte {offset})")]
    Truncated {
        /// The entry's index.
        entry: usize,
        /// Where it starts.
        offset: usize,
    },
    /// A blob too large for a frame.
    #[error("blob {address} is {len} bytes, more than a frame holds")]
    TooLarge {
        /// The blob.
        address: Address,
        /// Its length.
        len: usize,
    },
}

/// Encodes entries: `None` is an absent blob.
///
/// # Errors
/// [`FrameError::TooLarge`] for a blob of `u32::MAX` bytes or more.
pub fn encode_frames<'a>(
    entries: impl IntoIterator<Item = (Address, Option<&'a [u8]>)>,
) -> Result<Bytes, FrameError> {
    let mut out = BytesMut::new();
    for (address, blob) in entries {
        out.put_slice(&address.0);
        match blob {
            Some(b) => {
                let len = u32::try_from(b.len())
                    .ok()
                    .filter(|l| *l != MISSING)
                    .ok_or(FrameError::TooLarge {
                        address,
                        len: b.len(),
                    })?;
                out.put_u32(len);
                out.put_slice(b);
            }
            None => out.put_u32(MISSING),
        }
    }
    Ok(out.freeze())
}

/// Decodes a framed body; the blobs share `body`'s memory.
///
/// # Errors
/// [`FrameError::Truncated`] if the body ends inside an entry.
pub fn decode_frames(body: Bytes) -> Result<Vec<(Address, Option<Bytes>)>, FrameError> {
    let mut rest = body;
    let mut out = Vec::new();
    let total = rest.len();
    while rest.has_remaining() {
        let offset = total - rest.len();
        let truncated = FrameError::Truncated {
            entry: out.len(),
            offset,
        };
        if rest.len() < ENTRY_HEADER {
            return Err(truncated);
        }
        let mut address = [0u8; 32];
        rest.copy_to_slice(&mut address);
        let len = rest.get_u32();
        if len == MISSING {
            out.push((Address(address), None));
            continue;
        }
        let len = len as usize;
        if rest.len() < len {
            return Err(truncated);
        }
        out.push((Address(address), Some(rest.split_to(len))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn frames_round_trip(blobs in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)), 0..20)) {
            let entries: Vec<(Address, Option<Vec<u8>>)> = blobs
                .into_iter()
                .enumerate()
                .map(|(i, b)| (Address::of(&i.to_be_bytes()), b))
                .collect();
            let body = encode_frames(entries.iter().map(|(a, b)| (*a, b.as_deref())))?;
            let back = decode_frames(body.clone())?;
            let back: Vec<(Address, Option<Vec<u8>>)> =
                back.into_iter().map(|(a, b)| (a, b.map(|b| b.to_vec()))).collect();
            prop_assert_eq!(&back, &entries);
            // Any cut inside the body is found.
            if !body.is_empty() {
                let cut = body.len() - 1;
                let truncated = matches!(decode_frames(body.slice(..cut)), Err(FrameError::Truncated { .. }));
                prop_assert!(truncated, "a body cut by one byte must be found truncated");
            }
        }
    }
}
