//! One live query's state: the counted derivations of an incremental query (and its
//! aggregate groups), or the last result of a re-evaluated one; how a change updates it
//! and what the result's diff is.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::analyze::{analyze, Analysis, Body, Conj, FindKind, InItem, VTerm};
use super::delta::{join, unify_datom, Binding};
use super::LiveInput;
use crate::datom::Datom;
use crate::db::Db;
use crate::edn::Edn;
use crate::error::Error;
use crate::query::{Input, Query, QueryResult, QueryValue};
use crate::value::{Eid, Keyword, Value};

/// A result row (one value per `:find` element).
pub(crate) type Row = Vec<QueryValue>;

/// What a change did to a result: rows added and removed, in the format of
/// [`QueryResult::rows`].
#[derive(Debug, Default)]
pub(crate) struct RowDiff {
    pub added: Vec<Row>,
    pub removed: Vec<Row>,
}

impl RowDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The changed datoms one pattern of a query matches.
#[derive(Debug, Default)]
pub(crate) struct PatternDelta {
    pub added: Vec<Datom>,
    pub retracted: Vec<Datom>,
}

/// What the index found a change touches of one query.
#[derive(Debug, Default)]
pub(crate) struct Touch {
    /// Per pattern (incremental queries; a re-evaluated query ignores it).
    pub patterns: BTreeMap<usize, PatternDelta>,
}

fn inputs<'a>(db: &'a Db, given: &'a [LiveInput]) -> Vec<Input<'a>> {
    given.iter().map(|i| i.as_input(db)).collect()
}

/// The text of `:in` binding forms only (sources and rules left out), and the inputs
/// that go with them.
fn binding_ins<'a>(
    analysis: &'a Analysis,
    given: &'a [LiveInput],
) -> Vec<(&'a Edn, &'a LiveInput)> {
    analysis
        .ins
        .iter()
        .zip(given)
        .filter_map(|(item, input)| match item {
            InItem::Bind(form) => Some((form, input)),
            _ => None,
        })
        .collect()
}

fn var_list(names: &[String]) -> String {
    names.join(" ")
}

/// An incremental query's maintained state.
#[derive(Debug)]
pub(crate) struct Incremental {
    conj: Conj,
    /// The `:in` bindings, as partial bindings of the body (one empty binding when
    /// there are no binding inputs).
    seeds: Vec<Binding>,
    /// Predicates and functions run on complete pattern bindings: `:in [[pattern and
    /// input vars]]`, finds every variable.
    filter: Option<Query>,
    /// The variables a filter query's relation input holds, and those it finds.
    filter_in: Vec<usize>,
    filter_out: Vec<usize>,
    /// The slots of the distinct `:find`/`:with` variables: a derivation's key.
    key_slots: Vec<usize>,
    /// For each `:find` element, its column in the key.
    find_cols: Vec<usize>,
    /// Derivations per key (only keys with a positive count).
    counts: BTreeMap<Row, i64>,
    /// Aggregates: the query run on the members of touched groups, which key columns
    /// group, and per group its members and row.
    agg: Option<Aggregates>,
}

#[derive(Debug)]
struct Aggregates {
    query: Query,
    /// Scalar inputs the aggregate arguments name, in the query's `:in` order after
    /// the members relation.
    args: Vec<LiveInput>,
    /// Key columns of the grouping `:find` elements.
    group_cols: Vec<usize>,
    /// Row positions of the grouping elements.
    group_pos: Vec<usize>,
    groups: BTreeMap<Row, (BTreeSet<Row>, Row)>,
}

/// A live query's state.
#[derive(Debug)]
pub(crate) struct QueryState {
    pub analysis: Analysis,
    query: Query,
    given: Vec<LiveInput>,
    kind: Kind,
    /// A failed update left the state unknown: the next change re-evaluates it.
    pub stale: bool,
}

#[derive(Debug)]
enum Kind {
    Incremental(Box<Incremental>),
    Reeval(QueryResult),
}

/// Counts of what one query's update did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Work {
    pub incremental: bool,
    pub reevaluated: bool,
}

impl QueryState {
    /// Analyses and evaluates `text` on `db`.
    pub fn new(db: &Db, text: &str, given: Vec<LiveInput>) -> Result<QueryState, Error> {
        let query = Query::parse(text)?;
        let mut analysis = analyze(text, &[])?;
        // Rules come as `%` inputs (rules or EDN text): their patterns' attributes
        // count for a re-evaluated query.
        let rules: Vec<&str> = analysis
            .ins
            .iter()
            .zip(&given)
            .filter_map(|(item, input)| match (item, input) {
                (InItem::Rules, LiveInput::Rules(r) | LiveInput::Edn(r)) => Some(r.as_str()),
                _ => None,
            })
            .collect();
        if !rules.is_empty() {
            analysis = analyze(text, &rules)?;
        }
        let mut state = QueryState {
            analysis,
            query,
            given,
            kind: Kind::Reeval(QueryResult::Relation(Vec::new())),
            stale: false,
        };
        state.kind = state.evaluate(db)?;
        Ok(state)
    }

    /// How this query is maintained, for docs and stats: `None` when incremental,
    /// else why it is re-evaluated.
    pub fn reeval_reason(&self) -> Option<&str> {
        match &self.analysis.body {
            Body::Incremental(_) => None,
            Body::Reeval { reason, .. } => Some(reason),
        }
    }

    fn evaluate(&self, db: &Db) -> Result<Kind, Error> {
        match &self.analysis.body {
            Body::Incremental(conj) => Ok(Kind::Incremental(Box::new(self.initial(db, conj)?))),
            Body::Reeval { .. } => Ok(Kind::Reeval(self.query.run(&inputs(db, &self.given))?)),
        }
    }

    fn initial(&self, db: &Db, conj: &Conj) -> Result<Incremental, Error> {
        let a = &self.analysis;
        let n = conj.vars.len();
        let slot = |name: &str| conj.vars.iter().position(|v| v == name);
        // Seeds: the `:in` bindings as a relation.
        let binds = binding_ins(a, &self.given);
        let in_names: Vec<String> = conj.in_vars.iter().map(|i| conj.vars[*i].clone()).collect();
        let seeds = if binds.is_empty() {
            vec![vec![None; n]]
        } else {
            let forms: Vec<String> = binds.iter().map(|(f, _)| f.to_string()).collect();
            let q = Query::parse(&format!(
                "[:find {} :in {}]",
                if in_names.is_empty() {
                    "?__live_none".to_owned()
                } else {
                    var_list(&in_names)
                },
                forms.join(" ")
            ));
            match q {
                Ok(q) if !in_names.is_empty() => {
                    let ins: Vec<Input<'_>> = binds.iter().map(|(_, i)| i.as_input(db)).collect();
                    q.run(&ins)?
                        .rows()
                        .into_iter()
                        .map(|row| {
                            let mut b = vec![None; n];
                            for (i, v) in conj.in_vars.iter().zip(row) {
                                b[*i] = Some(v);
                            }
                            b
                        })
                        .collect()
                }
                _ => vec![vec![None; n]],
            }
        };
        let key_names = a.distinct_vars();
        let key_slots: Vec<usize> = key_names.iter().filter_map(|v| slot(v)).collect();
        let find_cols: Vec<usize> = a
            .find
            .iter()
            .filter_map(|e| key_names.iter().position(|k| *k == e.var))
            .collect();
        let filter_in: Vec<usize> = (0..conj.pattern_vars)
            .chain(
                conj.in_vars
                    .iter()
                    .copied()
                    .filter(|i| *i >= conj.pattern_vars),
            )
            .collect();
        let filter_out: Vec<usize> = (0..n).collect();
        let filter = if conj.filters.is_empty() {
            None
        } else {
            let ins: Vec<String> = filter_in.iter().map(|i| conj.vars[*i].clone()).collect();
            let outs: Vec<String> = filter_out.iter().map(|i| conj.vars[*i].clone()).collect();
            let wheres: Vec<String> = conj.filters.iter().map(ToString::to_string).collect();
            Some(Query::parse(&format!(
                "[:find {} :in [[{}]] :where {}]",
                var_list(&outs),
                var_list(&ins),
                wheres.join(" ")
            ))?)
        };
        let agg = if a.has_agg() {
            let mut arg_names: Vec<String> = Vec::new();
            let mut args = Vec::new();
            for e in &a.find {
                for v in e.agg.iter().flatten() {
                    if arg_names.contains(v) {
                        continue;
                    }
                    let input =
                        a.ins
                            .iter()
                            .zip(&self.given)
                            .find_map(|(item, input)| match item {
                                InItem::Bind(Edn::Symbol(s)) if s == v => Some(input.clone()),
                                _ => None,
                            });
                    let Some(input) = input else {
                        return Err(Error::QueryInput {
                            reason: format!("aggregate argument {v} must be a scalar input"),
                        });
                    };
                    arg_names.push(v.clone());
                    args.push(input);
                }
            }
            let finds: Vec<String> = a.find.iter().map(|e| e.form.to_string()).collect();
            let with = if a.with.is_empty() {
                String::new()
            } else {
                format!(":with {}", var_list(&a.with))
            };
            let query = Query::parse(&format!(
                "[:find {} {with} :in [[{}]] {}]",
                finds.join(" "),
                var_list(&key_names),
                var_list(&arg_names)
            ))?;
            let group_pos: Vec<usize> = a
                .find
                .iter()
                .enumerate()
                .filter(|(_, e)| e.agg.is_none())
                .map(|(i, _)| i)
                .collect();
            let group_cols = group_pos.iter().map(|p| find_cols[*p]).collect();
            Some(Aggregates {
                query,
                args,
                group_cols,
                group_pos,
                groups: BTreeMap::new(),
            })
        } else {
            None
        };
        let mut inc = Incremental {
            conj: conj.clone(),
            seeds,
            filter,
            filter_in,
            filter_out,
            key_slots,
            find_cols,
            counts: BTreeMap::new(),
            agg,
        };
        // Every derivation, found by the engine.
        let all: Vec<String> = conj.vars.clone();
        let mut in_forms: Vec<String> = Vec::new();
        for item in &a.ins {
            in_forms.push(match item {
                InItem::Src(s) => s.clone(),
                InItem::Rules => "%".into(),
                InItem::Bind(f) => f.to_string(),
            });
        }
        let clauses: Vec<String> = conj.clauses.iter().map(ToString::to_string).collect();
        let derivations = Query::parse(&format!(
            "[:find {} :in {} :where {}]",
            var_list(&all),
            in_forms.join(" "),
            clauses.join(" ")
        ))?;
        let rows = if clauses.is_empty() {
            Vec::new()
        } else {
            derivations.run(&inputs(db, &self.given))?.rows()
        };
        let mut keys: BTreeMap<Row, i64> = BTreeMap::new();
        for row in rows {
            let key: Row = inc.key_slots.iter().map(|s| row[*s].clone()).collect();
            *keys.entry(key).or_default() += 1;
        }
        let mut touched = BTreeSet::new();
        for (key, c) in keys {
            inc.counts.insert(key.clone(), c);
            touched.insert(key);
        }
        if inc.agg.is_some() {
            let mut diff = RowDiff::default();
            inc.regroup(db, touched.into_iter().collect(), Vec::new(), &mut diff)?;
        }
        Ok(inc)
    }

    /// The current result, shaped as the query engine shapes it.
    pub fn result(&self) -> QueryResult {
        match &self.kind {
            Kind::Reeval(r) => r.clone(),
            Kind::Incremental(inc) => self.shape(inc.rows()),
        }
    }

    /// Whether duplicates are kept (a `:with` without aggregates).
    fn bag(&self) -> bool {
        !self.analysis.with.is_empty() && !self.analysis.has_agg()
    }

    fn to_map(&self, row: &Row) -> QueryValue {
        let Some(r) = &self.analysis.returns else {
            return QueryValue::Nil;
        };
        QueryValue::Map(
            row.iter()
                .enumerate()
                .map(|(i, v)| {
                    let name = r.names.get(i).map_or("", String::as_str);
                    let key = match r.kind.as_str() {
                        "keys" => Keyword::parse(name).map_or_else(
                            |_| QueryValue::string(name),
                            |k| QueryValue::Value(Value::Keyword(k)),
                        ),
                        "strs" => QueryValue::string(name),
                        _ => QueryValue::Symbol(name.into()),
                    };
                    (key, v.clone())
                })
                .collect(),
        )
    }

    fn shape(&self, mut rows: Vec<Row>) -> QueryResult {
        rows.sort();
        if !self.bag() {
            rows.dedup();
        }
        let returns = self.analysis.returns.is_some();
        match (self.analysis.find_kind, returns) {
            (FindKind::Rel, true) => {
                let mut maps: Vec<QueryValue> = rows.iter().map(|r| self.to_map(r)).collect();
                maps.sort();
                maps.dedup();
                QueryResult::Maps(maps)
            }
            (FindKind::Tuple, true) => QueryResult::Map(rows.first().map(|r| self.to_map(r))),
            (FindKind::Rel, false) if self.bag() => QueryResult::Bag(rows),
            (FindKind::Rel, false) => QueryResult::Relation(rows),
            (FindKind::Coll, _) => QueryResult::Collection(
                rows.into_iter()
                    .filter_map(|r| r.into_iter().next())
                    .collect(),
            ),
            (FindKind::Tuple, false) => QueryResult::Tuple(rows.into_iter().next()),
            (FindKind::Scalar, _) => {
                QueryResult::Scalar(rows.into_iter().next().and_then(|r| r.into_iter().next()))
            }
        }
    }

    /// A `:find` row in the format of [`QueryResult::rows`].
    fn present(&self, row: Row) -> Row {
        if self.analysis.returns.is_none() {
            return row;
        }
        match self.to_map(&row) {
            QueryValue::Map(m) => m.into_values().collect(),
            other => vec![other],
        }
    }

    /// True when the result is one row picked from many (scalar, tuple, map).
    fn single(&self) -> bool {
        matches!(self.analysis.find_kind, FindKind::Scalar | FindKind::Tuple)
    }

    /// Applies a change; the result's diff.
    pub fn update(
        &mut self,
        before: &Db,
        after: &Db,
        touch: &Touch,
        work: &mut Work,
    ) -> Result<RowDiff, Error> {
        if self.stale {
            self.kind = self.evaluate(after)?;
            self.stale = false;
            work.reevaluated = true;
            return Ok(RowDiff {
                added: self.result().rows(),
                removed: Vec::new(),
            });
        }
        let single_before = if self.single() {
            Some(self.result().rows())
        } else {
            None
        };
        let diff = match &mut self.kind {
            Kind::Reeval(old) => {
                work.reevaluated = true;
                let new = self.query.run(&inputs(after, &self.given))?;
                let diff = multiset_diff(old.rows(), new.rows());
                *old = new;
                diff
            }
            Kind::Incremental(inc) => {
                work.incremental = true;
                let diff = inc.apply(before, after, touch)?;
                RowDiff {
                    added: diff.added,
                    removed: diff.removed,
                }
            }
        };
        if let Some(old) = single_before {
            return Ok(multiset_diff(old, self.result().rows()));
        }
        if matches!(self.kind, Kind::Reeval(_)) {
            return Ok(diff);
        }
        let mut out = RowDiff {
            added: diff.added.into_iter().map(|r| self.present(r)).collect(),
            removed: diff.removed.into_iter().map(|r| self.present(r)).collect(),
        };
        if !self.bag() {
            // A map result is a set of maps; rows were distinct before projection.
            out = multiset_diff(out.removed, out.added);
        }
        Ok(out)
    }
}

/// The diff between two multisets of rows.
fn multiset_diff(mut old: Vec<Row>, mut new: Vec<Row>) -> RowDiff {
    old.sort();
    new.sort();
    let mut diff = RowDiff::default();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                diff.removed.push(a.clone());
                i += 1;
            }
            (Some(_), Some(b)) => {
                diff.added.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                diff.removed.push(a.clone());
                i += 1;
            }
            (None, Some(b)) => {
                diff.added.push(b.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    diff
}

impl Incremental {
    /// The `:find` rows (before shaping).
    fn rows(&self) -> Vec<Row> {
        match &self.agg {
            Some(agg) => agg.groups.values().map(|(_, row)| row.clone()).collect(),
            None => self.counts.keys().map(|k| self.project(k)).collect(),
        }
    }

    fn project(&self, key: &Row) -> Row {
        self.find_cols.iter().map(|c| key[*c].clone()).collect()
    }

    /// The signed derivations a change adds and removes: complete bindings of the
    /// pattern and input variables.
    fn derivations(
        &self,
        before: &Db,
        after: &Db,
        touch: &Touch,
    ) -> Result<(Vec<Binding>, Vec<Binding>), Error> {
        let (mut plus, mut minus) = (Vec::new(), Vec::new());
        let n = self.conj.patterns.len();
        for (&i, delta) in &touch.patterns {
            let dbs = move |j: usize| if j < i { after } else { before };
            for (datoms, out) in [(&delta.added, &mut plus), (&delta.retracted, &mut minus)] {
                for d in datoms {
                    for seed in &self.seeds {
                        let mut binding = seed.clone();
                        if unify_datom(&self.conj.patterns[i], d, &mut binding).is_none() {
                            continue;
                        }
                        let mut remaining: Vec<usize> = (0..n).filter(|j| *j != i).collect();
                        join(&dbs, &self.conj, &mut remaining, &mut binding, &mut |b| {
                            out.push(b.clone());
                            Ok(())
                        })?;
                    }
                }
            }
        }
        Ok((plus, minus))
    }

    /// Runs the predicates and functions on complete pattern bindings: the full
    /// bindings (function outputs bound) they keep.
    fn filtered(&self, bindings: Vec<Binding>) -> Result<Vec<Binding>, Error> {
        let Some(filter) = &self.filter else {
            return Ok(bindings);
        };
        if bindings.is_empty() {
            return Ok(bindings);
        }
        let rel: Vec<Row> = bindings
            .iter()
            .map(|b| {
                self.filter_in
                    .iter()
                    .map(|i| b[*i].clone().unwrap_or(QueryValue::Nil))
                    .collect()
            })
            .collect();
        // One relation per derivation would be dedup'd by the engine; derivations are
        // distinct bindings, so nothing is lost.
        let result = filter.run(&[Input::Relation(rel)])?;
        Ok(result
            .rows()
            .into_iter()
            .map(|row| {
                let mut b = vec![None; self.conj.vars.len()];
                for (i, v) in self.filter_out.iter().zip(row) {
                    b[*i] = Some(v);
                }
                b
            })
            .collect())
    }

    fn key(&self, b: &Binding) -> Row {
        self.key_slots
            .iter()
            .map(|s| b[*s].clone().unwrap_or(QueryValue::Nil))
            .collect()
    }

    /// Applies a change: the `:find` rows it added and removed.
    fn apply(&mut self, before: &Db, after: &Db, touch: &Touch) -> Result<RowDiff, Error> {
        let (plus, minus) = self.derivations(before, after, touch)?;
        let plus = self.filtered(plus)?;
        let minus = self.filtered(minus)?;
        let mut change: HashMap<Row, i64> = HashMap::new();
        for b in &plus {
            *change.entry(self.key(b)).or_default() += 1;
        }
        for b in &minus {
            *change.entry(self.key(b)).or_default() -= 1;
        }
        let mut appeared = Vec::new();
        let mut gone = Vec::new();
        for (key, delta) in change {
            if delta == 0 {
                continue;
            }
            let old = self.counts.get(&key).copied().unwrap_or(0);
            let new = old + delta;
            if new < 0 {
                return Err(Error::QueryEval {
                    function: "live".into(),
                    reason: format!("derivation count of {key:?} fell below zero"),
                    clause: String::new(),
                });
            }
            if new == 0 {
                self.counts.remove(&key);
            } else {
                self.counts.insert(key.clone(), new);
            }
            match (old > 0, new > 0) {
                (false, true) => appeared.push(key),
                (true, false) => gone.push(key),
                _ => {}
            }
        }
        let mut diff = RowDiff::default();
        if self.agg.is_some() {
            self.regroup(after, appeared, gone, &mut diff)?;
        } else {
            diff.added = appeared.iter().map(|k| self.project(k)).collect();
            diff.removed = gone.iter().map(|k| self.project(k)).collect();
        }
        Ok(diff)
    }

    /// Moves keys into and out of their aggregate groups and recomputes the touched
    /// groups' rows.
    fn regroup(
        &mut self,
        db: &Db,
        appeared: Vec<Row>,
        gone: Vec<Row>,
        diff: &mut RowDiff,
    ) -> Result<(), Error> {
        let Some(agg) = &mut self.agg else {
            return Ok(());
        };
        let group_of = |k: &Row| -> Row { agg.group_cols.iter().map(|c| k[*c].clone()).collect() };
        let mut touched: BTreeSet<Row> = BTreeSet::new();
        let mut old_rows: BTreeMap<Row, Option<Row>> = BTreeMap::new();
        for (k, add) in appeared
            .into_iter()
            .map(|k| (k, true))
            .chain(gone.into_iter().map(|k| (k, false)))
        {
            let g = group_of(&k);
            old_rows
                .entry(g.clone())
                .or_insert_with(|| agg.groups.get(&g).map(|(_, r)| r.clone()));
            let entry = agg
                .groups
                .entry(g.clone())
                .or_insert_with(|| (BTreeSet::new(), Vec::new()));
            if add {
                entry.0.insert(k);
            } else {
                entry.0.remove(&k);
            }
            touched.insert(g);
        }
        let mut members: Vec<Row> = Vec::new();
        for g in &touched {
            match agg.groups.get(g) {
                Some((m, _)) if !m.is_empty() => members.extend(m.iter().cloned()),
                _ => {
                    agg.groups.remove(g);
                }
            }
        }
        if !members.is_empty() {
            let mut ins = vec![Input::Relation(members)];
            ins.extend(agg.args.iter().map(|a| a.as_input(db)));
            for row in agg.query.run(&ins)?.rows() {
                let g: Row = agg.group_pos.iter().map(|p| row[*p].clone()).collect();
                if let Some(entry) = agg.groups.get_mut(&g) {
                    entry.1 = row;
                }
            }
        }
        for (g, old) in old_rows {
            let new = agg.groups.get(&g).map(|(_, r)| r.clone());
            if old != new {
                diff.removed.extend(old);
                diff.added.extend(new);
            }
        }
        Ok(())
    }

    /// The value constants of pattern `p` and those its variables take from a single
    /// seed: what the interest index can key it by.
    pub fn pattern_consts(&self, p: usize) -> (Option<u64>, Option<&QueryValue>) {
        let pattern = &self.conj.patterns[p];
        let seed = match self.seeds.as_slice() {
            [one] => Some(one),
            _ => None,
        };
        let e = match &pattern.e {
            super::analyze::ETerm::Const(e) => Some(*e),
            super::analyze::ETerm::Var(i) => match seed.and_then(|s| s[*i].as_ref()) {
                Some(QueryValue::Value(Value::Long(n))) => u64::try_from(*n).ok(),
                _ => None,
            },
        };
        let v = match &pattern.v {
            VTerm::Const(q) => Some(q),
            VTerm::Var(i) => seed.and_then(|s| s[*i].as_ref()),
        };
        (e, v)
    }
}

/// The most entities a variable may be narrowed to for the index: beyond it, its
/// patterns are indexed by attribute alone.
const DETERMINED_MAX: usize = 64;

/// A variable's possible entities on the current db, and the patterns (a bit each)
/// that narrowing used.
type Determined = Option<(BTreeSet<Eid>, u64)>;

impl Incremental {
    /// The entities each variable can take on `db`, where patterns narrow it from a
    /// constant: a unique attribute's constant value (`[?x :name "Ann"]`), a ref
    /// attribute followed forward from a narrowed entity (`[?a :friend ?x]`) or back
    /// (`[?x :friend ?b]`). Any derivation on `db` binds a narrowed variable to one of
    /// its entities.
    fn determined(&self, db: &Db) -> Result<Vec<Determined>, Error> {
        let conj = &self.conj;
        let mut out: Vec<Determined> = vec![None; conj.vars.len()];
        if conj.patterns.len() > 63 {
            return Ok(out);
        }
        if let [seed] = self.seeds.as_slice() {
            for (i, v) in seed.iter().enumerate() {
                if let Some(QueryValue::Value(Value::Long(n))) = v {
                    if let Ok(e) = u64::try_from(*n) {
                        out[i] = Some((BTreeSet::from([e]), 0));
                    }
                }
            }
        }
        let is_ref = |a: &Keyword| db.schema().get(a).is_some_and(|s| s.is_ref());
        loop {
            let mut changed = false;
            for (pi, p) in conj.patterns.iter().enumerate() {
                let bit = 1u64 << pi;
                let super::analyze::ATerm::Const(a) = &p.a else {
                    continue;
                };
                let e_known: Determined = match &p.e {
                    super::analyze::ETerm::Const(e) => Some((BTreeSet::from([*e]), 0)),
                    super::analyze::ETerm::Var(x) => out[*x].clone(),
                };
                match (&p.e, &p.v, &e_known) {
                    // A unique attribute's constant value names at most one entity.
                    (super::analyze::ETerm::Var(x), VTerm::Const(q), None)
                        if db.schema().get(a).is_some_and(|s| s.unique.is_some()) =>
                    {
                        let Some(v) = index_value(db, a, q) else {
                            continue;
                        };
                        let mut set = BTreeSet::new();
                        for d in db.datoms(
                            crate::datom::IndexKind::Avet,
                            &[
                                crate::datom::Component::A(a.clone()),
                                crate::datom::Component::V(v),
                            ],
                        )? {
                            set.insert(d?.e);
                        }
                        out[*x] = Some((set, bit));
                        changed = true;
                    }
                    // Forward along a ref attribute.
                    (_, VTerm::Var(y), Some((es, chain))) if out[*y].is_none() && is_ref(a) => {
                        let mut set = BTreeSet::new();
                        for e in es {
                            for d in db.entity_attr(*e, a)? {
                                if let Value::Ref(r) = d.v {
                                    set.insert(r);
                                }
                            }
                        }
                        if set.len() <= DETERMINED_MAX {
                            out[*y] = Some((set, chain | bit));
                            changed = true;
                        }
                    }
                    // Back along a ref attribute.
                    (super::analyze::ETerm::Var(x), VTerm::Var(y), None) if is_ref(a) => {
                        let Some((ys, chain)) = out[*y].clone() else {
                            continue;
                        };
                        let mut set = BTreeSet::new();
                        for y in ys {
                            for d in db.datoms(
                                crate::datom::IndexKind::Avet,
                                &[
                                    crate::datom::Component::A(a.clone()),
                                    crate::datom::Component::V(Value::Ref(y)),
                                ],
                            )? {
                                set.insert(d?.e);
                                if set.len() > DETERMINED_MAX {
                                    break;
                                }
                            }
                        }
                        if set.len() <= DETERMINED_MAX {
                            out[*x] = Some((set, chain | bit));
                            changed = true;
                        }
                    }
                    _ => {}
                }
            }
            if !changed {
                return Ok(out);
            }
        }
    }

    /// The changed datoms each pattern matches (by its constants).
    fn route(&self, added: &[Datom], retracted: &[Datom]) -> BTreeMap<usize, PatternDelta> {
        let mut out: BTreeMap<usize, PatternDelta> = BTreeMap::new();
        let n = self.conj.vars.len();
        for (p, pattern) in self.conj.patterns.iter().enumerate() {
            for (datoms, is_added) in [(added, true), (retracted, false)] {
                for d in datoms {
                    let mut b = vec![None; n];
                    if unify_datom(pattern, d, &mut b).is_some() {
                        let delta = out.entry(p).or_default();
                        if is_added {
                            delta.added.push(d.clone());
                        } else {
                            delta.retracted.push(d.clone());
                        }
                    }
                }
            }
        }
        out
    }
}

impl QueryState {
    /// What a change touching this query touches of it: every pattern's matching
    /// datoms (not only those the index routed: a change can widen what a narrowed
    /// pattern is indexed by), or the whole query.
    pub fn route(&self, added: &[Datom], retracted: &[Datom]) -> Touch {
        match &self.kind {
            Kind::Incremental(inc) if !self.stale => Touch {
                patterns: inc.route(added, retracted),
            },
            _ => Touch::default(),
        }
    }

    /// The patterns of an incremental query, with their attribute (when constant) and
    /// the entities and value the index can key them by; or the whole query's
    /// attributes.
    pub fn interests(&self, db: &Db) -> Result<Interests, Error> {
        match (&self.kind, &self.analysis.body) {
            (Kind::Incremental(inc), Body::Incremental(conj)) if !self.stale => {
                let determined = inc.determined(db)?;
                let mut out = Vec::new();
                for (p, pattern) in conj.patterns.iter().enumerate() {
                    let attr = match &pattern.a {
                        super::analyze::ATerm::Const(a) => Some(a.clone()),
                        super::analyze::ATerm::Var(_) => None,
                    };
                    let (e, v) = inc.pattern_consts(p);
                    let v = match (&attr, v) {
                        (Some(a), Some(q)) => index_value(db, a, q),
                        _ => None,
                    };
                    if e.is_none() && v.is_none() {
                        if let super::analyze::ETerm::Var(x) = &pattern.e {
                            if let Some((es, chain)) = &determined[*x] {
                                if chain & (1u64 << p) == 0 {
                                    // Only these entities can match; none: nothing
                                    // can until a narrowing pattern changes.
                                    out.extend(
                                        es.iter().map(|e| (p, (attr.clone(), Some(*e), None))),
                                    );
                                    continue;
                                }
                            }
                        }
                    }
                    out.push((p, (attr, e, v)));
                }
                Ok(Interests::Patterns(out))
            }
            (_, Body::Reeval { attrs, .. }) => Ok(Interests::Whole(attrs.clone())),
            _ => Ok(Interests::Whole(None)),
        }
    }
}

/// The datom value a constant stands for under `attr`, for the index (no lookups: a
/// value that would need one is not indexed by value).
fn index_value(db: &Db, attr: &Keyword, q: &QueryValue) -> Option<Value> {
    if db.schema().get(attr).is_some_and(|s| s.is_ref()) {
        return q
            .as_long()
            .and_then(|n| u64::try_from(n).ok())
            .map(Value::Ref);
    }
    q.to_datom_value()
}

/// What a query asks the interest index for.
pub(crate) enum Interests {
    /// Per pattern (a pattern may come several times): attribute (`None`: any),
    /// entity, value.
    Patterns(Vec<(usize, super::index::Keyed)>),
    /// The whole query, on these attributes (`None`: any).
    Whole(Option<BTreeSet<Keyword>>),
}
