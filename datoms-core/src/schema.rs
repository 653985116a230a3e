//! Attribute schema, as in Datascript: value type, cardinality, uniqueness, indexing,
//! components and docs.
//!
//! Attributes not named in the schema are allowed (Datascript's behaviour: untyped,
//! cardinality one, not indexed) unless the schema is [`Schema::strict`], in which case a
//! transaction that uses one fails with [`Error::UnknownAttribute`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::value::{Keyword, ValueType};

/// `:db/cardinality`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cardinality {
    /// `:db.cardinality/one` (the default): asserting a new value retracts the old one.
    #[default]
    One,
    /// `:db.cardinality/many`: the attribute holds a set of values.
    Many,
}

/// `:db/unique`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unique {
    /// `:db.unique/identity`: a tempid asserting an existing value upserts into that entity.
    Identity,
    /// `:db.unique/value`: asserting an existing value on another entity is an error.
    Value,
}

/// The schema of one attribute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttributeSchema {
    /// `:db/valueType`; `None` means untyped (any value).
    pub value_type: Option<ValueType>,
    /// `:db/cardinality`.
    pub cardinality: Cardinality,
    /// `:db/unique`.
    pub unique: Option<Unique>,
    /// `:db/index`: keep this attribute in AVET.
    pub index: bool,
    /// `:db/isComponent`: the referenced entity is part of this one (retractEntity
    /// cascades; requires `:db.type/ref`).
    pub is_component: bool,
    /// `:db/doc`.
    pub doc: Option<String>,
    /// `:db/tupleAttrs`: a composite tuple of these attributes of the same entity, kept
    /// up to date by every transaction that touches one of them (see
    /// [`crate::tx`]); implies `:db/index`. `None` for any other attribute.
    pub tuple_attrs: Option<Vec<Keyword>>,
    /// `:db/tupleType`: the type of every element of a homogeneous tuple. Kept and
    /// printed back; not checked, as Datascript does not check it.
    pub tuple_type: Option<ValueType>,
    /// `:db/tupleTypes`: the type of each element of a heterogeneous tuple. Kept and
    /// printed back; not checked, as Datascript does not check it.
    pub tuple_types: Option<Vec<ValueType>>,
}

impl AttributeSchema {
    /// True for `:db.type/ref`.
    pub fn is_ref(&self) -> bool {
        self.value_type == Some(ValueType::Ref)
    }

    /// True for cardinality many.
    pub fn is_many(&self) -> bool {
        self.cardinality == Cardinality::Many
    }

    /// True when the attribute's datoms are kept in AVET: indexed, unique or ref, as in
    /// Datascript.
    pub fn in_avet(&self) -> bool {
        self.index || self.unique.is_some() || self.is_ref() || self.is_tuple()
    }

    /// True for a composite tuple (`:db/tupleAttrs`).
    pub fn is_tuple(&self) -> bool {
        self.tuple_attrs.is_some()
    }

    /// Builder: a composite tuple of `attrs` (`:db/tupleAttrs`).
    pub fn tuple_of(mut self, attrs: &[&str]) -> Self {
        self.tuple_attrs = Some(attrs.iter().map(|a| Keyword::new(a)).collect());
        self
    }

    /// Builder: set the value type.
    pub fn value_type(mut self, t: ValueType) -> Self {
        self.value_type = Some(t);
        self
    }

    /// Builder: cardinality many.
    pub fn many(mut self) -> Self {
        self.cardinality = Cardinality::Many;
        self
    }

    /// Builder: `:db.unique/identity`.
    pub fn identity(mut self) -> Self {
        self.unique = Some(Unique::Identity);
        self
    }

    /// Builder: `:db.unique/value`.
    pub fn unique_value(mut self) -> Self {
        self.unique = Some(Unique::Value);
        self
    }

    /// Builder: `:db/index true`.
    pub fn indexed(mut self) -> Self {
        self.index = true;
        self
    }

    /// Builder: `:db/isComponent true` (also sets `:db.type/ref`).
    pub fn component(mut self) -> Self {
        self.is_component = true;
        self.value_type = Some(ValueType::Ref);
        self
    }

    /// Builder: `:db/doc`.
    pub fn doc(mut self, doc: &str) -> Self {
        self.doc = Some(doc.to_owned());
        self
    }
}

/// What is wrong with a tuple declaration, as Datascript checks it: `:db/tupleAttrs` not
/// empty, cardinality one, naming no tuple and no cardinality-many attribute (of those
/// declared so far; [`Schema::with`] checks the later ones); `:db.type/tuple` only with
/// `:db/tupleAttrs`.
fn tuple_problem(attr: &Keyword, spec: &AttributeSchema, schema: &Schema) -> Option<String> {
    let Some(attrs) = &spec.tuple_attrs else {
        return (spec.value_type == Some(ValueType::Vector))
            .then(|| "{:db/valueType :db.type/tuple} should also have :db/tupleAttrs".to_owned());
    };
    if spec.is_many() {
        return Some(format!(
            "{attr} has :db/tupleAttrs, must be :db.cardinality/one"
        ));
    }
    if attrs.is_empty() {
        return Some(format!("{attr} :db/tupleAttrs can’t be empty"));
    }
    attrs.iter().find_map(|a| {
        let s = schema.attrs.get(a)?;
        if s.is_tuple() {
            Some(format!(
                "{attr} :db/tupleAttrs can’t depend on another tuple attribute: {a}"
            ))
        } else if s.is_many() {
            Some(format!(
                "{attr} :db/tupleAttrs can’t depend on :db.cardinality/many attribute: {a}"
            ))
        } else {
            None
        }
    })
}

/// The attribute that names entities: `[:db/add :red …]`, a keyword value of a ref
/// attribute and a keyword entity in a query resolve through it.
pub const IDENT: &str = "db/ident";

/// Datascript's implicit schema: `:db/ident` is a unique identity unless declared.
fn implicit(attr: &Keyword) -> Option<&'static AttributeSchema> {
    static IDENT_SCHEMA: std::sync::LazyLock<AttributeSchema> =
        std::sync::LazyLock::new(|| AttributeSchema::default().identity());
    (attr.as_str() == IDENT).then(|| &*IDENT_SCHEMA)
}

/// The schema of a database: one [`AttributeSchema`] per declared attribute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    attrs: BTreeMap<Keyword, AttributeSchema>,
    strict: bool,
}

impl Schema {
    /// An empty, permissive schema (undeclared attributes allowed, as in Datascript).
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Makes undeclared attributes an error ([`Error::UnknownAttribute`]).
    pub fn strict(mut self) -> Schema {
        self.strict = true;
        self
    }

    /// True if undeclared attributes are rejected.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Declares (or redeclares) an attribute, checking the declaration is consistent.
    ///
    /// ```
    /// use datoms_core::{AttributeSchema, Schema, ValueType};
    /// let schema = Schema::new()
    ///     .with(":person/name", AttributeSchema::default().value_type(ValueType::String).identity())
    ///     .unwrap();
    /// assert!(schema.get(&":person/name".into()).unwrap().in_avet());
    /// ```
    pub fn with(
        mut self,
        attr: impl Into<Keyword>,
        spec: AttributeSchema,
    ) -> Result<Schema, Error> {
        let attr = attr.into();
        if spec.is_component && !spec.is_ref() {
            return Err(Error::BadSchema {
                attr,
                reason: ":db/isComponent requires :db/valueType :db.type/ref".into(),
            });
        }
        if let Some(reason) = tuple_problem(&attr, &spec, &self) {
            return Err(Error::BadSchema { attr, reason });
        }
        if attr.is_reverse() {
            return Err(Error::BadSchema {
                attr,
                reason: "attribute names starting with _ are reserved for reverse references"
                    .into(),
            });
        }
        // A tuple declared earlier may name this attribute.
        for (tuple, tspec) in &self.attrs {
            let names_it = tspec
                .tuple_attrs
                .as_ref()
                .is_some_and(|attrs| attrs.contains(&attr));
            if names_it && (spec.is_many() || spec.is_tuple()) {
                return Err(Error::BadSchema {
                    attr: tuple.clone(),
                    reason: format!(
                        "{tuple} :db/tupleAttrs can’t depend on {} attribute: {attr}",
                        if spec.is_many() {
                            ":db.cardinality/many"
                        } else {
                            "another tuple"
                        }
                    ),
                });
            }
        }
        self.attrs.insert(attr, spec);
        Ok(self)
    }

    /// The composite tuples `attr` is an element of: each tuple attribute and the
    /// position of `attr` in it.
    pub fn tuples_of(&self, attr: &Keyword) -> Vec<(Keyword, usize)> {
        self.attrs
            .iter()
            .filter_map(|(tuple, spec)| {
                let i = spec.tuple_attrs.as_ref()?.iter().position(|a| a == attr)?;
                Some((tuple.clone(), i))
            })
            .collect()
    }

    /// The declaration of `attr`: declared, or implicit (`:db/ident`, unique identity, as
    /// in Datascript's implicit schema, unless declared otherwise).
    pub fn get(&self, attr: &Keyword) -> Option<&AttributeSchema> {
        self.attrs.get(attr).or_else(|| implicit(attr))
    }

    /// The declaration of `attr`, the default one for an undeclared attribute of a
    /// permissive schema, or [`Error::UnknownAttribute`] under a strict schema.
    pub fn resolve(&self, attr: &Keyword) -> Result<AttributeSchema, Error> {
        match self.get(attr) {
            Some(s) => Ok(s.clone()),
            None if self.strict => Err(Error::UnknownAttribute { attr: attr.clone() }),
            None => Ok(AttributeSchema::default()),
        }
    }

    /// True if `attr` is kept in AVET.
    pub fn in_avet(&self, attr: &Keyword) -> bool {
        self.get(attr).is_some_and(AttributeSchema::in_avet)
    }

    /// All declared attributes and their declarations, in keyword order.
    pub fn iter(&self) -> impl Iterator<Item = (&Keyword, &AttributeSchema)> {
        self.attrs.iter()
    }

    /// The declared ref attributes (used to find references to an entity).
    pub fn ref_attrs(&self) -> impl Iterator<Item = (&Keyword, &AttributeSchema)> {
        self.attrs.iter().filter(|(_, s)| s.is_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_requires_ref_type() {
        let bad = AttributeSchema {
            is_component: true,
            ..AttributeSchema::default()
        };
        let err = Schema::new().with(":a/b", bad).unwrap_err();
        assert!(matches!(err, Error::BadSchema { attr, .. } if attr == Keyword::new(":a/b")));
    }

    #[test]
    fn strict_schema_rejects_unknown_attributes() {
        let s = Schema::new().strict();
        let err = s.resolve(&Keyword::new(":nope")).unwrap_err();
        assert!(matches!(err, Error::UnknownAttribute { .. }));
        assert!(Schema::new().resolve(&Keyword::new(":nope")).is_ok());
    }

    #[test]
    fn avet_holds_indexed_unique_and_ref_attributes() {
        let s = Schema::new()
            .with(":a/idx", AttributeSchema::default().indexed())
            .unwrap()
            .with(":a/uniq", AttributeSchema::default().unique_value())
            .unwrap()
            .with(
                ":a/ref",
                AttributeSchema::default().value_type(ValueType::Ref),
            )
            .unwrap()
            .with(":a/plain", AttributeSchema::default())
            .unwrap();
        assert!(s.in_avet(&":a/idx".into()));
        assert!(s.in_avet(&":a/uniq".into()));
        assert!(s.in_avet(&":a/ref".into()));
        assert!(!s.in_avet(&":a/plain".into()));
        assert!(!s.in_avet(&":a/undeclared".into()));
    }
}
