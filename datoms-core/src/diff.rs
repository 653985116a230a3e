//! `diff(db1, db2)`: the datoms added and retracted between two dbs, in O(changes × depth)
//! node visits. Both EAVT trees are walked side by side; a subtree whose address (or
//! `Arc`) is the same on both sides is skipped without being loaded, which is what
//! history independence buys: unchanged regions line up node for node.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::datom::{Datom, IndexKind};
use crate::db::Db;
use crate::error::Error;
use crate::tree::node::{load_child, Child};
use crate::tree::{Node, NodeSource};

/// What changed from one db to another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Datoms in the second db and not in the first, in EAVT order.
    pub added: Vec<Datom>,
    /// Datoms in the first db and not in the second, in EAVT order (with `added` false).
    pub retracted: Vec<Datom>,
}

/// The datoms added and retracted from `db1` to `db2`. A datom re-asserted by a later
/// transaction (same e, a, v, another tx) shows as retracted and added.
///
/// # Errors
/// A load error of a lazily restored db.
pub fn diff(db1: &Db, db2: &Db) -> Result<Diff, Error> {
    let kind = IndexKind::Eavt;
    let mut a = Side::new(db1.tree(kind).root(), db1.source());
    let mut b = Side::new(db2.tree(kind).root(), db2.source());
    let mut out = Diff::default();
    if a.root_same_as(&b) {
        return Ok(out);
    }
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(Elem::Datom(x)), None) => {
                out.retracted.push(x.clone().retraction());
                a.skip();
            }
            (None, Some(Elem::Datom(y))) => {
                out.added.push(y.clone());
                b.skip();
            }
            (Some(Elem::Child(..)), None) => a.descend()?,
            (None, Some(Elem::Child(..))) => b.descend()?,
            (Some(Elem::Datom(x)), Some(Elem::Datom(y))) => match kind.cmp(x, y) {
                Ordering::Less => {
                    out.retracted.push(x.clone().retraction());
                    a.skip();
                }
                Ordering::Greater => {
                    out.added.push(y.clone());
                    b.skip();
                }
                Ordering::Equal => {
                    if x != y {
                        out.retracted.push(x.clone().retraction());
                        out.added.push(y.clone());
                    }
                    a.skip();
                    b.skip();
                }
            },
            (Some(Elem::Datom(x)), Some(Elem::Child(c, _))) => {
                if kind.cmp(x, &c.first) == Ordering::Less {
                    out.retracted.push(x.clone().retraction());
                    a.skip();
                } else {
                    b.descend()?;
                }
            }
            (Some(Elem::Child(c, _)), Some(Elem::Datom(y))) => {
                if kind.cmp(y, &c.first) == Ordering::Less {
                    out.added.push(y.clone());
                    b.skip();
                } else {
                    a.descend()?;
                }
            }
            (Some(Elem::Child(ca, la)), Some(Elem::Child(cb, lb))) => {
                if ca.same_as(cb) {
                    a.skip();
                    b.skip();
                    continue;
                }
                match kind.cmp(&ca.first, &cb.first).then(lb.cmp(&la)) {
                    Ordering::Less => a.descend()?,
                    Ordering::Greater => b.descend()?,
                    Ordering::Equal => {
                        a.descend()?;
                        b.descend()?;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The current element of a side: a datom of a leaf, or a child of a branch (with the
/// child's level).
enum Elem<'a> {
    Datom(&'a Datom),
    Child(&'a Child, u8),
}

/// One node on a side's stack: the node, its datoms unpacked if it is a leaf, and the
/// index of the current item.
struct Frame {
    node: Arc<Node>,
    datoms: Vec<Datom>,
    i: usize,
}

impl Frame {
    fn new(node: Arc<Node>) -> Frame {
        Frame {
            datoms: node.datoms(),
            node,
            i: 0,
        }
    }
}

/// A position in one tree: a stack of frames from the root down.
struct Side<'s> {
    stack: Vec<Frame>,
    source: Option<&'s Arc<dyn NodeSource>>,
}

impl<'s> Side<'s> {
    fn new(root: &Arc<Node>, source: Option<&'s Arc<dyn NodeSource>>) -> Side<'s> {
        let stack = if root.is_empty() {
            Vec::new()
        } else {
            vec![Frame::new(root.clone())]
        };
        Side { stack, source }
    }

    fn root_same_as(&self, other: &Side<'_>) -> bool {
        match (self.stack.first(), other.stack.first()) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                let (x, y) = (&x.node, &y.node);
                Arc::ptr_eq(x, y)
                    || matches!((x.cached_address(), y.cached_address()), (Some(p), Some(q)) if p == q)
            }
            _ => false,
        }
    }

    fn peek(&self) -> Option<Elem<'_>> {
        let f = self.stack.last()?;
        if f.node.level() == 0 {
            f.datoms.get(f.i).map(Elem::Datom)
        } else {
            f.node
                .children()
                .get(f.i)
                .map(|c| Elem::Child(c, f.node.level() - 1))
        }
    }

    fn skip(&mut self) {
        if let Some(f) = self.stack.last_mut() {
            f.i += 1;
        }
        while let Some(f) = self.stack.last() {
            if f.i < f.node.len() {
                break;
            }
            self.stack.pop();
            if let Some(f) = self.stack.last_mut() {
                f.i += 1;
            }
        }
    }

    fn descend(&mut self) -> Result<(), Error> {
        let Some(f) = self.stack.last() else {
            return Ok(());
        };
        let child = load_child(&f.node, &f.node.children()[f.i], self.source)?;
        self.stack.push(Frame::new(child));
        Ok(())
    }
}
