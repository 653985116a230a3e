//! The seeded generator: one fixed schema, random transactions over it, then queries
//! and pulls on the final db. Every case is EDN text, the same text for both sides.
//!
//! The pools are small on purpose (a few names, emails, ages, entity ids) so that
//! upserts, unique conflicts, retractions of present datoms, lookup refs that find
//! something and references to existing entities are common.

use serde::Serialize;

use super::canonical::Shape;
use crate::rng::SplitMix64;

/// The schema every case uses: unique identity and value, an indexed attribute,
/// cardinality-many values and refs, a component ref (and components under it), a plain
/// ref and keyword values.
pub const SCHEMA: &str = "{:person/name {:db/unique :db.unique/identity}
 :person/email {:db/unique :db.unique/value}
 :person/age {:db/index true}
 :person/nick {}
 :person/tag {:db/cardinality :db.cardinality/many}
 :person/mood {:db/cardinality :db.cardinality/many}
 :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
 :person/boss {:db/valueType :db.type/ref}
 :person/pet {:db/valueType :db.type/ref :db/isComponent true}
 :pet/name {}
 :pet/species {:db/index true}
 :pet/toy {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
 :toy/name {}
 :person/data {}
 :person/path {:db/index true}
 :person/nick+age {:db/tupleAttrs [:person/nick :person/age]}}";

const NAMES: [&str; 6] = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay"];
const NICKS: [&str; 4] = ["a", "bb", "Zed", "cat"];
const TAGS: [&str; 4] = ["red", "green", "blue", "x"];
const MOODS: [&str; 8] = [
    ":zz", ":t/a", ":t/b", ":a/z", ":calm", ":a.b/c", ":ab/a", ":t.u/b",
];
const SPECIES: [&str; 3] = [":zoo/yak", ":zoo/cat", ":dog"];
const TOYS: [&str; 3] = ["bone", "ball", "rope"];
/// Any value (#26.1): collections, symbols and scalars under one untyped attribute.
const DATA: [&str; 9] = [
    "[1 2]",
    "[3]",
    "[1 nil]",
    "{:a 1}",
    "{:a [1 #{2}]}",
    "#{1 2}",
    "sym",
    "my.ns/s",
    "\"s\"",
];
/// Vectors only, under an indexed attribute: compared with `>` and `min`/`max`
/// (Datascript orders two maps or two sets by their hash, so those are not compared).
const PATHS: [&str; 6] = ["[1 2]", "[3]", "[1 3]", "[9]", "[1 nil]", "[]"];

/// A query and its inputs after `$` (EDN texts).
#[derive(Clone, Debug, Serialize)]
pub struct QueryCheck {
    /// The query.
    pub query: String,
    /// Inputs after the db, in `:in` order (rules, scalars).
    pub inputs: Vec<String>,
    /// How the answer's top level compares.
    #[serde(skip)]
    pub shape: Shape,
}

/// A pull of one entity.
#[derive(Clone, Debug, Serialize)]
pub struct PullCheck {
    /// The pattern.
    pub pattern: String,
    /// The entity: an id or a lookup ref.
    pub entity: String,
}

/// One case: a schema, transactions applied in turn, then checks on the final db.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// The seed that generated it ([`generate`] with it gives it again).
    #[serde(skip)]
    pub seed: u64,
    /// The schema (EDN).
    pub schema: String,
    /// The transactions (EDN tx data each).
    pub txs: Vec<String>,
    /// Queries on the final db.
    pub queries: Vec<QueryCheck>,
    /// Pulls on the final db.
    pub pulls: Vec<PullCheck>,
}

struct Gen {
    rng: SplitMix64,
    /// A rough count of the entities made so far: entity ids are drawn up to it (and a
    /// little above, so some name nothing).
    entities: u64,
    /// Tempids used so far in the current transaction.
    tempids: Vec<String>,
}

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.rng.below(n as u64)).unwrap_or(0)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn eid(&mut self) -> u64 {
        1 + self.rng.below(self.entities + 2)
    }

    fn new_tempid(&mut self) -> String {
        let n = self.tempids.len() + 1;
        let t = if self.chance(50) {
            format!("-{n}")
        } else {
            format!("\"t{n}\"")
        };
        self.tempids.push(t.clone());
        t
    }

    fn string(&mut self, from: &[&str]) -> String {
        format!("{:?}", self.pick(from))
    }

    fn lookup(&mut self) -> String {
        if self.chance(70) {
            format!("[:person/name {}]", self.string(&NAMES))
        } else {
            format!("[:person/email \"{}@x.org\"]", self.pick(&NICKS))
        }
    }

    /// An entity reference: an id, a lookup ref or a tempid of this transaction.
    fn entity(&mut self) -> String {
        match self.below(10) {
            0..=3 => self.eid().to_string(),
            4..=6 => self.lookup(),
            _ if !self.tempids.is_empty() => {
                let i = self.below(self.tempids.len());
                self.tempids[i].clone()
            }
            _ => self.new_tempid(),
        }
    }

    fn ref_value(&mut self) -> String {
        if self.chance(20) {
            self.new_tempid()
        } else {
            self.entity()
        }
    }

    fn value(&mut self, attr: &str) -> String {
        match attr {
            ":person/name" => self.string(&NAMES),
            ":person/email" => format!("\"{}@x.org\"", self.pick(&NICKS)),
            ":person/age" => (18 + self.rng.below(6)).to_string(),
            ":person/nick" => self.string(&NICKS),
            ":person/tag" => self.string(&TAGS),
            ":pet/species" => self.pick(&SPECIES).to_owned(),
            ":person/mood" => self.pick(&MOODS).to_owned(),
            ":pet/name" => self.string(&NAMES),
            ":toy/name" => self.string(&TOYS),
            ":person/data" => self.pick(&DATA).to_owned(),
            ":person/path" => self.pick(&PATHS).to_owned(),
            _ => self.ref_value(),
        }
    }

    fn toy(&mut self) -> String {
        format!("{{:toy/name {}}}", self.string(&TOYS))
    }

    fn pet(&mut self) -> String {
        let mut m = format!(
            "{{:pet/name {} :pet/species {}",
            self.string(&NAMES),
            self.pick(&SPECIES)
        );
        match self.below(3) {
            0 => {}
            1 => m.push_str(&format!(" :pet/toy {}", self.toy())),
            _ => m.push_str(&format!(" :pet/toy [{} {}]", self.toy(), self.toy())),
        }
        m.push('}');
        m
    }

    fn entity_map(&mut self) -> String {
        let mut parts = Vec::new();
        match self.below(4) {
            0 => {}
            1 => parts.push(format!(":db/id {}", self.eid())),
            _ => {
                let t = self.new_tempid();
                parts.push(format!(":db/id {t}"));
            }
        }
        for attr in [
            ":person/name",
            ":person/email",
            ":person/age",
            ":person/nick",
        ] {
            if self.chance(45) {
                parts.push(format!("{attr} {}", self.value(attr)));
            }
        }
        if self.chance(30) {
            let tags = if self.chance(50) {
                self.string(&TAGS)
            } else {
                format!("[{} {}]", self.string(&TAGS), self.string(&TAGS))
            };
            parts.push(format!(":person/tag {tags}"));
        }
        if self.chance(25) {
            let moods = format!("[{} {}]", self.pick(&MOODS), self.pick(&MOODS));
            parts.push(format!(":person/mood {moods}"));
        }
        for attr in [":person/data", ":person/path"] {
            if self.chance(20) {
                parts.push(format!("{attr} {}", self.value(attr)));
            }
        }
        if self.chance(35) {
            let friends = match self.below(3) {
                0 => self.ref_value(),
                1 => format!("[{}]", self.ref_value()),
                _ => format!("[{} {}]", self.ref_value(), self.ref_value()),
            };
            parts.push(format!(":person/friend {friends}"));
        }
        if self.chance(20) {
            parts.push(format!(":person/boss {}", self.ref_value()));
        }
        if self.chance(25) {
            parts.push(format!(":person/pet {}", self.pet()));
        }
        if self.chance(10) {
            parts.push(format!(":person/_friend {}", self.entity()));
        }
        if parts.is_empty() {
            parts.push(format!(":person/nick {}", self.string(&NICKS)));
        }
        format!("{{{}}}", parts.join(" "))
    }

    fn attr(&mut self) -> &'static str {
        const ATTRS: [&str; 11] = [
            ":person/data",
            ":person/path",
            ":person/mood",
            ":person/name",
            ":person/email",
            ":person/age",
            ":person/nick",
            ":person/tag",
            ":person/friend",
            ":person/boss",
            ":pet/species",
        ];
        ATTRS[self.below(ATTRS.len())]
    }

    fn op(&mut self) -> String {
        match self.below(12) {
            0..=4 => self.entity_map(),
            5..=6 => {
                let e = self.entity();
                let a = self.attr();
                format!("[:db/add {e} {a} {}]", self.value(a))
            }
            7 => {
                let e = self.entity();
                let a = self.attr();
                format!("[:db/retract {e} {a} {}]", self.value(a))
            }
            8 => {
                let e = self.entity();
                format!("[:db/retract {e} {}]", self.attr())
            }
            9 => format!("[:db/retractEntity {}]", self.entity()),
            10 => {
                let e = if self.chance(70) {
                    self.eid().to_string()
                } else {
                    self.lookup()
                };
                let old = if self.chance(25) {
                    "nil".to_owned()
                } else {
                    self.value(":person/age")
                };
                format!(
                    "[:db/cas {e} :person/age {old} {}]",
                    self.value(":person/age")
                )
            }
            _ => format!(
                "{{:db/id {} :person/pet {}}}",
                self.entity(),
                if self.chance(50) {
                    self.pet()
                } else {
                    format!("[{}]", self.pet())
                }
            ),
        }
    }

    fn tx(&mut self) -> String {
        self.tempids.clear();
        let n = 1 + self.below(4);
        let ops: Vec<String> = (0..n).map(|_| self.op()).collect();
        self.entities += 2 + self.tempids.len() as u64;
        format!("[{}]", ops.join(" "))
    }

    fn query(&mut self) -> QueryCheck {
        let age = 18 + self.rng.below(6);
        let name = self.string(&NAMES);
        let exact = |query: String| QueryCheck {
            query,
            inputs: vec![],
            shape: Shape::Exact,
        };
        // Aggregates answer a bag in Datascript (one row per group), a set in datoms:
        // the rows are distinct either way, so they compare as bags.
        let bag = |query: String| QueryCheck {
            query,
            inputs: vec![],
            shape: Shape::Bag,
        };
        let with_fn = |query: &str, f: &str, shape: Shape| QueryCheck {
            query: query.into(),
            inputs: vec![format!("#fn {f}")],
            shape,
        };
        match self.below(25) {
            18 => exact(format!(
                "[:find ?e ?p :where [?e :person/path ?p] [(> ?p {})]]",
                self.pick(&PATHS)
            )),
            19 => match self.below(2) {
                0 => bag("[:find (min ?p) (max ?p) :where [_ :person/path ?p]]".into()),
                _ => exact(format!(
                    "[:find ?e ?t :where [?e :person/nick+age ?t] [(> ?t [{} {}])]]",
                    self.string(&NICKS),
                    18 + self.rng.below(6)
                )),
            },
            20 => exact(format!(
                "[:find ?e :where [?e :person/data {}]]",
                // A plain symbol is no constant in a clause: vectors, maps, sets only.
                self.pick(&DATA[..6])
            )),
            21 => QueryCheck {
                query: "[:find ?e ?d :in $ ?d :where [?e :person/data ?d]]".into(),
                inputs: vec![self.pick(&DATA).to_owned()],
                shape: Shape::Exact,
            },
            22 => with_fn(
                "[:find ?e :in $ ?adult :where [?e :person/age ?a] [(?adult ?a)]]",
                "adult?",
                Shape::Exact,
            ),
            23 => with_fn(
                "[:find ?e :in $ ?adult :where [?e :person/age ?a] [(complement ?adult) ?minor] [(?minor ?a)]]",
                "adult?",
                Shape::Exact,
            ),
            24 => with_fn(
                "[:find ?n (aggregate ?total ?a) :in $ ?total :where [?e :person/name ?n] [?e :person/age ?a]]",
                "total",
                Shape::Bag,
            ),
            16 => exact(format!(
                "[:find ?e ?m :where [?e :person/mood ?m] [(> ?m {})]]",
                self.pick(&MOODS)
            )),
            17 => bag("[:find (min ?m) (max ?m) :where [_ :person/mood ?m]]".into()),
            0 => exact(
                "[:find ?n ?fn :where [?e :person/friend ?f] [?e :person/name ?n] [?f :person/name ?fn]]"
                    .into(),
            ),
            1 => exact(format!(
                "[:find ?e ?a :where [?e :person/age ?a] [(> ?a {age})]]"
            )),
            2 => bag(
                "[:find (count ?e) (min ?a) (max ?a) (sum ?a) :where [?e :person/age ?a]]".into(),
            ),
            3 => bag(
                "[:find ?n (count ?f) (distinct ?t) :where [?e :person/name ?n] [?e :person/friend ?f] [?e :person/tag ?t]]"
                    .into(),
            ),
            4 => QueryCheck {
                query: "[:find ?x :in $ % ?s :where (reach ?s ?x)]".into(),
                inputs: vec![
                    "[[(reach ?a ?b) [?a :person/friend ?b]] [(reach ?a ?b) [?a :person/friend ?c] (reach ?c ?b)]]"
                        .into(),
                    self.eid().to_string(),
                ],
                shape: Shape::Exact,
            },
            5 => exact(
                "[:find ?e :where [?e :person/name] (not [?e :person/friend ?f] [?f :person/age ?a] [(< ?a 21)])]"
                    .into(),
            ),
            6 => exact(
                "[:find ?e ?v :where (or [?e :person/nick ?v] [?e :person/tag ?v] (and [?e :pet/species ?s] [(str ?s) ?v]))]"
                    .into(),
            ),
            7 => exact(
                "[:find ?e ?b :where [?e :person/name] [(get-else $ ?e :person/boss :none) ?b]]"
                    .into(),
            ),
            8 => exact(format!(
                "[:find ?e . :where [?e :person/name {name}]]"
            )),
            9 => QueryCheck {
                query: "[:find [?a ...] :where [_ :person/age ?a]]".into(),
                inputs: vec![],
                shape: Shape::Bag,
            },
            10 => QueryCheck {
                query: "[:find (pull ?e [:person/name {:person/pet [:pet/name :pet/species]}]) :where [?e :person/age]]"
                    .into(),
                inputs: vec![],
                shape: Shape::Bag,
            },
            11 => exact(
                "[:find ?e ?s ?t :where [?e :person/pet ?p] [?p :pet/species ?s] [?p :pet/toy ?y] [?y :toy/name ?t]]"
                    .into(),
            ),
            12 => exact(
                "[:find ?e :where [?e :person/name] (not-join [?e] [?x :person/friend ?e])]".into(),
            ),
            13 => bag(
                "[:find ?s (count ?p) :keys species n :where [?p :pet/species ?s]]".into(),
            ),
            14 => QueryCheck {
                query: "[:find ?a :with ?e :where [?e :person/age ?a]]".into(),
                inputs: vec![],
                shape: Shape::Bag,
            },
            _ => exact(
                "[:find ?e :where [?e :person/nick] [(missing? $ ?e :person/email)]]".into(),
            ),
        }
    }

    fn pull(&mut self) -> PullCheck {
        const PATTERNS: [&str; 12] = [
            "[:person/data :person/path :person/name]",
            "[:person/mood :person/name]",
            "[*]",
            "[:person/name {:person/friend [:person/name :person/age]}]",
            "[:person/name :person/_friend]",
            "[:person/name {:person/_friend [:person/name]}]",
            "[{:person/pet [*]}]",
            "[(:person/friend :limit 1) :person/tag]",
            "[(:person/nick :default \"none\") :person/name]",
            "[:person/name {:person/friend ...}]",
            "[:person/name {:person/boss 2}]",
            "[:db/id :pet/name :pet/species {:pet/toy [:toy/name]} :person/_pet]",
        ];
        let pattern = PATTERNS[self.below(PATTERNS.len())].to_owned();
        let entity = if self.chance(75) {
            self.eid().to_string()
        } else {
            self.lookup()
        };
        PullCheck { pattern, entity }
    }
}

/// The case of `seed`: a few transactions, then queries and pulls.
pub fn generate(seed: u64) -> Case {
    let mut g = Gen {
        rng: SplitMix64::new(seed),
        entities: 0,
        tempids: Vec::new(),
    };
    let txs = (0..3 + g.below(6)).map(|_| g.tx()).collect();
    let queries = (0..4).map(|_| g.query()).collect();
    let pulls = (0..4).map(|_| g.pull()).collect();
    Case {
        seed,
        schema: SCHEMA.to_owned(),
        txs,
        queries,
        pulls,
    }
}
