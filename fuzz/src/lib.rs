//! Shared pieces of the datoms-core fuzz targets: the schema and small database the
//! text targets run against, and the byte interpreter of the structure-aware tree target.
//!
//! Every target checks the same three things on every input: no panic, memory bounded by
//! the input (libFuzzer's `-rss_limit_mb` / `-malloc_limit_mb` catch an allocation sized
//! from a length field), no stack overflow from nesting; and where a format promises one
//! encoding, that a decoded value re-encodes to bytes that decode to the same value.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use datoms_core::edn::parse_schema;
use datoms_core::{Datom, Db, IndexKind, Keyword, TreeConfig, Value};

/// The schema of [`sample_db`]: one attribute of each value type, a unique identity, a
/// unique value, cardinality many, refs and a component ref, so tx data and pull patterns
/// reach every branch of the schema rules.
pub const SCHEMA: &str = r#"{
 :name    {:db/valueType :db.type/string :db/unique :db.unique/identity}
 :email   {:db/valueType :db.type/string :db/unique :db.unique/value}
 :age     {:db/valueType :db.type/long :db/index true}
 :score   {:db/valueType :db.type/double}
 :at      {:db/valueType :db.type/instant}
 :id      {:db/valueType :db.type/uuid}
 :blob    {:db/valueType :db.type/bytes}
 :ok      {:db/valueType :db.type/boolean}
 :kind    {:db/valueType :db.type/keyword}
 :aka     {:db/cardinality :db.cardinality/many}
 :friend  {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
 :parent  {:db/valueType :db.type/ref}
 :part    {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many :db/isComponent true}}"#;

/// The data of [`sample_db`]: entities 1 to 6, with refs in a cycle.
pub const DATA: &str = r#"[
 {:db/id 1 :name "Ivan" :email "ivan@example.com" :age 15 :score 1.5 :aka ["Vanya" "V"]
  :friend [2 3] :kind :male :ok true :at #inst "2020-01-01T00:00:00Z"}
 {:db/id 2 :name "Petr" :age 37 :friend [3] :parent 1 :id #uuid "5b2a6bb5-5d63-4d57-a3b6-3b7d0f6d5d6a"}
 {:db/id 3 :name "Oleg" :age 37 :friend [1] :parent 2 :part [4 5]}
 {:db/id 4 :name "Part A" :part [6]}
 {:db/id 5 :name "Part B" :aka ["b"]}
 {:db/id 6 :name "Part A.1" :score -0.0}]"#;

/// Small nodes, so a few dozen datoms already make trees several levels deep.
pub fn small_config() -> TreeConfig {
    TreeConfig {
        leaf_target: 4,
        branch_target: 4,
    }
}

/// The database the text targets run against: [`SCHEMA`] with [`DATA`], small nodes.
///
/// # Panics
/// If the fixed schema or data stop parsing (a bug in the fuzz crate, not an input).
pub fn sample_db() -> Db {
    #[allow(clippy::expect_used)]
    let schema = parse_schema(SCHEMA).expect("the fuzz schema parses");
    #[allow(clippy::expect_used)]
    Db::with_config(schema, small_config())
        .with_edn(DATA)
        .expect("the fuzz data transacts")
        .db_after
}

/// Reads fuzzer bytes as a stream of small choices; past the end every read is zero, so
/// every input is a valid program.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes, little endian.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }
}

/// A datom key in one index's order, for the model of a tree.
#[derive(Clone, Debug)]
pub struct Key(pub IndexKind, pub Datom);

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        self.0.cmp(&self.1, &other.1)
    }
}

/// The model of a tree: its datoms by key, in index order.
pub type Model = BTreeMap<Key, Datom>;

const ATTRS: [&str; 6] = [":a", ":b", ":b/c", ":name", ":zz/long-attribute-name", ":é"];

/// A datom drawn from the reader: a small entity space and attribute set, so edits
/// collide often, and values of every type, from tiny to past the out-of-line size.
pub fn datom(r: &mut Bytes<'_>) -> Datom {
    let e = u64::from(r.u8() % 48) + 1;
    let a = Keyword::from(ATTRS[usize::from(r.u8()) % ATTRS.len()]);
    let v = value(r);
    let tx = datoms_core::TX0 + u64::from(r.u8() % 8);
    Datom::new(e, a, v, tx)
}

fn value(r: &mut Bytes<'_>) -> Value {
    let tag = r.u8();
    let small = i64::from(r.u8());
    match tag % 10 {
        0 => Value::Bool(small & 1 == 1),
        1 => Value::Long(small - 128),
        2 => Value::Long(i64::from(r.u16()) << 40),
        3 => Value::double((small as f64) / 4.0 - 16.0).unwrap_or(Value::Long(0)),
        4 => Value::Instant(small * 1000),
        5 => Value::String(format!("s{small}").into()),
        // Long values: inline near the limit, out of line past it.
        6 => {
            let len = usize::from(r.u16()) % 2048;
            Value::String("x".repeat(len).into())
        }
        7 => Value::Keyword(Keyword::from(format!(":k/{small}").as_str())),
        8 => Value::Bytes(vec![small as u8; usize::from(r.u8()) % 40].into()),
        _ => Value::Ref(small.unsigned_abs() % 48 + 1),
    }
}
