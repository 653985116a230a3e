//! Tx data from EDN text, exactly as a Datascript user writes it.

use super::data::{is_current_tx_keyword, EntityMap, EntityRef, TxOp, TxValue, DB_ID};
use crate::edn::{datom_from_edn, parse, Edn};
use crate::error::Error;
use crate::schema::{AttributeSchema, Schema, Unique, IDENT};
use crate::value::{Keyword, Value};

/// Parses EDN tx data: a vector (or list) of entity maps and list forms.
///
/// ```
/// use datoms_core::tx::{parse_tx, TxOp};
/// use datoms_core::Schema;
///
/// let ops = parse_tx(
///     r#"[{:db/id -1 :person/name "Alice"}
///         [:db/add "c" :person/name "Carol"]
///         [:db/retract 1 :person/age]
///         [:db/retractEntity [:person/name "Bob"]]
///         [:db/cas 1 :person/age 30 31]]"#,
///     &Schema::new(),
/// )
/// .unwrap();
/// assert_eq!(ops[1], TxOp::add("c", ":person/name", "Carol"));
/// assert_eq!(ops[2], TxOp::retract_attr(1, ":person/age"));
/// ```
///
/// Forms accepted:
/// * entity maps `{:db/id e :attr value …}` (`:db/id` optional); values of
///   cardinality-many and reverse (`:ns/_attr`) attributes may be vectors, lists or sets
///   of values; values of ref attributes may be nested maps;
/// * `[:db/add e a v]`, `[:db/retract e a v]`, `[:db/retract e a]`,
///   `[:db.fn/retractAttribute e a]`, `[:db/retractEntity e]` (also
///   `:db.fn/retractEntity`), `[:db/cas e a old new]` (also `:db.fn/cas`; `old` may be
///   `nil`).
///
/// Entity positions: a positive integer is an entity id, a negative integer or a string
/// is a tempid, `[:attr value]` is a lookup ref, `:db/current-tx` the transaction, an
/// ident keyword the entity holding it as `:db/ident` (not as a map's `:db/id`, which
/// Datascript rejects). Under ref attributes the same forms are accepted as values. A
/// two-element vector starting with a keyword is a lookup ref; in an entity map under a
/// cardinality-many or reverse attribute only when the keyword is a
/// `:db.unique/identity` attribute, else it holds two values (as Datascript's
/// `maybe-wrap-multival`). `nil` entries are skipped; a datom
/// `#datascript/Datom [e a v tx added]` (or `#datom`) asserts `[e a v]`, or retracts it
/// when `added` is false. The schema tells ref, cardinality-many and identity attributes
/// apart; it is not otherwise checked here ([`crate::Db::with`] does).
///
/// # Errors
/// [`Error::EdnSyntax`] for text that is not EDN, [`Error::MalformedTx`] quoting the
/// offending form for EDN that is not tx data, [`Error::InvalidValue`] for a bad scalar
/// such as `#inst "yesterday"`.
pub fn parse_tx(text: &str, schema: &Schema) -> Result<Vec<TxOp>, Error> {
    let form = parse(text)?;
    let forms = match &form {
        Edn::Vector(forms) | Edn::List(forms) => forms,
        other => {
            return Err(malformed(
                other,
                "tx data must be a vector of entity maps and list forms",
            ))
        }
    };
    forms
        .iter()
        // `nil` entries are skipped, as Datascript skips them.
        .filter(|f| !matches!(f, Edn::Nil))
        .map(|f| op_from_edn(f, schema))
        .collect()
}

/// The printed form, cut short.
fn quote(form: &Edn) -> String {
    let mut text = form.to_string();
    if let Some((cut, _)) = text.char_indices().nth(200) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn malformed(form: &Edn, why: &str) -> Error {
    Error::MalformedTx {
        reason: format!("{}: {why}", quote(form)),
    }
}

fn op_from_edn(form: &Edn, schema: &Schema) -> Result<TxOp, Error> {
    let items = match form {
        Edn::Map(entries) => return entity_map(entries, schema).map(TxOp::Map),
        Edn::Tagged(tag, _) if tag == "datom" || tag == "datascript/Datom" => {
            return datom_op(form, schema)
        }
        Edn::Vector(items) | Edn::List(items) => items,
        _ => {
            return Err(malformed(
                form,
                "an operation is an entity map or a list form such as [:db/add e a v]",
            ))
        }
    };
    let Some(Edn::Keyword(op)) = items.first() else {
        return Err(malformed(
            form,
            "a list form starts with an operation keyword",
        ));
    };
    let wrong_arity = |shape: &str| malformed(form, &format!("expected {shape}"));
    let attr = |f: &Edn| match f {
        Edn::Keyword(k) => Ok(k.clone()),
        _ => Err(malformed(form, "the attribute must be a keyword")),
    };
    match (op.as_str(), &items[1..]) {
        ("db/add", [e, a, v]) => {
            let a = attr(a)?;
            Ok(TxOp::Add(
                entity_ref(e, form)?,
                a.clone(),
                value(&a, v, schema, false, form)?,
            ))
        }
        ("db/add", _) => Err(wrong_arity("[:db/add e a v]")),
        ("db/retract", [e, a, v]) => {
            let a = attr(a)?;
            Ok(TxOp::Retract(
                entity_ref(e, form)?,
                a.clone(),
                value(&a, v, schema, false, form)?,
            ))
        }
        ("db/retract" | "db.fn/retractAttribute", [e, a]) => {
            Ok(TxOp::RetractAttr(entity_ref(e, form)?, attr(a)?))
        }
        ("db/retract", _) => Err(wrong_arity("[:db/retract e a v] or [:db/retract e a]")),
        ("db.fn/retractAttribute", _) => Err(wrong_arity("[:db.fn/retractAttribute e a]")),
        ("db/retractEntity" | "db.fn/retractEntity", [e]) => {
            Ok(TxOp::RetractEntity(entity_ref(e, form)?))
        }
        ("db/retractEntity" | "db.fn/retractEntity", _) => {
            Err(wrong_arity("[:db/retractEntity e]"))
        }
        ("db/cas" | "db.fn/cas", [e, a, old, new]) => {
            let a = attr(a)?;
            let old = match old {
                Edn::Nil => None,
                o => Some(value(&a, o, schema, false, form)?),
            };
            Ok(TxOp::Cas(
                entity_ref(e, form)?,
                a.clone(),
                old,
                value(&a, new, schema, false, form)?,
            ))
        }
        ("db/cas" | "db.fn/cas", _) => Err(wrong_arity("[:db/cas e a old new]")),
        ("db.fn/call", [name, args @ ..]) => {
            let name = match name {
                Edn::Symbol(s) | Edn::String(s) => s.clone(),
                Edn::Keyword(k) => k.as_str().to_owned(),
                _ => {
                    return Err(malformed(
                        form,
                        "a transaction function is named by a symbol",
                    ))
                }
            };
            let args = args
                .iter()
                .map(|a| call_arg(a, schema, form))
                .collect::<Result<_, _>>()?;
            Ok(TxOp::Call { name, args })
        }
        ("db.fn/call", _) => Err(wrong_arity("[:db.fn/call name args…]")),
        // As Datascript, any other keyword names a transaction function
        // (`[:inc-age "Petr"]`, where Datascript finds the `:db/fn` of the ident
        // `:inc-age`; here the function registered as `inc-age`). The `db` namespaces stay
        // reserved, so a misspelt built-in operation is named as such.
        (name, args) if !name.starts_with("db/") && !name.starts_with("db.fn/") => {
            let args = args
                .iter()
                .map(|a| call_arg(a, schema, form))
                .collect::<Result<_, _>>()?;
            Ok(TxOp::Call {
                name: name.to_owned(),
                args,
            })
        }
        _ => Err(malformed(
            form,
            "unknown operation (expected :db/add, :db/retract, :db.fn/retractAttribute, \
             :db/retractEntity, :db/cas, :db.fn/call or a transaction function's keyword)",
        )),
    }
}

/// An argument of `:db.fn/call`: a scalar, a map (an entity map), or a vector or list
/// of arguments ([`TxValue::Many`]; the function reads a lookup ref there as it likes).
fn call_arg(f: &Edn, schema: &Schema, form: &Edn) -> Result<TxValue, Error> {
    match f {
        Edn::Vector(items) | Edn::List(items) => Ok(TxValue::Many(
            items
                .iter()
                .map(|i| call_arg(i, schema, form))
                .collect::<Result<_, _>>()?,
        )),
        Edn::Map(entries) => Ok(TxValue::Nested(entity_map(entries, schema)?)),
        other => Ok(TxValue::Value(scalar(other, form)?)),
    }
}

/// A datom in tx data (`#datascript/Datom [e a v tx added]`, also `#datom`): an
/// assertion of `[e a v]` when `added` (or absent), else its retraction. The datom's
/// own tx is not kept: every datom of a transaction carries the transaction's id.
fn datom_op(form: &Edn, schema: &Schema) -> Result<TxOp, Error> {
    let d = datom_from_edn(form, Some(schema))?;
    let (e, v) = (EntityRef::Id(d.e), TxValue::Value(d.v));
    Ok(if d.added {
        TxOp::Add(e, d.a, v)
    } else {
        TxOp::Retract(e, d.a, v)
    })
}

fn entity_map(entries: &[(Edn, Edn)], schema: &Schema) -> Result<EntityMap, Error> {
    let whole = Edn::Map(entries.to_vec());
    let mut map = EntityMap::new();
    for (k, v) in entries {
        let Edn::Keyword(attr) = k else {
            return Err(malformed(&whole, "entity map keys must be keywords"));
        };
        if attr.as_str() == DB_ID {
            if let Edn::Keyword(k) = v {
                if !is_current_tx_keyword(k) {
                    // Datascript resolves idents in entity positions of list forms, not
                    // as a map's :db/id.
                    return Err(malformed(
                        &whole,
                        &format!("Expected number, string or lookup ref for :db/id, got {k}"),
                    ));
                }
            }
            map.id = Some(entity_ref(v, &whole)?);
        } else {
            map.attrs
                .push((attr.clone(), value(attr, v, schema, true, &whole)?));
        }
    }
    Ok(map)
}

/// An entity position: id, tempid, lookup ref, `:db/current-tx` or an ident keyword
/// (`:red`, which is the lookup ref `[:db/ident :red]`, as in Datascript).
fn entity_ref(f: &Edn, form: &Edn) -> Result<EntityRef, Error> {
    match f {
        Edn::Int(n) => Ok(EntityRef::from(*n)),
        Edn::String(s) => Ok(EntityRef::Tempid(s.clone())),
        Edn::Keyword(k) if is_current_tx_keyword(k) => Ok(EntityRef::CurrentTx),
        Edn::Keyword(k) => Ok(EntityRef::Lookup(
            Keyword::new(IDENT),
            Value::Keyword(k.clone()),
        )),
        Edn::Vector(items) => match items.as_slice() {
            [Edn::Keyword(a), v] => Ok(EntityRef::Lookup(a.clone(), scalar(v, form)?)),
            _ => Err(malformed(
                form,
                &format!("{} is not a lookup ref [:attr value]", quote(f)),
            )),
        },
        _ => Err(malformed(
            form,
            &format!(
                "{} is not an entity id, tempid, lookup ref, ident or :db/current-tx",
                quote(f)
            ),
        )),
    }
}

/// A value: a scalar, or a symbol or collection held whole (Datascript stores any
/// value; see [`crate::composite`]).
fn scalar(f: &Edn, form: &Edn) -> Result<crate::value::Value, Error> {
    match f {
        Edn::Nil => Err(malformed(form, &format!("{} is not a value", quote(f)))),
        _ => f.to_value(),
    }
}

/// True for `[:attr value]` (a keyword other than `:db/current-tx` first).
fn is_lookup_form(items: &[Edn]) -> bool {
    matches!(items, [Edn::Keyword(k), _] if !is_current_tx_keyword(k))
}

/// A value of `attr`; `in_map` allows collections (cardinality-many and reverse
/// attributes) and nested maps, as entity maps do.
fn value(
    attr: &Keyword,
    f: &Edn,
    schema: &Schema,
    in_map: bool,
    form: &Edn,
) -> Result<TxValue, Error> {
    let reverse = attr.reverse_of();
    let spec: AttributeSchema = schema
        .get(reverse.as_ref().unwrap_or(attr))
        .cloned()
        .unwrap_or_default();
    let many = in_map && (reverse.is_some() || spec.is_many());
    let is_ref = reverse.is_some() || spec.is_ref();
    // Where several values may be given, a pair is a lookup ref only when it starts with
    // a :db.unique/identity attribute; otherwise it is two values (Datascript's
    // `maybe-wrap-multival`).
    let lookup_here = |items: &[Edn]| match items {
        [Edn::Keyword(k), _] if many => schema
            .get(k)
            .is_some_and(|s| s.unique == Some(Unique::Identity)),
        _ => is_lookup_form(items),
    };
    match f {
        Edn::Vector(items) if is_ref && lookup_here(items) => ref_value(f, schema, form),
        // A pair starting with an identity attribute under a cardinality-many attribute
        // is one value, not two (Datascript's `maybe-wrap-multival`).
        Edn::Vector(items) if lookup_here(items) => scalar(f, form).map(TxValue::Value),
        Edn::Vector(items) | Edn::List(items) | Edn::Set(items) if many => Ok(TxValue::Many(
            items
                .iter()
                .map(|item| {
                    if is_ref {
                        ref_value(item, schema, form)
                    } else {
                        scalar(item, form).map(TxValue::Value)
                    }
                })
                .collect::<Result<_, _>>()?,
        )),
        // Under any other attribute a collection or a map is one value, held whole.
        _ if is_ref => ref_value(f, schema, form),
        _ => scalar(f, form).map(TxValue::Value),
    }
}

/// One value of a ref attribute: an entity position or a nested map.
fn ref_value(f: &Edn, schema: &Schema, form: &Edn) -> Result<TxValue, Error> {
    match f {
        Edn::Map(entries) => entity_map(entries, schema).map(TxValue::Nested),
        // Ints and strings stay plain values: the resolver reads them as ids and tempids
        // under ref attributes, and reports other values as wrongly typed.
        Edn::Int(_) | Edn::String(_) => scalar(f, form).map(TxValue::Value),
        Edn::Keyword(k) if is_current_tx_keyword(k) => Ok(TxValue::CurrentTx),
        Edn::Vector(items) if is_lookup_form(items) => entity_ref(f, form).map(TxValue::from),
        _ => scalar(f, form).map(TxValue::Value),
    }
}
