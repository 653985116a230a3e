//! Functions as query values: what `:in` binds to a variable in function position
//! (`[(?f ?x) ?y]`), what `complement` returns, and what `(aggregate ?agg ?x)` calls.
//!
//! A [`QueryFn`] is a Rust closure (given as [`crate::Input::Fn`]), a built-in or
//! registered function named by a symbol (`(complement odd?)`), or the complement of
//! another function. Two function values are equal only when one is a clone of the
//! other (Clojure's functions compare by identity); they order after every other value,
//! by name, then by when they were made.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use super::builtins::{arity_text, builtin_arity, call_builtin, CallArg, CallError, Functions};
use super::eval::Source;
use super::value::QueryValue;
use crate::db::Db;

/// One argument of a [`QueryFn`] call: a value, or a data source the clause passed
/// (`[(?f $ ?e)]`).
#[derive(Clone, Copy, Debug)]
pub enum FnArg<'a> {
    /// A value (a constant or a variable's binding).
    Value(&'a QueryValue),
    /// A database source.
    Db(&'a Db),
    /// A source that is a collection of tuples.
    Tuples(&'a [Vec<QueryValue>]),
    /// A history source ([`crate::History`]).
    History(&'a crate::History),
}

impl<'a> FnArg<'a> {
    /// The value, if this argument is one.
    pub fn value(&self) -> Option<&'a QueryValue> {
        match self {
            FnArg::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The db, if this argument is one.
    pub fn db(&self) -> Option<&'a Db> {
        match self {
            FnArg::Db(db) => Some(db),
            _ => None,
        }
    }
}

/// The body of a Rust function value: its arguments in, a value (or why it failed) out.
pub type FnBody = Arc<dyn Fn(&[FnArg<'_>]) -> Result<QueryValue, String> + Send + Sync>;

#[derive(Clone)]
enum Body {
    Rust(FnBody),
    /// A built-in or registered function, by name.
    Named(Arc<str>),
    Complement(Box<QueryFn>),
}

/// A function as a query value: a Rust closure (given as [`crate::Input::Fn`]), a
/// built-in or registered function named by a symbol (`(complement odd?)`), or the
/// complement of another function. Called in function position (`[(?f ?x) ?y]`), by
/// `complement`, and as `(aggregate ?f ?x)`. Two function values are equal only when one
/// is a clone of the other (Clojure's functions compare by identity); they order after
/// every other value, by name, then by when they were made.
///
/// ```
/// use datoms_core::query::{q, Input, QueryFn, QueryValue};
/// use datoms_core::{Db, Schema};
///
/// let db = Db::new(Schema::new()).with_edn(r#"[{:age 15} {:age 42}]"#)?.db_after;
/// let adult = QueryFn::predicate("adult?", |args| args[0].as_long().is_some_and(|a| a >= 18));
/// let r = q(
///     "[:find [?a ...] :in $ ?ok :where [_ :age ?a] [(?ok ?a)]]",
///     &[Input::Db(&db), Input::Fn(adult.clone())],
/// )?;
/// assert_eq!(r.to_string(), "[42]");
/// let r = q(
///     "[:find [?a ...] :in $ ?ok :where [_ :age ?a] [(complement ?ok) ?minor] [(?minor ?a)]]",
///     &[Input::Db(&db), Input::Fn(adult)],
/// )?;
/// assert_eq!(r.to_string(), "[15]");
/// # Ok::<(), datoms_core::Error>(())
/// ```
#[derive(Clone)]
pub struct QueryFn {
    name: Arc<str>,
    id: u64,
    body: Body,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, AtomicOrdering::Relaxed)
}

impl QueryFn {
    /// A function over its arguments, sources included (`[(?f $ ?e) ?v]` passes the
    /// db as [`FnArg::Db`]). `name` is what it prints as and what errors name.
    pub fn new(
        name: &str,
        f: impl Fn(&[FnArg<'_>]) -> Result<QueryValue, String> + Send + Sync + 'static,
    ) -> QueryFn {
        QueryFn {
            name: Arc::from(name),
            id: next_id(),
            body: Body::Rust(Arc::new(f)),
        }
    }

    /// A function over values only: a source argument is an error.
    pub fn values(
        name: &str,
        f: impl Fn(&[QueryValue]) -> Result<QueryValue, String> + Send + Sync + 'static,
    ) -> QueryFn {
        let label: Arc<str> = Arc::from(name);
        QueryFn::new(name, move |args| {
            let vals = args
                .iter()
                .map(|a| match a {
                    FnArg::Value(v) => Ok((*v).clone()),
                    _ => Err(format!("{label} takes values, not a data source")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            f(&vals)
        })
    }

    /// A predicate over values: true keeps the row.
    pub fn predicate(
        name: &str,
        f: impl Fn(&[QueryValue]) -> bool + Send + Sync + 'static,
    ) -> QueryFn {
        QueryFn::values(name, move |args| Ok(QueryValue::bool(f(args))))
    }

    /// The built-in or registered function `name` as a value (what the symbol `odd?`
    /// stands for in `(complement odd?)`).
    pub fn named(name: &str) -> QueryFn {
        QueryFn {
            name: Arc::from(name),
            id: next_id(),
            body: Body::Named(Arc::from(name)),
        }
    }

    /// Clojure's `complement`: true where `self` answers `nil` or `false`.
    pub fn complement(&self) -> QueryFn {
        QueryFn {
            name: Arc::from(format!("(complement {})", self.name)),
            id: next_id(),
            body: Body::Complement(Box::new(self.clone())),
        }
    }

    /// The name it prints as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls the function (`functions` resolves named ones).
    pub(crate) fn call(
        &self,
        args: &[CallArg<'_>],
        functions: &Functions,
    ) -> Result<QueryValue, CallError> {
        match &self.body {
            Body::Rust(f) => {
                let args: Vec<FnArg<'_>> = args
                    .iter()
                    .map(|a| match a {
                        CallArg::Val(v) => FnArg::Value(v),
                        CallArg::Src(Source::Db(db)) => FnArg::Db(db),
                        CallArg::Src(Source::Coll(t)) => FnArg::Tuples(t),
                        CallArg::Src(Source::History(h)) => FnArg::History(h),
                    })
                    .collect();
                f(&args).map_err(CallError::Reason)
            }
            Body::Named(name) => match functions.function_impl(name) {
                Some(f) => {
                    let vals = args
                        .iter()
                        .map(|a| match a {
                            CallArg::Val(v) => Ok((*v).clone()),
                            CallArg::Src(_) => Err(CallError::Reason(
                                "registered functions take no data source".into(),
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    f(&vals).map_err(CallError::Reason)
                }
                None => match builtin_arity(name) {
                    Some(arity)
                        if args.len() >= arity.0 && arity.1.is_none_or(|m| args.len() <= m) =>
                    {
                        call_builtin(name, args)
                    }
                    Some(arity) => Err(CallError::Reason(format!(
                        "{name} takes {} arguments, got {}",
                        arity_text(arity),
                        args.len()
                    ))),
                    None => Err(CallError::Reason(format!("unknown function {name}"))),
                },
            },
            Body::Complement(inner) => {
                Ok(QueryValue::bool(!inner.call(args, functions)?.is_truthy()))
            }
        }
    }
}

impl fmt::Debug for QueryFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#fn[{}]", self.name)
    }
}

impl PartialEq for QueryFn {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for QueryFn {}

impl Hash for QueryFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialOrd for QueryFn {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for QueryFn {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name
            .cmp(&other.name)
            .then_with(|| self.id.cmp(&other.id))
    }
}
