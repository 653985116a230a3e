#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A corpus of Datalog queries with expected results, in the style of Datascript's own
//! query tests (joins, bindings, functions, not/or, rules, aggregates, return maps, pull),
//! written for this project. Every case runs against the same data twice: a db built in
//! memory, and one lazily restored from storage (nodes load on demand through a
//! `NodeSource` over an in-memory map), and must give the expected result on both.
//! Further tests cover pull, entities, custom functions, typed errors, and how many
//! nodes a selective query makes a lazily restored db load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datoms_core::addressing::commit_for;
use datoms_core::edn::{parse, parse_schema};
use datoms_core::entity::EntityValue;
use datoms_core::restore::Mode;
use datoms_core::tree::{Node, NodeSource};
use datoms_core::{
    q, q_with, Address, Db, Error, Functions, IndexKind, Input, Query, QueryResult, QueryValue,
    Restore, Step, TreeConfig, Value,
};

// ---- storage for lazily restored dbs --------------------------------------------------

#[derive(Default)]
struct MemStore {
    blobs: Mutex<HashMap<Address, Vec<u8>>>,
    loads: AtomicUsize,
}

impl MemStore {
    fn get(&self, a: &Address) -> Option<Vec<u8>> {
        self.blobs.lock().unwrap().get(a).cloned()
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

impl NodeSource for MemStore {
    fn load(&self, address: &Address, kind: IndexKind) -> Result<Arc<Node>, Error> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let bytes = self.get(address).ok_or_else(|| Error::NodeUnavailable {
            address: *address,
            reason: "missing".into(),
        })?;
        Node::decode(*address, &bytes, kind).map(Arc::new)
    }
}

/// Stores every node of `db` and its commit; returns the number of nodes stored and a
/// lazily restored copy reading from the store.
fn lazy_copy(db: &Db) -> (Db, Arc<MemStore>, usize) {
    let store = Arc::new(MemStore::default());
    let (commit, new) = commit_for(db).unwrap();
    let node_count = new.nodes.len();
    let bytes = commit.encode();
    let addr = Address::of(&bytes);
    {
        let mut blobs = store.blobs.lock().unwrap();
        for n in &new.nodes {
            blobs.insert(n.address, n.bytes.clone());
        }
        blobs.insert(addr, bytes);
    }
    let mut r = Restore::with_mode(addr, None, Mode::Lazy);
    let lazy = loop {
        match r.poll().unwrap() {
            Step::Need(addrs) => {
                for a in addrs {
                    r.accept(a, store.get(&a).as_deref()).unwrap();
                }
            }
            Step::Done(db) => break db,
        }
    };
    let lazy = lazy.with_source(store.clone());
    (lazy, store, node_count)
}

// ---- the data ---------------------------------------------------------------------------

const PEOPLE_SCHEMA: &str = r#"{:name       {:db/unique :db.unique/identity}
 :email      {:db/unique :db.unique/value}
 :age        {:db/valueType :db.type/long :db/index true}
 :friend     {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
 :follows    {:db/valueType :db.type/ref}
 :parent     {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
 :aka        {:db/cardinality :db.cardinality/many}
 :doc/parts  {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
 :part/sub   {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}
 :doc/author {:db/valueType :db.type/ref}}"#;

const PEOPLE: &str = r#"[
 {:db/id 1 :name "Ivan" :last "Ivanov" :age 15 :sex :male :city "Moscow"
  :aka ["Vanya" "Terrible"] :friend [2 3] :follows 2 :height 1.75 :email "ivan@example.com"}
 {:db/id 2 :name "Petr" :last "Petrov" :age 37 :sex :male :city "Moscow"
  :friend [3] :follows 3 :parent [4] :email "petr@example.com"}
 {:db/id 3 :name "Oleg" :last "Ivanov" :age 37 :sex :male :city "SPb" :follows 1
  :parent [4] :height 1.875}
 {:db/id 4 :name "Anna" :last "Petrova" :age 22 :sex :female :city "SPb" :parent [5]
  :friend [1]}
 {:db/id 5 :name "Olga" :age 70 :sex :female :city "Moscow"}]"#;

const DOCS: &str = r#"[
 {:db/id 10 :doc/title "Report" :doc/parts [11 12] :doc/author 1}
 {:db/id 11 :part/name "Intro" :part/sub [13]}
 {:db/id 12 :part/name "Body"}
 {:db/id 13 :part/name "Intro.1"}]"#;

fn small() -> TreeConfig {
    TreeConfig {
        leaf_target: 8,
        branch_target: 4,
    }
}

fn people() -> Db {
    let db = Db::with_config(parse_schema(PEOPLE_SCHEMA).unwrap(), small());
    let db = db.with_edn(PEOPLE).unwrap().db_after;
    db.with_edn(DOCS).unwrap().db_after
}

const GRAPH_NODES: i64 = 60;

fn graph() -> Db {
    let schema = parse_schema(
        "{:node/id {:db/unique :db.unique/identity} :node/next {:db/valueType :db.type/ref}}",
    )
    .unwrap();
    let mut tx = String::from("[");
    for i in 1..=GRAPH_NODES {
        tx.push_str(&format!("{{:db/id {i} :node/id {i}"));
        if i < GRAPH_NODES {
            tx.push_str(&format!(" :node/next {}", i + 1));
        }
        tx.push('}');
    }
    tx.push(']');
    Db::with_config(schema, small())
        .with_edn(&tx)
        .unwrap()
        .db_after
}

// ---- the corpus -------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum In {
    /// The db under test.
    Db,
    /// EDN text: a value, tuples for a source, or a pull pattern.
    Edn(&'static str),
    /// Rules.
    Rules(&'static str),
}

#[derive(Clone, Copy, PartialEq)]
enum Data {
    People,
    Graph,
}

struct Case {
    name: &'static str,
    data: Data,
    query: &'static str,
    inputs: &'static [In],
    expected: &'static str,
}

const fn case(
    name: &'static str,
    query: &'static str,
    inputs: &'static [In],
    expected: &'static str,
) -> Case {
    Case {
        name,
        data: Data::People,
        query,
        inputs,
        expected,
    }
}

const DB: &[In] = &[In::Db];

const ANC: &str = r#"[[(anc ?a ?b) [?a :parent ?b]]
                      [(anc ?a ?b) [?a :parent ?x] (anc ?x ?b)]]"#;
const REACH: &str = r#"[[(reach ?a ?b) [?a :follows ?b]]
                        [(reach ?a ?b) [?a :follows ?x] (reach ?x ?b)]]"#;
const RELATED: &str = r#"[[(anc ?a ?b) [?a :parent ?b]]
                          [(anc ?a ?b) [?a :parent ?x] (anc ?x ?b)]
                          [(related ?a ?b) (anc ?a ?b)]
                          [(related ?a ?b) (anc ?b ?a)]]"#;
const OLDER: &str = r#"[[(older [?a] ?b) [?a :age ?x] [?b :age ?y] [(> ?x ?y)]]]"#;
const SOCIAL: &str = r#"[[(social ?e) [?e :friend _]]
                         [(social ?e) [_ :friend ?e]]]"#;
const LONELY: &str = r#"[[(lonely ?e) [?e :name] (not [?e :friend _]) (not [_ :friend ?e])]]"#;
const ADULT: &str = r#"[[(adult ?e) [?e :age ?a] [(>= ?a 18)]]]"#;
const PATHS: &str = r#"[[(odd-path ?a ?b) [?a :node/next ?b]]
                        [(odd-path ?a ?b) [?a :node/next ?x] (even-path ?x ?b)]
                        [(even-path ?a ?b) [?a :node/next ?x] (odd-path ?x ?b)]]"#;
const CHAIN: &str = r#"[[(after ?a ?b) [?a :node/next ?b]]
                        [(after ?a ?b) (after ?a ?x) (after ?x ?b)]]"#;

const TX2: &str = "536870914";

fn corpus() -> Vec<Case> {
    let mut v = vec![
        // -- data patterns and joins
        case("all entities with an attribute", "[:find ?e :where [?e :name]]", DB, "#{[1] [2] [3] [4] [5]}"),
        case("constant value", "[:find ?n :where [?e :name ?n] [?e :age 37]]", DB, r#"#{["Petr"] ["Oleg"]}"#),
        case("two patterns on one entity", "[:find ?e ?a :where [?e :age ?a] [?e :city \"SPb\"]]", DB, "#{[3 37] [4 22]}"),
        case(
            "join through a ref",
            "[:find ?n1 ?n2 :where [?e1 :friend ?e2] [?e1 :name ?n1] [?e2 :name ?n2]]",
            DB,
            r#"#{["Ivan" "Petr"] ["Ivan" "Oleg"] ["Petr" "Oleg"] ["Anna" "Ivan"]}"#,
        ),
        case("same variable twice, no match", "[:find ?e :where [?e :follows ?e]]", DB, "#{}"),
        case("constant ref value", "[:find ?n :where [?e :friend 3] [?e :name ?n]]", DB, r#"#{["Ivan"] ["Petr"]}"#),
        case("lookup ref in entity position", r#"[:find ?a :where [[:name "Oleg"] :age ?a]]"#, DB, "#{[37]}"),
        case(
            "lookup ref in ref value position",
            r#"[:find ?n :where [?e :follows [:name "Ivan"]] [?e :name ?n]]"#,
            DB,
            r#"#{["Oleg"]}"#,
        ),
        case("blank value", "[:find ?e :where [?e :aka _]]", DB, "#{[1]}"),
        case("attribute variable", r#"[:find ?a :where [1 ?a "Ivan"]]"#, DB, "#{[:name]}"),
        case(
            "all attributes of an entity",
            "[:find ?a :where [2 ?a]]",
            DB,
            "#{[:age] [:city] [:email] [:follows] [:friend] [:last] [:name] [:parent] [:sex]}",
        ),
        case("value with unknown attribute", "[:find ?e ?a :where [?e ?a 37]]", DB, "#{[2 :age] [3 :age]}"),
        case("entity id value with unknown attribute", "[:find ?e ?a :where [?e ?a 4]]", DB, "#{[2 :parent] [3 :parent]}"),
        case("tx position", "[:find ?tx . :where [10 :doc/title _ ?tx]]", DB, TX2),
        case(
            "tx comparison",
            "[:find ?n :where [?e :name ?n ?tx] [10 :doc/title _ ?tx2] [(< ?tx ?tx2)]]",
            DB,
            r#"#{["Ivan"] ["Petr"] ["Oleg"] ["Anna"] ["Olga"]}"#,
        ),
        case(
            "cardinality many join",
            "[:find ?n ?alias :where [?e :name ?n] [?e :aka ?alias]]",
            DB,
            r#"#{["Ivan" "Terrible"] ["Ivan" "Vanya"]}"#,
        ),
        case(
            "product of unrelated patterns",
            r#"[:find ?a ?b :where [?x :name "Ivan"] [?x :age ?a] [?y :name "Olga"] [?y :age ?b]]"#,
            DB,
            "#{[15 70]}",
        ),
        case(
            "chain of refs",
            r#"[:find ?n :where [?a :name "Ivan"] [?a :follows ?b] [?b :follows ?c] [?c :name ?n]]"#,
            DB,
            r#"#{["Oleg"]}"#,
        ),
        case("doubles", "[:find ?n :where [?e :height ?h] [(> ?h 1.8)] [?e :name ?n]]", DB, r#"#{["Oleg"]}"#),
        case("keyword values", "[:find ?n :where [?e :sex :female] [?e :name ?n]]", DB, r#"#{["Anna"] ["Olga"]}"#),
        case(
            "walking a ref backwards",
            r#"[:find ?n :where [?e :name "Anna"] [?c :parent ?e] [?c :name ?n]]"#,
            DB,
            r#"#{["Petr"] ["Oleg"]}"#,
        ),
        case("unindexed attribute and value", r#"[:find ?e :where [?e :city "Moscow"]]"#, DB, "#{[1] [2] [5]}"),
        case("cycle through two attributes", "[:find ?e ?f :where [?e :friend ?f] [?f :follows ?e]]", DB, "#{[1 3]}"),
        case(
            "self join with inequality",
            "[:find ?e :where [?e :age ?a] [?e2 :age ?a] [(!= ?e ?e2)]]",
            DB,
            "#{[2] [3]}",
        ),
        case("five-element pattern", r#"[:find ?e :where [?e :name "Ivan" _ true]]"#, DB, "#{[1]}"),
        case(
            "clauses written in the worst order",
            r#"[:find ?n2 :where [?f :name ?n2] [?e :friend ?f] [?e :name "Petr"]]"#,
            DB,
            r#"#{["Oleg"]}"#,
        ),
        case("query as a map", "{:find [?n] :where [[?e :age 22] [?e :name ?n]]}", DB, r#"#{["Anna"]}"#),
        // -- find specs
        case(
            "collection",
            r#"[:find [?n ...] :where [?e :city "Moscow"] [?e :name ?n]]"#,
            DB,
            r#"["Ivan" "Olga" "Petr"]"#,
        ),
        case("scalar", r#"[:find ?a . :where [?e :name "Olga"] [?e :age ?a]]"#, DB, "70"),
        case("scalar, nothing found", r#"[:find ?a . :where [?e :name "Nobody"] [?e :age ?a]]"#, DB, "nil"),
        case(
            "tuple",
            r#"[:find [?n ?a] :where [?e :name ?n] [?e :age ?a] [?e :email "ivan@example.com"]]"#,
            DB,
            r#"["Ivan" 15]"#,
        ),
        case("tuple, nothing found", r#"[:find [?n ?a] :where [?e :name ?n] [?e :age ?a] [?e :age 99]]"#, DB, "nil"),
        case("collection of a with variable keeps duplicates", "[:find [?a ...] :with ?e :where [?e :age ?a]]", DB, "[15 22 37 37 70]"),
        case(
            "relation with :with is a bag",
            "[:find ?a :with ?e :where [?e :age ?a] [(> ?a 30)]]",
            DB,
            "[[37] [37] [70]]",
        ),
        // -- :in bindings
        case("scalar input", "[:find ?e :in $ ?n :where [?e :name ?n]]", &[In::Db, In::Edn("\"Oleg\"")], "#{[3]}"),
        case(
            "collection input",
            "[:find ?e :in $ [?n ...] :where [?e :name ?n]]",
            &[In::Db, In::Edn(r#"["Ivan" "Anna" "Zed"]"#)],
            "#{[1] [4]}",
        ),
        case(
            "tuple input",
            "[:find ?e :in $ [?n ?a] :where [?e :name ?n] [?e :age ?a]]",
            &[In::Db, In::Edn(r#"["Petr" 37]"#)],
            "#{[2]}",
        ),
        case(
            "tuple input, no match",
            "[:find ?e :in $ [?n ?a] :where [?e :name ?n] [?e :age ?a]]",
            &[In::Db, In::Edn(r#"["Petr" 38]"#)],
            "#{}",
        ),
        case(
            "relation input",
            "[:find ?n ?c :in $ [[?n ?c]] :where [?e :name ?n] [?e :city ?c]]",
            &[In::Db, In::Edn(r#"[["Ivan" "Moscow"] ["Oleg" "Moscow"] ["Anna" "SPb"]]"#)],
            r#"#{["Ivan" "Moscow"] ["Anna" "SPb"]}"#,
        ),
        case("relation input without a db", "[:find ?x ?y :in [[?x ?y]] :where [(> ?x 1)]]", &[In::Edn("[[1 2] [3 4]]")], "#{[3 4]}"),
        case("ignored tuple element", "[:find ?x :in [?x _]]", &[In::Edn(r#"["a" "b"]"#)], r#"#{["a"]}"#),
        case(
            "nested bindings",
            "[:find ?k ?v :in [[?k [?v ...]]]]",
            &[In::Edn(r#"[["a" [1 2]] ["b" [3]]]"#)],
            r#"#{["a" 1] ["a" 2] ["b" 3]}"#,
        ),
        case("input used only in :find", "[:find ?x :in ?x]", &[In::Edn("42")], "#{[42]}"),
        case("entity id input", "[:find ?n :in $ ?e :where [?e :name ?n]]", &[In::Db, In::Edn("4")], r#"#{["Anna"]}"#),
        case(
            "lookup ref input",
            "[:find ?a :in $ ?e :where [?e :age ?a]]",
            &[In::Db, In::Edn(r#"[:name "Petr"]"#)],
            "#{[37]}",
        ),
        case("empty collection input", "[:find ?e :in $ [?n ...] :where [?e :name ?n]]", &[In::Db, In::Edn("[]")], "#{}"),
        case(
            "pattern joining two input collections",
            "[:find ?a ?b :in $ [?a ...] [?b ...] :where [?a :friend ?b]]",
            &[In::Db, In::Edn("[1 2 4]"), In::Edn("[3 1]")],
            "#{[1 3] [2 3] [4 1]}",
        ),
        case(
            "product of two collections",
            "[:find ?a ?b :in [?a ...] [?b ...]]",
            &[In::Edn("[1 2]"), In::Edn(r#"["x"]"#)],
            r#"#{[1 "x"] [2 "x"]}"#,
        ),
        // -- predicates and functions
        case("less than", "[:find ?n :where [?e :age ?a] [(< ?a 30)] [?e :name ?n]]", DB, r#"#{["Ivan"] ["Anna"]}"#),
        case(
            "greater or equal",
            "[:find ?n :where [?e :age ?a] [(>= ?a 37)] [?e :name ?n]]",
            DB,
            r#"#{["Petr"] ["Oleg"] ["Olga"]}"#,
        ),
        case("equality", "[:find ?n :where [?e :age ?a] [(= ?a 37)] [?e :name ?n]]", DB, r#"#{["Petr"] ["Oleg"]}"#),
        case(
            "inequality",
            "[:find ?n :where [?e :age ?a] [(not= ?a 37)] [?e :name ?n]]",
            DB,
            r#"#{["Ivan"] ["Anna"] ["Olga"]}"#,
        ),
        case(
            "chained comparison",
            "[:find ?n :where [?e :age ?a] [(< 20 ?a 40)] [?e :name ?n]]",
            DB,
            r#"#{["Petr"] ["Oleg"] ["Anna"]}"#,
        ),
        case(
            "arithmetic binding",
            "[:find ?n ?a2 :where [?e :name ?n] [?e :age ?a] [(* ?a 2) ?a2] [(> ?a2 100)]]",
            DB,
            r#"#{["Olga" 140]}"#,
        ),
        case(
            "str",
            r#"[:find ?s . :where [?e :name "Ivan"] [?e :last ?l] [(str "Mr. " ?l) ?s]]"#,
            DB,
            r#""Mr. Ivanov""#,
        ),
        case(
            "re-find with re-pattern",
            r#"[:find ?n :where [(re-pattern "^O") ?re] [?e :name ?n] [(re-find ?re ?n)]]"#,
            DB,
            r#"#{["Oleg"] ["Olga"]}"#,
        ),
        case(
            "re-matches groups into a tuple",
            r#"[:find ?user ?domain :where [?e :email ?m] [(re-matches "(\\w+)@(\\w+)\\.com" ?m) [_ ?user ?domain]]]"#,
            DB,
            r#"#{["ivan" "example"] ["petr" "example"]}"#,
        ),
        case("ground scalar", "[:find ?x :where [(ground 42) ?x]]", &[], "#{[42]}"),
        case("ground collection", "[:find ?x :where [(ground [1 2 3]) [?x ...]]]", &[], "#{[1] [2] [3]}"),
        case("ground relation", "[:find ?x ?y :where [(ground [[1 :a] [2 :b]]) [[?x ?y]]]]", &[], "#{[1 :a] [2 :b]}"),
        case("ground tuple", "[:find ?x ?y :where [(ground [1 2]) [?x ?y]]]", &[], "#{[1 2]}"),
        case(
            "get-else",
            "[:find ?n ?h :where [?e :name ?n] [(get-else $ ?e :height 0.0) ?h]]",
            DB,
            r#"#{["Ivan" 1.75] ["Petr" 0.0] ["Oleg" 1.875] ["Anna" 0.0] ["Olga" 0.0]}"#,
        ),
        case(
            "get-else on a ref attribute",
            "[:find ?n ?f :where [?e :name ?n] [(get-else $ ?e :follows -1) ?f]]",
            DB,
            r#"#{["Ivan" 2] ["Petr" 3] ["Oleg" 1] ["Anna" -1] ["Olga" -1]}"#,
        ),
        case(
            "get-some",
            "[:find ?n ?attr ?v :where [?e :name ?n] [(get-some $ ?e :height :age) [?attr ?v]]]",
            DB,
            r#"#{["Ivan" :height 1.75] ["Petr" :age 37] ["Oleg" :height 1.875] ["Anna" :age 22] ["Olga" :age 70]}"#,
        ),
        case("missing?", "[:find ?n :where [?e :name ?n] [(missing? $ ?e :last)]]", DB, r#"#{["Olga"]}"#),
        case(
            "missing? on a reverse attribute",
            "[:find ?n :where [?e :name ?n] [(missing? $ ?e :_friend)]]",
            DB,
            r#"#{["Anna"] ["Olga"]}"#,
        ),
        case("tuple", r#"[:find ?t :where [?e :name "Ivan"] [?e :age ?a] [(tuple ?e ?a) ?t]]"#, DB, "#{[[1 15]]}"),
        case("untuple", "[:find ?x ?y :where [(ground [1 2]) ?t] [(untuple ?t) [?x ?y]]]", &[], "#{[1 2]}"),
        case("function output already bound", "[:find ?e :where [?e :age ?a] [(- 52 15) ?a]]", DB, "#{[2] [3]}"),
        case(
            "nil result drops the row",
            r#"[:find ?n :where [?e :name ?n] [(get {"Ivan" 1} ?n) ?x]]"#,
            DB,
            r#"#{["Ivan"]}"#,
        ),
        case(
            "predicate before the clause binding its variable",
            "[:find ?n :where [(> ?a 60)] [?e :age ?a] [?e :name ?n]]",
            DB,
            r#"#{["Olga"]}"#,
        ),
        case(
            "long and double compare numerically",
            "[:find ?n :where [?e :height ?h] [(< ?h 2)] [?e :name ?n]]",
            DB,
            r#"#{["Ivan"] ["Oleg"]}"#,
        ),
        case(
            "clojure.string/starts-with?",
            r#"[:find ?n :where [_ :name ?n] [(clojure.string/starts-with? ?n "O")]]"#,
            DB,
            r#"#{["Oleg"] ["Olga"]}"#,
        ),
        case("count of a string", "[:find (count ?e) . :where [?e :name ?n] [(count ?n) ?len] [(= ?len 4)]]", DB, "5"),
        case("subs", "[:find [?p ...] :where [_ :name ?n] [(subs ?n 0 2) ?p]]", DB, r#"["An" "Iv" "Ol" "Pe"]"#),
        case("name of a keyword", "[:find ?s :where [1 :sex ?k] [(name ?k) ?s]]", DB, r#"#{["male"]}"#),
        case("quot", "[:find [?d ...] :where [_ :age ?a] [(quot ?a 10) ?d]]", DB, "[1 2 3 7]"),
        case("even?", "[:find [?a ...] :where [_ :age ?a] [(even? ?a)]]", DB, "[22 70]"),
        case("range", "[:find [?x ...] :where [(range 3) [?x ...]]]", &[], "[0 1 2]"),
        case(
            "contains? on a constant set",
            r#"[:find ?n :where [_ :name ?n] [(contains? #{"Ivan" "Oleg"} ?n)]]"#,
            DB,
            r#"#{["Ivan"] ["Oleg"]}"#,
        ),
        case("inc and vector", "[:find ?v :where [1 :age ?a] [(inc ?a) ?b] [(vector ?a ?b) ?v]]", DB, "#{[[15 16]]}"),
        case("pr-str", "[:find ?s . :where [1 :sex ?k] [(pr-str ?k) ?s]]", DB, r#"":male""#),
        case("division", "[:find ?x ?y :where [(/ 10 4) ?x] [(/ 10 5) ?y]]", &[], "#{[2.5 2]}"),
        case("identity and compare", "[:find ?c :where [(identity 3) ?x] [(compare ?x 5) ?c]]", &[], "#{[-1]}"),
        case("keyword from strings", r#"[:find ?k :where [(keyword "a" "b") ?k]]"#, &[], "#{[:a/b]}"),
        case("hash-map and get", "[:find ?v :where [(hash-map :a 1 :b 2) ?m] [(get ?m :b) ?v]]", &[], "#{[2]}"),
        // -- not, not-join
        case("not", "[:find ?n :where [?e :name ?n] (not [?e :friend _])]", DB, r#"#{["Oleg"] ["Olga"]}"#),
        case(
            "not with a constant",
            r#"[:find ?n :where [?e :name ?n] (not [?e :city "Moscow"])]"#,
            DB,
            r#"#{["Oleg"] ["Anna"]}"#,
        ),
        case(
            "not with two clauses",
            "[:find ?n :where [?e :name ?n] (not [?e :age ?a] [(< ?a 30)])]",
            DB,
            r#"#{["Petr"] ["Oleg"] ["Olga"]}"#,
        ),
        case(
            "not-join",
            r#"[:find ?n :where [?e :name ?n] (not-join [?e] [?e :parent ?p] [?p :city "SPb"])]"#,
            DB,
            r#"#{["Ivan"] ["Anna"] ["Olga"]}"#,
        ),
        case(
            "not inside not",
            r#"[:find ?n :where [?e :name ?n] (not [?e :friend ?f] (not [?f :city "Moscow"]))]"#,
            DB,
            r#"#{["Oleg"] ["Anna"] ["Olga"]}"#,
        ),
        case(
            "not joins only on what earlier clauses bind",
            r#"[:find ?e ?x :where [?e :name] (not [?e :friend ?x]) [?x :name "Ivan"]]"#,
            DB,
            "#{[3 1] [5 1]}",
        ),
        case(
            "or inside not",
            r#"[:find ?n :where [?e :name ?n] (not (or [?e :city "Moscow"] [?e :age 22]))]"#,
            DB,
            r#"#{["Oleg"]}"#,
        ),
        // -- or, or-join, and
        case(
            "or",
            r#"[:find ?n :where [?e :name ?n] (or [?e :city "SPb"] [?e :age 15])]"#,
            DB,
            r#"#{["Ivan"] ["Oleg"] ["Anna"]}"#,
        ),
        case(
            "or with and",
            r#"[:find ?n :where [?e :name ?n] (or (and [?e :sex :female] [?e :city "Moscow"]) [?e :age 15])]"#,
            DB,
            r#"#{["Ivan"] ["Olga"]}"#,
        ),
        case(
            "or-join",
            "[:find ?n :where [?e :name ?n] (or-join [?e] [?e :friend ?x] [?x :friend ?e])]",
            DB,
            r#"#{["Ivan"] ["Petr"] ["Oleg"] ["Anna"]}"#,
        ),
        case(
            "or-join with a required variable",
            "[:find ?n :where [?e :name ?n] (or-join [[?e]] [?e :age 15] [?e :age 70])]",
            DB,
            r#"#{["Ivan"] ["Olga"]}"#,
        ),
        case(
            "or binding new variables",
            "[:find ?e ?x :where (or [?e :follows ?x] [?e :friend ?x])]",
            DB,
            "#{[1 2] [2 3] [3 1] [1 3] [4 1]}",
        ),
        case(
            "or with predicates on a bound variable",
            "[:find ?n :where [?e :name ?n] [?e :age ?a] (or [(< ?a 20)] [(> ?a 60)])]",
            DB,
            r#"#{["Ivan"] ["Olga"]}"#,
        ),
        case(
            "or-join with branch-local variables",
            "[:find ?n :where [?e :name ?n] (or-join [?e] (and [?e :parent ?p] [?p :age 22]) [?e :age 70])]",
            DB,
            r#"#{["Petr"] ["Oleg"] ["Olga"]}"#,
        ),
        // -- rules
        case(
            "simple rule",
            "[:find ?n :in $ % :where [?e :name ?n] (adult ?e)]",
            &[In::Db, In::Rules(ADULT)],
            r#"#{["Petr"] ["Oleg"] ["Anna"] ["Olga"]}"#,
        ),
        case(
            "rule with two branches",
            "[:find ?n :in $ % :where [?e :name ?n] (social ?e)]",
            &[In::Db, In::Rules(SOCIAL)],
            r#"#{["Ivan"] ["Petr"] ["Oleg"] ["Anna"]}"#,
        ),
        case(
            "recursive rule, first argument bound",
            r#"[:find ?n :in $ % :where [?e :name "Petr"] (anc ?e ?x) [?x :name ?n]]"#,
            &[In::Db, In::Rules(ANC)],
            r#"#{["Anna"] ["Olga"]}"#,
        ),
        case(
            "recursive rule, nothing bound",
            "[:find ?x ?y :in $ % :where (anc ?x ?y)]",
            &[In::Db, In::Rules(ANC)],
            "#{[2 4] [2 5] [3 4] [3 5] [4 5]}",
        ),
        case(
            "recursive rule, second argument bound",
            r#"[:find [?x ...] :in $ % :where [?o :name "Olga"] (anc ?x ?o)]"#,
            &[In::Db, In::Rules(ANC)],
            "[2 3 4]",
        ),
        case("recursion through a cycle", "[:find [?y ...] :in $ % :where (reach 1 ?y)]", &[In::Db, In::Rules(REACH)], "[1 2 3]"),
        case("rule called with a constant", "[:find ?x . :in $ % :where (anc 2 ?x) [?x :age 70]]", &[In::Db, In::Rules(ANC)], "5"),
        case(
            "rule calling a rule",
            r#"[:find [?n ...] :in $ % :where [?a :name "Anna"] (related ?a ?b) [?b :name ?n]]"#,
            &[In::Db, In::Rules(RELATED)],
            r#"["Oleg" "Olga" "Petr"]"#,
        ),
        case(
            "rule with a required variable",
            r#"[:find [?n ...] :in $ % :where [?a :name "Petr"] (older ?a ?b) [?b :name ?n]]"#,
            &[In::Db, In::Rules(OLDER)],
            r#"["Anna" "Ivan"]"#,
        ),
        case("rule with not", "[:find ?n :in $ % :where (lonely ?e) [?e :name ?n]]", &[In::Db, In::Rules(LONELY)], r#"#{["Olga"]}"#),
        case("rule with a blank argument", "[:find [?x ...] :in $ % :where (anc ?x _)]", &[In::Db, In::Rules(ANC)], "[2 3 4]"),
        case("rule with a repeated argument", "[:find [?x ...] :in $ % :where (reach ?x ?x)]", &[In::Db, In::Rules(REACH)], "[1 2 3]"),
        case(
            "rule under not",
            "[:find ?n :in $ % :where [?e :name ?n] (not (anc ?e ?x))]",
            &[In::Db, In::Rules(ANC)],
            r#"#{["Ivan"] ["Olga"]}"#,
        ),
        case(
            "rule with a source prefix",
            "[:find [?x ...] :in $ % :where ($ anc ?x 5)]",
            &[In::Db, In::Rules(ANC)],
            "[2 3 4]",
        ),
        // -- aggregates
        case("count", "[:find (count ?e) . :where [?e :name]]", DB, "5"),
        case("count per group", "[:find ?c (count ?e) :where [?e :city ?c]]", DB, r#"#{["Moscow" 3] ["SPb" 2]}"#),
        case("count-distinct", "[:find (count-distinct ?a) . :where [_ :age ?a]]", DB, "4"),
        case("sum with :with", "[:find (sum ?a) . :with ?e :where [?e :age ?a]]", DB, "181"),
        case("sum of distinct values", "[:find (sum ?a) . :where [_ :age ?a]]", DB, "144"),
        case("sum of doubles", "[:find (sum ?h) . :where [_ :height ?h]]", DB, "3.625"),
        case("avg", "[:find (avg ?a) . :with ?e :where [?e :age ?a]]", DB, "36.2"),
        case("min and max", "[:find (min ?a) (max ?a) :where [_ :age ?a]]", DB, "#{[15 70]}"),
        case("max n", "[:find (max 2 ?a) . :where [_ :age ?a]]", DB, "[37 70]"),
        case("min n", "[:find (min 2 ?a) . :where [_ :age ?a]]", DB, "[15 22]"),
        case("median", "[:find (median ?a) . :with ?e :where [?e :age ?a]]", DB, "37"),
        case("variance", "[:find (variance ?a) . :where [_ :age ?a]]", DB, "448.5"),
        case(
            "distinct",
            "[:find ?c (distinct ?s) :where [?e :city ?c] [?e :sex ?s]]",
            DB,
            r#"#{["Moscow" #{:male :female}] ["SPb" #{:male :female}]}"#,
        ),
        case("aggregate argument from :in", "[:find (max ?n ?a) . :in $ ?n :where [_ :age ?a]]", &[In::Db, In::Edn("3")], "[22 37 70]"),
        case("aggregate over nothing", r#"[:find (count ?e) . :where [?e :name "Nobody"]]"#, DB, "nil"),
        case(
            "count with :with",
            "[:find ?s (count ?e) :with ?c :where [?e :sex ?s] [?e :city ?c]]",
            DB,
            "#{[:male 3] [:female 2]}",
        ),
        case(
            "min and max of strings",
            "[:find (min ?n) (max ?n) :where [_ :name ?n]]",
            DB,
            r#"#{["Anna" "Petr"]}"#,
        ),
        // -- return maps
        case(
            ":keys",
            "[:find ?n ?a :keys name age :where [?e :name ?n] [?e :age ?a] [(> ?a 50)]]",
            DB,
            r#"#{{:name "Olga", :age 70}}"#,
        ),
        case(
            ":strs",
            "[:find ?n ?a :strs name age :where [?e :name ?n] [?e :age ?a] [(> ?a 50)]]",
            DB,
            r#"#{{"name" "Olga", "age" 70}}"#,
        ),
        case(
            ":syms",
            "[:find ?n :syms name :where [?e :name ?n] [?e :age 22]]",
            DB,
            r#"#{{name "Anna"}}"#,
        ),
        case(
            ":keys on a tuple",
            r#"[:find [?n ?a] :keys n a :where [?e :name "Ivan"] [?e :name ?n] [?e :age ?a]]"#,
            DB,
            r#"{:n "Ivan", :a 15}"#,
        ),
        // -- pull in :find
        case(
            "pull",
            r#"[:find (pull ?e [:name :age]) :where [?e :city "SPb"]]"#,
            DB,
            // A bag, as Datascript: one row per binding of ?e.
            r#"[[{:name "Anna", :age 22}] [{:name "Oleg", :age 37}]]"#,
        ),
        case(
            "pull collection",
            "[:find [(pull ?e [:name]) ...] :where [?e :age 37]]",
            DB,
            r#"[{:name "Oleg"} {:name "Petr"}]"#,
        ),
        case(
            "pull pattern from :in",
            r#"[:find (pull ?e ?p) . :in $ ?p :where [?e :name "Olga"]]"#,
            &[In::Db, In::Edn("[:name :sex]")],
            r#"{:name "Olga", :sex :female}"#,
        ),
        case(
            "pull from a named source",
            "[:find (pull $x ?e [:name]) . :in $x ?n :where [$x ?e :email ?n]]",
            &[In::Db, In::Edn(r#""petr@example.com""#)],
            r#"{:name "Petr"}"#,
        ),
        case(
            "pull with an aggregate",
            "[:find (pull ?c [:name]) (count ?f) :where [?c :friend ?f]]",
            DB,
            r#"#{[{:name "Ivan"} 2] [{:name "Petr"} 1] [{:name "Anna"} 1]}"#,
        ),
        case(
            "pull with nested and reverse attributes",
            r#"[:find (pull ?e [:name {:friend [:name]} {:_friend [:name]}]) . :where [?e :name "Ivan"]]"#,
            DB,
            r#"{:name "Ivan", :friend [{:name "Petr"} {:name "Oleg"}], :_friend [{:name "Anna"}]}"#,
        ),
        // -- several sources, collections as sources
        case(
            "db and collection",
            "[:find ?n ?score :in $ $scores :where [?e :name ?n] [$scores ?n ?score]]",
            &[In::Db, In::Edn(r#"[["Ivan" 10] ["Olga" 20] ["Zed" 5]]"#)],
            r#"#{["Ivan" 10] ["Olga" 20]}"#,
        ),
        case(
            "collection as the default source",
            "[:find ?x :in $ :where [?x :a 1]]",
            &[In::Edn("[[1 :a 1] [2 :a 2] [3 :a 1]]")],
            "#{[1] [3]}",
        ),
        case(
            "two dbs",
            "[:find ?n :in $1 $2 :where [$1 ?e :name ?n] [$2 ?e :age 15]]",
            &[In::Db, In::Db],
            r#"#{["Ivan"]}"#,
        ),
        case(
            "get-else on a named source",
            "[:find ?h . :in $d :where [$d ?e :name \"Petr\"] [(get-else $d ?e :height 1) ?h]]",
            &[In::Db],
            "1",
        ),
        case(
            "not and or with a source prefix",
            r#"[:find ?n :in $d :where [$d ?e :name ?n] ($d not [?e :city "Moscow"]) ($d or [?e :age 37] [?e :age 70])]"#,
            &[In::Db],
            r#"#{["Oleg"]}"#,
        ),
        // -- more combinations
        case(
            "or-join on two variables",
            "[:find ?a ?b :where (or-join [?a ?b] [?a :follows ?b] [?b :friend ?a])]",
            DB,
            "#{[1 2] [2 3] [3 1] [2 1] [3 2] [1 4]}",
        ),
        case(
            "not-join on two variables",
            "[:find ?e ?f :where [?e :friend ?f] (not-join [?e ?f] [?e :follows ?f])]",
            DB,
            "#{[1 3] [4 1]}",
        ),
        case("re-seq", r#"[:find ?xs . :where [(re-seq "\\d" "a1b22") ?xs]]"#, &[], r#"["1" "2" "2"]"#),
        case(
            "clojure.string/includes?",
            r#"[:find ?n :where [_ :part/name ?n] [(clojure.string/includes? ?n ".")]]"#,
            DB,
            r#"#{["Intro.1"]}"#,
        ),
        case("count of a collection input", "[:find ?c :in ?xs :where [(count ?xs) ?c]]", &[In::Edn("[1 2 3]")], "#{[3]}"),
        case("mod of a negative number", "[:find ?x :where [(mod -7 3) ?x]]", &[], "#{[2]}"),
        case(
            "rule with or in its body",
            "[:find ?n :in $ % :where (cityfolk ?e) [?e :name ?n]]",
            &[In::Db, In::Rules(r#"[[(cityfolk ?e) (or [?e :city "SPb"] [?e :age 70])]]"#)],
            r#"#{["Oleg"] ["Anna"] ["Olga"]}"#,
        ),
        case(
            "rule called with a lookup ref",
            r#"[:find [?x ...] :in $ % :where (anc [:name "Petr"] ?x)]"#,
            &[In::Db, In::Rules(ANC)],
            "[4 5]",
        ),
        case(
            "count-distinct per group",
            "[:find ?s (count-distinct ?c) :where [?e :sex ?s] [?e :city ?c]]",
            DB,
            "#{[:male 2] [:female 2]}",
        ),
        case(
            "grouping by two variables",
            "[:find ?c ?s (count ?e) :where [?e :city ?c] [?e :sex ?s]]",
            DB,
            r#"#{["Moscow" :male 2] ["Moscow" :female 1] ["SPb" :male 1] ["SPb" :female 1]}"#,
        ),
        case(
            "function of two joined entities",
            r#"[:find ?d . :where [?a :name "Olga"] [?b :name "Ivan"] [?a :age ?x] [?b :age ?y] [(- ?x ?y) ?d]]"#,
            DB,
            "55",
        ),
        case(
            "component parts through a rule",
            r#"[:find [?n ...] :in $ % :where [?d :doc/title "Report"] (part-of ?p ?d) [?p :part/name ?n]]"#,
            &[In::Db, In::Rules(r#"[[(part-of ?p ?d) [?d :doc/parts ?p]] [(part-of ?p ?d) [?x :part/sub ?p] (part-of ?x ?d)]]"#)],
            r#"["Body" "Intro" "Intro.1"]"#,
        ),
        case(
            "entities without a value, by not and missing?",
            "[:find ?n :where [?e :name ?n] (not [?e :height]) [(missing? $ ?e :email)]]",
            DB,
            r#"#{["Anna"] ["Olga"]}"#,
        ),
    ];
    let graph_cases = [
        Case {
            name: "mutual recursion: odd paths",
            data: Data::Graph,
            query: "[:find (count ?b) . :in $ % :where [?a :node/id 1] (odd-path ?a ?b)]",
            inputs: &[In::Db, In::Rules(PATHS)],
            expected: "30",
        },
        Case {
            name: "mutual recursion: even paths",
            data: Data::Graph,
            query: "[:find (count ?b) . :in $ % :where [?a :node/id 1] (even-path ?a ?b)]",
            inputs: &[In::Db, In::Rules(PATHS)],
            expected: "29",
        },
        Case {
            name: "transitive closure, doubly recursive",
            data: Data::Graph,
            query: "[:find (count ?b) . :in $ % :where [?a :node/id 50] (after ?a ?b)]",
            inputs: &[In::Db, In::Rules(CHAIN)],
            expected: "10",
        },
        Case {
            name: "transitive closure of the whole chain",
            data: Data::Graph,
            query: "[:find (count ?a) . :with ?b :in $ % :where (after ?a ?b)]",
            inputs: &[In::Db, In::Rules(CHAIN)],
            expected: "1770",
        },
    ];
    v.extend(graph_cases);
    v
}

fn inputs_for<'a>(db: &'a Db, ins: &'a [In]) -> Vec<Input<'a>> {
    ins.iter()
        .map(|i| match i {
            In::Db => Input::Db(db),
            In::Edn(t) => Input::Edn(t),
            In::Rules(t) => Input::Rules(t),
        })
        .collect()
}

/// The result as a value, collections and bags sorted (their order is not specified).
fn normalized(v: QueryValue, unordered: bool) -> QueryValue {
    match v {
        QueryValue::Vector(mut items) if unordered => {
            items.sort();
            QueryValue::Vector(items)
        }
        other => other,
    }
}

fn check(case: &Case, db: &Db, which: &str) {
    let result = q(case.query, &inputs_for(db, case.inputs))
        .unwrap_or_else(|e| panic!("{} ({which}): {e}\n{}", case.name, case.query));
    let unordered = matches!(result, QueryResult::Collection(_) | QueryResult::Bag(_));
    let got = normalized(result.to_value(), unordered);
    let want = normalized(
        QueryValue::from_edn(&parse(case.expected).unwrap()).unwrap(),
        unordered,
    );
    assert_eq!(
        got, want,
        "{} ({which}): got {got}, want {want}\n{}",
        case.name, case.query
    );
}

#[test]
fn corpus_runs_the_same_in_memory_and_lazily_restored() {
    let people_mem = people();
    let (people_lazy, people_store, _) = lazy_copy(&people_mem);
    let graph_mem = graph();
    let (graph_lazy, _, _) = lazy_copy(&graph_mem);
    let cases = corpus();
    assert!(cases.len() >= 150, "corpus has {} cases", cases.len());
    for c in &cases {
        let (mem, lazy) = match c.data {
            Data::People => (&people_mem, &people_lazy),
            Data::Graph => (&graph_mem, &graph_lazy),
        };
        check(c, mem, "in memory");
        check(c, lazy, "lazily restored");
    }
    assert!(people_store.loads() > 0, "the lazy db never loaded a node");
}

// ---- random aggregates and stddev ---------------------------------------------------------

#[test]
fn random_aggregates_have_the_right_shape() {
    let db = people();
    let ages = [15i64, 22, 37, 70];
    let r = q("[:find (rand ?a) . :where [_ :age ?a]]", &[Input::Db(&db)]).unwrap();
    let QueryResult::Scalar(Some(v)) = r else {
        panic!("{r:?}")
    };
    assert!(ages.contains(&v.as_long().unwrap()));
    let r = q(
        "[:find (rand 5 ?a) . :where [_ :age ?a]]",
        &[Input::Db(&db)],
    )
    .unwrap();
    let QueryResult::Scalar(Some(QueryValue::Vector(vs))) = r else {
        panic!("{r:?}")
    };
    assert_eq!(vs.len(), 5);
    assert!(vs.iter().all(|v| ages.contains(&v.as_long().unwrap())));
    let r = q(
        "[:find (sample 3 ?a) . :where [_ :age ?a]]",
        &[Input::Db(&db)],
    )
    .unwrap();
    let QueryResult::Scalar(Some(QueryValue::Vector(mut vs))) = r else {
        panic!("{r:?}")
    };
    assert_eq!(vs.len(), 3);
    vs.sort();
    vs.dedup();
    assert_eq!(vs.len(), 3, "sample draws without replacement");
    let r = q(
        "[:find (stddev ?a) . :where [_ :age ?a]]",
        &[Input::Db(&db)],
    )
    .unwrap();
    assert_eq!(
        r,
        QueryResult::Scalar(Some(QueryValue::Value(
            Value::double(448.5f64.sqrt()).unwrap()
        )))
    );
}

// ---- custom functions ---------------------------------------------------------------------

#[test]
fn custom_predicates_functions_and_aggregates() {
    let db = people();
    let fns = Functions::new()
        .predicate("teen?", |args| {
            args[0].as_long().is_some_and(|a| (13..20).contains(&a))
        })
        .function("initial", |args| {
            let s = args[0].as_str().ok_or("not a string")?;
            Ok(QueryValue::string(&s[..1]))
        })
        .aggregate("longest", |_, vals| {
            Ok(vals
                .iter()
                .max_by_key(|v| v.as_str().map_or(0, str::len))
                .cloned()
                .unwrap_or(QueryValue::Nil))
        })
        .function("upper", |args| {
            Ok(QueryValue::string(
                &args[0].as_str().unwrap_or("").to_uppercase(),
            ))
        });
    let r = q_with(
        "[:find [?i ...] :where [?e :age ?a] [(teen? ?a)] [?e :name ?n] [(initial ?n) ?i]]",
        &[Input::Db(&db)],
        &fns,
    )
    .unwrap();
    assert_eq!(r.to_string(), r#"["I"]"#);
    let r = q_with(
        "[:find (longest ?n) . :where [_ :part/name ?n]]",
        &[Input::Db(&db)],
        &fns,
    )
    .unwrap();
    assert_eq!(r.to_string(), r#""Intro.1""#);
    // A failing registered function is a typed error naming it.
    let err = q_with(
        "[:find ?i :where [?e :age ?a] [(initial ?a) ?i]]",
        &[Input::Db(&db)],
        &fns,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::QueryEval { function, reason, .. } if function == "initial" && reason == "not a string"),
        "{err:?}"
    );
    // :xform in pull uses registered functions too.
    let r = q_with(
        "[:find (pull ?e [[:name :xform upper]]) . :where [?e :age 15]]",
        &[Input::Db(&db)],
        &fns,
    )
    .unwrap();
    assert_eq!(r.to_string(), r#"{:name "IVAN"}"#);
}

// ---- errors -------------------------------------------------------------------------------

fn err(query: &str, inputs: &[Input<'_>]) -> Error {
    match q(query, inputs) {
        Err(e) => e,
        Ok(r) => panic!("expected an error for {query}, got {r}"),
    }
}

#[test]
fn errors_are_typed_and_name_the_clause() {
    let db = people();
    let d = Input::Db(&db);
    let rules = Input::Rules("[[(r ?x) [?x :name]]]");

    let e = err(
        "[:find ?e :where [?e :age ?a] [(foo ?a)]]",
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::UnknownFunction { name, clause } if name == "foo" && clause == "[(foo ?a)]"),
        "{e:?}"
    );

    let e = err(
        "[:find ?e :where [?e :name ?n] [(subs ?n) ?x]]",
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::WrongArity { name, got: 1, .. } if name == "subs"),
        "{e:?}"
    );

    let e = err(
        "[:find ?e :where [?e :age ?a] [(> ?b 1)]]",
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::UnboundVariable { var, clause } if var == "?b" && clause == "[(> ?b 1)]"),
        "{e:?}"
    );

    let e = err("[:find ?x :where [?e :age ?a]]", std::slice::from_ref(&d));
    assert!(
        matches!(&e, Error::UnboundVariable { var, .. } if var == "?x"),
        "{e:?}"
    );

    let e = err(
        "[:find ?e :in $ % :where (nope ?e)]",
        &[d.clone(), rules.clone()],
    );
    assert!(
        matches!(&e, Error::UnknownRule { name, clause } if name == "nope" && clause == "(nope ?e)"),
        "{e:?}"
    );

    let e = err(
        "[:find ?e :in $ % :where (r ?e ?f)]",
        &[d.clone(), rules.clone()],
    );
    assert!(
        matches!(&e, Error::WrongArity { name, got: 2, .. } if name == "r"),
        "{e:?}"
    );

    let e = err(
        r#"[:find ?e :where [?e :age ?a] "oops"]"#,
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::QueryParse { clause, .. } if clause == "\"oops\""),
        "{e:?}"
    );

    let e = err(
        "[:find ?e :where [?e :age ?a] (not-join ?e [?e :a])]",
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::QueryParse { clause, .. } if clause == "(not-join ?e [?e :a])"),
        "{e:?}"
    );

    let e = err(
        "[:find ?e :where [?e :name] (or [?e :age ?a] [?e :city ?c])]",
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::QueryParse { reason, clause } if reason.contains("free vars") && clause.starts_with("(or")),
        "{e:?}"
    );

    let e = err(
        "[:find ?e :in $ ?n :where [?e :name ?n]]",
        std::slice::from_ref(&d),
    );
    assert!(matches!(e, Error::QueryInput { .. }), "{e:?}");

    let e = err("[:find ?x :in [?x ?y]]", &[Input::Edn("1")]);
    assert!(matches!(e, Error::QueryInput { .. }), "{e:?}");

    let e = err(
        "[:find ?x :where [?e :name ?n] [(+ ?n 1) ?x]]",
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::QueryEval { function, clause, .. } if function == "+" && clause == "[(+ ?n 1) ?x]"),
        "{e:?}"
    );

    let e = err("[:find ?x :where [(/ 1 0) ?x]]", &[]);
    assert!(
        matches!(&e, Error::QueryEval { reason, .. } if reason.contains("divide by zero")),
        "{e:?}"
    );

    let e = err("[:find ?x :where [?e :name ?n", std::slice::from_ref(&d));
    assert!(matches!(e, Error::EdnSyntax { .. }), "{e:?}");

    let e = err(
        "[:find ?h :where [?e :name] [(get-else $ ?e :height nil) ?h]]",
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::QueryEval { function, .. } if function == "get-else"),
        "{e:?}"
    );

    let e = err(
        r#"[:find ?a :where [[:name "Nobody"] :age ?a]]"#,
        std::slice::from_ref(&d),
    );
    assert!(matches!(e, Error::UnknownLookupRef { .. }), "{e:?}");

    let e = err(
        r#"[:find ?a :where [[:city "SPb"] :age ?a]]"#,
        std::slice::from_ref(&d),
    );
    assert!(matches!(e, Error::LookupRefNotUnique { .. }), "{e:?}");

    let e = err(
        "[:find ?e :where [?e :name] (or-join [[?x] ?e] [?e :age ?x])]",
        std::slice::from_ref(&d),
    );
    assert!(matches!(e, Error::UnboundVariable { .. }), "{e:?}");

    let older = Input::Rules(OLDER);
    let e = err(
        "[:find ?b :in $ % :where (older ?a ?b)]",
        &[d.clone(), older],
    );
    assert!(
        matches!(&e, Error::UnboundVariable { var, .. } if var.contains("?a")),
        "{e:?}"
    );

    let e = err(
        "[:find (pull ?e [{:name [:x]}]) :where [?e :name]]",
        std::slice::from_ref(&d),
    );
    assert!(matches!(e, Error::PullPattern { .. }), "{e:?}");

    let e = err(
        "[:find (frobnicate ?e) :where [?e :name]]",
        std::slice::from_ref(&d),
    );
    assert!(
        matches!(&e, Error::UnknownFunction { name, .. } if name == "frobnicate"),
        "{e:?}"
    );

    let e = err(
        "[:find (sample ?e) :where [?e :name]]",
        std::slice::from_ref(&d),
    );
    assert!(matches!(e, Error::WrongArity { .. }), "{e:?}");

    let e = err(
        "[:find ?x :in $ ?x :where (not [?e :a 1])]",
        &[d.clone(), Input::Edn("1")],
    );
    assert!(matches!(e, Error::UnboundVariable { .. }), "{e:?}");

    let e = err(
        "[:find ?e :where [?e :age ?a] [(re-find \"(\" ?a)]]",
        std::slice::from_ref(&d),
    );
    assert!(matches!(e, Error::QueryEval { .. }), "{e:?}");

    let e = err("[:find ?x :where [(ground 1) [?x ?y]]]", &[]);
    assert!(
        matches!(&e, Error::QueryEval { function, .. } if function == "ground"),
        "{e:?}"
    );
}

#[test]
fn malformed_queries_never_panic() {
    let db = people();
    let texts = [
        "",
        "[]",
        "{}",
        "[:find]",
        "[:find ?e :where]",
        "[:find ?e :where []]",
        "[:find ?e :where [()]]",
        "[:find ?e :where (or)]",
        "[:find ?e :where (or-join [] [?e :a])]",
        "[:find [] :where [?e :a]]",
        "[:find [?e ...] . :where [?e :a]]",
        "[:find ?e :in [] :where [?e :a]]",
        "[:find ?e :in $ $ :where [?e :a]]",
        "[:find (pull) :where [?e :a]]",
        "[:find (pull ?e) :where [?e :a]]",
        "[:find (count) :where [?e :a]]",
        "[:find ?e :with :where [?e :a]]",
        "[:find ?e :keys :where [?e :a]]",
        "[:find ?e :where [?e :a] (not-join [] [?e :a])]",
        "[:find ?e :where [?e :a ?v ?tx true extra]]",
        "[:find ?e :where [(?f ?e)]]",
        "[:find ?e :where [(f ?e) ?a ?b]]",
        "[:find ?e :where [1 2 3] :where [?e :a]]",
        "(:find ?e)",
        "42",
        "[:find ?e :bogus 1 :where [?e :a]]",
        "[:find ?e :where [?e :a nil]]",
        "[:find ?e :where [?e :a] (and [?e :b])]",
        "[:find ?e :where [$ (f)]]",
        "[:find ?e :in $ % :where [?e :a] (r)]",
        "[:find ?e :where [?e :a] [(str ?e) [?x ... ?y]]]",
        "[:find ?e ?e :where [?e :a]]",
        "[:find ?e :with ?e :where [?e :a]]",
    ];
    for t in texts {
        let n = Query::parse(t).map(|qq| qq.inputs().len());
        let inputs: Vec<Input<'_>> = match n {
            Ok(n) => (0..n).map(|_| Input::Db(&db)).collect(),
            Err(_) => Vec::new(),
        };
        let _ = q(t, &inputs);
    }
}

// ---- pull -------------------------------------------------------------------------------

const PULLS: &[(&str, u64, &str)] = &[
    ("[:name :age]", 1, r#"{:name "Ivan", :age 15}"#),
    (
        "[*]",
        2,
        r#"{:db/id 2, :name "Petr", :last "Petrov", :age 37, :sex :male, :city "Moscow",
            :friend [{:db/id 3}], :follows {:db/id 3}, :parent [{:db/id 4}], :email "petr@example.com"}"#,
    ),
    (
        "[:name {:friend [:name]}]",
        1,
        r#"{:name "Ivan", :friend [{:name "Petr"} {:name "Oleg"}]}"#,
    ),
    (
        "[:name :_friend]",
        3,
        r#"{:name "Oleg", :_friend [{:db/id 1} {:db/id 2}]}"#,
    ),
    (
        "[{:_parent [:name]}]",
        4,
        r#"{:_parent [{:name "Petr"} {:name "Oleg"}]}"#,
    ),
    (
        r#"[[:name :as "n"] (:age :as :years)]"#,
        1,
        r#"{"n" "Ivan", :years 15}"#,
    ),
    ("[(:aka :limit 1)]", 1, r#"{:aka ["Terrible"]}"#),
    ("[[:aka :limit nil]]", 1, r#"{:aka ["Terrible" "Vanya"]}"#),
    (
        "[(:height :default 0.0) :name]",
        2,
        r#"{:height 0.0, :name "Petr"}"#,
    ),
    ("[(limit :friend 1)]", 1, "{:friend [{:db/id 2}]}"),
    ("[(default :height 1)]", 4, "{:height 1}"),
    (
        "[:name {:follows ...}]",
        1,
        r#"{:name "Ivan", :follows {:name "Petr", :follows {:name "Oleg", :follows {:name "Ivan", :follows {:db/id 2}}}}}"#,
    ),
    (
        "[:name {:follows 2}]",
        1,
        r#"{:name "Ivan", :follows {:name "Petr", :follows {:name "Oleg"}}}"#,
    ),
    (
        "[:name {:parent ...}]",
        2,
        r#"{:name "Petr", :parent [{:name "Anna", :parent [{:name "Olga"}]}]}"#,
    ),
    (
        "[:doc/title :doc/parts]",
        10,
        r#"{:doc/title "Report", :doc/parts [{:db/id 11, :part/name "Intro", :part/sub [{:db/id 13, :part/name "Intro.1"}]}
                                            {:db/id 12, :part/name "Body"}]}"#,
    ),
    ("[:doc/_parts]", 11, "{:doc/_parts {:db/id 10}}"),
    (
        "[*]",
        10,
        r#"{:db/id 10, :doc/title "Report", :doc/author {:db/id 1},
            :doc/parts [{:db/id 11, :part/name "Intro", :part/sub [{:db/id 13, :part/name "Intro.1"}]}
                        {:db/id 12, :part/name "Body"}]}"#,
    ),
    (
        "[:doc/title {:doc/parts [:part/name]}]",
        10,
        r#"{:doc/title "Report", :doc/parts [{:part/name "Intro"} {:part/name "Body"}]}"#,
    ),
    (
        "[:name {:doc/_author [:doc/title]}]",
        1,
        r#"{:name "Ivan", :doc/_author [{:doc/title "Report"}]}"#,
    ),
    ("[:name]", 999, "nil"),
    ("[:db/id :name]", 999, "{:db/id 999}"),
    ("[[:age :xform str]]", 1, r#"{:age "15"}"#),
    (
        "[* {:friend [:name]}]",
        4,
        r#"{:db/id 4, :name "Anna", :last "Petrova", :age 22, :sex :female, :city "SPb", :parent [{:db/id 5}], :friend [{:name "Ivan"}]}"#,
    ),
];

#[test]
fn pull_patterns_in_memory_and_lazily_restored() {
    let mem = people();
    let (lazy, _, _) = lazy_copy(&mem);
    for db in [&mem, &lazy] {
        for (pattern, eid, expected) in PULLS {
            let got = db
                .pull(pattern, *eid)
                .unwrap_or_else(|e| panic!("{pattern} {eid}: {e}"));
            let want = QueryValue::from_edn(&parse(expected).unwrap()).unwrap();
            assert_eq!(got, want, "{pattern} of {eid}: got {got}");
        }
        let many = db.pull_many("[:name]", &[1, 5, 999]).unwrap();
        assert_eq!(
            QueryValue::Vector(many).to_string(),
            r#"[{:name "Ivan"} {:name "Olga"} nil]"#
        );
    }
}

#[test]
fn pull_pattern_errors() {
    let db = people();
    for bad in [
        "[{:name [:x]}]",
        "[:_name]",
        "[(:age :limit 2)]",
        "[(:name :bogus 1)]",
        "[[:name :xform no-such-fn]]",
        "[{:friend 0}]",
        ":name",
        "[42]",
        "[(:name :as)]",
    ] {
        let e = db.pull(bad, 1).unwrap_err();
        assert!(matches!(e, Error::PullPattern { .. }), "{bad}: {e:?}");
    }
}

#[test]
fn deep_recursive_pulls_answer_without_overflowing() {
    let g = graph();
    let v = g.pull("[:node/id {:node/next ...}]", 1).unwrap();
    let mut depth = 0;
    let mut cur = &v;
    while let QueryValue::Map(m) = cur {
        depth += 1;
        match m.get(&QueryValue::keyword("node/next")) {
            Some(next) => cur = next,
            None => break,
        }
    }
    assert_eq!(depth, GRAPH_NODES as usize);
    // A long chain answers whole (no nesting cap), and a recursion limit cuts it.
    let n = 600;
    let mut tx = String::from("[");
    for i in 1..=n {
        tx.push_str(&format!("{{:db/id {i} :node/id {i} :node/next {}}}", i + 1));
    }
    tx.push(']');
    let long = Db::new(
        parse_schema(
            "{:node/id {:db/unique :db.unique/identity} :node/next {:db/valueType :db.type/ref}}",
        )
        .unwrap(),
    )
    .with_edn(&tx)
    .unwrap()
    .db_after;
    let depth_of = |v: &QueryValue| {
        let (mut depth, mut cur) = (0, v);
        while let QueryValue::Map(m) = cur {
            depth += 1;
            match m.get(&QueryValue::keyword("node/next")) {
                Some(next) => cur = next,
                None => break,
            }
        }
        depth
    };
    assert_eq!(
        depth_of(&long.pull("[:node/id {:node/next ...}]", 1).unwrap()),
        n
    );
    assert_eq!(
        depth_of(&long.pull("[:node/id {:node/next 100}]", 1).unwrap()),
        101
    );
}

// ---- entities ---------------------------------------------------------------------------

#[test]
fn entities_are_lazy_views() {
    let mem = people();
    let (lazy, store, _) = lazy_copy(&mem);
    for db in [&mem, &lazy] {
        let ivan = db.entity(1);
        assert_eq!(ivan.id(), 1);
        assert_eq!(
            ivan.get(":name").unwrap(),
            Some(EntityValue::Value(Value::string("Ivan")))
        );
        assert_eq!(
            ivan.get(":db/id").unwrap(),
            Some(EntityValue::Value(Value::Long(1)))
        );
        assert_eq!(ivan.get(":nope").unwrap(), None);
        assert_eq!(
            ivan.get(":aka").unwrap().unwrap().to_string(),
            r#"["Terrible" "Vanya"]"#
        );
        let Some(EntityValue::Entity(petr)) = ivan.get(":follows").unwrap() else {
            panic!("a ref is an entity")
        };
        assert_eq!(petr.id(), 2);
        assert_eq!(
            petr.get(":age").unwrap(),
            Some(EntityValue::Value(Value::Long(37)))
        );
        let Some(EntityValue::Many(friends)) = ivan.get(":friend").unwrap() else {
            panic!("cardinality many")
        };
        assert_eq!(friends.len(), 2);
        assert_eq!(
            ivan.get(":_friend").unwrap().unwrap().to_string(),
            "[#entity 4]"
        );
        assert_eq!(
            ivan.get(":_follows").unwrap().unwrap().to_string(),
            "[#entity 3]"
        );
        // The reverse of a component attribute is one entity.
        assert_eq!(
            db.entity(11)
                .get(":doc/_parts")
                .unwrap()
                .unwrap()
                .to_string(),
            "#entity 10"
        );
        let touched = ivan.touch().unwrap();
        assert_eq!(touched.len(), 10);
        assert_eq!(ivan.keys().unwrap().len(), 10);
        assert!(ivan.exists().unwrap());
        assert!(!db.entity(999).exists().unwrap());
        assert_eq!(db.entity(999).to_value().unwrap(), QueryValue::Nil);
        assert_eq!(
            db.entity(11).to_value().unwrap().to_string(),
            r#"{:db/id 11, :part/name "Intro", :part/sub [{:db/id 13, :part/name "Intro.1"}]}"#
        );
    }
    // Reading one attribute of a lazy entity loads only the nodes on its path.
    let before = store.loads();
    let e = lazy.entity(3);
    assert_eq!(store.loads(), before, "making an entity reads nothing");
    e.get(":age").unwrap();
    let one = store.loads() - before;
    assert!(one <= 3, "one attribute loaded {one} nodes");
}

// ---- results ------------------------------------------------------------------------------

#[test]
fn results_print_as_edn_and_json_and_tabulate() {
    let db = people();
    let query =
        Query::parse("[:find ?n ?a :where [?e :name ?n] [?e :age ?a] [(> ?a 36)]]").unwrap();
    assert_eq!(query.columns(), vec!["?n", "?a"]);
    let r = query.run(&[Input::Db(&db)]).unwrap();
    assert_eq!(r.to_string(), r#"#{["Oleg" 37] ["Olga" 70] ["Petr" 37]}"#);
    assert_eq!(r.to_json(), r#"[["Oleg",37],["Olga",70],["Petr",37]]"#);
    assert_eq!(
        r.to_table(&query.columns()),
        "?n      ?a\n\"Oleg\"  37\n\"Olga\"  70\n\"Petr\"  37\n"
    );
    assert_eq!(r.len(), 3);
    assert_eq!(
        r.rows()[2],
        vec![QueryValue::string("Petr"), QueryValue::long(37)]
    );
    let r = q(
        "[:find ?n ?s :keys name sex :where [?e :name ?n] [?e :sex ?s] [?e :age 22]]",
        &[Input::Db(&db)],
    )
    .unwrap();
    // Keywords keep their colon, as keys and as values: `:female` is no string.
    assert_eq!(r.to_json(), r#"[{":name":"Anna",":sex":":female"}]"#);
    assert_eq!(r.to_table(&[]), ":name   :sex\n\"Anna\"  :female\n");
    let r = q(
        r#"[:find ?a . :where [?e :name "Nobody"] [?e :age ?a]]"#,
        &[Input::Db(&db)],
    )
    .unwrap();
    assert!(r.is_empty());
    assert_eq!(r.to_json(), "null");
    // Rust-built inputs: collections, relations, refs read as entity ids.
    let r = q(
        "[:find [?n ...] :in $ [?e ...] :where [?e :name ?n]]",
        &[
            Input::Db(&db),
            Input::Collection(vec![QueryValue::from(Value::Ref(2)), QueryValue::long(3)]),
        ],
    )
    .unwrap();
    assert_eq!(r.to_string(), r#"["Oleg" "Petr"]"#);
    let r = q(
        "[:find ?n :in $ [[?e ?min]] :where [?e :age ?a] [(>= ?a ?min)] [?e :name ?n]]",
        &[
            Input::Db(&db),
            Input::Relation(vec![vec![1.into(), 10.into()], vec![4.into(), 30.into()]]),
        ],
    )
    .unwrap();
    assert_eq!(r.to_string(), r#"#{["Ivan"]}"#);
}

// ---- lazily restored dbs load only what a query touches ---------------------------------

#[test]
fn selective_queries_on_a_lazy_db_load_few_nodes() {
    let schema = parse_schema(
        "{:name {:db/unique :db.unique/identity} :age {:db/index true}
          :friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}",
    )
    .unwrap();
    let mut tx = String::from("[");
    let n = 4000;
    for i in 1..=n {
        tx.push_str(&format!(
            "{{:db/id {i} :name \"p{i}\" :age {} :city \"c{}\" :friend [{}]}}",
            i % 90,
            i % 17,
            i % n + 1
        ));
    }
    tx.push(']');
    let db = Db::with_config(
        schema,
        TreeConfig {
            leaf_target: 32,
            branch_target: 8,
        },
    )
    .with_edn(&tx)
    .unwrap()
    .db_after;
    let (lazy, store, total) = lazy_copy(&db);
    assert!(total > 500, "the db has {total} nodes");

    let run = |query: &str, inputs: &[Input<'_>]| -> (QueryResult, usize) {
        let before = store.loads();
        let r = q(query, inputs).unwrap();
        (r, store.loads() - before)
    };
    // Written with the unselective clause first: the planner starts from the unique name.
    let (r, loads) = run(
        "[:find ?a . :in $ ?n :where [?e :age ?a] [?e :name ?n]]",
        &[Input::Db(&lazy), Input::Edn("\"p1234\"")],
    );
    assert_eq!(r.to_string(), (1234 % 90).to_string());
    assert!(loads * 50 < total, "loaded {loads} of {total} nodes");
    assert_eq!(
        q(
            "[:find ?a . :in $ ?n :where [?e :age ?a] [?e :name ?n]]",
            &[Input::Db(&db), Input::Edn("\"p1234\"")]
        )
        .unwrap(),
        r
    );

    // A two-hop join from one entity.
    let (r, loads) = run(
        "[:find ?fname . :in $ ?n :where [?e :name ?n] [?e :friend ?f] [?f :name ?fname]]",
        &[Input::Db(&lazy), Input::Edn("\"p77\"")],
    );
    assert_eq!(r.to_string(), "\"p78\"");
    assert!(loads * 30 < total, "loaded {loads} of {total} nodes");

    // Reverse lookup through AVET of a ref attribute, then pull.
    let (r, loads) = run(
        "[:find (pull ?e [:name :age]) . :in $ ?f :where [?e :friend ?f]]",
        &[Input::Db(&lazy), Input::Edn("500")],
    );
    assert_eq!(r.to_string(), "{:age 49, :name \"p499\"}");
    assert!(loads * 30 < total, "loaded {loads} of {total} nodes");

    // A recursive rule with its first argument bound walks only the chain it needs.
    let (r, loads) = run(
        "[:find (count ?x) . :in $ % ?n :where [?e :name ?n] (hops ?e ?x)]",
        &[
            Input::Db(&lazy),
            Input::Rules("[[(hops ?a ?b) [?a :friend ?b] [?b :age ?g] [(> ?g 3)]] [(hops ?a ?b) [?a :friend ?x] [?x :age ?g] [(> ?g 3)] (hops ?x ?b)]]"),
            Input::Edn("\"p10\""),
        ],
    );
    // From p10 the chain p11, p12, … continues while ages stay above 3: p11..p89.
    assert_eq!(r.to_string(), "79");
    assert!(loads * 2 < total, "loaded {loads} of {total} nodes");

    // A range over an indexed attribute reads only the AVET nodes of that range.
    let (r, loads) = run(
        "[:find (count ?e) . :where [?e :age 42]]",
        &[Input::Db(&lazy)],
    );
    assert_eq!(
        r.to_string(),
        (n / 90 + usize::from(n % 90 >= 42)).to_string()
    );
    assert!(loads * 10 < total, "loaded {loads} of {total} nodes");
}

#[test]
fn deeply_nested_clauses_are_an_error_or_run_without_overflowing() {
    let db = people();
    let nest = |levels: usize| {
        let mut clause = "[?e :age 15]".to_owned();
        for _ in 0..levels {
            clause = format!("(or (and [?e :name] {clause}) [?e :age 15])");
        }
        format!("[:find [?e ...] :where [?e :name] {clause}]")
    };
    let r = q(&nest(48), &[Input::Db(&db)]).unwrap();
    assert_eq!(r.to_string(), "[1]");
    let e = q(&nest(200), &[Input::Db(&db)]).unwrap_err();
    assert!(matches!(e, Error::QueryParse { .. }), "{e:?}");
    let mut nots = "[?e :age 15]".to_owned();
    for _ in 0..48 {
        nots = format!("(not {nots})");
    }
    // An even number of negations: the people aged 15.
    let r = q(
        &format!("[:find [?e ...] :where [?e :name] {nots}]"),
        &[Input::Db(&db)],
    )
    .unwrap();
    assert_eq!(r.to_string(), "[1]");
}
