//! Random, reproducible transaction histories over a small schema, for the property
//! cases here and for benchmarks.
//!
//! The schema has one attribute of each kind the indexes treat differently:
//! `:person/name` (a `:db.unique/identity` string: upserts and lookup refs),
//! `:person/age` (an indexed long: in AVET), `:person/friend` (a cardinality-many ref:
//! in AVET, and retracted by `:db/retractEntity` of its target), `:person/note` (a
//! plain string: EAVT and AEVT only) and `:person/name+age` (a composite tuple of the
//! name and the age, kept up to date by every transaction: a vector value in AVET, so
//! every backend stores and restores composite values).
//!
//! A [`Generator`] keeps a model of who exists and who is whose friend, so every
//! transaction it makes is valid against the database that the transactions before it
//! produced: lookup refs only name people that exist, retractions only name facts that
//! hold. The same seed gives the same history.
//!
//! ```
//! use conformance::history::{self, Generator, Params};
//!
//! let mut generator = Generator::new(7, Params::default());
//! let mut db = history::empty_db();
//! db = generator.initial_tx().apply(&db)?;
//! for _ in 0..10 {
//!     db = generator.next_tx().apply(&db)?;
//! }
//! assert!(db.len() > 0);
//! # Ok::<(), datoms_core::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use datoms_core::tx::{lookup, EntityMap, TxOp, TxValue};
use datoms_core::{AttributeSchema, Db, Error, Schema, TreeConfig, ValueType};

/// `:person/name`: a `:db.unique/identity` string.
pub const NAME: &str = ":person/name";
/// `:person/age`: an indexed long.
pub const AGE: &str = ":person/age";
/// `:person/friend`: a cardinality-many ref.
pub const FRIEND: &str = ":person/friend";
/// `:person/note`: a plain string, not in AVET.
pub const NOTE: &str = ":person/note";
/// `:person/name+age`: the composite tuple `[name age]`.
pub const NAME_AGE: &str = ":person/name+age";

/// The schema the histories are written against.
///
/// # Errors
/// Never for this fixed schema; the `Result` is `Schema::with`'s.
pub fn schema() -> Result<Schema, Error> {
    Schema::new()
        .with(
            NAME,
            AttributeSchema::default()
                .value_type(ValueType::String)
                .identity(),
        )?
        .with(
            AGE,
            AttributeSchema::default()
                .value_type(ValueType::Long)
                .indexed(),
        )?
        .with(
            FRIEND,
            AttributeSchema::default().value_type(ValueType::Ref).many(),
        )?
        .with(
            NOTE,
            AttributeSchema::default().value_type(ValueType::String),
        )?
        .with(NAME_AGE, AttributeSchema::default().tuple_of(&[NAME, AGE]))
}

/// Small nodes (8 datoms per leaf, 4 children per branch), so that histories of a few
/// hundred datoms already give trees four or five levels deep: every restore path (shared
/// subtrees, level-by-level walks) shows up on little data.
pub fn tree_config() -> TreeConfig {
    TreeConfig {
        leaf_target: 8,
        branch_target: 4,
    }
}

/// An empty database with [`schema`] and [`tree_config`].
pub fn empty_db() -> Db {
    // The fixed schema is valid; an empty schema is the fallback that can never be
    // reached, kept so that this function cannot panic.
    Db::with_config(schema().unwrap_or_default(), tree_config())
}

/// A small, fast, reproducible random number generator (SplitMix64). Not for anything
/// but test data.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One of `items`, or `None` if it is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let i = usize::try_from(self.below(items.len() as u64)).ok()?;
        items.get(i)
    }
}

/// The shape of a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// People created by [`Generator::initial_tx`].
    pub initial_people: u32,
    /// Names are drawn from `p0 … p{name_space - 1}`: the smaller, the more upserts and
    /// retractions hit existing people.
    pub name_space: u32,
    /// The most operations in one transaction of [`Generator::next_tx`].
    pub max_ops_per_tx: u32,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            initial_people: 40,
            name_space: 80,
            max_ops_per_tx: 6,
        }
    }
}

/// One operation of a generated transaction, in terms of people's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `{:person/name name :person/age age}`: creates the person or upserts.
    Upsert {
        /// The person.
        name: String,
        /// The new age.
        age: i64,
    },
    /// `{:person/name name :person/age age :person/friend [{:person/name f :person/age a} …]}`:
    /// upserts the person and each friend through nested entity maps.
    UpsertWithFriends {
        /// The person.
        name: String,
        /// The person's new age.
        age: i64,
        /// Each friend's name and new age.
        friends: Vec<(String, i64)>,
    },
    /// `[:db/add [:person/name name] :person/note note]` (the person exists).
    SetNote {
        /// The person.
        name: String,
        /// The note.
        note: String,
    },
    /// `[:db/add [:person/name from] :person/friend [:person/name to]]` (both exist).
    Befriend {
        /// Whose friend list grows.
        from: String,
        /// The new friend.
        to: String,
    },
    /// `[:db/retract [:person/name from] :person/friend [:person/name to]]` (the friendship
    /// holds).
    Unfriend {
        /// Whose friend list shrinks.
        from: String,
        /// The friend dropped.
        to: String,
    },
    /// `[:db/retract [:person/name name] :person/age]` (the person exists).
    RetractAge {
        /// The person.
        name: String,
    },
    /// `[:db/retractEntity [:person/name name]]` (the person exists): their datoms and
    /// every friendship pointing at them go.
    RetractEntity {
        /// The person.
        name: String,
    },
}

impl Op {
    /// The operation as tx data.
    pub fn tx_op(&self) -> TxOp {
        let who = |n: &str| lookup(NAME, n);
        match self {
            Op::Upsert { name, age } => {
                TxOp::Map(EntityMap::new().set(NAME, name.as_str()).set(AGE, *age))
            }
            Op::UpsertWithFriends { name, age, friends } => {
                let nested: Vec<TxValue> = friends
                    .iter()
                    .map(|(f, a)| {
                        TxValue::Nested(EntityMap::new().set(NAME, f.as_str()).set(AGE, *a))
                    })
                    .collect();
                TxOp::Map(
                    EntityMap::new()
                        .set(NAME, name.as_str())
                        .set(AGE, *age)
                        .set(FRIEND, TxValue::Many(nested)),
                )
            }
            Op::SetNote { name, note } => TxOp::add(who(name), NOTE, note.as_str()),
            Op::Befriend { from, to } => TxOp::add(who(from), FRIEND, who(to)),
            Op::Unfriend { from, to } => TxOp::retract(who(from), FRIEND, who(to)),
            Op::RetractAge { name } => TxOp::retract_attr(who(name), AGE),
            Op::RetractEntity { name } => TxOp::retract_entity(who(name)),
        }
    }

    /// The operation as EDN tx data (for failure messages and for `Db::with_edn`).
    pub fn edn(&self) -> String {
        let who = |n: &str| format!("[{NAME} {n:?}]");
        match self {
            Op::Upsert { name, age } => format!("{{{NAME} {name:?} {AGE} {age}}}"),
            Op::UpsertWithFriends { name, age, friends } => {
                let mut nested = String::new();
                for (f, a) in friends {
                    let _ = write!(nested, "{{{NAME} {f:?} {AGE} {a}}}");
                }
                format!("{{{NAME} {name:?} {AGE} {age} {FRIEND} [{nested}]}}")
            }
            Op::SetNote { name, note } => format!("[:db/add {} {NOTE} {note:?}]", who(name)),
            Op::Befriend { from, to } => {
                format!("[:db/add {} {FRIEND} {}]", who(from), who(to))
            }
            Op::Unfriend { from, to } => {
                format!("[:db/retract {} {FRIEND} {}]", who(from), who(to))
            }
            Op::RetractAge { name } => format!("[:db/retract {} {AGE}]", who(name)),
            Op::RetractEntity { name } => format!("[:db/retractEntity {}]", who(name)),
        }
    }
}

/// One generated transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tx {
    /// Its operations, in order.
    pub ops: Vec<Op>,
}

impl Tx {
    /// The transaction as tx data for `Db::with`.
    pub fn tx_ops(&self) -> Vec<TxOp> {
        self.ops.iter().map(Op::tx_op).collect()
    }

    /// The transaction as EDN text for `Db::with_edn`.
    pub fn edn(&self) -> String {
        let ops: Vec<String> = self.ops.iter().map(Op::edn).collect();
        format!("[{}]", ops.join(" "))
    }

    /// Runs the transaction against `db`.
    ///
    /// # Errors
    /// The transaction's error. A transaction from a [`Generator`] applied in order to
    /// the db its predecessors produced never fails.
    pub fn apply(&self, db: &Db) -> Result<Db, Error> {
        Ok(db.with(&self.tx_ops())?.db_after)
    }
}

/// What the generator believes the database holds.
#[derive(Clone, Debug, Default)]
struct Person {
    friends: BTreeSet<String>,
    has_age: bool,
}

/// Makes transactions, each valid after the ones before it. See the module docs.
#[derive(Clone, Debug)]
pub struct Generator {
    rng: Rng,
    params: Params,
    people: BTreeMap<String, Person>,
}

impl Generator {
    /// A generator for the history of `seed`.
    pub fn new(seed: u64, params: Params) -> Generator {
        Generator {
            rng: Rng::new(seed),
            params,
            people: BTreeMap::new(),
        }
    }

    /// The generator's random numbers (to make other choices from the same seed).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// How many people exist now.
    pub fn people(&self) -> usize {
        self.people.len()
    }

    /// A bulk first transaction: `initial_people` people with ages and notes, and a few
    /// friendships among them.
    pub fn initial_tx(&mut self) -> Tx {
        let mut tx = Tx::default();
        for i in 0..self.params.initial_people {
            let name = format!("p{i}");
            let age = self.age();
            self.push(
                &mut tx,
                Op::Upsert {
                    name: name.clone(),
                    age,
                },
            );
            let note = self.note();
            self.push(&mut tx, Op::SetNote { name, note });
        }
        for i in 0..self.params.initial_people {
            for _ in 0..self.rng.below(3) {
                let j = self.rng.below(u64::from(self.params.initial_people));
                if j != u64::from(i) {
                    let (from, to) = (format!("p{i}"), format!("p{j}"));
                    if !self.is_friend(&from, &to) {
                        self.push(&mut tx, Op::Befriend { from, to });
                    }
                }
            }
        }
        tx
    }

    /// A transaction of 1 to `max_ops_per_tx` random operations.
    pub fn next_tx(&mut self) -> Tx {
        let mut tx = Tx::default();
        let n = self
            .rng
            .between(1, u64::from(self.params.max_ops_per_tx.max(1)));
        for _ in 0..n {
            let op = self.random_op();
            self.push(&mut tx, op);
        }
        tx
    }

    fn random_op(&mut self) -> Op {
        let existing: Vec<String> = self.people.keys().cloned().collect();
        let roll = self.rng.below(100);
        let some_person = |g: &mut Generator| g.rng.pick(&existing).cloned();
        let picked = match roll {
            0..=29 => None,
            30..=39 => {
                let name = self.any_name();
                let age = self.age();
                let mut friends = Vec::new();
                for _ in 0..self.rng.between(1, 3) {
                    let f = self.any_name();
                    if f != name && !friends.iter().any(|(g, _)| *g == f) {
                        let a = self.age();
                        friends.push((f, a));
                    }
                }
                Some(Op::UpsertWithFriends { name, age, friends })
            }
            40..=54 => some_person(self).map(|name| Op::SetNote {
                name,
                note: self.note(),
            }),
            55..=74 => {
                let from = some_person(self);
                let to = some_person(self);
                match (from, to) {
                    (Some(from), Some(to)) if from != to && !self.is_friend(&from, &to) => {
                        Some(Op::Befriend { from, to })
                    }
                    _ => None,
                }
            }
            75..=84 => {
                let edges: Vec<(String, String)> = self
                    .people
                    .iter()
                    .flat_map(|(from, p)| p.friends.iter().map(|to| (from.clone(), to.clone())))
                    .collect();
                self.rng
                    .pick(&edges)
                    .cloned()
                    .map(|(from, to)| Op::Unfriend { from, to })
            }
            85..=89 => {
                let aged: Vec<String> = self
                    .people
                    .iter()
                    .filter(|(_, p)| p.has_age)
                    .map(|(n, _)| n.clone())
                    .collect();
                self.rng
                    .pick(&aged)
                    .cloned()
                    .map(|name| Op::RetractAge { name })
            }
            _ => some_person(self).map(|name| Op::RetractEntity { name }),
        };
        picked.unwrap_or_else(|| Op::Upsert {
            name: self.any_name(),
            age: self.age(),
        })
    }

    fn push(&mut self, tx: &mut Tx, op: Op) {
        self.model(&op);
        tx.ops.push(op);
    }

    /// Updates the model as the database will be after `op`.
    fn model(&mut self, op: &Op) {
        match op {
            Op::Upsert { name, .. } => self.people.entry(name.clone()).or_default().has_age = true,
            Op::UpsertWithFriends { name, friends, .. } => {
                for (f, _) in friends {
                    self.people.entry(f.clone()).or_default().has_age = true;
                }
                let p = self.people.entry(name.clone()).or_default();
                p.has_age = true;
                p.friends.extend(friends.iter().map(|(f, _)| f.clone()));
            }
            Op::SetNote { .. } => {}
            Op::Befriend { from, to } => {
                if let Some(p) = self.people.get_mut(from) {
                    p.friends.insert(to.clone());
                }
            }
            Op::Unfriend { from, to } => {
                if let Some(p) = self.people.get_mut(from) {
                    p.friends.remove(to);
                }
            }
            Op::RetractAge { name } => {
                if let Some(p) = self.people.get_mut(name) {
                    p.has_age = false;
                }
            }
            Op::RetractEntity { name } => {
                self.people.remove(name);
                for p in self.people.values_mut() {
                    p.friends.remove(name);
                }
            }
        }
    }

    fn is_friend(&self, from: &str, to: &str) -> bool {
        self.people
            .get(from)
            .is_some_and(|p| p.friends.contains(to))
    }

    fn any_name(&mut self) -> String {
        format!(
            "p{}",
            self.rng.below(u64::from(self.params.name_space.max(1)))
        )
    }

    fn age(&mut self) -> i64 {
        // Ages repeat often, so AVET holds many entities per value.
        i64::try_from(self.rng.below(100)).unwrap_or_default()
    }

    fn note(&mut self) -> String {
        format!("note {:x}", self.rng.next_u64() % 0xFFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_histories_transact_and_their_edn_means_the_same() {
        for seed in 0..40 {
            let mut generator = Generator::new(seed, Params::default());
            let mut db = empty_db();
            let mut via_edn = empty_db();
            for step in 0..25 {
                let tx = if step == 0 {
                    generator.initial_tx()
                } else {
                    generator.next_tx()
                };
                db = tx
                    .apply(&db)
                    .unwrap_or_else(|e| panic!("seed {seed}, step {step}: {e}\n{}", tx.edn()));
                via_edn = via_edn
                    .with_edn(&tx.edn())
                    .unwrap_or_else(|e| panic!("seed {seed}, step {step}: {e}\n{}", tx.edn()))
                    .db_after;
            }
            assert_eq!(db.root_addresses(), via_edn.root_addresses(), "seed {seed}");
            assert!(db.len() > 100, "seed {seed}: only {} datoms", db.len());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_history() {
        let run = |seed| {
            let mut g = Generator::new(seed, Params::default());
            let mut txs = vec![g.initial_tx()];
            txs.extend((0..10).map(|_| g.next_tx()));
            txs
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
