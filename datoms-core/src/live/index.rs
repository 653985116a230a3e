//! The interest index: which live queries (and which of their patterns) a changed datom
//! can touch, keyed by attribute, then by a constant entity or value. A datom whose
//! attribute no live query reads costs one hash lookup, whatever the number of queries.

use std::collections::{BTreeSet, HashMap};

use super::state::Interests;
use crate::datom::Datom;
use crate::value::{Eid, Keyword, Value};

/// The whole query rather than one of its patterns.
pub(crate) const WHOLE: usize = usize::MAX;

/// A live query (or pull) id and a pattern of it ([`WHOLE`] for the query).
pub(crate) type Key = (u64, usize);

/// What an interest is keyed by: attribute (`None`: any), entity, value.
pub(crate) type Keyed = (Option<Keyword>, Option<Eid>, Option<Value>);

#[derive(Debug, Default)]
struct AttrInterests {
    by_e: HashMap<Eid, Vec<Key>>,
    by_v: HashMap<Value, Vec<Key>>,
    rest: Vec<Key>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct InterestIndex {
    by_attr: HashMap<Keyword, AttrInterests>,
    /// Interests in any attribute.
    any: Vec<Key>,
    /// What each id registered, to remove it.
    registered: HashMap<u64, Vec<Keyed>>,
}

impl InterestIndex {
    /// Registers `key`'s interest in datoms of `attr` (any when `None`) with entity `e`
    /// or value `v` when given.
    pub fn add(&mut self, key: Key, attr: Option<Keyword>, e: Option<Eid>, v: Option<Value>) {
        self.registered
            .entry(key.0)
            .or_default()
            .push((attr.clone(), e, v.clone()));
        let Some(attr) = attr else {
            self.any.push(key);
            return;
        };
        let a = self.by_attr.entry(attr).or_default();
        match (e, v) {
            (Some(e), _) => a.by_e.entry(e).or_default().push(key),
            (None, Some(v)) => a.by_v.entry(v).or_default().push(key),
            (None, None) => a.rest.push(key),
        }
    }

    /// Registers interest in every datom of `attrs` (any datom when `None`).
    pub fn add_attrs(&mut self, id: u64, attrs: Option<&BTreeSet<Keyword>>) {
        match attrs {
            None => self.add((id, WHOLE), None, None, None),
            Some(attrs) => {
                for a in attrs {
                    self.add((id, WHOLE), Some(a.clone()), None, None);
                }
            }
        }
    }

    /// Registers a query's interests.
    pub fn register(&mut self, id: u64, interests: Interests) {
        match interests {
            Interests::Patterns(ps) => {
                for (p, (attr, e, v)) in ps {
                    self.add((id, p), attr, e, v);
                }
            }
            Interests::Whole(attrs) => self.add_attrs(id, attrs.as_ref()),
        }
    }

    /// Removes everything `id` registered.
    pub fn remove(&mut self, id: u64) {
        let Some(items) = self.registered.remove(&id) else {
            return;
        };
        let drop_id = |keys: &mut Vec<Key>| keys.retain(|k| k.0 != id);
        for (attr, e, v) in items {
            let Some(attr) = attr else {
                drop_id(&mut self.any);
                continue;
            };
            let Some(a) = self.by_attr.get_mut(&attr) else {
                continue;
            };
            match (e, v) {
                (Some(e), _) => {
                    if let Some(keys) = a.by_e.get_mut(&e) {
                        drop_id(keys);
                        if keys.is_empty() {
                            a.by_e.remove(&e);
                        }
                    }
                }
                (None, Some(v)) => {
                    if let Some(keys) = a.by_v.get_mut(&v) {
                        drop_id(keys);
                        if keys.is_empty() {
                            a.by_v.remove(&v);
                        }
                    }
                }
                (None, None) => drop_id(&mut a.rest),
            }
            if a.by_e.is_empty() && a.by_v.is_empty() && a.rest.is_empty() {
                self.by_attr.remove(&attr);
            }
        }
    }

    /// Calls `f` with every key datom `d` can touch (a key may come more than once).
    pub fn touched(&self, d: &Datom, f: &mut impl FnMut(Key)) {
        self.any.iter().for_each(|k| f(*k));
        let Some(a) = self.by_attr.get(&d.a) else {
            return;
        };
        a.rest.iter().for_each(|k| f(*k));
        if let Some(keys) = a.by_e.get(&d.e) {
            keys.iter().for_each(|k| f(*k));
        }
        if !a.by_v.is_empty() {
            if let Some(keys) = a.by_v.get(&d.v) {
                keys.iter().for_each(|k| f(*k));
            }
        }
    }
}
