//! Star joins: the data patterns of one entity variable, `[?e :a1 v1] [?e :a2 v2] …`,
//! evaluated together, entity by entity.
//!
//! Patterns sharing an unbound entity variable and naming constant attributes form a
//! *star*. Its members are ordered by estimated cardinality (see [`super::super::scan`]:
//! the counts of the index trees, and for a constant value of an attribute not kept in
//! AVET, the fraction of a sample of the attribute's datoms that hold it), so the order
//! the clauses are written in does not matter. The cheapest member (the *driver*) is
//! read once, through AVET where the attribute is kept there and the value is known,
//! else as a scan of the attribute in AEVT comparing packed values: it gives the
//! candidate entities, in entity order. Each further member then narrows (or extends,
//! binding a variable) the candidates, by whichever read is cheaper: one EAVT seek per
//! candidate entity, or one pass over the attribute in AEVT merged with the sorted
//! candidates. Once no candidate is left the star stops: the later members are not read
//! at all.
//!
//! A member's value may be a constant, `_`, a new variable, or a variable bound earlier
//! (whose values then filter, and the star's result joins on it).

use std::collections::HashSet;

use super::{Clause, ClauseKind, Ctx, Engine, Probe, Rel, Term};
use crate::datom::{Component, DatomRef, IndexKind};
use crate::db::Db;
use crate::error::Error;
use crate::query::parse::Sym;
use crate::query::scan::{count_prefix, scan};
use crate::query::value::QueryValue;
use crate::value::{Eid, Keyword, Value};

/// Datoms sampled to estimate how many of an attribute's datoms hold a value.
const SAMPLE: usize = 128;
/// What one EAVT seek costs, in datoms read by a scan (a root-to-leaf descent and a
/// linear seek in a leaf of about 64 datoms).
const SEEK_COST: u64 = 40;

/// What a member asks of its value.
#[derive(Debug)]
enum Want {
    /// Any value (`_`, or no value term).
    Any,
    /// This value.
    Is(Value),
    /// Nothing can match (a constant that is no value of the attribute).
    Never,
    /// Binds a new variable.
    New(Sym),
    /// One of the values the bound variable holds; the variable is also output.
    OneOf(Sym, HashSet<Value>),
}

impl Want {
    fn accepts(&self, v: &DatomRef<'_>) -> bool {
        match self {
            Want::Any | Want::New(_) => true,
            Want::Never => false,
            Want::Is(x) => v.v == x.borrowed(),
            Want::OneOf(_, set) => {
                if set.len() == 1 {
                    set.iter().next().is_some_and(|x| v.v == x.borrowed())
                } else {
                    set.contains(&v.v.to_value())
                }
            }
        }
    }

    /// The variable this member outputs.
    fn var(&self) -> Option<&Sym> {
        match self {
            Want::New(v) | Want::OneOf(v, _) => Some(v),
            _ => None,
        }
    }
}

/// One pattern of a star.
pub(super) struct Member<'c> {
    clause: &'c Clause,
    attr: Keyword,
    want: Want,
    est: u64,
}

/// A star ready to run: its entity variable and members.
pub(super) struct Star<'c> {
    pub(super) var: Sym,
    pub(super) members: Vec<Member<'c>>,
    /// The indexes (into the clause list) of the members.
    pub(super) clauses: Vec<usize>,
}

/// The datoms an entity has for one member: none, or the values to bind.
type Found = Vec<QueryValue>;

/// A star's rows so far: an entity and the values its members bound, by entity.
type Rows = Vec<(Eid, Vec<QueryValue>)>;

impl<'a> Engine<'a> {
    /// The star of clause `first` (a pattern whose entity is an unbound variable), with
    /// every other pending pattern that can join it; `None` when `first` cannot lead
    /// one.
    pub(super) fn star<'c>(
        &self,
        clauses: &'c [Clause],
        pending: &[usize],
        first: usize,
        ctx: &Ctx,
        default_src: &Sym,
    ) -> Result<Option<(Star<'c>, &'a Db)>, Error> {
        let ClauseKind::Pattern { src, terms } = &clauses[first].kind else {
            return Ok(None);
        };
        let Some(Term::Var(var)) = terms.first() else {
            return Ok(None);
        };
        if ctx.is_bound(var) {
            return Ok(None);
        }
        let src_name = src.as_ref().unwrap_or(default_src);
        let Some(super::Source::Db(db)) = self.sources.get(src_name) else {
            return Ok(None);
        };
        let db: &'a Db = db;
        let mut star = Star {
            var: var.clone(),
            members: Vec::new(),
            clauses: Vec::new(),
        };
        let mut claimed: HashSet<Sym> = HashSet::new();
        claimed.insert(var.clone());
        let order = std::iter::once(first).chain(pending.iter().copied().filter(|i| *i != first));
        for i in order {
            let c = &clauses[i];
            let ClauseKind::Pattern { src, terms } = &c.kind else {
                continue;
            };
            if src.as_ref().unwrap_or(default_src) != src_name
                || !(2..=3).contains(&terms.len())
                || !matches!(terms.first(), Some(Term::Var(v)) if v == var)
            {
                continue;
            }
            let Some(Term::Const(a)) = terms.get(1) else {
                continue;
            };
            if a.as_keyword().is_none() {
                continue;
            }
            let want = match terms.get(2) {
                None | Some(Term::Blank) => Some(Want::Any),
                Some(Term::Const(_)) => {
                    let mut p = Probe::default();
                    let get = |k: usize| match terms.get(k) {
                        Some(Term::Const(x)) if k > 0 => Some(x.clone()),
                        _ => None,
                    };
                    match self.fill_probe(db, &mut p, &get, true, true, c) {
                        Ok(true) => match p.v {
                            Some(Ok(v)) => Some(Want::Is(v)),
                            _ => continue,
                        },
                        Ok(false) => Some(Want::Never),
                        // Left to the general path, which raises it when (and if) the
                        // clause runs.
                        Err(_) => continue,
                    }
                }
                Some(Term::Var(v)) if claimed.contains(v) => None,
                Some(Term::Var(v)) if ctx.is_bound(v) => self.one_of(db, ctx, a, v, c)?,
                Some(Term::Var(v)) => Some(Want::New(v.clone())),
            };
            let Some(want) = want else { continue };
            if let Some(v) = want.var() {
                claimed.insert(v.clone());
            }
            let attr = a.as_keyword().cloned().unwrap_or_else(|| Keyword::new(""));
            star.members.push(Member {
                clause: c,
                attr,
                want,
                est: 0,
            });
            star.clauses.push(i);
        }
        if star.members.is_empty() {
            return Ok(None);
        }
        Ok(Some((star, db)))
    }

    /// The filter of a member whose value is the bound variable `v`: the datom values
    /// its bindings stand for. `None` (not a member) where a binding would not read back
    /// as itself from a datom (a lookup ref, an ident), which the general path resolves.
    fn one_of(
        &self,
        db: &Db,
        ctx: &Ctx,
        attr: &QueryValue,
        v: &Sym,
        c: &Clause,
    ) -> Result<Option<Want>, Error> {
        let Some(rel) = ctx.rel_of(v) else {
            return Ok(None);
        };
        let Some(col) = rel.col(v) else {
            return Ok(None);
        };
        let constant_v = self.in_scalars.contains(v);
        let mut set = HashSet::new();
        let mut seen: HashSet<&QueryValue> = HashSet::new();
        for row in &rel.rows {
            let q = &row[col];
            if !seen.insert(q) {
                continue;
            }
            let mut p = Probe::default();
            let get = |k: usize| match k {
                1 => Some(attr.clone()),
                2 => Some(q.clone()),
                _ => None,
            };
            match self.fill_probe(db, &mut p, &get, false, constant_v, c) {
                Ok(true) => {}
                Ok(false) => continue,
                // Left to the general path, which raises it when the clause runs.
                Err(_) => return Ok(None),
            }
            let Some(Ok(value)) = p.v else {
                return Ok(None);
            };
            if QueryValue::from_value(value.clone()) != *q {
                return Ok(None);
            }
            set.insert(value);
        }
        Ok(Some(Want::OneOf(v.clone(), set)))
    }

    /// Estimates each member's matches and orders the members, cheapest first.
    fn order_members(&self, db: &Db, members: &mut [Member<'_>]) -> Result<(), Error> {
        for m in members.iter_mut() {
            let attr = [Component::A(m.attr.clone())];
            let count = count_prefix(db, IndexKind::Aevt, &attr);
            let avet = db.schema().in_avet(&m.attr);
            m.est = match &m.want {
                Want::Never => 0,
                Want::Any | Want::New(_) => count,
                Want::Is(v) if avet => avet_count(db, &m.attr, std::iter::once(v)),
                Want::OneOf(_, set) if avet && set.len() <= 64 => {
                    avet_count(db, &m.attr, set.iter())
                }
                want => {
                    let (mut seen, mut hits) = (0u64, 0u64);
                    scan(db, IndexKind::Aevt, &attr, &mut |d| {
                        seen += 1;
                        hits += u64::from(want.accepts(d));
                        seen < SAMPLE as u64
                    })?;
                    if seen == 0 {
                        0
                    } else {
                        // Half a hit when the sample holds none: rare, not absent.
                        ((hits as f64).max(0.5) / seen as f64 * count as f64).ceil() as u64
                    }
                }
            };
        }
        // Filters before binders of the same estimate: they only narrow.
        members.sort_by_key(|m| (m.est, matches!(m.want, Want::New(_) | Want::Any)));
        Ok(())
    }

    /// Runs a star: the relation of its entity variable and the variables its members
    /// bind.
    pub(super) fn run_star(&self, db: &Db, mut star: Star<'_>) -> Result<Rel, Error> {
        self.order_members(db, &mut star.members)?;
        let mut vars = vec![star.var.clone()];
        for m in &star.members {
            if let Some(v) = m.want.var() {
                vars.push(v.clone());
            }
        }
        let mut rows: Rows = Vec::new();
        let mut notes = Vec::new();
        for (k, m) in star.members.iter().enumerate() {
            let before = rows.len();
            let how = if k == 0 {
                let (how, found) = self.drive(db, m)?;
                rows = found;
                how
            } else {
                let distinct = distinct_entities(&rows);
                let count = count_prefix(db, IndexKind::Aevt, &[Component::A(m.attr.clone())]);
                let by_seek = (distinct.len() as u64).saturating_mul(SEEK_COST) < count;
                let found = if by_seek {
                    seek_each(db, m, &distinct)?
                } else {
                    merge(db, m, &distinct)?
                };
                rows = extend(rows, &distinct, found, m.want.var().is_some());
                if by_seek {
                    "EAVT seek per entity"
                } else {
                    "AEVT pass merged on entity"
                }
            };
            if self.tracing() {
                notes.push(format!(
                    "  {} {}: {how}, estimated {} → {} rows{}",
                    if k == 0 { "drive" } else { "then " },
                    m.clause.form,
                    m.est,
                    rows.len(),
                    if k > 0 {
                        format!(" (from {before})")
                    } else {
                        String::new()
                    }
                ));
            }
            if rows.is_empty() {
                if self.tracing() && k + 1 < star.members.len() {
                    notes.push(format!(
                        "  stop: no entity left, {} clause(s) not read",
                        star.members.len() - k - 1
                    ));
                }
                break;
            }
        }
        if self.tracing() {
            self.trace(format!(
                "star join on {} ({} clauses):",
                star.var,
                star.members.len()
            ));
            for n in notes {
                self.trace(n);
            }
        }
        let rows = rows
            .into_iter()
            .map(|(e, mut rest)| {
                rest.insert(0, QueryValue::entity(e));
                rest
            })
            .collect();
        Ok(Rel { vars, rows })
    }

    /// The driver's matches, in entity order.
    fn drive(&self, db: &Db, m: &Member<'_>) -> Result<(&'static str, Rows), Error> {
        let binds = m.want.var().is_some();
        let row = |d: &DatomRef<'_>| {
            let vals = if binds {
                vec![QueryValue::from_value(d.v.to_value())]
            } else {
                Vec::new()
            };
            (d.e, vals)
        };
        let avet = db.schema().in_avet(&m.attr);
        let values: Option<Vec<&Value>> = match &m.want {
            Want::Never => return Ok(("nothing can match", Vec::new())),
            Want::Is(v) if avet => Some(vec![v]),
            Want::OneOf(_, set) if avet => Some(set.iter().collect()),
            _ => None,
        };
        let mut out = Vec::new();
        if let Some(values) = values {
            for v in values {
                let prefix = [Component::A(m.attr.clone()), Component::V(v.clone())];
                scan(db, IndexKind::Avet, &prefix, &mut |d| {
                    out.push(row(d));
                    true
                })?;
            }
            out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            return Ok(("AVET lookup", out));
        }
        let prefix = [Component::A(m.attr.clone())];
        let any = matches!(m.want, Want::Any);
        scan(db, IndexKind::Aevt, &prefix, &mut |d| {
            if m.want.accepts(d) && !(any && out.last().is_some_and(|(e, _)| *e == d.e)) {
                out.push(row(d));
            }
            true
        })?;
        Ok(("AEVT scan", out))
    }
}

fn avet_count<'v>(db: &Db, attr: &Keyword, values: impl Iterator<Item = &'v Value>) -> u64 {
    values
        .map(|v| {
            count_prefix(
                db,
                IndexKind::Avet,
                &[Component::A(attr.clone()), Component::V(v.clone())],
            )
        })
        .sum()
}

/// The distinct entities of rows sorted by entity.
fn distinct_entities(rows: &[(Eid, Vec<QueryValue>)]) -> Vec<Eid> {
    let mut out: Vec<Eid> = rows.iter().map(|(e, _)| *e).collect();
    out.dedup();
    out
}

/// What member `m` finds for each of `entities`, by one EAVT seek each.
fn seek_each(db: &Db, m: &Member<'_>, entities: &[Eid]) -> Result<Vec<Option<Found>>, Error> {
    let binds = m.want.var().is_some();
    let mut out = Vec::with_capacity(entities.len());
    for &e in entities {
        let mut found: Option<Found> = None;
        let prefix = [Component::E(e), Component::A(m.attr.clone())];
        scan(db, IndexKind::Eavt, &prefix, &mut |d| {
            if m.want.accepts(d) {
                let f = found.get_or_insert_with(Vec::new);
                if binds {
                    f.push(QueryValue::from_value(d.v.to_value()));
                    true
                } else {
                    false
                }
            } else {
                true
            }
        })?;
        out.push(found);
    }
    Ok(out)
}

/// What member `m` finds for each of `entities` (sorted), by one pass over the
/// attribute in AEVT.
fn merge(db: &Db, m: &Member<'_>, entities: &[Eid]) -> Result<Vec<Option<Found>>, Error> {
    let binds = m.want.var().is_some();
    let mut out: Vec<Option<Found>> = vec![None; entities.len()];
    let mut at = 0usize;
    let prefix = [Component::A(m.attr.clone())];
    scan(db, IndexKind::Aevt, &prefix, &mut |d| {
        while at < entities.len() && entities[at] < d.e {
            at += 1;
        }
        if at == entities.len() {
            return false;
        }
        if entities[at] == d.e && m.want.accepts(d) {
            let f = out[at].get_or_insert_with(Vec::new);
            if binds {
                f.push(QueryValue::from_value(d.v.to_value()));
            }
        }
        true
    })?;
    Ok(out)
}

/// The rows extended by what each entity found: rows of entities that found nothing are
/// dropped; a binding member multiplies an entity's rows by its values.
fn extend(rows: Rows, entities: &[Eid], found: Vec<Option<Found>>, binds: bool) -> Rows {
    let mut out = Vec::with_capacity(rows.len());
    let mut at = 0usize;
    for (e, row) in rows {
        while entities[at] != e {
            at += 1;
        }
        let Some(values) = &found[at] else { continue };
        if !binds {
            out.push((e, row));
            continue;
        }
        for v in values {
            let mut r = row.clone();
            r.push(v.clone());
            out.push((e, r));
        }
    }
    out
}
