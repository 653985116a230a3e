//! Datascript's aggregates: `count`, `count-distinct`, `sum`, `avg`, `median`,
//! `variance`, `stddev`, `min`, `max` (also `(min n ?x)`/`(max n ?x)`), `distinct`,
//! `rand` (also `(rand n ?x)`), `sample`, and registered ones.
//!
//! Arithmetic follows the query functions: longs stay longs while results are whole
//! (`avg` of 10 and 20 is `15`), a quotient that is not whole is a double (Clojure would
//! give a ratio), `stddev` is always a double.

use std::collections::BTreeSet;

use super::builtins::{call_builtin, random_below, CallArg, CallError, Functions};
use super::value::QueryValue;

/// The arities (number of constant arguments before the variable) of the built-in
/// aggregates; `None` for a name that is not built in.
pub(crate) fn aggregate_arity(name: &str) -> Option<(usize, usize)> {
    Some(match name {
        "count" | "count-distinct" | "sum" | "avg" | "median" | "variance" | "stddev"
        | "distinct" => (0, 0),
        "min" | "max" | "rand" => (0, 1),
        "sample" => (1, 1),
        _ => return None,
    })
}

fn op(name: &str, a: &QueryValue, b: &QueryValue) -> Result<QueryValue, String> {
    call_builtin(name, &[CallArg::Val(a), CallArg::Val(b)]).map_err(|e| match e {
        CallError::Reason(r) => r,
        CallError::Db(e) => e.to_string(),
    })
}

fn sum(vals: &[QueryValue]) -> Result<QueryValue, String> {
    let mut acc = QueryValue::long(0);
    for v in vals {
        acc = op("+", &acc, v)?;
    }
    Ok(acc)
}

fn count_value(n: usize) -> QueryValue {
    QueryValue::long(i64::try_from(n).unwrap_or(i64::MAX))
}

fn avg(vals: &[QueryValue]) -> Result<QueryValue, String> {
    op("/", &sum(vals)?, &count_value(vals.len()))
}

fn variance(vals: &[QueryValue]) -> Result<QueryValue, String> {
    let mean = avg(vals)?;
    let mut acc = QueryValue::long(0);
    for v in vals {
        let delta = op("-", v, &mean)?;
        acc = op("+", &acc, &op("*", &delta, &delta)?)?;
    }
    op("/", &acc, &count_value(vals.len()))
}

fn count_arg(v: &QueryValue) -> Result<usize, String> {
    v.as_long()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a positive count, got {v}"))
}

/// Computes aggregate `name` over a group's values (never empty).
pub(crate) fn aggregate(
    name: &str,
    args: &[QueryValue],
    vals: &[QueryValue],
    fns: &Functions,
) -> Result<QueryValue, String> {
    if let Some(f) = fns.aggregate_impl(name) {
        return f(args, vals);
    }
    if name == "aggregate" {
        // Datascript: `(aggregate ?f a b ?x)` is `(?f a b values)`.
        return match args.split_first() {
            Some((QueryValue::Fn(f), rest)) => {
                let coll = QueryValue::Vector(vals.to_vec());
                let mut call: Vec<CallArg<'_>> = rest.iter().map(CallArg::Val).collect();
                call.push(CallArg::Val(&coll));
                f.call(&call, fns).map_err(|e| match e {
                    CallError::Reason(r) => r,
                    CallError::Db(e) => e.to_string(),
                })
            }
            Some((other, _)) => Err(format!("aggregate takes a function, got {other}")),
            None => Err("aggregate takes a function".into()),
        };
    }
    let mut sorted = vals.to_vec();
    sorted.sort();
    Ok(match (name, args) {
        ("count", _) => count_value(vals.len()),
        ("count-distinct", _) => count_value(vals.iter().collect::<BTreeSet<_>>().len()),
        ("sum", _) => sum(vals)?,
        ("avg", _) => avg(vals)?,
        ("median", _) => {
            let mid = sorted.len() / 2;
            if sorted.len() % 2 == 1 {
                sorted[mid].clone()
            } else {
                op(
                    "/",
                    &op("+", &sorted[mid - 1], &sorted[mid])?,
                    &QueryValue::long(2),
                )?
            }
        }
        ("variance", _) => variance(vals)?,
        ("stddev", _) => {
            let v = variance(vals)?;
            let x = match v.as_value() {
                Some(crate::value::Value::Long(i)) => {
                    #[allow(clippy::cast_precision_loss)]
                    let f = *i as f64;
                    f
                }
                Some(crate::value::Value::Double(d)) => d.get(),
                _ => return Err(format!("variance {v} is not a number")),
            };
            QueryValue::Value(crate::value::Value::double(x.sqrt()).map_err(|e| e.to_string())?)
        }
        ("min", []) => sorted.first().cloned().unwrap_or(QueryValue::Nil),
        ("max", []) => sorted.last().cloned().unwrap_or(QueryValue::Nil),
        ("min", [n]) => {
            let n = count_arg(n)?;
            QueryValue::Vector(sorted.into_iter().take(n).collect())
        }
        ("max", [n]) => {
            let n = count_arg(n)?;
            let skip = sorted.len().saturating_sub(n);
            QueryValue::Vector(sorted.into_iter().skip(skip).collect())
        }
        ("distinct", _) => QueryValue::Set(vals.iter().cloned().collect()),
        ("rand", []) => vals
            .get(random_below(vals.len()))
            .cloned()
            .unwrap_or(QueryValue::Nil),
        ("rand", [n]) => {
            let n = count_arg(n)?;
            QueryValue::Vector(
                (0..n)
                    .filter_map(|_| vals.get(random_below(vals.len())).cloned())
                    .collect(),
            )
        }
        ("sample", [n]) => {
            let n = count_arg(n)?;
            let mut pool = vals.to_vec();
            // Fisher–Yates over the first n positions.
            let take = n.min(pool.len());
            for i in 0..take {
                let j = i + random_below(pool.len() - i);
                pool.swap(i, j);
            }
            pool.truncate(take);
            QueryValue::Vector(pool)
        }
        (other, _) => return Err(format!("unknown aggregate {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn l(i: i64) -> QueryValue {
        QueryValue::long(i)
    }

    fn agg(name: &str, args: &[QueryValue], vals: &[QueryValue]) -> QueryValue {
        aggregate(name, args, vals, &Functions::new()).unwrap()
    }

    #[test]
    fn numeric_aggregates() {
        let vals = [l(10), l(20), l(30), l(40)];
        assert_eq!(agg("sum", &[], &vals), l(100));
        assert_eq!(agg("avg", &[], &vals), l(25));
        assert_eq!(agg("median", &[], &vals), l(25));
        assert_eq!(agg("variance", &[], &vals), l(125));
        let sd = agg("stddev", &[], &vals);
        assert_eq!(sd, QueryValue::Value(Value::double(125f64.sqrt()).unwrap()));
        assert_eq!(
            agg("avg", &[], &[l(1), l(2)]),
            QueryValue::Value(Value::double(1.5).unwrap())
        );
        assert_eq!(agg("median", &[], &[l(3), l(1), l(2)]), l(2));
    }

    #[test]
    fn collection_aggregates() {
        let vals = [l(3), l(1), l(2), l(1)];
        assert_eq!(agg("count", &[], &vals), l(4));
        assert_eq!(agg("count-distinct", &[], &vals), l(3));
        assert_eq!(agg("min", &[], &vals), l(1));
        assert_eq!(
            agg("max", &[l(2)], &vals),
            QueryValue::Vector(vec![l(2), l(3)])
        );
        assert_eq!(
            agg("min", &[l(2)], &vals),
            QueryValue::Vector(vec![l(1), l(1)])
        );
        assert_eq!(
            agg("distinct", &[], &vals),
            QueryValue::Set([l(1), l(2), l(3)].into())
        );
        let s = agg("sample", &[l(10)], &vals);
        assert_eq!(s.as_seq().unwrap().len(), 4);
        let r = agg("rand", &[l(3)], &vals);
        assert_eq!(r.as_seq().unwrap().len(), 3);
        assert!(vals.contains(&agg("rand", &[], &vals)));
        assert!(aggregate("sample", &[l(0)], &vals, &Functions::new()).is_err());
    }
}
