//! Composite tuples (`:db/tupleAttrs`), as Datascript keeps them: a tuple attribute holds
//! the vector of the values its component attributes have on the same entity, `nil` for
//! a missing one, and no datom at all when every component is missing. Every transaction
//! recomputes the tuples of the entities whose components it touched after each
//! operation of its tx data (Datascript's `::flush-tuples` between the entities of
//! `transact-tx-data`); asserting a tuple attribute directly is an error unless the value
//! is exactly what the components already hold (then it is skipped), which lets an entity
//! map name a unique tuple to upsert, and a lookup ref `[:a+b [x y]]` finds an entity by
//! its tuple. See `crate::tx` for where it is applied.

use crate::error::Error;
use crate::schema::{AttributeSchema, Schema};
use crate::value::{Eid, Element, Keyword, Value};

/// A component's value as a tuple element: an entity id is a number inside a tuple.
pub(crate) fn element(v: Option<Value>) -> Element {
    match v {
        Some(Value::Ref(e)) => Some(Value::Long(i64::try_from(e).unwrap_or(i64::MAX))),
        other => other,
    }
}

/// Datascript's `resolve-tuple-refs`: in a tuple value of `spec` (a composite tuple),
/// an element under a ref component written as a lookup ref names its entity (an error
/// when it names none). Any other value is returned as it is.
///
/// # Errors
/// What `lookup` fails with, or [`Error::UnknownLookupRef`].
pub(crate) fn resolve_refs(
    schema: &Schema,
    spec: &AttributeSchema,
    value: &Value,
    lookup: impl Fn(&Keyword, &Value) -> Result<Option<Eid>, Error>,
) -> Result<Value, Error> {
    let (Some(attrs), Value::Vector(items)) = (&spec.tuple_attrs, value) else {
        return Ok(value.clone());
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let is_ref = attrs
            .get(i)
            .and_then(|a| schema.get(a))
            .is_some_and(AttributeSchema::is_ref);
        let lookup_ref = match item {
            Some(Value::Vector(pair)) if is_ref => match pair.as_ref() {
                [Some(Value::Keyword(a)), Some(v)] => Some((a, v)),
                _ => None,
            },
            _ => None,
        };
        out.push(match lookup_ref {
            Some((a, v)) => match lookup(a, v)? {
                Some(e) => element(Some(Value::Ref(e))),
                None => {
                    return Err(Error::UnknownLookupRef {
                        attr: a.clone(),
                        value: v.clone(),
                    })
                }
            },
            None => item.clone(),
        });
    }
    Ok(Value::Vector(out.into()))
}

/// The tuple attributes of a schema by component: for each component attribute, the
/// tuples it is an element of and its position there. Made once per transaction.
#[derive(Default)]
pub(crate) struct Sources(std::collections::HashMap<Keyword, Vec<(Keyword, usize)>>);

impl Sources {
    /// The sources of `schema`'s tuples.
    pub(crate) fn of(schema: &Schema) -> Sources {
        let mut map: std::collections::HashMap<Keyword, Vec<(Keyword, usize)>> =
            std::collections::HashMap::new();
        for (tuple, spec) in schema.iter() {
            for (i, a) in spec.tuple_attrs.iter().flatten().enumerate() {
                map.entry(a.clone()).or_default().push((tuple.clone(), i));
            }
        }
        Sources(map)
    }

    /// The tuples `attr` is an element of, with its position.
    pub(crate) fn get(&self, attr: &Keyword) -> &[(Keyword, usize)] {
        self.0.get(attr).map_or(&[], Vec::as_slice)
    }
}
