//! The data of Datascript's benchmark suite (`bench/datascript/bench/bench.cljc`), as EDN
//! text both sides read: `random-man`, the 20,000 shuffled people, the wide and long
//! `:follows` graphs, and (for the recursive-rules row) an advisor graph shaped like
//! Datalevin's math-genealogy data.
//!
//! Datascript draws with `rand-nth`; here a seeded [`SplitMix64`] draws in the same way
//! (each field from the same choices with the same odds), so one seed gives one data
//! set, and the Rust side hands the very same text to the Datascript peer.
//!
//! Entity ids are explicit numbers where Datascript's generators use string tempids
//! naming those numbers (`(str id)`): the same entities, and ids both sides agree on, so
//! answers compare. The add benchmarks keep the string tempids.

use std::fmt::Write;

use crate::rng::SplitMix64;

/// The schema of the suite (Datascript's `datascript.bench.datascript/schema`), plus the
/// genealogy attributes.
pub const SCHEMA: &str = "{:id {:db/unique :db.unique/identity} \
     :follows {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many} \
     :alias {:db/cardinality :db.cardinality/many} \
     :advisor {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}";

const NAMES: [&str; 8] = [
    "Ivan", "Petr", "Sergei", "Oleg", "Yuri", "Dmitry", "Fedor", "Denis",
];
const LAST_NAMES: [&str; 6] = [
    "Ivanov",
    "Petrov",
    "Sidorov",
    "Kovalev",
    "Kuznetsov",
    "Voronoi",
];
const ALIASES: [&str; 11] = [
    "A. C. Q. W.",
    "A. J. Finn",
    "A.A. Fair",
    "Aapeli",
    "Aaron Wolfe",
    "Abigail Van Buren",
    "Jeanne Phillips",
    "Abram Tertz",
    "Abu Nuwas",
    "Acton Bell",
    "Adunis",
];

/// One of Datascript's `random-man`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Man {
    /// The entity id (Datascript: the tempid `(str id)`).
    pub id: u64,
    /// `:name`.
    pub name: &'static str,
    /// `:last-name`.
    pub last_name: &'static str,
    /// `:alias`, as drawn (a cardinality-many attribute: repeats collapse).
    pub aliases: Vec<&'static str>,
    /// `:sex`, `:male` or `:female`.
    pub male: bool,
    /// `:age`, `0..100`.
    pub age: u64,
    /// `:salary`, `0..100000`.
    pub salary: u64,
}

fn pick<'a>(rng: &mut SplitMix64, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len() as u64) as usize]
}

impl Man {
    /// Draws `random-man` number `id`.
    pub fn random(rng: &mut SplitMix64, id: u64) -> Man {
        let name = pick(rng, &NAMES);
        let last_name = pick(rng, &LAST_NAMES);
        let n = rng.below(10);
        let aliases = (0..n).map(|_| pick(rng, &ALIASES)).collect();
        Man {
            id,
            name,
            last_name,
            aliases,
            male: rng.below(2) == 0,
            age: rng.below(100),
            salary: rng.below(100_000),
        }
    }

    /// `:full-name`.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.name, self.last_name)
    }

    fn sex(&self) -> &'static str {
        if self.male {
            ":male"
        } else {
            ":female"
        }
    }

    /// The attribute/value pairs (aliases one per value), values as EDN.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (":name", quote(self.name)),
            (":last-name", quote(self.last_name)),
            (":full-name", quote(&self.full_name())),
        ];
        let mut seen = Vec::new();
        for a in &self.aliases {
            // A cardinality-many attribute holds each value once.
            if !seen.contains(a) {
                seen.push(*a);
                out.push((":alias", quote(a)));
            }
        }
        out.push((":sex", self.sex().to_string()));
        out.push((":age", self.age.to_string()));
        out.push((":salary", self.salary.to_string()));
        out
    }

    /// The entity map, `:db/id` written as `id` (a number, or a quoted tempid).
    pub fn map_edn(&self, id: &str, extra: &str) -> String {
        let mut s = format!("{{:db/id {id}");
        for (a, v) in self.fields() {
            if a != ":alias" {
                let _ = write!(s, " {a} {v}");
            }
        }
        let aliases: Vec<String> = self.aliases.iter().map(|a| quote(a)).collect();
        let _ = write!(s, " :alias [{}]{extra}}}", aliases.join(" "));
        s
    }
}

/// A string as an EDN (and JSON) literal.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Datascript's `*people20k`: `n` random men, ids `1..=n`, shuffled.
pub fn people(seed: u64, n: usize) -> Vec<Man> {
    let mut rng = SplitMix64::new(seed);
    let mut out: Vec<Man> = (1..=n as u64).map(|id| Man::random(&mut rng, id)).collect();
    shuffle(&mut rng, &mut out);
    out
}

/// Fisher–Yates with `rng`.
pub fn shuffle<T>(rng: &mut SplitMix64, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// One transaction of entity maps with numeric ids.
pub fn people_tx(people: &[Man]) -> String {
    let maps: Vec<String> = people
        .iter()
        .map(|p| p.map_edn(&p.id.to_string(), ""))
        .collect();
    format!("[{}]", maps.join(" "))
}

/// Datascript's `wide-db`: a tree `depth` levels deep, `width` children per node, from
/// entity `id`; inner nodes carry `:id` and `:follows`.
pub fn wide_tx(seed: u64, depth: u32, width: u64) -> String {
    let mut rng = SplitMix64::new(seed);
    let mut maps = Vec::new();
    wide(&mut rng, 1, depth, width, &mut maps);
    format!("[{}]", maps.join(" "))
}

fn wide(rng: &mut SplitMix64, id: u64, depth: u32, width: u64, out: &mut Vec<String>) {
    let man = Man::random(rng, id);
    if depth == 0 {
        out.push(man.map_edn(&id.to_string(), ""));
        return;
    }
    let children: Vec<u64> = (0..width).map(|k| id * width + k).collect();
    let follows: Vec<String> = children.iter().map(u64::to_string).collect();
    out.push(man.map_edn(
        &id.to_string(),
        &format!(" :id {id} :follows [{}]", follows.join(" ")),
    ));
    for c in children {
        wide(rng, c, depth - 1, width, out);
    }
}

/// Datascript's `long-db`: `width` chains of `depth` `:follows` links.
pub fn long_tx(depth: u64, width: u64) -> String {
    let mut maps = Vec::new();
    for x in 0..width {
        for y in 0..depth {
            let from = x * (depth + 1) + y;
            let to = from + 1;
            maps.push(format!(
                "{{:db/id {} :name \"Ivan\" :follows {}}}",
                from + 1,
                to + 1
            ));
            maps.push(format!("{{:db/id {} :name \"Ivan\"}}", to + 1));
        }
    }
    format!("[{}]", maps.join(" "))
}

/// An advisor graph shaped like Datalevin's math-genealogy data (the Mathematics
/// Genealogy Project: about 256,000 people, most with one advisor, some with two, a few
/// with none, advisors drawn from earlier generations): `n` people `:name`d
/// `"p{id}"`, person `id` advised by one or two of the people before it, drawn mostly
/// from the recent past so lineages run deep.
pub fn genealogy_tx(seed: u64, n: u64) -> String {
    let mut rng = SplitMix64::new(seed);
    let mut maps = Vec::with_capacity(n as usize);
    for id in 1..=n {
        let mut advisors = Vec::new();
        if id > 20 {
            let count = if rng.below(10) == 0 { 2 } else { 1 };
            for _ in 0..count {
                // Mostly a recent generation (within the last 2,000), sometimes anyone.
                let back = if rng.below(4) == 0 {
                    1 + rng.below(id - 1)
                } else {
                    1 + rng.below((id - 1).min(2_000))
                };
                advisors.push((id - back).to_string());
            }
        }
        maps.push(format!(
            "{{:db/id {id} :name \"p{id}\" :advisor [{}]}}",
            advisors.join(" ")
        ));
    }
    format!("[{}]", maps.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_are_seeded_shuffled_and_complete() {
        let a = people(7, 500);
        assert_eq!(a, people(7, 500));
        let mut ids: Vec<u64> = a.iter().map(|m| m.id).collect();
        assert_ne!(ids, (1..=500).collect::<Vec<_>>(), "shuffled");
        ids.sort_unstable();
        assert_eq!(ids, (1..=500).collect::<Vec<_>>());
        assert!(a.iter().any(|m| m.name == "Ivan") && a.iter().any(|m| !m.male));
    }

    #[test]
    fn wide_and_long_graphs_have_datascripts_shape() {
        let db = |tx: &str| {
            datoms_core::Db::new(datoms_core::edn::parse_schema(SCHEMA).unwrap())
                .with_edn(tx)
                .unwrap()
                .db_after
        };
        // depth 3, width 2: 15 people, 14 :follows links.
        let wide = db(&wide_tx(1, 3, 2));
        let count = |db: &datoms_core::Db, q: &str| {
            datoms_core::q(q, &[datoms_core::Input::Db(db)])
                .unwrap()
                .len()
        };
        assert_eq!(count(&wide, "[:find ?e :where [?e :name]]"), 15);
        assert_eq!(count(&wide, "[:find ?e ?f :where [?e :follows ?f]]"), 14);
        let long = db(&long_tx(3, 5));
        assert_eq!(count(&long, "[:find ?e :where [?e :name]]"), 20);
        assert_eq!(count(&long, "[:find ?e ?f :where [?e :follows ?f]]"), 15);
    }
}
