//! The demo's data set: people with names (unique identity), emails (unique value), ages
//! (indexed), join dates, friends (card-many refs) and employers (refs to companies),
//! generated deterministically from a seed. The same seed gives the same transactions,
//! so the same datoms, the same trees and the same addresses on every run.

use datoms::tx::{tempid, EntityRef, TxBuilder, TxOp, TxReport};
use datoms::{AttributeSchema, Eid, Keyword, Schema, Value, ValueType};

/// SplitMix64: tiny, fast and good enough to make varied, reproducible data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0). The modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A random element (`None` for an empty slice).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Dennis",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "Ivan",
    "John",
    "Ken",
    "Leslie",
    "Margaret",
    "Niklaus",
    "Ole",
    "Peter",
    "Radia",
    "Shafi",
    "Tony",
    "Ursula",
    "Vint",
    "Whitfield",
    "Xiaoyun",
    "Yukihiro",
    "Zhores",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Liskov",
    "Shannon",
    "Ritchie",
    "Dijkstra",
    "Allen",
    "Hopper",
    "Lamarr",
    "Sutherland",
    "McCarthy",
    "Thompson",
    "Lamport",
    "Hamilton",
    "Wirth",
    "Dahl",
    "Naur",
    "Perlman",
    "Goldwasser",
    "Hoare",
    "Franklin",
    "Cerf",
    "Diffie",
    "Wang",
    "Matsumoto",
];
const SYLLABLES: &[&str] = &[
    "ar", "bo", "ca", "den", "el", "fi", "gor", "ha", "in", "jo", "ka", "lum", "mo", "nex", "or",
    "pla", "qui", "ro", "sol", "ta", "um", "vo", "wex", "zen",
];
const SUFFIXES: &[&str] = &[
    "Labs",
    "Systems",
    "Works",
    "Analytics",
    "Foods",
    "Logistics",
];
const INDUSTRIES: &[&str] = &[
    "industry/software",
    "industry/retail",
    "industry/energy",
    "industry/health",
    "industry/finance",
    "industry/transport",
];

/// Person attributes: about 5 datoms each plus their friend edges.
const PERSON_DATOMS: usize = 5;
/// 2015-01-01 and the ten years after it, in milliseconds: the join dates.
const JOIN_FROM_MS: u64 = 1_420_070_400_000;
const JOIN_SPAN_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// The demo's schema.
///
/// # Errors
/// Never for this fixed schema; typed only because schema building is checked.
pub fn schema() -> Result<Schema, datoms::Error> {
    let attr = AttributeSchema::default;
    Schema::new()
        .with(
            ":person/name",
            attr().value_type(ValueType::String).identity(),
        )?
        .with(
            ":person/email",
            attr().value_type(ValueType::String).unique_value(),
        )?
        .with(":person/age", attr().value_type(ValueType::Long).indexed())?
        .with(":person/joined", attr().value_type(ValueType::Instant))?
        .with(":person/friend", attr().value_type(ValueType::Ref).many())?
        .with(":person/employer", attr().value_type(ValueType::Ref))?
        .with(
            ":company/name",
            attr().value_type(ValueType::String).identity(),
        )?
        .with(
            ":company/industry",
            attr().value_type(ValueType::Keyword).indexed(),
        )?
        .with(":company/founded", attr().value_type(ValueType::Long))
}

/// The generator's view of the database: who exists, so new facts can point at them.
#[derive(Debug)]
pub struct World {
    rng: Rng,
    /// People not retracted, by entity id.
    people: Vec<Eid>,
    companies: Vec<Eid>,
    /// Makes every name unique, including those of retracted people.
    serial: u64,
    /// Tempids of the pending transaction and where their entity ids go.
    pending: Vec<(String, Kind)>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Person,
    Company,
}

impl World {
    /// An empty world drawing from `seed`.
    pub fn new(seed: u64) -> World {
        World {
            rng: Rng::new(seed),
            people: Vec::new(),
            companies: Vec::new(),
            serial: 0,
            pending: Vec::new(),
        }
    }

    /// Living people.
    pub fn people(&self) -> usize {
        self.people.len()
    }

    /// Companies.
    pub fn companies(&self) -> usize {
        self.companies.len()
    }

    /// The first transaction: `n` companies (3 datoms each).
    pub fn companies_tx(&mut self, n: usize) -> Vec<TxOp> {
        let mut tx = TxBuilder::new();
        for i in 0..n {
            let name = self.company_name(i);
            let industry = self
                .rng
                .pick(INDUSTRIES)
                .copied()
                .unwrap_or("industry/other");
            let founded = 1950 + self.rng.below(74) as i64;
            let id = format!("c{i}");
            tx = tx.entity(id.as_str(), |m| {
                m.set(":company/name", name)
                    .set(":company/industry", Keyword::new(industry))
                    .set(":company/founded", founded)
            });
            self.pending.push((id, Kind::Company));
        }
        tx.build()
    }

    /// New people, about `target` datoms of them.
    pub fn people_tx(&mut self, target: usize) -> Vec<TxOp> {
        let mut tx = TxBuilder::new();
        let mut datoms = 0;
        while datoms < target {
            let (op, n) = self.person();
            tx = tx.op(op);
            datoms += n;
        }
        tx.build()
    }

    /// One round of small changes, as live traffic looks: a few new people, some
    /// birthdays, someone leaving (retractEntity, which also drops the friend edges that
    /// point at them), and new friendships.
    pub fn round_tx(&mut self) -> Vec<TxOp> {
        let mut tx = TxBuilder::new();
        // Leaves first in the draw, so nothing else this round touches them.
        let leaving = if self.people.len() > 10 {
            let i = self.rng.below(self.people.len() as u64) as usize;
            Some(self.people.swap_remove(i))
        } else {
            None
        };
        for _ in 0..3 {
            tx = tx.op(self.person().0);
        }
        for _ in 0..10 {
            if let Some(&e) = self.rng.pick(&self.people) {
                let age = 18 + self.rng.below(62) as i64;
                tx = tx.add(e, ":person/age", age);
            }
        }
        for _ in 0..8 {
            let a = self.rng.pick(&self.people).copied();
            let b = self.rng.pick(&self.people).copied();
            if let (Some(a), Some(b)) = (a, b) {
                if a != b {
                    tx = tx.add(a, ":person/friend", EntityRef::Id(b));
                }
            }
        }
        if let Some(e) = leaving {
            tx = tx.retract_entity(e);
        }
        tx.build()
    }

    /// Records the entity ids the transaction gave the tempids it used.
    pub fn record(&mut self, report: &TxReport) {
        for (tempid, kind) in std::mem::take(&mut self.pending) {
            if let Some(e) = report.tempid(&tempid) {
                match kind {
                    Kind::Person => self.people.push(e),
                    Kind::Company => self.companies.push(e),
                }
            }
        }
    }

    /// Forgets the tempids of a transaction that was not run.
    pub fn discard_pending(&mut self) {
        self.pending.clear();
    }

    /// A new person map and the number of datoms it makes.
    fn person(&mut self) -> (TxOp, usize) {
        self.serial += 1;
        let n = self.serial;
        let first = self.rng.pick(FIRST).copied().unwrap_or("Pat");
        let last = self.rng.pick(LAST).copied().unwrap_or("Doe");
        let name = format!("{first} {last} {n}");
        let email = format!(
            "{}.{}.{n}@example.org",
            first.to_lowercase(),
            last.to_lowercase()
        );
        let age = 18 + self.rng.below(62) as i64;
        let joined = (JOIN_FROM_MS + self.rng.below(JOIN_SPAN_MS)) as i64;
        let friends: Vec<EntityRef> = (0..self.rng.below(6))
            .filter_map(|_| self.rng.pick(&self.people).copied())
            .map(EntityRef::Id)
            .collect();
        let employer = self.rng.pick(&self.companies).copied();
        let id = format!("p{n}");
        let datoms = PERSON_DATOMS + friends.len() - usize::from(employer.is_none());
        let mut map = datoms::tx::EntityMap::with_id(tempid(id.as_str()))
            .set(":person/name", name)
            .set(":person/email", email)
            .set(":person/age", age)
            .set(":person/joined", Value::Instant(joined));
        if !friends.is_empty() {
            map = map.set(":person/friend", friends);
        }
        if let Some(c) = employer {
            map = map.set(":person/employer", EntityRef::Id(c));
        }
        self.pending.push((id, Kind::Person));
        (TxOp::Map(map), datoms)
    }

    fn company_name(&mut self, i: usize) -> String {
        let mut name = String::new();
        for _ in 0..2 + self.rng.below(2) {
            name.push_str(self.rng.pick(SYLLABLES).copied().unwrap_or("ox"));
        }
        let mut chars = name.chars();
        let capitalized: String = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .into_iter()
            .chain(chars)
            .collect();
        let suffix = self.rng.pick(SUFFIXES).copied().unwrap_or("Inc");
        // The index keeps names unique however the syllables fall.
        format!("{capitalized} {suffix} {i}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut w1 = World::new(1);
        let mut w2 = World::new(1);
        assert_eq!(w1.companies_tx(3), w2.companies_tx(3));
        assert_eq!(w1.people_tx(50), w2.people_tx(50));
    }

    #[test]
    fn generated_transactions_run() {
        let mut world = World::new(42);
        let db = datoms::Db::new(schema().unwrap());
        let ops = world.companies_tx(4);
        let report = db.with(&ops).unwrap();
        world.record(&report);
        let ops = world.people_tx(200);
        let report = report.db_after.with(&ops).unwrap();
        world.record(&report);
        assert!(world.people() > 20);
        let ops = world.round_tx();
        let report = report.db_after.with(&ops).unwrap();
        world.record(&report);
        assert!(
            report.tx_data.iter().any(|d| !d.added),
            "the round retracts something"
        );
    }
}
