//! Divergences already known: each an item of an open issue that other work is fixing,
//! recognised by what its first divergence looks like. When a fix lands, its entry goes
//! (the CI run then proves the divergence gone), so this list only shrinks.
//! `docs/datascript-differences.md` ("Found by the differential test") describes each.

use datoms_core::edn::{parse, Edn};
use datoms_core::TX0;

use super::{Check, Divergence};

/// A known divergence: the issue item it is, and how to recognise it.
pub struct Known {
    /// The issue and item, e.g. `"#16.1 entity id allocation order"`.
    pub item: &'static str,
    /// Whether a first divergence is this one.
    pub matches: fn(&Divergence) -> bool,
}

/// Every known divergence, most specific first.
pub const KNOWN: &[Known] = &[
    Known {
        item: "#26.5 tempid as the entity of a retraction (Datascript: :db/add only)",
        matches: |d| {
            d.datascript.contains("Tempids are allowed in :db/add only") && d.datoms == "ok"
        },
    },
    Known {
        item: "new: a string tempid used only as a ref value (Datascript accepts)",
        matches: |d| d.datascript == "ok" && d.datoms.contains("is never asserted as an entity"),
    },
    Known {
        item: "#16.2 a tempid upserting to an entity made earlier in the tx merges with it",
        matches: |d| d.datascript == "ok" && d.datoms.contains("conflicting upsert"),
    },
    Known {
        item: "#26.4 a tempid used only as a value is an error",
        matches: |d| {
            d.datascript
                .contains("Tempids used only as value in transaction")
                && d.datoms == "ok"
        },
    },
    Known {
        item: "#16.4 a vector value of a card-many ref is a collection, not a lookup ref",
        matches: |d| d.datascript.contains("Nothing found for entity id :") && d.datoms == "ok",
    },
    Known {
        item: "#16.11 :find (pull ?e pattern) is a bag",
        matches: |d| {
            matches!(d.check, Check::Query(_))
                && d.input.starts_with("[:find (pull ")
                && d.datascript.starts_with('(')
                && d.datoms.starts_with("#{")
        },
    },
    Known {
        item: "#16.3 a :db/cas that creates an entity reserves its id",
        matches: |d| {
            matches!(d.check, Check::Tx(_))
                && both_succeeded(d)
                && d.input.contains("[:db/cas ")
                && d.input.contains(" nil ")
        },
    },
    Known {
        item: "#16.1 entity id allocation order (a retraction by id then hits another entity)",
        matches: |d| {
            matches!(d.check, Check::Tx(_))
                && both_succeeded(d)
                && d.input.contains("[:db/retractEntity ")
                && (d.input.contains("{:db/id ") || d.input.contains(":person/pet {"))
        },
    },
    Known {
        item: "#16.1 entity id allocation order",
        matches: |d| {
            matches!(d.check, Check::Tx(_))
                && d.datascript != d.datoms
                && up_to_entity_ids(&d.datascript) == up_to_entity_ids(&d.datoms)
        },
    },
];

/// Whether both sides' answers are dbs (a transaction both sides accepted).
fn both_succeeded(d: &Divergence) -> bool {
    d.datascript.starts_with("#{") && d.datoms.starts_with("#{")
}

/// The known item `d` is, if any.
pub fn classify(d: &Divergence) -> Option<&'static str> {
    KNOWN.iter().find(|k| (k.matches)(d)).map(|k| k.item)
}

/// `text` as EDN with every number that could be an entity id replaced by one symbol,
/// its sets' elements sorted: two dbs equal up to which ids their entities got (and
/// small numbers' values, which this cannot tell from ids) print the same.
fn up_to_entity_ids(text: &str) -> Option<String> {
    fn erase(form: Edn) -> Edn {
        match form {
            Edn::Int(i) if (0..i64::from(TX0 as u32)).contains(&i) => Edn::Symbol("E".into()),
            Edn::Vector(items) => Edn::Vector(items.into_iter().map(erase).collect()),
            Edn::List(items) => Edn::List(items.into_iter().map(erase).collect()),
            Edn::Set(items) => Edn::Set(items.into_iter().map(erase).collect()),
            Edn::Map(entries) => Edn::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (erase(k), erase(v)))
                    .collect(),
            ),
            other => other,
        }
    }
    let erased = erase(parse(text).ok()?).to_string();
    super::canonical::canonical(&erased, super::Shape::Exact)
}
