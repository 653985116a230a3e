//! Delta rules for a conjunctive body, over data patterns only: the changed datoms of
//! one pattern joined with the other patterns by index lookups, the patterns before it
//! read on the db after the change and those after it on the db before (the standard
//! expansion of `Q(db + Δ) − Q(db)`, exact for bags of derivations).

use std::cmp::Reverse;

use super::analyze::{ATerm, Conj, ETerm, Pattern, VTerm};
use crate::datom::{Component, Datom, IndexKind};
use crate::db::Db;
use crate::error::Error;
use crate::query::QueryValue;
use crate::value::{Eid, Keyword, Value};

/// A (partial) binding of a body's variables.
pub(crate) type Binding = Vec<Option<QueryValue>>;

/// The entity a query value names in an entity position: an id, or what a lookup ref
/// or ident resolves to.
fn entity_of(db: &Db, q: &QueryValue) -> Result<Option<Eid>, Error> {
    match q {
        QueryValue::Value(Value::Long(n)) => Ok(u64::try_from(*n).ok()),
        other => db.entid(other),
    }
}

/// The datom value a query value stands for under `attr` (a ref attribute's value is
/// the entity it names), as the query engine reads it.
fn datom_value(db: &Db, attr: &Keyword, q: &QueryValue) -> Result<Option<Value>, Error> {
    if db.schema().get(attr).is_some_and(|s| s.is_ref()) {
        return Ok(entity_of(db, q)?.map(Value::Ref));
    }
    Ok(q.to_datom_value())
}

/// Binds `slot` to `value`, or checks that it holds it. Returns whether it agrees and
/// whether it newly bound.
fn unify(binding: &mut Binding, slot: usize, value: QueryValue) -> (bool, bool) {
    match &binding[slot] {
        Some(v) => (*v == value, false),
        None => {
            binding[slot] = Some(value);
            (true, true)
        }
    }
}

/// Unifies `pattern` with datom `d` under `binding`: the slots it newly bound, or `None`
/// when the datom does not match (the binding is then as it was).
pub(crate) fn unify_datom(
    pattern: &Pattern,
    d: &Datom,
    binding: &mut Binding,
) -> Option<Vec<usize>> {
    let mut bound = Vec::new();
    let mut ok = true;
    match &pattern.e {
        ETerm::Const(e) => ok &= d.e == *e,
        ETerm::Var(i) => {
            let (agrees, new) = unify(binding, *i, QueryValue::entity(d.e));
            ok &= agrees;
            if new {
                bound.push(*i);
            }
        }
    }
    if ok {
        match &pattern.a {
            ATerm::Const(a) => ok &= d.a == *a,
            ATerm::Var(i) => {
                let (agrees, new) =
                    unify(binding, *i, QueryValue::Value(Value::Keyword(d.a.clone())));
                ok &= agrees;
                if new {
                    bound.push(*i);
                }
            }
        }
    }
    if ok {
        match &pattern.v {
            VTerm::Const(q) => ok &= value_is(&d.v, q),
            VTerm::Var(i) => {
                let (agrees, new) = unify(binding, *i, QueryValue::from_value(d.v.clone()));
                ok &= agrees;
                if new {
                    bound.push(*i);
                }
            }
        }
    }
    if ok {
        Some(bound)
    } else {
        for i in bound {
            binding[i] = None;
        }
        None
    }
}

/// True if datom value `d` is the query constant `q` (a ref equals its entity id).
fn value_is(d: &Value, q: &QueryValue) -> bool {
    QueryValue::from_value(d.clone()) == *q
}

/// How well an index serves `pattern` under `binding`: higher is better.
fn selectivity(db: &Db, pattern: &Pattern, binding: &Binding) -> u8 {
    let e = match &pattern.e {
        ETerm::Const(_) => true,
        ETerm::Var(i) => binding[*i].is_some(),
    };
    let a = match &pattern.a {
        ATerm::Const(a) => Some(a.clone()),
        ATerm::Var(i) => match &binding[*i] {
            Some(QueryValue::Value(Value::Keyword(k))) => Some(k.clone()),
            _ => None,
        },
    };
    let v = match &pattern.v {
        VTerm::Const(_) => true,
        VTerm::Var(i) => binding[*i].is_some(),
    };
    match (e, a, v) {
        (true, Some(_), _) => 4,
        (false, Some(a), true) if db.schema().in_avet(&a) => 3,
        (true, None, _) => 2,
        (false, Some(_), _) => 1,
        _ => 0,
    }
}

/// The index read that finds every datom of `db` that `pattern` can match under
/// `binding`; `None` when nothing can (a bound value names no entity, say).
fn probe(
    db: &Db,
    pattern: &Pattern,
    binding: &Binding,
) -> Result<Option<(IndexKind, Vec<Component>)>, Error> {
    let e = match &pattern.e {
        ETerm::Const(e) => Some(*e),
        ETerm::Var(i) => match &binding[*i] {
            Some(q) => match entity_of(db, q)? {
                Some(e) => Some(e),
                None => return Ok(None),
            },
            None => None,
        },
    };
    let a = match &pattern.a {
        ATerm::Const(a) => Some(a.clone()),
        ATerm::Var(i) => match &binding[*i] {
            Some(QueryValue::Value(Value::Keyword(k))) => Some(k.clone()),
            Some(_) => return Ok(None),
            None => None,
        },
    };
    let v = match (&a, &pattern.v) {
        (Some(a), VTerm::Const(q)) => match datom_value(db, a, q)? {
            Some(v) => Some(v),
            None => return Ok(None),
        },
        (Some(a), VTerm::Var(i)) => match &binding[*i] {
            Some(q) => match datom_value(db, a, q)? {
                Some(v) => Some(v),
                None => return Ok(None),
            },
            None => None,
        },
        (None, _) => None,
    };
    let (index, comps) = match (e, &a, &v) {
        (Some(e), Some(a), Some(v)) => (
            IndexKind::Eavt,
            vec![
                Component::E(e),
                Component::A(a.clone()),
                Component::V(v.clone()),
            ],
        ),
        (Some(e), Some(a), None) => (
            IndexKind::Eavt,
            vec![Component::E(e), Component::A(a.clone())],
        ),
        (Some(e), None, _) => (IndexKind::Eavt, vec![Component::E(e)]),
        (None, Some(a), Some(v)) if db.schema().in_avet(a) => (
            IndexKind::Avet,
            vec![Component::A(a.clone()), Component::V(v.clone())],
        ),
        (None, Some(a), _) => (IndexKind::Aevt, vec![Component::A(a.clone())]),
        (None, None, _) => (IndexKind::Eavt, Vec::new()),
    };
    Ok(Some((index, comps)))
}

/// Joins `remaining` patterns onto `binding`, pattern `j` read on `dbs(j)`, and calls
/// `out` with every complete binding.
pub(crate) fn join<'a>(
    dbs: &dyn Fn(usize) -> &'a Db,
    conj: &Conj,
    remaining: &mut Vec<usize>,
    binding: &mut Binding,
    out: &mut dyn FnMut(&Binding) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some(pos) = remaining
        .iter()
        .enumerate()
        .max_by_key(|(k, j)| {
            (
                selectivity(dbs(**j), &conj.patterns[**j], binding),
                Reverse(*k),
            )
        })
        .map(|(k, _)| k)
    else {
        return out(binding);
    };
    let j = remaining.remove(pos);
    let pattern = &conj.patterns[j];
    let db = dbs(j);
    let result = (|| {
        let Some((index, comps)) = probe(db, pattern, binding)? else {
            return Ok(());
        };
        for d in db.datoms(index, &comps)? {
            let d = d?;
            if let Some(bound) = unify_datom(pattern, &d, binding) {
                let r = join(dbs, conj, remaining, binding, out);
                for i in bound {
                    binding[i] = None;
                }
                r?;
            }
        }
        Ok(())
    })();
    remaining.insert(pos, j);
    result
}
