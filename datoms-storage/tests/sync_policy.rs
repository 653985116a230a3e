//! `SyncPolicy::Auto` replays the log when it can and restores trees otherwise: it
//! succeeds wherever `SyncPolicy::Tree` does. `StorageError::LogGap` belongs to
//! `SyncPolicy::Log` alone.

#![allow(clippy::unwrap_used)]

use datoms_core::{AttributeSchema, Datom, Db, IndexKind, Schema, ValueType};
use datoms_storage::{
    restore_from, store, sync, MemoryStorage, StorageError, SyncPolicy, SyncRoute,
};

const HEAD: &str = "main";

fn schema() -> Schema {
    Schema::new()
        .with(
            ":person/name",
            AttributeSchema::default()
                .value_type(ValueType::String)
                .identity(),
        )
        .unwrap()
}

fn person(db: &Db, name: &str) -> Db {
    db.with_edn(&format!(r#"[{{:person/name "{name}" :person/age 7}}]"#))
        .unwrap()
        .db_after
}

fn all(db: &Db) -> Vec<Datom> {
    db.datoms(IndexKind::Eavt, &[])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `sync` of `db1` by each policy: Auto and Tree reach `want` by a tree restore, Log
/// refuses with `LogGap`.
async fn check(db1: &Db, storage: &MemoryStorage, want: &Db, what: &str) {
    for policy in [SyncPolicy::Auto, SyncPolicy::Tree] {
        let synced = sync(db1, storage, HEAD, policy)
            .await
            .unwrap_or_else(|e| panic!("{what}, {policy:?}: {e}"));
        assert_eq!(synced.route, SyncRoute::Tree, "{what}, {policy:?}");
        assert_eq!(
            synced.db.root_addresses(),
            want.root_addresses(),
            "{what}, {policy:?}"
        );
        assert_eq!(all(&synced.db), all(want), "{what}, {policy:?}");
        assert_eq!(synced.db.schema(), want.schema(), "{what}, {policy:?}");
        assert_eq!(synced.db.pending_txs(), 0, "{what}, {policy:?}");
    }
    match sync(db1, storage, HEAD, SyncPolicy::Log).await {
        Err(StorageError::LogGap { .. }) => {}
        other => panic!("{what}, Log: expected LogGap, got {other:?}"),
    }
}

/// The crate docs' way to make a replica: an empty db with the default schema, synced
/// to a store's first commit, whose schema is another.
#[tokio::test(flavor = "multi_thread")]
async fn auto_syncs_a_fresh_replica_made_with_another_schema() {
    let storage = MemoryStorage::new();
    let primary = store(&person(&Db::new(schema()), "Ann"), &storage, HEAD)
        .await
        .unwrap()
        .db;
    check(
        &Db::new(Schema::default()),
        &storage,
        &primary,
        "a fresh replica",
    )
    .await;
}

/// A replica one commit behind that transacted locally without storing: the log of the
/// head does not apply to it, its trees restore.
#[tokio::test(flavor = "multi_thread")]
async fn auto_syncs_a_replica_one_commit_behind_with_an_unstored_transaction() {
    let storage = MemoryStorage::new();
    let first = store(&person(&Db::new(schema()), "Ann"), &storage, HEAD)
        .await
        .unwrap()
        .db;
    let replica = restore_from(&Db::new(schema()), &storage, HEAD)
        .await
        .unwrap()
        .db;
    let second = store(&person(&first, "Bob"), &storage, HEAD)
        .await
        .unwrap()
        .db;
    let local = person(&replica, "Cy");
    assert_eq!(local.pending_txs(), 1);
    check(
        &local,
        &storage,
        &second,
        "a replica with a local transaction",
    )
    .await;
    // Without the local transaction the same replica replays the head's log.
    let synced = sync(&replica, &storage, HEAD, SyncPolicy::Auto)
        .await
        .unwrap();
    assert_eq!(synced.route, SyncRoute::Log);
    assert_eq!(synced.db.root_addresses(), second.root_addresses());
}

/// A replica at the head with a local transaction comes back to the head.
#[tokio::test(flavor = "multi_thread")]
async fn auto_syncs_a_replica_at_the_head_with_an_unstored_transaction() {
    let storage = MemoryStorage::new();
    let first = store(&person(&Db::new(schema()), "Ann"), &storage, HEAD)
        .await
        .unwrap()
        .db;
    check(
        &person(&first, "Cy"),
        &storage,
        &first,
        "a replica at the head",
    )
    .await;
}

/// A bulk-loaded db (an import) whose highest entity holds no datom any more: a fresh
/// replica replays its commit's log and takes the commit's counters, so it allocates the
/// same next entity as the original.
#[tokio::test]
async fn log_replay_of_a_bulk_load_takes_the_commit_counters() {
    let original = person(&person(&Db::new(schema()), "Ann"), "Bo")
        .with_edn(r#"[[:db/retractEntity [:person/name "Bo"]]]"#)
        .unwrap()
        .db_after;
    let loaded = Db::bulk_load(
        schema(),
        original.config(),
        all(&original),
        original.max_eid(),
        original.max_tx(),
    )
    .unwrap();
    let storage = MemoryStorage::new();
    store(&loaded, &storage, HEAD).await.unwrap();
    for policy in [SyncPolicy::Auto, SyncPolicy::Log] {
        let synced = sync(&Db::new(schema()), &storage, HEAD, policy)
            .await
            .unwrap();
        assert_eq!(synced.route, SyncRoute::Log, "{policy:?}");
        assert_eq!(
            (synced.db.max_eid(), synced.db.max_tx()),
            (original.max_eid(), original.max_tx()),
            "{policy:?}"
        );
        let next = r#"[{:person/name "Cy"}]"#;
        assert_eq!(
            synced.db.with_edn(next).unwrap().tx_data,
            original.with_edn(next).unwrap().tx_data,
            "{policy:?}"
        );
    }
}
