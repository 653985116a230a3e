//! Conversions between EDN forms and datoms values, datoms and schemas.
//!
//! Values are written as Datascript writes them: strings, integers (longs), floats
//! (doubles), booleans, keywords, `#inst "…"` (instants), `#uuid "…"` and
//! `#bytes "base64"`. Instants and base64 are handled here, with no date or base64
//! dependency.

use std::sync::Arc;

use super::{parse, Edn};
use crate::datom::Datom;
use crate::error::Error;
use crate::schema::{AttributeSchema, Cardinality, Schema, Unique};
use crate::value::{Keyword, Uuid, Value, ValueType};

impl Edn {
    /// The datom value this form denotes: a string, integer (`Long`), float (`Double`),
    /// boolean or keyword, or one of the tagged literals `#inst "2020-01-01T00:00:00Z"`
    /// (`Instant`, see below), `#uuid "…"` (`Uuid`) and `#bytes "base64"` (`Bytes`).
    ///
    /// `#inst` reads RFC 3339 timestamps `YYYY-MM-DDTHH:MM:SS(.fff)?(Z|±HH:MM)` and
    /// date-only `YYYY-MM-DD` (midnight UTC); the seconds may be left out, a time
    /// without an offset is UTC, fraction digits past milliseconds are truncated, and the
    /// year may carry a sign and more than four digits (`-0001`, `+10000`), as
    /// [`value_to_edn`] writes years outside `0000..=9999`.
    ///
    /// Symbols, vectors, lists (read as vectors), sets and maps are composite values (see
    /// [`crate::composite`]), their elements read as values (`nil` included); a
    /// character is a one-character string. Anything else (`nil`, `##NaN`, other tags,
    /// malformed timestamps, uuids or base64, a collection too large) is
    /// [`Error::InvalidValue`] naming the form. Refs
    /// are plain integers in EDN: [`datom_from_edn`] makes them refs from the schema.
    ///
    /// ```
    /// use datoms_core::edn::parse;
    /// use datoms_core::Value;
    /// let v = parse("#inst \"1970-01-01T00:00:01.5Z\"").unwrap().to_value().unwrap();
    /// assert_eq!(v, Value::Instant(1500));
    /// ```
    pub fn to_value(&self) -> Result<Value, Error> {
        match self {
            Edn::Bool(b) => Ok(Value::Bool(*b)),
            Edn::Int(i) => Ok(Value::Long(*i)),
            Edn::Float(x) => Value::double(*x).map_err(|_| Error::InvalidValue {
                reason: format!(
                    "`{self}` is not a datom value: NaN has no place in the value order"
                ),
            }),
            Edn::String(s) => Ok(Value::string(s)),
            Edn::Keyword(k) => Ok(Value::Keyword(k.clone())),
            Edn::Tagged(tag, form) => {
                let (tag @ ("inst" | "uuid" | "bytes"), Edn::String(s)) = (tag.as_str(), &**form)
                else {
                    return Err(not_a_value(self));
                };
                let value = match tag {
                    "inst" => inst_millis(s).map(Value::Instant).map_err(String::from),
                    "uuid" => Uuid::parse(s)
                        .map(Value::Uuid)
                        .map_err(|_| "not a canonical 8-4-4-4-12 hex uuid".to_owned()),
                    _ => base64_decode(s).map(|b| Value::Bytes(Arc::from(b))),
                };
                value.map_err(|why| Error::InvalidValue {
                    reason: format!("`{}` is not a valid value: {why}", describe(self)),
                })
            }
            // A character is a one-character string, as in ClojureScript.
            Edn::Char(c) => Ok(Value::string(&c.to_string())),
            other => match crate::composite::from_edn(other) {
                Some(v) => {
                    let v = v?;
                    v.check_storable()?;
                    Ok(v)
                }
                None => Err(not_a_value(self)),
            },
        }
    }
}

fn not_a_value(form: &Edn) -> Error {
    Error::InvalidValue {
        reason: format!(
            "`{}` is not a datom value (expected a string, number, boolean, keyword, #inst, #uuid or #bytes)",
            describe(form)
        ),
    }
}

/// The printed form, cut short for error messages.
fn describe(form: &Edn) -> String {
    let mut text = form.to_string();
    if let Some((cut, _)) = text.char_indices().nth(80) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The EDN form of a value, the inverse of [`Edn::to_value`]: a `Ref` becomes a plain
/// integer, an `Instant` becomes `#inst "YYYY-MM-DDTHH:MM:SS.fffZ"`, `Bytes` become
/// `#bytes "base64"`. Ids above `i64::MAX` (never produced: ids are at most
/// [`EMAX`](crate::EMAX)) would be written as `i64::MAX`.
///
/// ```
/// use datoms_core::edn::value_to_edn;
/// use datoms_core::Value;
/// assert_eq!(value_to_edn(&Value::Instant(-1)).to_string(), "#inst \"1969-12-31T23:59:59.999Z\"");
/// ```
pub fn value_to_edn(v: &Value) -> Edn {
    let tagged = |tag: &str, text: String| Edn::Tagged(tag.to_owned(), Box::new(Edn::String(text)));
    match v {
        Value::Bool(b) => Edn::Bool(*b),
        Value::Long(i) => Edn::Int(*i),
        Value::Double(d) => Edn::Float(d.get()),
        Value::Instant(ms) => tagged("inst", format_inst(*ms)),
        Value::String(s) => Edn::String(s.to_string()),
        Value::Keyword(k) => Edn::Keyword(k.clone()),
        Value::Uuid(u) => tagged("uuid", u.to_string()),
        Value::Bytes(b) => tagged("bytes", base64_encode(b)),
        Value::Ref(e) => Edn::Int(id_to_int(*e)),
        Value::Symbol(_) | Value::Vector(_) | Value::Set(_) | Value::Map(_) => {
            crate::composite::to_edn(v).unwrap_or(Edn::Nil)
        }
    }
}

fn id_to_int(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// `#datom [e a v tx added]`, as Datascript prints a datom.
///
/// ```
/// use datoms_core::edn::datom_to_edn;
/// use datoms_core::{Datom, TX0};
/// let d = Datom::new(1, ":person/name", "Ann", TX0 + 1);
/// assert_eq!(datom_to_edn(&d).to_string(), "#datom [1 :person/name \"Ann\" 536870913 true]");
/// ```
pub fn datom_to_edn(d: &Datom) -> Edn {
    Edn::Tagged(
        "datom".to_owned(),
        Box::new(Edn::Vector(vec![
            Edn::Int(id_to_int(d.e)),
            Edn::Keyword(d.a.clone()),
            value_to_edn(&d.v),
            Edn::Int(id_to_int(d.tx)),
            Edn::Bool(d.added),
        ])),
    )
}

/// Reads a datom written as `#datom [e a v tx added]` (also Datascript's
/// `#datascript/Datom` tag; `added` may be left out and is then `true`).
///
/// The value is read with [`Edn::to_value`], except that when `schema` declares the
/// attribute `:db.type/ref` it must be a non-negative integer and becomes a
/// [`Value::Ref`]; without a schema, refs come back as `Long`s. A form that is not a
/// datom is [`Error::MalformedTx`]; a bad value is [`Error::InvalidValue`]. Both name
/// the form.
///
/// ```
/// use datoms_core::edn::{datom_from_edn, parse, parse_schema};
/// use datoms_core::Value;
/// let form = parse("#datom [1 :person/friend 2 536870913 true]").unwrap();
/// assert_eq!(datom_from_edn(&form, None).unwrap().v, Value::Long(2));
/// let schema = parse_schema("{:person/friend {:db/valueType :db.type/ref}}").unwrap();
/// assert_eq!(datom_from_edn(&form, Some(&schema)).unwrap().v, Value::Ref(2));
/// ```
pub fn datom_from_edn(form: &Edn, schema: Option<&Schema>) -> Result<Datom, Error> {
    let malformed = |why: &str| Error::MalformedTx {
        reason: format!("`{}` is not a datom: {why}", describe(form)),
    };
    let items = match form {
        Edn::Tagged(tag, inner) if tag == "datom" || tag == "datascript/Datom" => match &**inner {
            Edn::Vector(items) => items,
            _ => {
                return Err(malformed(
                    "expected a vector [e a v tx added] after the tag",
                ))
            }
        },
        _ => return Err(malformed("expected #datom [e a v tx added]")),
    };
    let (e, a, v, tx, added) = match items.as_slice() {
        [e, a, v, tx] => (e, a, v, tx, None),
        [e, a, v, tx, added] => (e, a, v, tx, Some(added)),
        _ => return Err(malformed("expected 4 or 5 elements [e a v tx added]")),
    };
    let id = |form: &Edn| match form {
        Edn::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    };
    let e = id(e).ok_or_else(|| malformed("the entity id must be a non-negative integer"))?;
    let Edn::Keyword(a) = a else {
        return Err(malformed("the attribute must be a keyword"));
    };
    let tx = id(tx).ok_or_else(|| malformed("the tx must be a non-negative integer"))?;
    let added = match added {
        None => true,
        Some(Edn::Bool(b)) => *b,
        Some(_) => return Err(malformed("added must be true or false")),
    };
    let is_ref = schema
        .and_then(|s| s.get(a))
        .is_some_and(AttributeSchema::is_ref);
    let v = if is_ref {
        Value::Ref(id(v).ok_or_else(|| Error::InvalidValue {
            reason: format!(
                "`{}` is not an entity id, as the value of ref attribute {a} in `{}`",
                describe(v),
                describe(form)
            ),
        })?)
    } else {
        v.to_value()?
    };
    Ok(Datom {
        e,
        a: a.clone(),
        v,
        tx,
        added,
    })
}

/// Reads a schema written as a Datascript user writes it: a map from attribute to its
/// declaration, e.g.
/// `{:person/name {:db/unique :db.unique/identity}
///   :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}`.
/// A Datomic-style vector of declarations each naming its attribute with `:db/ident` is
/// read too.
///
/// Declarations may hold `:db/valueType` (`:db.type/…`), `:db/cardinality`
/// (`:db.cardinality/one` or `/many`), `:db/unique` (`:db.unique/identity` or
/// `/value`), `:db/index` and `:db/isComponent` (booleans), `:db/doc` (a string),
/// `:db/tupleAttrs` (a vector of attributes: a composite tuple), `:db/tupleType` (a type)
/// and `:db/tupleTypes` (a vector of types).
/// Any other key is ignored, as Datascript ignores it ([`schema_from_edn_with_warnings`]
/// names them). A value of one of these keys of the wrong kind, an unknown type,
/// cardinality or uniqueness, or a component that is not a ref, is [`Error::BadSchema`]
/// naming the attribute. A form that is not a map of
/// keywords (or a vector of maps) is [`Error::InvalidValue`]. Strictness
/// ([`Schema::strict`]) is not part of the text.
///
/// ```
/// use datoms_core::edn::parse;
/// use datoms_core::edn::schema_from_edn;
/// let schema = schema_from_edn(&parse("{:person/age {:db/index true}}").unwrap()).unwrap();
/// assert!(schema.in_avet(&":person/age".into()));
/// ```
pub fn schema_from_edn(form: &Edn) -> Result<Schema, Error> {
    schema_from_edn_with_warnings(form).map(|(schema, _)| schema)
}

/// A schema property that was ignored, as Datascript ignores it: a key no declaration
/// takes (`:db/type`, `:db/noHistory`, `:my/own-key`, a key that is not a keyword).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaWarning {
    /// The attribute whose declaration holds it.
    pub attr: Keyword,
    /// The ignored key, printed as EDN.
    pub key: String,
}

impl std::fmt::Display for SchemaWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "schema of {}: unknown property {} ignored (as Datascript ignores it)",
            self.attr, self.key
        )
    }
}

/// [`schema_from_edn`], also answering the properties it ignored, so that a tool can
/// warn about them (a misspelt `:db/cardinality` is ignored, as in Datascript).
///
/// ```
/// use datoms_core::edn::{parse, schema_from_edn_with_warnings};
/// let form = parse("{:a {:db/type :db.type/string :db/index true}}").unwrap();
/// let (schema, warnings) = schema_from_edn_with_warnings(&form).unwrap();
/// assert!(schema.in_avet(&":a".into()));
/// assert_eq!(warnings[0].key, ":db/type");
/// ```
///
/// # Errors
/// As [`schema_from_edn`].
pub fn schema_from_edn_with_warnings(form: &Edn) -> Result<(Schema, Vec<SchemaWarning>), Error> {
    let mut warnings = Vec::new();
    let mut schema = Schema::new();
    match form {
        Edn::Map(pairs) => {
            for (attr, spec) in pairs {
                let attr = attribute_name(attr)?;
                let spec = attribute_from_edn(&attr, spec, false, &mut warnings)?;
                schema = schema.with(attr, spec)?;
            }
        }
        Edn::Vector(specs) | Edn::List(specs) => {
            for spec in specs {
                let ident = match spec {
                    Edn::Map(pairs) => pairs
                        .iter()
                        .find(|(k, _)| matches!(k, Edn::Keyword(k) if k.as_str() == "db/ident"))
                        .map(|(_, v)| v),
                    _ => None,
                };
                let ident = ident.ok_or_else(|| Error::InvalidValue {
                    reason: format!(
                        "schema declaration `{}` is not a map with a :db/ident",
                        describe(spec)
                    ),
                })?;
                let attr = attribute_name(ident)?;
                let spec = attribute_from_edn(&attr, spec, true, &mut warnings)?;
                schema = schema.with(attr, spec)?;
            }
        }
        _ => {
            return Err(Error::InvalidValue {
                reason: format!(
                    "a schema is a map from attribute to declaration, not `{}`",
                    describe(form)
                ),
            })
        }
    }
    Ok((schema, warnings))
}

/// Parses schema text; see [`schema_from_edn`].
///
/// ```
/// use datoms_core::edn::parse_schema;
/// let schema = parse_schema(
///     "{:person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}",
/// ).unwrap();
/// assert!(schema.get(&":person/friend".into()).unwrap().is_many());
/// ```
pub fn parse_schema(text: &str) -> Result<Schema, Error> {
    schema_from_edn(&parse(text)?)
}

/// Parses schema text; see [`schema_from_edn_with_warnings`].
///
/// # Errors
/// As [`schema_from_edn`], or [`Error::EdnSyntax`].
pub fn parse_schema_with_warnings(text: &str) -> Result<(Schema, Vec<SchemaWarning>), Error> {
    schema_from_edn_with_warnings(&parse(text)?)
}

fn attribute_name(form: &Edn) -> Result<Keyword, Error> {
    match form {
        Edn::Keyword(k) => Ok(k.clone()),
        _ => Err(Error::InvalidValue {
            reason: format!("schema attribute `{}` is not a keyword", describe(form)),
        }),
    }
}

fn attribute_from_edn(
    attr: &Keyword,
    spec: &Edn,
    with_ident: bool,
    warnings: &mut Vec<SchemaWarning>,
) -> Result<AttributeSchema, Error> {
    let bad = |reason: String| Error::BadSchema {
        attr: attr.clone(),
        reason,
    };
    let Edn::Map(pairs) = spec else {
        return Err(bad(format!(
            "the declaration `{}` is not a map",
            describe(spec)
        )));
    };
    let mut out = AttributeSchema::default();
    // Datascript reads a declaration by its values (`attr->properties`): a property whose
    // value is `:db.type/ref` makes a ref whatever its key, so `{:db/type :db.type/ref}`
    // (its own upsert tests write it) declares a ref there; so it does here, unless a
    // `:db/valueType` says otherwise.
    let mut ref_by_type = false;
    for (key, value) in pairs {
        let ignore = |warnings: &mut Vec<SchemaWarning>| {
            warnings.push(SchemaWarning {
                attr: attr.clone(),
                key: describe(key),
            });
        };
        let Edn::Keyword(key) = key else {
            ignore(warnings);
            continue;
        };
        let done = match (key.as_str(), value) {
            ("db/ident", _) => with_ident,
            ("db/valueType", Edn::Keyword(t)) => {
                let t = ValueType::from_keyword(t.as_str())
                    .ok_or_else(|| bad(format!("unknown :db/valueType {t}")))?;
                out.value_type = Some(t);
                true
            }
            ("db/cardinality", Edn::Keyword(c)) => {
                out.cardinality = match c.as_str() {
                    "db.cardinality/one" => Cardinality::One,
                    "db.cardinality/many" => Cardinality::Many,
                    _ => return Err(bad(format!("unknown :db/cardinality {c}"))),
                };
                true
            }
            ("db/unique", Edn::Keyword(u)) => {
                out.unique = Some(match u.as_str() {
                    "db.unique/identity" => Unique::Identity,
                    "db.unique/value" => Unique::Value,
                    _ => return Err(bad(format!("unknown :db/unique {u}"))),
                });
                true
            }
            ("db/index", Edn::Bool(b)) => {
                out.index = *b;
                true
            }
            ("db/isComponent", Edn::Bool(b)) => {
                out.is_component = *b;
                true
            }
            ("db/doc", Edn::String(doc)) => {
                out.doc = Some(doc.clone());
                true
            }
            ("db/tupleAttrs", Edn::Vector(items) | Edn::List(items)) => {
                let attrs: Option<Vec<Keyword>> = items
                    .iter()
                    .map(|i| match i {
                        Edn::Keyword(k) => Some(k.clone()),
                        _ => None,
                    })
                    .collect();
                out.tuple_attrs = attrs;
                out.tuple_attrs.is_some()
            }
            ("db/tupleType", Edn::Keyword(t)) => {
                let t = ValueType::from_keyword(t.as_str())
                    .ok_or_else(|| bad(format!("unknown :db/tupleType {t}")))?;
                out.tuple_type = Some(t);
                true
            }
            ("db/type", Edn::Keyword(t)) if t.as_str() == "db.type/ref" => {
                ref_by_type = true;
                true
            }
            ("db/tupleTypes", Edn::Vector(items) | Edn::List(items)) => {
                let types: Option<Vec<ValueType>> = items
                    .iter()
                    .map(|i| match i {
                        Edn::Keyword(k) => ValueType::from_keyword(k.as_str()),
                        _ => None,
                    })
                    .collect();
                out.tuple_types = types;
                out.tuple_types.is_some()
            }
            _ => false,
        };
        if !done {
            let expected = match key.as_str() {
                "db/valueType" => "a :db.type/… keyword",
                "db/cardinality" => ":db.cardinality/one or :db.cardinality/many",
                "db/unique" => ":db.unique/identity or :db.unique/value",
                "db/index" | "db/isComponent" => "true or false",
                "db/doc" => "a string",
                "db/tupleAttrs" => "a vector of attribute keywords",
                "db/tupleType" => "a :db.type/… keyword",
                "db/tupleTypes" => "a vector of :db.type/… keywords",
                _ => {
                    ignore(warnings);
                    continue;
                }
            };
            return Err(bad(format!(
                "{key} must be {expected}, not `{}`",
                describe(value)
            )));
        }
    }
    if ref_by_type && out.value_type.is_none() {
        out.value_type = Some(ValueType::Ref);
    }
    Ok(out)
}

/// The EDN form of a schema, the inverse of [`schema_from_edn`]: a map from attribute
/// (in keyword order) to its declaration, leaving out defaults (cardinality one, no
/// type, not unique, not indexed, not a component, no doc).
///
/// ```
/// use datoms_core::edn::{parse_schema, schema_to_edn};
/// let text = "{:person/name {:db/valueType :db.type/string, :db/unique :db.unique/identity}}";
/// assert_eq!(schema_to_edn(&parse_schema(text).unwrap()).to_string(), text);
/// ```
pub fn schema_to_edn(s: &Schema) -> Edn {
    let kw = |text: &str| Edn::Keyword(Keyword::new(text));
    Edn::Map(
        s.iter()
            .map(|(attr, spec)| {
                let mut pairs = Vec::new();
                if let Some(t) = spec.value_type {
                    pairs.push((kw("db/valueType"), kw(t.keyword())));
                }
                if spec.cardinality == Cardinality::Many {
                    pairs.push((kw("db/cardinality"), kw("db.cardinality/many")));
                }
                match spec.unique {
                    Some(Unique::Identity) => {
                        pairs.push((kw("db/unique"), kw("db.unique/identity")));
                    }
                    Some(Unique::Value) => pairs.push((kw("db/unique"), kw("db.unique/value"))),
                    None => {}
                }
                if spec.index {
                    pairs.push((kw("db/index"), Edn::Bool(true)));
                }
                if spec.is_component {
                    pairs.push((kw("db/isComponent"), Edn::Bool(true)));
                }
                if let Some(doc) = &spec.doc {
                    pairs.push((kw("db/doc"), Edn::String(doc.clone())));
                }
                if let Some(attrs) = &spec.tuple_attrs {
                    let attrs = attrs.iter().map(|a| Edn::Keyword(a.clone())).collect();
                    pairs.push((kw("db/tupleAttrs"), Edn::Vector(attrs)));
                }
                if let Some(t) = spec.tuple_type {
                    pairs.push((kw("db/tupleType"), kw(t.keyword())));
                }
                if let Some(types) = &spec.tuple_types {
                    let types = types.iter().map(|t| kw(t.keyword())).collect();
                    pairs.push((kw("db/tupleTypes"), Edn::Vector(types)));
                }
                (Edn::Keyword(attr.clone()), Edn::Map(pairs))
            })
            .collect(),
    )
}

// ---- instants ---------------------------------------------------------------------

const MS_PER_DAY: i128 = 86_400_000;

/// A cursor over the ASCII bytes of a timestamp.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), &'static str> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(what)
        }
    }

    /// Reads `min..=max` digits.
    fn digits(&mut self, min: usize, max: usize, what: &'static str) -> Result<i128, &'static str> {
        let start = self.i;
        let mut n: i128 = 0;
        while self.i - start < max {
            match self.b.get(self.i) {
                Some(d) if d.is_ascii_digit() => {
                    n = n.saturating_mul(10).saturating_add(i128::from(d - b'0'));
                    self.i += 1;
                }
                _ => break,
            }
        }
        if self.i - start < min {
            return Err(what);
        }
        Ok(n)
    }
}

fn inst_millis(text: &str) -> Result<i64, &'static str> {
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    let year_sign = if c.eat(b'-') { -1 } else { 1 };
    if year_sign == 1 {
        c.eat(b'+');
    }
    let year = year_sign * c.digits(4, 12, "the year must have at least four digits")?;
    c.expect(b'-', "expected `-` after the year")?;
    let month = c.digits(2, 2, "the month must have two digits")?;
    c.expect(b'-', "expected `-` after the month")?;
    let day = c.digits(2, 2, "the day must have two digits")?;
    if !(1..=12).contains(&month) {
        return Err("the month is not in 01..12");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("no such day in that month");
    }
    let (mut hour, mut minute, mut second, mut millis, mut offset) = (0, 0, 0, 0, 0);
    if c.i < c.b.len() {
        if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
            return Err("expected `T` after the date");
        }
        hour = c.digits(2, 2, "the hour must have two digits")?;
        c.expect(b':', "expected `:` after the hour")?;
        minute = c.digits(2, 2, "the minutes must have two digits")?;
        if c.eat(b':') {
            second = c.digits(2, 2, "the seconds must have two digits")?;
            if c.eat(b'.') {
                let start = c.i;
                c.digits(
                    1,
                    usize::MAX,
                    "expected digits after `.` (not an RFC 3339 timestamp)",
                )?;
                // Keep milliseconds: the first three digits, padded with zeros.
                let digits = c.b.get(start..c.i).unwrap_or_default();
                millis = digits
                    .iter()
                    .chain([b'0'; 3].iter())
                    .take(3)
                    .fold(0, |n, d| n * 10 + i128::from(d - b'0'));
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err("the time of day is out of range");
        }
        if !(c.eat(b'Z') || c.eat(b'z')) && c.i < c.b.len() {
            let sign = if c.eat(b'+') {
                1
            } else if c.eat(b'-') {
                -1
            } else {
                return Err("expected `Z` or a `±HH:MM` offset");
            };
            let oh = c.digits(2, 2, "the offset hours must have two digits")?;
            c.expect(b':', "expected `:` in the offset")?;
            let om = c.digits(2, 2, "the offset minutes must have two digits")?;
            if oh > 23 || om > 59 {
                return Err("the offset is out of range");
            }
            offset = sign * (oh * 60 + om) * 60_000;
        }
    }
    if c.i != c.b.len() {
        return Err("unexpected text after the timestamp");
    }
    let ms = days_from_civil(year, month, day) * MS_PER_DAY
        + ((hour * 60 + minute) * 60 + second) * 1000
        + millis
        - offset;
    i64::try_from(ms).map_err(|_| "the instant is out of range")
}

fn days_in_month(year: i128, month: i128) -> i128 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number since 1970-01-01.
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 text with milliseconds in UTC; years outside `0000..=9999` carry a sign.
fn format_inst(ms: i64) -> String {
    let ms = i128::from(ms);
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let t = ms.rem_euclid(MS_PER_DAY);
    let year = match year {
        0..=9999 => format!("{year:04}"),
        y if y < 0 => format!("-{:04}", -y),
        y => format!("+{y}"),
    };
    format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3_600_000,
        t / 60_000 % 60,
        t / 1000 % 60,
        t % 1000
    )
}

// ---- base64 -----------------------------------------------------------------------

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |k: usize| u32::from(chunk.get(k).copied().unwrap_or(0));
        let n = byte(0) << 16 | byte(1) << 8 | byte(2);
        for k in 0..4 {
            if k <= chunk.len() {
                let sextet = (n >> (18 - 6 * k)) & 63;
                out.push(char::from(
                    BASE64.get(sextet as usize).copied().unwrap_or(b'A'),
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_sextet(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// Decodes standard, padded, canonical base64 (the unused bits of the last group must
/// be zero, so every byte string has exactly one text).
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let bad = |why: String| format!("not padded standard base64: {why}");
    let b = text.as_bytes();
    if b.len() % 4 != 0 {
        return Err(bad("its length is not a multiple of 4".into()));
    }
    let groups = b.len() / 4;
    let mut out = Vec::with_capacity(groups * 3);
    for (g, group) in b.chunks_exact(4).enumerate() {
        let pad = group.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && g + 1 != groups) {
            return Err(bad("misplaced `=` padding".into()));
        }
        let mut n = 0;
        for (k, &c) in group.iter().take(4 - pad).enumerate() {
            let sextet = base64_sextet(c)
                .ok_or_else(|| bad(format!("invalid character at offset {}", g * 4 + k)))?;
            n = n << 6 | sextet;
        }
        n <<= 6 * pad;
        let [_, b0, b1, b2] = n.to_be_bytes();
        let bytes = [b0, b1, b2];
        let (keep, dropped) = bytes.split_at(3 - pad);
        if dropped.iter().any(|&x| x != 0) {
            return Err(bad("the unused bits of the last group are not zero".into()));
        }
        out.extend_from_slice(keep);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datom::TX0;
    use proptest::prelude::*;

    fn inst(text: &str) -> Result<Value, Error> {
        Edn::Tagged("inst".into(), Box::new(Edn::String(text.into()))).to_value()
    }

    #[test]
    fn scalars_convert_to_values() {
        let uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        let cases = [
            ("\"Ann\"", Value::string("Ann")),
            ("42", Value::Long(42)),
            ("1.5", Value::double(1.5).unwrap()),
            ("-0.0", Value::double(0.0).unwrap()),
            ("true", Value::Bool(true)),
            (":person/name", Value::keyword(":person/name")),
            ("#inst \"1970-01-01T00:00:00Z\"", Value::Instant(0)),
            (
                &format!("#uuid \"{uuid}\"") as &str,
                Value::Uuid(Uuid::parse(uuid).unwrap()),
            ),
            ("#bytes \"AP8=\"", Value::Bytes(Arc::from(vec![0u8, 255]))),
        ];
        for (text, value) in cases {
            assert_eq!(parse(text).unwrap().to_value(), Ok(value), "{text}");
        }
    }

    /// Symbols, vectors, lists, sets and maps are values (see `crate::composite`): a
    /// list is the vector of its elements, a set and a map are sorted, `nil` may be an
    /// element, a character is a string; each prints back as EDN that reads to itself.
    #[test]
    fn composite_forms_are_values_and_print_back() {
        use crate::value::{Symbol, ValueMap, ValueSet};
        let l = |i| Some(Value::Long(i));
        let cases = [
            ("sym", Value::Symbol(Symbol::parse("sym").unwrap()), "sym"),
            ("\\c", Value::string("c"), "\"c\""),
            ("[1 nil]", Value::vector([l(1), None]), "[1 nil]"),
            ("(1 2)", Value::vector([l(1), l(2)]), "[1 2]"),
            ("#{2 1}", Value::Set(ValueSet::new([l(1), l(2)])), "#{1 2}"),
            (
                "{:b 1 :a [x]}",
                Value::Map(
                    ValueMap::new([
                        (
                            Some(Value::keyword(":a")),
                            Some(Value::vector([Some(Value::Symbol(
                                Symbol::parse("x").unwrap(),
                            ))])),
                        ),
                        (Some(Value::keyword(":b")), l(1)),
                    ])
                    .unwrap(),
                ),
                "{:a [x], :b 1}",
            ),
        ];
        for (text, value, printed) in cases {
            let v = parse(text).unwrap().to_value().unwrap();
            assert_eq!(v, value, "{text}");
            assert_eq!(value_to_edn(&v).to_string(), printed, "{text}");
            assert_eq!(parse(printed).unwrap().to_value().unwrap(), v, "{printed}");
        }
    }

    /// A collection too large to store inline is refused, naming its size.
    #[test]
    fn a_collection_too_large_is_an_invalid_value() {
        let big = format!(
            "[\"{}\"]",
            "x".repeat(crate::composite::MAX_COMPOSITE_BYTES)
        );
        match parse(&big).unwrap().to_value() {
            Err(Error::InvalidValue { reason }) => assert!(reason.contains("bytes"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_forms_are_invalid_values_naming_the_form() {
        for text in [
            "nil",
            "##NaN",
            "#foo \"x\"",
            "#inst 5",
            "#uuid \"nope\"",
            "#bytes \"***=\"",
            "#inst \"2021-02-29\"",
        ] {
            let form = parse(text).unwrap();
            match form.to_value() {
                Err(Error::InvalidValue { reason }) => {
                    assert!(reason.contains(&form.to_string()), "{text}: {reason}");
                }
                other => panic!("{text} gave {other:?}"),
            }
        }
    }

    #[test]
    fn instants_read_rfc3339_and_date_only_forms() {
        let cases = [
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01T00:00:00.001Z", 1),
            ("1970-01-01T00:00:00.1Z", 100),
            ("1970-01-01T00:00:00.123456789Z", 123),
            ("1969-12-31T23:59:59.999Z", -1),
            ("2000-01-01", 946_684_800_000),
            ("2000-01-01T00:00:00", 946_684_800_000),
            ("2000-01-01T01:30Z", 946_690_200_000),
            ("2000-01-01t00:00:00z", 946_684_800_000),
            ("2000-01-01T02:00:00+02:00", 946_684_800_000),
            ("1999-12-31T19:00:00-05:00", 946_684_800_000),
            ("2020-02-29T12:34:56.789Z", 1_582_979_696_789),
            ("2024-12-31T23:59:59.999+00:00", 1_735_689_599_999),
            ("0000-01-01T00:00:00Z", -62_167_219_200_000),
            ("-0001-01-01T00:00:00.000Z", -62_198_755_200_000),
            ("+10000-01-01T00:00:00.000Z", 253_402_300_800_000),
        ];
        for (text, ms) in cases {
            assert_eq!(inst(text), Ok(Value::Instant(ms)), "{text}");
        }
    }

    #[test]
    fn malformed_instants_are_invalid_values() {
        for text in [
            "",
            "2020",
            "2020-1-01",
            "2020-13-01",
            "2020-00-01",
            "2021-02-29",
            "2020-04-31",
            "2020-01-01T",
            "2020-01-01T24:00:00Z",
            "2020-01-01T00:60:00Z",
            "2020-01-01T00:00:60Z",
            "2020-01-01T00:00:00.Z",
            "2020-01-01T00:00:00+0100",
            "2020-01-01T00:00:00+24:00",
            "2020-01-01T00:00:00Zjunk",
            "2020-01-01X00:00:00Z",
            "999999999999-01-01",
            "é",
        ] {
            assert!(
                matches!(inst(text), Err(Error::InvalidValue { .. })),
                "{text:?} gave {:?}",
                inst(text)
            );
        }
    }

    #[test]
    fn instants_print_in_utc_with_milliseconds() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (1_582_979_696_789, "2020-02-29T12:34:56.789Z"),
            (-62_198_755_200_000, "-0001-01-01T00:00:00.000Z"),
            (253_402_300_800_000, "+10000-01-01T00:00:00.000Z"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_inst(ms), text);
        }
        for ms in [i64::MIN, i64::MAX] {
            assert_eq!(inst(&format_inst(ms)), Ok(Value::Instant(ms)));
        }
    }

    #[test]
    fn base64_follows_rfc4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded), Ok(plain.as_bytes().to_vec()));
            let form = Edn::Tagged("bytes".into(), Box::new(Edn::String(encoded.into())));
            assert_eq!(
                form.to_value(),
                Ok(Value::Bytes(Arc::from(plain.as_bytes())))
            );
        }
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn malformed_base64_is_an_invalid_value() {
        for text in [
            "Zg=", "Zh==", "Zm9=", "Z===", "Zg==Zg==", "Zm9*", "Zm 9", "=Zm9", "Zm=v", "é123",
        ] {
            assert!(base64_decode(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn refs_become_plain_integers() {
        assert_eq!(value_to_edn(&Value::Ref(7)), Edn::Int(7));
    }

    fn sample_schema() -> &'static str {
        "{:person/name {:db/unique :db.unique/identity}
          :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}
          :person/age {:db/index true :db/doc \"age in years\"}
          :person/email {:db/valueType :db.type/string :db/unique :db.unique/value}
          :part/child {:db/valueType :db.type/ref :db/isComponent true}
          :plain/attr {}}"
    }

    #[test]
    fn datascript_schema_text_reads_into_a_schema() {
        let schema = parse_schema(sample_schema()).unwrap();
        let get = |a: &str| schema.get(&Keyword::new(a)).cloned().unwrap();
        assert_eq!(get(":person/name").unique, Some(Unique::Identity));
        assert!(get(":person/friend").is_ref() && get(":person/friend").is_many());
        assert!(get(":person/age").index);
        assert_eq!(get(":person/age").doc.as_deref(), Some("age in years"));
        assert_eq!(get(":person/email").unique, Some(Unique::Value));
        assert_eq!(get(":person/email").value_type, Some(ValueType::String));
        assert!(get(":part/child").is_component);
        assert_eq!(get(":plain/attr"), AttributeSchema::default());
        assert_eq!(schema.iter().count(), 6);
    }

    #[test]
    fn datomic_style_schema_vectors_read_too() {
        let schema = parse_schema(
            "[{:db/ident :person/name :db/valueType :db.type/string :db/unique :db.unique/identity}
              {:db/ident :person/friend :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]",
        )
        .unwrap();
        let expected = Schema::new()
            .with(
                ":person/name",
                AttributeSchema::default()
                    .value_type(ValueType::String)
                    .identity(),
            )
            .unwrap()
            .with(
                ":person/friend",
                AttributeSchema::default().value_type(ValueType::Ref).many(),
            )
            .unwrap();
        assert_eq!(schema, expected);
        assert!(matches!(
            parse_schema("[{:db/valueType :db.type/ref}]"),
            Err(Error::InvalidValue { .. })
        ));
    }

    #[test]
    fn schemas_round_trip_through_edn_text() {
        let schema = parse_schema(sample_schema()).unwrap();
        let text = schema_to_edn(&schema).to_string();
        assert_eq!(parse_schema(&text), Ok(schema));
        assert_eq!(schema_to_edn(&Schema::new()).to_string(), "{}");
    }

    #[test]
    fn bad_schemas_name_the_attribute() {
        let cases = [
            (
                "{:a/b {:db/valueType :db.type/text}}",
                "unknown :db/valueType :db.type/text",
            ),
            ("{:a/b {:db/valueType \"ref\"}}", ":db/valueType must be"),
            (
                "{:a/b {:db/cardinality :db.cardinality/few}}",
                "unknown :db/cardinality",
            ),
            ("{:a/b {:db/cardinality 2}}", ":db/cardinality must be"),
            ("{:a/b {:db/unique :db.unique/maybe}}", "unknown :db/unique"),
            ("{:a/b {:db/unique true}}", ":db/unique must be"),
            ("{:a/b {:db/index 1}}", ":db/index must be true or false"),
            (
                "{:a/b {:db/isComponent \"yes\"}}",
                ":db/isComponent must be",
            ),
            ("{:a/b {:db/doc :kw}}", ":db/doc must be a string"),
            ("{:a/b [:db/index true]}", "is not a map"),
            ("{:a/b {:db/isComponent true}}", ":db/isComponent requires"),
            ("{:a/_b {}}", "reserved for reverse references"),
        ];
        for (text, needle) in cases {
            match parse_schema(text) {
                Err(Error::BadSchema { attr, reason }) => {
                    assert!(attr.as_str().starts_with("a/"), "{text}: {attr}");
                    assert!(reason.contains(needle), "{text}: {reason}");
                }
                other => panic!("{text} gave {other:?}"),
            }
        }
        for text in ["[1 2]", "{\"a\" {}}", ":a", "{:a"] {
            assert!(
                matches!(
                    parse_schema(text),
                    Err(Error::InvalidValue { .. } | Error::EdnSyntax { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_schema_properties_are_ignored_and_named() {
        // Datascript 1.8.1: (d/empty-db {:a {:db/type :db.type/string}}) is accepted.
        let (schema, warnings) = parse_schema_with_warnings(
            "{:a/b {:db/type :db.type/string :db/noHistory true \"k\" 1 :db/cardinality :db.cardinality/many}}",
        )
        .unwrap();
        assert!(schema.get(&":a/b".into()).unwrap().is_many());
        let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, [":db/type", ":db/noHistory", "\"k\""]);
        assert!(warnings[0].to_string().contains(":a/b"), "{}", warnings[0]);
        assert_eq!(
            parse_schema("{:a/b {:db/ident :a/b}}").unwrap(),
            parse_schema("{:a/b {}}").unwrap()
        );
    }

    #[test]
    fn db_type_ref_declares_a_ref_as_in_datascript() {
        // Datascript 1.8.1's upsert.cljc declares `:ref {:db/type :db.type/ref}` and pulls
        // it as a ref (`{:db/id 3}`): its schema reading goes by the value.
        let (schema, warnings) = parse_schema_with_warnings(
            "{:ref {:db/unique :db.unique/identity :db/type :db.type/ref}}",
        )
        .unwrap();
        let ref_attr = schema.get(&":ref".into()).unwrap();
        assert_eq!(ref_attr.value_type, Some(ValueType::Ref));
        assert!(warnings.is_empty(), "{warnings:?}");
        let typed =
            parse_schema("{:a {:db/type :db.type/ref :db/valueType :db.type/string}}").unwrap();
        assert_eq!(
            typed.get(&":a".into()).unwrap().value_type,
            Some(ValueType::String)
        );
    }

    #[test]
    fn datoms_round_trip_with_refs_from_the_schema() {
        let schema = parse_schema(sample_schema()).unwrap();
        let datoms = [
            Datom::new(1, ":person/name", "Ann", TX0 + 1),
            Datom {
                v: Value::Ref(2),
                ..Datom::new(1, ":person/friend", 0i64, TX0 + 2)
            },
            Datom::new(3, ":person/age", 40i64, TX0 + 3).retraction(),
            Datom {
                v: Value::Instant(1_582_979_696_789),
                ..Datom::new(4, ":event/at", 0i64, TX0 + 4)
            },
        ];
        for d in datoms {
            let text = datom_to_edn(&d).to_string();
            let back = datom_from_edn(&parse(&text).unwrap(), Some(&schema));
            assert_eq!(back, Ok(d.clone()), "{text}");
        }
        let friend = parse("#datom [1 :person/friend 2 536870914 true]").unwrap();
        assert_eq!(datom_from_edn(&friend, None).unwrap().v, Value::Long(2));
        let short = parse("#datascript/Datom [1 :person/friend 2 536870914]").unwrap();
        assert_eq!(
            datom_from_edn(&short, Some(&schema)),
            Ok(Datom {
                v: Value::Ref(2),
                ..Datom::new(1, ":person/friend", 0i64, TX0 + 2)
            })
        );
    }

    #[test]
    fn malformed_datoms_are_errors_naming_the_form() {
        let schema = parse_schema(sample_schema()).unwrap();
        let malformed = [
            "[1 :a 2 3 true]",
            "#datom (1 :a 2 3 true)",
            "#datom [1 :a 2]",
            "#datom [1 :a 2 3 true 4]",
            "#datom [-1 :a 2 3 true]",
            "#datom [1 \"a\" 2 3 true]",
            "#datom [1 :a 2 3.0 true]",
            "#datom [1 :a 2 3 nil]",
        ];
        for text in malformed {
            let form = parse(text).unwrap();
            match datom_from_edn(&form, Some(&schema)) {
                Err(Error::MalformedTx { reason }) => {
                    assert!(reason.contains(&form.to_string()), "{reason}");
                }
                other => panic!("{text} gave {other:?}"),
            }
        }
        for text in [
            "#datom [1 :a nil 3 true]",
            "#datom [1 :person/friend \"x\" 3 true]",
            "#datom [1 :person/friend -2 3 true]",
        ] {
            let form = parse(text).unwrap();
            assert!(
                matches!(
                    datom_from_edn(&form, Some(&schema)),
                    Err(Error::InvalidValue { .. })
                ),
                "{text}"
            );
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Long),
            any::<f64>().prop_filter_map("NaN", |x| Value::double(x).ok()),
            any::<i64>().prop_map(Value::Instant),
            prop_oneof![Just(0i64), -100_000_000_000_000..100_000_000_000_000i64]
                .prop_map(Value::Instant),
            any::<String>().prop_map(Value::from),
            "[a-z][a-z0-9_?*+!<>=.-]{0,8}(/_?[a-z][a-z0-9_-]{0,8})?"
                .prop_map(|k| Value::keyword(&k)),
            any::<[u8; 16]>().prop_map(|b| Value::Uuid(Uuid(b))),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(Arc::from(b))),
        ]
    }

    proptest! {
        #[test]
        fn every_value_survives_edn_and_its_text(v in any_value()) {
            let form = value_to_edn(&v);
            prop_assert_eq!(form.to_value(), Ok(v));
            prop_assert_eq!(parse(&form.to_string()), Ok(form));
        }

        #[test]
        fn base64_round_trips_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(base64_decode(&base64_encode(&bytes)), Ok(bytes));
        }

        #[test]
        fn instant_text_round_trips_any_millisecond(ms in any::<i64>()) {
            prop_assert_eq!(inst_millis(&format_inst(ms)), Ok(ms));
        }
    }
}
