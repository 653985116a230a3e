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
        item: "Datascript takes the attributes of an entity map of more than 8 entries in hash order",
        // A hash map's order decides which upsert, lookup ref or unique check comes first
        // (docs/datascript-differences.md, "Transactions"); datoms keeps written order.
        matches: |d| matches!(d.check, Check::Tx(_)) && has_big_map(&d.input),
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
        item: "#16.1 entity id allocation order",
        matches: |d| {
            matches!(d.check, Check::Tx(_))
                && d.datascript != d.datoms
                && up_to_entity_ids(&d.datascript) == up_to_entity_ids(&d.datoms)
        },
    },
    Known {
        item: "#16.1 entity id allocation order (an explicit id in the same tx then names another entity)",
        // Broad on purpose: a transaction that both makes new entities and names an
        // entity id explicitly, which both sides accepted. Datascript allocates without
        // regard for the ids the transaction names (`{:db/id -1 …} {:db/id 2 …}` gives
        // `-1` id 2 on an empty db, merging the two), datoms above them, so the explicit
        // id names different entities on the two sides. Goes with #16.1's fix.
        matches: |d| {
            matches!(d.check, Check::Tx(_))
                && both_succeeded(d)
                && allocates(&d.input)
                && names_an_id(&d.input)
        },
    },
];

/// Whether tx data holds an entity map of more than 8 entries (a Clojure hash map).
fn has_big_map(tx: &str) -> bool {
    fn big(form: &Edn) -> bool {
        match form {
            Edn::Map(entries) => entries.len() > 8 || entries.iter().any(|(_, v)| big(v)),
            Edn::Vector(items) | Edn::List(items) => items.iter().any(big),
            _ => false,
        }
    }
    parse(tx).is_ok_and(|f| big(&f))
}

/// Whether tx data makes new entities: a tempid, a nested map or a map without `:db/id`.
fn allocates(tx: &str) -> bool {
    let Ok(Edn::Vector(ops)) = parse(tx) else {
        return false;
    };
    fn tempid(form: &Edn) -> bool {
        matches!(form, Edn::String(_)) || matches!(form, Edn::Int(i) if *i < 0)
    }
    fn in_value(form: &Edn) -> bool {
        match form {
            Edn::Map(_) => true,
            Edn::Vector(items) => items.iter().any(|i| tempid(i) || in_value(i)),
            other => tempid(other),
        }
    }
    ops.iter().any(|op| match op {
        Edn::Map(entries) => {
            let id = entries
                .iter()
                .find(|(k, _)| *k == Edn::Keyword(datoms_core::Keyword::new(":db/id")));
            id.is_none_or(|(_, v)| tempid(v))
                || entries
                    .iter()
                    .any(|(k, v)| matches!(v, Edn::Map(_)) || (is_ref(k) && in_value(v)))
        }
        Edn::Vector(items) => {
            items.get(1).is_some_and(tempid)
                || (items.get(2).is_some_and(is_ref) && items.get(3).is_some_and(tempid))
        }
        _ => false,
    })
}

/// Whether `k` is a ref attribute of the generator's schema (or its reverse).
fn is_ref(k: &Edn) -> bool {
    const REFS: [&str; 5] = [
        ":person/friend",
        ":person/boss",
        ":person/pet",
        ":person/_friend",
        ":person/_pet",
    ];
    matches!(k, Edn::Keyword(k) if REFS.contains(&k.to_string().as_str()))
}

/// Whether tx data names an entity by its id (a positive number where an entity goes).
fn names_an_id(tx: &str) -> bool {
    let Ok(Edn::Vector(ops)) = parse(tx) else {
        return false;
    };
    fn id(form: &Edn) -> bool {
        match form {
            Edn::Int(i) => (1..i64::from(TX0 as u32)).contains(i),
            Edn::Vector(items) => items.iter().any(id),
            _ => false,
        }
    }
    let names = |k: &Edn| *k == Edn::Keyword(datoms_core::Keyword::new(":db/id")) || is_ref(k);
    ops.iter().any(|op| match op {
        Edn::Map(entries) => entries.iter().any(|(k, v)| names(k) && id(v)),
        Edn::Vector(items) => {
            items.get(1).is_some_and(id)
                || (items.get(2).is_some_and(is_ref) && items.get(3).is_some_and(id))
        }
        _ => false,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn divergence(check: Check, input: &str, datascript: &str, datoms: &str) -> Divergence {
        Divergence {
            seed: 0,
            check,
            input: input.into(),
            datascript: datascript.into(),
            datoms: datoms.into(),
        }
    }

    #[test]
    fn what_allocates_and_what_names_an_id() {
        assert!(!allocates(r#"[{:db/id 1 :person/nick "a"}]"#));
        assert!(!allocates(
            r#"[[:db/add 1 :person/nick "a"] [:db/retractEntity 2]]"#
        ));
        assert!(allocates(r#"[{:person/nick "a"}]"#));
        assert!(allocates(r#"[[:db/add -1 :person/nick "a"]]"#));
        assert!(allocates(r#"[{:db/id 1 :person/pet {:pet/name "x"}}]"#));
        assert!(allocates(r#"[{:db/id 1 :person/friend [2 "t1"]}]"#));

        assert!(names_an_id(r#"[{:db/id 1}]"#));
        assert!(names_an_id(r#"[[:db/add "t1" :person/friend 3]]"#));
        assert!(names_an_id(r#"[{:db/id "t1" :person/_friend 6}]"#));
        assert!(!names_an_id(r#"[[:db/add "t1" :person/age 20]]"#));
        assert!(!names_an_id(r#"[{:db/id -1 :person/age 20}]"#));
    }

    #[test]
    fn big_maps_are_recognised_in_tx_data() {
        let keys: Vec<String> = (0..9).map(|i| format!(":a/k{i} {i}")).collect();
        let big = format!("[{{{}}}]", keys.join(" "));
        let small = format!("[{{{}}}]", keys[..8].join(" "));
        assert!(has_big_map(&big) && !has_big_map(&small));
        let d = divergence(Check::Tx(0), &big, "error: x", "ok");
        assert!(classify(&d).is_some_and(|k| k.contains("more than 8")));
    }

    #[test]
    fn id_renamings_are_recognised_and_nothing_else() {
        let renamed = divergence(
            Check::Tx(0),
            r#"[{:db/id "t4" :person/pet {:pet/name "x"}}]"#,
            "#{[1 :pet/name \"x\" 536870913] [2 :person/pet 1 536870913]}",
            "#{[1 :person/pet 2 536870913] [2 :pet/name \"x\" 536870913]}",
        );
        assert_eq!(classify(&renamed), Some("#16.1 entity id allocation order"));

        // Keyword order is no longer a known divergence: it is fixed.
        let keywords = divergence(
            Check::Pull(0),
            "(pull [*] 1)",
            "{:db/id 1, :person/x [:zz :a/b]}",
            "{:db/id 1, :person/x [:a/b :zz]}",
        );
        assert_eq!(classify(&keywords), None);

        let lost_datom = divergence(
            Check::Tx(0),
            r#"[{:db/id 1 :person/nick "a"}]"#,
            "#{[1 :person/nick \"a\" 536870913]}",
            "#{}",
        );
        assert_eq!(classify(&lost_datom), None);
    }
}
