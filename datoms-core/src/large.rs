//! Large values: strings and byte strings of [`OUT_OF_LINE_BYTES`] or more are stored out
//! of line, once, as content-addressed blobs that every node and commit names by address.
//!
//! # Why
//! A datom sits in two or three indexes, a value in a branch entry is copied up the tree
//! when its datom leads a node, and the commit's tx log repeats it: stored inline, a 20 MiB
//! string wrote about 100 MiB, and any change to a neighbouring datom rewrote (and made
//! every replica fetch) a leaf that held it whole. Out of line, the value is written once
//! and a node holds a 35-byte reference: a change next to it rewrites kilobytes.
//!
//! # Format
//! - **Reference** (in node items, branch keys and tx logs): the value tuple
//!   `[0x40 + type tag, address]`, the address as a 32-byte `bin` (type tag 4 for
//!   strings, 7 for byte strings, as [`crate::value::ValueType`] numbers them). A value of
//!   [`OUT_OF_LINE_BYTES`] or more is always written as a reference and a shorter one
//!   never is: one value, one encoding, as addresses need. Decoding refuses either rule
//!   broken.
//! - **Blob**: the bytes `[1 (format version), type tag, content…]`; its address is their
//!   BLAKE3 hash, like a node's, and a fetched blob is verified against it.
//!
//! # Ordering
//! Trees order large values by their whole content, as every other value: in memory a
//! node holds the value itself, never just its reference, so index order, seeks, range
//! reads and the chunker's boundaries do not change meaning with a value's size. Only the
//! bytes stored change: a branch key whose datom holds a large value carries its 32-byte
//! address, not its content (or a prefix of it), and the chunker weighs and hashes the
//! reference, so a large value costs a node about what a short one does.
//!
//! # In memory: one copy, shared
//! A packed leaf keeps large values beside its entries as shared `Arc`s, so the copies in
//! EAVT, AEVT and AVET, in every db version and in the pending tx log are one allocation.
//! A process-wide registry of weak references finds that allocation from its content
//! pointer (so encoding a value already held never hashes it again) and from its address
//! (so a node decoded while some db value already holds the value does not need its blob:
//! a replica that holds `db1` fetches only the large values new in `db2`). Decoding a node
//! whose large value nobody holds fails with [`Error::LargeValuesMissing`] naming the
//! blobs; the caller fetches them, decodes them with [`LargeValue::decode`], keeps them
//! while it decodes the node again, and the node then shares them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::address::Address;
use crate::error::Error;
use crate::value::{Value, ValueRef, ValueType};

/// Strings and byte strings at least this long (in bytes) are stored out of line.
///
/// 1 KiB: half a default leaf (about 2 KiB). A value this large dominates the node that
/// holds it, so moving it out costs one more object only where it saves rewriting (and
/// refetching) a kilobyte or more on every neighbouring change; shorter values stay
/// inline, where one fetch brings a whole leaf of them.
pub const OUT_OF_LINE_BYTES: usize = 1024;

/// The version byte of an out-of-line blob.
const BLOB_VERSION: u8 = 1;

/// The wire tag of a reference to a large value of type tag `t` is `REFERENCE_TAG + t`.
pub(crate) const REFERENCE_TAG: u8 = 0x40;

/// True if a string or byte string of `len` bytes is stored out of line.
pub(crate) fn is_large(len: usize) -> bool {
    len >= OUT_OF_LINE_BYTES
}

/// A large value held in memory: the shared allocation of a string or byte string of
/// [`OUT_OF_LINE_BYTES`] or more.
#[derive(Clone)]
pub enum LargeValue {
    /// A string.
    String(Arc<str>),
    /// A byte string.
    Bytes(Arc<[u8]>),
}

impl PartialEq for LargeValue {
    fn eq(&self, other: &LargeValue) -> bool {
        self.value_type() == other.value_type()
            && (self.key() == other.key() || self.content() == other.content())
    }
}

impl Eq for LargeValue {}

impl std::fmt::Debug for LargeValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LargeValue({} bytes, {:?})", self.len(), self.address())
    }
}

/// The registry key of an allocation: its content pointer and length.
type Key = (usize, usize);

fn key_of(content: &[u8]) -> Key {
    (content.as_ptr() as usize, content.len())
}

impl LargeValue {
    /// The value's content bytes (a string's UTF-8).
    pub fn content(&self) -> &[u8] {
        match self {
            LargeValue::String(s) => s.as_bytes(),
            LargeValue::Bytes(b) => b,
        }
    }

    /// The content's length in bytes.
    pub fn len(&self) -> usize {
        self.content().len()
    }

    /// Always false: a large value is at least [`OUT_OF_LINE_BYTES`] long.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value's type: string or bytes.
    pub fn value_type(&self) -> ValueType {
        match self {
            LargeValue::String(_) => ValueType::String,
            LargeValue::Bytes(_) => ValueType::Bytes,
        }
    }

    /// The value, sharing this allocation.
    pub fn to_value(&self) -> Value {
        match self {
            LargeValue::String(s) => Value::String(s.clone()),
            LargeValue::Bytes(b) => Value::Bytes(b.clone()),
        }
    }

    pub(crate) fn borrowed(&self) -> ValueRef<'_> {
        match self {
            LargeValue::String(s) => ValueRef::String(s),
            LargeValue::Bytes(b) => ValueRef::Bytes(b),
        }
    }

    fn key(&self) -> Key {
        key_of(self.content())
    }

    fn downgrade(&self) -> WeakLarge {
        match self {
            LargeValue::String(s) => WeakLarge::String(Arc::downgrade(s)),
            LargeValue::Bytes(b) => WeakLarge::Bytes(Arc::downgrade(b)),
        }
    }

    /// The blob's address: the BLAKE3 hash of [`LargeValue::encode`], computed once per
    /// allocation (the registry keeps it).
    pub fn address(&self) -> Address {
        if let Some(address) = registry().address_of(self) {
            return address;
        }
        let address = self.hash();
        registry().adopt(self, address);
        address
    }

    fn hash(&self) -> Address {
        hash_of(self.value_type(), self.content())
    }

    /// The blob's bytes: `[1, type tag, content…]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() + 2);
        out.push(BLOB_VERSION);
        out.push(self.value_type().tag());
        out.extend_from_slice(self.content());
        out
    }

    /// Decodes and verifies a blob fetched for `address`. The value is shared with any
    /// allocation of it already held in this process.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the bytes do not hash to `address`; [`Error::Malformed`] if
    /// they are not a large value blob (version, type, UTF-8, length).
    pub fn decode(address: Address, bytes: &[u8]) -> Result<LargeValue, Error> {
        address.verify(bytes)?;
        let malformed = |reason: &str| Error::Malformed {
            address,
            reason: format!("large value blob: {reason}"),
        };
        let [version, tag, content @ ..] = bytes else {
            return Err(malformed("shorter than its header"));
        };
        if *version != BLOB_VERSION {
            return Err(Error::UnsupportedVersion {
                address,
                version: *version,
                supported: BLOB_VERSION,
            });
        }
        if !is_large(content.len()) {
            return Err(malformed("shorter than the out-of-line threshold"));
        }
        if let Some(held) = registry().find_address(&address) {
            return Ok(held);
        }
        let value = match ValueType::from_tag(*tag) {
            Some(ValueType::String) => LargeValue::String(Arc::from(
                std::str::from_utf8(content).map_err(|_| malformed("string is not UTF-8"))?,
            )),
            Some(ValueType::Bytes) => LargeValue::Bytes(Arc::from(content)),
            _ => return Err(malformed("not a string or byte string")),
        };
        registry().adopt(&value, address);
        Ok(value)
    }

    /// The held allocation whose content `v` borrows, if `v` is a large string or byte
    /// string read from one (a packed leaf, a registered value): shared without copying
    /// or hashing.
    pub(crate) fn held_at(v: ValueRef<'_>) -> Option<LargeValue> {
        let content = large_content(v)?;
        registry().find_key(key_of(content))
    }

    /// The shared allocation for a large `v`: the one it borrows from, else one held with
    /// equal content (found by address), else a new one. `None` if `v` is not large.
    pub(crate) fn of(v: ValueRef<'_>) -> Option<LargeValue> {
        let content = large_content(v)?;
        Some(match v {
            ValueRef::String(s) => shared(ValueType::String, content, || {
                LargeValue::String(Arc::from(s))
            }),
            _ => shared(ValueType::Bytes, content, || {
                LargeValue::Bytes(Arc::from(content))
            }),
        })
    }

    /// The large value `value` holds, sharing its allocation: the one already registered
    /// with equal content (so a value transacted twice is held once), else `value`'s own
    /// allocation, registered. `None` if `value` is not large.
    pub fn adopt(value: &Value) -> Option<LargeValue> {
        let own = match value {
            Value::String(s) if is_large(s.len()) => LargeValue::String(s.clone()),
            Value::Bytes(b) if is_large(b.len()) => LargeValue::Bytes(b.clone()),
            _ => return None,
        };
        Some(shared(own.value_type(), own.content(), || own.clone()))
    }
}

/// The one allocation of large `content` (of type `ty`) this process holds: the
/// registered one `content` borrows from, else one with equal content (found by
/// address), else `make()`'s, registered. Hashes only when the pointer is not
/// registered, and `make` (which may copy) runs only when nothing holds the value.
fn shared(ty: ValueType, content: &[u8], make: impl FnOnce() -> LargeValue) -> LargeValue {
    if let Some(held) = registry().find_key(key_of(content)) {
        return held;
    }
    let address = hash_of(ty, content);
    if let Some(held) = registry().find_address(&address) {
        return held;
    }
    let fresh = make();
    registry().adopt(&fresh, address);
    fresh
}

/// The address of the blob of `content` of type `ty`: BLAKE3 of `[1, type tag,
/// content…]`, hashed without building the blob.
fn hash_of(ty: ValueType, content: &[u8]) -> Address {
    let mut h = blake3::Hasher::new();
    h.update(&[BLOB_VERSION, ty.tag()]);
    h.update(content);
    Address(*h.finalize().as_bytes())
}

/// The content of a large string or byte string value.
fn large_content<'a>(v: ValueRef<'a>) -> Option<&'a [u8]> {
    match v {
        ValueRef::String(s) if is_large(s.len()) => Some(s.as_bytes()),
        ValueRef::Bytes(b) if is_large(b.len()) => Some(b),
        _ => None,
    }
}

enum WeakLarge {
    String(Weak<str>),
    Bytes(Weak<[u8]>),
}

impl WeakLarge {
    fn upgrade(&self) -> Option<LargeValue> {
        match self {
            WeakLarge::String(w) => w.upgrade().map(LargeValue::String),
            WeakLarge::Bytes(w) => w.upgrade().map(LargeValue::Bytes),
        }
    }

    fn is_alive(&self) -> bool {
        match self {
            WeakLarge::String(w) => w.strong_count() > 0,
            WeakLarge::Bytes(w) => w.strong_count() > 0,
        }
    }
}

/// Every large value allocation alive in this process, by content pointer and by
/// address. Entries are weak: the registry never keeps a value alive. A pointer entry
/// names the exact allocation it was made from, so while it upgrades, the pointer is that
/// allocation's and the content is what it was; dead entries are pruned as the registry
/// grows.
#[derive(Default)]
struct Registry {
    by_key: HashMap<Key, (WeakLarge, Address)>,
    by_address: HashMap<Address, WeakLarge>,
    /// Entries alive at the last prune: the next prune comes when the maps have doubled.
    live_at_prune: usize,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

struct Held(MutexGuard<'static, Option<Registry>>);

fn registry() -> Held {
    Held(
        REGISTRY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

impl Held {
    fn get(&mut self) -> &mut Registry {
        self.0.get_or_insert_with(Registry::default)
    }

    fn find_key(&mut self, key: Key) -> Option<LargeValue> {
        self.get().by_key.get(&key).and_then(|(w, _)| w.upgrade())
    }

    fn address_of(&mut self, value: &LargeValue) -> Option<Address> {
        let r = self.get();
        match r.by_key.get(&value.key()) {
            Some((w, address)) if w.is_alive() => Some(*address),
            _ => None,
        }
    }

    fn find_address(&mut self, address: &Address) -> Option<LargeValue> {
        self.get()
            .by_address
            .get(address)
            .and_then(WeakLarge::upgrade)
    }

    /// Registers `value`'s allocation under its pointer, and under `address` unless a
    /// live allocation is there already.
    fn adopt(&mut self, value: &LargeValue, address: Address) {
        let r = self.get();
        r.by_key.insert(value.key(), (value.downgrade(), address));
        let by_address = r
            .by_address
            .entry(address)
            .or_insert_with(|| value.downgrade());
        if !by_address.is_alive() {
            *by_address = value.downgrade();
        }
        if r.by_key.len() + r.by_address.len() > 2 * r.live_at_prune + 256 {
            r.by_key.retain(|_, (w, _)| w.is_alive());
            r.by_address.retain(|_, w| w.is_alive());
            r.live_at_prune = r.by_key.len() + r.by_address.len();
        }
    }
}

thread_local! {
    /// Set while encoding node and log bytes: large values are written as references.
    static OUT_OF_LINE: Cell<bool> = const { Cell::new(false) };
    /// While decoding node and log bytes: the blobs referenced that nobody holds.
    static MISSING: RefCell<Option<Vec<Address>>> = const { RefCell::new(None) };
}

/// Runs `f` with large values serialized as references (node and tx log bytes).
pub(crate) fn out_of_line<T>(f: impl FnOnce() -> T) -> T {
    let before = OUT_OF_LINE.with(|c| c.replace(true));
    let out = f();
    OUT_OF_LINE.with(|c| c.set(before));
    out
}

/// True inside [`out_of_line`].
pub(crate) fn writing_out_of_line() -> bool {
    OUT_OF_LINE.with(Cell::get)
}

/// Runs the decoding `f`, collecting the references to large values nobody holds: if
/// there are any, the result is [`Error::LargeValuesMissing`] (naming `object`, the node
/// or commit decoded), whatever `f` returned.
pub(crate) fn resolving<T>(
    object: Address,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let outer = MISSING.with(|m| m.replace(Some(Vec::new())));
    let out = f();
    let missing = MISSING.with(|m| m.replace(outer)).unwrap_or_default();
    if missing.is_empty() {
        return out;
    }
    let mut addresses = missing;
    addresses.sort_unstable();
    addresses.dedup();
    Err(Error::LargeValuesMissing { object, addresses })
}

/// True inside [`resolving`]: decoding stored node or log bytes, where a large value
/// must be a reference.
pub(crate) fn reading_stored() -> bool {
    MISSING.with(|m| m.borrow().is_some())
}

/// The large value a decoded reference names: held in this process, else recorded as
/// missing (inside [`resolving`]) and `None`.
pub(crate) fn resolve(address: Address) -> Result<Option<LargeValue>, String> {
    if let Some(held) = registry().find_address(&address) {
        return Ok(Some(held));
    }
    MISSING.with(|m| match m.borrow_mut().as_mut() {
        Some(missing) => {
            missing.push(address);
            Ok(None)
        }
        None => Err(format!(
            "large value {address} referenced outside a node or tx log"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, seed: u8) -> String {
        (0..n)
            .map(|i| char::from(b'a' + (i as u8 ^ seed) % 26))
            .collect()
    }

    #[test]
    fn a_blob_round_trips_and_is_verified() {
        let v = LargeValue::of(ValueRef::String(&text(5000, 1))).unwrap();
        let bytes = v.encode();
        assert_eq!(Address::of(&bytes), v.address());
        let back = LargeValue::decode(v.address(), &bytes).unwrap();
        assert_eq!(back, v);
        let mut bad = bytes.clone();
        bad[100] ^= 1;
        assert!(matches!(
            LargeValue::decode(v.address(), &bad),
            Err(Error::Corrupt { .. })
        ));
        let short = [BLOB_VERSION, ValueType::String.tag(), b'x'];
        assert!(matches!(
            LargeValue::decode(Address::of(&short), &short),
            Err(Error::Malformed { .. })
        ));
        let mut not_utf8 = vec![BLOB_VERSION, ValueType::String.tag()];
        not_utf8.extend(std::iter::repeat_n(0xFF, 2000));
        assert!(matches!(
            LargeValue::decode(Address::of(&not_utf8), &not_utf8),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn equal_content_is_held_once() {
        let s = text(3000, 2);
        let a = LargeValue::adopt(&Value::from(s.as_str())).unwrap();
        let b = LargeValue::adopt(&Value::from(s.as_str())).unwrap();
        assert_eq!(key_of(a.content()), key_of(b.content()));
        // Found from a borrow of the allocation, and by address.
        assert_eq!(
            LargeValue::held_at(a.borrowed()).map(|v| v.key()),
            Some(a.key())
        );
        let address = a.address();
        assert_eq!(
            registry().find_address(&address).map(|v| v.key()),
            Some(a.key())
        );
    }

    #[test]
    fn a_dropped_value_is_not_found() {
        let v = LargeValue::of(ValueRef::Bytes(&vec![7u8; 4000])).unwrap();
        let address = v.address();
        drop(v);
        assert!(registry().find_address(&address).is_none());
        let missing = resolving(Address([0; 32]), || {
            resolve(address).map_err(|r| Error::InvalidValue { reason: r })
        });
        assert!(
            matches!(missing, Err(Error::LargeValuesMissing { addresses, .. }) if addresses == vec![address])
        );
        // Outside a decoding scope a reference is an error, not a silent gap.
        assert!(resolve(address).is_err());
    }

    #[test]
    fn short_values_are_not_large() {
        assert!(LargeValue::of(ValueRef::String("short")).is_none());
        assert!(LargeValue::adopt(&Value::from("x".repeat(OUT_OF_LINE_BYTES - 1))).is_none());
        assert!(LargeValue::adopt(&Value::from("x".repeat(OUT_OF_LINE_BYTES))).is_some());
    }
}
