//! Index components written in EDN, as Datascript's `(d/datoms db :eavt e a v tx)` takes
//! them: what the `datoms` command line and the JavaScript replica both read.

use crate::datom::{Component, IndexKind};
use crate::db::Db;
use crate::edn::Edn;
use crate::error::Error;
use crate::query::QueryValue;
use crate::value::{Keyword, Value};

/// Turns EDN forms into the leading components of `index`, in the order the index takes
/// them (eavt = e a v tx, aevt = a e v tx, avet = a v e tx). An entity is an id, a lookup
/// ref `[:unique-attr value]` or an ident (`:color/red`); the schema decides how a value
/// reads: under a ref attribute it is an entity as well.
///
/// # Errors
/// [`Error::InvalidIndexComponents`] for more than four forms or a form that does not fit
/// its slot; [`Error::UnknownLookupRef`] for a lookup ref or ident that finds nothing;
/// a value that is not a datom value.
pub fn index_components(db: &Db, index: IndexKind, forms: &[Edn]) -> Result<Vec<Component>, Error> {
    #[derive(Clone, Copy)]
    enum Slot {
        E,
        A,
        V,
        Tx,
    }
    let order = match index {
        IndexKind::Eavt => [Slot::E, Slot::A, Slot::V, Slot::Tx],
        IndexKind::Aevt => [Slot::A, Slot::E, Slot::V, Slot::Tx],
        IndexKind::Avet => [Slot::A, Slot::V, Slot::E, Slot::Tx],
    };
    let invalid = |reason: String| Error::InvalidIndexComponents { index, reason };
    if forms.len() > order.len() {
        return Err(invalid(format!(
            "an index takes at most 4 components, got {}",
            forms.len()
        )));
    }
    let mut attr = None;
    let mut out = Vec::with_capacity(forms.len());
    for (form, slot) in forms.iter().zip(order) {
        let bad = |what: &str| invalid(format!("`{form}` is not {what}"));
        out.push(match slot {
            Slot::E => Component::E(entity(db, form)?.ok_or_else(|| bad("an entity id"))?),
            Slot::A => match form {
                Edn::Keyword(k) => {
                    attr = Some(k.clone());
                    Component::A(k.clone())
                }
                _ => return Err(bad("an attribute keyword")),
            },
            Slot::V => {
                let is_ref = attr
                    .as_ref()
                    .and_then(|a| db.schema().get(a))
                    .is_some_and(|s| s.is_ref());
                if is_ref {
                    Component::V(Value::Ref(
                        entity(db, form)?
                            .ok_or_else(|| bad("an entity id (the attribute is a ref)"))?,
                    ))
                } else {
                    Component::V(form.to_value()?)
                }
            }
            Slot::Tx => match form {
                Edn::Int(t) if *t >= 0 => Component::Tx(t.unsigned_abs()),
                _ => return Err(bad("a transaction id")),
            },
        });
    }
    Ok(out)
}

/// An entity id, or the entity a lookup ref `[:attr value]` or an ident finds.
/// `Ok(None)` for a form that is none of these; a lookup ref or ident that finds nothing
/// is an error.
fn entity(db: &Db, form: &Edn) -> Result<Option<u64>, Error> {
    match form {
        Edn::Int(e) if *e >= 0 => Ok(Some(e.unsigned_abs())),
        Edn::Vector(items) => match items.as_slice() {
            [Edn::Keyword(a), v] => {
                let value = v.to_value()?;
                match db.entity_by_value(a, &value)? {
                    Some(e) => Ok(Some(e)),
                    None => Err(Error::UnknownLookupRef {
                        attr: a.clone(),
                        value,
                    }),
                }
            }
            _ => Ok(None),
        },
        // An ident names the entity whose :db/ident it is, as in Datascript's index
        // reads; an unknown one is an error, as a lookup ref that finds nothing.
        Edn::Keyword(k) => match db.entid(&QueryValue::from_edn(form)?)? {
            Some(e) => Ok(Some(e)),
            None => Err(Error::UnknownLookupRef {
                attr: Keyword::new("db/ident"),
                value: Value::Keyword(k.clone()),
            }),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::parse;

    fn forms(text: &str) -> Vec<Edn> {
        match parse(text) {
            Ok(Edn::Vector(items)) => items,
            other => panic!("not a vector: {other:?}"),
        }
    }

    #[test]
    fn components_follow_the_index_order_and_the_schema() -> Result<(), Error> {
        let schema = crate::edn::parse_schema(
            "{:person/email {:db/unique :db.unique/identity} :person/friend {:db/valueType :db.type/ref}}",
        )?;
        let db = Db::new(schema)
            .with_edn(r#"[{:db/id -1 :person/email "ann@x" :person/friend -2} {:db/id -2 :person/email "bo@x"}]"#)?
            .db_after;
        let ann = db
            .entity_by_value(
                &Keyword::new("person/email"),
                &Value::String("ann@x".into()),
            )?
            .ok_or_else(|| Error::InvalidValue {
                reason: "no Ann".into(),
            })?;
        let got = index_components(
            &db,
            IndexKind::Avet,
            &forms(r#"[:person/friend [:person/email "bo@x"]]"#),
        )?;
        assert!(matches!(
            got.as_slice(),
            [Component::A(_), Component::V(Value::Ref(_))]
        ));
        let got = index_components(
            &db,
            IndexKind::Eavt,
            &forms(r#"[[:person/email "ann@x"] :person/email]"#),
        )?;
        assert!(matches!(got.as_slice(), [Component::E(e), Component::A(_)] if *e == ann));
        assert!(matches!(
            index_components(&db, IndexKind::Eavt, &forms(r#"["x"]"#)),
            Err(Error::InvalidIndexComponents { .. })
        ));
        assert!(matches!(
            index_components(
                &db,
                IndexKind::Eavt,
                &forms(r#"[[:person/email "nobody"]]"#)
            ),
            Err(Error::UnknownLookupRef { .. })
        ));
        assert!(matches!(
            index_components(&db, IndexKind::Eavt, &forms("[1 :a 2 3 4]")),
            Err(Error::InvalidIndexComponents { .. })
        ));
        Ok(())
    }
}
