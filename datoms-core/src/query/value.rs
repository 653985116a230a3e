//! [`QueryValue`]: the values queries bind, compute and return.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::function::QueryFn;
use crate::edn::{value_to_edn, Edn};
use crate::error::Error;
use crate::value::{Keyword, Value};

/// A value in a query: what variables are bound to, what functions return and what
/// results hold.
///
/// As in Datascript, an entity id is a number: entity positions of data patterns and
/// ref attributes bind [`Value::Long`]s, so `?e` from `[?e :person/friend ?f]` joins
/// with `?f`. A [`Value::Ref`] given as an input is read as the same number. Beyond
/// datom values a query handles `nil`, symbols, vectors (tuples), sets and maps (pull
/// results, `:keys` rows).
///
/// Equality is exact (`1` is not `1.0`, as Clojure's `=`), and the order is total:
/// `nil` first, then datom values (numbers compare numerically across longs and
/// doubles, a long before an equal double; other types as [`Value`]'s order), then
/// symbols, vectors, sets, maps and functions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum QueryValue {
    /// `nil`.
    Nil,
    /// A datom value; never a [`Value::Ref`] (refs read as longs).
    Value(Value),
    /// A symbol, e.g. a `:syms` key or `*` in a pull pattern given as an input.
    Symbol(Arc<str>),
    /// A vector: a tuple, a collection, a cardinality-many pull value.
    Vector(Vec<QueryValue>),
    /// A set.
    Set(BTreeSet<QueryValue>),
    /// A map: a pull result or a `:keys`/`:strs`/`:syms` row.
    Map(BTreeMap<QueryValue, QueryValue>),
    /// A function: a Rust function given as an input, or what `complement` returns.
    Fn(QueryFn),
}

impl QueryValue {
    /// A long.
    pub fn long(i: i64) -> QueryValue {
        QueryValue::Value(Value::Long(i))
    }

    /// A string.
    pub fn string(s: &str) -> QueryValue {
        QueryValue::Value(Value::string(s))
    }

    /// A keyword (leading `:` optional).
    pub fn keyword(k: &str) -> QueryValue {
        QueryValue::Value(Value::keyword(k))
    }

    /// A boolean.
    pub fn bool(b: bool) -> QueryValue {
        QueryValue::Value(Value::Bool(b))
    }

    /// An entity id, as a query sees it (a long).
    pub fn entity(e: u64) -> QueryValue {
        QueryValue::Value(Value::Long(i64::try_from(e).unwrap_or(i64::MAX)))
    }

    /// A datom value as a query sees it: a ref becomes a long; a symbol, vector, set or
    /// map stored as a value becomes the query's own symbol, vector, set or map, so a
    /// stored `[1 2]` equals the `[1 2]` a query builds.
    pub fn from_value(v: Value) -> QueryValue {
        let element = |e: &crate::value::Element| match e {
            None => QueryValue::Nil,
            Some(v) => QueryValue::from_value(v.clone()),
        };
        match v {
            Value::Ref(e) => QueryValue::entity(e),
            Value::Symbol(s) => QueryValue::Symbol(Arc::from(s.as_str())),
            Value::Vector(items) => QueryValue::Vector(items.iter().map(element).collect()),
            Value::Set(set) => QueryValue::Set(set.iter().map(element).collect()),
            Value::Map(map) => {
                QueryValue::Map(map.iter().map(|(k, v)| (element(k), element(v))).collect())
            }
            v => QueryValue::Value(v),
        }
    }

    /// The datom value this query value stands for, the inverse of
    /// [`QueryValue::from_value`] (an entity id stays a long): a symbol, vector, set or
    /// map becomes a composite [`Value`]. `None` for `nil` and for what cannot be
    /// stored (a symbol EDN would not read back, a collection too large).
    pub fn to_datom_value(&self) -> Option<Value> {
        let element = |q: &QueryValue| match q {
            QueryValue::Nil => Some(None),
            q => q.to_datom_value().map(Some),
        };
        let v = match self {
            // A function is no value a datom can hold.
            QueryValue::Nil | QueryValue::Fn(_) => return None,
            QueryValue::Value(v) => return Some(v.clone()),
            QueryValue::Symbol(s) => Value::Symbol(crate::value::Symbol::parse(s).ok()?),
            QueryValue::Vector(items) => {
                Value::Vector(items.iter().map(element).collect::<Option<_>>()?)
            }
            QueryValue::Set(items) => Value::Set(crate::value::ValueSet::new(
                items.iter().map(element).collect::<Option<Vec<_>>>()?,
            )),
            QueryValue::Map(pairs) => Value::Map(
                crate::value::ValueMap::new(
                    pairs
                        .iter()
                        .map(|(k, v)| Some((element(k)?, element(v)?)))
                        .collect::<Option<Vec<_>>>()?,
                )
                .ok()?,
            ),
        };
        v.check_storable().ok()?;
        Some(v)
    }

    /// The datom value, if this is one.
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            QueryValue::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The long, if this is one.
    pub fn as_long(&self) -> Option<i64> {
        match self {
            QueryValue::Value(Value::Long(i)) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            QueryValue::Value(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The keyword, if this is one.
    pub fn as_keyword(&self) -> Option<&Keyword> {
        match self {
            QueryValue::Value(Value::Keyword(k)) => Some(k),
            _ => None,
        }
    }

    /// True for `nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, QueryValue::Nil)
    }

    /// Clojure truthiness: everything but `nil` and `false` is true.
    pub fn is_truthy(&self) -> bool {
        !matches!(
            self,
            QueryValue::Nil | QueryValue::Value(Value::Bool(false))
        )
    }

    /// The elements of a vector or set, in order; `None` for anything else.
    pub fn as_seq(&self) -> Option<Vec<&QueryValue>> {
        match self {
            QueryValue::Vector(items) => Some(items.iter().collect()),
            QueryValue::Set(items) => Some(items.iter().collect()),
            _ => None,
        }
    }

    /// Reads an EDN form as a query value: `nil`, scalars (as [`Edn::to_value`];
    /// characters become one-character strings), symbols, vectors and lists (both
    /// vectors), sets and maps.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a form that is no value (`##NaN`, an unknown tag).
    pub fn from_edn(form: &Edn) -> Result<QueryValue, Error> {
        Ok(match form {
            Edn::Nil => QueryValue::Nil,
            Edn::Char(c) => QueryValue::string(&c.to_string()),
            Edn::Symbol(s) => QueryValue::Symbol(Arc::from(s.as_str())),
            Edn::List(items) | Edn::Vector(items) => QueryValue::Vector(
                items
                    .iter()
                    .map(QueryValue::from_edn)
                    .collect::<Result<_, _>>()?,
            ),
            Edn::Set(items) => QueryValue::Set(
                items
                    .iter()
                    .map(QueryValue::from_edn)
                    .collect::<Result<_, _>>()?,
            ),
            Edn::Map(pairs) => QueryValue::Map(
                pairs
                    .iter()
                    .map(|(k, v)| Ok((QueryValue::from_edn(k)?, QueryValue::from_edn(v)?)))
                    .collect::<Result<_, Error>>()?,
            ),
            scalar => QueryValue::Value(scalar.to_value()?),
        })
    }

    /// The EDN form of this value (entity ids are plain integers).
    pub fn to_edn(&self) -> Edn {
        match self {
            QueryValue::Nil => Edn::Nil,
            QueryValue::Value(v) => value_to_edn(v),
            QueryValue::Symbol(s) => Edn::Symbol(s.to_string()),
            QueryValue::Vector(items) => {
                Edn::Vector(items.iter().map(QueryValue::to_edn).collect())
            }
            QueryValue::Set(items) => Edn::Set(items.iter().map(QueryValue::to_edn).collect()),
            QueryValue::Map(pairs) => Edn::Map(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_edn(), v.to_edn()))
                    .collect(),
            ),
            QueryValue::Fn(f) => Edn::Tagged(
                "object".into(),
                Box::new(Edn::Vector(vec![Edn::Symbol(f.name().to_owned())])),
            ),
        }
    }

    /// The value as JSON text that keeps every type:
    /// - `nil` is `null`; booleans, longs and entity ids are JSON literals and numbers;
    ///   a finite double is a number with a fraction or exponent (`1.0`), `##Inf`,
    ///   `##-Inf` and `##NaN` are `{"#double": "Infinity"}`, `"-Infinity"`, `"NaN"`;
    /// - a keyword is a string with its colon (`":person/name"`); a string is a string,
    ///   except one that starts with `:`, which is `{"#string": ":…"}` so that a JSON
    ///   string starting with `:` is always a keyword;
    /// - instants, uuids and bytes are `{"#inst": "2024-01-02T03:04:05.000Z"}`,
    ///   `{"#uuid": "…"}`, `{"#bytes": "base64"}` (the text of their EDN literal); a symbol
    ///   is `{"#symbol": "…"}`;
    /// - vectors and sets are arrays; maps are objects whose keys are their keys' text
    ///   (keywords with their colon, strings as they are, other values as EDN).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_json(&mut out, self);
        out
    }

    fn rank(&self) -> u8 {
        match self {
            QueryValue::Nil => 0,
            QueryValue::Value(_) => 1,
            QueryValue::Symbol(_) => 2,
            QueryValue::Vector(_) => 3,
            QueryValue::Set(_) => 4,
            QueryValue::Map(_) => 5,
            QueryValue::Fn(_) => 6,
        }
    }
}

impl From<Value> for QueryValue {
    fn from(v: Value) -> QueryValue {
        QueryValue::from_value(v)
    }
}

impl From<i64> for QueryValue {
    fn from(i: i64) -> QueryValue {
        QueryValue::long(i)
    }
}

impl From<&str> for QueryValue {
    fn from(s: &str) -> QueryValue {
        QueryValue::string(s)
    }
}

impl From<bool> for QueryValue {
    fn from(b: bool) -> QueryValue {
        QueryValue::bool(b)
    }
}

impl From<Vec<QueryValue>> for QueryValue {
    fn from(items: Vec<QueryValue>) -> QueryValue {
        QueryValue::Vector(items)
    }
}

/// Compares an integer with a finite double exactly.
pub(crate) fn cmp_long_double(a: i64, b: f64) -> Ordering {
    // Outside the i64 range the double decides on its own.
    // -2^63 and 2^63, exactly representable.
    const MIN: f64 = -9_223_372_036_854_775_808.0;
    const MAX: f64 = 9_223_372_036_854_775_808.0;
    if b < MIN {
        return Ordering::Greater;
    }
    if b >= MAX {
        return Ordering::Less;
    }
    let whole = b.trunc();
    // `whole` is integral and within the i64 range here, so the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    let whole_i = whole as i64;
    a.cmp(&whole_i).then_with(|| {
        let frac = b - whole;
        if frac > 0.0 {
            Ordering::Less
        } else if frac < 0.0 {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    })
}

/// Numeric comparison of two values when both are numbers.
pub(crate) fn cmp_numbers(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Long(x), Value::Long(y)) => Some(x.cmp(y)),
        (Value::Double(x), Value::Double(y)) => Some(x.cmp(y)),
        (Value::Long(x), Value::Double(y)) => Some(cmp_long_double(*x, y.get())),
        (Value::Double(x), Value::Long(y)) => Some(cmp_long_double(*y, x.get()).reverse()),
        _ => None,
    }
}

impl PartialOrd for QueryValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for QueryValue {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (QueryValue::Value(a), QueryValue::Value(b)) => match cmp_numbers(a, b) {
                // Numerically equal long and double: the long first, so the order
                // stays consistent with (exact) equality.
                Some(ord) => ord.then_with(|| a.value_type().cmp(&b.value_type())),
                None => a.cmp(b),
            },
            // As keywords: no namespace first, then namespace, then name.
            (QueryValue::Symbol(a), QueryValue::Symbol(b)) => crate::composite::cmp_qualified(a, b),
            (QueryValue::Vector(a), QueryValue::Vector(b)) => {
                // Clojure compares vectors by length first, then element-wise.
                a.len().cmp(&b.len()).then_with(|| a.cmp(b))
            }
            (QueryValue::Set(a), QueryValue::Set(b)) => {
                a.len().cmp(&b.len()).then_with(|| a.cmp(b))
            }
            (QueryValue::Map(a), QueryValue::Map(b)) => {
                a.len().cmp(&b.len()).then_with(|| a.cmp(b))
            }
            (QueryValue::Fn(a), QueryValue::Fn(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// EDN text, as [`QueryValue::to_edn`] prints.
impl fmt::Display for QueryValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_edn())
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The text of a map key: JSON keys are strings, so a key is written as its text — a
/// keyword with its colon (`":person/name"`), a string as it is, anything else as its
/// EDN text.
fn json_key_text(v: &QueryValue) -> String {
    match v {
        QueryValue::Value(Value::String(s)) => s.to_string(),
        QueryValue::Symbol(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// `{"#tag": text}`: a value JSON has no type for, tagged so it keeps its type.
fn json_tagged(out: &mut String, tag: &str, text: &str) {
    out.push('{');
    json_string(out, tag);
    out.push(':');
    json_string(out, text);
    out.push('}');
}

/// The text inside an EDN tagged literal (`#inst "…"` → `…`).
fn tagged_text(v: &Value) -> String {
    match value_to_edn(v) {
        Edn::Tagged(_, inner) => match *inner {
            Edn::String(s) => s,
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

fn write_json(out: &mut String, v: &QueryValue) {
    match v {
        QueryValue::Nil => out.push_str("null"),
        QueryValue::Value(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        QueryValue::Value(Value::Long(i)) => out.push_str(&i.to_string()),
        QueryValue::Value(Value::Ref(e)) => out.push_str(&e.to_string()),
        QueryValue::Value(Value::Double(d)) => {
            let x = d.get();
            if x.is_finite() {
                // `{:?}` always writes a fraction or an exponent (`1.0`), so the number
                // reads back as a double.
                out.push_str(&format!("{x:?}"));
            } else if x.is_nan() {
                json_tagged(out, "#double", "NaN");
            } else if x > 0.0 {
                json_tagged(out, "#double", "Infinity");
            } else {
                json_tagged(out, "#double", "-Infinity");
            }
        }
        QueryValue::Value(Value::String(s)) if s.starts_with(':') => {
            json_tagged(out, "#string", s);
        }
        QueryValue::Value(Value::String(s)) => json_string(out, s),
        QueryValue::Value(Value::Keyword(k)) => json_string(out, &k.to_string()),
        QueryValue::Value(v @ Value::Instant(_)) => json_tagged(out, "#inst", &tagged_text(v)),
        QueryValue::Value(v @ Value::Uuid(_)) => json_tagged(out, "#uuid", &tagged_text(v)),
        QueryValue::Value(v @ Value::Bytes(_)) => json_tagged(out, "#bytes", &tagged_text(v)),
        QueryValue::Value(
            v @ (Value::Symbol(_) | Value::Vector(_) | Value::Set(_) | Value::Map(_)),
        ) => write_json(out, &QueryValue::from_value(v.clone())),
        QueryValue::Symbol(s) => json_tagged(out, "#symbol", s),
        QueryValue::Fn(f) => json_tagged(out, "#fn", f.name()),
        QueryValue::Vector(items) => write_json_seq(out, items.iter()),
        QueryValue::Set(items) => write_json_seq(out, items.iter()),
        QueryValue::Map(pairs) => {
            out.push('{');
            for (n, (k, val)) in pairs.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                json_string(out, &json_key_text(k));
                out.push(':');
                write_json(out, val);
            }
            out.push('}');
        }
    }
}

fn write_json_seq<'a>(out: &mut String, items: impl Iterator<Item = &'a QueryValue>) {
    out.push('[');
    for (n, item) in items.enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_json(out, item);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::parse;

    #[test]
    fn numbers_order_numerically_and_stay_consistent_with_equality() {
        let one = QueryValue::long(1);
        let one_d = QueryValue::Value(Value::double(1.0).unwrap());
        let half = QueryValue::Value(Value::double(0.5).unwrap());
        assert!(half < one);
        assert!(one < one_d);
        assert_ne!(one, one_d);
        assert!(QueryValue::long(2) > QueryValue::Value(Value::double(1.5).unwrap()));
        assert!(QueryValue::Nil < QueryValue::long(i64::MIN));
        assert_eq!(cmp_long_double(i64::MAX, 9.3e18), Ordering::Less);
        assert_eq!(cmp_long_double(-3, -2.5), Ordering::Less);
    }

    #[test]
    fn edn_round_trips_and_refs_read_as_longs() {
        let form = parse(r#"[1 "a" :k #{1 2} {:a [nil true]} sym]"#).unwrap();
        let v = QueryValue::from_edn(&form).unwrap();
        assert_eq!(v.to_edn(), form);
        assert_eq!(QueryValue::from(Value::Ref(7)), QueryValue::long(7));
    }

    #[test]
    fn json_output() {
        let form = parse(r#"{:person/name "A\"n", :tags #{:x}, :n nil, :f 1.5}"#).unwrap();
        let v = QueryValue::from_edn(&form).unwrap();
        assert_eq!(
            v.to_json(),
            // Keys in keyword order: without a namespace first.
            r#"{":f":1.5,":n":null,":tags":[":x"],":person/name":"A\"n"}"#
        );
    }

    #[test]
    fn json_keeps_every_type() {
        let form = parse(
            r#"[:industry/health ":not-a-keyword" "plain" ##Inf ##-Inf 2.0 7 true nil
                #inst "2024-01-02T03:04:05.000Z" #uuid "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
                #bytes "AQID" sym]"#,
        )
        .unwrap();
        let v = QueryValue::from_edn(&form).unwrap();
        assert_eq!(
            v.to_json(),
            concat!(
                r##"[":industry/health",{"#string":":not-a-keyword"},"plain","##,
                r##"{"#double":"Infinity"},{"#double":"-Infinity"},2.0,7,true,null,"##,
                r##"{"#inst":"2024-01-02T03:04:05.000Z"},"##,
                r##"{"#uuid":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"},{"#bytes":"AQID"},"##,
                r##"{"#symbol":"sym"}]"##
            )
        );
    }
}
