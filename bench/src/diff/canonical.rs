//! The canonical text both sides' answers are compared in.
//!
//! Both answers are read as EDN ([`datoms_core::edn::parse`]) and printed back with sets
//! and maps in a fixed order (their elements' canonical texts, sorted), so two answers
//! are equal exactly when they hold the same data: sets compare as sets, maps as maps,
//! vectors and lists in order. Numbers compare by value: Datascript on JS has one number
//! type and prints the double `2.0` as `2`, so a float that is a whole number prints as
//! that integer.

use datoms_core::edn::{parse, Edn};

/// How the top level of an answer is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Shape {
    /// In order (a pull, a tuple, a scalar), or a set (which is a set in the EDN).
    Exact,
    /// A collection whose order carries no meaning (`:find [?x ...]`, `:with`,
    /// aggregates, a bag of pulled maps): compared as a bag, its elements sorted. A set
    /// and a vector or list holding the same elements are the same bag.
    Bag,
}

/// The canonical text of `text` read as EDN, or `None` if it is not EDN.
pub fn canonical(text: &str, shape: Shape) -> Option<String> {
    let form = parse(text).ok()?;
    Some(match (shape, form) {
        (Shape::Bag, Edn::Vector(items) | Edn::List(items) | Edn::Set(items)) => {
            let mut items: Vec<String> = items.iter().map(print).collect();
            items.sort();
            format!("[{}]", items.join(" "))
        }
        (_, form) => print(&form),
    })
}

fn print(form: &Edn) -> String {
    match form {
        Edn::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            // A whole number below 2^53 is exact as an i64.
            #[allow(clippy::cast_possible_truncation)]
            let i = *f as i64;
            i.to_string()
        }
        Edn::Vector(items) => format!("[{}]", join(items.iter().map(print))),
        Edn::List(items) => format!("({})", join(items.iter().map(print))),
        Edn::Set(items) => {
            let mut items: Vec<String> = items.iter().map(print).collect();
            items.sort();
            format!("#{{{}}}", items.join(" "))
        }
        Edn::Map(entries) => {
            let mut entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{} {}", print(k), print(v)))
                .collect();
            entries.sort();
            format!("{{{}}}", entries.join(", "))
        }
        Edn::Tagged(tag, inner) => format!("#{tag} {}", print(inner)),
        other => other.to_string(),
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_maps_compare_as_such_and_whole_floats_as_integers() {
        let a = canonical("#{[1 :a] [2 :b]}", Shape::Exact).unwrap();
        let b = canonical("#{[2 :b] [1 :a]}", Shape::Exact).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            canonical("{:b 2.0, :a [3 1]}", Shape::Exact),
            canonical("{:a [3 1] :b 2}", Shape::Exact)
        );
        assert_ne!(
            canonical("{:a [3 1]}", Shape::Exact),
            canonical("{:a [1 3]}", Shape::Exact)
        );
        assert_ne!(
            canonical("[:a \"a\"]", Shape::Exact),
            canonical("[\"a\" :a]", Shape::Exact)
        );
        assert_ne!(canonical("1.5", Shape::Exact), canonical("1", Shape::Exact));
    }

    #[test]
    fn bags_ignore_order_but_keep_duplicates() {
        assert_eq!(
            canonical("[3 1 1]", Shape::Bag),
            canonical("[1 3 1]", Shape::Bag)
        );
        assert_ne!(
            canonical("[3 1 1]", Shape::Bag),
            canonical("[1 3]", Shape::Bag)
        );
        assert_ne!(
            canonical("[3 1]", Shape::Exact),
            canonical("[1 3]", Shape::Exact)
        );
    }
}
