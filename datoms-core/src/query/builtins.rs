//! Datascript's built-in query functions and predicates, and the registry of custom
//! ones ([`Functions`]).

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::eval::{resolve_entity, Source};
use super::function::QueryFn;
use super::regex::JavaRegex;
use super::value::{cmp_numbers, QueryValue};
use crate::datom::{Component, IndexKind};
use crate::error::Error;
use crate::value::{Keyword, Value};

/// A registered function: arguments in, a value (or a reason it failed) out.
pub type FunctionImpl = Arc<dyn Fn(&[QueryValue]) -> Result<QueryValue, String> + Send + Sync>;

/// A registered aggregate: the constant arguments before the variable, then the
/// group's values (a bag, duplicates kept), in; the aggregate value out.
pub type AggregateImpl =
    Arc<dyn Fn(&[QueryValue], &[QueryValue]) -> Result<QueryValue, String> + Send + Sync>;

/// Custom predicates, functions and aggregates, called by name from queries (and from
/// pull's `:xform`). A registered name takes precedence over a built-in one.
///
/// ```
/// use datoms_core::query::{q_with, Functions, Input, QueryValue};
/// use datoms_core::{Db, Schema};
///
/// let db = Db::new(Schema::new()).with_edn(r#"[{:name "Ann"} {:name "Bob"}]"#)?.db_after;
/// let fns = Functions::new()
///     .predicate("short?", |args| args[0].as_str().is_some_and(|s| s.len() <= 3))
///     .function("shout", |args| {
///         let s = args[0].as_str().ok_or("shout takes a string")?;
///         Ok(QueryValue::string(&s.to_uppercase()))
///     });
/// let r = q_with(
///     r#"[:find [?loud ...] :where [_ :name ?n] [(short? ?n)] [(shout ?n) ?loud]]"#,
///     &[Input::Db(&db)],
///     &fns,
/// )?;
/// assert_eq!(r.to_string(), r#"["ANN" "BOB"]"#);
/// # Ok::<(), datoms_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Functions {
    fns: HashMap<String, FunctionImpl>,
    aggs: HashMap<String, AggregateImpl>,
}

impl fmt::Debug for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fns: Vec<_> = self.fns.keys().collect();
        fns.sort();
        let mut aggs: Vec<_> = self.aggs.keys().collect();
        aggs.sort();
        f.debug_struct("Functions")
            .field("functions", &fns)
            .field("aggregates", &aggs)
            .finish()
    }
}

impl Functions {
    /// No custom functions: only the built-ins.
    pub fn new() -> Functions {
        Functions::default()
    }

    /// Registers a predicate, used as `[(name ?a ?b)]`.
    pub fn predicate(
        mut self,
        name: &str,
        f: impl Fn(&[QueryValue]) -> bool + Send + Sync + 'static,
    ) -> Functions {
        self.fns.insert(
            name.to_owned(),
            Arc::new(move |args| Ok(QueryValue::bool(f(args)))),
        );
        self
    }

    /// Registers a function, used as `[(name ?a) ?out]` (or as a predicate: a result
    /// other than `nil` and `false` keeps the row). Returning `nil` drops the row, as in
    /// Datascript; an `Err` fails the query with [`Error::QueryEval`].
    pub fn function(
        mut self,
        name: &str,
        f: impl Fn(&[QueryValue]) -> Result<QueryValue, String> + Send + Sync + 'static,
    ) -> Functions {
        self.fns.insert(name.to_owned(), Arc::new(f));
        self
    }

    /// Registers an aggregate, used in `:find` as `(name ?x)` or `(name 3 ?x)`: it gets
    /// the constant arguments and the group's values.
    pub fn aggregate(
        mut self,
        name: &str,
        f: impl Fn(&[QueryValue], &[QueryValue]) -> Result<QueryValue, String> + Send + Sync + 'static,
    ) -> Functions {
        self.aggs.insert(name.to_owned(), Arc::new(f));
        self
    }

    pub(crate) fn function_impl(&self, name: &str) -> Option<&FunctionImpl> {
        self.fns.get(name)
    }

    pub(crate) fn aggregate_impl(&self, name: &str) -> Option<&AggregateImpl> {
        self.aggs.get(name)
    }
}

/// An argument of a built-in call: a value, or a data source (`$`).
pub(crate) enum CallArg<'a> {
    Val(&'a QueryValue),
    Src(&'a Source<'a>),
}

/// The arities of a built-in function: `(min, max)`, `None` for no maximum. `None` when
/// `name` is not a built-in.
pub(crate) fn builtin_arity(name: &str) -> Option<(usize, Option<usize>)> {
    let one = (1, Some(1));
    let two = (2, Some(2));
    let any = (0, None);
    let some = (1, None);
    Some(match name {
        "=" | "==" | "not=" | "!=" | "<" | ">" | "<=" | ">=" => some,
        "+" | "*" => any,
        "-" | "/" | "max" | "min" => some,
        "quot" | "rem" | "mod" | "compare" | "identical?" | "contains?" => two,
        "inc" | "dec" | "zero?" | "pos?" | "neg?" | "even?" | "odd?" => one,
        "rand" => (0, Some(1)),
        "rand-int" => one,
        "true?" | "false?" | "nil?" | "some?" | "not" => one,
        "and" | "or" => any,
        "identity" | "ground" | "untuple" | "meta" | "complement" | "type" => one,
        "keyword" => (1, Some(2)),
        "name" | "namespace" | "set" | "count" | "not-empty" | "empty?" => one,
        "vector" | "list" | "tuple" | "hash-map" | "array-map" => any,
        "range" => (1, Some(3)),
        "str" | "pr-str" | "print-str" | "println-str" | "prn-str" => any,
        "subs" | "get" => (2, Some(3)),
        "re-find" | "re-matches" | "re-seq" => two,
        "re-pattern" => one,
        "-differ?" => any,
        "get-else" => (4, Some(4)),
        "get-some" => (3, None),
        "missing?" => (3, Some(3)),
        "clojure.string/blank?" => one,
        "clojure.string/includes?"
        | "clojure.string/starts-with?"
        | "clojure.string/ends-with?" => two,
        _ => return None,
    })
}

/// Clojure's `type`, as the JVM names it: a symbol naming the class of the value
/// (`java.lang.String`, `java.lang.Long`, `clojure.lang.Keyword`, …); `nil` for `nil`.
/// (Datascript under JavaScript answers the constructor object, `#object[String]`.)
fn type_of(v: &QueryValue) -> QueryValue {
    let name = match v {
        QueryValue::Nil => return QueryValue::Nil,
        QueryValue::Value(v) => match v.value_type() {
            crate::value::ValueType::Bool => "java.lang.Boolean",
            crate::value::ValueType::Long | crate::value::ValueType::Ref => "java.lang.Long",
            crate::value::ValueType::Double => "java.lang.Double",
            crate::value::ValueType::Instant => "java.util.Date",
            crate::value::ValueType::String => "java.lang.String",
            crate::value::ValueType::Keyword => "clojure.lang.Keyword",
            crate::value::ValueType::Uuid => "java.util.UUID",
            crate::value::ValueType::Bytes => "[B",
            crate::value::ValueType::Symbol => "clojure.lang.Symbol",
            crate::value::ValueType::Vector => "clojure.lang.PersistentVector",
            crate::value::ValueType::Set => "clojure.lang.PersistentHashSet",
            crate::value::ValueType::Map => "clojure.lang.PersistentArrayMap",
        },
        QueryValue::Symbol(_) => "clojure.lang.Symbol",
        QueryValue::Vector(_) => "clojure.lang.PersistentVector",
        QueryValue::Set(_) => "clojure.lang.PersistentHashSet",
        QueryValue::Map(_) => "clojure.lang.PersistentArrayMap",
        QueryValue::Fn(_) => "clojure.lang.IFn",
    };
    QueryValue::Symbol(Arc::from(name))
}

/// Describes an arity for error messages.
pub(crate) fn arity_text((min, max): (usize, Option<usize>)) -> String {
    match max {
        Some(m) if m == min => format!("{min}"),
        Some(m) => format!("{min} to {m}"),
        None => format!("at least {min}"),
    }
}

// ---- numbers ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Num {
    L(i64),
    D(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            // Precision loss past 2^53 is what Clojure's mixed arithmetic does too.
            #[allow(clippy::cast_precision_loss)]
            Num::L(i) => i as f64,
            Num::D(d) => d,
        }
    }

    fn value(self) -> Result<QueryValue, String> {
        match self {
            Num::L(i) => Ok(QueryValue::long(i)),
            Num::D(d) => Value::double(d)
                .map(QueryValue::Value)
                .map_err(|_| "the result is not a number (NaN)".to_owned()),
        }
    }
}

fn num(v: &QueryValue) -> Result<Num, String> {
    match v {
        QueryValue::Value(Value::Long(i)) => Ok(Num::L(*i)),
        QueryValue::Value(Value::Double(d)) => Ok(Num::D(d.get())),
        QueryValue::Value(Value::Ref(e)) => i64::try_from(*e)
            .map(Num::L)
            .map_err(|_| "entity id out of range".to_owned()),
        other => Err(format!("{other} is not a number")),
    }
}

fn long(v: &QueryValue) -> Result<i64, String> {
    match num(v)? {
        Num::L(i) => Ok(i),
        Num::D(_) => Err(format!("{v} is not an integer")),
    }
}

fn overflow() -> String {
    "integer overflow".to_owned()
}

fn arith(a: Num, b: Num, op: char) -> Result<Num, String> {
    match (a, b) {
        (Num::L(x), Num::L(y)) => {
            let r = match op {
                '+' => x.checked_add(y),
                '-' => x.checked_sub(y),
                _ => x.checked_mul(y),
            };
            r.map(Num::L).ok_or_else(overflow)
        }
        _ => {
            let (x, y) = (a.f(), b.f());
            Ok(Num::D(match op {
                '+' => x + y,
                '-' => x - y,
                _ => x * y,
            }))
        }
    }
}

/// Clojure's `/`; a ratio of longs that does not divide evenly becomes a double (there is
/// no ratio type).
fn divide(a: Num, b: Num) -> Result<Num, String> {
    match (a, b) {
        (_, Num::L(0)) => Err("divide by zero".into()),
        (Num::L(x), Num::L(y)) => match x.checked_rem(y) {
            Some(0) => x.checked_div(y).map(Num::L).ok_or_else(overflow),
            Some(_) => Ok(Num::D(a.f() / b.f())),
            None => Err(overflow()),
        },
        (_, Num::D(d)) if d == 0.0 && a.f() == 0.0 => Err("divide by zero".into()),
        _ => Ok(Num::D(a.f() / b.f())),
    }
}

fn int_op(name: &str, a: Num, b: Num) -> Result<Num, String> {
    match (a, b) {
        (_, Num::L(0)) => Err("divide by zero".into()),
        (Num::L(x), Num::L(y)) => match name {
            "quot" => x.checked_div(y).map(Num::L).ok_or_else(overflow),
            "rem" => x.checked_rem(y).map(Num::L).ok_or_else(overflow),
            _ => x
                .checked_rem(y)
                .map(|r| {
                    Num::L(if r != 0 && ((r < 0) != (y < 0)) {
                        r + y
                    } else {
                        r
                    })
                })
                .ok_or_else(overflow),
        },
        _ => {
            let (x, y) = (a.f(), b.f());
            if y == 0.0 {
                return Err("divide by zero".into());
            }
            Ok(Num::D(match name {
                "quot" => (x / y).trunc(),
                "rem" => x % y,
                _ => {
                    let r = x % y;
                    if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                        r + y
                    } else {
                        r
                    }
                }
            }))
        }
    }
}

// ---- printing ---------------------------------------------------------------------------

/// Clojure's `str` of one value: strings and characters as they are, `nil` as nothing,
/// anything else as printed.
fn str_of(v: &QueryValue) -> String {
    match v {
        QueryValue::Nil => String::new(),
        QueryValue::Value(Value::String(s)) => s.to_string(),
        QueryValue::Value(Value::Uuid(u)) => u.to_string(),
        QueryValue::Symbol(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn pr_str(args: &[&QueryValue]) -> String {
    args.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_str(args: &[&QueryValue]) -> String {
    args.iter()
        .map(|a| match a {
            QueryValue::Nil => "nil".to_owned(),
            other => str_of(other),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---- random numbers ---------------------------------------------------------------------

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        h.finish() | 1
    });
}

/// A pseudo-random number (xorshift64*), seeded per thread from the OS-seeded hasher.
pub(crate) fn random_u64() -> u64 {
    RNG.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A uniform index below `n` (`n > 0`).
pub(crate) fn random_below(n: usize) -> usize {
    let n64 = u64::try_from(n).unwrap_or(u64::MAX);
    usize::try_from(random_u64() % n64.max(1)).unwrap_or(0)
}

fn random_f64() -> f64 {
    // 53 random bits: exactly representable.
    #[allow(clippy::cast_precision_loss)]
    let x = (random_u64() >> 11) as f64;
    x / (1u64 << 53) as f64
}

// ---- strings and regexes ----------------------------------------------------------------

fn string<'a>(v: &'a QueryValue, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{what} must be a string, got {v}"))
}

fn regex(v: &QueryValue) -> Result<JavaRegex, String> {
    JavaRegex::new(string(v, "a regex")?)
}

/// A match as Clojure gives it: the matched text when the pattern has no group, else a
/// vector of the whole match and each group (`nil` for a group that took no part).
fn capture_value(caps: &regex::Captures<'_>, groups: usize) -> QueryValue {
    let text = |g: usize| {
        caps.get(g)
            .map_or(QueryValue::Nil, |m| QueryValue::string(m.as_str()))
    };
    if groups == 0 {
        text(0)
    } else {
        QueryValue::Vector((0..=groups).map(text).collect())
    }
}

fn re_call(name: &str, re: &QueryValue, s: &QueryValue) -> Result<QueryValue, String> {
    let text = string(s, "the text")?;
    match name {
        "re-matches" => {
            let re = JavaRegex::whole(string(re, "a regex")?)?;
            Ok(re
                .find(text)
                .map_or(QueryValue::Nil, |c| capture_value(&c, re.groups())))
        }
        "re-find" => {
            let re = regex(re)?;
            Ok(re
                .find(text)
                .map_or(QueryValue::Nil, |c| capture_value(&c, re.groups())))
        }
        _ => {
            let re = regex(re)?;
            let out: Vec<QueryValue> = re
                .find_all(text)
                .map(|c| capture_value(&c, re.groups()))
                .collect();
            Ok(if out.is_empty() {
                QueryValue::Nil
            } else {
                QueryValue::Vector(out)
            })
        }
    }
}

// ---- collections ------------------------------------------------------------------------

fn count(v: &QueryValue) -> Result<usize, String> {
    match v {
        QueryValue::Nil => Ok(0),
        QueryValue::Value(Value::String(s)) => Ok(s.chars().count()),
        QueryValue::Vector(i) => Ok(i.len()),
        QueryValue::Set(i) => Ok(i.len()),
        QueryValue::Map(m) => Ok(m.len()),
        other => Err(format!("count not supported on {other}")),
    }
}

fn len_value(n: usize) -> QueryValue {
    QueryValue::long(i64::try_from(n).unwrap_or(i64::MAX))
}

fn index(v: &QueryValue) -> Option<usize> {
    v.as_long().and_then(|i| usize::try_from(i).ok())
}

fn get(coll: &QueryValue, key: &QueryValue) -> QueryValue {
    match coll {
        QueryValue::Map(m) => m.get(key).cloned().unwrap_or(QueryValue::Nil),
        QueryValue::Set(s) if s.contains(key) => key.clone(),
        QueryValue::Vector(items) => index(key)
            .and_then(|i| items.get(i))
            .cloned()
            .unwrap_or(QueryValue::Nil),
        QueryValue::Value(Value::String(s)) => index(key)
            .and_then(|i| s.chars().nth(i))
            .map_or(QueryValue::Nil, |c| QueryValue::string(&c.to_string())),
        _ => QueryValue::Nil,
    }
}

fn contains(coll: &QueryValue, key: &QueryValue) -> Result<bool, String> {
    Ok(match coll {
        QueryValue::Nil => false,
        QueryValue::Map(m) => m.contains_key(key),
        QueryValue::Set(s) => s.contains(key),
        QueryValue::Vector(items) => index(key).is_some_and(|i| i < items.len()),
        QueryValue::Value(Value::String(s)) => index(key).is_some_and(|i| i < s.chars().count()),
        other => return Err(format!("contains? not supported on {other}")),
    })
}

fn seq_items(v: &QueryValue) -> Result<Vec<QueryValue>, String> {
    match v {
        QueryValue::Nil => Ok(Vec::new()),
        QueryValue::Vector(i) => Ok(i.clone()),
        QueryValue::Set(s) => Ok(s.iter().cloned().collect()),
        QueryValue::Map(m) => Ok(m
            .iter()
            .map(|(k, v)| QueryValue::Vector(vec![k.clone(), v.clone()]))
            .collect()),
        QueryValue::Value(Value::String(s)) => Ok(s
            .chars()
            .map(|c| QueryValue::string(&c.to_string()))
            .collect()),
        other => Err(format!("{other} is not a collection")),
    }
}

fn range(args: &[&QueryValue]) -> Result<QueryValue, String> {
    let nums: Vec<i64> = args.iter().map(|a| long(a)).collect::<Result<_, _>>()?;
    let (start, end, step) = match nums.as_slice() {
        [end] => (0, *end, 1),
        [start, end] => (*start, *end, 1),
        [start, end, step] => (*start, *end, *step),
        _ => return Err("range takes 1 to 3 arguments".into()),
    };
    if step == 0 {
        return Err("range with step 0 is infinite".into());
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        if out.len() >= 1_000_000 {
            return Err("range of more than 1000000 elements".into());
        }
        out.push(QueryValue::long(i));
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    Ok(QueryValue::Vector(out))
}

fn keyword_name(v: &QueryValue) -> Result<(Option<String>, String), String> {
    match v {
        QueryValue::Value(Value::Keyword(k)) => {
            Ok((k.namespace().map(str::to_owned), k.name().to_owned()))
        }
        QueryValue::Symbol(s) => Ok(match s.split_once('/') {
            Some((ns, n)) if !ns.is_empty() && !n.is_empty() => (Some(ns.to_owned()), n.to_owned()),
            _ => (None, s.to_string()),
        }),
        QueryValue::Value(Value::String(s)) => Ok((None, s.to_string())),
        other => Err(format!("{other} has no name")),
    }
}

// ---- data sources -----------------------------------------------------------------------

fn db_arg<'a>(arg: &'a CallArg<'a>, name: &str) -> Result<&'a crate::db::Db, String> {
    match arg {
        CallArg::Src(Source::Db(db)) => Ok(db),
        CallArg::Src(Source::Coll(_)) => Err(format!("{name} needs a database, not a collection")),
        CallArg::Src(Source::History(_)) => Err(format!("{name} needs a database, not a history")),
        CallArg::Val(v) => Err(format!(
            "{name} needs a database as its first argument, got {v}"
        )),
    }
}

fn attr_arg(v: &QueryValue, name: &str) -> Result<Keyword, String> {
    v.as_keyword()
        .cloned()
        .ok_or_else(|| format!("{name} needs an attribute keyword, got {v}"))
}

fn first_value(
    db: &crate::db::Db,
    e: &QueryValue,
    attr: &Keyword,
) -> Result<Option<QueryValue>, Error> {
    let Some(eid) = resolve_entity(db, e)? else {
        return Ok(None);
    };
    if let Some(fwd) = attr.reverse_of() {
        let p = [Component::A(fwd), Component::V(Value::Ref(eid))];
        return match db.datoms(IndexKind::Avet, &p)?.next() {
            Some(d) => Ok(Some(QueryValue::entity(d?.e))),
            None => Ok(None),
        };
    }
    Ok(db
        .entity_attr(eid, attr)?
        .into_iter()
        .next()
        .map(|d| QueryValue::from_value(d.v)))
}

/// Why a built-in failed: a reason for [`Error::QueryEval`], or an error of the db.
pub(crate) enum CallError {
    Reason(String),
    Db(Error),
}

impl From<String> for CallError {
    fn from(s: String) -> CallError {
        CallError::Reason(s)
    }
}

impl From<Error> for CallError {
    fn from(e: Error) -> CallError {
        CallError::Db(e)
    }
}

fn vals<'a>(args: &'a [CallArg<'a>], name: &str) -> Result<Vec<&'a QueryValue>, String> {
    args.iter()
        .map(|a| match a {
            CallArg::Val(v) => Ok(*v),
            CallArg::Src(_) => Err(format!("{name} does not take a data source argument")),
        })
        .collect()
}

fn chain_cmp(vs: &[&QueryValue], ok: impl Fn(Ordering) -> bool) -> QueryValue {
    QueryValue::bool(vs.windows(2).all(|w| ok(w[0].cmp(w[1]))))
}

/// Calls a built-in function (the name is known to be one and the arity checked).
pub(crate) fn call_builtin(name: &str, args: &[CallArg<'_>]) -> Result<QueryValue, CallError> {
    // Functions over data sources first.
    match name {
        "get-else" => {
            let db = db_arg(&args[0], name)?;
            let v = vals(&args[1..], name)?;
            let attr = attr_arg(v[1], name)?;
            if v[2].is_nil() {
                return Err("get-else: nil default value is not supported"
                    .to_owned()
                    .into());
            }
            return Ok(first_value(db, v[0], &attr)?.unwrap_or_else(|| v[2].clone()));
        }
        "get-some" => {
            let db = db_arg(&args[0], name)?;
            let v = vals(&args[1..], name)?;
            for a in &v[1..] {
                let attr = attr_arg(a, name)?;
                if let Some(val) = first_value(db, v[0], &attr)? {
                    return Ok(QueryValue::Vector(vec![(*a).clone(), val]));
                }
            }
            return Ok(QueryValue::Nil);
        }
        "missing?" => {
            let db = db_arg(&args[0], name)?;
            let v = vals(&args[1..], name)?;
            let attr = attr_arg(v[1], name)?;
            return Ok(QueryValue::bool(first_value(db, v[0], &attr)?.is_none()));
        }
        _ => {}
    }
    let v = vals(args, name)?;
    let b = QueryValue::bool;
    let out = match name {
        "=" => b(v.windows(2).all(|w| w[0] == w[1])),
        "not=" | "!=" => b(!v.windows(2).all(|w| w[0] == w[1])),
        "==" => {
            let mut all = true;
            for w in v.windows(2) {
                let (QueryValue::Value(x), QueryValue::Value(y)) = (w[0], w[1]) else {
                    return Err(format!("== needs numbers, got {} and {}", w[0], w[1]).into());
                };
                match cmp_numbers(x, y) {
                    Some(o) => all &= o == Ordering::Equal,
                    None => {
                        return Err(format!("== needs numbers, got {} and {}", w[0], w[1]).into())
                    }
                }
            }
            for x in &v {
                num(x)?;
            }
            b(all)
        }
        "<" => chain_cmp(&v, |o| o == Ordering::Less),
        ">" => chain_cmp(&v, |o| o == Ordering::Greater),
        "<=" => chain_cmp(&v, |o| o != Ordering::Greater),
        ">=" => chain_cmp(&v, |o| o != Ordering::Less),
        "+" | "*" => {
            let op = if name == "+" { '+' } else { '*' };
            let mut acc = Num::L(if op == '+' { 0 } else { 1 });
            for x in &v {
                acc = arith(acc, num(x)?, op)?;
            }
            acc.value()?
        }
        "-" => {
            let first = num(v[0])?;
            if v.len() == 1 {
                arith(Num::L(0), first, '-')?.value()?
            } else {
                let mut acc = first;
                for x in &v[1..] {
                    acc = arith(acc, num(x)?, '-')?;
                }
                acc.value()?
            }
        }
        "/" => {
            let first = num(v[0])?;
            if v.len() == 1 {
                divide(Num::L(1), first)?.value()?
            } else {
                let mut acc = first;
                for x in &v[1..] {
                    acc = divide(acc, num(x)?)?;
                }
                acc.value()?
            }
        }
        "quot" | "rem" | "mod" => int_op(name, num(v[0])?, num(v[1])?)?.value()?,
        "inc" => arith(num(v[0])?, Num::L(1), '+')?.value()?,
        "dec" => arith(num(v[0])?, Num::L(1), '-')?.value()?,
        "max" | "min" => {
            let mut best = v[0];
            num(best)?;
            for x in &v[1..] {
                num(x)?;
                let better = if name == "max" { *x > best } else { *x < best };
                if better {
                    best = x;
                }
            }
            best.clone()
        }
        "zero?" => b(num(v[0])?.f() == 0.0),
        "pos?" => b(num(v[0])?.f() > 0.0),
        "neg?" => b(num(v[0])?.f() < 0.0),
        "even?" => b(long(v[0])? % 2 == 0),
        "odd?" => b(long(v[0])? % 2 != 0),
        "compare" => QueryValue::long(match v[0].cmp(v[1]) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }),
        "rand" => {
            let scale = match v.first() {
                Some(n) => num(n)?.f(),
                None => 1.0,
            };
            Num::D(random_f64() * scale).value()?
        }
        "rand-int" => {
            let n = long(v[0])?;
            if n <= 0 {
                return Err(format!("rand-int needs a positive bound, got {n}").into());
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            len_value(random_below(n))
        }
        "true?" => b(*v[0] == QueryValue::bool(true)),
        "false?" => b(*v[0] == QueryValue::bool(false)),
        "nil?" => b(v[0].is_nil()),
        "some?" => b(!v[0].is_nil()),
        "not" => b(!v[0].is_truthy()),
        "and" => {
            let mut last = QueryValue::bool(true);
            for x in &v {
                last = (*x).clone();
                if !x.is_truthy() {
                    break;
                }
            }
            last
        }
        "or" => {
            let mut last = QueryValue::Nil;
            for x in &v {
                last = (*x).clone();
                if x.is_truthy() {
                    break;
                }
            }
            last
        }
        "identical?" => b(v[0] == v[1]),
        "identity" | "ground" | "untuple" => v[0].clone(),
        "meta" => QueryValue::Nil,
        "keyword" => {
            // Only keywords EDN reads back: `(keyword "a b")` is an error, not a value
            // that would not survive an export.
            let make = |text: String| match Keyword::parse(&text) {
                Ok(k) => Ok(QueryValue::Value(Value::Keyword(k))),
                Err(e) => Err(CallError::Db(e)),
            };
            match v.as_slice() {
                [x] => match x {
                    QueryValue::Value(Value::Keyword(_)) => (*x).clone(),
                    QueryValue::Value(Value::String(s)) => make(format!(":{s}"))?,
                    QueryValue::Symbol(s) => make(format!(":{s}"))?,
                    other => return Err(format!("cannot make a keyword of {other}").into()),
                },
                [ns, n] => {
                    let n = string(n, "a keyword name")?;
                    match ns {
                        QueryValue::Nil => make(format!(":{n}"))?,
                        ns => make(format!(":{}/{n}", string(ns, "a namespace")?))?,
                    }
                }
                _ => return Err("keyword takes 1 or 2 arguments".to_owned().into()),
            }
        }
        "name" => QueryValue::string(&keyword_name(v[0])?.1),
        "namespace" => match v[0] {
            QueryValue::Value(Value::String(_)) => {
                return Err("namespace needs a keyword or symbol".to_owned().into())
            }
            x => keyword_name(x)?
                .0
                .map_or(QueryValue::Nil, |ns| QueryValue::string(&ns)),
        },
        "vector" | "list" | "tuple" => QueryValue::Vector(v.iter().map(|x| (*x).clone()).collect()),
        "set" => QueryValue::Set(seq_items(v[0])?.into_iter().collect::<BTreeSet<_>>()),
        "hash-map" | "array-map" => {
            if v.len() % 2 != 0 {
                return Err(format!("{name} needs an even number of arguments").into());
            }
            QueryValue::Map(
                v.chunks(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect::<BTreeMap<_, _>>(),
            )
        }
        "count" => len_value(count(v[0])?),
        "range" => range(&v)?,
        "not-empty" => {
            if count(v[0])? == 0 {
                QueryValue::Nil
            } else {
                v[0].clone()
            }
        }
        "empty?" => b(count(v[0])? == 0),
        "contains?" => b(contains(v[0], v[1])?),
        "str" => QueryValue::string(&v.iter().map(|x| str_of(x)).collect::<String>()),
        "pr-str" => QueryValue::string(&pr_str(&v)),
        "prn-str" => QueryValue::string(&format!("{}\n", pr_str(&v))),
        "print-str" => QueryValue::string(&print_str(&v)),
        "println-str" => QueryValue::string(&format!("{}\n", print_str(&v))),
        "subs" => {
            let s: Vec<char> = string(v[0], "subs' first argument")?.chars().collect();
            let start = index(v[1]).ok_or_else(|| format!("bad start index {}", v[1]))?;
            let end = match v.get(2) {
                Some(e) => index(e).ok_or_else(|| format!("bad end index {e}"))?,
                None => s.len(),
            };
            if start > end || end > s.len() {
                return Err(format!("string index out of range: {start}..{end}").into());
            }
            QueryValue::string(&s[start..end].iter().collect::<String>())
        }
        "get" => {
            let found = get(v[0], v[1]);
            match (found, v.get(2)) {
                (QueryValue::Nil, Some(default)) if !contains(v[0], v[1]).unwrap_or(false) => {
                    (*default).clone()
                }
                (found, _) => found,
            }
        }
        "re-find" | "re-matches" | "re-seq" => re_call(name, v[0], v[1])?,
        "re-pattern" => {
            regex(v[0])?;
            v[0].clone()
        }
        "complement" => QueryValue::Fn(match v[0] {
            QueryValue::Fn(f) => f.complement(),
            QueryValue::Symbol(s) => QueryFn::named(s).complement(),
            other => return Err(format!("complement takes a function, got {other}").into()),
        }),
        "type" => type_of(v[0]),
        "-differ?" => {
            let half = v.len() / 2;
            b(v[..half] != v[half..])
        }
        "clojure.string/blank?" => b(match v[0] {
            QueryValue::Nil => true,
            x => string(x, "blank?'s argument")?.trim().is_empty(),
        }),
        "clojure.string/includes?" => {
            b(string(v[0], "includes?' text")?.contains(str_of(v[1]).as_str()))
        }
        "clojure.string/starts-with?" => {
            b(string(v[0], "starts-with?' text")?.starts_with(string(v[1], "the prefix")?))
        }
        "clojure.string/ends-with?" => {
            b(string(v[0], "ends-with?' text")?.ends_with(string(v[1], "the suffix")?))
        }
        other => return Err(format!("{other} is not a built-in function").into()),
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[QueryValue]) -> Result<QueryValue, String> {
        let a: Vec<CallArg<'_>> = args.iter().map(CallArg::Val).collect();
        call_builtin(name, &a).map_err(|e| match e {
            CallError::Reason(r) => r,
            CallError::Db(e) => e.to_string(),
        })
    }

    fn l(i: i64) -> QueryValue {
        QueryValue::long(i)
    }

    fn d(x: f64) -> QueryValue {
        QueryValue::Value(Value::double(x).unwrap())
    }

    #[test]
    fn arithmetic() {
        assert_eq!(call("+", &[l(1), l(2), l(3)]), Ok(l(6)));
        assert_eq!(call("+", &[]), Ok(l(0)));
        assert_eq!(call("-", &[l(5)]), Ok(l(-5)));
        assert_eq!(call("*", &[l(2), d(1.5)]), Ok(d(3.0)));
        assert_eq!(call("/", &[l(10), l(5)]), Ok(l(2)));
        assert_eq!(call("/", &[l(10), l(4)]), Ok(d(2.5)));
        assert!(call("/", &[l(1), l(0)]).is_err());
        assert!(call("+", &[l(i64::MAX), l(1)])
            .unwrap_err()
            .contains("overflow"));
        assert_eq!(call("mod", &[l(-7), l(3)]), Ok(l(2)));
        assert_eq!(call("rem", &[l(-7), l(3)]), Ok(l(-1)));
        assert_eq!(call("quot", &[l(-7), l(2)]), Ok(l(-3)));
        assert_eq!(call("max", &[l(1), d(2.5), l(2)]), Ok(d(2.5)));
        assert!(call("+", &[l(1), QueryValue::string("a")]).is_err());
    }

    #[test]
    fn comparisons_and_logic() {
        assert_eq!(call("<", &[l(1), l(2), l(3)]), Ok(QueryValue::bool(true)));
        assert_eq!(call("<", &[l(1), l(3), l(2)]), Ok(QueryValue::bool(false)));
        assert_eq!(call("==", &[l(1), d(1.0)]), Ok(QueryValue::bool(true)));
        assert_eq!(call("=", &[l(1), d(1.0)]), Ok(QueryValue::bool(false)));
        assert_eq!(
            call("and", &[l(1), QueryValue::Nil, l(2)]),
            Ok(QueryValue::Nil)
        );
        assert_eq!(call("or", &[QueryValue::Nil, l(2)]), Ok(l(2)));
        assert_eq!(
            call("-differ?", &[l(1), l(2), l(1), l(3)]),
            Ok(QueryValue::bool(true))
        );
    }

    #[test]
    fn strings_and_collections() {
        let s = QueryValue::string;
        assert_eq!(
            call(
                "str",
                &[s("a"), l(1), QueryValue::Nil, QueryValue::keyword(":k")]
            ),
            Ok(s("a1:k"))
        );
        assert_eq!(call("pr-str", &[s("a"), l(1)]), Ok(s("\"a\" 1")));
        assert_eq!(call("subs", &[s("héllo"), l(1), l(3)]), Ok(s("él")));
        assert_eq!(call("count", &[s("héllo")]), Ok(l(5)));
        assert_eq!(
            call("re-find", &[s("^I(v)"), s("Ivan")]),
            Ok(QueryValue::Vector(vec![s("Iv"), s("v")]))
        );
        assert_eq!(
            call("re-seq", &[s("\\d"), s("a1b2")]),
            Ok(QueryValue::Vector(vec![s("1"), s("2")]))
        );
        assert_eq!(
            call("re-matches", &[s("\\d+"), s("12a")]),
            Ok(QueryValue::Nil)
        );
        assert_eq!(call("name", &[QueryValue::keyword(":a/b")]), Ok(s("b")));
        assert_eq!(
            call("namespace", &[QueryValue::keyword(":a/b")]),
            Ok(s("a"))
        );
        assert_eq!(
            call("keyword", &[s("a"), s("b")]),
            Ok(QueryValue::keyword(":a/b"))
        );
        assert_eq!(
            call("range", &[l(3)]),
            Ok(QueryValue::Vector(vec![l(0), l(1), l(2)]))
        );
        assert_eq!(
            call("get", &[QueryValue::Vector(vec![l(5)]), l(3), s("d")]),
            Ok(s("d"))
        );
        assert_eq!(
            call("clojure.string/includes?", &[s("abc"), s("b")]),
            Ok(QueryValue::bool(true))
        );
        assert!(call("rand-int", &[l(0)]).is_err());
        let r = call("rand-int", &[l(10)]).unwrap().as_long().unwrap();
        assert!((0..10).contains(&r));
    }
}
