//! The `datoms` side of the ported suite: runs a test's steps through the `datoms-core`
//! API, printing each answer as `bench/peer/suite.js` prints Datascript's (datoms as
//! `#datascript/Datom [e a v tx added]`, entities as their `:db/id` map, a tx as
//! `[DATOMS TX-DATA TEMPIDS]`).

use std::collections::HashMap;

use datoms_core::edn::{index_components, parse, value_to_edn, Edn};
use datoms_core::pull::{pull_entity, PullPattern};
use datoms_core::{
    Datom, Db, Entity, EntityValue, Error, Functions, IndexKind, Input, Keyword, Query, QueryValue,
};

use super::{fns, Arg, Op, Step, SuiteTest};
use crate::diff::{all_datoms, Answer};

/// Runs `test`'s steps in order, one answer per step (an error is an answer too).
pub fn run_test(test: &SuiteTest) -> Vec<Answer> {
    let mut dbs: HashMap<String, Db> = HashMap::new();
    test.steps
        .iter()
        .map(|s| match run_step(&mut dbs, s) {
            Ok(text) => Answer::Ok(text),
            Err(e) => Answer::Err(e.to_string()),
        })
        .collect()
}

/// A step's argument that is not what the step takes: a mistake of the case file.
fn malformed(step: &Step) -> Error {
    Error::QueryInput {
        reason: format!("malformed suite step {}", step.text),
    }
}

fn edn_arg(step: &Step, i: usize) -> Result<&str, Error> {
    match step.args.get(i) {
        Some(Arg::Edn(text)) => Ok(text),
        _ => Err(malformed(step)),
    }
}

fn db_arg<'a>(dbs: &'a HashMap<String, Db>, step: &Step, i: usize) -> Result<&'a Db, Error> {
    match step.args.get(i) {
        Some(Arg::Db(name)) => dbs.get(name).ok_or_else(|| Error::QueryInput {
            reason: format!("no db {name} in this test"),
        }),
        _ => Err(malformed(step)),
    }
}

fn run_step(dbs: &mut HashMap<String, Db>, step: &Step) -> Result<String, Error> {
    let name = |i: usize| match step.args.get(i) {
        Some(Arg::Name(n) | Arg::Db(n)) => Ok(n.clone()),
        _ => Err(malformed(step)),
    };
    match step.op {
        Op::Db => {
            let schema = datoms_core::edn::parse_schema(edn_arg(step, 1)?)?;
            dbs.insert(name(0)?, Db::new(schema));
            Ok("nil".into())
        }
        Op::Filter => {
            let from = db_arg(dbs, step, 1)?.clone();
            let pred = match step.args.get(2) {
                Some(Arg::Fn(name)) => fns::filter_pred(name)?,
                _ => return Err(malformed(step)),
            };
            dbs.insert(name(0)?, from.filter(move |db, d| pred(db, d)));
            Ok("nil".into())
        }
        Op::Tx | Op::With => {
            let (from, tx) = if step.op == Op::Tx { (0, 1) } else { (1, 2) };
            let report = db_arg(dbs, step, from)?.with_edn(edn_arg(step, tx)?)?;
            let text = format!(
                "[{} {} {}]",
                all_datoms(&report.db_after)?,
                Edn::Set(report.tx_data.iter().map(datom_edn).collect()),
                Edn::Map(
                    report
                        .tempids
                        .iter()
                        .map(|(k, v)| (Edn::String(k.clone()), eid_edn(*v)))
                        .collect()
                )
            );
            dbs.insert(name(0)?, report.db_after);
            Ok(text)
        }
        Op::Q | Op::QBag => {
            let query = Query::parse(edn_arg(step, 0)?)?;
            let mut inputs = Vec::new();
            for arg in &step.args[1..] {
                inputs.push(match arg {
                    Arg::Db(name) => Input::Db(dbs.get(name).ok_or_else(|| malformed(step))?),
                    Arg::Edn(text) => Input::Edn(text),
                    Arg::Fn(name) => Input::Fn(fns::input_fn(name)?),
                    Arg::Name(_) => return Err(malformed(step)),
                });
            }
            Ok(query.run(&inputs)?.to_edn().to_string())
        }
        Op::Pull | Op::PullMany => {
            let db = db_arg(dbs, step, 0)?;
            let f = Functions::new();
            let pattern = PullPattern::parse(db, edn_arg(step, 1)?, &f)?;
            let pull = |form: &Edn| -> Result<Edn, Error> {
                Ok(pull_entity(db, &pattern, &QueryValue::from_edn(form)?, &f)?.to_edn())
            };
            let target = parse(edn_arg(step, 2)?)?;
            if step.op == Op::Pull {
                return Ok(pull(&target)?.to_string());
            }
            let (Edn::Vector(items) | Edn::List(items)) = target else {
                return Err(malformed(step));
            };
            let pulled = items.iter().map(pull).collect::<Result<Vec<_>, _>>()?;
            Ok(Edn::Vector(pulled).to_string())
        }
        Op::Entity => {
            let db = db_arg(dbs, step, 0)?;
            let form = QueryValue::from_edn(&parse(edn_arg(step, 1)?)?)?;
            let Some(eid) = db.entid(&form)? else {
                return Ok("nil".into());
            };
            let entity = db.entity(eid);
            // Datascript's `entity` is nil for an id with no datoms; datoms' is an
            // entity whose `exists` is false.
            if !entity.exists()? {
                return Ok("nil".into());
            }
            if step.args.len() == 2 {
                return Ok(touched(&entity)?.to_string());
            }
            let mut at = Some(EntityValue::Entity(entity));
            for i in 2..step.args.len() {
                let attr = match parse(edn_arg(step, i)?)? {
                    Edn::Keyword(k) => k,
                    // `first` of a set of entities (the tests take it of one-element
                    // sets).
                    Edn::Symbol(s) if s == "first" => {
                        at = match at {
                            Some(EntityValue::Many(items)) => items.into_iter().next(),
                            _ => None,
                        };
                        continue;
                    }
                    _ => return Err(malformed(step)),
                };
                at = match at {
                    Some(EntityValue::Entity(e)) => e.get_attr(&attr)?,
                    // Datascript looks a keyword up in a set of entities or a value:
                    // nothing there.
                    _ => None,
                };
            }
            Ok(at.map_or(Edn::Nil, |v| entity_value(&v, false)).to_string())
        }
        Op::Datoms | Op::SeekDatoms => {
            let db = db_arg(dbs, step, 0)?;
            let index = match edn_arg(step, 1)? {
                ":eavt" => IndexKind::Eavt,
                ":aevt" => IndexKind::Aevt,
                ":avet" => IndexKind::Avet,
                _ => return Err(malformed(step)),
            };
            let forms = step.args[2..]
                .iter()
                .map(|a| match a {
                    Arg::Edn(t) => parse(t),
                    _ => Err(malformed(step)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let components = index_components(db, index, &forms)?;
            let datoms = if step.op == Op::Datoms {
                db.datoms(index, &components)?
            } else {
                db.seek_datoms(index, &components)?
            };
            datoms_edn(datoms)
        }
        Op::IndexRange => {
            let db = db_arg(dbs, step, 0)?;
            let Edn::Keyword(attr) = parse(edn_arg(step, 1)?)? else {
                return Err(malformed(step));
            };
            // A bound is read as the V of an AVET prefix, as Datascript resolves it (a
            // lookup ref or ident for a ref attribute).
            let bound = |i: usize| -> Result<Option<datoms_core::Value>, Error> {
                match parse(edn_arg(step, i)?)? {
                    Edn::Nil => Ok(None),
                    form => {
                        let prefix = [Edn::Keyword(attr.clone()), form];
                        match index_components(db, IndexKind::Avet, &prefix)?.pop() {
                            Some(datoms_core::Component::V(v)) => Ok(Some(v)),
                            _ => Err(malformed(step)),
                        }
                    }
                }
            };
            let (start, end) = (bound(2)?, bound(3)?);
            datoms_edn(db.index_range(&attr, start.as_ref(), end.as_ref())?)
        }
    }
}

fn eid_edn(e: u64) -> Edn {
    Edn::Int(i64::try_from(e).unwrap_or(i64::MAX))
}

fn datom_edn(d: &Datom) -> Edn {
    Edn::Tagged(
        "datascript/Datom".into(),
        Box::new(Edn::Vector(vec![
            eid_edn(d.e),
            Edn::Keyword(d.a.clone()),
            value_to_edn(&d.v),
            eid_edn(d.tx),
            Edn::Bool(d.added),
        ])),
    )
}

fn datoms_edn(datoms: impl Iterator<Item = Result<Datom, Error>>) -> Result<String, Error> {
    let items = datoms
        .map(|d| d.map(|d| datom_edn(&d)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Edn::Vector(items).to_string())
}

fn id_map(e: &Entity) -> Edn {
    Edn::Map(vec![(Edn::Keyword(Keyword::new("db/id")), eid_edn(e.id()))])
}

/// An entity value as Datascript prints it: a value as itself, a referenced entity as
/// its printed cache (`{:db/id N}` when untouched, all of it when `touch` reached it as
/// a component), several values as a set.
fn entity_value(v: &EntityValue, touch: bool) -> Edn {
    match v {
        EntityValue::Value(v) => value_to_edn(v),
        EntityValue::Entity(e) if touch => touched(e).unwrap_or_else(|_| id_map(e)),
        EntityValue::Entity(e) => id_map(e),
        EntityValue::Many(items) => {
            Edn::Set(items.iter().map(|i| entity_value(i, touch)).collect())
        }
    }
}

/// `(d/touch e)` printed: every attribute, component entities touched too.
fn touched(e: &Entity) -> Result<Edn, Error> {
    let mut entries = Vec::new();
    for (attr, v) in e.touch()? {
        let component = e.db().schema().get(&attr).is_some_and(|s| s.is_component);
        entries.push((Edn::Keyword(attr), entity_value(&v, component)));
    }
    entries.push((Edn::Keyword(Keyword::new("db/id")), eid_edn(e.id())));
    Ok(Edn::Map(entries))
}
