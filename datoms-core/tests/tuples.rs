//! Composite tuples (#16, "Features"): `:db/tupleAttrs` kept up to date by every
//! transaction that touches a component, unique tuples for upsert and lookup refs,
//! `:db/tupleType(s)`, in queries, pulls and index reads. Each test is one of Datascript
//! 1.8.1's own (`test/datascript/test/tuples.cljc`, named after it), with its expected
//! answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use datoms_core::edn::{parse, parse_schema, schema_to_edn};
use datoms_core::{q, Component, Db, Error, IndexKind, Input, Keyword, Value};

fn db(schema: &str) -> Db {
    Db::new(parse_schema(schema).unwrap())
}

fn with(db: &Db, text: &str) -> Db {
    db.with_edn(text)
        .unwrap_or_else(|e| panic!("transacting {text}: {e}"))
        .db_after
}

fn fails(db: &Db, text: &str) -> Error {
    match db.with_edn(text) {
        Ok(_) => panic!("{text} was accepted"),
        Err(e) => e,
    }
}

/// Every datom as `[e a v]` (Datascript's `tdc/all-datoms`).
fn all(db: &Db) -> BTreeSet<String> {
    db.datoms(IndexKind::Eavt, &[])
        .unwrap()
        .map(|d| {
            let d = d.unwrap();
            format!("[{} {} {}]", d.e, d.a, d.v)
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn value(text: &str) -> Value {
    parse(text).unwrap().to_value().unwrap()
}

fn run(db: &Db, query: &str) -> String {
    q(query, &[Input::Db(db)])
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .to_edn()
        .to_string()
}

#[test]
fn test_schema() {
    let s = parse_schema(
        "{:year+session {:db/tupleAttrs [:year :session]}
          :session+student {:db/tupleAttrs [:session :student] :db/valueType :db.type/tuple}}",
    )
    .unwrap();
    let year = s.get(&Keyword::new(":year+session")).unwrap();
    assert!(year.is_tuple() && year.in_avet());
    assert_eq!(
        s.tuples_of(&Keyword::new(":session")),
        [
            (Keyword::new(":session+student"), 0),
            (Keyword::new(":year+session"), 1)
        ]
    );
    for (schema, message) in [
        (
            "{:t1 {:db/tupleAttrs [:a :b]} :t2 {:db/tupleAttrs [:c :d :e :t1]}}",
            ":t2 :db/tupleAttrs can’t depend on another tuple attribute: :t1",
        ),
        ("{:t1 {:db/tupleAttrs :a}}", ":db/tupleAttrs must be"),
        (
            "{:t1 {:db/tupleAttrs ()}}",
            ":t1 :db/tupleAttrs can’t be empty",
        ),
        (
            "{:t1 {:db/tupleAttrs [:a :b :c] :db/cardinality :db.cardinality/many}}",
            ":t1 has :db/tupleAttrs, must be :db.cardinality/one",
        ),
        (
            "{:a {:db/cardinality :db.cardinality/many} :t1 {:db/tupleAttrs [:a :b :c]}}",
            ":t1 :db/tupleAttrs can’t depend on :db.cardinality/many attribute: :a",
        ),
        (
            "{:foo+bar {:db/valueType :db.type/tuple}}",
            "{:db/valueType :db.type/tuple} should also have :db/tupleAttrs",
        ),
    ] {
        match parse_schema(schema) {
            Err(Error::BadSchema { reason, .. }) => {
                assert!(reason.contains(message), "{schema}: {reason}")
            }
            other => panic!("{schema}: {other:?}"),
        }
    }
}

/// A tuple declaration prints back (and so is stored and restored with the schema).
#[test]
fn tuple_declarations_print_back() {
    let text = "{:a+b {:db/unique :db.unique/identity, :db/tupleAttrs [:a :b]}, \
                :pair {:db/tupleTypes [:db.type/long :db.type/string]}, \
                :xs {:db/tupleType :db.type/keyword}}";
    let s = parse_schema(text).unwrap();
    assert_eq!(schema_to_edn(&s).to_string(), text);
}

#[test]
fn test_tx() {
    let mut d = db("{:a+b {:db/tupleAttrs [:a :b]} :a+c+d {:db/tupleAttrs [:a :c :d]}}");
    let steps: [(&str, &[&str]); 8] = [
        (
            r#"[[:db/add 1 :a "a"]]"#,
            &[
                r#"[1 :a "a"]"#,
                r#"[1 :a+b ["a" nil]]"#,
                r#"[1 :a+c+d ["a" nil nil]]"#,
            ],
        ),
        (
            r#"[[:db/add 1 :b "b"]]"#,
            &[
                r#"[1 :a "a"]"#,
                r#"[1 :b "b"]"#,
                r#"[1 :a+b ["a" "b"]]"#,
                r#"[1 :a+c+d ["a" nil nil]]"#,
            ],
        ),
        (
            r#"[[:db/add 1 :a "A"]]"#,
            &[
                r#"[1 :a "A"]"#,
                r#"[1 :b "b"]"#,
                r#"[1 :a+b ["A" "b"]]"#,
                r#"[1 :a+c+d ["A" nil nil]]"#,
            ],
        ),
        (
            r#"[[:db/add 1 :c "c"] [:db/add 1 :d "d"]]"#,
            &[
                r#"[1 :a "A"]"#,
                r#"[1 :b "b"]"#,
                r#"[1 :a+b ["A" "b"]]"#,
                r#"[1 :c "c"]"#,
                r#"[1 :d "d"]"#,
                r#"[1 :a+c+d ["A" "c" "d"]]"#,
            ],
        ),
        (
            r#"[[:db/add 1 :a "a"]]"#,
            &[
                r#"[1 :a "a"]"#,
                r#"[1 :b "b"]"#,
                r#"[1 :a+b ["a" "b"]]"#,
                r#"[1 :c "c"]"#,
                r#"[1 :d "d"]"#,
                r#"[1 :a+c+d ["a" "c" "d"]]"#,
            ],
        ),
        (
            r#"[[:db/add 1 :a "A"] [:db/add 1 :b "B"] [:db/add 1 :c "C"] [:db/add 1 :d "D"]]"#,
            &[
                r#"[1 :a "A"]"#,
                r#"[1 :b "B"]"#,
                r#"[1 :a+b ["A" "B"]]"#,
                r#"[1 :c "C"]"#,
                r#"[1 :d "D"]"#,
                r#"[1 :a+c+d ["A" "C" "D"]]"#,
            ],
        ),
        (
            r#"[[:db/retract 1 :a "A"]]"#,
            &[
                r#"[1 :b "B"]"#,
                r#"[1 :a+b [nil "B"]]"#,
                r#"[1 :c "C"]"#,
                r#"[1 :d "D"]"#,
                r#"[1 :a+c+d [nil "C" "D"]]"#,
            ],
        ),
        (
            r#"[[:db/retract 1 :b "B"]]"#,
            &[
                r#"[1 :c "C"]"#,
                r#"[1 :d "D"]"#,
                r#"[1 :a+c+d [nil "C" "D"]]"#,
            ],
        ),
    ];
    for (tx, expected) in steps {
        d = with(&d, tx);
        assert_eq!(all(&d), set(expected), "after {tx}");
    }
    match fails(&d, r#"[{:db/id 1 :a+b ["A" "B"]}]"#) {
        Error::MalformedTx { reason } => assert!(
            reason.contains(r#"Can’t modify tuple attrs directly: [:db/add 1 :a+b ["A" "B"]]"#),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn test_ignore_correct() {
    let d = with(
        &db("{:a+b {:db/tupleAttrs [:a :b]}}"),
        r#"[{:db/id 1 :a "a" :b "b" :a+b ["a" "b"]}]"#,
    );
    for (tx, shown) in [
        (
            r#"[{:db/id 2 :a "x" :b "y" :a+b ["a" "b"]}]"#,
            r#"[:db/add 2 :a+b ["a" "b"]]"#,
        ),
        (
            r#"[{:db/id 2 :a+b ["a" "b"] :a "x" :b "y"}]"#,
            r#"[:db/add 2 :a+b ["a" "b"]]"#,
        ),
        (
            r#"[{:db/id 2 :a "a" :b "b" :a+b ["a"]}]"#,
            r#"[:db/add 2 :a+b ["a"]]"#,
        ),
        (
            r#"[{:db/id 2 :a "a" :b "b" :a+b ["a" nil]}]"#,
            r#"[:db/add 2 :a+b ["a" nil]]"#,
        ),
        (
            r#"[{:db/id 1 :a "x" :a+b ["a" "b"]}]"#,
            r#"[:db/add 1 :a+b ["a" "b"]]"#,
        ),
        (
            r#"[{:db/id 1 :a+b ["a" "B"]}]"#,
            r#"[:db/add 1 :a+b ["a" "B"]]"#,
        ),
    ] {
        match fails(&d, tx) {
            Error::MalformedTx { reason } => assert!(reason.contains(shown), "{tx}: {reason}"),
            other => panic!("{tx}: {other:?}"),
        }
    }
    let d = with(&d, r#"[{:db/id 1 :a+b ["a" "b"]}]"#);
    let d = with(&d, r#"[{:db/id 1 :b "B" :a+b ["a" "B"]}]"#);
    let d = with(&d, r#"[{:db/id 1 :a+b ["A" "B"] :a "A"}]"#);
    assert_eq!(
        all(&d),
        set(&[r#"[1 :a "A"]"#, r#"[1 :b "B"]"#, r#"[1 :a+b ["A" "B"]]"#])
    );
}

#[test]
fn test_unique() {
    let mut d = db("{:a+b {:db/tupleAttrs [:a :b] :db/unique :db.unique/identity}}");
    d = with(&d, r#"[[:db/add 1 :a "a"]]"#);
    d = with(&d, r#"[[:db/add 2 :a "A"]]"#);
    assert!(matches!(
        fails(&d, r#"[[:db/add 1 :a "A"]]"#),
        Error::UniqueConflict { .. }
    ));
    d = with(
        &d,
        r#"[[:db/add 1 :b "b"] [:db/add 2 :b "b"] {:db/id 3 :a "a" :b "B"}]"#,
    );
    assert_eq!(
        all(&d),
        set(&[
            r#"[1 :a "a"]"#,
            r#"[1 :b "b"]"#,
            r#"[1 :a+b ["a" "b"]]"#,
            r#"[2 :a "A"]"#,
            r#"[2 :b "b"]"#,
            r#"[2 :a+b ["A" "b"]]"#,
            r#"[3 :a "a"]"#,
            r#"[3 :b "B"]"#,
            r#"[3 :a+b ["a" "B"]]"#,
        ])
    );
    for tx in [
        r#"[[:db/add 1 :a "A"]]"#,
        r#"[[:db/add 1 :b "B"]]"#,
        r#"[[:db/add 1 :a "A"] [:db/add 1 :b "B"]]"#,
    ] {
        assert!(
            matches!(fails(&d, tx), Error::UniqueConflict { .. }),
            "{tx}"
        );
    }
    // Changing both components in one operation, and a new entity with both.
    d = with(&d, r#"[{:db/id 1 :a "A" :b "B"}]"#);
    assert_eq!(
        d.pull("[*]", 1).unwrap().to_string(),
        r#"{:a "A", :a+b ["A" "B"], :b "B", :db/id 1}"#
    );
    d = with(&d, r#"[{:db/id 4 :a "a" :b "b"}]"#);
    assert_eq!(
        d.pull("[*]", 4).unwrap().to_string(),
        r#"{:a "a", :a+b ["a" "b"], :b "b", :db/id 4}"#
    );
}

#[test]
fn test_upsert() {
    let mut d = db(
        "{:a+b {:db/tupleAttrs [:a :b] :db/unique :db.unique/identity}
          :c {:db/unique :db.unique/identity}}",
    );
    d = with(&d, r#"[{:db/id 1 :a "A" :b "B"} {:db/id 2 :a "a" :b "b"}]"#);
    d = with(&d, r#"[{:a+b ["A" "B"] :c "C"} {:a+b ["a" "b"] :c "c"}]"#);
    assert_eq!(
        all(&d),
        set(&[
            r#"[1 :a "A"]"#,
            r#"[1 :b "B"]"#,
            r#"[1 :a+b ["A" "B"]]"#,
            r#"[1 :c "C"]"#,
            r#"[2 :a "a"]"#,
            r#"[2 :b "b"]"#,
            r#"[2 :a+b ["a" "b"]]"#,
            r#"[2 :c "c"]"#,
        ])
    );
    // "Conflicting upserts: [:a+b ["A" "B"]] resolves to 1, but [:c "c"] resolves to 2"
    assert!(d.with_edn(r#"[{:a+b ["A" "B"] :c "c"}]"#).is_err());
    // Change a component while upserting by the tuple.
    d = with(&d, r#"[{:a+b ["A" "B"] :b "b" :d "D"}]"#);
    assert_eq!(
        all(&d),
        set(&[
            r#"[1 :a "A"]"#,
            r#"[1 :b "b"]"#,
            r#"[1 :a+b ["A" "b"]]"#,
            r#"[1 :c "C"]"#,
            r#"[1 :d "D"]"#,
            r#"[2 :a "a"]"#,
            r#"[2 :b "b"]"#,
            r#"[2 :a+b ["a" "b"]]"#,
            r#"[2 :c "c"]"#,
        ])
    );
}

#[test]
fn test_lookup_refs() {
    let mut d = db(
        "{:a+b {:db/tupleAttrs [:a :b] :db/unique :db.unique/identity}
          :c {:db/unique :db.unique/identity}}",
    );
    d = with(&d, r#"[{:db/id 1 :a "A" :b "B"} {:db/id 2 :a "a" :b "b"}]"#);
    d = with(
        &d,
        r#"[[:db/add [:a+b ["A" "B"]] :c "C"] {:db/id [:a+b ["a" "b"]] :c "c"}]"#,
    );
    assert!(all(&d).contains(r#"[1 :c "C"]"#) && all(&d).contains(r#"[2 :c "c"]"#));
    assert!(matches!(
        fails(&d, r#"[[:db/add [:a+b ["A" "B"]] :c "c"]]"#),
        Error::UniqueConflict { .. }
    ));
    d = with(&d, r#"[{:db/id [:a+b ["A" "B"]] :b "b" :d "D"}]"#);
    assert!(all(&d).contains(r#"[1 :a+b ["A" "b"]]"#) && all(&d).contains(r#"[1 :d "D"]"#));
    let e = d
        .lookup_ref(&Keyword::new(":a+b"), &value(r#"["a" "b"]"#))
        .unwrap();
    assert_eq!(e, Some(2));
    assert_eq!(
        d.pull("[*]", 2).unwrap().to_string(),
        r#"{:a "a", :a+b ["a" "b"], :b "b", :c "c", :db/id 2}"#
    );
}

/// Datascript issue 473: a new entity whose components make an existing entity's
/// unique identity tuple upserts into that entity.
#[test]
fn test_upsert_by_tuple_components() {
    let d = with(
        &db("{:a+b {:db/tupleAttrs [:a :b] :db/unique :db.unique/identity}}"),
        r#"[{:a "A" :b "B" :name "Ivan"}]"#,
    );
    let expected = set(&[
        r#"[1 :a "A"]"#,
        r#"[1 :b "B"]"#,
        r#"[1 :a+b ["A" "B"]]"#,
        r#"[1 :name "Oleg"]"#,
    ]);
    for tx in [
        r#"[{:db/id -1 :a "A" :b "B" :name "Oleg"}]"#,
        r#"[{:a "A" :b "B" :name "Oleg"}]"#,
        r#"[[:db/add -1 :a "A"] [:db/add -1 :b "B"] [:db/add -1 :name "Oleg"]]"#,
    ] {
        assert_eq!(all(&with(&d, tx)), expected, "{tx}");
    }
}

/// Datascript issue 452: a ref element of a tuple may be given as a lookup ref.
#[test]
fn lookup_refs_in_tuple() {
    let d = with(
        &db("{:ref {:db/valueType :db.type/ref}
              :name {:db/unique :db.unique/identity}
              :ref+name {:db/valueType :db.type/tuple :db/tupleAttrs [:ref :name]
                         :db/unique :db.unique/identity}}"),
        r#"[{:db/id -1 :name "Ivan"} {:db/id -2 :name "Oleg"}
            {:db/id -3 :name "Petr" :ref -1} {:db/id -4 :name "Yuri" :ref -2}]"#,
    );
    for tx in [
        r#"[{:ref+name [1 "Petr"], :age 32}]"#,
        r#"[{:ref+name [[:name "Ivan"] "Petr"], :age 32}]"#,
        r#"[[:db/add -1 :ref+name [1 "Petr"]] [:db/add -1 :age 32]]"#,
        r#"[[:db/add -1 :ref+name [[:name "Ivan"] "Petr"]] [:db/add -1 :age 32]]"#,
    ] {
        let d2 = with(&d, tx);
        assert_eq!(
            d2.pull("[:age]", 3).unwrap().to_string(),
            "{:age 32}",
            "{tx}"
        );
    }
    let attr = Keyword::new(":ref+name");
    assert_eq!(
        d.lookup_ref(&attr, &value(r#"[1 "Petr"]"#)).unwrap(),
        Some(3)
    );
    assert_eq!(
        d.lookup_ref(&attr, &value(r#"[[:name "Ivan"] "Petr"]"#))
            .unwrap(),
        Some(3)
    );
}

#[test]
fn test_validation() {
    let d = db("{:a+b {:db/tupleAttrs [:a :b]}}");
    let d1 = with(&d, r#"[[:db/add 1 :a "a"]]"#);
    for (db, tx, shown) in [
        (
            &d,
            r#"[[:db/add 1 :a+b [nil nil]]]"#,
            "[:db/add 1 :a+b [nil nil]]",
        ),
        (
            &d1,
            r#"[[:db/add 1 :a+b ["a" nil]]]"#,
            r#"[:db/add 1 :a+b ["a" nil]]"#,
        ),
        (
            &d,
            r#"[[:db/add 1 :a "a"] [:db/add 1 :a+b ["a" nil]]]"#,
            r#"[:db/add 1 :a+b ["a" nil]]"#,
        ),
        (
            &d1,
            r#"[[:db/retract 1 :a+b ["a" nil]]]"#,
            r#"[:db/retract 1 :a+b ["a" nil]]"#,
        ),
    ] {
        match fails(db, tx) {
            Error::MalformedTx { reason } => assert!(
                reason.contains(&format!("Can’t modify tuple attrs directly: {shown}")),
                "{tx}: {reason}"
            ),
            other => panic!("{tx}: {other:?}"),
        }
    }
}

#[test]
fn test_indexes() {
    let d = with(
        &db("{:a+b+c {:db/tupleAttrs [:a :b :c]}}"),
        r#"[{:db/id 1 :a "a" :b "b" :c "c"} {:db/id 2 :a "A" :b "b" :c "c"}
            {:db/id 3 :a "a" :b "B" :c "c"} {:db/id 4 :a "A" :b "B" :c "c"}
            {:db/id 5 :a "a" :b "b" :c "C"} {:db/id 6 :a "A" :b "b" :c "C"}
            {:db/id 7 :a "a" :b "B" :c "C"} {:db/id 8 :a "A" :b "B" :c "C"}]"#,
    );
    let attr = Keyword::new(":a+b+c");
    let avet = |v: &str| -> Vec<u64> {
        d.datoms(
            IndexKind::Avet,
            &[Component::A(attr.clone()), Component::V(value(v))],
        )
        .unwrap()
        .map(|x| x.unwrap().e)
        .collect()
    };
    assert_eq!(avet(r#"["A" "b" "C"]"#), [6]);
    assert!(avet(r#"["A" "b" nil]"#).is_empty());
    let range = |a: &str, b: &str| -> Vec<u64> {
        d.index_range(&attr, Some(&value(a)), Some(&value(b)))
            .unwrap()
            .map(|x| x.unwrap().e)
            .collect()
    };
    assert_eq!(range(r#"["A" "B" "C"]"#, r#"["A" "b" "c"]"#), [8, 4, 6, 2]);
    assert_eq!(range(r#"["A" "B" nil]"#, r#"["A" "b" nil]"#), [8, 4]);
}

#[test]
fn test_queries() {
    let d = with(
        &db("{:a+b {:db/tupleAttrs [:a :b] :db/unique :db.unique/identity}}"),
        r#"[{:db/id 1 :a "A" :b "B"} {:db/id 2 :a "A" :b "b"}
            {:db/id 3 :a "a" :b "B"} {:db/id 4 :a "a" :b "b"}]"#,
    );
    assert_eq!(
        run(&d, r#"[:find ?e :where [?e :a+b ["a" "B"]]]"#),
        "#{[3]}"
    );
    assert_eq!(
        run(&d, r#"[:find ?a+b :where [[:a+b ["a" "B"]] :a+b ?a+b]]"#),
        r#"#{[["a" "B"]]}"#
    );
    assert_eq!(
        run(
            &d,
            "[:find ?a+b :where [?e :a ?a] [?e :b ?b] [(tuple ?a ?b) ?a+b]]"
        ),
        r#"#{[["A" "B"]] [["A" "b"]] [["a" "B"]] [["a" "b"]]}"#
    );
    assert_eq!(
        run(
            &d,
            "[:find ?a ?b :where [?e :a+b ?a+b] [(untuple ?a+b) [?a ?b]]]"
        ),
        r#"#{["A" "B"] ["A" "b"] ["a" "B"] ["a" "b"]}"#
    );
}

/// `:db/tupleTypes` / `:db/tupleType` declare a tuple the user writes (Datascript keeps
/// and does not check them): the vector is stored, indexed where asked, queried.
#[test]
fn heterogeneous_and_homogeneous_tuples_are_stored_as_vectors() {
    let d = with(
        &db(
            "{:pair {:db/tupleTypes [:db.type/long :db.type/string] :db/index true}
              :xs {:db/tupleType :db.type/keyword}}",
        ),
        r#"[{:db/id 1 :pair [1 "a"] :xs [:a :b]} {:db/id 2 :pair [2 "b"]}]"#,
    );
    assert_eq!(run(&d, r#"[:find ?e . :where [?e :pair [2 "b"]]]"#), "2");
    assert_eq!(
        d.pull("[:pair :xs]", 1).unwrap().to_string(),
        r#"{:pair [1 "a"], :xs [:a :b]}"#
    );
}

/// Retracting the entity retracts its tuples; a tuple survives store and restore as any
/// datom (the AVET node holding it decodes back).
#[test]
fn retract_entity_removes_tuples() {
    let d = with(
        &db("{:a+b {:db/tupleAttrs [:a :b]}}"),
        r#"[{:db/id 1 :a "a" :b "b"}]"#,
    );
    let d = with(&d, "[[:db/retractEntity 1]]");
    assert!(all(&d).is_empty());
}
