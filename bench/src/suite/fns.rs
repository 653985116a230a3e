//! The functions a ported test passes to a query as an input (`(fn NAME)` in a case
//! file): the same functions under the same names as `FNS` of `bench/peer/suite.js`,
//! where Datascript's test passes a Clojure function.

use datoms_core::{Datom, Db, EntityValue, Error, FnArg, QueryFn, QueryValue, Value};

fn long(args: &[QueryValue]) -> Option<i64> {
    args.first().and_then(QueryValue::as_long)
}

fn longs(args: &[QueryValue]) -> Result<Vec<i64>, String> {
    args.first()
        .and_then(QueryValue::as_seq)
        .ok_or("takes a collection")?
        .into_iter()
        .map(|v| v.as_long().ok_or_else(|| format!("takes longs, got {v}")))
        .collect()
}

/// The input function `name`.
///
/// # Errors
/// [`Error::QueryInput`] for a name `suite.js` does not define either.
pub fn input_fn(name: &str) -> Result<QueryFn, Error> {
    Ok(match name {
        "even?" => QueryFn::predicate(name, |a| long(a).is_some_and(|n| n % 2 == 0)),
        "odd?" => QueryFn::predicate(name, |a| long(a).is_some_and(|n| n % 2 != 0)),
        "pos?" => QueryFn::predicate(name, |a| long(a).is_some_and(|n| n > 0)),
        "inc" => QueryFn::values(name, |a| {
            let n = long(a).ok_or("inc takes a long")?;
            Ok(QueryValue::long(n.checked_add(1).ok_or("overflow")?))
        }),
        "sum" => QueryFn::values(name, |a| {
            let mut s = 0i64;
            for n in longs(a)? {
                s = s.checked_add(n).ok_or("overflow")?;
            }
            Ok(QueryValue::long(s))
        }),
        "count-distinct" => QueryFn::values(name, |a| {
            let items = a
                .first()
                .and_then(QueryValue::as_seq)
                .ok_or("count-distinct takes a collection")?;
            let mut seen: Vec<&QueryValue> = Vec::new();
            for v in items {
                if !seen.contains(&v) {
                    seen.push(v);
                }
            }
            Ok(QueryValue::long(
                i64::try_from(seen.len()).unwrap_or(i64::MAX),
            ))
        }),
        // #(vector (reduce min %) (reduce max %))
        "minmax" => QueryFn::values(name, |a| {
            let ns = longs(a)?;
            let (min, max) = (ns.iter().min(), ns.iter().max());
            match (min, max) {
                (Some(lo), Some(hi)) => Ok(QueryValue::Vector(vec![
                    QueryValue::long(*lo),
                    QueryValue::long(*hi),
                ])),
                _ => Err("minmax of nothing".into()),
            }
        }),
        // clojure.core/range with a start and an end.
        "range" => QueryFn::values(name, |a| {
            let (Some(lo), Some(hi)) = (
                a.first().and_then(QueryValue::as_long),
                a.get(1).and_then(QueryValue::as_long),
            ) else {
                return Err("range takes two longs".into());
            };
            Ok(QueryValue::Vector((lo..hi).map(QueryValue::long).collect()))
        }),
        // #(> % 18)
        "over-18" => QueryFn::predicate(name, |a| long(a).is_some_and(|n| n > 18)),
        // #(when (even? %) %)
        "even-or-nil" => QueryFn::values(name, |a| {
            Ok(match long(a) {
                Some(n) if n % 2 == 0 => QueryValue::long(n),
                _ => QueryValue::Nil,
            })
        }),
        // clojure.core/first and second of a vector.
        "first" | "second" => {
            let i = usize::from(name == "second");
            QueryFn::values(name, move |a| {
                Ok(a.first()
                    .and_then(QueryValue::as_seq)
                    .and_then(|items| items.get(i).map(|v| (*v).clone()))
                    .unwrap_or(QueryValue::Nil))
            })
        }
        // (fn [db e a] (= a (:age (d/entity db e))))
        "age-is?" => QueryFn::new(name, |args| {
            let (Some(FnArg::Db(db)), Some(FnArg::Value(e)), Some(FnArg::Value(a))) =
                (args.first(), args.get(1), args.get(2))
            else {
                return Err("age-is? takes a db, an entity and an age".into());
            };
            let eid = e
                .as_long()
                .and_then(|e| u64::try_from(e).ok())
                .ok_or("age-is? takes an entity id")?;
            let age = db.entity(eid).get("age").map_err(|e| e.to_string())?;
            let same = match (age, a.as_long()) {
                (Some(EntityValue::Value(datoms_core::Value::Long(n))), Some(want)) => n == want,
                _ => false,
            };
            Ok(QueryValue::bool(same))
        }),
        // (fn [xs] (reverse (sort xs))), an aggregate.
        "sort-reverse" => QueryFn::values(name, |a| {
            let mut items: Vec<QueryValue> = a
                .first()
                .and_then(QueryValue::as_seq)
                .ok_or("sort-reverse takes a collection")?
                .into_iter()
                .cloned()
                .collect();
            items.sort();
            items.reverse();
            Ok(QueryValue::Vector(items))
        }),
        // (constantly true)
        "constantly-true" => QueryFn::values(name, |_| Ok(QueryValue::bool(true))),
        // (fn [] 5)
        "five" => QueryFn::values(name, |_| Ok(QueryValue::long(5))),
        other => {
            return Err(Error::QueryInput {
                reason: format!("no suite input function {other}"),
            })
        }
    })
}

/// A filter predicate, as `d/filter` takes it: the unfiltered db and a datom.
pub type FilterPred = Box<dyn Fn(&Db, &Datom) -> bool + Send + Sync>;

/// An entity's value of `attr`, if it has one (a read error counts as none).
fn entity_attr(db: &Db, e: u64, attr: &str) -> Option<EntityValue> {
    db.entity(e).get(attr).ok().flatten()
}

/// The filter predicate `name` (`[:filter $new $from (fn NAME)]`), the same as
/// `FILTERS` of `bench/peer/suite.js`: those of Datascript's `filter.cljc`.
///
/// # Errors
/// [`Error::QueryInput`] for a name `suite.js` does not define either.
pub fn filter_pred(name: &str) -> Result<FilterPred, Error> {
    Ok(match name {
        // (fn [_ datom] (not= :password (:a datom)))
        "remove-pass" => Box::new(|_, d| d.a.as_str() != "password"),
        // (fn [_ datom] (not= 2 (:e datom)))
        "remove-ivan" => Box::new(|_, d| d.e != 2),
        // :aka datoms only of entities with one aka, or akas of 4 characters or more
        "long-akas" => Box::new(|db, d| {
            let one = match entity_attr(db, d.e, "aka") {
                Some(EntityValue::Many(items)) => items.len() <= 1,
                _ => true,
            };
            let long = matches!(&d.v, Value::String(s) if s.chars().count() >= 4);
            d.a.as_str() != "aka" || one || long
        }),
        // (fn [db datom] (some? (:age (d/entity db (:e datom)))))
        "has-age?" => Box::new(|db, d| entity_attr(db, d.e, "age").is_some()),
        // (fn [db datom] (>= (:age (d/entity db (:e datom))) 18))
        "adult?" => Box::new(
            |db, d| matches!(entity_attr(db, d.e, "age"), Some(EntityValue::Value(Value::Long(n))) if n >= 18),
        ),
        "constantly-true" => Box::new(|_, _| true),
        "constantly-false" => Box::new(|_, _| false),
        other => {
            return Err(Error::QueryInput {
                reason: format!("no suite filter predicate {other}"),
            })
        }
    })
}
