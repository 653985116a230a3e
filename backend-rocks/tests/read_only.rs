//! Readers of a RocksDB directory: read-only opens take no lock, so they open beside each
//! other and beside a writer, read what was stored, refuse writes with a typed error and
//! create nothing.

#![allow(clippy::unwrap_used)]

use backend_rocks::RocksStorage;
use datoms_core::{Address, Db, Schema};
use datoms_storage::{restore_from, store, Storage, StorageError};

#[tokio::test(flavor = "multi_thread")]
async fn readers_open_beside_each_other_and_a_writer_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let writer = RocksStorage::open(&path).unwrap();
    let db = Db::new(Schema::new())
        .with_edn(r#"[{:db/id -1 :person/name "Ann"} {:db/id -2 :person/name "Bo"}]"#)
        .unwrap()
        .db_after;
    let stored = store(&db, &writer, "main").await.unwrap();

    // Two readers while the writer still holds the directory.
    let readers = [
        RocksStorage::open_read_only(&path).unwrap(),
        RocksStorage::open_read_only(&path).unwrap(),
    ];
    for reader in &readers {
        assert!(reader.is_read_only());
        let restored = restore_from(&Db::new(Schema::new()), reader, "main")
            .await
            .unwrap();
        assert_eq!(restored.db.root_addresses(), stored.db.root_addresses());
        let blob = bytes::Bytes::from_static(b"x");
        for refused in [
            reader.put_many(&[(Address::of(&blob), blob.clone())]).await,
            reader.delete_many(&[stored.commit]).await,
            reader
                .delete_stale(&[stored.commit], std::time::SystemTime::now())
                .await
                .map(|_| ()),
            reader
                .cas_head("main", None, stored.commit)
                .await
                .map(|_| ()),
        ] {
            match refused {
                Err(StorageError::ReadOnly { what, .. }) => {
                    assert!(what.contains("rocksdb database"), "{what}")
                }
                other => panic!("a read-only handle must refuse writes: {other:?}"),
            }
        }
    }
    // The writer still writes, and nothing it held was changed by the readers.
    let next = stored
        .db
        .with_edn(r#"[{:db/id -1 :person/name "Cy"}]"#)
        .unwrap()
        .db_after;
    store(&next, &writer, "main").await.unwrap();
}

#[test]
fn a_missing_database_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent");
    match RocksStorage::open_read_only(&path) {
        Err(StorageError::Backend { .. }) => {}
        other => panic!("expected a backend error naming the path, got {other:?}"),
    }
    assert!(!path.exists(), "a read-only open must create nothing");
}
