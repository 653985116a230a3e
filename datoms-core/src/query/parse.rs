//! Query and rules text (EDN) to the query AST. Every error is
//! [`Error::QueryParse`] quoting the clause or fragment at fault.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::builtins::builtin_arity;
use super::function::QueryFn;
use super::value::QueryValue;
use crate::edn::{self, Edn};
use crate::error::Error;
use crate::value::Keyword;

/// A symbol: a variable (`?x`), a source (`$`, `$db`), a function or rule name.
pub(crate) type Sym = Arc<str>;

/// The default source, `$`.
pub(crate) const DEFAULT_SRC: &str = "$";

/// A symbol that is not a variable, a source, `%`, `_`, `.` or `...`: what Datascript
/// accepts as the name of a pull pattern input.
fn is_plain_symbol(s: &str) -> bool {
    !is_var(s) && !is_src(s) && !matches!(s, "%" | "_" | "." | "...")
}

pub(crate) fn is_var(s: &str) -> bool {
    s.starts_with('?')
}

pub(crate) fn is_src(s: &str) -> bool {
    s.starts_with('$')
}

/// The printed form, cut short, for error messages.
pub(crate) fn describe(form: &Edn) -> String {
    let mut text = form.to_string();
    if let Some((cut, _)) = text.char_indices().nth(200) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

pub(crate) fn bad(form: &Edn, reason: impl Into<String>) -> Error {
    Error::QueryParse {
        clause: describe(form),
        reason: reason.into(),
    }
}

fn sym(s: &str) -> Sym {
    Arc::from(s)
}

/// `:find` and how results are shaped.
#[derive(Clone, Debug)]
pub(crate) enum FindSpec {
    /// `:find ?a ?b` — a set of tuples.
    Rel(Vec<FindElem>),
    /// `:find [?a ...]` — a collection.
    Coll(FindElem),
    /// `:find ?a .` — a single value.
    Scalar(FindElem),
    /// `:find [?a ?b]` — a single tuple.
    Tuple(Vec<FindElem>),
}

impl FindSpec {
    pub(crate) fn elements(&self) -> &[FindElem] {
        match self {
            FindSpec::Rel(e) | FindSpec::Tuple(e) => e,
            FindSpec::Coll(e) | FindSpec::Scalar(e) => std::slice::from_ref(e),
        }
    }
}

/// Where a pull pattern in `:find` comes from.
#[derive(Clone, Debug)]
pub(crate) enum PullSource {
    /// Written in the query.
    Const(Edn),
    /// An input variable.
    Var(Sym),
}

/// One `:find` element.
#[derive(Clone, Debug)]
pub(crate) enum FindElem {
    /// `?x`
    Var(Sym),
    /// `(count ?x)`, `(max 3 ?x)`, `(my-agg ?x)`.
    Agg {
        name: Sym,
        /// The arguments before the variable (constants or input variables).
        args: Vec<Arg>,
        var: Sym,
        form: Arc<str>,
    },
    /// `(pull ?e [*])`, `(pull $db ?e ?pattern)`.
    Pull {
        src: Sym,
        var: Sym,
        pattern: PullSource,
        form: Arc<str>,
    },
}

impl FindElem {
    pub(crate) fn var(&self) -> &Sym {
        match self {
            FindElem::Var(v) | FindElem::Agg { var: v, .. } | FindElem::Pull { var: v, .. } => v,
        }
    }

    pub(crate) fn label(&self) -> String {
        match self {
            FindElem::Var(v) => v.to_string(),
            FindElem::Agg { form, .. } | FindElem::Pull { form, .. } => form.to_string(),
        }
    }
}

/// `:keys`, `:strs` or `:syms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    Keys,
    Strs,
    Syms,
}

#[derive(Clone, Debug)]
pub(crate) struct ReturnMap {
    pub kind: ReturnKind,
    pub names: Vec<String>,
}

impl ReturnMap {
    pub(crate) fn key(&self, i: usize) -> QueryValue {
        let name = self.names.get(i).map_or("", String::as_str);
        match self.kind {
            // Names were checked to be keywords when the query was parsed.
            ReturnKind::Keys => Keyword::parse(name).map_or_else(
                |_| QueryValue::string(name),
                |k| QueryValue::Value(k.into()),
            ),
            ReturnKind::Strs => QueryValue::string(name),
            ReturnKind::Syms => QueryValue::Symbol(sym(name)),
        }
    }
}

/// A binding form of `:in` or of a function's output.
#[derive(Clone, Debug)]
pub(crate) enum Binding {
    /// `?x`
    Var(Sym),
    /// `_`
    Ignore,
    /// `[?a ?b]`
    Tuple(Vec<Binding>),
    /// `[?a ...]`; `[[?a ?b]]` is a collection of tuples.
    Coll(Box<Binding>),
}

impl Binding {
    pub(crate) fn vars(&self, out: &mut Vec<Sym>) {
        match self {
            Binding::Var(v) => push_distinct(out, v),
            Binding::Ignore => {}
            Binding::Tuple(items) => items.iter().for_each(|b| b.vars(out)),
            Binding::Coll(b) => b.vars(out),
        }
    }

    pub(crate) fn to_edn(&self) -> Edn {
        match self {
            Binding::Var(v) => Edn::Symbol(v.to_string()),
            Binding::Ignore => Edn::Symbol("_".into()),
            Binding::Tuple(items) => Edn::Vector(items.iter().map(Binding::to_edn).collect()),
            Binding::Coll(b) => match &**b {
                Binding::Tuple(_) => Edn::Vector(vec![b.to_edn()]),
                other => Edn::Vector(vec![other.to_edn(), Edn::Symbol("...".into())]),
            },
        }
    }
}

/// One `:in` element.
#[derive(Clone, Debug)]
pub(crate) enum InSpec {
    /// `$`, `$name`
    Src(Sym),
    /// `%`
    Rules,
    /// A binding form.
    Bind(Binding),
}

/// A data pattern or rule argument.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Term {
    Var(Sym),
    Const(QueryValue),
    Blank,
}

/// A function, predicate or aggregate argument.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Var(Sym),
    Const(QueryValue),
    Src(Sym),
}

/// `or-join`'s variables: `[[?required] ?other]`.
#[derive(Clone, Debug)]
pub(crate) struct JoinVars {
    pub required: Vec<Sym>,
    pub vars: Vec<Sym>,
}

impl JoinVars {
    pub(crate) fn all(&self) -> impl Iterator<Item = &Sym> {
        self.required.iter().chain(self.vars.iter())
    }
}

#[derive(Clone, Debug)]
pub(crate) enum ClauseKind {
    /// `[$src? e a v tx added]`
    Pattern { src: Option<Sym>, terms: Vec<Term> },
    /// `[(pred args…)]`
    Pred { name: Sym, args: Vec<Arg> },
    /// `[(f args…) binding]`
    Fn {
        name: Sym,
        args: Vec<Arg>,
        out: Binding,
    },
    /// `($src? rule args…)`
    Rule {
        src: Option<Sym>,
        name: Sym,
        args: Vec<Term>,
    },
    /// `(not …)`, `(not-join [vars] …)`
    Not {
        src: Option<Sym>,
        join: Option<Vec<Sym>>,
        body: Vec<Clause>,
    },
    /// `(or …)`, `(or-join [vars] …)`; each branch is one clause or an `(and …)`.
    Or {
        src: Option<Sym>,
        join: Option<JoinVars>,
        branches: Vec<Vec<Clause>>,
    },
}

/// One `:where` clause with its printed form (for errors) and its variables.
#[derive(Clone, Debug)]
pub(crate) struct Clause {
    pub kind: ClauseKind,
    pub form: Arc<str>,
    /// Every variable in the clause, nested ones included, in order of appearance.
    pub vars: Vec<Sym>,
}

fn push_distinct(out: &mut Vec<Sym>, v: &Sym) {
    if !out.contains(v) {
        out.push(v.clone());
    }
}

impl Clause {
    fn new(kind: ClauseKind, form: &Edn) -> Clause {
        let mut vars = Vec::new();
        collect_kind_vars(&kind, &mut vars);
        Clause {
            kind,
            form: Arc::from(describe(form)),
            vars,
        }
    }

    /// The variables this clause binds when it runs (what later clauses see bound).
    pub(crate) fn binds(&self, out: &mut Vec<Sym>) {
        match &self.kind {
            ClauseKind::Pattern { .. } | ClauseKind::Rule { .. } => {
                self.vars.iter().for_each(|v| push_distinct(out, v));
            }
            ClauseKind::Pred { .. } | ClauseKind::Not { .. } => {}
            ClauseKind::Fn { out: b, .. } => b.vars(out),
            ClauseKind::Or { join: None, .. } => {
                self.vars.iter().for_each(|v| push_distinct(out, v));
            }
            ClauseKind::Or { join: Some(j), .. } => j.all().for_each(|v| push_distinct(out, v)),
        }
    }
}

fn collect_kind_vars(kind: &ClauseKind, out: &mut Vec<Sym>) {
    let term_vars = |terms: &[Term], out: &mut Vec<Sym>| {
        for t in terms {
            if let Term::Var(v) = t {
                push_distinct(out, v);
            }
        }
    };
    let arg_vars = |args: &[Arg], out: &mut Vec<Sym>| {
        for a in args {
            if let Arg::Var(v) = a {
                push_distinct(out, v);
            }
        }
    };
    match kind {
        ClauseKind::Pattern { terms, .. } | ClauseKind::Rule { args: terms, .. } => {
            term_vars(terms, out);
        }
        ClauseKind::Pred { name, args } => {
            if is_var(name) {
                push_distinct(out, name);
            }
            arg_vars(args, out);
        }
        ClauseKind::Fn { name, args, out: b } => {
            if is_var(name) {
                push_distinct(out, name);
            }
            arg_vars(args, out);
            b.vars(out);
        }
        ClauseKind::Not { join, body, .. } => {
            if let Some(j) = join {
                j.iter().for_each(|v| push_distinct(out, v));
            }
            body.iter()
                .for_each(|c| c.vars.iter().for_each(|v| push_distinct(out, v)));
        }
        ClauseKind::Or { join, branches, .. } => {
            if let Some(j) = join {
                j.all().for_each(|v| push_distinct(out, v));
            }
            for b in branches {
                b.iter()
                    .for_each(|c| c.vars.iter().for_each(|v| push_distinct(out, v)));
            }
        }
    }
}

/// What a clause list uses, for validation.
#[derive(Default)]
struct Uses {
    sources: HashSet<Sym>,
    rule_calls: bool,
}

fn collect_uses(clauses: &[Clause], default: &Sym, uses: &mut Uses) {
    for c in clauses {
        match &c.kind {
            ClauseKind::Pattern { src, .. } => {
                uses.sources
                    .insert(src.clone().unwrap_or_else(|| default.clone()));
            }
            ClauseKind::Pred { args, .. } | ClauseKind::Fn { args, .. } => {
                for a in args {
                    if let Arg::Src(s) = a {
                        let s = if &**s == DEFAULT_SRC { default } else { s };
                        uses.sources.insert(s.clone());
                    }
                }
            }
            ClauseKind::Rule { src, .. } => {
                uses.rule_calls = true;
                if let Some(s) = src {
                    uses.sources.insert(s.clone());
                }
            }
            ClauseKind::Not { src, body, .. } => {
                let inner = src.as_ref().unwrap_or(default);
                if let Some(s) = src {
                    uses.sources.insert(s.clone());
                }
                collect_uses(body, inner, uses);
            }
            ClauseKind::Or { src, branches, .. } => {
                let inner = src.as_ref().unwrap_or(default);
                if let Some(s) = src {
                    uses.sources.insert(s.clone());
                }
                for b in branches {
                    collect_uses(b, inner, uses);
                }
            }
        }
    }
}

/// A parsed query: parse once, run many times.
///
/// ```
/// use datoms_core::query::{Input, Query};
/// use datoms_core::{Db, Schema};
///
/// let db = Db::new(Schema::new()).with_edn(r#"[{:name "Ann" :age 31} {:name "Bob" :age 17}]"#)?.db_after;
/// let adults = Query::parse("[:find [?n ...] :in $ ?min :where [?e :name ?n] [?e :age ?a] [(>= ?a ?min)]]")?;
/// let result = adults.run(&[Input::Db(&db), Input::Scalar(18.into())])?;
/// assert_eq!(result.to_string(), r#"["Ann"]"#);
/// # Ok::<(), datoms_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Query {
    pub(crate) find: FindSpec,
    pub(crate) returns: Option<ReturnMap>,
    pub(crate) with: Vec<Sym>,
    pub(crate) ins: Vec<InSpec>,
    pub(crate) wheres: Vec<Clause>,
}

impl Query {
    /// Parses query text: a vector `[:find … :in … :where …]` or a map
    /// `{:find […] :in […] :where […]}`, exactly as Datascript users write it.
    ///
    /// # Errors
    /// [`Error::EdnSyntax`] for text that is not EDN; [`Error::QueryParse`] naming the
    /// clause at fault for EDN that is not a valid query.
    pub fn parse(text: &str) -> Result<Query, Error> {
        Query::from_edn(&edn::parse(text)?)
    }

    /// Parses a query from an EDN form (see [`Query::parse`]).
    ///
    /// # Errors
    /// [`Error::QueryParse`] naming the clause at fault.
    pub fn from_edn(form: &Edn) -> Result<Query, Error> {
        let sections = split_sections(form)?;
        let mut find = None;
        let mut returns: Option<ReturnMap> = None;
        let mut with = Vec::new();
        let mut ins = None;
        let mut wheres = Vec::new();
        for (key, items, section_form) in &sections {
            match key.as_str() {
                "find" => find = Some(parse_find(items, section_form)?),
                "keys" | "strs" | "syms" => {
                    if returns.is_some() {
                        return Err(bad(form, "only one of :keys/:syms/:strs may be present"));
                    }
                    let kind = match key.as_str() {
                        "keys" => ReturnKind::Keys,
                        "strs" => ReturnKind::Strs,
                        _ => ReturnKind::Syms,
                    };
                    let names = items
                        .iter()
                        .map(|i| match i {
                            Edn::Symbol(s) => Ok(s.clone()),
                            Edn::Keyword(k) => Ok(k.as_str().to_owned()),
                            Edn::String(s) => Ok(s.clone()),
                            other => Err(bad(other, format!("expected a name in :{key}"))),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if kind == ReturnKind::Keys {
                        for (name, item) in names.iter().zip(items) {
                            if let Err(e) = Keyword::parse(name) {
                                return Err(bad(item, format!("not a :keys name: {e}")));
                            }
                        }
                    }
                    returns = Some(ReturnMap { kind, names });
                }
                "with" => {
                    for i in items {
                        match i {
                            Edn::Symbol(s) if is_var(s) => {
                                let v = sym(s);
                                if with.contains(&v) {
                                    return Err(bad(section_form, "vars used in :with should be distinct"));
                                }
                                with.push(v);
                            }
                            other => {
                                return Err(bad(
                                    other,
                                    "cannot parse :with clause, expected [ variable+ ]",
                                ))
                            }
                        }
                    }
                }
                "in" => ins = Some(items.iter().map(parse_in).collect::<Result<Vec<_>, _>>()?),
                "where" => {
                    wheres = items
                        .iter()
                        .map(parse_clause)
                        .collect::<Result<Vec<_>, _>>()?;
                }
                other => {
                    return Err(bad(
                        section_form,
                        format!("unknown query section :{other} (expected :find, :keys, :strs, :syms, :with, :in or :where)"),
                    ))
                }
            }
        }
        let find = find.ok_or_else(|| bad(form, "a query needs a :find section"))?;
        let mut uses = Uses::default();
        collect_uses(&wheres, &sym(DEFAULT_SRC), &mut uses);
        for e in find.elements() {
            if let FindElem::Pull { src, .. } = e {
                uses.sources.insert(src.clone());
            }
        }
        let ins = match ins {
            Some(ins) => ins,
            None if uses.sources.contains(DEFAULT_SRC) => vec![InSpec::Src(sym(DEFAULT_SRC))],
            None => Vec::new(),
        };
        let query = Query {
            find,
            returns,
            with,
            ins,
            wheres,
        };
        query.validate(form, &uses)?;
        Ok(query)
    }

    fn validate(&self, form: &Edn, uses: &Uses) -> Result<(), Error> {
        let mut in_vars = Vec::new();
        let mut in_srcs = Vec::new();
        let mut rules = 0;
        for i in &self.ins {
            match i {
                InSpec::Src(s) => {
                    if in_srcs.contains(s) {
                        return Err(bad(form, format!("source {s} appears twice in :in")));
                    }
                    in_srcs.push(s.clone());
                }
                InSpec::Rules => rules += 1,
                InSpec::Bind(b) => {
                    let mut vs = Vec::new();
                    b.vars(&mut vs);
                    for v in vs {
                        if in_vars.contains(&v) {
                            return Err(bad(
                                form,
                                format!("vars used in :in should be distinct: {v}"),
                            ));
                        }
                        in_vars.push(v);
                    }
                }
            }
        }
        if rules > 1 {
            return Err(bad(form, "% appears twice in :in"));
        }
        let mut where_vars = Vec::new();
        for c in &self.wheres {
            c.vars
                .iter()
                .for_each(|v| push_distinct(&mut where_vars, v));
        }
        let known = |v: &Sym| where_vars.contains(v) || in_vars.contains(v);
        let mut unknown: Vec<String> = Vec::new();
        for e in self.find.elements() {
            if !known(e.var()) {
                unknown.push(e.var().to_string());
            }
            match e {
                FindElem::Agg { args, .. } => {
                    for a in args {
                        if let Arg::Var(v) = a {
                            if !in_vars.contains(v) {
                                return Err(bad(
                                    &edn_of_label(&e.label()),
                                    format!("aggregate argument {v} must be an :in variable"),
                                ));
                            }
                        }
                    }
                }
                FindElem::Pull {
                    pattern: PullSource::Var(v),
                    ..
                } if !in_vars.contains(v) => {
                    return Err(bad(
                        &edn_of_label(&e.label()),
                        format!("pull pattern variable {v} must be an :in variable"),
                    ));
                }
                _ => {}
            }
        }
        for v in &self.with {
            if !known(v) {
                unknown.push(v.to_string());
            }
        }
        if !unknown.is_empty() {
            return Err(Error::UnboundVariable {
                var: unknown.join(" "),
                clause: describe(form),
            });
        }
        for e in self.find.elements() {
            if self.with.contains(e.var()) {
                return Err(bad(
                    form,
                    format!(
                        ":find and :with should not use the same variable {}",
                        e.var()
                    ),
                ));
            }
        }
        if let Some(r) = &self.returns {
            let what = match r.kind {
                ReturnKind::Keys => ":keys",
                ReturnKind::Strs => ":strs",
                ReturnKind::Syms => ":syms",
            };
            match &self.find {
                FindSpec::Scalar(_) => {
                    return Err(bad(
                        form,
                        format!("{what} does not work with single-scalar :find"),
                    ))
                }
                FindSpec::Coll(_) => {
                    return Err(bad(
                        form,
                        format!("{what} does not work with collection :find"),
                    ))
                }
                FindSpec::Rel(e) | FindSpec::Tuple(e) if e.len() != r.names.len() => {
                    return Err(bad(
                        form,
                        format!("count of {what} must match count of :find"),
                    ))
                }
                _ => {}
            }
        }
        let mut unknown_srcs: Vec<String> = uses
            .sources
            .iter()
            .filter(|s| !in_srcs.contains(s))
            .map(|s| s.to_string())
            .collect();
        unknown_srcs.sort();
        if !unknown_srcs.is_empty() {
            return Err(bad(
                form,
                format!("where uses unknown source vars: {}", unknown_srcs.join(" ")),
            ));
        }
        if uses.rule_calls && rules == 0 {
            return Err(bad(form, "missing rules var % in :in"));
        }
        Ok(())
    }

    /// The `:in` elements, as written (`$`, `%`, `?x`, `[?a ...]`, …): what
    /// [`Query::run`] expects its inputs for, in order.
    pub fn inputs(&self) -> Vec<String> {
        self.ins
            .iter()
            .map(|i| match i {
                InSpec::Src(s) => s.to_string(),
                InSpec::Rules => "%".to_owned(),
                InSpec::Bind(b) => b.to_edn().to_string(),
            })
            .collect()
    }

    /// A label per `:find` element, as written (`?e`, `(count ?x)`, `(pull ?e [*])`):
    /// column headers for a table of results.
    pub fn columns(&self) -> Vec<String> {
        self.find.elements().iter().map(FindElem::label).collect()
    }
}

fn edn_of_label(label: &str) -> Edn {
    Edn::Symbol(label.to_owned())
}

fn split_sections(form: &Edn) -> Result<Vec<(String, Vec<Edn>, Edn)>, Error> {
    let mut out: Vec<(String, Vec<Edn>, Edn)> = Vec::new();
    match form {
        Edn::Vector(items) | Edn::List(items) => {
            for item in items {
                match item {
                    Edn::Keyword(k) => out.push((k.as_str().to_owned(), Vec::new(), Edn::Nil)),
                    other => match out.last_mut() {
                        Some((_, section, _)) => section.push(other.clone()),
                        None => {
                            return Err(bad(form, "a query starts with a keyword such as :find"))
                        }
                    },
                }
            }
            for (key, items, section_form) in &mut out {
                let mut v = vec![Edn::Keyword(Keyword::new(key))];
                v.extend(items.iter().cloned());
                *section_form = Edn::Vector(v);
            }
        }
        Edn::Map(pairs) => {
            for (k, v) in pairs {
                let Edn::Keyword(k) = k else {
                    return Err(bad(k, "query map keys must be keywords"));
                };
                let items = match v {
                    Edn::Vector(items) | Edn::List(items) => items.clone(),
                    other => return Err(bad(other, format!(":{} must be a vector", k.as_str()))),
                };
                out.push((k.as_str().to_owned(), items, v.clone()));
            }
        }
        other => return Err(bad(other, "a query should be a vector or a map")),
    }
    let mut seen = HashSet::new();
    for (k, _, f) in &out {
        if !seen.insert(k.clone()) {
            return Err(bad(f, format!("section :{k} appears twice")));
        }
    }
    Ok(out)
}

fn parse_find(items: &[Edn], section: &Edn) -> Result<FindSpec, Error> {
    let expected = "cannot parse :find, expected (find-rel | find-coll | find-tuple | find-scalar)";
    match items {
        [] => Err(bad(section, expected)),
        [elem, Edn::Symbol(dot)] if dot == "." => Ok(FindSpec::Scalar(parse_find_elem(elem)?)),
        [Edn::Vector(v)] => match v.as_slice() {
            [elem, Edn::Symbol(dots)] if dots == "..." => {
                Ok(FindSpec::Coll(parse_find_elem(elem)?))
            }
            [] => Err(bad(section, expected)),
            elems => Ok(FindSpec::Tuple(
                elems
                    .iter()
                    .map(parse_find_elem)
                    .collect::<Result<_, _>>()?,
            )),
        },
        elems => Ok(FindSpec::Rel(
            elems
                .iter()
                .map(parse_find_elem)
                .collect::<Result<_, _>>()?,
        )),
    }
}

fn parse_find_elem(form: &Edn) -> Result<FindElem, Error> {
    match form {
        Edn::Symbol(s) if is_var(s) => Ok(FindElem::Var(sym(s))),
        Edn::List(items) => {
            let Some(Edn::Symbol(head)) = items.first() else {
                return Err(bad(form, "expected (aggregate-fn args…) or (pull …)"));
            };
            let label: Arc<str> = Arc::from(describe(form));
            if head == "pull" {
                let pull_err = || {
                    bad(
                        form,
                        "cannot parse pull expression, expected (pull src-var? variable pattern)",
                    )
                };
                let (src, var, pattern) = match &items[1..] {
                    [var, pattern] => (DEFAULT_SRC.to_owned(), var, pattern),
                    [Edn::Symbol(src), var, pattern] if is_src(src) => (src.clone(), var, pattern),
                    _ => return Err(pull_err()),
                };
                let Edn::Symbol(var) = var else {
                    return Err(pull_err());
                };
                if !is_var(var) {
                    return Err(pull_err());
                }
                let pattern = match pattern {
                    Edn::Symbol(p) if is_var(p) || is_plain_symbol(p) => PullSource::Var(sym(p)),
                    Edn::Vector(_) | Edn::List(_) => PullSource::Const(pattern.clone()),
                    _ => return Err(pull_err()),
                };
                return Ok(FindElem::Pull {
                    src: sym(&src),
                    var: sym(var),
                    pattern,
                    form: label,
                });
            }
            if head == "aggregate" && items.len() < 3 {
                return Err(bad(
                    form,
                    "(aggregate ?f args… ?x) takes a function (an :in variable) and a variable",
                ));
            }
            if is_var(head) || is_src(head) {
                return Err(bad(form, "an aggregate's name must be a plain symbol"));
            }
            let Some((Edn::Symbol(var), args)) = items[1..].split_last() else {
                return Err(bad(
                    form,
                    "an aggregate takes a variable as its last argument",
                ));
            };
            if !is_var(var) {
                return Err(bad(
                    form,
                    "an aggregate takes a variable as its last argument",
                ));
            }
            let args = args
                .iter()
                .map(|a| match parse_arg(a, form)? {
                    Arg::Src(_) => Err(bad(form, "an aggregate takes no source argument")),
                    arg => Ok(arg),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(FindElem::Agg {
                name: sym(head),
                args,
                var: sym(var),
                form: label,
            })
        }
        other => Err(bad(
            other,
            "cannot parse :find element, expected (variable | pull-expr | aggregate)",
        )),
    }
}

fn parse_in(form: &Edn) -> Result<InSpec, Error> {
    match form {
        Edn::Symbol(s) if is_src(s) => Ok(InSpec::Src(sym(s))),
        Edn::Symbol(s) if s == "%" => Ok(InSpec::Rules),
        // A plain symbol names a pull pattern, as Datascript's `(pull ?e pattern)`
        // with `:in $ pattern`: it binds like a scalar.
        Edn::Symbol(s) if is_plain_symbol(s) => Ok(InSpec::Bind(Binding::Var(sym(s)))),
        _ => parse_binding(form).map(InSpec::Bind).map_err(|_| {
            bad(
                form,
                "cannot parse :in element, expected (src-var | % | bind-scalar | bind-tuple | bind-coll | bind-rel)",
            )
        }),
    }
}

pub(crate) fn parse_binding(form: &Edn) -> Result<Binding, Error> {
    let expected =
        "cannot parse binding, expected (bind-scalar | bind-tuple | bind-coll | bind-rel)";
    match form {
        Edn::Symbol(s) if s == "_" => Ok(Binding::Ignore),
        Edn::Symbol(s) if is_var(s) => Ok(Binding::Var(sym(s))),
        Edn::Vector(items) => match items.as_slice() {
            [] => Err(bad(form, "tuple binding cannot be empty")),
            [inner, Edn::Symbol(dots)] if dots == "..." => {
                Ok(Binding::Coll(Box::new(parse_binding(inner)?)))
            }
            [inner @ Edn::Vector(_)] => {
                let tuple = parse_binding(inner)?;
                match tuple {
                    Binding::Tuple(_) => Ok(Binding::Coll(Box::new(tuple))),
                    _ => Err(bad(form, expected)),
                }
            }
            elems => Ok(Binding::Tuple(
                elems.iter().map(parse_binding).collect::<Result<_, _>>()?,
            )),
        },
        _ => Err(bad(form, expected)),
    }
}

fn parse_term(item: &Edn, clause: &Edn) -> Result<Term, Error> {
    match item {
        Edn::Symbol(s) if s == "_" => Ok(Term::Blank),
        Edn::Symbol(s) if is_var(s) => Ok(Term::Var(sym(s))),
        Edn::Symbol(s) => Err(bad(
            clause,
            format!("unexpected symbol {s}: expected a variable, `_` or a constant"),
        )),
        Edn::Nil => Err(bad(clause, "nil is not a valid constant here")),
        other => QueryValue::from_edn(other)
            .map(Term::Const)
            .map_err(|e| bad(clause, e.to_string())),
    }
}

fn parse_arg(item: &Edn, clause: &Edn) -> Result<Arg, Error> {
    match item {
        Edn::Symbol(s) if is_var(s) => Ok(Arg::Var(sym(s))),
        Edn::Symbol(s) if is_src(s) => Ok(Arg::Src(sym(s))),
        // A plain symbol, as Datascript resolves one: a built-in function's name stands
        // for that function (`(complement odd?)`), any other for `nil` (Datascript 1.8.1:
        // `[(str foo) ?r]` binds "", `[(vector foo 1) ?r]` binds [nil 1]).
        Edn::Symbol(s) if is_plain_symbol(s) && builtin_arity(s).is_some() => {
            Ok(Arg::Const(QueryValue::Fn(QueryFn::named(s))))
        }
        Edn::Symbol(s) if is_plain_symbol(s) => Ok(Arg::Const(QueryValue::Nil)),
        Edn::Symbol(s) => Err(bad(
            clause,
            format!(
                "unexpected symbol {s}: a function argument is a variable, a source or a constant"
            ),
        )),
        other => QueryValue::from_edn(other)
            .map(Arg::Const)
            .map_err(|e| bad(clause, e.to_string())),
    }
}

fn parse_call(call: &[Edn], clause: &Edn) -> Result<(Sym, Vec<Arg>), Error> {
    let Some((Edn::Symbol(name), args)) = call.split_first() else {
        return Err(bad(
            clause,
            "expected a function name at the head of the call",
        ));
    };
    // A variable in function position parses, as in Datascript; with nothing to call
    // it on it answers nothing, and it is an unknown function otherwise (functions
    // passed as inputs are not supported).
    if is_src(name) {
        return Err(bad(
            clause,
            format!("{name} cannot be called: functions are named by symbols"),
        ));
    }
    let args = args
        .iter()
        .map(|a| parse_arg(a, clause))
        .collect::<Result<_, _>>()?;
    Ok((sym(name), args))
}

fn parse_var_list(form: &Edn, clause: &Edn) -> Result<Vec<Sym>, Error> {
    let Edn::Vector(items) = form else {
        return Err(bad(clause, "expected a vector of variables"));
    };
    let mut out = Vec::new();
    for i in items {
        match i {
            Edn::Symbol(s) if is_var(s) => push_distinct(&mut out, &sym(s)),
            _ => return Err(bad(clause, "expected a vector of variables")),
        }
    }
    if out.is_empty() {
        return Err(bad(clause, "join variables should not be empty"));
    }
    Ok(out)
}

fn parse_body(items: &[Edn], clause: &Edn, what: &str, depth: usize) -> Result<Vec<Clause>, Error> {
    if items.is_empty() {
        return Err(bad(clause, format!("'{what}' needs at least one clause")));
    }
    items.iter().map(|i| clause_at(i, depth + 1)).collect()
}

fn parse_branch(form: &Edn, depth: usize) -> Result<Vec<Clause>, Error> {
    if let Edn::List(items) = form {
        if let Some(Edn::Symbol(h)) = items.first() {
            if h == "and" {
                return parse_body(&items[1..], form, "and", depth);
            }
        }
    }
    Ok(vec![clause_at(form, depth + 1)?])
}

/// Parses one `:where` clause (or a rule body clause).
pub(crate) fn parse_clause(form: &Edn) -> Result<Clause, Error> {
    clause_at(form, 0)
}

/// How deeply `not`, `or` and `and` may nest (evaluation recurses once per level).
pub(crate) const MAX_CLAUSE_DEPTH: usize = 48;

fn clause_at(form: &Edn, depth: usize) -> Result<Clause, Error> {
    if depth > MAX_CLAUSE_DEPTH {
        return Err(bad(
            form,
            format!("clauses nest deeper than {MAX_CLAUSE_DEPTH} levels of not/or/and"),
        ));
    }
    let expected = "cannot parse clause, expected (data-pattern | pred-expr | fn-expr | rule-expr | not-clause | not-join-clause | or-clause | or-join-clause)";
    match form {
        Edn::Vector(items) => match items.first() {
            None => Err(bad(form, "a pattern cannot be empty")),
            Some(Edn::List(call)) => {
                let (name, args) = parse_call(call, form)?;
                let kind = match items.len() {
                    1 => ClauseKind::Pred { name, args },
                    2 => ClauseKind::Fn {
                        name,
                        args,
                        out: parse_binding(&items[1])?,
                    },
                    _ => return Err(bad(form, "expected [(pred args…)] or [(fn args…) binding]")),
                };
                Ok(Clause::new(kind, form))
            }
            Some(Edn::Symbol(s)) if is_src(s) => {
                let terms = pattern_terms(&items[1..], form)?;
                Ok(Clause::new(
                    ClauseKind::Pattern {
                        src: Some(sym(s)),
                        terms,
                    },
                    form,
                ))
            }
            Some(Edn::Symbol(s)) if !is_var(s) && s != "_" => rule_call(None, s, &items[1..], form),
            Some(_) => {
                let terms = pattern_terms(items, form)?;
                Ok(Clause::new(ClauseKind::Pattern { src: None, terms }, form))
            }
        },
        Edn::List(items) => {
            let (src, rest) = match items.first() {
                Some(Edn::Symbol(s)) if is_src(s) => (Some(sym(s)), &items[1..]),
                _ => (None, &items[..]),
            };
            let Some(Edn::Symbol(head)) = rest.first() else {
                return Err(bad(form, expected));
            };
            match head.as_str() {
                "not" => {
                    let body = parse_body(&rest[1..], form, "not", depth)?;
                    Ok(Clause::new(
                        ClauseKind::Not {
                            src,
                            join: None,
                            body,
                        },
                        form,
                    ))
                }
                "not-join" => {
                    let vars = rest
                        .get(1)
                        .ok_or_else(|| bad(form, "expected (not-join [variable+] clause+)"))?;
                    let join = parse_var_list(vars, form)?;
                    let body = parse_body(&rest[2..], form, "not-join", depth)?;
                    Ok(Clause::new(
                        ClauseKind::Not {
                            src,
                            join: Some(join),
                            body,
                        },
                        form,
                    ))
                }
                "or" => {
                    if rest.len() < 2 {
                        return Err(bad(form, "'or' needs at least one clause"));
                    }
                    let branches = rest[1..]
                        .iter()
                        .map(|b| parse_branch(b, depth))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Clause::new(
                        ClauseKind::Or {
                            src,
                            join: None,
                            branches,
                        },
                        form,
                    ))
                }
                "or-join" => {
                    let vars = rest
                        .get(1)
                        .ok_or_else(|| bad(form, "expected (or-join [variable+] clause+)"))?;
                    let join = parse_rule_vars(vars, form)?;
                    if rest.len() < 3 {
                        return Err(bad(form, "'or-join' needs at least one clause"));
                    }
                    let branches = rest[2..]
                        .iter()
                        .map(|b| parse_branch(b, depth))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Clause::new(
                        ClauseKind::Or {
                            src,
                            join: Some(join),
                            branches,
                        },
                        form,
                    ))
                }
                "and" => Err(bad(form, "'and' is only allowed as a branch of 'or'")),
                name if !is_var(name) && !is_src(name) && name != "_" => {
                    rule_call(src, name, &rest[1..], form)
                }
                _ => Err(bad(form, expected)),
            }
        }
        _ => Err(bad(form, expected)),
    }
}

fn pattern_terms(items: &[Edn], form: &Edn) -> Result<Vec<Term>, Error> {
    if items.is_empty() {
        return Err(bad(form, "a pattern cannot be empty"));
    }
    items.iter().map(|i| parse_term(i, form)).collect()
}

fn rule_call(src: Option<Sym>, name: &str, args: &[Edn], form: &Edn) -> Result<Clause, Error> {
    if args.is_empty() {
        return Err(bad(form, "rule-expr requires at least one argument"));
    }
    let args = args
        .iter()
        .map(|a| parse_term(a, form))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Clause::new(
        ClauseKind::Rule {
            src,
            name: sym(name),
            args,
        },
        form,
    ))
}

/// `[?a ?b]` or `[[?req] ?a]` (rule heads and `or-join`).
fn parse_rule_vars(form: &Edn, clause: &Edn) -> Result<JoinVars, Error> {
    let expected = "cannot parse rule-vars, expected [ variable+ | ([ variable+ ] variable*) ]";
    let Edn::Vector(items) = form else {
        return Err(bad(clause, expected));
    };
    let (required, rest) = match items.first() {
        Some(first @ Edn::Vector(_)) => (parse_var_list(first, clause)?, &items[1..]),
        _ => (Vec::new(), &items[..]),
    };
    let mut vars = Vec::new();
    for i in rest {
        match i {
            Edn::Symbol(s) if is_var(s) => vars.push(sym(s)),
            _ => return Err(bad(clause, expected)),
        }
    }
    let all: Vec<&Sym> = required.iter().chain(vars.iter()).collect();
    if all.is_empty() {
        return Err(bad(clause, expected));
    }
    let distinct: HashSet<&Sym> = all.iter().copied().collect();
    if distinct.len() != all.len() {
        return Err(bad(clause, "rule variables should be distinct"));
    }
    Ok(JoinVars { required, vars })
}

/// One branch of a rule.
#[derive(Clone, Debug)]
pub(crate) struct RuleBranch {
    pub head: JoinVars,
    pub body: Vec<Clause>,
    pub form: Arc<str>,
}

impl RuleBranch {
    pub(crate) fn arity(&self) -> usize {
        self.head.required.len() + self.head.vars.len()
    }

    pub(crate) fn head_vars(&self) -> Vec<Sym> {
        self.head.all().cloned().collect()
    }
}

/// Parsed rules: every branch of every rule, by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rules {
    pub map: HashMap<Sym, Vec<RuleBranch>>,
}

/// Parses a rule set `[[(name ?a ?b) clause+] …]`.
pub(crate) fn parse_rules(form: &Edn) -> Result<Rules, Error> {
    let expected = "cannot parse rules, expected [ [rule-head clause+]+ ]";
    let (Edn::Vector(rules) | Edn::List(rules)) = form else {
        return Err(bad(form, expected));
    };
    let mut out = Rules::default();
    for rule in rules {
        let (Edn::Vector(items) | Edn::List(items)) = rule else {
            return Err(bad(rule, "cannot parse rule, expected [rule-head clause+]"));
        };
        let Some((head, body)) = items.split_first() else {
            return Err(bad(rule, "cannot parse rule, expected [rule-head clause+]"));
        };
        let (Edn::List(head_items) | Edn::Vector(head_items)) = head else {
            return Err(bad(
                rule,
                "cannot parse rule head, expected (rule-name rule-vars)",
            ));
        };
        let Some((Edn::Symbol(name), vars)) = head_items.split_first() else {
            return Err(bad(rule, "cannot parse rule name, expected a plain symbol"));
        };
        if is_var(name) || is_src(name) || name == "_" {
            return Err(bad(rule, "cannot parse rule name, expected a plain symbol"));
        }
        let head = parse_rule_vars(&Edn::Vector(vars.to_vec()), rule)?;
        if body.is_empty() {
            return Err(bad(rule, "rule branch should have clauses"));
        }
        let body = body
            .iter()
            .map(parse_clause)
            .collect::<Result<Vec<_>, _>>()?;
        let branch = RuleBranch {
            head,
            body,
            form: Arc::from(describe(rule)),
        };
        let branches = out.map.entry(sym(name)).or_default();
        if let Some(first) = branches.first() {
            if first.arity() != branch.arity() {
                return Err(bad(
                    rule,
                    format!(
                        "arity mismatch for rule {name}: {} and {}",
                        first.arity(),
                        branch.arity()
                    ),
                ));
            }
        }
        branches.push(branch);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Query::parse(text) {
            Err(e) => e.to_string(),
            Ok(q) => panic!("parsed: {q:?}"),
        }
    }

    #[test]
    fn find_specs() {
        let q = Query::parse("[:find ?a . :where [?a :x]]").unwrap();
        assert!(matches!(q.find, FindSpec::Scalar(_)));
        let q = Query::parse("[:find [?a ...] :where [?a :x]]").unwrap();
        assert!(matches!(q.find, FindSpec::Coll(_)));
        let q = Query::parse("[:find [?a ?b] :where [?a :x ?b]]").unwrap();
        assert!(matches!(q.find, FindSpec::Tuple(_)));
        let q = Query::parse("{:find [?a (count ?b)] :where [[?a :x ?b]]}").unwrap();
        assert!(matches!(q.find, FindSpec::Rel(ref e) if e.len() == 2));
        assert_eq!(q.columns(), vec!["?a", "(count ?b)"]);
        assert!(matches!(q.ins.as_slice(), [InSpec::Src(s)] if &**s == "$"));
    }

    #[test]
    fn errors_name_the_clause() {
        for (query, named) in [
            ("[:find ?e :where [?e :a ?v] (foo)]", "(foo)"),
            (
                "[:find ?e :where [?e :a ?v] [(< ?v 1) ?x ?y]]",
                "[(< ?v 1) ?x ?y]",
            ),
            ("[:find ?e :where [?e :a ?v] (not)]", "(not)"),
            ("[:find ?x :where [?e :a ?v]]", "?x"),
            (
                "[:find ?e :where [?e :a ?v] (rule ?e)]",
                "missing rules var",
            ),
            ("[:find ?e :where [$x ?e :a ?v]]", "$x"),
            ("[:find ?e :keys a b :where [?e :a ?v]]", "count of :keys"),
            ("[:find ?e :in $ ?e ?e :where [?e :a ?v]]", "distinct"),
            ("[:where [?e :a ?v]]", ":find"),
            ("[:find ?e :where (and [?e :a])]", "and"),
        ] {
            let e = err(query);
            assert!(e.contains(named), "{query}: {e}");
        }
    }

    #[test]
    fn rules_parse_and_check_arity() {
        let r =
            parse_rules(&edn::parse("[[(f ?a ?b) [?a :x ?b]] [(f [?a] ?b) [?b :x ?a]]]").unwrap())
                .unwrap();
        assert_eq!(r.map[&sym("f")].len(), 2);
        assert_eq!(r.map[&sym("f")][1].head.required.len(), 1);
        let e = parse_rules(&edn::parse("[[(f ?a ?b) [?a :x ?b]] [(f ?a) [?a :x]]]").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("arity mismatch"), "{e}");
    }
}
