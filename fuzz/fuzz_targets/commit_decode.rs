//! Commit decoding: arbitrary bytes through `Commit::decode` (under the address they
//! hash to), then its tx log and lineage. A commit that decodes re-encodes to bytes that
//! decode to the same commit.
#![no_main]

use datoms_core::{Address, Commit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let address = Address::of(data);
    let Ok(commit) = Commit::decode(address, data) else {
        return;
    };
    let _ = commit.log_entries();
    let _ = commit.log_large_references();
    let _ = (commit.lineage(address), commit.lineage_manifests());
    let bytes = commit.encode();
    let again = match Commit::decode(Address::of(&bytes), &bytes) {
        Ok(again) => again,
        Err(e) => panic!("a decoded commit's encoding does not decode: {e}"),
    };
    assert_eq!(again.encode(), bytes, "re-encoding is not a fixed point");
    assert_eq!(again, commit);
    if std::env::var_os("DATOMS_FUZZ_STRICT").is_some() {
        assert_eq!(bytes, data, "a commit decoded from non-canonical bytes");
    }
});
