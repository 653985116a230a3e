//! What a live query reads, from its EDN: the `:find` shape, the data patterns of a
//! conjunctive body (the incremental case) or, for any other body, the attributes it can
//! read (the re-evaluated case).
//!
//! This reads the query text itself and never the query engine's AST: the engine is
//! only run, through [`crate::query::Query`], on queries this module writes.

use std::collections::BTreeSet;

use crate::edn::{self, Edn};
use crate::error::Error;
use crate::query::QueryValue;
use crate::value::{Eid, Keyword};

/// How results are shaped, as `:find` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FindKind {
    /// `:find ?a ?b`
    Rel,
    /// `:find [?a ...]`
    Coll,
    /// `:find ?a .`
    Scalar,
    /// `:find [?a ?b]`
    Tuple,
}

/// One `:find` element.
#[derive(Clone, Debug)]
pub(crate) struct FindElem {
    /// The variable it reads.
    pub var: String,
    /// An aggregate (`(count ?x)`), with the variables its other arguments name.
    pub agg: Option<Vec<String>>,
    /// A `(pull ?e …)`.
    pub pull: bool,
    /// The element as written.
    pub form: Edn,
}

/// `:keys`, `:strs` or `:syms`.
#[derive(Clone, Debug)]
pub(crate) struct Returns {
    /// `keys`, `strs` or `syms`.
    pub kind: String,
    /// The names, in `:find` order.
    pub names: Vec<String>,
}

/// One `:in` element.
#[derive(Clone, Debug)]
pub(crate) enum InItem {
    /// `$`, `$name`.
    Src(String),
    /// `%`.
    Rules,
    /// A binding form, as written.
    Bind(Edn),
}

/// An entity position of a data pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ETerm {
    Var(usize),
    Const(Eid),
}

/// The attribute position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ATerm {
    Var(usize),
    Const(Keyword),
}

/// The value position (a constant as the query wrote it; the datom value it stands
/// for depends on the attribute's type, see `delta`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum VTerm {
    Var(usize),
    Const(QueryValue),
}

/// A data pattern of the default source, `_` renamed to a fresh variable.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    pub e: ETerm,
    pub a: ATerm,
    pub v: VTerm,
}

/// A conjunctive body: data patterns on `$` plus predicates and function calls that do
/// not read a source.
#[derive(Clone, Debug)]
pub(crate) struct Conj {
    /// Every variable, by index: pattern variables (fresh ones for `_` included), then
    /// `:in` variables, then function outputs.
    pub vars: Vec<String>,
    /// The data patterns.
    pub patterns: Vec<Pattern>,
    /// Predicates and function calls, as written.
    pub filters: Vec<Edn>,
    /// The `:where` clauses with `_` renamed, as written otherwise.
    pub clauses: Vec<Edn>,
    /// How many leading `vars` the data patterns bind.
    pub pattern_vars: usize,
    /// Variables the `:in` binding forms bind.
    pub in_vars: Vec<usize>,
}

/// The body of a live query, as maintained.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// Updated by delta rules.
    Incremental(Conj),
    /// Re-evaluated when a change touches one of `attrs` (`None`: any change), with the
    /// reason it is not incremental.
    Reeval {
        attrs: Option<BTreeSet<Keyword>>,
        reason: String,
    },
}

/// A live query, analysed.
#[derive(Clone, Debug)]
pub(crate) struct Analysis {
    pub find_kind: FindKind,
    pub find: Vec<FindElem>,
    pub returns: Option<Returns>,
    pub with: Vec<String>,
    pub ins: Vec<InItem>,
    pub body: Body,
}

impl Analysis {
    /// The distinct variables of `:find` then `:with`: what a result row is keyed by.
    pub fn distinct_vars(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in self.find.iter().map(|e| &e.var).chain(&self.with) {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }

    /// True when `:find` has an aggregate.
    pub fn has_agg(&self) -> bool {
        self.find.iter().any(|e| e.agg.is_some())
    }
}

fn is_var(s: &str) -> bool {
    s.starts_with('?')
}

fn query_err(form: &Edn, reason: &str) -> Error {
    Error::QueryParse {
        clause: form.to_string(),
        reason: reason.to_owned(),
    }
}

/// The sections of a query form, as `Query::parse` reads them.
fn sections(form: &Edn) -> Result<Vec<(String, Vec<Edn>)>, Error> {
    let mut out: Vec<(String, Vec<Edn>)> = Vec::new();
    match form {
        Edn::Vector(items) | Edn::List(items) => {
            for item in items {
                match (item, out.last_mut()) {
                    (Edn::Keyword(k), _) => out.push((k.as_str().to_owned(), Vec::new())),
                    (other, Some((_, section))) => section.push(other.clone()),
                    (_, None) => return Err(query_err(form, "a query starts with a keyword")),
                }
            }
        }
        Edn::Map(pairs) => {
            for (k, v) in pairs {
                let (Edn::Keyword(k), Edn::Vector(items) | Edn::List(items)) = (k, v) else {
                    return Err(query_err(form, "a query map holds keyword → vector"));
                };
                out.push((k.as_str().to_owned(), items.clone()));
            }
        }
        other => return Err(query_err(other, "a query should be a vector or a map")),
    }
    Ok(out)
}

fn find_elem(form: &Edn) -> Result<FindElem, Error> {
    match form {
        Edn::Symbol(s) if is_var(s) => Ok(FindElem {
            var: s.clone(),
            agg: None,
            pull: false,
            form: form.clone(),
        }),
        Edn::List(items) => {
            let name = match items.first() {
                Some(Edn::Symbol(s)) => s.as_str(),
                _ => return Err(query_err(form, "a :find element")),
            };
            let var_of = |e: &Edn| match e {
                Edn::Symbol(s) if is_var(s) => Some(s.clone()),
                _ => None,
            };
            if name == "pull" {
                let var = items[1..]
                    .iter()
                    .find_map(var_of)
                    .ok_or_else(|| query_err(form, "pull needs a variable"))?;
                return Ok(FindElem {
                    var,
                    agg: None,
                    pull: true,
                    form: form.clone(),
                });
            }
            let var = items
                .last()
                .and_then(var_of)
                .ok_or_else(|| query_err(form, "an aggregate ends with a variable"))?;
            let args = items[1..items.len() - 1]
                .iter()
                .filter_map(var_of)
                .collect();
            Ok(FindElem {
                var,
                agg: Some(args),
                pull: false,
                form: form.clone(),
            })
        }
        other => Err(query_err(other, "a :find element")),
    }
}

fn find_spec(items: &[Edn]) -> Result<(FindKind, Vec<FindElem>), Error> {
    match items {
        [Edn::Vector(inner)] => match inner.as_slice() {
            [e, Edn::Symbol(dots)] if dots == "..." => Ok((FindKind::Coll, vec![find_elem(e)?])),
            elems => Ok((
                FindKind::Tuple,
                elems.iter().map(find_elem).collect::<Result<_, _>>()?,
            )),
        },
        [e, Edn::Symbol(dot)] if dot == "." => Ok((FindKind::Scalar, vec![find_elem(e)?])),
        elems => Ok((
            FindKind::Rel,
            elems.iter().map(find_elem).collect::<Result<_, _>>()?,
        )),
    }
}

/// Analyses `text` (already accepted by `Query::parse`). `rules` are the texts given
/// for `%`, read for the attributes their patterns name.
pub(crate) fn analyze(text: &str, rules: &[&str]) -> Result<Analysis, Error> {
    let form = edn::parse(text)?;
    let mut analysis = Analysis {
        find_kind: FindKind::Rel,
        find: Vec::new(),
        returns: None,
        with: Vec::new(),
        ins: Vec::new(),
        body: Body::Reeval {
            attrs: None,
            reason: String::new(),
        },
    };
    let mut wheres: Vec<Edn> = Vec::new();
    let mut ins: Option<Vec<InItem>> = None;
    for (key, items) in sections(&form)? {
        match key.as_str() {
            "find" => (analysis.find_kind, analysis.find) = find_spec(&items)?,
            "keys" | "strs" | "syms" => {
                let names = items
                    .iter()
                    .map(|i| match i {
                        Edn::Symbol(s) | Edn::String(s) => s.clone(),
                        Edn::Keyword(k) => k.as_str().to_owned(),
                        other => other.to_string(),
                    })
                    .collect();
                analysis.returns = Some(Returns { kind: key, names });
            }
            "with" => {
                analysis.with = items
                    .iter()
                    .filter_map(|i| match i {
                        Edn::Symbol(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
            }
            "in" => {
                ins = Some(
                    items
                        .iter()
                        .map(|i| match i {
                            Edn::Symbol(s) if s.starts_with('$') => InItem::Src(s.clone()),
                            Edn::Symbol(s) if s == "%" => InItem::Rules,
                            other => InItem::Bind(other.clone()),
                        })
                        .collect(),
                );
            }
            "where" => wheres = items,
            _ => {}
        }
    }
    analysis.ins = ins.unwrap_or_else(|| {
        // `:in` defaults to `$` when the query reads a source.
        if wheres.is_empty() && !analysis.find.iter().any(|e| e.pull) {
            Vec::new()
        } else {
            vec![InItem::Src("$".into())]
        }
    });
    analysis.body = match conjunctive(&analysis, &wheres) {
        Ok(conj) => Body::Incremental(conj),
        Err(reason) => Body::Reeval {
            attrs: reeval_attrs(&analysis, &wheres, rules),
            reason,
        },
    };
    Ok(analysis)
}

/// Variable numbering while reading a conjunctive body.
#[derive(Default)]
struct Vars {
    names: Vec<String>,
    fresh: usize,
}

impl Vars {
    fn id(&mut self, name: &str) -> usize {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i;
        }
        self.names.push(name.to_owned());
        self.names.len() - 1
    }

    fn fresh(&mut self) -> (usize, String) {
        self.fresh += 1;
        let name = format!("?__live_blank{}", self.fresh);
        (self.id(&name), name)
    }
}

/// The body as a [`Conj`], or why it is not one.
fn conjunctive(analysis: &Analysis, wheres: &[Edn]) -> Result<Conj, String> {
    if analysis.find.iter().any(|e| e.pull) {
        return Err("`:find` pulls".into());
    }
    for item in &analysis.ins {
        match item {
            InItem::Src(s) if s != "$" => return Err(format!("reads source {s}")),
            InItem::Rules => return Err("uses rules".into()),
            _ => {}
        }
    }
    let mut vars = Vars::default();
    let mut patterns = Vec::new();
    let mut clauses = Vec::new();
    let mut fn_clauses = Vec::new();
    for clause in wheres {
        let Edn::Vector(items) = clause else {
            return Err(format!("`{clause}` is not a data pattern or function call"));
        };
        if matches!(items.first(), Some(Edn::List(_))) {
            fn_clauses.push(clause.clone());
            continue;
        }
        let items: &[Edn] = match items.first() {
            Some(Edn::Symbol(s)) if s == "$" => &items[1..],
            Some(Edn::Symbol(s)) if s.starts_with('$') => {
                return Err(format!("`{clause}` reads source {s}"))
            }
            _ => items,
        };
        if items.len() < 2 || items.len() > 3 {
            return Err(format!(
                "`{clause}` is not an [e a v] pattern (tx and added positions re-evaluate)"
            ));
        }
        let mut written = Vec::with_capacity(items.len() + 1);
        let mut term = |item: &Edn, written: &mut Vec<Edn>| -> Result<Option<usize>, String> {
            match item {
                Edn::Symbol(s) if s == "_" => {
                    let (id, name) = vars.fresh();
                    written.push(Edn::Symbol(name));
                    Ok(Some(id))
                }
                Edn::Symbol(s) if is_var(s) => {
                    written.push(item.clone());
                    Ok(Some(vars.id(s)))
                }
                other => {
                    written.push(other.clone());
                    Ok(None)
                }
            }
        };
        let e = match (term(&items[0], &mut written)?, &items[0]) {
            (Some(id), _) => ETerm::Var(id),
            (None, Edn::Int(n)) if *n >= 0 => ETerm::Const(n.unsigned_abs()),
            (None, other) => return Err(format!("entity `{other}` is not a variable or an id")),
        };
        let a = match (term(&items[1], &mut written)?, &items[1]) {
            (Some(id), _) => ATerm::Var(id),
            (None, Edn::Keyword(k)) => ATerm::Const(k.clone()),
            (None, other) => return Err(format!("attribute `{other}` is not a keyword")),
        };
        let v = match items.get(2) {
            None => {
                let (id, name) = vars.fresh();
                written.push(Edn::Symbol(name));
                VTerm::Var(id)
            }
            Some(item) => match term(item, &mut written)? {
                Some(id) => VTerm::Var(id),
                None => match item {
                    Edn::Symbol(_) | Edn::Keyword(_) | Edn::Vector(_) | Edn::Tagged(..) => {
                        // Symbols, idents and lookup refs resolve against the db.
                        return Err(format!("value `{item}` may need resolving"));
                    }
                    other => VTerm::Const(
                        QueryValue::from_edn(other).map_err(|e| format!("value `{other}`: {e}"))?,
                    ),
                },
            },
        };
        if matches!(a, ATerm::Var(_)) && matches!(v, VTerm::Const(_)) {
            return Err(format!(
                "`{clause}` has a constant value and an unknown attribute"
            ));
        }
        patterns.push(Pattern { e, a, v });
        clauses.push(Edn::Vector(written));
    }
    let pattern_vars = vars.names.len();
    let mut in_vars = Vec::new();
    for item in &analysis.ins {
        if let InItem::Bind(b) = item {
            let mut names = Vec::new();
            symbols(b, &mut names);
            for n in names.iter().filter(|n| is_var(n)) {
                let id = vars.id(n);
                if !in_vars.contains(&id) {
                    in_vars.push(id);
                }
            }
        }
    }
    // Functions and predicates: pure, reading no source, their arguments bound by the
    // patterns, inputs or earlier outputs, their outputs new variables.
    let mut bound: BTreeSet<String> = vars.names.iter().cloned().collect();
    let mut pending = fn_clauses.clone();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for clause in pending {
            let Edn::Vector(items) = &clause else {
                continue;
            };
            let Some(Edn::List(call)) = items.first() else {
                continue;
            };
            let mut args = Vec::new();
            for a in &call[1..] {
                symbols(a, &mut args);
            }
            if let Some(src) = args.iter().find(|a| a.starts_with('$')) {
                return Err(format!("`{clause}` reads source {src}"));
            }
            if matches!(call.first(), Some(Edn::Symbol(s)) if s == "rand" || s == "rand-int" || s == "sample")
            {
                return Err(format!("`{clause}` is not deterministic"));
            }
            if !args.iter().filter(|a| is_var(a)).all(|a| bound.contains(a)) {
                rest.push(clause);
                continue;
            }
            let mut outs = Vec::new();
            if let Some(b) = items.get(1) {
                symbols(b, &mut outs);
            }
            for o in outs.iter().filter(|o| is_var(o)) {
                if bound.contains(o) {
                    return Err(format!("`{clause}` binds {o}, which is bound already"));
                }
                bound.insert(o.clone());
                vars.id(o);
            }
        }
        if rest.len() == before {
            return Err("a function's arguments are never bound".into());
        }
        pending = rest;
    }
    for v in analysis.distinct_vars() {
        if !bound.contains(&v) {
            return Err(format!("{v} is not bound by the body"));
        }
    }
    for e in &analysis.find {
        for a in e.agg.iter().flatten() {
            if !in_vars.iter().any(|i| vars.names[*i] == *a) {
                return Err(format!("aggregate argument {a} is not an input"));
            }
        }
    }
    clauses.extend(fn_clauses.iter().cloned());
    Ok(Conj {
        vars: vars.names,
        patterns,
        filters: fn_clauses,
        clauses,
        pattern_vars,
        in_vars,
    })
}

/// Every symbol in `form`.
fn symbols(form: &Edn, out: &mut Vec<String>) {
    match form {
        Edn::Symbol(s) => out.push(s.clone()),
        Edn::Vector(items) | Edn::List(items) | Edn::Set(items) => {
            items.iter().for_each(|i| symbols(i, out));
        }
        Edn::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            symbols(k, out);
            symbols(v, out);
        }),
        Edn::Tagged(_, inner) => symbols(inner, out),
        _ => {}
    }
}

/// Every keyword in `form`.
fn keywords(form: &Edn, out: &mut BTreeSet<Keyword>) {
    match form {
        Edn::Keyword(k) => {
            out.insert(k.reverse_of().unwrap_or_else(|| k.clone()));
        }
        Edn::Vector(items) | Edn::List(items) | Edn::Set(items) => {
            items.iter().for_each(|i| keywords(i, out));
        }
        Edn::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            keywords(k, out);
            keywords(v, out);
        }),
        Edn::Tagged(_, inner) => keywords(inner, out),
        _ => {}
    }
}

/// The attributes a re-evaluated query can read: every keyword of its body and rules,
/// or `None` (any change) when a data pattern's attribute is not a keyword, a pull
/// reads entities, or a function reads a source with an attribute it computes.
fn reeval_attrs(analysis: &Analysis, wheres: &[Edn], rules: &[&str]) -> Option<BTreeSet<Keyword>> {
    if analysis.find.iter().any(|e| e.pull) {
        return None;
    }
    let mut bodies: Vec<Edn> = wheres.to_vec();
    for text in rules {
        let Ok(Edn::Vector(rs)) = edn::parse(text) else {
            return None;
        };
        for r in rs {
            let Edn::Vector(items) = r else {
                return None;
            };
            bodies.extend(items.into_iter().skip(1));
        }
    }
    let mut attrs = BTreeSet::new();
    for clause in &bodies {
        if !clause_attrs_known(clause) {
            return None;
        }
        keywords(clause, &mut attrs);
    }
    Some(attrs)
}

/// False if `clause` (at any depth) may read an attribute it does not name.
fn clause_attrs_known(clause: &Edn) -> bool {
    match clause {
        Edn::Vector(items) => match items.first() {
            Some(Edn::List(call)) => {
                let reads_source = call[1..]
                    .iter()
                    .any(|a| matches!(a, Edn::Symbol(s) if s.starts_with('$')));
                if !reads_source {
                    return true;
                }
                // get-else / get-some / missing? name their attributes; anything else
                // reading a source may read any.
                matches!(call.first(), Some(Edn::Symbol(s)) if matches!(s.as_str(), "get-else" | "get-some" | "missing?"))
                    && call[1..]
                        .iter()
                        .skip(2)
                        .all(|a| !matches!(a, Edn::Symbol(s) if is_var(s)))
                    && matches!(call.get(3), Some(Edn::Keyword(_)))
            }
            _ => {
                let items: &[Edn] = match items.first() {
                    Some(Edn::Symbol(s)) if s.starts_with('$') => &items[1..],
                    _ => items,
                };
                matches!(items.get(1), Some(Edn::Keyword(_)))
            }
        },
        Edn::List(items) => {
            let rest: &[Edn] = match items.first() {
                Some(Edn::Symbol(s)) if s.starts_with('$') => &items[1..],
                _ => items,
            };
            match rest.first() {
                Some(Edn::Symbol(s)) if matches!(s.as_str(), "not" | "or" | "and") => {
                    rest[1..].iter().all(clause_attrs_known)
                }
                Some(Edn::Symbol(s)) if matches!(s.as_str(), "not-join" | "or-join") => {
                    rest.iter().skip(2).all(clause_attrs_known)
                }
                // A rule call: its bodies are read from the rules.
                _ => true,
            }
        }
        _ => false,
    }
}

/// The attributes a pull pattern can read, `None` for any (a wildcard), plus the
/// attribute of a lookup-ref entity.
pub(crate) fn pull_attrs(pattern: &Edn, entity: &QueryValue) -> Option<BTreeSet<Keyword>> {
    let mut syms = Vec::new();
    symbols(pattern, &mut syms);
    if syms.iter().any(|s| s == "*") {
        return None;
    }
    let mut attrs = BTreeSet::new();
    keywords(pattern, &mut attrs);
    if let QueryValue::Vector(items) = entity {
        if let Some(QueryValue::Value(crate::value::Value::Keyword(k))) = items.first() {
            attrs.insert(k.clone());
        }
    }
    if let QueryValue::Value(crate::value::Value::Keyword(_)) = entity {
        attrs.insert(Keyword::new("db/ident"));
    }
    Some(attrs)
}
