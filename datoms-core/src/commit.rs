//! Commit records: one stored version of a database, with its lineage, its tx log entry
//! and its delta manifest.
//!
//! # Format (version [`FORMAT_VERSION`])
//! The msgpack array `[version, "datoms/commit", schema, tree config, max-eid, max-tx,
//! [eavt, aevt, avet roots], parent or nil, [ancestors…], [tx log entries…], [manifest…]]`,
//! addressed like nodes by the BLAKE3 hash of its bytes. A log entry is `[tx, [[e, a, v,
//! added]…]]`.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::datom::{Datom, Tx};
use crate::db::Db;
use crate::error::Error;
use crate::schema::Schema;
use crate::tree::{TreeConfig, FORMAT_VERSION};
use crate::value::{Eid, Keyword, Value};

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
}

impl Serialize for TxLogEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let datoms: Vec<(Eid, &Keyword, &Value, bool)> = self
            .datoms
            .iter()
            .map(|d| (d.e, &d.a, &d.v, d.added))
            .collect();
        (self.tx, datoms).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TxLogEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TxLogEntry, D::Error> {
        let (tx, datoms) = <(Tx, Vec<(Eid, Keyword, Value, bool)>)>::deserialize(d)?;
        Ok(TxLogEntry {
            tx,
            datoms: datoms
                .into_iter()
                .map(|(e, a, v, added)| Datom { e, a, v, tx, added })
                .collect(),
        })
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
    /// The transactions since the parent, oldest first.
    pub log: Vec<TxLogEntry>,
    /// Addresses of the nodes this commit's trees have that were not stored before it
    /// (the delta manifest), children before parents.
    pub manifest: Vec<Address>,
    /// The manifests of the parent and the ancestors, in lineage order; `None` where
    /// left out to keep within [`MANIFEST_BUDGET`].
    pub ancestor_manifests: Vec<Option<Vec<Address>>>,
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
    Vec<TxLogEntry>,
    Vec<Address>,
    Vec<Option<Vec<Address>>>,
);

impl Commit {
    /// The commit record for `db` stored on top of its base commit, listing `manifest`
    /// as the nodes new in it.
    pub fn for_db(db: &Db, manifest: Vec<Address>) -> Commit {
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
            log: db.pending_log().iter().map(|e| (**e).clone()).collect(),
            manifest,
            ancestor_manifests,
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
            FORMAT_VERSION,
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
        );
        // Encoding plain data into a Vec cannot fail.
        rmp_serde::to_vec(&wire).unwrap_or_default()
    }

    /// The address of [`Commit::encode`].
    pub fn address(&self) -> Address {
        Address::of(&self.encode())
    }

    /// Decodes and verifies untrusted bytes fetched for `address`.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::UnsupportedVersion`] or [`Error::Malformed`].
    pub fn decode(address: Address, bytes: &[u8]) -> Result<Commit, Error> {
        address.verify(bytes)?;
        let malformed = |reason: String| Error::Malformed { address, reason };
        if let Some(&version) = bytes.get(1) {
            if version != FORMAT_VERSION && version < 0x80 {
                return Err(Error::UnsupportedVersion {
                    address,
                    version,
                    supported: FORMAT_VERSION,
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
        if let Some(entry) = w.9.iter().find(|e| e.tx > w.5) {
            return Err(malformed(format!(
                "log entry tx {} after max-tx {}",
                entry.tx, w.5
            )));
        }
        Ok(Commit {
            schema: w.2,
            config: w.3,
            max_eid: w.4,
            max_tx: w.5,
            roots: w.6,
            parent: w.7,
            ancestors: w.8,
            log: w.9,
            manifest: w.10,
            ancestor_manifests: w.11,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datom::TX0;

    fn sample() -> Commit {
        Commit {
            schema: Schema::new(),
            config: TreeConfig::default(),
            max_eid: 3,
            max_tx: TX0 + 2,
            roots: [Address::of(b"a"), Address::of(b"b"), Address::of(b"c")],
            parent: Some(Address::of(b"p")),
            ancestors: vec![Address::of(b"g")],
            log: vec![TxLogEntry {
                tx: TX0 + 2,
                datoms: vec![
                    Datom::new(3, ":x", 1i64, TX0 + 2),
                    Datom::new(2, ":x", 1i64, TX0 + 2).retraction(),
                ],
            }],
            manifest: vec![Address::of(b"n")],
            ancestor_manifests: vec![Some(vec![Address::of(b"m")]), None],
        }
    }

    #[test]
    fn a_commit_round_trips_and_is_verified() {
        let c = sample();
        let bytes = c.encode();
        let addr = Address::of(&bytes);
        assert_eq!(Commit::decode(addr, &bytes).unwrap(), c);
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
    fn lineage_is_capped() {
        let mut c = sample();
        c.ancestors = (0..ANCESTORS as u8).map(|i| Address::of(&[i])).collect();
        assert_eq!(c.lineage(Address::of(b"me")).len(), ANCESTORS + 2);
    }
}
