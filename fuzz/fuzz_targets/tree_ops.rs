//! Structure-aware: the bytes are a program of transactions (batches of puts and deletes)
//! applied to one index tree with small nodes. After each transaction the tree holds
//! exactly the datoms of a `BTreeMap` model, in index order, and has the root address of
//! a bulk build of the same datoms (history independence); the root re-decodes.
#![no_main]

use datoms_core::tree::{Cursor, Edit, Node, Tree};
use datoms_core::{IndexKind, TreeConfig};
use datoms_fuzz::{datom, Bytes, Key, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes::new(data);
    let kind = IndexKind::ALL[usize::from(r.u8() % 3)];
    let config = TreeConfig {
        leaf_target: 4 + u32::from(r.u8() % 12),
        branch_target: 4 + u32::from(r.u8() % 6),
    };
    let mut tree = Tree::empty(kind, config);
    let mut model = Model::new();
    while !r.is_empty() {
        // One transaction: up to 64 edits.
        let n = usize::from(r.u8() % 64) + 1;
        let mut edits = Vec::with_capacity(n);
        for _ in 0..n {
            let op = r.u8();
            let edit = match op % 4 {
                // Delete a datom the model holds (picked by position), so deletes hit.
                0 if !model.is_empty() => {
                    let i = usize::from(r.u16()) % model.len();
                    let key = model.keys().nth(i).map(|k| k.1.clone());
                    key.map(Edit::Delete)
                }
                1 => Some(Edit::Delete(datom(&mut r))),
                _ => Some(Edit::Put(datom(&mut r))),
            };
            let Some(edit) = edit else { continue };
            match &edit {
                Edit::Put(d) => {
                    model.remove(&Key(kind, d.clone()));
                    model.insert(Key(kind, d.clone()), d.clone());
                }
                Edit::Delete(d) => {
                    model.remove(&Key(kind, d.clone()));
                }
            }
            edits.push(edit);
        }
        tree = match tree.apply(edits, None) {
            Ok(tree) => tree,
            Err(e) => panic!("apply to an in-memory tree failed: {e}"),
        };
        check(&tree, &model);
    }
});

fn check(tree: &Tree, model: &Model) {
    let kind = tree.kind();
    assert_eq!(tree.len(), model.len() as u64, "datom count");
    let held: Vec<_> = match Cursor::seek(tree, None, &[], None) {
        Ok(c) => c
            .map(|d| d.unwrap_or_else(|e| panic!("read: {e}")))
            .collect(),
        Err(e) => panic!("seek: {e}"),
    };
    let expected: Vec<_> = model.values().cloned().collect();
    assert_eq!(held, expected, "tree and model differ");
    let built = Tree::build(kind, tree.config(), expected);
    assert_eq!(
        built.root_address(),
        tree.root_address(),
        "edited tree and bulk build of the same datoms differ"
    );
    let root = tree.root();
    let bytes = root.encode();
    match Node::decode(root.address(), &bytes, kind) {
        Ok(node) => assert_eq!(node.datoms(), root.datoms()),
        Err(e) => panic!("root does not decode: {e}"),
    }
}
