//! The benchmarks of the suite: Datascript's `bench/datascript/bench/datascript.cljc`
//! (add-1, add-5, add-all, init, retract-5, find-datoms, q1–q4, q5-shortcircuit, qpred1–2,
//! the pulls, the wide and long rules), Datalevin's additions (q2-switch, q5-join), and
//! the recursive ancestry query of Datalevin's math-genealogy benchmark.

use serde::Serialize;

use super::data::{self, Man};

/// How a row counts towards the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Transactions and db construction.
    Write,
    /// Index reads and pulls.
    Read,
    /// Queries (the geometric-mean target is over these).
    Query,
}

/// What a benchmark times (the JS peer reads the same description).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// Transacts `txs` one after the other, from `db` (the empty db when `None`).
    Tx {
        /// The db to start from.
        db: Option<String>,
        /// The transactions, EDN.
        txs: Vec<String>,
    },
    /// Builds a db from datoms (Datascript's `init-db`).
    Init {
        /// `[[e, attr, value], ...]` as JSON, attribute and value as EDN text.
        datoms_json: String,
    },
    /// `(:v (first (datoms db :eavt id attr)))` for each id of `ids[0]..ids[1]`.
    Datoms {
        /// The db.
        db: String,
        /// The id range (end exclusive).
        ids: [u64; 2],
        /// The attribute, EDN.
        attr: String,
    },
    /// A query with the db first and then `inputs`.
    Q {
        /// The db.
        db: String,
        /// The query, EDN.
        query: String,
        /// The inputs after the db, EDN.
        inputs: Vec<String>,
        /// The last input is a rule set.
        rules: bool,
    },
    /// A pull of `eid`.
    Pull {
        /// The db.
        db: String,
        /// The pattern, EDN.
        pattern: String,
        /// The entity.
        eid: u64,
    },
}

/// One benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct Bench {
    /// The row's name (Datascript's name where it has one).
    pub name: String,
    /// How it counts towards the targets.
    #[serde(skip)]
    pub group: Group,
    /// What it times.
    #[serde(flatten)]
    pub kind: Kind,
}

/// The sizes of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sizes {
    /// People (Datascript: 20,000).
    pub people: usize,
    /// The wide rule graphs, `(depth, width)`.
    pub wide: &'static [(u32, u64)],
    /// The long rule graphs, `(depth, width)`.
    pub long: &'static [(u64, u64)],
    /// The pull graph, `(depth, width)` (Datascript: 4, 5).
    pub pull: (u32, u64),
    /// People of the advisor graph.
    pub genealogy: u64,
}

impl Sizes {
    /// Datascript's sizes.
    pub fn full() -> Sizes {
        Sizes {
            people: 20_000,
            wide: &[(3, 3), (5, 3), (7, 3), (4, 6)],
            long: &[(10, 3), (30, 3), (30, 5)],
            pull: (4, 5),
            genealogy: 100_000,
        }
    }

    /// Small sizes for a test.
    pub fn quick() -> Sizes {
        Sizes {
            people: 600,
            wide: &[(3, 3), (4, 3)],
            long: &[(10, 3)],
            pull: (3, 4),
            genealogy: 2_000,
        }
    }
}

/// The people db's name.
pub const PEOPLE: &str = "people";
/// The pull db's name.
pub const PULL: &str = "pull";
/// The advisor graph's name.
pub const GENEALOGY: &str = "genealogy";

const RULES: &str = "[[(follows ?x ?y) [?x :follows ?y]] \
                      [(follows ?x ?y) [?x :follows ?t] (follows ?t ?y)]]";
const RULES_QUERY: &str = "[:find ?e ?e2 :in $ % :where (follows ?e ?e2)]";
/// Datalevin's math-genealogy Q4: every ancestor (advisor, advisor's advisor, …) of one
/// person, through a recursive rule.
const ANCESTOR_RULES: &str = "[[(ancestor ?x ?y) [?x :advisor ?y]] \
                               [(ancestor ?x ?y) [?x :advisor ?z] (ancestor ?z ?y)]]";
const ANCESTOR_QUERY: &str =
    "[:find ?an :in $ ?n % :where [?e :name ?n] (ancestor ?e ?a) [?a :name ?an]]";

/// The suite's dbs (name → the transaction that builds it from the empty db) and its
/// benchmarks, in the order they run.
pub fn suite(seed: u64, sizes: &Sizes) -> (Vec<(String, String)>, Vec<Bench>) {
    let people = data::people(seed, sizes.people);
    let mut dbs = vec![(PEOPLE.to_string(), data::people_tx(&people))];
    let mut benches = Vec::new();
    let mut push = |name: &str, group: Group, kind: Kind| {
        benches.push(Bench {
            name: name.to_string(),
            group,
            kind,
        });
    };
    let tempid = |p: &Man| format!("\"{}\"", p.id);
    let add_1: Vec<String> = people
        .iter()
        .flat_map(|p| {
            let id = tempid(p);
            let sex = if p.male { ":male" } else { ":female" };
            [
                format!("[[:db/add {id} :name {}]]", data::quote(p.name)),
                format!("[[:db/add {id} :last-name {}]]", data::quote(p.last_name)),
                format!("[[:db/add {id} :sex {sex}]]"),
                format!("[[:db/add {id} :age {}]]", p.age),
                format!("[[:db/add {id} :salary {}]]", p.salary),
            ]
        })
        .collect();
    push(
        "add-1",
        Group::Write,
        Kind::Tx {
            db: None,
            txs: add_1,
        },
    );
    let maps: Vec<String> = people.iter().map(|p| p.map_edn(&tempid(p), "")).collect();
    push(
        "add-5",
        Group::Write,
        Kind::Tx {
            db: None,
            txs: maps.iter().map(|m| format!("[{m}]")).collect(),
        },
    );
    push(
        "add-all",
        Group::Write,
        Kind::Tx {
            db: None,
            txs: vec![format!("[{}]", maps.join(" "))],
        },
    );
    let datoms: Vec<(u64, &str, String)> = people
        .iter()
        .flat_map(|p| p.fields().into_iter().map(move |(a, v)| (p.id, a, v)))
        .collect();
    push(
        "init",
        Group::Write,
        Kind::Init {
            datoms_json: serde_json::to_string(&datoms).unwrap_or_default(),
        },
    );
    // retract-5: every person, in the shuffled order.
    push(
        "retract-5",
        Group::Write,
        Kind::Tx {
            db: Some(PEOPLE.into()),
            txs: people
                .iter()
                .map(|p| format!("[[:db.fn/retractEntity {}]]", p.id))
                .collect(),
        },
    );
    let n = sizes.people as u64;
    push(
        "find-datoms",
        Group::Read,
        Kind::Datoms {
            db: PEOPLE.into(),
            ids: [n * 9 / 20, n * 11 / 20],
            attr: ":full-name".into(),
        },
    );
    let q = |query: &str, inputs: &[&str]| Kind::Q {
        db: PEOPLE.into(),
        query: query.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        rules: false,
    };
    push(
        "q1",
        Group::Query,
        q("[:find ?e :where [?e :name \"Ivan\"]]", &[]),
    );
    push(
        "q2",
        Group::Query,
        q("[:find ?e ?a :where [?e :name \"Ivan\"] [?e :age ?a]]", &[]),
    );
    push(
        "q2-switch",
        Group::Query,
        q("[:find ?e ?a :where [?e :age ?a] [?e :name \"Ivan\"]]", &[]),
    );
    push(
        "q3",
        Group::Query,
        q(
            "[:find ?e ?a :where [?e :name \"Ivan\"] [?e :age ?a] [?e :sex :male]]",
            &[],
        ),
    );
    push(
        "q4",
        Group::Query,
        q(
            "[:find ?e ?l ?a :where [?e :name \"Ivan\"] [?e :last-name ?l] [?e :age ?a] \
             [?e :sex :male]]",
            &[],
        ),
    );
    push(
        "q5-shortcircuit",
        Group::Query,
        q(
            "[:find ?e ?n ?l ?a ?s ?al :in $ ?n ?a :where [?e :name ?n] [?e :age ?a] \
             [?e :last-name ?l] [?e :sex ?s] [?e :alias ?al]]",
            &["\"Anastasia\"", "35"],
        ),
    );
    push(
        "q5-join",
        Group::Query,
        q(
            "[:find ?e1 ?l ?a :where [?e :name \"Ivan\"] [?e :age ?a] [?e1 :age ?a] \
             [?e1 :last-name ?l]]",
            &[],
        ),
    );
    push(
        "qpred1",
        Group::Query,
        q("[:find ?e ?s :where [?e :salary ?s] [(> ?s 50000)]]", &[]),
    );
    push(
        "qpred2",
        Group::Query,
        q(
            "[:find ?e ?s :in $ ?min_s :where [?e :salary ?s] [(> ?s ?min_s)]]",
            &["50000"],
        ),
    );
    dbs.push((
        PULL.into(),
        data::wide_tx(seed ^ 0x5eed, sizes.pull.0, sizes.pull.1),
    ));
    for (name, pattern) in [
        ("pull-one", "[:name {:follows ...}]"),
        (
            "pull-many",
            "[:db/id :last-name :alias :sex :age :salary {:follows ...}]",
        ),
        ("pull-wildcard", "[* {:follows ...}]"),
    ] {
        push(
            name,
            Group::Read,
            Kind::Pull {
                db: PULL.into(),
                pattern: pattern.into(),
                eid: 1,
            },
        );
    }
    let rules = |db: String| Kind::Q {
        db,
        query: RULES_QUERY.into(),
        inputs: vec![RULES.into()],
        rules: true,
    };
    for &(depth, width) in sizes.wide {
        let name = format!("wide-{depth}x{width}");
        dbs.push((
            name.clone(),
            data::wide_tx(seed ^ u64::from(depth), depth, width),
        ));
        push(&format!("rules-{name}"), Group::Query, rules(name));
    }
    for &(depth, width) in sizes.long {
        let name = format!("long-{depth}x{width}");
        dbs.push((name.clone(), data::long_tx(depth, width)));
        push(&format!("rules-{name}"), Group::Query, rules(name));
    }
    dbs.push((GENEALOGY.into(), data::genealogy_tx(seed, sizes.genealogy)));
    push(
        "genealogy-q4",
        Group::Query,
        Kind::Q {
            db: GENEALOGY.into(),
            query: ANCESTOR_QUERY.into(),
            inputs: vec![
                data::quote(&format!("p{}", sizes.genealogy)),
                ANCESTOR_RULES.into(),
            ],
            rules: true,
        },
    );
    (dbs, benches)
}
