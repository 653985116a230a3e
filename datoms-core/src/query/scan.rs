//! What the planner reads from the index trees: cardinality estimates from the counts
//! every branch entry carries, and scans that compare datoms in their packed form.
//!
//! * [`count_prefix`] counts the datoms under an index prefix by descending the two
//!   boundary paths of the range: children wholly inside count by their entry's count,
//!   only the (at most two per level) boundary children are opened. Exact where those
//!   nodes are in memory; on a lazily restored db a boundary child not loaded counts
//!   half (nothing is loaded to estimate).
//! * [`scan`] visits the datoms under a prefix as borrowed [`DatomRef`]s straight from the
//!   packed leaves, so filtering on a value allocates nothing; only what a caller keeps
//!   is materialized. Lazily restored nodes load as the scan reaches them. On a filtered
//!   db it reads through [`Db::datoms`], which applies the filter.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::datom::{Component, DatomRef, IndexKind};
use crate::db::Db;
use crate::error::Error;
use crate::tree::node::load_child;
use crate::tree::{Node, NodeSource};

/// The number of datoms of `index` matching `prefix` (see the module docs).
pub(crate) fn count_prefix(db: &Db, index: IndexKind, prefix: &[Component]) -> u64 {
    if db.filter.is_some() {
        // A filter hides datoms the counts include: the counts are an upper bound.
        return count_node(db.tree(index).root(), index, prefix);
    }
    let tree = db.tree(index);
    if prefix.is_empty() {
        return tree.len();
    }
    count_node(tree.root(), index, prefix)
}

fn count_node(node: &Arc<Node>, kind: IndexKind, prefix: &[Component]) -> u64 {
    if node.level() == 0 {
        return node.packed().map_or(0, |p| {
            p.refs()
                .filter(|d| kind.cmp_prefix_ref(d, prefix) == Ordering::Equal)
                .count() as u64
        });
    }
    let children = node.children();
    let lo = children
        .partition_point(|c| kind.cmp_prefix(c.first(), prefix) == Ordering::Less)
        .saturating_sub(1);
    let hi = children.partition_point(|c| kind.cmp_prefix(c.first(), prefix) != Ordering::Greater);
    if hi <= lo {
        return 0;
    }
    let boundary = |i: usize| {
        let c = &children[i];
        match c.loaded() {
            Some(n) => count_node(n, kind, prefix),
            None => c.count() / 2,
        }
    };
    let mut n = boundary(lo);
    if hi - 1 > lo {
        // Children strictly between the two boundaries start and end inside the range.
        n += children[lo + 1..hi - 1]
            .iter()
            .map(|c| c.count())
            .sum::<u64>();
        n += boundary(hi - 1);
    }
    n
}

/// Calls `f` on each datom of `index` matching `prefix`, in index order, until `f`
/// returns false.
///
/// # Errors
/// A load error of a lazily restored db.
pub(crate) fn scan(
    db: &Db,
    index: IndexKind,
    prefix: &[Component],
    f: &mut dyn FnMut(&DatomRef<'_>) -> bool,
) -> Result<(), Error> {
    if db.filter.is_some() {
        for d in db.datoms(index, prefix)? {
            if !f(&d?.borrowed()) {
                break;
            }
        }
        return Ok(());
    }
    let tree = db.tree(index);
    walk(tree.root(), index, prefix, db.source(), f).map(drop)
}

/// Visits `node`'s datoms matching `prefix`; false once the range has ended or `f` asked
/// to stop.
fn walk(
    node: &Arc<Node>,
    kind: IndexKind,
    prefix: &[Component],
    source: Option<&Arc<dyn NodeSource>>,
    f: &mut dyn FnMut(&DatomRef<'_>) -> bool,
) -> Result<bool, Error> {
    if node.level() == 0 {
        let Some(packed) = node.packed() else {
            return Ok(true);
        };
        for d in packed.refs() {
            match kind.cmp_prefix_ref(&d, prefix) {
                Ordering::Less => {}
                Ordering::Equal => {
                    if !f(&d) {
                        return Ok(false);
                    }
                }
                Ordering::Greater => return Ok(false),
            }
        }
        return Ok(true);
    }
    let children = node.children();
    let start = children
        .partition_point(|c| kind.cmp_prefix(c.first(), prefix) == Ordering::Less)
        .saturating_sub(1);
    for c in &children[start..] {
        if kind.cmp_prefix(c.first(), prefix) == Ordering::Greater {
            return Ok(false);
        }
        let child = load_child(node, c, source)?;
        if !walk(&child, kind, prefix, source, f)? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttributeSchema, Schema, TreeConfig};

    fn db(people: u64) -> Db {
        let schema = Schema::new()
            .with(":tag", AttributeSchema::default().many())
            .unwrap()
            .with(":n", AttributeSchema::default().indexed())
            .unwrap();
        let mut tx = String::from("[");
        for e in 1..=people {
            tx.push_str(&format!(
                "{{:db/id {e} :name \"p{e}\" :n {} :tag [\"a{}\" \"b\"]}}",
                e % 7,
                e % 3
            ));
        }
        tx.push(']');
        Db::with_config(
            schema,
            TreeConfig {
                leaf_target: 8,
                branch_target: 4,
            },
        )
        .with_edn(&tx)
        .unwrap()
        .db_after
    }

    fn exact(db: &Db, index: IndexKind, prefix: &[Component]) -> u64 {
        db.datoms(index, prefix).unwrap().count() as u64
    }

    #[test]
    fn counts_are_exact_on_a_db_in_memory() {
        let db = db(500);
        let kw = |s: &str| Component::A(crate::Keyword::new(s));
        let cases: Vec<(IndexKind, Vec<Component>)> = vec![
            (IndexKind::Aevt, vec![kw("name")]),
            (IndexKind::Aevt, vec![kw("tag")]),
            (IndexKind::Aevt, vec![kw("missing")]),
            (IndexKind::Eavt, vec![Component::E(250)]),
            (IndexKind::Eavt, vec![Component::E(9999)]),
            (
                IndexKind::Avet,
                vec![kw("n"), Component::V(crate::Value::Long(3))],
            ),
            (IndexKind::Avet, vec![kw("n")]),
            (IndexKind::Eavt, vec![]),
        ];
        for (index, prefix) in cases {
            assert_eq!(
                count_prefix(&db, index, &prefix),
                exact(&db, index, &prefix),
                "{index:?} {prefix:?}"
            );
        }
    }

    #[test]
    fn scans_visit_what_datoms_yields_and_stop_when_asked() {
        let db = db(300);
        let prefix = [Component::A(crate::Keyword::new("tag"))];
        let mut seen = Vec::new();
        scan(&db, IndexKind::Aevt, &prefix, &mut |d| {
            seen.push(d.to_datom());
            true
        })
        .unwrap();
        let want: Vec<_> = db
            .datoms(IndexKind::Aevt, &prefix)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(seen, want);
        let mut n = 0;
        scan(&db, IndexKind::Aevt, &prefix, &mut |_| {
            n += 1;
            n < 5
        })
        .unwrap();
        assert_eq!(n, 5);
    }
}
