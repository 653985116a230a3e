//! Commit records: one stored version of a database, with its lineage, its tx log entry
//! and its delta manifest.
//!
//! # Format (commit format version [`COMMIT_FORMAT_VERSION`])
//! Commits have their own format version, separate from the nodes'
//! ([`crate::tree::FORMAT_VERSION`]): the two evolve independently.
//!
//! A commit is the msgpack array `[version, "datoms/commit", schema, tree config, max-eid,
//! max-tx, [eavt, aevt, avet roots], parent or nil, [ancestors…], [tx count, datom count,
//! log], [manifest…], [ancestor manifests…], node count, time, [merged…]]`, addressed like
//! nodes by the BLAKE3 hash of its bytes. The node count is the number of nodes of the
//! three trees: what a full restore fetches, so an incremental restore can tell when the
//! manifests it would prefetch come to more than that (see [`crate::restore`]).
//!
//! The time is when the commit was made, in milliseconds since the Unix epoch (UTC), and
//! never earlier than any of its parents' ([`Commit::for_db_at`] takes the later of the
//! clock and the parents' times): along a lineage, times never decrease, so a lookup by
//! instant can stop at the first commit at or before it even after the writer's clock
//! stepped backwards. `parent` is the first parent (the head the commit was stored onto)
//! and `ancestors` follow first parents; `merged` lists the other parents of a merge
//! commit (see [`crate::merge`]), empty for any other commit. The tx log of a merge commit
//! holds what the merge applied to its first parent (retractions first, then additions
//! grouped by their own transaction), so log replay from the first parent reproduces it.
//!
//! The tx log is a msgpack `bin` holding its own msgpack document
//! `[[attribute…], [[tx, [[e, attribute index, v, added]…], id or nil]…]]`:
//! - each attribute is written once per commit, as a string in the table, and every datom
//!   names it by its index in that table (a bulk import repeats a handful of attribute
//!   strings a million times otherwise);
//! - the tx is written once per entry, not per datom;
//! - values are encoded as in nodes, `[type tag, payload]`, a large string or byte string
//!   as a reference to its blob stored out of line (see [`crate::large`]): a commit's log
//!   never repeats a large value its trees already reference;
//! - the id is the transaction's [`TxId`], a 16-byte msgpack `bin`, given by the writer
//!   that made it (a peer's pending transaction) so a retry can tell whether it already
//!   landed; `nil` when the transaction has none (a plain [`Db::with`]).
//!
//! The table lists exactly the attributes the log uses, each once, in order of first use,
//! so one log has one encoding; the decoder refuses any other table, an index out of
//! range, bytes after the document and counts that disagree with it.
//!
//! The log is nested as bytes so that decoding a commit does not decode its log: a
//! restore needs only the roots, lineage and manifests, so [`Commit::decode`] copies the
//! log bytes and checks nothing in them (the commit's hash covers them).
//! [`Commit::log_entries`] decodes and checks them, with [`Error::MalformedLog`] for a
//! log that is not valid: log replay, `datoms log` and `datoms verify` call it.
//!
//! ## Versions
//! - 1: the version byte was shared with nodes; log entries were inline
//!   `[tx, [[e, a, v, added]…]]` arrays repeating each attribute string per datom. No
//!   longer read: no released build wrote it, so decoding one gives
//!   [`Error::UnsupportedVersion`] rather than carrying a second decoder.
//! - 2: as below, without the node count. No longer read, for the same reason.
//! - 3: as below, log entries `[tx, datoms]` without the id and large values inline. No
//!   longer read, for the same reason.
//! - 4: as below, with node format 2 (keywords in the order of their text; the schema
//!   map is written in keyword order too). No longer read: its roots name nodes this
//!   build refuses.
//! - 5: as below, without the time and the merge parents. No longer read: a commit
//!   without a time cannot take part in lookups by instant, and one decoder is kept.
//! - 6: the format above, with node format 3.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::datom::{Datom, Tx};
use crate::db::Db;
use crate::error::Error;
use crate::schema::Schema;
use crate::tree::TreeConfig;
use crate::value::{Bin, Eid, Keyword, Value};

/// The version of the commit record format, written as its first element. Independent of
/// the node format version ([`crate::tree::FORMAT_VERSION`]).
pub const COMMIT_FORMAT_VERSION: u8 = 6;

/// How many ancestors (beyond the parent) a commit lists, so a replica up to this many
/// commits behind can fetch the whole chain of commits in one batch.
pub const ANCESTORS: usize = 8;

/// At most this many addresses of ancestor manifests are repeated in a commit. Within the
/// budget, a replica a few commits behind learns every node it lacks from the head commit
/// alone; past it (after a bulk import), it fetches the older commits in one more batch.
pub const MANIFEST_BUDGET: usize = 4096;

const MAGIC: &str = "datoms/commit";

/// One transaction as it appears in the log: its id and its datoms (assertions and
/// retractions), in the order they were applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxLogEntry {
    /// The transaction id.
    pub tx: Tx,
    /// The datoms; each has `tx == self.tx`.
    pub datoms: Vec<Datom>,
    /// The writer's id for this transaction, recorded so a retry can tell whether it
    /// landed ([`Db::with_id`]); `None` for a transaction without one.
    pub id: Option<TxId>,
}

/// A writer-given identity of a transaction, recorded in the log of the commit that
/// lands it: 16 opaque bytes. A peer makes them unique (its origin and a sequence
/// number), so a push that retries after a lost reply or a crash finds which of its
/// transactions a commit already holds, and applies each exactly once. It is not a
/// datom: no attribute is visible to queries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub [u8; 16]);

impl fmt::Display for TxId {
    /// 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({self})")
    }
}

impl Serialize for TxId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Bin(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TxId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TxId, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TxId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a transaction id, 16 bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<TxId, E> {
                <[u8; 16]>::try_from(v)
                    .map(TxId)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The tx log of a commit, kept encoded: counted, but decoded only when asked
/// ([`Commit::log_entries`]), so restoring a commit never pays for its log.
///
/// Equality compares the encoded log (one log has one encoding).
#[derive(Clone, Default)]
pub struct CommitLog {
    txs: usize,
    datoms: usize,
    bytes: Arc<[u8]>,
    /// The commit it was decoded from, to name it in errors.
    commit: Option<Address>,
}

impl CommitLog {
    /// Encodes `entries` (oldest first) in the compact log format of the module docs.
    pub fn new<E: Borrow<TxLogEntry>>(entries: &[E]) -> CommitLog {
        let mut index: HashMap<&Keyword, usize> = HashMap::new();
        let mut table: Vec<&str> = Vec::new();
        let mut datoms = 0;
        for entry in entries {
            for d in &entry.borrow().datoms {
                datoms += 1;
                index.entry(&d.a).or_insert_with(|| {
                    table.push(d.a.as_str());
                    table.len() - 1
                });
            }
        }
        let body = LogOut {
            table: &table,
            index: &index,
            entries,
        };
        // Encoding plain data into a Vec cannot fail (every attribute is in the table).
        let bytes = crate::large::out_of_line(|| rmp_serde::to_vec(&body)).unwrap_or_default();
        CommitLog {
            txs: entries.len(),
            datoms,
            bytes: Arc::from(bytes),
            commit: None,
        }
    }

    /// The number of transactions in the log.
    pub fn txs(&self) -> usize {
        self.txs
    }

    /// The number of datoms (assertions and retractions) in the log, all transactions
    /// together.
    pub fn datoms(&self) -> usize {
        self.datoms
    }

    /// True if the log holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.txs == 0
    }

    /// The encoded log, as stored in the commit record (not checked until decoded).
    pub fn encoded(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes and checks the log; `max_tx` is its commit's.
    fn decode(&self, max_tx: Tx) -> Result<Vec<TxLogEntry>, Error> {
        let bad = |reason: String| Error::MalformedLog {
            commit: self.commit,
            reason,
        };
        let mut rest: &[u8] = &self.bytes;
        let mut de = rmp_serde::Deserializer::new(&mut rest);
        let object = self.commit.unwrap_or(Address([0; 32]));
        type WireEntry = (Tx, Vec<(Eid, usize, Value, bool)>, Option<TxId>);
        let (table, wire) = crate::large::resolving(object, || {
            <(Vec<Keyword>, Vec<WireEntry>)>::deserialize(&mut de).map_err(|e| bad(e.to_string()))
        })?;
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the log", rest.len())));
        }
        let mut seen = HashSet::with_capacity(table.len());
        if let Some(a) = table.iter().find(|a| !seen.insert(*a)) {
            return Err(bad(format!("attribute {a} is twice in the table")));
        }
        if wire.len() != self.txs {
            return Err(bad(format!(
                "{} transactions where the commit counts {}",
                wire.len(),
                self.txs
            )));
        }
        // The next attribute index to be used for the first time: the table is in order
        // of first use.
        let mut next = 0;
        let mut datoms = 0;
        let mut entries = Vec::with_capacity(wire.len());
        for (tx, raw, id) in wire {
            if tx > max_tx {
                return Err(bad(format!("log entry tx {tx} after max-tx {max_tx}")));
            }
            datoms += raw.len();
            let mut out = Vec::with_capacity(raw.len());
            for (e, i, v, added) in raw {
                let a = table.get(i).ok_or_else(|| {
                    bad(format!(
                        "attribute index {i} of tx {tx} is past the table of {}",
                        table.len()
                    ))
                })?;
                if i > next {
                    return Err(bad(format!(
                        "attribute index {i} of tx {tx} used before index {next}: the table is not in order of first use"
                    )));
                }
                if i == next {
                    next += 1;
                }
                out.push(Datom {
                    e,
                    a: a.clone(),
                    v,
                    tx,
                    added,
                });
            }
            entries.push(TxLogEntry {
                tx,
                datoms: out,
                id,
            });
        }
        if next != table.len() {
            return Err(bad(format!(
                "the table lists {} attributes, the log uses {next}",
                table.len()
            )));
        }
        if datoms != self.datoms {
            return Err(bad(format!(
                "{datoms} datoms where the commit counts {}",
                self.datoms
            )));
        }
        Ok(entries)
    }
}

impl PartialEq for CommitLog {
    fn eq(&self, other: &CommitLog) -> bool {
        self.txs == other.txs && self.datoms == other.datoms && self.bytes == other.bytes
    }
}

impl Eq for CommitLog {}

impl fmt::Debug for CommitLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitLog")
            .field("txs", &self.txs)
            .field("datoms", &self.datoms)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Serialize for CommitLog {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.txs, self.datoms, Bin(&self.bytes)).serialize(s)
    }
}

impl<'de> Deserialize<'de> for CommitLog {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CommitLog, D::Error> {
        let (txs, datoms, LogBytes(bytes)) = <(usize, usize, LogBytes)>::deserialize(d)?;
        Ok(CommitLog {
            txs,
            datoms,
            bytes,
            commit: None,
        })
    }
}

/// A msgpack `bin`, copied once into shared memory and not looked into.
struct LogBytes(Arc<[u8]>);

impl<'de> Deserialize<'de> for LogBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LogBytes, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LogBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the encoded tx log, a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<LogBytes, E> {
                Ok(LogBytes(Arc::from(v)))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The log document `[[attribute…], [entry…]]` as [`CommitLog::new`] writes it.
struct LogOut<'a, E> {
    table: &'a [&'a str],
    index: &'a HashMap<&'a Keyword, usize>,
    entries: &'a [E],
}

impl<E: Borrow<TxLogEntry>> Serialize for LogOut<'_, E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut doc = s.serialize_tuple(2)?;
        doc.serialize_element(self.table)?;
        doc.serialize_element(&EntriesOut(self))?;
        doc.end()
    }
}

struct EntriesOut<'a, 'b, E>(&'b LogOut<'a, E>);

impl<E: Borrow<TxLogEntry>> Serialize for EntriesOut<'_, '_, E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.entries.len()))?;
        for entry in self.0.entries {
            let entry = entry.borrow();
            seq.serialize_element(&(
                entry.tx,
                DatomsOut {
                    datoms: &entry.datoms,
                    index: self.0.index,
                },
                entry.id,
            ))?;
        }
        seq.end()
    }
}

struct DatomsOut<'a> {
    datoms: &'a [Datom],
    index: &'a HashMap<&'a Keyword, usize>,
}

impl Serialize for DatomsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.datoms.len()))?;
        for d in self.datoms {
            let i = self.index.get(&d.a).copied().ok_or_else(|| {
                <S::Error as serde::ser::Error>::custom("attribute missing from the table")
            })?;
            seq.serialize_element(&(d.e, i, &d.v, d.added))?;
        }
        seq.end()
    }
}

/// A stored version of a database.
#[derive(Clone, Debug, PartialEq)]
pub struct Commit {
    /// The schema.
    pub schema: Schema,
    /// The chunking parameters of its trees.
    pub config: TreeConfig,
    /// The largest entity id allocated.
    pub max_eid: Eid,
    /// The last transaction id.
    pub max_tx: Tx,
    /// Root addresses of EAVT, AEVT and AVET.
    pub roots: [Address; 3],
    /// The previous commit of this database, if any.
    pub parent: Option<Address>,
    /// The parent's ancestors, most recent first: `[grandparent, …]`, at most
    /// [`ANCESTORS`] of them.
    pub ancestors: Vec<Address>,
    /// The transactions since the parent, oldest first, still encoded:
    /// [`Commit::log_entries`] decodes them.
    pub log: CommitLog,
    /// Addresses of the nodes this commit's trees have that were not stored before it
    /// (the delta manifest), children before parents.
    pub manifest: Vec<Address>,
    /// The manifests of the parent and the ancestors, in lineage order; `None` where
    /// left out to keep within [`MANIFEST_BUDGET`].
    pub ancestor_manifests: Vec<Option<Vec<Address>>>,
    /// The number of nodes of the three trees (what a full restore fetches).
    pub nodes: u64,
    /// When the commit was made: milliseconds since the Unix epoch (UTC), never earlier
    /// than its parents' (see the module docs).
    pub time: u64,
    /// The other parents of a merge commit (the heads merged into `parent`); empty for
    /// any other commit.
    pub merged: Vec<Address>,
}

/// The wall clock, in milliseconds since the Unix epoch: what [`Commit::for_db`] records
/// before taking the later of it and the parents' times. A clock before the epoch reads
/// as 0.
pub fn now_ms() -> u64 {
    web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Serialize, Deserialize)]
struct Wire(
    u8,
    String,
    Schema,
    TreeConfig,
    Eid,
    Tx,
    [Address; 3],
    Option<Address>,
    Vec<Address>,
    CommitLog,
    Vec<Address>,
    Vec<Option<Vec<Address>>>,
    u64,
    u64,
    Vec<Address>,
);

impl Commit {
    /// The commit record for `db` stored on top of its base commit, listing `manifest`
    /// as the nodes new in it, whose trees have `nodes` nodes
    /// ([`crate::addressing::commit_for`] computes both), made now: at
    /// [`Db::commit_clock`], the clock as first read for this db value.
    pub fn for_db(db: &Db, manifest: Vec<Address>, nodes: u64) -> Commit {
        Commit::for_db_at(db, manifest, nodes, db.commit_clock())
    }

    /// [`Commit::for_db`] with the clock read as `now` (milliseconds since the Unix
    /// epoch): the commit's time is the later of `now` and its parents' times, so times
    /// never decrease along a lineage whatever the clock does. The commit lists the merge
    /// parents `db` carries ([`Db::merging`]).
    pub fn for_db_at(db: &Db, manifest: Vec<Address>, nodes: u64, now: u64) -> Commit {
        let lineage = db.lineage();
        let mut budget = MANIFEST_BUDGET;
        let ancestor_manifests = db
            .lineage_manifests()
            .iter()
            .take(ANCESTORS + 1)
            .map(|m| match m {
                Some(m) if m.len() <= budget => {
                    budget -= m.len();
                    Some(m.clone())
                }
                _ => {
                    budget = 0;
                    None
                }
            })
            .collect();
        Commit {
            schema: db.schema().clone(),
            config: db.config(),
            max_eid: db.max_eid(),
            max_tx: db.max_tx(),
            roots: db.root_addresses(),
            parent: lineage.first().copied(),
            ancestors: lineage.iter().skip(1).take(ANCESTORS).copied().collect(),
            log: CommitLog::new(&db.pending_log()),
            manifest,
            ancestor_manifests,
            nodes,
            time: now.max(db.parents_time()),
            merged: db.merge_parents().to_vec(),
        }
    }

    /// Every parent: the first ([`Commit::parent`]), then the merged ones.
    pub fn parents(&self) -> impl Iterator<Item = Address> + '_ {
        self.parent.into_iter().chain(self.merged.iter().copied())
    }

    /// Decodes the tx log: the transactions since the parent, oldest first. Decoding a
    /// commit leaves its log encoded; this is the one place it is decoded and checked.
    ///
    /// # Errors
    /// [`Error::MalformedLog`] if the log bytes are not a valid log of this commit (bad
    /// msgpack, an attribute index outside the table, counts that disagree, a tx after
    /// [`Commit::max_tx`]…); [`Error::LargeValuesMissing`] if it references large values
    /// nothing in this process holds (fetch them and decode again).
    pub fn log_entries(&self) -> Result<Vec<TxLogEntry>, Error> {
        self.log.decode(self.max_tx)
    }

    /// The addresses of the large values (stored out of line, see [`crate::large`]) this
    /// commit's tx log references, whether or not anything in this process holds them:
    /// what a copy of the commit to another storage must copy with it.
    ///
    /// # Errors
    /// As [`Commit::log_entries`], but never [`Error::LargeValuesMissing`].
    pub fn log_large_references(&self) -> Result<Vec<Address>, Error> {
        match self.log_entries() {
            Ok(entries) => {
                let mut out: Vec<Address> = entries
                    .iter()
                    .flat_map(|e| &e.datoms)
                    .filter_map(|d| crate::large::LargeValue::adopt(&d.v))
                    .map(|v| v.address())
                    .collect();
                out.sort_unstable();
                out.dedup();
                Ok(out)
            }
            Err(Error::LargeValuesMissing { addresses, .. }) => Ok(addresses),
            Err(e) => Err(e),
        }
    }

    /// The manifests along [`Commit::lineage`]: this commit's own, then those it repeats
    /// of its ancestors (`None` where left out).
    pub fn lineage_manifests(&self) -> Vec<Option<Vec<Address>>> {
        std::iter::once(Some(self.manifest.clone()))
            .chain(self.ancestor_manifests.iter().cloned())
            .take(ANCESTORS + 2)
            .collect()
    }

    /// This commit's lineage as a db restored from it sees it: `[address, parent,
    /// ancestors…]`, at most [`ANCESTORS`] + 2 entries.
    pub fn lineage(&self, address: Address) -> Vec<Address> {
        std::iter::once(address)
            .chain(self.parent)
            .chain(self.ancestors.iter().copied())
            .take(ANCESTORS + 2)
            .collect()
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire(
            COMMIT_FORMAT_VERSION,
            MAGIC.to_owned(),
            self.schema.clone(),
            self.config,
            self.max_eid,
            self.max_tx,
            self.roots,
            self.parent,
            self.ancestors.clone(),
            self.log.clone(),
            self.manifest.clone(),
            self.ancestor_manifests.clone(),
            self.nodes,
            self.time,
            self.merged.clone(),
        );
        // Encoding plain data into a Vec cannot fail.
        rmp_serde::to_vec(&wire).unwrap_or_default()
    }

    /// The address of [`Commit::encode`].
    pub fn address(&self) -> Address {
        Address::of(&self.encode())
    }

    /// Decodes and verifies untrusted bytes fetched for `address`. The tx log is copied,
    /// not decoded: [`Commit::log_entries`] decodes and checks it.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::UnsupportedVersion`] (a commit of another format
    /// version, including version 1) or [`Error::Malformed`].
    pub fn decode(address: Address, bytes: &[u8]) -> Result<Commit, Error> {
        address.verify(bytes)?;
        let malformed = |reason: String| Error::Malformed { address, reason };
        if let Some(&version) = bytes.get(1) {
            if version != COMMIT_FORMAT_VERSION && version < 0x80 {
                return Err(Error::UnsupportedVersion {
                    address,
                    version,
                    supported: COMMIT_FORMAT_VERSION,
                });
            }
        }
        let w: Wire = rmp_serde::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        if w.1 != MAGIC {
            return Err(malformed("not a commit record".into()));
        }
        if w.8.len() > ANCESTORS || w.11.len() > ANCESTORS + 1 {
            return Err(malformed("too many ancestors".into()));
        }
        Ok(Commit {
            schema: w.2,
            config: w.3,
            max_eid: w.4,
            max_tx: w.5,
            roots: w.6,
            parent: w.7,
            ancestors: w.8,
            log: CommitLog {
                commit: Some(address),
                ..w.9
            },
            manifest: w.10,
            ancestor_manifests: w.11,
            nodes: w.12,
            time: w.13,
            merged: w.14,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::datom::TX0;
    use crate::value::Uuid;

    fn entries() -> Vec<TxLogEntry> {
        vec![
            TxLogEntry {
                tx: TX0 + 1,
                datoms: vec![
                    Datom::new(3, ":x", 1i64, TX0 + 1),
                    Datom::new(3, ":y", "three", TX0 + 1),
                ],
                id: Some(TxId([7; 16])),
            },
            TxLogEntry {
                tx: TX0 + 2,
                datoms: vec![
                    Datom::new(2, ":y", 1i64, TX0 + 2).retraction(),
                    Datom::new(4, ":x", 2i64, TX0 + 2),
                ],
                id: None,
            },
        ]
    }

    fn sample() -> Commit {
        Commit {
            schema: Schema::new(),
            config: TreeConfig::default(),
            max_eid: 3,
            max_tx: TX0 + 2,
            roots: [Address::of(b"a"), Address::of(b"b"), Address::of(b"c")],
            parent: Some(Address::of(b"p")),
            ancestors: vec![Address::of(b"g")],
            log: CommitLog::new(&entries()),
            manifest: vec![Address::of(b"n")],
            ancestor_manifests: vec![Some(vec![Address::of(b"m")]), None],
            nodes: 7,
            time: 1_765_000_000_000,
            merged: vec![Address::of(b"q")],
        }
    }

    /// A log with the given counts and bytes, as a decoded commit would hold it.
    fn raw_log(txs: usize, datoms: usize, bytes: &[u8]) -> CommitLog {
        CommitLog {
            txs,
            datoms,
            bytes: Arc::from(bytes),
            commit: Some(Address::of(b"commit")),
        }
    }

    fn malformed_log(log: &CommitLog, max_tx: Tx) -> String {
        match log.decode(max_tx) {
            Err(Error::MalformedLog { commit, reason }) => {
                assert_eq!(commit, Some(Address::of(b"commit")));
                reason
            }
            other => panic!("expected MalformedLog, got {other:?}"),
        }
    }

    #[test]
    fn a_commit_round_trips_and_is_verified() {
        let c = sample();
        let bytes = c.encode();
        let addr = Address::of(&bytes);
        let decoded = Commit::decode(addr, &bytes).unwrap();
        assert_eq!(decoded, c);
        assert_eq!(decoded.log_entries().unwrap(), entries());
        assert_eq!((decoded.log.txs(), decoded.log.datoms()), (2, 4));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            Commit::decode(addr, &bad),
            Err(Error::Corrupt { .. })
        ));
        for cut in 0..bytes.len() {
            let t = &bytes[..cut];
            assert!(Commit::decode(Address::of(t), t).is_err());
        }
    }

    #[test]
    fn the_log_writes_each_attribute_once() {
        let log = CommitLog::new(&entries());
        let text = String::from_utf8_lossy(log.encoded());
        assert_eq!(text.matches('x').count(), 1, "{text}");
        assert_eq!(text.matches('y').count(), 1, "{text}");
        let (table, _): (Vec<String>, serde::de::IgnoredAny) =
            rmp_serde::from_slice(log.encoded()).unwrap();
        assert_eq!(table, ["x", "y"], "in order of first use");
        assert!(CommitLog::new::<TxLogEntry>(&[])
            .decode(0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_old_version_is_refused_with_a_typed_error() {
        let mut bytes = sample().encode();
        bytes[1] = 1;
        let addr = Address::of(&bytes);
        assert!(matches!(
            Commit::decode(addr, &bytes),
            Err(Error::UnsupportedVersion {
                version: 1,
                supported: COMMIT_FORMAT_VERSION,
                ..
            })
        ));
    }

    #[test]
    fn decoding_a_commit_does_not_decode_its_log() {
        let mut c = sample();
        c.log = raw_log(2, 4, &[0xc1, 0xc1, 0xc1]);
        let bytes = c.encode();
        let addr = Address::of(&bytes);
        let decoded = Commit::decode(addr, &bytes).unwrap();
        assert_eq!(decoded.roots, c.roots);
        assert_eq!(decoded.log.encoded(), [0xc1, 0xc1, 0xc1]);
        match decoded.log_entries() {
            Err(Error::MalformedLog { commit, .. }) => assert_eq!(commit, Some(addr)),
            other => panic!("expected MalformedLog, got {other:?}"),
        }
    }

    #[test]
    fn an_invalid_log_is_a_typed_error_naming_what_is_wrong() {
        type Doc = (
            Vec<&'static str>,
            Vec<(Tx, Vec<(Eid, usize, Value, bool)>, Option<TxId>)>,
        );
        let tx = TX0 + 1;
        let one = |i: usize| (1u64, i, Value::Long(1), true);
        let cases: Vec<(Doc, usize, usize, &str)> = vec![
            (
                (vec!["a"], vec![(tx, vec![one(1)], None)]),
                1,
                1,
                "past the table",
            ),
            (
                (vec!["a", "b"], vec![(tx, vec![one(1), one(0)], None)]),
                1,
                2,
                "order of first use",
            ),
            (
                (vec!["a", "a"], vec![(tx, vec![one(0), one(1)], None)]),
                1,
                2,
                "twice in the table",
            ),
            (
                (vec!["a", "b"], vec![(tx, vec![one(0)], None)]),
                1,
                1,
                "uses 1",
            ),
            (
                (vec!["a"], vec![(tx, vec![one(0)], None)]),
                2,
                1,
                "transactions",
            ),
            ((vec!["a"], vec![(tx, vec![one(0)], None)]), 1, 2, "datoms"),
            (
                (vec!["a"], vec![(tx + 5, vec![one(0)], None)]),
                1,
                1,
                "after max-tx",
            ),
        ];
        for (doc, txs, datoms, expected) in cases {
            let bytes = rmp_serde::to_vec(&doc).unwrap();
            let reason = malformed_log(&raw_log(txs, datoms, &bytes), tx);
            assert!(reason.contains(expected), "{reason} (expected {expected})");
        }
        let mut bytes = CommitLog::new(&entries()).encoded().to_vec();
        bytes.push(0);
        let reason = malformed_log(&raw_log(2, 4, &bytes), TX0 + 2);
        assert!(reason.contains("after the log"), "{reason}");
        malformed_log(&raw_log(0, 0, &[]), TX0);
    }

    #[test]
    fn every_damaged_log_fails_with_a_typed_error_or_decodes() {
        let good = CommitLog::new(&entries());
        let bytes = good.encoded();
        for cut in 0..bytes.len() {
            malformed_log(&raw_log(2, 4, &bytes[..cut]), TX0 + 2);
        }
        for i in 0..bytes.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut bad = bytes.to_vec();
                bad[i] ^= x;
                match raw_log(2, 4, &bad).decode(TX0 + 2) {
                    Ok(_) | Err(Error::MalformedLog { .. }) => {}
                    Err(other) => panic!("byte {i} ^ {x:#x}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_transaction_id_travels_from_with_id_to_the_commit_log() {
        let id = TxId(*b"0123456789abcdef");
        let ops = crate::tx::TxBuilder::new().add("a", ":x", 1i64).build();
        let db = Db::new(Schema::new()).with_id(&ops, id).unwrap().db_after;
        let db = db.with_edn("[[:db/add 1 :y 2]]").unwrap().db_after;
        let c = Commit::for_db(&db, Vec::new(), 0);
        let bytes = c.encode();
        let decoded = Commit::decode(Address::of(&bytes), &bytes).unwrap();
        let ids: Vec<Option<TxId>> = decoded
            .log_entries()
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [Some(id), None]);
        assert_eq!(id.to_string(), "30313233343536373839616263646566");
    }

    #[test]
    fn a_commit_time_never_goes_back_and_merge_parents_are_listed() {
        let db = Db::new(Schema::new())
            .with_edn("[[:db/add 1 :x 1]]")
            .unwrap()
            .db_after;
        let first = Commit::for_db_at(&db, Vec::new(), 0, 5_000);
        assert_eq!((first.time, first.merged.len()), (5_000, 0));
        let stored = db.committed(first.address(), &first);
        assert_eq!(stored.parents_time(), 5_000);
        let next = stored.with_edn("[[:db/add 1 :x 2]]").unwrap().db_after;
        // The clock stepped back: the commit keeps its parent's time.
        assert_eq!(Commit::for_db_at(&next, Vec::new(), 0, 4_000).time, 5_000);
        assert_eq!(Commit::for_db_at(&next, Vec::new(), 0, 6_000).time, 6_000);
        // A merge: the other parent is listed once, and its later time counts.
        let other = Address::of(b"other");
        let merging = next.merging(other, 9_000).merging(other, 9_000);
        let merge = Commit::for_db_at(&merging, Vec::new(), 0, 6_000);
        assert_eq!(merge.merged, [other]);
        assert_eq!(merge.time, 9_000);
        assert_eq!(
            merge.parents().collect::<Vec<_>>(),
            [first.address(), other]
        );
        let bytes = merge.encode();
        assert_eq!(Commit::decode(Address::of(&bytes), &bytes).unwrap(), merge);
        // Storing it starts afresh: no merge parents pending.
        let after = merging.committed(Address::of(&bytes), &merge);
        assert!(after.merge_parents().is_empty());
        assert_eq!(after.parents_time(), 9_000);
    }

    #[test]
    fn one_db_value_makes_one_commit_and_a_change_reads_the_clock_again() {
        let db = Db::new(Schema::new())
            .with_edn("[[:db/add 1 :x 1]]")
            .unwrap()
            .db_after;
        let copy = db.clone();
        let (a, _) = crate::addressing::commit_for(&db).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let (b, _) = crate::addressing::commit_for(&copy).unwrap();
        assert_eq!(a.address(), b.address(), "same value, same commit");
        let next = db.with_edn("[[:db/add 1 :x 2]]").unwrap().db_after;
        assert!(
            next.commit_clock() > db.commit_clock(),
            "a new value reads the clock"
        );
    }

    #[test]
    fn lineage_is_capped() {
        let mut c = sample();
        c.ancestors = (0..ANCESTORS as u8).map(|i| Address::of(&[i])).collect();
        assert_eq!(c.lineage(Address::of(b"me")).len(), ANCESTORS + 2);
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Long),
            (-1e9f64..1e9).prop_map(|f| Value::double(f).unwrap()),
            any::<i64>().prop_map(Value::Instant),
            ".{0,12}".prop_map(|s| Value::string(&s)),
            "[a-z]{1,3}/[a-z]{1,5}".prop_map(|s| Value::keyword(&s)),
            any::<[u8; 16]>().prop_map(|b| Value::Uuid(Uuid(b))),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Bytes(Arc::from(b))),
            (1u64..1 << 40).prop_map(Value::Ref),
        ]
    }

    fn log() -> impl Strategy<Value = Vec<TxLogEntry>> {
        let datom = (
            any::<u64>(),
            "[a-z]{1,2}(/[a-z]{1,4})?",
            value(),
            any::<bool>(),
        );
        proptest::collection::vec(
            (
                0u64..1000,
                proptest::collection::vec(datom, 0..12),
                proptest::option::of(any::<[u8; 16]>()),
            ),
            0..8,
        )
        .prop_map(|txs| {
            txs.into_iter()
                .map(|(dt, datoms, id)| {
                    let tx = TX0 + dt;
                    TxLogEntry {
                        tx,
                        datoms: datoms
                            .into_iter()
                            .map(|(e, a, v, added)| Datom {
                                e,
                                a: Keyword::new(&a),
                                v,
                                tx,
                                added,
                            })
                            .collect(),
                        id: id.map(TxId),
                    }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_log_round_trips_through_the_compact_encoding(entries in log()) {
            let log = CommitLog::new(&entries);
            prop_assert_eq!(log.txs(), entries.len());
            prop_assert_eq!(log.datoms(), entries.iter().map(|e| e.datoms.len()).sum::<usize>());
            let mut c = sample();
            c.max_tx = TX0 + 1000;
            c.log = log.clone();
            let bytes = c.encode();
            let decoded = Commit::decode(Address::of(&bytes), &bytes).unwrap();
            let back = decoded.log_entries().unwrap();
            prop_assert_eq!(&back, &entries);
            // One log, one encoding.
            prop_assert_eq!(CommitLog::new(&back), log);
        }

        #[test]
        fn decoding_arbitrary_log_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            txs in 0usize..4,
            datoms in 0usize..8,
        ) {
            match raw_log(txs, datoms, &bytes).decode(Tx::MAX) {
                Ok(_) | Err(Error::MalformedLog { .. }) => {}
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
