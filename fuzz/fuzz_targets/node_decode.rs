//! Node decoding: arbitrary bytes through `Node::decode` (under the address they hash
//! to, so the decoder itself is reached) and `Node::large_references`. A node that
//! decodes re-encodes to bytes that decode to the same node (same canonical bytes).
#![no_main]

use datoms_core::tree::Node;
use datoms_core::{Address, IndexKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let address = Address::of(data);
    let _ = Node::large_references(address, data);
    // The index tag is the third element of the node array: read it where a fixint
    // would be, so each input is decoded as the index it most likely claims.
    let kind = IndexKind::ALL[usize::from(data.get(2).copied().unwrap_or(0)) % 3];
    let Ok(node) = Node::decode(address, data, kind) else {
        return;
    };
    let _ = (
        node.datoms(),
        node.large_values(),
        node.first(),
        node.count(),
    );
    let bytes = node.encode();
    let again = match Node::decode(Address::of(&bytes), &bytes, kind) {
        Ok(again) => again,
        Err(e) => panic!("a decoded node's encoding does not decode: {e}"),
    };
    assert_eq!(again.encode(), bytes, "re-encoding is not a fixed point");
    assert_eq!(again.datoms(), node.datoms());
    assert_eq!(again.level(), node.level());
    assert_eq!(again.count(), node.count());
    if std::env::var_os("DATOMS_FUZZ_STRICT").is_some() {
        assert_eq!(bytes, data, "a node decoded from non-canonical bytes");
    }
});
