//! Datalog queries with Datascript's syntax and semantics.
//!
//! ```
//! use datoms_core::query::{q, Input};
//! use datoms_core::{AttributeSchema, Db, Schema, ValueType};
//!
//! let schema = Schema::new()
//!     .with(":friend", AttributeSchema::default().value_type(ValueType::Ref).many())?;
//! let db = Db::new(schema)
//!     .with_edn(r#"[{:db/id 1 :name "Ann" :age 31 :friend [2 3]}
//!                   {:db/id 2 :name "Bob" :age 17}
//!                   {:db/id 3 :name "Cid" :age 45}]"#)?
//!     .db_after;
//! let r = q(
//!     r#"[:find ?fname (max ?age)
//!         :in $ ?name
//!         :where [?p :name ?name] [?p :friend ?f] [?f :name ?fname] [?f :age ?age]]"#,
//!     &[Input::Db(&db), Input::Scalar("Ann".into())],
//! )?;
//! assert_eq!(r.to_string(), r#"#{["Bob" 17] ["Cid" 45]}"#);
//! # Ok::<(), datoms_core::Error>(())
//! ```
//!
//! # What is supported
//! * `:find` relations (`?a ?b`), collections (`[?a ...]`), tuples (`[?a ?b]`) and
//!   scalars (`?a .`); aggregates (`count`, `count-distinct`, `sum`, `avg`, `min`,
//!   `max`, `median`, `variance`, `stddev`, `distinct`, `rand`, `sample`, registered
//!   ones, and `(aggregate ?f ?x)` with a function input); `(pull ?e pattern)` (pattern written in place or an `:in`
//!   variable, from `$` or a named source); `:keys`/`:strs`/`:syms`; `:with`.
//! * `:in` with sources (`$`, `$name`: a db or a collection of tuples), `%` rules and
//!   bindings: scalars, tuples `[?a ?b]`, collections `[?a ...]`, relations
//!   `[[?a ?b]]` and nestings of them, `_`.
//! * `:where`: data patterns `[$src? e a v tx added]` with `_`, constants, lookup refs
//!   in entity and ref-value positions; predicates and functions (Datascript's built-in
//!   set, listed below, and functions registered in [`Functions`]), with binding forms on
//!   function results; `not`, `not-join`, `or`, `or-join` (with `[[required] vars]`),
//!   `and` inside `or`; rules, also recursive and mutually recursive, with required
//!   variables `(rule [?a] ?b)`; all of them with an optional source prefix.
//!
//! # Built-in functions and predicates
//! Datascript's set: `=` `==` `not=` `!=` `<` `>` `<=` `>=` (any number of arguments,
//! comparing any values in the [`QueryValue`] order), `+` `-` `*` `/` `quot` `rem` `mod`
//! `inc` `dec` `max` `min` (checked: overflow and division by zero are errors), `zero?`
//! `pos?` `neg?` `even?` `odd?` `compare` `rand` `rand-int`, `true?` `false?` `nil?`
//! `some?` `not` `and` `or` `identical?` `identity` `meta`, `keyword` `name`
//! `namespace`, `vector` `list` `set` `hash-map` `array-map` `count` `range`
//! `not-empty` `empty?` `contains?` `get`, `str` `subs` `pr-str` `print-str`
//! `println-str` `prn-str`, `re-find` `re-matches` `re-seq` `re-pattern`, `-differ?`,
//! `complement` `type`,
//! `get-else` `get-some` `missing?` (taking a source, `[(get-else $ ?e :attr default) ?v]`),
//! `ground`, `tuple` `untuple`, `clojure.string/blank?` `clojure.string/includes?`
//! `clojure.string/starts-with?` `clojure.string/ends-with?`. A function returning `nil`
//! drops the row; a predicate keeps the rows it returns anything but `nil` or `false`
//! for.
//!
//! # Evaluation
//! A greedy planner orders clauses by the index access they get (EAVT for a known entity, AVET for a known value of an indexed, unique or
//! ref attribute, AEVT for a known attribute, full scans last), runs filters as soon as
//! their variables are bound, looks patterns up per distinct binding or hash-joins them,
//! and evaluates rules bottom-up, semi-naively, driven by the bound arguments of each
//! call (so recursion terminates and computes only what is asked). On a lazily restored
//! db only the index nodes these lookups reach are loaded.
//!
//! # Results
//! A [`QueryResult`]; relations and collections come back sorted (Datascript's are
//! unordered sets), a scalar or tuple query picks the first of its sorted results.
//! Entity ids are numbers (a ref and an entity id join, as in Datascript).
//!
//! # Where this differs from Datascript
//! * A predicate or function whose arguments are bound only by a later clause waits for
//!   them (Datascript raises "Insufficient bindings"); so does a `not-join` or `or-join`.
//!   A `not` none of whose variables is bound by the inputs or an earlier clause is
//!   an error, as in Datascript.
//! * `/` on longs that do not divide evenly, `avg`, `median` and `variance` give doubles
//!   where Clojure gives ratios.
//! * Functions are values ([`QueryFn`]): a Rust function given as [`Input::Fn`] is
//!   called in function position (`[(?f ?x) ?y]`, `[(?f $ ?e)]` gets the db), passed to
//!   `complement` or through rules, and `(aggregate ?agg ?x)` calls one as an aggregate.
//!   A built-in's name as an argument (`(complement odd?)`) is that built-in (Datascript
//!   under JavaScript fails calling it). `type` answers the JVM class name as a symbol
//!   (`java.lang.String`; Datascript under JavaScript answers the constructor). A
//!   variable in function position that nothing binds answers nothing when there is
//!   nothing to call it on and is an unknown function otherwise, as in Datascript.
//! * `meta` is `nil`; regexes are strings (`re-pattern` checks and
//!   returns its argument) in Java's syntax, run by the `regex` crate (no backreferences
//!   or lookaround; what else differs from Java is listed in `query/regex.rs`).
//! * String attribute names are not supported (attributes are keywords).

pub(crate) mod aggregates;
pub(crate) mod builtins;
mod cache;
pub(crate) mod eval;
mod explain;
mod function;
pub(crate) mod parse;
pub(crate) mod regex;
pub(crate) mod scan;
pub(crate) mod value;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

pub use builtins::{AggregateImpl, FunctionImpl, Functions};
pub use explain::Explain;
pub use function::{FnArg, FnBody, QueryFn};
pub use parse::Query;
pub use value::QueryValue;

use self::eval::{bind_value, Ctx, Engine, Scope, Source};
use self::parse::{
    parse_rules, Arg, FindElem, FindSpec, InSpec, PullSource, Rules, Sym, DEFAULT_SRC,
};
use crate::db::Db;
use crate::edn::{self, Edn};
use crate::error::Error;
use crate::pull::{pull_entity, PullPattern};
use crate::value::Value;

/// One query input, matched in order with the query's `:in` (which defaults to `$`
/// when the query uses a data source, and is empty otherwise).
#[derive(Clone, Debug)]
pub enum Input<'a> {
    /// A database, for a source (`$`, `$name`).
    Db(&'a Db),
    /// A history ([`crate::History`]: every assertion and retraction), for a source
    /// whose patterns may bind a fifth position, `added`: `[?e ?a ?v ?tx ?added]`.
    History(&'a crate::History),
    /// A value for a binding form: a scalar for `?x`, a vector for `[?a ?b]` or
    /// `[?a ...]`, a vector of vectors for `[[?a ?b]]`. A vector of tuples can also be a
    /// source.
    Scalar(QueryValue),
    /// A collection, for `[?a ...]` (or a source, when its items are tuples).
    Collection(Vec<QueryValue>),
    /// Tuples, for `[[?a ?b]]` or for a source.
    Relation(Vec<Vec<QueryValue>>),
    /// Rules as EDN text, for `%`.
    Rules(&'a str),
    /// Any input as EDN text: a value for a binding form, tuples for a source, rules
    /// for `%`, a pull pattern for a pattern variable.
    Edn(&'a str),
    /// A function, for a variable called in function position (`[(?f ?x) ?y]`), passed
    /// to `complement`, or named by `(aggregate ?f ?x)`.
    Fn(QueryFn),
}

/// A query's result, shaped by its `:find`.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    /// `:find ?a ?b` — a set of tuples (distinct, sorted).
    Relation(Vec<Vec<QueryValue>>),
    /// `:find ?a ?b :with ?c` without aggregates, or a `:find` with a `pull` — a bag of
    /// tuples: one per distinct binding of the `:find` (and `:with`) variables, so
    /// duplicates remain (sorted).
    Bag(Vec<Vec<QueryValue>>),
    /// `:find [?a ...]` — the values (sorted; distinct unless `:with` is used).
    Collection(Vec<QueryValue>),
    /// `:find [?a ?b]` — one tuple, `None` when nothing matched.
    Tuple(Option<Vec<QueryValue>>),
    /// `:find ?a .` — one value, `None` when nothing matched.
    Scalar(Option<QueryValue>),
    /// A relation with `:keys`, `:strs` or `:syms` — a set of maps (sorted).
    Maps(Vec<QueryValue>),
    /// A tuple with `:keys`, `:strs` or `:syms` — one map, `None` when nothing matched.
    Map(Option<QueryValue>),
}

impl QueryResult {
    /// The result as EDN: a set for relations and maps, a vector for bags, collections
    /// and tuples, the value for scalars, `nil` for an empty scalar or tuple.
    pub fn to_edn(&self) -> Edn {
        let row = |r: &Vec<QueryValue>| Edn::Vector(r.iter().map(QueryValue::to_edn).collect());
        match self {
            QueryResult::Relation(rows) => Edn::Set(rows.iter().map(row).collect()),
            QueryResult::Bag(rows) => Edn::Vector(rows.iter().map(row).collect()),
            QueryResult::Collection(items) => {
                Edn::Vector(items.iter().map(QueryValue::to_edn).collect())
            }
            QueryResult::Tuple(t) => t.as_ref().map_or(Edn::Nil, row),
            QueryResult::Scalar(v) | QueryResult::Map(v) => {
                v.as_ref().map_or(Edn::Nil, QueryValue::to_edn)
            }
            QueryResult::Maps(maps) => Edn::Set(maps.iter().map(QueryValue::to_edn).collect()),
        }
    }

    /// The result as one [`QueryValue`] (what [`QueryResult::to_edn`] prints).
    pub fn to_value(&self) -> QueryValue {
        let row = |r: &Vec<QueryValue>| QueryValue::Vector(r.clone());
        match self {
            QueryResult::Relation(rows) => QueryValue::Set(rows.iter().map(row).collect()),
            QueryResult::Bag(rows) => QueryValue::Vector(rows.iter().map(row).collect()),
            QueryResult::Collection(items) => QueryValue::Vector(items.clone()),
            QueryResult::Tuple(t) => t.as_ref().map_or(QueryValue::Nil, row),
            QueryResult::Scalar(v) | QueryResult::Map(v) => v.clone().unwrap_or(QueryValue::Nil),
            QueryResult::Maps(maps) => QueryValue::Set(maps.iter().cloned().collect()),
        }
    }

    /// The result as JSON text (see [`QueryValue::to_json`]): arrays of arrays for
    /// relations and bags, an array for a collection or tuple, the value for a scalar,
    /// objects for maps, `null` for nothing.
    pub fn to_json(&self) -> String {
        match self {
            QueryResult::Relation(rows) | QueryResult::Bag(rows) => {
                QueryValue::Vector(rows.iter().map(|r| QueryValue::Vector(r.clone())).collect())
                    .to_json()
            }
            QueryResult::Maps(maps) => QueryValue::Vector(maps.clone()).to_json(),
            other => other.to_value().to_json(),
        }
    }

    /// The result as table rows, one value per `:find` element (a map result gives one
    /// column per key, in key order).
    pub fn rows(&self) -> Vec<Vec<QueryValue>> {
        let map_row = |m: &QueryValue| match m {
            QueryValue::Map(m) => m.values().cloned().collect(),
            other => vec![other.clone()],
        };
        match self {
            QueryResult::Relation(rows) | QueryResult::Bag(rows) => rows.clone(),
            QueryResult::Collection(items) => items.iter().map(|v| vec![v.clone()]).collect(),
            QueryResult::Tuple(t) => t.iter().cloned().collect(),
            QueryResult::Scalar(v) => v.iter().map(|v| vec![v.clone()]).collect(),
            QueryResult::Maps(maps) => maps.iter().map(map_row).collect(),
            QueryResult::Map(m) => m.iter().map(map_row).collect(),
        }
    }

    /// The result as a plain-text table: a header line, then one line per row, each
    /// value printed as EDN and every column padded to its widest cell. `columns` names
    /// the columns (e.g. [`Query::columns`]); map results name them by their keys.
    pub fn to_table(&self, columns: &[String]) -> String {
        let headers: Vec<String> = match self {
            QueryResult::Maps(maps) => match maps.first() {
                Some(QueryValue::Map(m)) => m.keys().map(ToString::to_string).collect(),
                _ => columns.to_vec(),
            },
            QueryResult::Map(Some(QueryValue::Map(m))) => {
                m.keys().map(ToString::to_string).collect()
            }
            _ => columns.to_vec(),
        };
        let cells: Vec<Vec<String>> = self
            .rows()
            .iter()
            .map(|r| r.iter().map(ToString::to_string).collect())
            .collect();
        let n = cells
            .iter()
            .map(Vec::len)
            .chain([headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; n];
        for row in cells.iter().chain([&headers]) {
            for (i, c) in row.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |row: &[String]| -> String {
            let padded: Vec<String> = (0..n)
                .map(|i| {
                    let c = row.get(i).map_or("", String::as_str);
                    format!("{c:<w$}", w = widths[i])
                })
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = line(&headers);
        out.push('\n');
        for row in &cells {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// The number of results (rows, values; 0 or 1 for a scalar, tuple or map).
    pub fn len(&self) -> usize {
        match self {
            QueryResult::Relation(rows) | QueryResult::Bag(rows) => rows.len(),
            QueryResult::Collection(items) | QueryResult::Maps(items) => items.len(),
            QueryResult::Tuple(t) => usize::from(t.is_some()),
            QueryResult::Scalar(v) | QueryResult::Map(v) => usize::from(v.is_some()),
        }
    }

    /// True when nothing matched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// EDN text, as [`QueryResult::to_edn`].
impl fmt::Display for QueryResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_edn())
    }
}

/// Runs a query (EDN text) against its inputs, Datascript's `q`.
///
/// # Errors
/// [`Error::EdnSyntax`] and [`Error::QueryParse`] for a malformed query (naming the
/// clause at fault); [`Error::QueryInput`] for inputs that do not match `:in`;
/// [`Error::UnboundVariable`], [`Error::UnknownFunction`], [`Error::WrongArity`],
/// [`Error::UnknownRule`] and [`Error::QueryEval`] for a query that cannot run; lookup
/// ref errors; a load error of a lazily restored db.
pub fn q(query: &str, inputs: &[Input<'_>]) -> Result<QueryResult, Error> {
    cache::parsed(query)?.run(inputs)
}

/// [`q`] with custom functions, predicates and aggregates.
///
/// # Errors
/// As [`q`].
pub fn q_with(
    query: &str,
    inputs: &[Input<'_>],
    functions: &Functions,
) -> Result<QueryResult, Error> {
    cache::parsed(query)?.run_with(inputs, functions)
}

fn input_err(reason: impl Into<String>) -> Error {
    Error::QueryInput {
        reason: reason.into(),
    }
}

/// Entity ids given as refs read as numbers, everywhere in a value.
fn normalize(v: QueryValue) -> QueryValue {
    match v {
        QueryValue::Value(Value::Ref(e)) => QueryValue::entity(e),
        QueryValue::Vector(items) => QueryValue::Vector(items.into_iter().map(normalize).collect()),
        QueryValue::Set(items) => QueryValue::Set(items.into_iter().map(normalize).collect()),
        QueryValue::Map(m) => QueryValue::Map(
            m.into_iter()
                .map(|(k, v)| (normalize(k), normalize(v)))
                .collect(),
        ),
        other => other,
    }
}

fn input_value(input: &Input<'_>) -> Result<QueryValue, Error> {
    Ok(normalize(match input {
        Input::Scalar(v) => v.clone(),
        Input::Collection(items) => QueryValue::Vector(items.clone()),
        Input::Relation(rows) => {
            QueryValue::Vector(rows.iter().map(|r| QueryValue::Vector(r.clone())).collect())
        }
        Input::Edn(text) => QueryValue::from_edn(&edn::parse(text)?)?,
        Input::Fn(f) => QueryValue::Fn(f.clone()),
        Input::Db(_) => return Err(input_err("a db was given where a value is expected")),
        Input::History(_) => {
            return Err(input_err("a history was given where a value is expected"))
        }
        Input::Rules(_) => return Err(input_err("rules were given where a value is expected")),
    }))
}

fn tuples_of(v: QueryValue, name: &str) -> Result<Vec<Vec<QueryValue>>, Error> {
    let Some(items) = v.as_seq() else {
        return Err(input_err(format!(
            "source {name} must be a db or a collection of tuples, got {v}"
        )));
    };
    items
        .into_iter()
        .map(|t| match t.as_seq() {
            Some(t) => Ok(t.into_iter().cloned().collect()),
            None => Err(input_err(format!(
                "source {name} holds {t}, which is not a tuple"
            ))),
        })
        .collect()
}

impl Query {
    /// Runs the query against its inputs (see [`q`]).
    ///
    /// # Errors
    /// As [`q`].
    pub fn run(&self, inputs: &[Input<'_>]) -> Result<QueryResult, Error> {
        self.run_with(inputs, &Functions::new())
    }

    /// Runs the query with custom functions (see [`q_with`]).
    ///
    /// # Errors
    /// As [`q`].
    pub fn run_with(
        &self,
        inputs: &[Input<'_>],
        functions: &Functions,
    ) -> Result<QueryResult, Error> {
        self.run_traced(inputs, functions, None)
    }

    /// Runs the query (see [`q`]) and records the plan it ran with: the order its
    /// clauses ran in, the index reads chosen, estimated and actual sizes.
    ///
    /// # Errors
    /// As [`q`].
    pub fn explain(&self, inputs: &[Input<'_>]) -> Result<Explain, Error> {
        self.explain_with(inputs, &Functions::new())
    }

    /// [`Query::explain`] with custom functions.
    ///
    /// # Errors
    /// As [`q`].
    pub fn explain_with(
        &self,
        inputs: &[Input<'_>],
        functions: &Functions,
    ) -> Result<Explain, Error> {
        let trace = std::cell::RefCell::new(Vec::new());
        let start = std::time::Instant::now();
        let result = self.run_traced(inputs, functions, Some(&trace))?;
        Ok(Explain {
            steps: trace.into_inner(),
            result,
            elapsed: start.elapsed(),
        })
    }

    fn run_traced(
        &self,
        inputs: &[Input<'_>],
        functions: &Functions,
        trace: Option<&std::cell::RefCell<Vec<String>>>,
    ) -> Result<QueryResult, Error> {
        if inputs.len() != self.ins.len() {
            return Err(input_err(format!(
                "{} inputs passed, expected {} for :in [{}]",
                inputs.len(),
                self.ins.len(),
                self.inputs().join(" ")
            )));
        }
        let mut sources: HashMap<Sym, Source<'_>> = HashMap::new();
        let mut rules = Rules::default();
        let mut ctx = Ctx::new();
        let mut scalars: HashMap<Sym, QueryValue> = HashMap::new();
        for (spec, input) in self.ins.iter().zip(inputs) {
            match spec {
                InSpec::Src(name) => {
                    let source = match input {
                        Input::Db(db) => Source::Db(db),
                        Input::History(h) => Source::History(h),
                        Input::Rules(_) => {
                            return Err(input_err(format!("rules given for source {name}")))
                        }
                        other => Source::Coll(tuples_of(input_value(other)?, name)?),
                    };
                    sources.insert(name.clone(), source);
                }
                InSpec::Rules => {
                    let form = match input {
                        Input::Rules(text) | Input::Edn(text) => edn::parse(text)?,
                        _ => return Err(input_err("% must be given rules (Input::Rules)")),
                    };
                    rules = parse_rules(&form)?;
                }
                InSpec::Bind(b) => {
                    let value = input_value(input)?;
                    if let parse::Binding::Var(v) = b {
                        scalars.insert(v.clone(), value.clone());
                    }
                    let rel = bind_value(b, &value).map_err(input_err)?;
                    ctx.add(rel);
                }
            }
        }
        let engine = Engine {
            sources,
            rules,
            fns: functions,
            cache: Default::default(),
            in_scalars: scalars.keys().cloned().collect(),
            trace: trace.map(|_| std::cell::RefCell::new(Vec::new())),
        };
        engine.check(&self.wheres)?;
        engine.check_rules()?;
        self.check_find(functions)?;

        let elements = self.find.elements();
        let mut all_vars: Vec<Sym> = elements.iter().map(|e| e.var().clone()).collect();
        all_vars.extend(self.with.iter().cloned());
        let mut distinct_vars: Vec<Sym> = Vec::new();
        for v in &all_vars {
            if !distinct_vars.contains(v) {
                distinct_vars.push(v.clone());
            }
        }
        let needed: HashSet<Sym> = distinct_vars.iter().cloned().collect();
        let scope = Scope::root();
        let ctx = engine.eval_body(&self.wheres, ctx, &Sym::from(DEFAULT_SRC), &scope, &needed);
        if let (Some(out), Some(steps)) = (trace, &engine.trace) {
            out.borrow_mut().append(&mut steps.borrow_mut());
        }
        let ctx = ctx?;
        let rel = ctx
            .to_rel(&distinct_vars)
            .map_err(|v| Error::UnboundVariable {
                var: v.to_string(),
                clause: ":find".into(),
            })?;
        let cols: Vec<usize> = all_vars.iter().filter_map(|v| rel.col(v)).collect();
        let mut rows: Vec<Vec<QueryValue>> = rel
            .rows
            .iter()
            .map(|r| cols.iter().map(|c| r[*c].clone()).collect())
            .collect();
        let arity = elements.len();
        let bag = !self.with.is_empty();
        if bag {
            for r in &mut rows {
                r.truncate(arity);
            }
        }
        let has_agg = elements.iter().any(|e| matches!(e, FindElem::Agg { .. }));
        if has_agg {
            rows = self.aggregate(rows, &scalars, functions)?;
        }
        // As Datascript: one pull per distinct binding of the `:find` variables, and the
        // pulled rows stay a bag (two entities can pull to the same map).
        let has_pull = elements.iter().any(|e| matches!(e, FindElem::Pull { .. }));
        if has_pull {
            if !bag {
                rows.sort();
                rows.dedup();
            }
            rows = self.pull_rows(rows, &engine, &scalars, functions)?;
        }
        rows.sort();
        let bag = (bag || has_pull) && !has_agg;
        Ok(self.shape(rows, bag))
    }

    fn check_find(&self, functions: &Functions) -> Result<(), Error> {
        for e in self.find.elements() {
            if let FindElem::Agg {
                name, args, form, ..
            } = e
            {
                if functions.aggregate_impl(name).is_some() || &**name == "aggregate" {
                    continue;
                }
                let Some((min, max)) = aggregates::aggregate_arity(name) else {
                    return Err(Error::UnknownFunction {
                        name: name.to_string(),
                        clause: form.to_string(),
                    });
                };
                if args.len() < min || args.len() > max {
                    return Err(Error::WrongArity {
                        name: name.to_string(),
                        expected: if min == max {
                            format!("{}", min + 1)
                        } else {
                            format!("{} to {}", min + 1, max + 1)
                        },
                        got: args.len() + 1,
                        clause: form.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    fn aggregate(
        &self,
        rows: Vec<Vec<QueryValue>>,
        scalars: &HashMap<Sym, QueryValue>,
        functions: &Functions,
    ) -> Result<Vec<Vec<QueryValue>>, Error> {
        let elements = self.find.elements();
        let group_cols: Vec<usize> = elements
            .iter()
            .enumerate()
            .filter(|(_, e)| !matches!(e, FindElem::Agg { .. }))
            .map(|(i, _)| i)
            .collect();
        let mut groups: BTreeMap<Vec<QueryValue>, Vec<Vec<QueryValue>>> = BTreeMap::new();
        for r in rows {
            let key: Vec<QueryValue> = group_cols.iter().map(|c| r[*c].clone()).collect();
            groups.entry(key).or_default().push(r);
        }
        let mut out = Vec::with_capacity(groups.len());
        for (_, members) in groups {
            let mut row = Vec::with_capacity(elements.len());
            for (i, e) in elements.iter().enumerate() {
                match e {
                    FindElem::Agg {
                        name, args, form, ..
                    } => {
                        let args: Vec<QueryValue> =
                            args.iter()
                                .map(|a| match a {
                                    Arg::Const(c) => Ok(c.clone()),
                                    Arg::Var(v) => scalars.get(v).cloned().ok_or_else(|| {
                                        Error::UnboundVariable {
                                            var: v.to_string(),
                                            clause: form.to_string(),
                                        }
                                    }),
                                    Arg::Src(s) => Err(Error::QueryParse {
                                        clause: form.to_string(),
                                        reason: format!("an aggregate takes no source ({s})"),
                                    }),
                                })
                                .collect::<Result<_, _>>()?;
                        let vals: Vec<QueryValue> = members.iter().map(|r| r[i].clone()).collect();
                        let v = aggregates::aggregate(name, &args, &vals, functions).map_err(
                            |reason| Error::QueryEval {
                                function: name.to_string(),
                                reason,
                                clause: form.to_string(),
                            },
                        )?;
                        row.push(v);
                    }
                    _ => row.push(members.first().map_or(QueryValue::Nil, |r| r[i].clone())),
                }
            }
            out.push(row);
        }
        Ok(out)
    }

    fn pull_rows(
        &self,
        rows: Vec<Vec<QueryValue>>,
        engine: &Engine<'_>,
        scalars: &HashMap<Sym, QueryValue>,
        functions: &Functions,
    ) -> Result<Vec<Vec<QueryValue>>, Error> {
        let mut pullers: Vec<Option<(&Db, PullPattern)>> = Vec::new();
        for e in self.find.elements() {
            let FindElem::Pull {
                src, pattern, form, ..
            } = e
            else {
                pullers.push(None);
                continue;
            };
            let db = match engine.sources.get(src) {
                Some(Source::Db(db)) => *db,
                _ => {
                    return Err(Error::QueryParse {
                        clause: form.to_string(),
                        reason: format!("pull needs {src} to be a db"),
                    })
                }
            };
            let edn_pattern = match pattern {
                PullSource::Const(p) => p.clone(),
                PullSource::Var(v) => scalars.get(v).map(QueryValue::to_edn).ok_or_else(|| {
                    Error::UnboundVariable {
                        var: v.to_string(),
                        clause: form.to_string(),
                    }
                })?,
            };
            pullers.push(Some((
                db,
                PullPattern::from_edn(db, &edn_pattern, functions)?,
            )));
        }
        rows.into_iter()
            .map(|r| {
                r.into_iter()
                    .zip(&pullers)
                    .map(|(v, p)| match p {
                        Some((db, pattern)) => pull_entity(db, pattern, &v, functions),
                        None => Ok(v),
                    })
                    .collect()
            })
            .collect()
    }

    fn shape(&self, mut rows: Vec<Vec<QueryValue>>, bag: bool) -> QueryResult {
        if !bag {
            rows.dedup();
        }
        let to_map = |r: &Vec<QueryValue>| -> QueryValue {
            let Some(ret) = &self.returns else {
                return QueryValue::Nil;
            };
            QueryValue::Map(
                r.iter()
                    .enumerate()
                    .map(|(i, v)| (ret.key(i), v.clone()))
                    .collect(),
            )
        };
        match (&self.find, &self.returns) {
            (FindSpec::Rel(_), Some(_)) => {
                let mut maps: Vec<QueryValue> = rows.iter().map(to_map).collect();
                maps.sort();
                maps.dedup();
                QueryResult::Maps(maps)
            }
            (FindSpec::Tuple(_), Some(_)) => QueryResult::Map(rows.first().map(to_map)),
            (FindSpec::Rel(_), None) if bag => QueryResult::Bag(rows),
            (FindSpec::Rel(_), None) => QueryResult::Relation(rows),
            (FindSpec::Coll(_), _) => QueryResult::Collection(
                rows.into_iter()
                    .filter_map(|r| r.into_iter().next())
                    .collect(),
            ),
            (FindSpec::Tuple(_), None) => QueryResult::Tuple(rows.into_iter().next()),
            (FindSpec::Scalar(_), _) => {
                QueryResult::Scalar(rows.into_iter().next().and_then(|r| r.into_iter().next()))
            }
        }
    }
}
