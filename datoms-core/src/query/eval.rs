//! Evaluation: relations, hash joins, the clause planner, and rules.
//!
//! # Model
//! As in Datascript, a context is a list of relations with disjoint variables; a clause
//! takes the relations holding the variables it needs, joins them (a product only when
//! it must), and puts its result back, joined with every relation it shares a variable
//! with. Variables no later clause, `:find` or `:with` needs are projected away as soon
//! as they are done with, so intermediate relations stay small.
//!
//! # Planning
//! Within a clause list, a greedy planner picks the next clause to run: predicates and
//! `not` as soon as their variables are bound (they only filter), functions when their
//! arguments are bound, then the data pattern with the most selective index access given
//! what is bound (entity known through EAVT; attribute and value through AVET;
//! attribute alone through AEVT; full scans last), preferring patterns connected to what
//! is already bound. A pattern with bound variables runs as index lookups per distinct
//! binding (what a lazily restored db wants: only the nodes on those paths load), except
//! when the bound variable sits where no index helps (a value of an attribute not in
//! AVET, a tx), where it scans once with the constants and hash-joins.
//!
//! Datascript evaluates clauses in the order written, so what `not`, `or`, `or-join` and
//! rule calls see as bound depends on their position. To give the same answers whatever
//! order the planner picks, each of these is evaluated against exactly the variables that
//! the clauses written before it bind (its *join variables*), and waits until those are
//! bound. Predicates and functions whose arguments are bound only by later clauses wait
//! for them (Datascript rejects such queries; here they run).
//!
//! # Rules
//! Rules are evaluated bottom-up to a fixpoint with demand: each call records the values
//! of its bound arguments in a table per (rule, bound positions, source); every round
//! evaluates every branch of every table for all its demanded inputs, recursive calls
//! reading the answers found so far; rounds stop when no table gains an answer or a
//! demand. This terminates on finite data, handles recursion (also mutual), and evaluates
//! only what the calls ask for. A rule called under `not` is solved in its own, complete
//! fixpoint first (stratified negation).

mod star;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::builtins::{arity_text, builtin_arity, call_builtin, CallArg, CallError, Functions};
use super::parse::{
    is_var, Arg, Binding, Clause, ClauseKind, JoinVars, RuleBranch, Rules, Sym, Term, DEFAULT_SRC,
};
use super::value::QueryValue;
use crate::datom::{Component, Datom, IndexKind};
use crate::db::{lookup_ref_attr, Db};
use crate::error::Error;
use crate::value::{Eid, Keyword, Value};

/// Evaluation rounds a rule fixpoint may take before the query is declared
/// non-terminating.
const MAX_ROUNDS: usize = 100_000;
/// Nesting of fixpoints (rules under `not` under rules…) before giving up.
const MAX_SCOPE_DEPTH: usize = 64;

/// A data source: a db, or a collection of tuples.
pub(crate) enum Source<'a> {
    Db(&'a Db),
    Coll(Vec<Vec<QueryValue>>),
    /// Every assertion and retraction, `[e a v tx added]` (see [`crate::history`]).
    History(&'a crate::History),
}

// ---- relations --------------------------------------------------------------------------

/// A relation: tuples over `vars`. Kept free of duplicates where duplicates could arise.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rel {
    pub vars: Vec<Sym>,
    pub rows: Vec<Vec<QueryValue>>,
}

impl Rel {
    /// The relation with no variables and one (empty) tuple: the identity of joins.
    pub(crate) fn unit() -> Rel {
        Rel {
            vars: Vec::new(),
            rows: vec![Vec::new()],
        }
    }

    pub(crate) fn empty(vars: Vec<Sym>) -> Rel {
        Rel {
            vars,
            rows: Vec::new(),
        }
    }

    pub(crate) fn col(&self, v: &str) -> Option<usize> {
        self.vars.iter().position(|x| &**x == v)
    }

    pub(crate) fn dedup(&mut self) {
        let mut seen = HashSet::with_capacity(self.rows.len());
        self.rows.retain(|r| seen.insert(r.clone()));
    }

    /// The relation projected onto `vars` (all of which it must hold), duplicates removed.
    pub(crate) fn project(&self, vars: &[Sym]) -> Rel {
        let cols: Vec<usize> = vars.iter().filter_map(|v| self.col(v)).collect();
        if cols.len() == self.vars.len() && cols.iter().enumerate().all(|(i, c)| i == *c) {
            return self.clone();
        }
        let mut out = Rel {
            vars: cols.iter().map(|c| self.vars[*c].clone()).collect(),
            rows: self
                .rows
                .iter()
                .map(|r| cols.iter().map(|c| r[*c].clone()).collect())
                .collect(),
        };
        out.dedup();
        out
    }

    fn product(a: Rel, b: Rel) -> Rel {
        if a.vars.is_empty() && !a.rows.is_empty() {
            return b;
        }
        if b.vars.is_empty() && !b.rows.is_empty() {
            return a;
        }
        let mut vars = a.vars;
        vars.extend(b.vars);
        let mut rows = Vec::with_capacity(a.rows.len().saturating_mul(b.rows.len()));
        for x in &a.rows {
            for y in &b.rows {
                let mut r = x.clone();
                r.extend(y.iter().cloned());
                rows.push(r);
            }
        }
        Rel { vars, rows }
    }

    /// The natural join (a product when no variable is shared), hashing the smaller side.
    pub(crate) fn join(a: Rel, b: Rel) -> Rel {
        let shared: Vec<Sym> = a
            .vars
            .iter()
            .filter(|v| b.col(v).is_some())
            .cloned()
            .collect();
        if shared.is_empty() {
            return Rel::product(a, b);
        }
        let ka: Vec<usize> = shared.iter().filter_map(|v| a.col(v)).collect();
        let kb: Vec<usize> = shared.iter().filter_map(|v| b.col(v)).collect();
        let rest_b: Vec<usize> = (0..b.vars.len()).filter(|i| !kb.contains(i)).collect();
        let mut vars = a.vars.clone();
        vars.extend(rest_b.iter().map(|i| b.vars[*i].clone()));
        let key = |r: &[QueryValue], k: &[usize]| -> Vec<QueryValue> {
            k.iter().map(|i| r[*i].clone()).collect()
        };
        let mut rows = Vec::new();
        if a.rows.len() <= b.rows.len() {
            let mut h: HashMap<Vec<QueryValue>, Vec<usize>> = HashMap::new();
            for (i, r) in a.rows.iter().enumerate() {
                h.entry(key(r, &ka)).or_default().push(i);
            }
            for rb in &b.rows {
                if let Some(is) = h.get(&key(rb, &kb)) {
                    for i in is {
                        let mut r = a.rows[*i].clone();
                        r.extend(rest_b.iter().map(|j| rb[*j].clone()));
                        rows.push(r);
                    }
                }
            }
        } else {
            let mut h: HashMap<Vec<QueryValue>, Vec<usize>> = HashMap::new();
            for (i, r) in b.rows.iter().enumerate() {
                h.entry(key(r, &kb)).or_default().push(i);
            }
            for ra in &a.rows {
                if let Some(is) = h.get(&key(ra, &ka)) {
                    for i in is {
                        let mut r = ra.clone();
                        r.extend(rest_b.iter().map(|j| b.rows[*i][*j].clone()));
                        rows.push(r);
                    }
                }
            }
        }
        Rel { vars, rows }
    }

    /// The rows of `a` with no match in `b` on `b`'s variables (all in `a`).
    fn anti_join(a: Rel, b: &Rel) -> Rel {
        let cols: Vec<usize> = b.vars.iter().filter_map(|v| a.col(v)).collect();
        let set: HashSet<&Vec<QueryValue>> = b.rows.iter().collect();
        let rows = a
            .rows
            .into_iter()
            .filter(|r| {
                let k: Vec<QueryValue> = cols.iter().map(|c| r[*c].clone()).collect();
                !set.contains(&k)
            })
            .collect();
        Rel { vars: a.vars, rows }
    }

    /// The union of two relations over the same variables.
    fn union(mut a: Rel, b: Rel) -> Rel {
        let cols: Vec<usize> = a.vars.iter().filter_map(|v| b.col(v)).collect();
        a.rows.extend(
            b.rows
                .into_iter()
                .map(|r| cols.iter().map(|c| r[*c].clone()).collect()),
        );
        a
    }
}

// ---- contexts ---------------------------------------------------------------------------

/// Relations with disjoint variables; their product is the bindings so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ctx {
    rels: Vec<Rel>,
}

impl Ctx {
    pub(crate) fn new() -> Ctx {
        Ctx::default()
    }

    fn of(rel: Rel) -> Ctx {
        let mut c = Ctx::new();
        c.add(rel);
        c
    }

    fn bound(&self) -> HashSet<Sym> {
        self.rels
            .iter()
            .flat_map(|r| r.vars.iter().cloned())
            .collect()
    }

    fn is_bound(&self, v: &str) -> bool {
        self.rels.iter().any(|r| r.col(v).is_some())
    }

    /// The relation binding `v`.
    fn rel_of(&self, v: &str) -> Option<&Rel> {
        self.rels.iter().find(|r| r.col(v).is_some())
    }

    /// The sizes of the relations, for `explain`.
    fn sizes(&self) -> String {
        let sizes: Vec<String> = self.rels.iter().map(|r| r.rows.len().to_string()).collect();
        format!("[{}]", sizes.join(" × "))
    }

    fn is_empty(&self) -> bool {
        self.rels.iter().any(|r| r.rows.is_empty())
    }

    /// Adds a relation, joining it with every relation it shares a variable with.
    pub(crate) fn add(&mut self, rel: Rel) {
        let mut rel = rel;
        let mut keep = Vec::with_capacity(self.rels.len() + 1);
        for r in std::mem::take(&mut self.rels) {
            if r.vars.iter().any(|v| rel.col(v).is_some()) {
                rel = Rel::join(r, rel);
            } else {
                keep.push(r);
            }
        }
        if !rel.vars.is_empty() || rel.rows.is_empty() {
            keep.push(rel);
        }
        self.rels = keep;
    }

    /// Removes the relations holding any of `vars` and returns their product.
    fn take(&mut self, vars: &[Sym]) -> Rel {
        let mut out = Rel::unit();
        let mut keep = Vec::new();
        for r in std::mem::take(&mut self.rels) {
            if r.vars.iter().any(|v| vars.contains(v)) {
                out = Rel::product(out, r);
            } else {
                keep.push(r);
            }
        }
        self.rels = keep;
        out
    }

    /// The bound variables of a data pattern to look it up through. When they live in
    /// different relations, only those of one relation are used (the one binding the
    /// entity, else the attribute, else the smallest), and the pattern's result is
    /// hash-joined with the others instead of looked up through their product.
    fn pattern_keys(&self, terms: &[Term]) -> Vec<Sym> {
        let bound: Vec<(usize, &Sym)> = terms
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                Term::Var(v) if self.is_bound(v) => Some((i, v)),
                _ => None,
            })
            .collect();
        let rel_of = |v: &Sym| self.rels.iter().position(|r| r.col(v).is_some());
        let mut rels: Vec<usize> = bound.iter().filter_map(|(_, v)| rel_of(v)).collect();
        rels.sort_unstable();
        rels.dedup();
        if rels.len() <= 1 {
            return bound.into_iter().map(|(_, v)| v.clone()).collect();
        }
        let by_position = |pos: usize| {
            bound
                .iter()
                .find(|(i, _)| *i == pos)
                .and_then(|(_, v)| rel_of(v))
        };
        let chosen = by_position(0).or_else(|| by_position(1)).or_else(|| {
            rels.iter()
                .copied()
                .min_by_key(|r| self.rels[*r].rows.len())
        });
        // A lookup ref bound in the entity or value position is resolved by the lookup
        // (a hash join would compare it with an entity id): as Datascript, which
        // resolves lookup refs when it joins, the pattern is looked up through it too.
        let holds_lookup_ref = |v: &Sym| {
            rel_of(v).is_some_and(|r| {
                let rel = &self.rels[r];
                rel.col(v).is_some_and(|c| {
                    rel.rows
                        .iter()
                        .any(|row| matches!(row[c], QueryValue::Vector(_)))
                })
            })
        };
        bound
            .into_iter()
            .filter(|(i, v)| rel_of(v) == chosen || (matches!(i, 0 | 2) && holds_lookup_ref(v)))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Projects away every variable not in `needed`.
    fn retain(&mut self, needed: &HashSet<Sym>) {
        let mut out = Vec::with_capacity(self.rels.len());
        for r in std::mem::take(&mut self.rels) {
            if r.vars.iter().all(|v| needed.contains(v)) {
                out.push(r);
                continue;
            }
            let vars: Vec<Sym> = r
                .vars
                .iter()
                .filter(|v| needed.contains(*v))
                .cloned()
                .collect();
            if vars.is_empty() && !r.rows.is_empty() {
                continue;
            }
            out.push(r.project(&vars));
        }
        self.rels = out;
    }

    /// The bindings of `vars` (all must be bound unless the context is empty).
    pub(crate) fn to_rel(&self, vars: &[Sym]) -> Result<Rel, Sym> {
        if self.is_empty() {
            return Ok(Rel::empty(vars.to_vec()));
        }
        if let Some(v) = vars.iter().find(|v| !self.is_bound(v)) {
            return Err(v.clone());
        }
        let mut c = self.clone();
        let all = c.take(vars);
        Ok(all.project(vars))
    }
}

// ---- values and entities ----------------------------------------------------------------

/// The entity a query value names: an entity id, a lookup ref `[attr value]` or an
/// ident keyword. `None` when it names no entity.
///
/// # Errors
/// [`Error::LookupRefNotUnique`] for a lookup ref on a non-unique attribute, or a load
/// error.
pub(crate) fn resolve_entity(db: &Db, v: &QueryValue) -> Result<Option<Eid>, Error> {
    match v {
        QueryValue::Value(Value::Long(n)) => Ok(u64::try_from(*n).ok().filter(|e| *e > 0)),
        QueryValue::Value(Value::Ref(e)) => Ok(Some(*e)),
        QueryValue::Vector(items) if items.len() == 2 => match &items[0] {
            QueryValue::Value(Value::Keyword(a)) => lookup_ref(db, a, &items[1]),
            _ => Ok(None),
        },
        QueryValue::Value(Value::Keyword(k)) => {
            let ident = Keyword::new(crate::schema::IDENT);
            if db.schema().get(&ident).is_some_and(|s| s.unique.is_some()) {
                db.lookup_ref(&ident, &Value::Keyword(k.clone()))
            } else {
                Ok(None)
            }
        }
        _ => Ok(None),
    }
}

/// A lookup ref, resolved by [`Db::lookup_ref`] once its value is a datom value.
fn lookup_ref(db: &Db, attr: &Keyword, v: &QueryValue) -> Result<Option<Eid>, Error> {
    lookup_ref_attr(db.schema(), attr)?;
    match datom_value(db, attr, v)? {
        Some(value) => db.lookup_ref(attr, &value),
        None => Ok(None),
    }
}

/// The datom value a query value stands for under `attr`: for a ref attribute an entity
/// id, lookup ref or ident becomes a [`Value::Ref`]. `None` when it cannot be a value of
/// `attr`.
pub(crate) fn datom_value(db: &Db, attr: &Keyword, v: &QueryValue) -> Result<Option<Value>, Error> {
    let is_ref = db.schema().get(attr).is_some_and(|s| s.is_ref());
    if is_ref {
        return Ok(resolve_entity(db, v)?.map(Value::Ref));
    }
    // A symbol or collection is a stored composite value (see `crate::composite`).
    Ok(v.to_datom_value())
}

/// True if datom value `d` is the query value `q` (a ref equals its entity id).
fn value_is(d: &Value, q: &QueryValue) -> bool {
    match (d, q) {
        (Value::Ref(e), QueryValue::Value(Value::Long(n))) => u64::try_from(*n).ok() == Some(*e),
        (x, QueryValue::Value(y)) => x == y,
        (x, q) if x.is_composite() => QueryValue::from_value(x.clone()) == *q,
        _ => false,
    }
}

// ---- patterns ---------------------------------------------------------------------------

/// What a data pattern asks of the index, once constants and bound values are known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Probe {
    e: Option<Eid>,
    a: Option<Keyword>,
    /// The exact datom value, or a query value to compare loosely (attribute unknown).
    v: Option<Result<Value, QueryValue>>,
    tx: Option<u64>,
}

impl Probe {
    fn matches(&self, d: &Datom) -> bool {
        self.e.is_none_or(|e| d.e == e)
            && self.a.as_ref().is_none_or(|a| d.a == *a)
            && match &self.v {
                None => true,
                Some(Ok(v)) => d.v == *v,
                Some(Err(q)) => value_is(&d.v, q),
            }
            && self.tx.is_none_or(|t| d.tx == t)
    }

    /// Runs `f` on every datom matching the probe, through the best index.
    fn each(&self, db: &Db, mut f: impl FnMut(&Datom)) -> Result<(), Error> {
        let mut run = |index: IndexKind, comps: Vec<Component>| -> Result<(), Error> {
            for d in db.datoms(index, &comps)? {
                let d = d?;
                if self.matches(&d) {
                    f(&d);
                }
            }
            Ok(())
        };
        if let Some(e) = self.e {
            let mut comps = vec![Component::E(e)];
            if let Some(a) = &self.a {
                comps.push(Component::A(a.clone()));
                if let Some(Ok(v)) = &self.v {
                    comps.push(Component::V(v.clone()));
                }
            }
            return run(IndexKind::Eavt, comps);
        }
        if let Some(a) = &self.a {
            if let Some(Ok(v)) = &self.v {
                if db.schema().in_avet(a) {
                    return run(
                        IndexKind::Avet,
                        vec![Component::A(a.clone()), Component::V(v.clone())],
                    );
                }
            }
            return run(IndexKind::Aevt, vec![Component::A(a.clone())]);
        }
        run(IndexKind::Eavt, Vec::new())
    }
}

/// The value of pattern position `i` (e, a, v, tx, added) of a datom.
fn datom_part(d: &Datom, i: usize) -> QueryValue {
    match i {
        0 => QueryValue::entity(d.e),
        1 => QueryValue::Value(Value::Keyword(d.a.clone())),
        2 => QueryValue::from_value(d.v.clone()),
        3 => QueryValue::entity(d.tx),
        _ => QueryValue::bool(d.added),
    }
}

/// How one data pattern binds: for each term, a constant, a column of the input
/// (a bound variable), a new variable's output slot, or nothing.
#[derive(Clone, Debug)]
enum Slot {
    Const(QueryValue),
    Bound(usize),
    New(usize),
    Blank,
}

struct PatternPlan {
    slots: Vec<Slot>,
    new_vars: Vec<Sym>,
}

fn plan_pattern(terms: &[Term], input: &Rel) -> PatternPlan {
    let mut new_vars: Vec<Sym> = Vec::new();
    let slots = terms
        .iter()
        .map(|t| match t {
            Term::Const(c) => Slot::Const(c.clone()),
            Term::Blank => Slot::Blank,
            Term::Var(v) => match input.col(v) {
                Some(c) => Slot::Bound(c),
                None => match new_vars.iter().position(|x| x == v) {
                    Some(i) => Slot::New(i),
                    None => {
                        new_vars.push(v.clone());
                        Slot::New(new_vars.len() - 1)
                    }
                },
            },
        })
        .collect();
    PatternPlan { slots, new_vars }
}

impl PatternPlan {
    /// The values of the new variables for `vals` (one per slot), or `None` when a new
    /// variable repeated in the pattern gets two different values.
    fn extract(&self, part: impl Fn(usize) -> QueryValue) -> Option<Vec<QueryValue>> {
        let mut out: Vec<Option<QueryValue>> = vec![None; self.new_vars.len()];
        for (i, s) in self.slots.iter().enumerate() {
            if let Slot::New(k) = s {
                let v = part(i);
                match &out[*k] {
                    Some(prev) if *prev != v => return None,
                    Some(_) => {}
                    None => out[*k] = Some(v),
                }
            }
        }
        out.into_iter().collect()
    }

    /// True when two distinct datoms can give the same bindings (a blank or missing
    /// e, a or v position), so the output needs deduplication.
    fn may_repeat(&self) -> bool {
        (0..3).any(|i| matches!(self.slots.get(i), None | Some(Slot::Blank)))
    }
}

// ---- the engine -------------------------------------------------------------------------

/// One rule table: the demanded inputs and the answers found for a rule called with
/// some arguments bound, against one source.
struct Table {
    name: Sym,
    bound: Vec<bool>,
    src: Sym,
    demand: Vec<Vec<QueryValue>>,
    demand_set: HashSet<Vec<QueryValue>>,
    /// Answers with the sequence number they were found at.
    answers: Vec<(Vec<QueryValue>, u64)>,
    answer_set: HashSet<Vec<QueryValue>>,
    /// Answers by the values of their bound positions (the demand they answer).
    by_key: HashMap<Vec<QueryValue>, Vec<usize>>,
    /// Per branch: how many demand rows were evaluated, and the answer sequence number
    /// when they were (every answer older than that has met every older demand row).
    progress: Vec<(usize, u64)>,
}

impl Table {
    fn key_of(&self, answer: &[QueryValue]) -> Vec<QueryValue> {
        answer
            .iter()
            .zip(&self.bound)
            .filter(|(_, b)| **b)
            .map(|(v, _)| v.clone())
            .collect()
    }

    fn add_answer(&mut self, answer: Vec<QueryValue>, seq: u64) -> bool {
        if !self.answer_set.insert(answer.clone()) {
            return false;
        }
        let key = self.key_of(&answer);
        self.by_key.entry(key).or_default().push(self.answers.len());
        self.answers.push((answer, seq));
        true
    }

    /// The answers for `demand` found at or after sequence number `since`.
    fn answers_for(&self, demand: &[Vec<QueryValue>], since: u64) -> Vec<Vec<QueryValue>> {
        let mut out = Vec::new();
        for d in demand {
            if let Some(is) = self.by_key.get(d) {
                out.extend(
                    is.iter()
                        .map(|i| &self.answers[*i])
                        .filter(|(_, seq)| *seq >= since)
                        .map(|(a, _)| a.clone()),
                );
            }
        }
        out
    }
}

#[derive(Default)]
struct Tables {
    list: Vec<Table>,
    changed: bool,
    /// The sequence number the next answer gets.
    next_seq: u64,
    /// During a delta evaluation: the rule call (by address) that reads only answers
    /// found at or after the sequence number.
    delta: Option<(usize, u64)>,
}

impl Tables {
    fn find_or_add(&mut self, name: &Sym, bound: &[bool], src: &Sym) -> usize {
        if let Some(i) = self
            .list
            .iter()
            .position(|t| t.name == *name && t.bound == bound && t.src == *src)
        {
            return i;
        }
        self.list.push(Table {
            name: name.clone(),
            bound: bound.to_vec(),
            src: src.clone(),
            demand: Vec::new(),
            demand_set: HashSet::new(),
            answers: Vec::new(),
            answer_set: HashSet::new(),
            by_key: HashMap::new(),
            progress: Vec::new(),
        });
        self.changed = true;
        self.list.len() - 1
    }
}

/// The arguments of a call on `row`: each a source, a bound variable's value or a
/// constant; `None` when one resolves to nothing.
fn call_args<'r>(
    args: &'r [Arg],
    srcs: &[Option<&'r Source<'r>>],
    cols: &[Option<usize>],
    row: &'r [QueryValue],
) -> Option<Vec<CallArg<'r>>> {
    args.iter()
        .enumerate()
        .map(|(i, a)| match (a, srcs[i], cols[i]) {
            (_, Some(s), _) => Some(CallArg::Src(s)),
            (_, None, Some(col)) => Some(CallArg::Val(&row[col])),
            (Arg::Const(k), _, _) => Some(CallArg::Val(k)),
            _ => None,
        })
        .collect()
}

fn clause_addr(c: &Clause) -> usize {
    std::ptr::from_ref(c) as usize
}

/// The rule calls of a clause list, also inside `or` (not inside `not`, which solves
/// its rules in a fixpoint of its own).
fn rule_calls(clauses: &[Clause], out: &mut Vec<usize>) {
    for c in clauses {
        match &c.kind {
            ClauseKind::Rule { .. } => out.push(clause_addr(c)),
            ClauseKind::Or { branches, .. } => {
                for b in branches {
                    rule_calls(b, out);
                }
            }
            _ => {}
        }
    }
}

/// Where rule tables live: one per top-level rule call, and one per `not` body.
pub(crate) struct Scope {
    tables: RefCell<Option<Tables>>,
    depth: usize,
}

impl Scope {
    pub(crate) fn root() -> Scope {
        Scope {
            tables: RefCell::new(None),
            depth: 0,
        }
    }

    fn nested(&self) -> Scope {
        Scope {
            tables: RefCell::new(None),
            depth: self.depth + 1,
        }
    }
}

/// Point lookups by source and probe.
pub(crate) type LookupCache = RefCell<HashMap<(Sym, Probe), Arc<Vec<Datom>>>>;

/// Everything a query evaluates against.
pub(crate) struct Engine<'a> {
    pub sources: HashMap<Sym, Source<'a>>,
    pub rules: Rules,
    pub fns: &'a Functions,
    /// Point lookups already made (dbs are immutable values, so a lookup's answer holds
    /// for the whole query): rule fixpoints repeat lookups round after round, and a lazily
    /// restored db would load the same nodes again each time.
    pub cache: LookupCache,
    /// The variables bound by scalar `:in` values: Datascript reads them as constants
    /// of the clauses that use them (so a string in a ref position is an error there).
    pub in_scalars: HashSet<Sym>,
    /// The plan as it runs, for `explain`; `None` when nobody asked.
    pub trace: Option<RefCell<Vec<String>>>,
}

fn eval_err(function: &str, reason: impl Into<String>, clause: &Clause) -> Error {
    Error::QueryEval {
        function: function.to_owned(),
        reason: reason.into(),
        clause: clause.form.to_string(),
    }
}

fn unbound(vars: &[Sym], clause: &Clause) -> Error {
    Error::UnboundVariable {
        var: vars
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        clause: clause.form.to_string(),
    }
}

/// Binds a value to a binding form (of `:in` or a function's output).
pub(crate) fn bind_value(b: &Binding, value: &QueryValue) -> Result<Rel, String> {
    match b {
        Binding::Var(v) => Ok(Rel {
            vars: vec![v.clone()],
            rows: vec![vec![value.clone()]],
        }),
        Binding::Ignore => Ok(Rel::unit()),
        Binding::Tuple(items) => {
            let Some(elems) = value.as_seq() else {
                return Err(format!("cannot bind value {value} to tuple {}", b.to_edn()));
            };
            if elems.len() < items.len() {
                return Err(format!(
                    "not enough elements in {value} to bind tuple {}",
                    b.to_edn()
                ));
            }
            let mut out = Rel::unit();
            for (item, elem) in items.iter().zip(elems) {
                out = Rel::join(out, bind_value(item, elem)?);
            }
            Ok(out)
        }
        Binding::Coll(inner) => {
            let elems = match value {
                QueryValue::Map(m) => m
                    .iter()
                    .map(|(k, v)| QueryValue::Vector(vec![k.clone(), v.clone()]))
                    .collect(),
                other => match other.as_seq() {
                    Some(e) => e.into_iter().cloned().collect::<Vec<_>>(),
                    None => {
                        return Err(format!(
                            "cannot bind value {value} to collection {}",
                            b.to_edn()
                        ))
                    }
                },
            };
            let mut vars = Vec::new();
            inner.vars(&mut vars);
            let mut out = Rel::empty(vars.clone());
            for e in &elems {
                let r = bind_value(inner, e)?;
                out = Rel::union(out, r.project(&vars));
            }
            out.dedup();
            Ok(out)
        }
    }
}

/// A clause's join variables and how ready it is.
struct Plan {
    join: Vec<Sym>,
}

impl<'a> Engine<'a> {
    /// True when the plan is being recorded (`explain`).
    fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Records a step of the plan.
    fn trace(&self, line: String) {
        if let Some(t) = &self.trace {
            t.borrow_mut().push(line);
        }
    }

    /// Runs `f` on each datom `probe` matches, through the lookup cache for point
    /// lookups (an entity, or an attribute and value in AVET); scans stream.
    fn each_datom(
        &self,
        src: &Sym,
        db: &Db,
        probe: &Probe,
        mut f: impl FnMut(&Datom),
    ) -> Result<(), Error> {
        let point = probe.e.is_some()
            || (matches!(probe.v, Some(Ok(_)))
                && probe.a.as_ref().is_some_and(|a| db.schema().in_avet(a)));
        if !point {
            return probe.each(db, f);
        }
        let key = (src.clone(), probe.clone());
        let cached = self.cache.borrow().get(&key).cloned();
        let datoms = match cached {
            Some(d) => d,
            None => {
                let mut found = Vec::new();
                probe.each(db, |d| found.push(d.clone()))?;
                let found = Arc::new(found);
                self.cache.borrow_mut().insert(key, found.clone());
                found
            }
        };
        datoms.iter().for_each(&mut f);
        Ok(())
    }

    fn source(&self, name: &str, clause: &Clause) -> Result<&Source<'a>, Error> {
        self.sources
            .get(name)
            .ok_or_else(|| bad_clause(clause, format!("unknown source {name}")))
    }

    /// Checks every function, predicate and rule call of `clauses` (and of the rules)
    /// before running anything.
    pub(crate) fn check(&self, clauses: &[Clause]) -> Result<(), Error> {
        for c in clauses {
            match &c.kind {
                ClauseKind::Pred { name, args } | ClauseKind::Fn { name, args, .. } => {
                    if self.fns.function_impl(name).is_some() || is_var(name) {
                        continue;
                    }
                    let Some(arity) = builtin_arity(name) else {
                        return Err(Error::UnknownFunction {
                            name: name.to_string(),
                            clause: c.form.to_string(),
                        });
                    };
                    let n = args.len();
                    if n < arity.0 || arity.1.is_some_and(|m| n > m) {
                        return Err(Error::WrongArity {
                            name: name.to_string(),
                            expected: arity_text(arity),
                            got: n,
                            clause: c.form.to_string(),
                        });
                    }
                }
                ClauseKind::Rule { name, args, .. } => {
                    let Some(branches) = self.rules.map.get(name) else {
                        return Err(Error::UnknownRule {
                            name: name.to_string(),
                            clause: c.form.to_string(),
                        });
                    };
                    let arity = branches.first().map_or(0, |b| b.arity());
                    if arity != args.len() {
                        return Err(Error::WrongArity {
                            name: name.to_string(),
                            expected: arity.to_string(),
                            got: args.len(),
                            clause: c.form.to_string(),
                        });
                    }
                }
                ClauseKind::Not { body, .. } => self.check(body)?,
                ClauseKind::Or { branches, .. } => {
                    for b in branches {
                        self.check(b)?;
                    }
                }
                ClauseKind::Pattern { .. } => {}
            }
        }
        Ok(())
    }

    /// Checks the bodies of every rule.
    pub(crate) fn check_rules(&self) -> Result<(), Error> {
        for branches in self.rules.map.values() {
            for b in branches {
                self.check(&b.body)?;
            }
        }
        Ok(())
    }

    /// The join variables of a `not`, `or` or rule call given what the inputs and the
    /// clauses before it bind (`textual`).
    fn join_vars(&self, c: &Clause, textual: &HashSet<Sym>) -> Result<Plan, Error> {
        let before = |vs: &mut dyn Iterator<Item = &Sym>| -> Vec<Sym> {
            vs.filter(|v| textual.contains(*v)).cloned().collect()
        };
        let join = match &c.kind {
            ClauseKind::Not { join: None, .. } => {
                let j = before(&mut c.vars.iter());
                // As Datascript: a `not` none of whose variables is bound by the inputs
                // or the clauses written before it is "Insufficient bindings".
                if j.is_empty() {
                    return Err(Error::UnboundVariable {
                        var: format!(
                            "none of {}",
                            c.vars
                                .iter()
                                .map(|v| v.to_string())
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                        clause: c.form.to_string(),
                    });
                }
                j
            }
            ClauseKind::Not { join: Some(j), .. } => j.clone(),
            ClauseKind::Or { join: None, .. } | ClauseKind::Rule { .. } => {
                before(&mut c.vars.iter())
            }
            ClauseKind::Or { join: Some(j), .. } => {
                let mut out = j.required.clone();
                out.extend(j.vars.iter().filter(|v| textual.contains(*v)).cloned());
                out
            }
            ClauseKind::Pred { name, args } | ClauseKind::Fn { name, args, .. } => {
                let mut join: Vec<Sym> = args
                    .iter()
                    .filter_map(|a| match a {
                        Arg::Var(v) => Some(v.clone()),
                        _ => None,
                    })
                    .collect();
                // A variable in function position bound before the clause (an `:in`
                // function, a `complement`) is called with each row's binding.
                if is_var(name) && textual.contains(name) && !join.contains(name) {
                    join.push(name.clone());
                }
                join
            }
            ClauseKind::Pattern { .. } => Vec::new(),
        };
        Ok(Plan { join })
    }

    fn pattern_cost(&self, src: &Option<Sym>, terms: &[Term], default_src: &Sym, ctx: &Ctx) -> u32 {
        let known = |i: usize| match terms.get(i) {
            Some(Term::Const(_)) => true,
            Some(Term::Var(v)) => ctx.is_bound(v),
            _ => false,
        };
        let name = src.as_ref().unwrap_or(default_src);
        let avet = match (self.sources.get(name), terms.get(1)) {
            (Some(Source::Db(db)), Some(Term::Const(a))) => {
                a.as_keyword().is_some_and(|a| db.schema().in_avet(a))
            }
            _ => false,
        };
        let (e, a, v) = (known(0), known(1), known(2));
        let mut cost = if e && a {
            10
        } else if a && v && avet {
            12
        } else if e {
            14
        } else if a && v {
            30
        } else if a {
            35
        } else if v {
            60
        } else {
            90
        };
        let has_bound_var = terms
            .iter()
            .any(|t| matches!(t, Term::Var(v) if ctx.is_bound(v)));
        if !has_bound_var && !ctx.rels.is_empty() {
            cost += 40;
        }
        cost
    }

    /// Evaluates a clause list starting from `ctx`; keeps the variables in `needed`.
    pub(crate) fn eval_body(
        &self,
        clauses: &[Clause],
        mut ctx: Ctx,
        default_src: &Sym,
        scope: &Scope,
        needed: &HashSet<Sym>,
    ) -> Result<Ctx, Error> {
        // What the clauses written before each one bind.
        let mut bound = ctx.bound();
        let mut textual = Vec::with_capacity(clauses.len());
        for c in clauses {
            textual.push(bound.clone());
            let mut b = Vec::new();
            c.binds(&mut b);
            bound.extend(b);
        }
        let mut plans = Vec::with_capacity(clauses.len());
        for (c, t) in clauses.iter().zip(&textual) {
            plans.push(self.join_vars(c, t)?);
        }
        let mut pending: Vec<usize> = (0..clauses.len()).collect();
        while !pending.is_empty() {
            if ctx.is_empty() {
                break;
            }
            let mut best: Option<(u32, usize)> = None;
            for (k, &i) in pending.iter().enumerate() {
                let c = &clauses[i];
                let ready = plans[i].join.iter().all(|v| ctx.is_bound(v));
                if !ready {
                    continue;
                }
                let cost = match &c.kind {
                    ClauseKind::Pred { .. } => 0,
                    ClauseKind::Not { .. } => 1,
                    ClauseKind::Fn { .. } => 2,
                    ClauseKind::Pattern { src, terms } => {
                        self.pattern_cost(src, terms, default_src, &ctx)
                    }
                    ClauseKind::Or { .. } | ClauseKind::Rule { .. } => 45,
                };
                if best.is_none_or(|(bc, _)| cost < bc) {
                    best = Some((cost, k));
                }
            }
            let Some((_, k)) = best else {
                // Nothing can run: some clause waits for a variable nothing binds.
                let i = pending[0];
                let missing: Vec<Sym> = plans[i]
                    .join
                    .iter()
                    .filter(|v| !ctx.is_bound(v))
                    .cloned()
                    .collect();
                return Err(unbound(&missing, &clauses[i]));
            };
            let i = pending[k];
            let star = match &clauses[i].kind {
                ClauseKind::Pattern { .. } => self.star(clauses, &pending, i, &ctx, default_src)?,
                _ => None,
            };
            if let Some((star, db)) = star {
                let members = star.clauses.clone();
                let rel = self.run_star(db, star)?;
                pending.retain(|j| !members.contains(j));
                ctx.add(rel);
            } else {
                pending.remove(k);
                self.exec(
                    &clauses[i],
                    &plans[i].join,
                    &textual[i],
                    &mut ctx,
                    default_src,
                    scope,
                )?;
                if self.tracing() {
                    self.trace(format!(
                        "{} (cost class {}) → relations {}",
                        clauses[i].form,
                        best.map_or(0, |b| b.0),
                        ctx.sizes()
                    ));
                }
            }
            let mut keep: HashSet<Sym> = needed.clone();
            for &j in &pending {
                keep.extend(clauses[j].vars.iter().cloned());
            }
            ctx.retain(&keep);
        }
        Ok(ctx)
    }

    fn exec(
        &self,
        c: &Clause,
        join: &[Sym],
        textual: &HashSet<Sym>,
        ctx: &mut Ctx,
        default_src: &Sym,
        scope: &Scope,
    ) -> Result<(), Error> {
        match &c.kind {
            ClauseKind::Pattern { src, terms } => {
                let src = src.as_ref().unwrap_or(default_src);
                let source = self.source(src, c)?;
                let keys = ctx.pattern_keys(terms);
                let input = ctx.take(&keys);
                let out = match source {
                    Source::Db(db) => self.pattern_db(src, db, terms, input, c)?,
                    Source::Coll(tuples) => pattern_coll(tuples, terms, input),
                    Source::History(history) => pattern_history(history, terms, input, c)?,
                };
                ctx.add(out);
            }
            ClauseKind::Pred { name, args } => {
                let input = ctx.take(join);
                let out = self.call_rows(name, args, None, input, c, default_src)?;
                ctx.add(out);
            }
            ClauseKind::Fn { name, args, out } => {
                let mut vars = join.to_vec();
                let mut ov = Vec::new();
                out.vars(&mut ov);
                vars.extend(ov.into_iter().filter(|v| ctx.is_bound(v)));
                let input = ctx.take(&vars);
                let rel = self.call_rows(name, args, Some(out), input, c, default_src)?;
                ctx.add(rel);
            }
            ClauseKind::Not { src, body, .. } => {
                let src = src.as_ref().unwrap_or(default_src);
                let input = ctx.take(join);
                let sub = input.project(join);
                let needed: HashSet<Sym> = join.iter().cloned().collect();
                let inner = scope.nested();
                if inner.depth > MAX_SCOPE_DEPTH {
                    return Err(eval_err(
                        "not",
                        "negation nested too deeply (recursion through not?)",
                        c,
                    ));
                }
                let res = self.eval_body(body, Ctx::of(sub), src, &inner, &needed)?;
                let neg = res.to_rel(join).map_err(|v| unbound(&[v], c))?;
                ctx.add(Rel::anti_join(input, &neg));
            }
            ClauseKind::Or {
                src,
                join: jv,
                branches,
            } => {
                let src = src.as_ref().unwrap_or(default_src);
                let out_vars: Vec<Sym> = match jv {
                    Some(j) => j.all().cloned().collect(),
                    None => c.vars.clone(),
                };
                self.check_or_branches(c, jv.as_ref(), branches, textual)?;
                let input = ctx.take(join);
                let sub = input.project(join);
                let needed: HashSet<Sym> = out_vars.iter().cloned().collect();
                let mut acc: Option<Rel> = None;
                for b in branches {
                    let res = self.eval_body(b, Ctx::of(sub.clone()), src, scope, &needed)?;
                    let rel = res.to_rel(&out_vars).map_err(|v| unbound(&[v], c))?;
                    acc = Some(match acc {
                        None => rel,
                        Some(a) => Rel::union(a, rel),
                    });
                }
                let mut u = acc.unwrap_or_else(|| Rel::empty(out_vars.clone()));
                u.dedup();
                ctx.add(Rel::join(input, u));
            }
            ClauseKind::Rule { src, name, args } => {
                let src = src.clone().unwrap_or_else(|| default_src.clone());
                let input = ctx.take(join);
                let rel = self.call_rule(name, args, input, &src, scope, c)?;
                ctx.add(rel);
            }
        }
        Ok(())
    }

    fn check_or_branches(
        &self,
        c: &Clause,
        jv: Option<&JoinVars>,
        branches: &[Vec<Clause>],
        textual: &HashSet<Sym>,
    ) -> Result<(), Error> {
        let branch_vars = |b: &[Clause]| -> HashSet<Sym> {
            b.iter().flat_map(|c| c.vars.iter().cloned()).collect()
        };
        match jv {
            None => {
                let mut first: Option<Vec<Sym>> = None;
                for b in branches {
                    let mut free: Vec<Sym> = branch_vars(b)
                        .into_iter()
                        .filter(|v| !textual.contains(v))
                        .collect();
                    free.sort();
                    match &first {
                        None => first = Some(free),
                        Some(f) if *f != free => {
                            return Err(bad_clause(
                                c,
                                "all clauses in 'or' must use the same set of free vars",
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(j) => {
                for b in branches {
                    let vars = branch_vars(b);
                    if let Some(v) = j
                        .all()
                        .find(|v| !textual.contains(*v) && !vars.contains(*v))
                    {
                        return Err(bad_clause(
                            c,
                            format!("every branch of 'or-join' must bind {v}, which is not bound before it"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs a predicate or function over the rows of `input`.
    fn call_rows(
        &self,
        name: &Sym,
        args: &[Arg],
        out: Option<&Binding>,
        input: Rel,
        c: &Clause,
        default_src: &Sym,
    ) -> Result<Rel, Error> {
        let fn_col = if is_var(name) { input.col(name) } else { None };
        if is_var(name) && fn_col.is_none() && !input.rows.is_empty() {
            // Datascript: "Unknown predicate '?pred in [(?pred ?a)]" (a variable in
            // function position calls nothing here; with no tuples it answers nothing).
            return Err(Error::UnknownFunction {
                name: name.to_string(),
                clause: c.form.to_string(),
            });
        }
        let custom = self.fns.function_impl(name);
        let mut srcs: Vec<Option<&Source<'a>>> = Vec::with_capacity(args.len());
        let mut cols: Vec<Option<usize>> = Vec::with_capacity(args.len());
        for a in args {
            match a {
                Arg::Src(s) => {
                    let s = if &**s == DEFAULT_SRC { default_src } else { s };
                    srcs.push(Some(self.source(s, c)?));
                    cols.push(None);
                }
                Arg::Var(v) => {
                    srcs.push(None);
                    cols.push(Some(
                        input
                            .col(v)
                            .ok_or_else(|| unbound(std::slice::from_ref(v), c))?,
                    ));
                }
                Arg::Const(_) => {
                    srcs.push(None);
                    cols.push(None);
                }
            }
        }
        let unresolved = || eval_err(name, "argument cannot be resolved", c);
        let call_error = |e: CallError| match e {
            CallError::Reason(r) => eval_err(name, r, c),
            CallError::Db(e) => e,
        };
        let call = |row: &[QueryValue]| -> Result<QueryValue, Error> {
            if let Some(col) = fn_col {
                let QueryValue::Fn(f) = &row[col] else {
                    return Err(eval_err(
                        name,
                        format!("{name} is bound to {}, which is not a function", row[col]),
                        c,
                    ));
                };
                let call = call_args(args, &srcs, &cols, row).ok_or_else(unresolved)?;
                return f.call(&call, self.fns).map_err(call_error);
            }
            if let Some(f) = custom {
                let mut vals = Vec::with_capacity(args.len());
                for (i, a) in args.iter().enumerate() {
                    match a {
                        Arg::Const(k) => vals.push(k.clone()),
                        Arg::Var(_) => {
                            vals.push(cols[i].map_or(QueryValue::Nil, |c| row[c].clone()))
                        }
                        Arg::Src(_) => {
                            return Err(eval_err(
                                name,
                                "registered functions take no data source",
                                c,
                            ))
                        }
                    }
                }
                return f(&vals).map_err(|r| eval_err(name, r, c));
            }
            let call = call_args(args, &srcs, &cols, row).ok_or_else(unresolved)?;
            call_builtin(name, &call).map_err(call_error)
        };
        let Some(binding) = out else {
            let mut rows = Vec::new();
            for r in input.rows {
                if call(&r)?.is_truthy() {
                    rows.push(r);
                }
            }
            return Ok(Rel {
                vars: input.vars,
                rows,
            });
        };
        let mut out_vars = Vec::new();
        binding.vars(&mut out_vars);
        let new_vars: Vec<Sym> = out_vars
            .iter()
            .filter(|v| input.col(v).is_none())
            .cloned()
            .collect();
        let bound_cols: Vec<(usize, usize)> = out_vars
            .iter()
            .enumerate()
            .filter_map(|(k, v)| input.col(v).map(|c| (k, c)))
            .collect();
        let mut vars = input.vars.clone();
        vars.extend(new_vars.iter().cloned());
        let mut rows = Vec::new();
        for r in &input.rows {
            let value = call(r)?;
            if value.is_nil() {
                continue;
            }
            let bound = bind_value(binding, &value).map_err(|e| eval_err(name, e, c))?;
            let bound = bound.project(&out_vars);
            for b in bound.rows {
                if bound_cols.iter().all(|(k, col)| b[*k] == r[*col]) {
                    let mut row = r.clone();
                    row.extend(
                        out_vars
                            .iter()
                            .zip(&b)
                            .filter(|(v, _)| input.col(v).is_none())
                            .map(|(_, x)| x.clone()),
                    );
                    rows.push(row);
                }
            }
        }
        let mut rel = Rel { vars, rows };
        if matches!(binding, Binding::Coll(_)) {
            rel.dedup();
        }
        Ok(rel)
    }

    /// A data pattern against a db, joined with `input` (which holds the pattern's
    /// bound variables).
    fn pattern_db(
        &self,
        src: &Sym,
        db: &Db,
        terms: &[Term],
        input: Rel,
        c: &Clause,
    ) -> Result<Rel, Error> {
        if terms.len() > 5 {
            return Err(bad_clause(
                c,
                "a data pattern has at most 5 elements: [e a v tx added]",
            ));
        }
        let plan = plan_pattern(terms, &input);
        let mut vars = input.vars.clone();
        vars.extend(plan.new_vars.iter().cloned());
        if input.rows.is_empty() {
            return Ok(Rel::empty(vars));
        }
        // Constants are resolved once; a lookup ref that finds nothing is an error, as
        // in Datascript.
        let mut base = Probe::default();
        let slot_const = |i: usize| match plan.slots.get(i) {
            Some(Slot::Const(k)) => Some(k),
            _ => None,
        };
        if !self.fill_probe(db, &mut base, &|i| slot_const(i).cloned(), true, true, c)? {
            return Ok(Rel::empty(vars));
        }
        let key_cols: Vec<(usize, usize)> = plan
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Bound(col) => Some((i, *col)),
                _ => None,
            })
            .collect();
        let mut rows: Vec<Vec<QueryValue>> = Vec::new();
        let emit = |rows: &mut Vec<Vec<QueryValue>>, r: &[QueryValue], d: &Datom| {
            if let Some(new) = plan.extract(|i| datom_part(d, i)) {
                let mut row = r.to_vec();
                row.extend(new);
                rows.push(row);
            }
        };
        if key_cols.is_empty() {
            let mut matches = Vec::new();
            self.each_datom(src, db, &base, |d| matches.push(d.clone()))?;
            for r in &input.rows {
                for d in &matches {
                    emit(&mut rows, r, d);
                }
            }
        } else {
            let pos_bound = |i: usize| key_cols.iter().any(|(p, _)| *p == i);
            let attr_avet = slot_const(1)
                .and_then(QueryValue::as_keyword)
                .is_some_and(|a| db.schema().in_avet(a));
            let lookups = pos_bound(0) || pos_bound(1) || (pos_bound(2) && attr_avet);
            // Group the input rows by the values of the bound variables.
            let mut groups: HashMap<Vec<QueryValue>, Vec<usize>> = HashMap::new();
            let mut order: Vec<Vec<QueryValue>> = Vec::new();
            for (n, r) in input.rows.iter().enumerate() {
                let key: Vec<QueryValue> =
                    key_cols.iter().map(|(_, col)| r[*col].clone()).collect();
                groups
                    .entry(key.clone())
                    .or_insert_with(|| {
                        order.push(key);
                        Vec::new()
                    })
                    .push(n);
            }
            if lookups {
                for key in &order {
                    let mut probe = base.clone();
                    let get = |i: usize| {
                        key_cols
                            .iter()
                            .position(|(p, _)| *p == i)
                            .map(|k| key[k].clone())
                    };
                    let v_from_in =
                        matches!(terms.get(2), Some(Term::Var(v)) if self.in_scalars.contains(v));
                    if !self.fill_probe(db, &mut probe, &get, false, v_from_in, c)? {
                        continue;
                    }
                    let members = groups.get(key).map_or(&[][..], Vec::as_slice);
                    let mut found = Vec::new();
                    self.each_datom(src, db, &probe, |d| found.push(d.clone()))?;
                    for d in &found {
                        for n in members {
                            emit(&mut rows, &input.rows[*n], d);
                        }
                    }
                }
            } else {
                // Scan once with the constants and hash-join on the bound variables.
                let mut found: HashMap<Vec<QueryValue>, Vec<Datom>> = HashMap::new();
                self.each_datom(src, db, &base, |d| {
                    let key: Vec<QueryValue> =
                        key_cols.iter().map(|(p, _)| datom_part(d, *p)).collect();
                    if groups.contains_key(&key) {
                        found.entry(key).or_default().push(d.clone());
                    }
                })?;
                for key in &order {
                    let Some(ds) = found.get(key) else { continue };
                    let members = groups.get(key).map_or(&[][..], Vec::as_slice);
                    for d in ds {
                        for n in members {
                            emit(&mut rows, &input.rows[*n], d);
                        }
                    }
                }
            }
        }
        let mut rel = Rel { vars, rows };
        if plan.may_repeat() {
            rel.dedup();
        }
        Ok(rel)
    }

    /// Fills `probe` from the values `get` gives for positions e, a, v, tx, added.
    /// Returns false when the pattern can match nothing. `strict`: the values are the
    /// clause's constants; `constant_v`: the value is one (or an `:in` scalar), so one
    /// that cannot name an entity under a ref attribute is an error, not a non-match.
    fn fill_probe(
        &self,
        db: &Db,
        probe: &mut Probe,
        get: &dyn Fn(usize) -> Option<QueryValue>,
        strict: bool,
        constant_v: bool,
        c: &Clause,
    ) -> Result<bool, Error> {
        if let Some(e) = get(0) {
            match resolve_entity(db, &e)? {
                Some(eid) => probe.e = Some(eid),
                None if strict && matches!(e, QueryValue::Vector(_)) => {
                    return Err(lookup_ref_error(&e, c));
                }
                None => return Ok(false),
            }
        }
        if let Some(a) = get(1) {
            match a.as_keyword() {
                Some(k) => probe.a = Some(k.clone()),
                None => return Ok(false),
            }
        }
        if let Some(v) = get(2) {
            let attr = probe.a.clone();
            let is_ref = attr
                .as_ref()
                .and_then(|a| db.schema().get(a))
                .is_some_and(|s| s.is_ref());
            if is_ref {
                if constant_v && !could_name_entity(&v) {
                    // Datascript: "Expected number or lookup ref for entity id, got "x"".
                    return Err(eval_err(
                        "entity id",
                        format!("expected a number or a lookup ref for an entity id, got {v}"),
                        c,
                    ));
                }
                if !could_name_entity(&v) || (!strict && v.as_keyword().is_some()) {
                    // An ident bound through :in (or by a clause) is a plain value, not
                    // resolved to its entity: Datascript answers nothing.
                    return Ok(false);
                }
            }
            match attr {
                Some(a) => match datom_value(db, &a, &v)? {
                    Some(x) => probe.v = Some(Ok(x)),
                    None if strict
                        && is_ref
                        && matches!(
                            v,
                            QueryValue::Vector(_) | QueryValue::Value(Value::Keyword(_))
                        ) =>
                    {
                        return Err(lookup_ref_error(&v, c));
                    }
                    None if strict && matches!(v, QueryValue::Vector(_)) => {
                        return Err(lookup_ref_error(&v, c));
                    }
                    None => return Ok(false),
                },
                None => match &v {
                    QueryValue::Nil => return Ok(false),
                    _ => probe.v = Some(Err(v.clone())),
                },
            }
        }
        if let Some(tx) = get(3) {
            match resolve_entity(db, &tx)? {
                Some(t) => probe.tx = Some(t),
                None => return Ok(false),
            }
        }
        if let Some(added) = get(4) {
            if added != QueryValue::bool(true) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Calls a rule with the rows of `input` (holding the bound arguments).
    fn call_rule(
        &self,
        name: &Sym,
        args: &[Term],
        input: Rel,
        src: &Sym,
        scope: &Scope,
        c: &Clause,
    ) -> Result<Rel, Error> {
        let branches = self.rules.map.get(name).ok_or_else(|| Error::UnknownRule {
            name: name.to_string(),
            clause: c.form.to_string(),
        })?;
        let bound: Vec<bool> = args
            .iter()
            .map(|t| match t {
                Term::Const(_) => true,
                Term::Var(v) => input.col(v).is_some(),
                Term::Blank => false,
            })
            .collect();
        if let Some(b) = branches.first() {
            for (i, v) in b.head.required.iter().enumerate() {
                if !bound.get(i).copied().unwrap_or(false) {
                    return Err(Error::UnboundVariable {
                        var: format!("{v} (required by rule {name})"),
                        clause: c.form.to_string(),
                    });
                }
            }
        }
        let mut demand: Vec<Vec<QueryValue>> = Vec::new();
        let mut seen = HashSet::new();
        for r in &input.rows {
            let d: Vec<QueryValue> = args
                .iter()
                .zip(&bound)
                .filter(|(_, b)| **b)
                .map(|(t, _)| match t {
                    Term::Const(k) => k.clone(),
                    Term::Var(v) => input.col(v).map_or(QueryValue::Nil, |col| r[col].clone()),
                    Term::Blank => QueryValue::Nil,
                })
                .collect();
            if seen.insert(d.clone()) {
                demand.push(d);
            }
        }
        let answers = self.solve(name, &bound, demand, src, scope, c)?;
        // The answers as a relation over the call's variables.
        let mut vars: Vec<Sym> = Vec::new();
        for t in args {
            if let Term::Var(v) = t {
                if !vars.contains(v) {
                    vars.push(v.clone());
                }
            }
        }
        let mut rows = Vec::new();
        'answers: for a in answers {
            let mut row: Vec<Option<QueryValue>> = vec![None; vars.len()];
            for (t, val) in args.iter().zip(a) {
                match t {
                    Term::Const(k) => {
                        if *k != val {
                            continue 'answers;
                        }
                    }
                    Term::Blank => {}
                    Term::Var(v) => {
                        let k = vars.iter().position(|x| x == v).unwrap_or(0);
                        match &row[k] {
                            Some(prev) if *prev != val => continue 'answers,
                            _ => row[k] = Some(val),
                        }
                    }
                }
            }
            rows.push(
                row.into_iter()
                    .map(|v| v.unwrap_or(QueryValue::Nil))
                    .collect(),
            );
        }
        let mut rel = Rel { vars, rows };
        rel.dedup();
        Ok(Rel::join(input, rel))
    }

    /// The answers of rule `name` for the demanded bound-argument values.
    fn solve(
        &self,
        name: &Sym,
        bound: &[bool],
        demand: Vec<Vec<QueryValue>>,
        src: &Sym,
        scope: &Scope,
        c: &Clause,
    ) -> Result<Vec<Vec<QueryValue>>, Error> {
        let want = demand.clone();
        // Inside a running fixpoint: record the demand, read what is known so far (or,
        // for the call a delta evaluation is about, only what is new).
        {
            let mut tables = scope.tables.borrow_mut();
            if let Some(tables) = tables.as_mut() {
                let since = match tables.delta {
                    Some((addr, since)) if addr == clause_addr(c) => since,
                    _ => 0,
                };
                let i = tables.find_or_add(name, bound, src);
                let t = &mut tables.list[i];
                let mut added = false;
                for d in demand {
                    if t.demand_set.insert(d.clone()) {
                        t.demand.push(d);
                        added = true;
                    }
                }
                let out = t.answers_for(&want, since);
                if added {
                    tables.changed = true;
                }
                return Ok(out);
            }
        }
        // A new fixpoint.
        {
            let mut fresh = Tables::default();
            let i = fresh.find_or_add(name, bound, src);
            let t = &mut fresh.list[i];
            for d in demand {
                if t.demand_set.insert(d.clone()) {
                    t.demand.push(d);
                }
            }
            *scope.tables.borrow_mut() = Some(fresh);
        }
        let result = self.fixpoint(scope, c);
        let tables = scope.tables.borrow_mut().take();
        result?;
        let tables = tables.unwrap_or_default();
        Ok(tables
            .list
            .first()
            .map(|t| t.answers_for(&want, 0))
            .unwrap_or_default())
    }

    /// Evaluates branch `b` of table `i` for `demand`, with `delta` set, and records
    /// the answers.
    #[allow(clippy::too_many_arguments)]
    fn eval_branch(
        &self,
        scope: &Scope,
        i: usize,
        b: &RuleBranch,
        bound: &[bool],
        src: &Sym,
        demand: Vec<Vec<QueryValue>>,
        delta: Option<(usize, u64)>,
    ) -> Result<(), Error> {
        let head = b.head_vars();
        let in_vars: Vec<Sym> = head
            .iter()
            .zip(bound)
            .filter(|(_, b)| **b)
            .map(|(v, _)| v.clone())
            .collect();
        let input = Rel {
            vars: in_vars,
            rows: demand,
        };
        if let Some(t) = scope.tables.borrow_mut().as_mut() {
            t.delta = delta;
        }
        let needed: HashSet<Sym> = head.iter().cloned().collect();
        let res = self.eval_body(&b.body, Ctx::of(input), src, scope, &needed);
        if let Some(t) = scope.tables.borrow_mut().as_mut() {
            t.delta = None;
        }
        let rel = res?.to_rel(&head).map_err(|v| Error::UnboundVariable {
            var: v.to_string(),
            clause: b.form.to_string(),
        })?;
        let mut tables = scope.tables.borrow_mut();
        if let Some(tables) = tables.as_mut() {
            let seq = tables.next_seq;
            let mut added = false;
            if let Some(t) = tables.list.get_mut(i) {
                for r in rel.rows {
                    added |= t.add_answer(r, seq);
                }
            }
            if added {
                tables.next_seq += 1;
                tables.changed = true;
            }
        }
        Ok(())
    }

    /// Rounds until no table gains an answer or a demand. Semi-naive: demand rows new
    /// since a branch last ran are evaluated in full; older ones only against the
    /// answers found since (once per rule call of the branch), and not at all by a
    /// branch without rule calls.
    fn fixpoint(&self, scope: &Scope, c: &Clause) -> Result<(), Error> {
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > MAX_ROUNDS {
                return Err(eval_err(
                    "rules",
                    format!("no fixpoint after {MAX_ROUNDS} rounds"),
                    c,
                ));
            }
            if let Some(t) = scope.tables.borrow_mut().as_mut() {
                t.changed = false;
            }
            let mut i = 0;
            loop {
                let snapshot = {
                    let tables = scope.tables.borrow();
                    tables.as_ref().and_then(|t| {
                        t.list.get(i).map(|tb| {
                            (
                                tb.name.clone(),
                                tb.bound.clone(),
                                tb.src.clone(),
                                tb.demand.len(),
                                tb.progress.clone(),
                                t.next_seq,
                            )
                        })
                    })
                };
                let Some((name, bound, src, demand_len, mut progress, seq_now)) = snapshot else {
                    break;
                };
                let demand_rows = |range: std::ops::Range<usize>| -> Vec<Vec<QueryValue>> {
                    scope
                        .tables
                        .borrow()
                        .as_ref()
                        .and_then(|t| t.list.get(i))
                        .and_then(|tb| tb.demand.get(range))
                        .map(<[Vec<QueryValue>]>::to_vec)
                        .unwrap_or_default()
                };
                let branches = self
                    .rules
                    .map
                    .get(&name)
                    .ok_or_else(|| Error::UnknownRule {
                        name: name.to_string(),
                        clause: c.form.to_string(),
                    })?;
                progress.resize(branches.len(), (0, 0));
                for (k, b) in branches.iter().enumerate() {
                    let (done, since) = progress[k];
                    if done < demand_len {
                        let rows = demand_rows(done..demand_len);
                        self.eval_branch(scope, i, b, &bound, &src, rows, None)?;
                    }
                    if done > 0 && since < seq_now {
                        let mut calls = Vec::new();
                        rule_calls(&b.body, &mut calls);
                        for call in calls {
                            let rows = demand_rows(0..done);
                            self.eval_branch(scope, i, b, &bound, &src, rows, Some((call, since)))?;
                        }
                    }
                    progress[k] = (demand_len, seq_now);
                }
                if let Some(t) = scope.tables.borrow_mut().as_mut() {
                    if let Some(tb) = t.list.get_mut(i) {
                        tb.progress = progress;
                    }
                }
                i += 1;
            }
            let changed = scope.tables.borrow().as_ref().is_some_and(|t| t.changed);
            if !changed {
                return Ok(());
            }
        }
    }
}

/// True for what can stand for an entity in a ref attribute's value position: an id, a
/// lookup ref, an ident keyword (or nil, a number: they just match nothing).
fn could_name_entity(v: &QueryValue) -> bool {
    match v {
        QueryValue::Value(v) => matches!(
            v,
            Value::Long(_) | Value::Double(_) | Value::Ref(_) | Value::Keyword(_)
        ),
        QueryValue::Vector(_) | QueryValue::Nil => true,
        _ => false,
    }
}

fn lookup_ref_error(v: &QueryValue, c: &Clause) -> Error {
    match v {
        QueryValue::Vector(items) if items.len() == 2 => match (&items[0], &items[1]) {
            (QueryValue::Value(Value::Keyword(a)), QueryValue::Value(val)) => {
                Error::UnknownLookupRef {
                    attr: a.clone(),
                    value: val.clone(),
                }
            }
            _ => bad_clause(c, format!("{v} is not a lookup ref")),
        },
        _ => bad_clause(c, format!("{v} names no entity")),
    }
}

fn bad_clause(c: &Clause, reason: impl Into<String>) -> Error {
    Error::QueryParse {
        clause: c.form.to_string(),
        reason: reason.into(),
    }
}

/// The pattern positions bound by the input, as (position, input column), and the input
/// rows grouped by their values in those columns.
#[allow(clippy::type_complexity)]
fn group_by_bound(
    plan: &PatternPlan,
    input: &Rel,
) -> (Vec<(usize, usize)>, HashMap<Vec<QueryValue>, Vec<usize>>) {
    let key_cols: Vec<(usize, usize)> = plan
        .slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Slot::Bound(col) => Some((i, *col)),
            _ => None,
        })
        .collect();
    let mut groups: HashMap<Vec<QueryValue>, Vec<usize>> = HashMap::new();
    for (n, r) in input.rows.iter().enumerate() {
        let key: Vec<QueryValue> = key_cols.iter().map(|(_, col)| r[*col].clone()).collect();
        groups.entry(key).or_default().push(n);
    }
    (key_cols, groups)
}

/// A data pattern against a collection of tuples.
fn pattern_coll(tuples: &[Vec<QueryValue>], terms: &[Term], input: Rel) -> Rel {
    let plan = plan_pattern(terms, &input);
    let mut vars = input.vars.clone();
    vars.extend(plan.new_vars.iter().cloned());
    let (key_cols, groups) = group_by_bound(&plan, &input);
    let mut rows = Vec::new();
    for t in tuples {
        if t.len() < terms.len() {
            continue;
        }
        let consts_ok = plan
            .slots
            .iter()
            .enumerate()
            .all(|(i, s)| !matches!(s, Slot::Const(k) if *k != t[i]));
        if !consts_ok {
            continue;
        }
        let key: Vec<QueryValue> = key_cols.iter().map(|(p, _)| t[*p].clone()).collect();
        let Some(members) = groups.get(&key) else {
            continue;
        };
        let Some(new) = plan.extract(|i| t[i].clone()) else {
            continue;
        };
        for n in members {
            let mut row = input.rows[*n].clone();
            row.extend(new.iter().cloned());
            rows.push(row);
        }
    }
    let mut rel = Rel { vars, rows };
    rel.dedup();
    rel
}

/// A data pattern against a history: for each distinct binding of the pattern's bound
/// variables, the changes of the entity (EAVT) or else the attribute (AEVT) the
/// constants and bindings name, each position then checked as the query sees it (a ref
/// reads as a long, `added` as a boolean).
fn pattern_history(
    history: &crate::History,
    terms: &[Term],
    input: Rel,
    c: &Clause,
) -> Result<Rel, Error> {
    if terms.len() > 5 {
        return Err(bad_clause(
            c,
            "a data pattern has at most 5 elements: [e a v tx added]",
        ));
    }
    let plan = plan_pattern(terms, &input);
    let mut vars = input.vars.clone();
    vars.extend(plan.new_vars.iter().cloned());
    let (key_cols, groups) = group_by_bound(&plan, &input);
    let mut rows = Vec::new();
    for (key, members) in &groups {
        // What each position must equal: a constant, or this group's binding.
        let want = |i: usize| -> Option<&QueryValue> {
            match plan.slots.get(i) {
                Some(Slot::Const(k)) => Some(k),
                Some(Slot::Bound(_)) => key_cols.iter().position(|(p, _)| *p == i).map(|k| &key[k]),
                _ => None,
            }
        };
        let e = match want(0) {
            Some(v) => match v.as_long().and_then(|e| u64::try_from(e).ok()) {
                Some(e) => Some(e),
                // Not an entity id: nothing in the history has it in that position.
                None => continue,
            },
            None => None,
        };
        let a = match want(1) {
            Some(v) => match v.as_keyword() {
                Some(a) => Some(a),
                None => continue,
            },
            None => None,
        };
        for d in history.matching(e, a, None, None) {
            let fits = (2..terms.len()).all(|i| want(i).is_none_or(|w| *w == datom_part(d, i)));
            if !fits {
                continue;
            }
            let Some(new) = plan.extract(|i| datom_part(d, i)) else {
                continue;
            };
            for n in members {
                let mut row = input.rows[*n].clone();
                row.extend(new.iter().cloned());
                rows.push(row);
            }
        }
    }
    let mut rel = Rel { vars, rows };
    rel.dedup();
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Sym {
        Sym::from(s)
    }

    fn rel(vars: &[&str], rows: &[&[i64]]) -> Rel {
        Rel {
            vars: vars.iter().map(|v| sym(v)).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|i| QueryValue::long(*i)).collect())
                .collect(),
        }
    }

    fn sorted(mut r: Rel) -> Vec<Vec<QueryValue>> {
        r.rows.sort();
        r.rows
    }

    #[test]
    fn joins_products_and_anti_joins() {
        let a = rel(&["?x", "?y"], &[&[1, 10], &[2, 20], &[3, 30]]);
        let b = rel(&["?y", "?z"], &[&[10, 100], &[10, 101], &[30, 300]]);
        let j = Rel::join(a.clone(), b.clone());
        assert_eq!(j.vars, vec![sym("?x"), sym("?y"), sym("?z")]);
        assert_eq!(
            sorted(j),
            sorted(rel(
                &["?x", "?y", "?z"],
                &[&[1, 10, 100], &[1, 10, 101], &[3, 30, 300]]
            ))
        );
        // Joining from the other side gives the same rows.
        let j2 = Rel::join(b.clone(), a.clone());
        assert_eq!(j2.project(&[sym("?x"), sym("?y"), sym("?z")]).rows.len(), 3);
        let p = Rel::join(rel(&["?a"], &[&[1], &[2]]), rel(&["?b"], &[&[5]]));
        assert_eq!(sorted(p), sorted(rel(&["?a", "?b"], &[&[1, 5], &[2, 5]])));
        let aj = Rel::anti_join(a, &rel(&["?y"], &[&[20]]));
        assert_eq!(
            sorted(aj),
            sorted(rel(&["?x", "?y"], &[&[1, 10], &[3, 30]]))
        );
        let u = Rel::union(
            rel(&["?a", "?b"], &[&[1, 2]]),
            rel(&["?b", "?a"], &[&[4, 3]]),
        );
        assert_eq!(sorted(u), sorted(rel(&["?a", "?b"], &[&[1, 2], &[3, 4]])));
    }

    #[test]
    fn contexts_keep_disjoint_relations_and_drop_unneeded_variables() {
        let mut c = Ctx::new();
        c.add(rel(&["?a"], &[&[1], &[2]]));
        c.add(rel(&["?b"], &[&[7]]));
        assert_eq!(c.rels.len(), 2);
        c.add(rel(&["?a", "?c"], &[&[1, 9], &[1, 8]]));
        assert_eq!(c.rels.len(), 2);
        let needed: HashSet<Sym> = [sym("?a"), sym("?b")].into_iter().collect();
        c.retain(&needed);
        let r = c.to_rel(&[sym("?a"), sym("?b")]).unwrap();
        assert_eq!(sorted(r), sorted(rel(&["?a", "?b"], &[&[1, 7]])));
        assert_eq!(c.to_rel(&[sym("?zz")]).unwrap_err(), sym("?zz"));
        c.add(rel(&["?d"], &[]));
        assert!(c.is_empty());
        assert!(c.to_rel(&[sym("?zz")]).unwrap().rows.is_empty());
    }

    #[test]
    fn binding_values_to_forms() {
        let form = crate::edn::parse("[[?k [?v ...]]]").unwrap();
        let b = super::super::parse::parse_binding(&form).unwrap();
        let value =
            QueryValue::from_edn(&crate::edn::parse("[[1 [2 3]] [4 []]]").unwrap()).unwrap();
        let r = bind_value(&b, &value).unwrap();
        assert_eq!(sorted(r), sorted(rel(&["?k", "?v"], &[&[1, 2], &[1, 3]])));
        let b = super::super::parse::parse_binding(&crate::edn::parse("[?a ?a]").unwrap()).unwrap();
        let same = bind_value(
            &b,
            &QueryValue::Vector(vec![QueryValue::long(1), QueryValue::long(1)]),
        )
        .unwrap();
        assert_eq!(same.rows.len(), 1);
        let diff = bind_value(
            &b,
            &QueryValue::Vector(vec![QueryValue::long(1), QueryValue::long(2)]),
        )
        .unwrap();
        assert!(diff.rows.is_empty());
        assert!(bind_value(&b, &QueryValue::long(1)).is_err());
        assert!(bind_value(&b, &QueryValue::Vector(vec![QueryValue::long(1)])).is_err());
    }
}
