//! Any value, as in Datascript (#26 item 1): maps, vectors, lists, sets and symbols as
//! attribute values are stored, indexed where the attribute is indexed, queried, pulled,
//! encoded and decoded like any value. Expected answers are Datascript 1.8.1's (checked
//! under node with `bench/peer`), printed as datoms prints EDN.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use datoms_core::edn::{parse, parse_schema};
use datoms_core::tree::Node;
use datoms_core::{q, Component, Db, Error, IndexKind, Input, Keyword, Tree, TreeConfig, Value};

const SCHEMA: &str = r#"{:path    {:db/index true}
                         :tags    {:db/cardinality :db.cardinality/many}
                         :name    {:db/unique :db.unique/identity}
                         :age     {:db/valueType :db.type/long}
                         :friend  {:db/valueType :db.type/ref}}"#;

fn with(db: &Db, text: &str) -> Db {
    db.with_edn(text)
        .unwrap_or_else(|e| panic!("transacting {text}: {e}"))
        .db_after
}

fn empty() -> Db {
    Db::new(parse_schema(SCHEMA).unwrap())
}

fn value(text: &str) -> Value {
    parse(text).unwrap().to_value().unwrap()
}

/// `[e a v]` of every datom of `index` under `attr`, as EDN text.
fn datoms(db: &Db, index: IndexKind, attr: &str) -> Vec<String> {
    db.datoms(index, &[Component::A(Keyword::new(attr))])
        .unwrap()
        .map(|d| {
            let d = d.unwrap();
            format!("[{} {} {}]", d.e, d.a, d.v)
        })
        .collect()
}

fn run(db: &Db, query: &str, inputs: &[&str]) -> String {
    let mut all = vec![Input::Db(db)];
    all.extend(inputs.iter().map(|i| Input::Edn(i)));
    q(query, &all)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .to_edn()
        .to_string()
}

#[test]
fn a_map_is_a_value_of_an_attribute_without_a_type() {
    // (d/db-with db [[:db/add 1 :single {:map 1}]]) then (:single (d/pull db '[*] 1))
    let db = with(&empty(), "[[:db/add 1 :single {:map 1}]]");
    assert_eq!(
        db.pull("[*]", 1).unwrap().to_string(),
        "{:single {:map 1}, :db/id 1}"
    );
    assert_eq!(
        run(&db, "[:find ?v . :where [1 :single ?v]]", &[]),
        "{:map 1}"
    );
}

#[test]
fn a_vector_in_an_entity_map_is_one_value_of_a_cardinality_one_attribute() {
    // {:db/id 1 :path [1 2]} on an indexed attribute: in AVET, found by value.
    let db = with(&empty(), "[{:db/id 1 :path [1 2]} {:db/id 2 :path [3]}]");
    assert_eq!(
        datoms(&db, IndexKind::Avet, ":path"),
        // Vectors order by length first: [3] before [1 2].
        ["[2 :path [3]]", "[1 :path [1 2]]"]
    );
    assert_eq!(run(&db, "[:find ?e . :where [?e :path [1 2]]]", &[]), "1");
    assert_eq!(
        run(&db, "[:find ?e . :in $ ?p :where [?e :path ?p]]", &["[3]"]),
        "2"
    );
    let range: Vec<i64> = db
        .index_range(&Keyword::new(":path"), Some(&value("[1 2]")), None)
        .unwrap()
        .map(|d| d.unwrap().e as i64)
        .collect();
    assert_eq!(range, [1]);
}

#[test]
fn a_symbol_is_a_value() {
    // {:db/id 1 :s a}: the symbol a, printed back as a.
    let db = with(&empty(), "[{:db/id 1 :s a} {:db/id 2 :s my.ns/b}]");
    assert_eq!(
        run(&db, "[:find ?e ?s :where [?e :s ?s]]", &[]),
        "#{[1 a] [2 my.ns/b]}"
    );
    // A plain symbol in a clause is no constant (Datascript's parser refuses it); the
    // symbol comes in through :in.
    assert_eq!(
        run(&db, "[:find ?e . :in $ ?s :where [?e :s ?s]]", &["my.ns/b"]),
        "2"
    );
}

#[test]
fn sets_and_lists_are_values_a_list_is_the_vector_of_its_elements() {
    let db = with(&empty(), "[[:db/add 1 :s #{3 1 2}] [:db/add 2 :l (1 2)]]");
    assert_eq!(db.pull("[:s]", 1).unwrap().to_string(), "{:s #{1 2 3}}");
    // Clojure: (= '(1 2) [1 2]).
    assert_eq!(run(&db, "[:find ?e . :where [?e :l [1 2]]]", &[]), "2");
}

#[test]
fn a_collection_under_a_cardinality_many_attribute_is_several_values() {
    // {:tags [1 2]} is two values; {:tags [[1 2] [3]]} two vector values.
    let db = with(
        &empty(),
        "[{:db/id 1 :tags [1 2]} {:db/id 2 :tags [[1 2] [3]]} {:db/id 3 :tags #{:a :b/c}}]",
    );
    assert_eq!(db.pull("[:tags]", 1).unwrap().to_string(), "{:tags [1 2]}");
    assert_eq!(
        db.pull("[:tags]", 2).unwrap().to_string(),
        "{:tags [[3] [1 2]]}"
    );
    assert_eq!(
        db.pull("[:tags]", 3).unwrap().to_string(),
        "{:tags [:a :b/c]}"
    );
    // In a list form the vector is one value.
    let db = with(&db, "[[:db/add 4 :tags [5 6]]]");
    assert_eq!(
        db.pull("[:tags]", 4).unwrap().to_string(),
        "{:tags [[5 6]]}"
    );
}

#[test]
fn a_pair_starting_with_an_identity_attribute_is_one_value_of_a_many_attribute() {
    // maybe-wrap-multival: [:name "x"] under a cardinality-many non-ref attribute is
    // one value (it could be a lookup ref), not two.
    let db = with(&empty(), r#"[{:db/id 1 :tags [:name "x"]}]"#);
    assert_eq!(
        db.pull("[:tags]", 1).unwrap().to_string(),
        r#"{:tags [[:name "x"]]}"#
    );
}

#[test]
fn a_typed_attribute_refuses_a_collection() {
    match empty().with_edn("[{:db/id 1 :age [1 2]}]") {
        Err(Error::WrongValueType { attr, .. }) => assert_eq!(attr, Keyword::new(":age")),
        other => panic!("{other:?}"),
    }
    // A vector under a ref attribute must be a lookup ref.
    assert!(empty().with_edn("[[:db/add 1 :friend [1 2]]]").is_err());
}

#[test]
fn comparisons_and_aggregates_use_the_value_order() {
    let db = with(
        &empty(),
        "[{:db/id 1 :path [1 2]} {:db/id 2 :path [9]} {:db/id 3 :path [1 3]}]",
    );
    assert_eq!(
        run(&db, "[:find ?e :where [?e :path ?p] [(> ?p [1 2])]]", &[]),
        "#{[3]}"
    );
    assert_eq!(
        run(&db, "[:find (min ?p) (max ?p) :where [_ :path ?p]]", &[]),
        "#{[[9] [1 3]]}"
    );
}

#[test]
fn retracting_a_collection_value_finds_it() {
    let db = with(&empty(), "[{:db/id 1 :path {:a [1 #{2}]}}]");
    let db = with(&db, "[[:db/retract 1 :path {:a [1 #{2}]}]]");
    assert!(datoms(&db, IndexKind::Aevt, ":path").is_empty());
}

#[test]
fn nodes_holding_collections_encode_and_decode() {
    let db = with(
        &empty(),
        "[{:db/id 1 :path [1 nil {:k #{a b}}] :s sym} {:db/id 2 :path (\"x\" 2.5)}]",
    );
    let all: Vec<_> = db
        .datoms(IndexKind::Avet, &[])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let tree = Tree::build(IndexKind::Avet, TreeConfig::default(), all.clone());
    let bytes = tree.root().encode();
    let node = Node::decode(tree.root_address(), &bytes, IndexKind::Avet).unwrap();
    assert_eq!(node.datoms(), all);
}
