//! The benchmark workload: people with names, emails, ages, cities, scores, friends and
//! tags, generated from a seed by [`Generator`].
//!
//! The JS peer (`bench/peer/peer.js`) implements the same generator over the same PRNG
//! ([`SplitMix64`]), draw for draw, so one seed gives the same transactions on both sides.
//! Both print [`workload_checksum`] (FNV-1a of a canonical text of the generated ops) and
//! [`db_checksum`] (FNV-1a of every datom of the resulting db in EAVT order); equal
//! checksums prove the two sides ran the same workload and built the same database.
//!
//! # The generator, as both sides implement it
//! Entity `i` (0-based, tempid `"p{i}"`, entity id `i + 1` once transacted) draws, in
//! this order: a first name, a last name, an email domain, an age (`18 + below(73)`), a
//! city, a score (`below(1_000_000)`) and — in the base workload, once earlier
//! transactions exist — a friend count `below(4)` capped at the number of entities in
//! earlier transactions, then that many distinct friends `1 + below(committed)`.
//!
//! A delta of `k` datoms ([`Generator::delta`]) holds `k * 2 / 5 / 5` new people without
//! friends (5 datoms each), then `k * 2 / 5 / 2` score updates of distinct random
//! existing people (2 datoms each: the old value's retraction and the new assertion; new
//! scores are `1_000_000 + counter`, never equal to an old one), then tag assertions
//! (`"tag-{counter}"` on a random existing person, 1 datom each) up to exactly `k`.

use std::collections::HashSet;
use std::fmt::Write as _;

use datoms_core::tx::{EntityMap, EntityRef, TxOp, TxValue};
use datoms_core::{AttributeSchema, Db, Eid, IndexKind, Keyword, Schema, Value, ValueType};

use crate::error::BenchError;
use crate::rng::{Fnv64, SplitMix64};

const FIRST: [&str; 16] = [
    "Ann", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Ken", "Liz",
    "Mallory", "Nina", "Oscar", "Peggy",
];
const LAST: [&str; 16] = [
    "Smith", "Jones", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Johnson",
    "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes",
];
const DOMAINS: [&str; 4] = ["example.com", "example.org", "mail.test", "corp.invalid"];
/// The cities people live in (the mix workload of [`crate::small`] moves them).
pub const CITIES: [&str; 24] = [
    "Amsterdam",
    "Berlin",
    "Cairo",
    "Dakar",
    "Edinburgh",
    "Florence",
    "Geneva",
    "Hanoi",
    "Istanbul",
    "Jakarta",
    "Kyoto",
    "Lima",
    "Madrid",
    "Nairobi",
    "Oslo",
    "Paris",
    "Quito",
    "Riga",
    "Seoul",
    "Tunis",
    "Utrecht",
    "Vienna",
    "Warsaw",
    "Zagreb",
];

/// The attributes of the workload (keyword text without the colon).
pub mod attr {
    /// `:person/name`, string, `:db.unique/identity`.
    pub const NAME: &str = "person/name";
    /// `:person/email`, string, `:db.unique/value`.
    pub const EMAIL: &str = "person/email";
    /// `:person/age`, long, `:db/index`.
    pub const AGE: &str = "person/age";
    /// `:person/city`, string.
    pub const CITY: &str = "person/city";
    /// `:person/score`, long.
    pub const SCORE: &str = "person/score";
    /// `:person/friend`, ref, cardinality many.
    pub const FRIEND: &str = "person/friend";
    /// `:person/tag`, string, cardinality many.
    pub const TAG: &str = "person/tag";
}

/// The join query of the peer comparison: the friends' names of the 30-year-olds in
/// Paris (`peer.js` runs the same one, with string attribute names).
pub const JOIN_QUERY: &str = r#"[:find ?n ?fn :where [?e :person/city "Paris"] [?e :person/age 30] [?e :person/friend ?f] [?f :person/name ?fn] [?e :person/name ?n]]"#;

/// The pull pattern of the peer comparison, pulled for the first [`PULL_ENTITIES`]
/// people.
pub const PULL_PATTERN: &str =
    "[:person/name :person/age {:person/friend [:person/name :person/city]}]";

/// How many people the pull comparison pulls (ids `1..=PULL_ENTITIES`).
pub const PULL_ENTITIES: u64 = 1000;

/// The workload's schema (the JS peer declares the same one).
///
/// # Errors
/// None in practice: the schema is fixed and valid.
pub fn schema() -> Result<Schema, BenchError> {
    let s = AttributeSchema::default;
    Ok(Schema::new()
        .with(attr::NAME, s().value_type(ValueType::String).identity())?
        .with(
            attr::EMAIL,
            s().value_type(ValueType::String).unique_value(),
        )?
        .with(attr::AGE, s().value_type(ValueType::Long).indexed())?
        .with(attr::CITY, s().value_type(ValueType::String))?
        .with(attr::SCORE, s().value_type(ValueType::Long))?
        .with(attr::FRIEND, s().value_type(ValueType::Ref).many())?
        .with(attr::TAG, s().value_type(ValueType::String).many())?)
}

/// A new person: one entity map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// The tempid, `p{index}`.
    pub tempid: String,
    /// `:person/name`, unique.
    pub name: String,
    /// `:person/email`, unique.
    pub email: String,
    /// `:person/age`.
    pub age: i64,
    /// `:person/city`.
    pub city: &'static str,
    /// `:person/score`.
    pub score: i64,
    /// `:person/friend`: distinct ids of people from earlier transactions.
    pub friends: Vec<Eid>,
}

impl Person {
    /// The datoms transacting it produces.
    pub fn datoms(&self) -> usize {
        5 + self.friends.len()
    }
}

/// One generated operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new person (an entity map with a tempid).
    New(Person),
    /// `[:db/add e :person/score v]`, replacing the old score.
    SetScore {
        /// The person.
        e: Eid,
        /// The new score (never equal to the old one).
        score: i64,
    },
    /// `[:db/add e :person/tag t]`.
    AddTag {
        /// The person.
        e: Eid,
        /// The tag (unique in the workload).
        tag: String,
    },
}

impl Op {
    /// The datoms transacting it produces (its share of the tx data).
    pub fn datoms(&self) -> usize {
        match self {
            Op::New(p) => p.datoms(),
            Op::SetScore { .. } => 2,
            Op::AddTag { .. } => 1,
        }
    }

    /// The op as tx data.
    pub fn to_tx_op(&self) -> TxOp {
        let kw = Keyword::new;
        match self {
            Op::New(p) => {
                let mut attrs = vec![
                    (kw(attr::NAME), TxValue::from(p.name.as_str())),
                    (kw(attr::EMAIL), TxValue::from(p.email.as_str())),
                    (kw(attr::AGE), TxValue::from(p.age)),
                    (kw(attr::CITY), TxValue::from(p.city)),
                    (kw(attr::SCORE), TxValue::from(p.score)),
                ];
                if !p.friends.is_empty() {
                    let friends = p
                        .friends
                        .iter()
                        .map(|f| TxValue::Value(Value::Ref(*f)))
                        .collect();
                    attrs.push((kw(attr::FRIEND), TxValue::Many(friends)));
                }
                TxOp::Map(EntityMap {
                    id: Some(EntityRef::Tempid(p.tempid.clone())),
                    attrs,
                })
            }
            Op::SetScore { e, score } => {
                TxOp::Add(EntityRef::Id(*e), kw(attr::SCORE), TxValue::from(*score))
            }
            Op::AddTag { e, tag } => TxOp::Add(
                EntityRef::Id(*e),
                kw(attr::TAG),
                TxValue::from(tag.as_str()),
            ),
        }
    }

    /// The op's canonical line, what [`workload_checksum`] hashes.
    fn canonical(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = match self {
            Op::New(p) => {
                let friends: Vec<String> = p.friends.iter().map(u64::to_string).collect();
                writeln!(
                    out,
                    "new\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    p.tempid,
                    p.name,
                    p.email,
                    p.age,
                    p.city,
                    p.score,
                    friends.join(",")
                )
            }
            Op::SetScore { e, score } => writeln!(out, "score\t{e}\t{score}"),
            Op::AddTag { e, tag } => writeln!(out, "tag\t{e}\t{tag}"),
        };
    }
}

/// One generated transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenTx {
    /// Its operations, in order.
    pub ops: Vec<Op>,
}

impl GenTx {
    /// The datoms transacting it produces.
    pub fn datoms(&self) -> usize {
        self.ops.iter().map(Op::datoms).sum()
    }

    /// The transaction as tx data for [`Db::with`].
    pub fn to_tx_ops(&self) -> Vec<TxOp> {
        self.ops.iter().map(Op::to_tx_op).collect()
    }
}

/// The seeded generator. Its state is the PRNG, the number of people so far and a
/// counter for unique scores and tags; base and delta transactions continue one stream.
#[derive(Clone, Debug)]
pub struct Generator {
    rng: SplitMix64,
    people: u64,
    counter: u64,
}

impl Generator {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: SplitMix64::new(seed),
            people: 0,
            counter: 0,
        }
    }

    /// People generated so far (their ids are `1..=people()` once transacted).
    pub fn people(&self) -> u64 {
        self.people
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.below(from.len() as u64) as usize]
    }

    /// The next person; `committed` people (from earlier transactions) may be friends.
    fn person(&mut self, committed: Option<u64>) -> Person {
        let i = self.people;
        self.people += 1;
        let first = self.pick(&FIRST);
        let last = self.pick(&LAST);
        let domain = self.pick(&DOMAINS);
        let age = 18 + self.rng.below(73) as i64;
        let city = self.pick(&CITIES);
        let score = self.rng.below(1_000_000) as i64;
        let mut friends = Vec::new();
        if let Some(committed) = committed.filter(|c| *c > 0) {
            let n = self.rng.below(4).min(committed);
            while (friends.len() as u64) < n {
                let f = 1 + self.rng.below(committed);
                if !friends.contains(&f) {
                    friends.push(f);
                }
            }
        }
        Person {
            tempid: format!("p{i}"),
            name: format!("{first} {last} {i}"),
            email: format!("user{i}@{domain}"),
            age,
            city,
            score,
            friends,
        }
    }

    /// The base workload: transactions of `batch` people each until they produce at
    /// least `datoms` datoms.
    pub fn base(&mut self, datoms: u64, batch: usize) -> Vec<GenTx> {
        let mut txs = Vec::new();
        let mut total = 0u64;
        while total < datoms {
            let committed = self.people;
            let mut tx = GenTx::default();
            for _ in 0..batch.max(1) {
                if total >= datoms {
                    break;
                }
                let p = self.person(Some(committed));
                total += p.datoms() as u64;
                tx.ops.push(Op::New(p));
            }
            txs.push(tx);
        }
        txs
    }

    /// One transaction producing exactly `k` datoms on the db the previous transactions
    /// built (see the module docs for its mix). Needs at least one person already.
    pub fn delta(&mut self, k: usize) -> GenTx {
        let mut tx = GenTx::default();
        let new = k * 2 / 5 / 5;
        let updates = (k * 2 / 5 / 2).min(self.people as usize);
        for _ in 0..new {
            let p = self.person(None);
            tx.ops.push(Op::New(p));
        }
        // People created in this very transaction are not updated or tagged.
        let existing = self.people - new as u64;
        let mut updated = HashSet::new();
        while updated.len() < updates.min(existing as usize) {
            let e = 1 + self.rng.below(existing);
            if updated.insert(e) {
                self.counter += 1;
                tx.ops.push(Op::SetScore {
                    e,
                    score: 1_000_000 + self.counter as i64,
                });
            }
        }
        while tx.datoms() < k {
            let e = 1 + self.rng.below(existing);
            self.counter += 1;
            tx.ops.push(Op::AddTag {
                e,
                tag: format!("tag-{}", self.counter),
            });
        }
        tx
    }
}

/// FNV-1a of the canonical text of `txs`: a `tx` line per transaction, then one line
/// per op (the JS peer writes the same text).
pub fn workload_checksum<'a>(txs: impl IntoIterator<Item = &'a GenTx>) -> String {
    let mut h = Fnv64::default();
    let mut line = String::new();
    for tx in txs {
        h.write(b"tx\n");
        for op in &tx.ops {
            line.clear();
            op.canonical(&mut line);
            h.write(line.as_bytes());
        }
    }
    h.hex()
}

/// FNV-1a of every datom of `db` in EAVT order, one `e\ta\tv\ttx\n` line each (values
/// as the JS peer prints them: numbers and ref ids in decimal, strings as is), and the
/// number of datoms.
///
/// # Errors
/// A load error of a lazily restored db, or a value type the workload never produces.
pub fn db_checksum(db: &Db) -> Result<(String, u64), BenchError> {
    let mut h = Fnv64::default();
    let mut line = String::new();
    let mut n = 0u64;
    for d in db.datoms(IndexKind::Eavt, &[])? {
        let d = d?;
        line.clear();
        let v = match &d.v {
            Value::Long(x) => x.to_string(),
            Value::Ref(e) => e.to_string(),
            Value::String(s) => s.to_string(),
            other => {
                return Err(BenchError::Inconsistent(format!(
                    "the workload has no value like {other:?}"
                )))
            }
        };
        let _ = writeln!(line, "{}\t{}\t{}\t{}", d.e, d.a.as_str(), v, d.tx);
        h.write(line.as_bytes());
        n += 1;
    }
    Ok((h.hex(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let a = Generator::new(7).base(2000, 50);
        let b = Generator::new(7).base(2000, 50);
        assert_eq!(workload_checksum(&a), workload_checksum(&b));
        assert_ne!(
            workload_checksum(&a),
            workload_checksum(&Generator::new(8).base(2000, 50))
        );
    }

    #[test]
    fn a_delta_produces_exactly_k_datoms_of_tx_data() {
        let mut g = Generator::new(3);
        let base = g.base(3000, 100);
        let mut db = Db::new(schema().unwrap());
        for tx in &base {
            db = db.with(&tx.to_tx_ops()).unwrap().db_after;
        }
        for k in [1, 2, 10, 37, 100, 1000] {
            let tx = g.delta(k);
            assert_eq!(tx.datoms(), k);
            let report = db.with(&tx.to_tx_ops()).unwrap();
            assert_eq!(report.tx_data.len(), k, "delta {k}");
            db = report.db_after;
        }
    }

    #[test]
    fn the_base_workload_produces_the_datoms_it_counts() {
        let txs = Generator::new(11).base(5000, 64);
        let mut db = Db::new(schema().unwrap());
        for tx in &txs {
            let report = db.with(&tx.to_tx_ops()).unwrap();
            assert_eq!(report.tx_data.len(), tx.datoms());
            db = report.db_after;
        }
        let (_, n) = db_checksum(&db).unwrap();
        assert_eq!(n, txs.iter().map(|t| t.datoms() as u64).sum::<u64>());
        assert!(n >= 5000);
    }
}
