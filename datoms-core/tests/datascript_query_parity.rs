#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Queries and pulls whose answers must equal Datascript 1.8.1's (issues #16 and #26).
//! Every expected answer here was computed by Datascript 1.8.1 itself (under node, the
//! peer the bench drives), on the same schema and data; the comment on each case gives
//! the Datascript call.

use datoms_core::edn::parse_schema;
use datoms_core::{q, Db, Error, Input, QueryValue};

/// `friend` card-many ref, `boss` card-one ref, `name` unique identity, `tag` card-many.
fn people() -> Db {
    let schema = parse_schema(
        "{:friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
          :boss {:db/valueType :db.type/ref}
          :name {:db/unique :db.unique/identity}
          :tag {:db/cardinality :db.cardinality/many}}",
    )
    .unwrap();
    Db::new(schema)
        .with_edn(
            r#"[{:db/id 1 :name "A" :friend [2 3 4] :boss 2 :age 10 :tag ["x" "y"]}
                {:db/id 2 :name "B" :boss 3 :friend [5]}
                {:db/id 3 :age 3 :friend [5]}
                {:db/id 4 :name "D" :friend [5]}
                {:db/id 5 :name "E"}]"#,
        )
        .unwrap()
        .db_after
}

fn pull(db: &Db, pattern: &str, e: u64) -> String {
    db.pull(pattern, e).unwrap().to_string()
}

// ---- pull: :default and :xform (#16 item 9) ---------------------------------------------

#[test]
fn pull_default_nil_leaves_the_key_out() {
    // (d/pull db '[(:role :default nil) :name] 1) => {:name "A"}
    assert_eq!(
        pull(&people(), "[(:role :default nil) :name]", 1),
        r#"{:name "A"}"#
    );
    // (d/pull db '[(:role :default false) :name] 1) => {:name "A", :role false}
    assert_eq!(
        pull(&people(), "[(:role :default false) :name]", 1),
        r#"{:name "A", :role false}"#
    );
}

#[test]
fn pull_xform_sees_nil_for_a_missing_value_and_not_a_non_nil_default() {
    let db = people();
    // [(:role :default nil :xform vector) :name] => {:name "A", :role [nil]}
    assert_eq!(
        pull(&db, "[(:role :default nil :xform vector) :name]", 1),
        r#"{:name "A", :role [nil]}"#
    );
    // [(:role :xform vector) :name] => {:name "A", :role [nil]}
    assert_eq!(
        pull(&db, "[(:role :xform vector) :name]", 1),
        r#"{:name "A", :role [nil]}"#
    );
    // [(:role :default 5 :xform vector) :name] => {:name "A", :role 5}
    assert_eq!(
        pull(&db, "[(:role :default 5 :xform vector) :name]", 1),
        r#"{:name "A", :role 5}"#
    );
    // [(:role :xform identity) :name] => {:name "A"}
    assert_eq!(
        pull(&db, "[(:role :xform identity) :name]", 1),
        r#"{:name "A"}"#
    );
}

// ---- pull: :limit (#16 item 10) -----------------------------------------------------------

#[test]
fn pull_limit_on_a_reverse_of_a_cardinality_many_attribute_is_accepted() {
    // [(:_friend :limit 1)] on 5 => {:_friend [{:db/id 2}]}
    assert_eq!(
        pull(&people(), "[(:_friend :limit 1)]", 5),
        "{:_friend [{:db/id 2}]}"
    );
}

#[test]
fn pull_limit_on_a_reverse_component_of_a_cardinality_many_attribute_is_accepted() {
    let schema = parse_schema(
        "{:part {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many
                 :db/isComponent true}}",
    )
    .unwrap();
    let db = Db::new(schema)
        .with_edn("[{:db/id 1 :part [2 3]} {:db/id 2 :n 1}]")
        .unwrap()
        .db_after;
    assert_eq!(pull(&db, "[(:_part :limit 1)]", 2), "{:_part {:db/id 1}}");
}

#[test]
fn pull_limit_counts_only_non_empty_sub_pulls() {
    let db = people();
    // [{(:friend :limit 2) [:name]}] on 1 => {:friend [{:name "B"} {:name "D"}]}
    assert_eq!(
        pull(&db, "[{(:friend :limit 2) [:name]}]", 1),
        r#"{:friend [{:name "B"} {:name "D"}]}"#
    );
    // [{(:friend :limit 1) [:name]}] on 1 => {:friend [{:name "B"}]}
    assert_eq!(
        pull(&db, "[{(:friend :limit 1) [:name]}]", 1),
        r#"{:friend [{:name "B"}]}"#
    );
    // [{(:_friend :limit 1) [:age]}] on 5 => {:_friend [{:age 3}]}
    assert_eq!(
        pull(&db, "[{(:_friend :limit 1) [:age]}]", 5),
        "{:_friend [{:age 3}]}"
    );
    // [(:tag :limit 1)] on 1 => {:tag ["x"]}
    assert_eq!(pull(&db, "[(:tag :limit 1)]", 1), r#"{:tag ["x"]}"#);
}

#[test]
fn pull_limit_on_a_cardinality_one_attribute_stays_an_error() {
    // Datascript: "Expected limit attribute having :db.cardinality/many, got: :age"
    for pattern in ["[(:age :limit 1)]", "[(:boss :limit 1)]"] {
        let e = people().pull(pattern, 1).unwrap_err();
        assert!(matches!(e, Error::PullPattern { .. }), "{pattern}: {e:?}");
    }
}

// ---- pull: deep recursion (#26 item 8) ----------------------------------------------------

#[test]
fn pull_recursion_over_a_long_chain_has_no_nesting_cap() {
    let n = 2900u64;
    let schema = parse_schema(
        "{:friend {:db/valueType :db.type/ref} :name {:db/unique :db.unique/identity}}",
    )
    .unwrap();
    let mut tx = String::from("[");
    for i in 1..=n {
        if i < n {
            tx.push_str(&format!(r#"{{:db/id {i} :name "p{i}" :friend {}}}"#, i + 1));
        } else {
            tx.push_str(&format!(r#"{{:db/id {i} :name "p{i}"}}"#));
        }
    }
    tx.push(']');
    let db = Db::new(schema).with_edn(&tx).unwrap().db_after;
    // (d/pull db '[:name {:friend ...}] 1) answers the whole chain.
    let mut v = db.pull("[:name {:friend ...}]", 1).unwrap();
    let mut depth = 0u64;
    let friend = QueryValue::keyword("friend");
    // Walk and take apart level by level, so that dropping the value does not recurse.
    while let QueryValue::Map(mut m) = v {
        depth += 1;
        assert_eq!(
            m.get(&QueryValue::keyword("name")).map(ToString::to_string),
            Some(format!("\"p{depth}\""))
        );
        match m.remove(&friend) {
            Some(next) => v = next,
            None => break,
        }
    }
    assert_eq!(depth, n);
}

// ---- queries ------------------------------------------------------------------------------

fn run(db: &Db, query: &str, inputs: &[&str]) -> Result<String, Error> {
    let mut all = vec![Input::Db(db)];
    all.extend(inputs.iter().map(|i| Input::Edn(i)));
    q(query, &all).map(|r| r.to_edn().to_string())
}

#[test]
fn find_pull_answers_one_row_per_binding() {
    let db = people();
    // [:find (pull ?e [:name]) :where [?e :friend 5]] => [[{:name "B"}] [nil] [{:name "D"}]]
    assert_eq!(
        run(&db, "[:find (pull ?e [:name]) :where [?e :friend 5]]", &[]).unwrap(),
        r#"[[nil] [{:name "B"}] [{:name "D"}]]"#
    );
    // [:find ?f (pull ?e [:age]) :where [?e :friend ?f]]: six rows, duplicates kept.
    assert_eq!(
        run(
            &db,
            "[:find ?f (pull ?e [:age]) :where [?e :friend ?f]]",
            &[]
        )
        .unwrap(),
        "[[2 {:age 10}] [3 {:age 10}] [4 {:age 10}] [5 nil] [5 nil] [5 {:age 3}]]"
    );
}

#[test]
fn not_before_any_clause_binds_its_variables_is_insufficient_bindings() {
    // Datascript: "Insufficient bindings: none of #{?e} is bound in (not [?e :name "A"])"
    let e = run(
        &people(),
        r#"[:find ?e :where (not [?e :name "A"]) [?e :age _]]"#,
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnboundVariable { .. }), "{e:?}");
    assert!(e.to_string().contains("insufficient bindings"), "{e}");
    assert!(e.to_string().contains("?e"), "{e}");
}

#[test]
fn lookup_refs_as_inputs_on_both_sides_of_a_clause_resolve() {
    // [:find ?e ?v :in $ ?e ?v :where [?e :friend ?v]] with [:name "A"] [:name "B"]
    // => #{[[:name "A"] [:name "B"]]}
    assert_eq!(
        run(
            &people(),
            "[:find ?e ?v :in $ ?e ?v :where [?e :friend ?v]]",
            &[r#"[:name "A"]"#, r#"[:name "B"]"#]
        )
        .unwrap(),
        r#"#{[[:name "A"] [:name "B"]]}"#
    );
}

#[test]
fn pull_of_a_lookup_ref_on_a_non_unique_attribute_is_an_error_and_a_nil_value_finds_nothing() {
    let db = people();
    let fns = datoms_core::Functions::new();
    let p = datoms_core::pull::PullPattern::parse(&db, "[*]", &fns).unwrap();
    // (d/pull db '[*] [:age 10]) => "Lookup ref attribute should be marked as :db/unique"
    let age = QueryValue::from_edn(&datoms_core::edn::parse("[:age 10]").unwrap()).unwrap();
    let e = datoms_core::pull::pull_entity(&db, &p, &age, &fns).unwrap_err();
    assert!(matches!(e, Error::LookupRefNotUnique { .. }), "{e:?}");
    // (d/pull db '[*] [:name nil]) => nil
    let none = QueryValue::from_edn(&datoms_core::edn::parse("[:name nil]").unwrap()).unwrap();
    assert_eq!(
        datoms_core::pull::pull_entity(&db, &p, &none, &fns).unwrap(),
        QueryValue::Nil
    );
}

#[test]
fn a_variable_in_function_position_with_no_tuples_answers_empty() {
    let db = people();
    // [:find ?a :where [?e :nope ?a] [(?pred ?a)]] => #{}
    assert_eq!(
        run(&db, "[:find ?a :where [?e :nope ?a] [(?pred ?a)]]", &[]).unwrap(),
        "#{}"
    );
    // [:find ?a ?b :where [?e :nope ?a] [(?f ?a) ?b]] => #{}
    assert_eq!(
        run(&db, "[:find ?a ?b :where [?e :nope ?a] [(?f ?a) ?b]]", &[]).unwrap(),
        "#{}"
    );
    // With tuples to call it on, Datascript: "Unknown predicate '?pred in [(?pred ?a)]"
    let e = run(&db, "[:find ?a :where [?e :age ?a] [(?pred ?a)]]", &[]).unwrap_err();
    assert!(e.to_string().contains("?pred"), "{e}");
}

#[test]
fn a_pull_pattern_bound_as_an_input_symbol() {
    let db = people();
    // [:find (pull ?e ?p) :in $ ?p :where [?e :age 3]] with [:age] => #{[{:age 3}]}
    assert_eq!(
        run(
            &db,
            "[:find (pull ?e ?p) :in $ ?p :where [?e :age 3]]",
            &["[:age]"]
        )
        .unwrap(),
        "[[{:age 3}]]"
    );
    // ... and with a plain symbol: (pull ?e p) :in $ p
    assert_eq!(
        run(
            &db,
            "[:find (pull ?e p) :in $ p :where [?e :age 3]]",
            &["[:age]"]
        )
        .unwrap(),
        "[[{:age 3}]]"
    );
}

#[test]
fn a_non_entity_constant_in_a_ref_value_position_is_an_error() {
    let db = people();
    // [:find ?e :where [?e :boss "x"]] => "Expected number or lookup ref for entity id, got "x""
    let e = run(&db, r#"[:find ?e :where [?e :boss "x"]]"#, &[]).unwrap_err();
    assert!(e.to_string().contains("\"x\""), "{e}");
    // ... also through :in
    let e = run(&db, "[:find ?e :in $ ?b :where [?e :boss ?b]]", &[r#""x""#]).unwrap_err();
    assert!(e.to_string().contains("\"x\""), "{e}");
    // A string a clause binds is joined, not checked: => #{}
    assert_eq!(
        run(&db, "[:find ?e :where [?x :name ?n] [?e :boss ?n]]", &[]).unwrap(),
        "#{}"
    );
    // An id and a lookup ref are entities: => #{[1]}
    assert_eq!(
        run(&db, "[:find ?e :where [?e :boss 2]]", &[]).unwrap(),
        "#{[1]}"
    );
    assert_eq!(
        run(&db, r#"[:find ?e :where [?e :boss [:name "B"]]]"#, &[]).unwrap(),
        "#{[1]}"
    );
}

#[test]
fn avet_reads_need_an_indexed_or_unique_attribute() {
    // (d/datoms db :avet :age) => "Attribute :age should be marked as :db/index true"
    let db = people();
    let e = db
        .datoms(
            datoms_core::IndexKind::Avet,
            &[datoms_core::Component::A(":age".into())],
        )
        .expect_err("an error");
    assert!(e.to_string().contains(":age"), "{e}");
    assert!(db
        .datoms(
            datoms_core::IndexKind::Avet,
            &[datoms_core::Component::A(":name".into())]
        )
        .is_ok());
}

/// `:person/color` a ref to an entity with the ident `:color/red`.
fn colors() -> Db {
    let schema = parse_schema(
        "{:person/color {:db/valueType :db.type/ref}
          :person/name {:db/unique :db.unique/identity}}",
    )
    .unwrap();
    Db::new(schema)
        .with_edn(
            r#"[{:db/id 1 :db/ident :color/red}
                {:db/id 2 :person/name "Ann" :person/color :color/red}]"#,
        )
        .unwrap()
        .db_after
}

#[test]
fn an_ident_constant_in_a_ref_value_position_resolves_and_an_unknown_one_is_an_error() {
    let db = colors();
    assert_eq!(
        run(&db, "[:find ?e :where [?e :person/color :color/red]]", &[]).unwrap(),
        "#{[2]}"
    );
    assert!(run(&db, "[:find ?e :where [?e :person/color :color/nope]]", &[]).is_err());
}

#[test]
fn an_ident_passed_through_in_as_a_plain_value_does_not_resolve() {
    // [:find ?e :in $ ?c :where [?e :person/color ?c]] with :color/red => #{}
    assert_eq!(
        run(
            &colors(),
            "[:find ?e :in $ ?c :where [?e :person/color ?c]]",
            &[":color/red"]
        )
        .unwrap(),
        "#{}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// `{(:friend :limit n) [:name]}` answers the first `n` friends (in id order) that
    /// have a name, skipping those whose sub-pull is empty, as Datascript does.
    #[test]
    fn pull_limit_takes_the_first_non_empty_sub_pulls(
        named in proptest::collection::vec(proptest::bool::ANY, 1..30),
        limit in 1usize..12,
    ) {
        let schema = parse_schema(
            "{:friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}",
        )
        .unwrap();
        let mut tx = String::from("[");
        let ids: Vec<String> = (0..named.len()).map(|i| (i + 2).to_string()).collect();
        tx.push_str(&format!("{{:db/id 1 :friend [{}]}}", ids.join(" ")));
        for (i, has_name) in named.iter().enumerate() {
            if *has_name {
                tx.push_str(&format!(r#"{{:db/id {} :name "n{}"}}"#, i + 2, i + 2));
            } else {
                tx.push_str(&format!("{{:db/id {} :age 1}}", i + 2));
            }
        }
        tx.push(']');
        let db = Db::new(schema).with_edn(&tx).unwrap().db_after;
        let got = db
            .pull(&format!("[{{(:friend :limit {limit}) [:name]}}]"), 1)
            .unwrap();
        let want: Vec<String> = named
            .iter()
            .enumerate()
            .filter(|(_, n)| **n)
            .map(|(i, _)| format!(r#"{{:name "n{}"}}"#, i + 2))
            .take(limit)
            .collect();
        let want = if want.is_empty() {
            "nil".to_owned()
        } else {
            format!("{{:friend [{}]}}", want.join(" "))
        };
        proptest::prop_assert_eq!(got.to_string(), want);
    }
}
