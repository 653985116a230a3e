//! The bug "never a head on an incomplete commit" as a user met it, through the facade:
//! one db value stored to a primary and then to a backup must leave a backup that
//! restores. On every runtime flavour, on memory and on redb files.

#![allow(clippy::unwrap_used)]

use datoms::{Db, Schema, Storage};

const TX: &str = r#"[{:db/id -1 :name "Ann" :age 31} {:db/id -2 :name "Bo" :age 40}]"#;

async fn primary_then_backup(a: &dyn Storage, b: &dyn Storage) {
    let schema = Schema::new();
    let db = Db::new(schema.clone()).with_edn(TX).unwrap().db_after;
    let in_a = datoms::store(&db, a, "main").await.unwrap();
    let in_b = datoms::store(&db, b, "main").await.unwrap();
    assert_eq!(in_a.stats.nodes_written, in_b.stats.nodes_written);
    for s in [a, b] {
        let restored = datoms::restore_from(&Db::new(schema.clone()), s, "main")
            .await
            .unwrap();
        assert_eq!(restored.db.root_addresses(), db.root_addresses());
        datoms::verify(s, "main").await.unwrap();
    }
    // The next version, stored to both from the primary's value.
    let next = in_a
        .db
        .with_edn(r#"[{:db/id -1 :name "Cy" :age 9}]"#)
        .unwrap()
        .db_after;
    for s in [a, b] {
        datoms::store(&next, s, "main").await.unwrap();
        let restored = datoms::restore_from(&Db::new(schema.clone()), s, "main")
            .await
            .unwrap();
        assert_eq!(restored.db.root_addresses(), next.root_addresses());
        datoms::verify(s, "main").await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn memory_on_a_current_thread_runtime() {
    let (a, b) = (datoms::MemoryStorage::new(), datoms::MemoryStorage::new());
    primary_then_backup(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_on_a_multi_thread_runtime() {
    let (a, b) = (datoms::MemoryStorage::new(), datoms::MemoryStorage::new());
    primary_then_backup(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_redb_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = datoms::open(&format!("redb:{}", dir.path().join("a.redb").display()))
        .await
        .unwrap();
    let b = datoms::open(&format!("redb:{}", dir.path().join("b.redb").display()))
        .await
        .unwrap();
    primary_then_backup(&*a, &*b).await;
}
