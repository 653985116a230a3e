//! Entities: a lazy, map-like view of one entity, as Datascript's `entity`.
//!
//! ```
//! use datoms_core::entity::EntityValue;
//! use datoms_core::{AttributeSchema, Db, Schema, Value, ValueType};
//!
//! let schema = Schema::new()
//!     .with(":friend", AttributeSchema::default().value_type(ValueType::Ref).many())?;
//! let db = Db::new(schema)
//!     .with_edn(r#"[{:db/id 1 :name "Ann" :friend [2]} {:db/id 2 :name "Bob"}]"#)?
//!     .db_after;
//! let ann = db.entity(1);
//! assert_eq!(ann.get(":name")?, Some(EntityValue::Value(Value::string("Ann"))));
//! let Some(EntityValue::Many(friends)) = ann.get(":friend")? else { panic!() };
//! let EntityValue::Entity(bob) = &friends[0] else { panic!() };
//! assert_eq!(bob.get(":name")?, Some(EntityValue::Value(Value::string("Bob"))));
//! assert_eq!(bob.get(":_friend")?.map(|v| v.to_string()), Some("[#entity 1]".to_owned()));
//! assert_eq!(ann.to_value()?.to_string(), r#"{:friend [{:db/id 2}], :name "Ann", :db/id 1}"#);
//! # Ok::<(), datoms_core::Error>(())
//! ```
//!
//! An [`Entity`] reads nothing when made: each [`Entity::get`] looks up one attribute
//! (one EAVT seek, or one AVET seek for a reverse reference), so on a lazily restored db
//! only the nodes holding that attribute load. [`Entity::touch`] reads every attribute
//! once and keeps them; later `get`s answer from what it read.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::datom::{Component, IndexKind};
use crate::db::Db;
use crate::error::Error;
use crate::pull::{pull_entity, PullPattern};
use crate::query::{Functions, QueryValue};
use crate::value::{Eid, Keyword, Value};

/// A lazy view of an entity of a db (a cheap clone of the db and the id).
#[derive(Clone)]
pub struct Entity {
    /// Shared by the entities reached from this one (an `Arc`: a `Db` is large).
    db: Arc<Db>,
    eid: Eid,
    touched: Arc<OnceLock<BTreeMap<Keyword, Vec<Value>>>>,
}

/// A value read through an [`Entity`].
#[derive(Clone, Debug)]
pub enum EntityValue {
    /// A scalar value (never a ref).
    Value(Value),
    /// A referenced entity.
    Entity(Entity),
    /// The values of a cardinality-many attribute or a reverse reference, in index
    /// order.
    Many(Vec<EntityValue>),
}

impl PartialEq for EntityValue {
    /// Values compare by value, entities by id.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (EntityValue::Value(a), EntityValue::Value(b)) => a == b,
            (EntityValue::Entity(a), EntityValue::Entity(b)) => a.eid == b.eid,
            (EntityValue::Many(a), EntityValue::Many(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for EntityValue {
    /// EDN-like: scalars as EDN, entities as `#entity id`, many values as a vector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityValue::Value(v) => write!(f, "{}", QueryValue::from_value(v.clone())),
            EntityValue::Entity(e) => write!(f, "#entity {}", e.eid),
            EntityValue::Many(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#entity {}", self.eid)
    }
}

impl Db {
    /// Datascript's `entity`: a lazy view of entity `eid` (nothing is read until an
    /// attribute is asked for). An entity id that has no datoms gives an entity with no
    /// attributes.
    pub fn entity(&self, eid: Eid) -> Entity {
        Entity {
            db: Arc::new(self.clone()),
            eid,
            touched: Arc::new(OnceLock::new()),
        }
    }
}

impl Entity {
    /// Entity `eid` of the same db.
    fn other(&self, eid: Eid) -> Entity {
        Entity {
            db: self.db.clone(),
            eid,
            touched: Arc::new(OnceLock::new()),
        }
    }

    /// The entity id (`:db/id`).
    pub fn id(&self) -> Eid {
        self.eid
    }

    /// The db this entity reads from.
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn wrap(&self, attr: &Keyword, values: Vec<Value>) -> Option<EntityValue> {
        if values.is_empty() {
            return None;
        }
        let schema = self.db.schema().get(attr);
        let many = schema.is_some_and(|s| s.is_many());
        let one = |v: Value| match v {
            Value::Ref(e) => EntityValue::Entity(self.other(e)),
            v => EntityValue::Value(v),
        };
        if many {
            Some(EntityValue::Many(values.into_iter().map(one).collect()))
        } else {
            values.into_iter().next().map(one)
        }
    }

    /// The value of `attr` (`:ns/name`, `:ns/_name` for a reverse reference, `:db/id`):
    /// a value, an entity for a ref, [`EntityValue::Many`] for a cardinality-many
    /// attribute or a reverse reference (a single entity for the reverse of a component
    /// attribute). `None` when the entity has no value.
    ///
    /// # Errors
    /// [`Error::InvalidKeyword`] if `attr` is not a keyword; a load error of a lazily
    /// restored db.
    pub fn get(&self, attr: &str) -> Result<Option<EntityValue>, Error> {
        self.get_attr(&Keyword::parse(attr)?)
    }

    /// [`Entity::get`] with a keyword.
    ///
    /// # Errors
    /// As [`Entity::get`].
    pub fn get_attr(&self, attr: &Keyword) -> Result<Option<EntityValue>, Error> {
        if attr.as_str() == "db/id" {
            let id = i64::try_from(self.eid).unwrap_or(i64::MAX);
            return Ok(Some(EntityValue::Value(Value::Long(id))));
        }
        if let Some(fwd) = attr.reverse_of() {
            let p = [
                Component::A(fwd.clone()),
                Component::V(Value::Ref(self.eid)),
            ];
            let mut owners = Vec::new();
            for d in self.db.datoms(IndexKind::Avet, &p)? {
                owners.push(EntityValue::Entity(self.other(d?.e)));
            }
            if owners.is_empty() {
                return Ok(None);
            }
            let component = self.db.schema().get(&fwd).is_some_and(|s| s.is_component);
            return Ok(Some(if component {
                owners.swap_remove(0)
            } else {
                EntityValue::Many(owners)
            }));
        }
        let values = match self.touched.get() {
            Some(all) => all.get(attr).cloned().unwrap_or_default(),
            None => self
                .db
                .entity_attr(self.eid, attr)?
                .into_iter()
                .map(|d| d.v)
                .collect(),
        };
        Ok(self.wrap(attr, values))
    }

    fn load(&self) -> Result<&BTreeMap<Keyword, Vec<Value>>, Error> {
        if let Some(all) = self.touched.get() {
            return Ok(all);
        }
        let mut all: BTreeMap<Keyword, Vec<Value>> = BTreeMap::new();
        for d in self.db.entity_datoms(self.eid)? {
            all.entry(d.a).or_default().push(d.v);
        }
        Ok(self.touched.get_or_init(|| all))
    }

    /// Datascript's `touch`: reads every attribute of the entity (once; later calls and
    /// [`Entity::get`] answer from memory) and returns them, keyed by attribute.
    ///
    /// # Errors
    /// A load error of a lazily restored db.
    pub fn touch(&self) -> Result<BTreeMap<Keyword, EntityValue>, Error> {
        let all = self.load()?;
        Ok(all
            .iter()
            .filter_map(|(a, vs)| self.wrap(a, vs.clone()).map(|v| (a.clone(), v)))
            .collect())
    }

    /// The attributes the entity has (reads them all, as [`Entity::touch`]).
    ///
    /// # Errors
    /// A load error of a lazily restored db.
    pub fn keys(&self) -> Result<Vec<Keyword>, Error> {
        Ok(self.load()?.keys().cloned().collect())
    }

    /// True if the entity has at least one attribute.
    ///
    /// # Errors
    /// A load error of a lazily restored db.
    pub fn exists(&self) -> Result<bool, Error> {
        Ok(!self.load()?.is_empty())
    }

    /// The touched entity as a value, as Datascript prints a touched entity: a map with
    /// `:db/id`, every attribute, refs as `{:db/id e}` and components expanded
    /// (recursively). `nil` for an entity with no attributes.
    ///
    /// # Errors
    /// A load error of a lazily restored db.
    pub fn to_value(&self) -> Result<QueryValue, Error> {
        let fns = Functions::new();
        let pattern = PullPattern::parse(&self.db, "[*]", &fns)?;
        let v = pull_entity(&self.db, &pattern, &QueryValue::entity(self.eid), &fns)?;
        Ok(match v {
            QueryValue::Map(m) if m.len() == 1 && m.contains_key(&QueryValue::keyword("db/id")) => {
                QueryValue::Nil
            }
            other => other,
        })
    }
}
