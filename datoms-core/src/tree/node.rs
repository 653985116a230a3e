//! Tree nodes in memory and their canonical encoding.
//!
//! # Format (version [`FORMAT_VERSION`])
//! A node is the msgpack array `[version, index, level, items]`:
//! - `index`: 0 = EAVT, 1 = AEVT, 2 = AVET;
//! - `level`: 0 for a leaf, the height above the leaves for a branch;
//! - leaf `items`: the datoms in index order, each `[e, a, v, tx]`;
//! - branch `items`: one `[first datom, child address (32-byte bin), datom count]` per
//!   child, in index order;
//! - a value is `[type tag, payload]`; a string or byte string of
//!   [`crate::large::OUT_OF_LINE_BYTES`] or more is a reference to a blob stored out of
//!   line (see [`crate::large`]), in leaf items and branch keys alike.
//!
//! ## Versions
//! - 1: large values were stored inline. No longer read (no released build wrote it).
//! - 2: keywords (attributes and keyword values) in the order of their text. No longer
//!   read: its trees are sorted in another order than this build's, so reading one would
//!   answer range reads wrongly.
//! - 3: the format above; keywords in Clojure's order (see [`crate::value`]).
//!
//! The node's address is the BLAKE3 hash of these bytes. Decoding checks the hash, the
//! version, the order of the items and the counts; it never panics on any input.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::packed::PackedLeaf;
use crate::address::Address;
use crate::datom::{Datom, DatomRef, IndexKind};
use crate::error::Error;
use crate::large::LargeValue;

/// The node and commit format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 3;

/// The sequence of node objects made in this process (see [`Node::made`]).
static NODES_MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The next sequence number [`Node::made`] will hand out: every node made before this
/// call has a smaller one.
pub(crate) fn nodes_made() -> u64 {
    NODES_MADE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where a lazily restored tree gets nodes it has not loaded.
///
/// `datoms-storage` implements it over a `Storage` with a node cache that has a memory
/// budget: a lazily restored db does not pin the nodes it reads, the cache decides what
/// stays. Tests implement it over a map. An implementation fetches the bytes and turns
/// them into a node with [`Node::decode`] (which verifies them); the tree checks the node
/// against its parent's entry.
pub trait NodeSource: Send + Sync {
    /// The node stored at `address`, which belongs to index `kind`.
    ///
    /// # Errors
    /// [`Error::NodeUnavailable`] if the node is missing or cannot be read; the errors of
    /// [`Node::decode`] for bad bytes.
    fn load(&self, address: &Address, kind: IndexKind) -> Result<Arc<Node>, Error>;

    /// The nodes at `wanted` (address and index), in order: what copying a lazily
    /// restored db asks for, one tree level at a time. The default loads them one by
    /// one; a source over batched storage fetches them in one request.
    ///
    /// # Errors
    /// As [`NodeSource::load`], for the first node that cannot be loaded.
    fn load_many(&self, wanted: &[(Address, IndexKind)]) -> Result<Vec<Arc<Node>>, Error> {
        wanted.iter().map(|(a, k)| self.load(a, *k)).collect()
    }

    /// The source as `Any`, so a storage driver can tell whether a db's source reads the
    /// storage it is about to read (the default: unknown, `None`).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// A tree node: a leaf of datoms or a branch of children.
pub struct Node {
    pub(crate) kind: IndexKind,
    pub(crate) level: u8,
    pub(crate) body: Body,
    pub(crate) count: u64,
    address: OnceLock<Address>,
    /// When this node object was made, in the process-wide order of [`Node::made`].
    made: u64,
}

/// A node's items.
pub(crate) enum Body {
    /// A leaf keeps its first datom unpacked (parents and edits compare it often) and all
    /// its datoms packed (see [`super::packed`]).
    Leaf {
        first: Option<Datom>,
        datoms: PackedLeaf,
    },
    Branch(Vec<Child>),
}

/// One entry of a branch: the child's first datom, its datom count, and a link to it.
#[derive(Clone)]
pub struct Child {
    pub(crate) first: Datom,
    pub(crate) count: u64,
    pub(crate) link: Link,
}

/// A child either held in memory or known only by address until it is loaded.
#[derive(Clone)]
pub(crate) struct Link {
    address: Option<Address>,
    node: OnceLock<Arc<Node>>,
}

impl Link {
    pub(crate) fn loaded(node: Arc<Node>) -> Link {
        let cell = OnceLock::new();
        let _ = cell.set(node);
        Link {
            address: None,
            node: cell,
        }
    }

    pub(crate) fn lazy(address: Address) -> Link {
        Link {
            address: Some(address),
            node: OnceLock::new(),
        }
    }

    /// The node, if it is in memory.
    pub(crate) fn get(&self) -> Option<&Arc<Node>> {
        self.node.get()
    }

    /// The child's address, computing (and caching) it if the child is in memory.
    pub(crate) fn address(&self) -> Address {
        match (self.address, self.node.get()) {
            (Some(a), _) => a,
            (None, Some(n)) => n.address(),
            // A link is built either with an address or with a node.
            (None, None) => Address([0; 32]),
        }
    }

    /// The address if it is known without encoding anything.
    pub(crate) fn known_address(&self) -> Option<Address> {
        self.address
            .or_else(|| self.node.get().and_then(|n| n.address.get().copied()))
    }

    /// Installs a node fetched for this link (no-op if one is already there).
    pub(crate) fn fill(&self, node: Arc<Node>) {
        let _ = self.node.set(node);
    }

    /// True if both links point at the same content without encoding anything new:
    /// the same `Arc`, or equal known addresses.
    pub(crate) fn same_as(&self, other: &Link) -> bool {
        if let (Some(a), Some(b)) = (self.node.get(), other.node.get()) {
            if Arc::ptr_eq(a, b) {
                return true;
            }
        }
        matches!((self.known_address(), other.known_address()), (Some(a), Some(b)) if a == b)
    }
}

impl Child {
    pub(crate) fn new(node: Arc<Node>) -> Option<Child> {
        Some(Child {
            first: node.first()?.clone(),
            count: node.count,
            link: Link::loaded(node),
        })
    }

    /// The child's first datom.
    pub fn first(&self) -> &Datom {
        &self.first
    }

    /// The number of datoms under this child.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The child's address (computed and cached if needed).
    pub fn address(&self) -> Address {
        self.link.address()
    }

    /// The child node if it is in memory (`None` for a lazily restored child not yet
    /// loaded).
    pub fn loaded(&self) -> Option<&Arc<Node>> {
        self.link.get()
    }

    pub(crate) fn same_as(&self, other: &Child) -> bool {
        self.count == other.count && self.first == other.first && self.link.same_as(&other.link)
    }
}

impl Node {
    pub(crate) fn leaf(kind: IndexKind, datoms: Vec<Datom>) -> Node {
        let count = datoms.len() as u64;
        let body = Body::Leaf {
            datoms: PackedLeaf::pack(&datoms),
            first: datoms.into_iter().next(),
        };
        Node::make(kind, 0, body, count)
    }

    pub(crate) fn packed_leaf(kind: IndexKind, datoms: PackedLeaf) -> Node {
        let count = datoms.len() as u64;
        let body = Body::Leaf {
            first: datoms.iter().next(),
            datoms,
        };
        Node::make(kind, 0, body, count)
    }

    pub(crate) fn branch(kind: IndexKind, level: u8, children: Vec<Child>) -> Node {
        let count = children.iter().map(|c| c.count).sum();
        Node::make(kind, level, Body::Branch(children), count)
    }

    fn make(kind: IndexKind, level: u8, body: Body, count: u64) -> Node {
        Node {
            kind,
            level,
            body,
            count,
            address: OnceLock::new(),
            made: NODES_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// When this node object was made: a process-wide sequence number. A db records the
    /// sequence when its base commit's trees were established; a node of its trees made
    /// before that is one of the base's nodes (edits made since make only later ones),
    /// which lets a store skip looking it up (see [`crate::addressing`]).
    pub(crate) fn made(&self) -> u64 {
        self.made
    }

    /// The index this node belongs to.
    pub fn kind(&self) -> IndexKind {
        self.kind
    }

    /// 0 for a leaf; the height above the leaves for a branch.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The number of datoms under this node.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The number of items (datoms or children) in this node.
    pub fn len(&self) -> usize {
        match &self.body {
            Body::Leaf { datoms, .. } => datoms.len(),
            Body::Branch(c) => c.len(),
        }
    }

    /// True for the empty leaf of an empty index.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The datoms of a leaf (empty for a branch), unpacked from the leaf's compact
    /// in-memory form: a fresh `Vec` on every call.
    pub fn datoms(&self) -> Vec<Datom> {
        match &self.body {
            Body::Leaf { datoms, .. } => datoms.unpack(),
            Body::Branch(_) => Vec::new(),
        }
    }

    /// A leaf's datoms in packed form (`None` for a branch).
    pub(crate) fn packed(&self) -> Option<&PackedLeaf> {
        match &self.body {
            Body::Leaf { datoms, .. } => Some(datoms),
            Body::Branch(_) => None,
        }
    }

    /// True if both nodes are leaves holding exactly the same datoms (tx included).
    pub(crate) fn same_datoms(&self, other: &Node) -> bool {
        match (&self.body, &other.body) {
            (Body::Leaf { datoms: x, .. }, Body::Leaf { datoms: y, .. }) => x == y,
            _ => false,
        }
    }

    /// True if both nodes have the same canonical bytes (so the same address), found
    /// without encoding or hashing: a leaf by its packed datoms, a branch by its entries,
    /// a child in memory on both sides compared the same way, one known only by address
    /// by address (computing the other's if it has none).
    pub(crate) fn same_content(&self, other: &Node) -> bool {
        if std::ptr::eq(self, other) {
            return true;
        }
        if self.kind != other.kind || self.level != other.level || self.count != other.count {
            return false;
        }
        match (&self.body, &other.body) {
            (Body::Leaf { datoms: x, .. }, Body::Leaf { datoms: y, .. }) => x == y,
            (Body::Branch(x), Body::Branch(y)) => {
                x.len() == y.len()
                    && x.iter().zip(y).all(|(a, b)| {
                        a.count == b.count
                            && a.first == b.first
                            && (a.link.same_as(&b.link)
                                || match (a.link.get(), b.link.get()) {
                                    (Some(p), Some(q)) => p.same_content(q),
                                    _ => a.link.address() == b.link.address(),
                                })
                    })
            }
            _ => false,
        }
    }

    /// The large values this node's bytes reference (see [`crate::large`]): a leaf's,
    /// or those of a branch's keys; each allocation once.
    pub fn large_values(&self) -> Vec<LargeValue> {
        match &self.body {
            Body::Leaf { datoms, .. } => datoms.large().to_vec(),
            Body::Branch(children) => {
                let mut out: Vec<LargeValue> = Vec::new();
                for c in children {
                    if let Some(large) = LargeValue::adopt(&c.first.v) {
                        if !out.contains(&large) {
                            out.push(large);
                        }
                    }
                }
                out
            }
        }
    }

    /// The children of a branch (empty for a leaf).
    pub fn children(&self) -> &[Child] {
        match &self.body {
            Body::Leaf { .. } => &[],
            Body::Branch(c) => c,
        }
    }

    /// The first datom under this node.
    pub fn first(&self) -> Option<&Datom> {
        match &self.body {
            Body::Leaf { first, .. } => first.as_ref(),
            Body::Branch(c) => c.first().map(|c| &c.first),
        }
    }

    /// This node's address: the BLAKE3 hash of [`Node::encode`], computed once and cached.
    pub fn address(&self) -> Address {
        *self.address.get_or_init(|| Address::of(&self.encode()))
    }

    /// The address if it has been computed already.
    pub(crate) fn cached_address(&self) -> Option<Address> {
        self.address.get().copied()
    }

    /// Caches an address computed from [`Node::encode`] by the caller.
    pub(crate) fn set_address(&self, address: Address) {
        let _ = self.address.set(address);
    }

    /// The canonical bytes of this node (children's addresses are computed if needed).
    pub fn encode(&self) -> Vec<u8> {
        // Encoding plain data into a Vec cannot fail; an empty Vec would only ever be
        // produced by a serde bug and would fail address verification loudly.
        crate::large::out_of_line(|| rmp_serde::to_vec(self)).unwrap_or_default()
    }

    /// Decodes and verifies untrusted bytes fetched for `address`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the bytes do not hash to `address`; [`Error::Malformed`] or
    /// [`Error::UnsupportedVersion`] if they are not a valid node of `kind`.
    pub fn decode(address: Address, bytes: &[u8], kind: IndexKind) -> Result<Node, Error> {
        address.verify(bytes)?;
        Node::decode_verified(address, bytes, kind)
    }

    /// [`Node::decode`] of bytes the caller has already verified against `address`
    /// (restore checks each blob as it arrives), so they are not hashed twice.
    pub(crate) fn decode_verified(
        address: Address,
        bytes: &[u8],
        kind: IndexKind,
    ) -> Result<Node, Error> {
        let node = Node::decode_verified_any(address, bytes)?;
        node.check_kind(kind)?;
        Ok(node)
    }

    /// The addresses of the large values (stored out of line, see [`crate::large`]) the
    /// node at `address` references, from its bytes (verified against the address),
    /// whether or not anything in this process holds them: what a copy of the node to
    /// another storage must copy with it. The node's index is read from its own tag.
    ///
    /// # Errors
    /// As [`Node::decode`], but never [`Error::LargeValuesMissing`].
    pub fn large_references(address: Address, bytes: &[u8]) -> Result<Vec<Address>, Error> {
        address.verify(bytes)?;
        match Node::decode_verified_any(address, bytes) {
            Ok(node) => Ok(node
                .large_values()
                .iter()
                .map(LargeValue::address)
                .collect()),
            Err(Error::LargeValuesMissing { addresses, .. }) => Ok(addresses),
            Err(e) => Err(e),
        }
    }

    /// Fails with [`Error::Malformed`] unless this node belongs to index `kind`.
    pub(crate) fn check_kind(&self, kind: IndexKind) -> Result<(), Error> {
        if self.kind == kind {
            return Ok(());
        }
        Err(Error::Malformed {
            address: self.address(),
            reason: format!("node of index {} where {kind} was expected", self.kind),
        })
    }

    /// [`Node::decode_verified`] of a node whose index is not known yet (a manifest hint):
    /// the node's own index tag says which it is.
    pub(crate) fn decode_verified_any(address: Address, bytes: &[u8]) -> Result<Node, Error> {
        let malformed = |reason: String| Error::Malformed { address, reason };
        let wire: WireNode = crate::large::resolving(address, || {
            rmp_serde::from_slice(bytes).map_err(|e| {
                let text = e.to_string();
                match text.strip_prefix(VERSION_ERROR) {
                    Some(v) => Error::UnsupportedVersion {
                        address,
                        version: v.trim().parse().unwrap_or(u8::MAX),
                        supported: FORMAT_VERSION,
                    },
                    None => malformed(text),
                }
            })
        })?;
        let kind = wire.kind;
        let node = match wire.body {
            WireBody::Leaf(datoms) => {
                if wire.level != 0 {
                    return Err(malformed("leaf items at a branch level".into()));
                }
                check_sorted(kind, datoms.refs()).map_err(malformed)?;
                Node::packed_leaf(kind, datoms)
            }
            WireBody::Branch(entries) => {
                if entries.is_empty() {
                    return Err(malformed("branch without children".into()));
                }
                check_sorted(kind, entries.iter().map(|(d, _, _)| d.borrowed()))
                    .map_err(malformed)?;
                if entries.iter().any(|(_, _, count)| *count == 0) {
                    return Err(malformed("child with a zero datom count".into()));
                }
                let children = entries
                    .into_iter()
                    .map(|(first, addr, count)| Child {
                        first,
                        count,
                        link: Link::lazy(addr),
                    })
                    .collect();
                Node::branch(kind, wire.level, children)
            }
        };
        let _ = node.address.set(address);
        Ok(node)
    }

    /// Checks that a node loaded for `child` of a level-`level` branch is what the branch
    /// says it is.
    pub(crate) fn check_matches(&self, child: &Child, parent_level: u8) -> Result<(), Error> {
        let bad = |reason: &str| Error::Malformed {
            address: self.address(),
            reason: reason.into(),
        };
        if self.level + 1 != parent_level {
            return Err(bad("child level does not sit one below its parent"));
        }
        if self.count != child.count {
            return Err(bad("datom count differs from the count in its parent"));
        }
        if self.first() != Some(&child.first) {
            return Err(bad("first datom differs from the key in its parent"));
        }
        Ok(())
    }
}

fn check_sorted<'a>(
    kind: IndexKind,
    mut items: impl Iterator<Item = DatomRef<'a>>,
) -> Result<(), String> {
    let Some(mut prev) = items.next() else {
        return Ok(());
    };
    for d in items {
        if kind.cmp_ref(&prev, &d) != std::cmp::Ordering::Less {
            let d = d.to_datom();
            return Err(format!(
                "items out of {kind} order at [{} {} {} {}]",
                d.e, d.a, d.v, d.tx
            ));
        }
        prev = d;
    }
    Ok(())
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("kind", &self.kind)
            .field("level", &self.level)
            .field("items", &self.len())
            .field("count", &self.count)
            .finish()
    }
}

fn kind_tag(kind: IndexKind) -> u8 {
    match kind {
        IndexKind::Eavt => 0,
        IndexKind::Aevt => 1,
        IndexKind::Avet => 2,
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&FORMAT_VERSION)?;
        t.serialize_element(&kind_tag(self.kind))?;
        t.serialize_element(&self.level)?;
        match &self.body {
            Body::Leaf { datoms, .. } => t.serialize_element(&LeafItems(datoms))?,
            Body::Branch(children) => {
                let entries: Vec<(&Datom, Address, u64)> = children
                    .iter()
                    .map(|c| (&c.first, c.link.address(), c.count))
                    .collect();
                t.serialize_element(&entries)?;
            }
        }
        t.end()
    }
}

/// A packed leaf's datoms, serialized as the msgpack array of the node format.
struct LeafItems<'a>(&'a PackedLeaf);

impl Serialize for LeafItems<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

const VERSION_ERROR: &str = "unsupported format version ";

struct WireNode {
    kind: IndexKind,
    level: u8,
    body: WireBody,
}

enum WireBody {
    Leaf(PackedLeaf),
    Branch(Vec<(Datom, Address, u64)>),
}

impl<'de> Deserialize<'de> for WireNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireNode, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireNode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [version, index, level, items] node")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireNode, A::Error> {
                let short = || de::Error::custom("node array too short");
                let version: u8 = seq.next_element()?.ok_or_else(short)?;
                if version != FORMAT_VERSION {
                    return Err(de::Error::custom(format!("{VERSION_ERROR}{version}")));
                }
                let kind = match seq.next_element::<u8>()?.ok_or_else(short)? {
                    0 => IndexKind::Eavt,
                    1 => IndexKind::Aevt,
                    2 => IndexKind::Avet,
                    other => return Err(de::Error::custom(format!("unknown index tag {other}"))),
                };
                let level: u8 = seq.next_element()?.ok_or_else(short)?;
                let body = if level == 0 {
                    WireBody::Leaf(seq.next_element()?.ok_or_else(short)?)
                } else {
                    WireBody::Branch(seq.next_element()?.ok_or_else(short)?)
                };
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("node array too long"));
                }
                Ok(WireNode { kind, level, body })
            }
        }
        d.deserialize_tuple(4, V)
    }
}

/// The node behind `child`: the one in memory, else one loaded (and checked against the
/// parent's entry) through `source`. A loaded node is not pinned in the link: the source's
/// cache decides how long it stays in memory.
pub(crate) fn load_child(
    parent: &Node,
    child: &Child,
    source: Option<&Arc<dyn NodeSource>>,
) -> Result<Arc<Node>, Error> {
    if let Some(n) = child.link.get() {
        return Ok(n.clone());
    }
    let address = child.link.address();
    let source = source.ok_or_else(|| Error::NodeUnavailable {
        address,
        reason: "the db has no node source to load it from".into(),
    })?;
    let node = source.load(&address, parent.kind)?;
    node.check_matches(child, parent.level)?;
    Ok(node)
}
