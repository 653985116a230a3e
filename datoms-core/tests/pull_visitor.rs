//! Datascript's `test-visitor` (`test/datascript/test/pull_api.cljc`), ported: the
//! `:visitor` of a pull (here `pull_entity_visiting`) is told of every attribute read, in
//! Datascript's order. The expected traces are the test's own (the Datascript peer of
//! the ported suite cannot pass a function as an option).

use datoms_core::edn::parse_schema;
use datoms_core::pull::{pull_entity_visiting, PullPattern, PullVisit};
use datoms_core::{Db, Functions, QueryValue};

fn test_db() -> Db {
    let schema = parse_schema(
        "{:name {:db/unique :db.unique/identity} :aka {:db/cardinality :db.cardinality/many}
          :child {:db/cardinality :db.cardinality/many :db/valueType :db.type/ref}
          :father {:db/valueType :db.type/ref}}",
    )
    .expect("the test schema parses");
    Db::new(schema)
        .with_edn(
            r#"[[:db/add 1 :name "Petr"] [:db/add 1 :aka "Devil"] [:db/add 1 :aka "Tupen"]
                [:db/add 2 :name "David"] [:db/add 3 :name "Thomas"] [:db/add 1 :child 2]
                [:db/add 1 :child 3] [:db/add 2 :father 1] [:db/add 3 :father 1]]"#,
        )
        .expect("the test datoms transact")
        .db_after
}

/// The trace as Datascript's test writes it: `[k e a v]`, one per visit.
fn trace(db: &Db, pattern: &str, e: u64) -> Vec<String> {
    let fns = Functions::new();
    let pattern = PullPattern::parse(db, pattern, &fns).expect("the pattern parses");
    let mut out = Vec::new();
    pull_entity_visiting(db, &pattern, &QueryValue::entity(e), &fns, &mut |v| {
        out.push(match v {
            PullVisit::Attr { e, attr } => format!("[:db.pull/attr {e} {attr} nil]"),
            PullVisit::Wildcard { e } => format!("[:db.pull/wildcard {e} nil nil]"),
            PullVisit::Reverse { attr, v } => format!("[:db.pull/reverse nil {attr} {v}]"),
        });
    })
    .expect("the pull succeeds");
    out
}

#[test]
fn the_visitor_sees_what_datascripts_sees() {
    let db = test_db();
    let cases: &[(&str, u64, &[&str])] = &[
        ("[:name]", 1, &["[:db.pull/attr 1 :name nil]"]),
        // multival
        (
            "[:name :aka]",
            1,
            &["[:db.pull/attr 1 :aka nil]", "[:db.pull/attr 1 :name nil]"],
        ),
        // :db/id is ignored
        ("[:db/id]", 1, &[]),
        ("[:db/id :name]", 1, &["[:db.pull/attr 1 :name nil]"]),
        // wildcard
        (
            "[*]",
            1,
            &[
                "[:db.pull/wildcard 1 nil nil]",
                "[:db.pull/attr 1 :aka nil]",
                "[:db.pull/attr 1 :child nil]",
                "[:db.pull/attr 1 :name nil]",
            ],
        ),
        // missing
        ("[:missing]", 1, &["[:db.pull/attr 1 :missing nil]"]),
        (
            "[* :missing]",
            1,
            &[
                "[:db.pull/wildcard 1 nil nil]",
                "[:db.pull/attr 1 :aka nil]",
                "[:db.pull/attr 1 :child nil]",
                "[:db.pull/attr 1 :missing nil]",
                "[:db.pull/attr 1 :name nil]",
            ],
        ),
        // default
        (
            "[[:missing :default 10]]",
            1,
            &["[:db.pull/attr 1 :missing nil]"],
        ),
        (
            "[[:child :default 10]]",
            2,
            &["[:db.pull/attr 2 :child nil]"],
        ),
        // recursion
        ("[:child]", 1, &["[:db.pull/attr 1 :child nil]"]),
        (
            "[{:child [:name]}]",
            1,
            &[
                "[:db.pull/attr 1 :child nil]",
                "[:db.pull/attr 2 :name nil]",
                "[:db.pull/attr 3 :name nil]",
            ],
        ),
        (
            "[:name {:child ...}]",
            1,
            &[
                "[:db.pull/attr 1 :child nil]",
                "[:db.pull/attr 2 :child nil]",
                "[:db.pull/attr 2 :name nil]",
                "[:db.pull/attr 3 :child nil]",
                "[:db.pull/attr 3 :name nil]",
                "[:db.pull/attr 1 :name nil]",
            ],
        ),
        // reverse
        (
            "[:name :_child]",
            2,
            &[
                "[:db.pull/attr 2 :name nil]",
                "[:db.pull/reverse nil :child 2]",
            ],
        ),
    ];
    for (pattern, e, want) in cases {
        assert_eq!(trace(&db, pattern, *e), *want, "{pattern} of {e}");
    }
}

#[test]
fn a_visited_pull_answers_as_an_unvisited_one() {
    let db = test_db();
    let fns = Functions::new();
    for pattern in [
        "[*]",
        "[:name {:child ...}]",
        "[:name :_child {:father [*]}]",
    ] {
        let p = PullPattern::parse(&db, pattern, &fns).unwrap();
        let plain = datoms_core::pull::pull_entity(&db, &p, &QueryValue::entity(1), &fns).unwrap();
        let visited =
            pull_entity_visiting(&db, &p, &QueryValue::entity(1), &fns, &mut |_| {}).unwrap();
        assert_eq!(plain, visited, "{pattern}");
    }
}
