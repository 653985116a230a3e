//! Micro-benchmarks of the hot paths the benchmark harness's profiles point at, on a
//! 90k-datom db: a seek and read of one entity (what a pull does per entity), a
//! one-person transaction (the small-transaction workload), decoding a fetched leaf
//! (what a restore does per node) and a bulk build; with the edit buffer (see
//! `Db::with_edit_buffer`), a transaction buffered and merged at once, and a read that
//! merges buffered edits in. Run with `cargo bench -p datoms-core`;
//! the performance targets and the peer comparisons live in the `datoms-bench` harness.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use datoms_core::edn::{parse, schema_from_edn};
use datoms_core::tree::Node;
use datoms_core::{parse_tx, Component, Datom, Db, IndexKind, Tree, TreeConfig};

const PEOPLE: u64 = 15_000;

fn schema() -> datoms_core::Schema {
    let text = "{:person/name {:db/unique :db.unique/identity}
                 :person/email {:db/unique :db.unique/value}
                 :person/age {:db/index true}
                 :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}";
    schema_from_edn(&parse(text).unwrap()).unwrap()
}

fn person(i: u64) -> String {
    format!(
        r#"{{:db/id "p{i}" :person/name "person {i}" :person/email "p{i}@example.com"
            :person/age {} :person/city "city {}" :person/score {}}}"#,
        20 + i % 50,
        i % 40,
        i * 7 % 1000
    )
}

/// About 90k datoms: 15k people with five attributes each and a friend.
fn db() -> Db {
    let mut db = Db::new(schema());
    for chunk in (0..PEOPLE).collect::<Vec<_>>().chunks(1000) {
        let people: String = chunk.iter().map(|i| person(*i)).collect();
        db = db.with_edn(&format!("[{people}]")).unwrap().db_after;
    }
    let friends: String = (2..PEOPLE)
        .map(|e| format!("[:db/add {e} :person/friend {}]", e - 1))
        .collect();
    let db = db.with_edn(&format!("[{friends}]")).unwrap().db_after;
    // Observe the trees: the figures below start from merged trees, as before the
    // edit buffer.
    for kind in IndexKind::ALL {
        db.tree(kind);
    }
    db
}

fn hot_paths(c: &mut Criterion) {
    let db = db();
    let entity = PEOPLE / 2;

    c.bench_function("seek and read one entity (EAVT)", |b| {
        b.iter(|| {
            let datoms: Vec<Datom> = db
                .datoms(IndexKind::Eavt, &[Component::E(black_box(entity))])
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(datoms.len(), 6);
            datoms
        })
    });

    let ops = parse_tx(&format!("[{}]", person(PEOPLE + 1)), db.schema()).unwrap();
    c.bench_function("transact one person (5 datoms)", |b| {
        b.iter(|| db.with(black_box(&ops)).unwrap())
    });
    let eager = db.with_edit_buffer(0);
    c.bench_function("transact one person (5 datoms), merged at once", |b| {
        b.iter(|| eager.with(black_box(&ops)).unwrap())
    });

    // 1000 one-person transactions buffered (about 13k edits over the three indexes):
    // a read merges them in, and observing the trees merges them.
    let txs: Vec<_> = (0..1000)
        .map(|i| parse_tx(&format!("[{}]", person(PEOPLE + 10 + i)), db.schema()).unwrap())
        .collect();
    let transact_all = || {
        let mut out = db.clone();
        for ops in &txs {
            out = out.with(ops).unwrap().db_after;
        }
        out
    };
    let buffered = transact_all();
    assert!(buffered.pending_edits() > 10_000);
    let new_entity = PEOPLE + 500;
    c.bench_function("seek and read one entity (EAVT), 1000 txs buffered", |b| {
        b.iter(|| {
            let datoms: Vec<Datom> = buffered
                .datoms(IndexKind::Eavt, &[Component::E(black_box(new_entity))])
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(datoms.len(), 5);
            datoms
        })
    });
    let mut group = c.benchmark_group("merge");
    group.sample_size(10);
    group.bench_function("1000 buffered one-person txs into the trees", |b| {
        b.iter_batched(
            transact_all,
            |db| {
                for kind in IndexKind::ALL {
                    db.tree(kind);
                }
                db
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let root = db.tree(IndexKind::Eavt).root().clone();
    let mut leaf = root;
    while leaf.level() > 0 {
        let next = leaf.children()[leaf.children().len() / 2]
            .loaded()
            .unwrap()
            .clone();
        leaf = next;
    }
    let bytes = leaf.encode();
    let address = leaf.address();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("one fetched EAVT leaf", |b| {
        b.iter(|| Node::decode(address, black_box(&bytes), IndexKind::Eavt).unwrap())
    });
    group.finish();

    let all: Vec<Datom> = db
        .datoms(IndexKind::Eavt, &[])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut group = c.benchmark_group("build");
    group.throughput(Throughput::Elements(all.len() as u64));
    group.sample_size(10);
    group.bench_function("bulk-build EAVT of 90k datoms", |b| {
        b.iter_batched(
            || all.clone(),
            |datoms| Tree::build(IndexKind::Eavt, TreeConfig::default(), datoms),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
