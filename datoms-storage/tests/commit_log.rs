//! The tx log in commits: restores never decode it, log replay does and reproduces the
//! stored trees, and a log that cannot be decoded is a typed error naming its commit.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use datoms_core::{Address, Commit, Datom, Db, Error, IndexKind, Schema};
use datoms_storage::{
    materialize, restore, restore_from, store, sync, sync_via_log, MemoryStorage, Storage,
    StorageError, SyncPolicy, SyncRoute,
};

const HEAD: &str = "main";

fn transact(db: &Db, people: std::ops::Range<u32>) -> Db {
    let mut db = db.clone();
    for i in people {
        db = db
            .with_edn(&format!(
                r#"[{{:db/id -1 :person/name "p{i}" :person/age {} :person/city "c{}"}}]"#,
                i % 90,
                i % 7
            ))
            .unwrap()
            .db_after;
    }
    db
}

fn all(db: &Db) -> Vec<Datom> {
    db.datoms(IndexKind::Eavt, &[])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Replaces the stored head commit by a copy whose log bytes are garbage (0xc1 is never
/// valid msgpack) but whose hash is its address, and points the head at it.
async fn garble_head_log(storage: &MemoryStorage) -> Address {
    let head = storage.get_head(HEAD).await.unwrap().unwrap();
    let mut bytes = storage.get_many(&[head.commit]).await.unwrap()[0]
        .clone()
        .unwrap()
        .to_vec();
    let commit = Commit::decode(head.commit, &bytes).unwrap();
    let log = commit.log.encoded();
    let at = bytes
        .windows(log.len())
        .position(|w| w == log)
        .expect("the log bytes are in the commit");
    bytes[at..at + log.len()].fill(0xc1);
    let address = Address::of(&bytes);
    storage
        .put_many(&[(address, Bytes::from(bytes))])
        .await
        .unwrap();
    storage
        .cas_head(HEAD, Some(&head.version), address)
        .await
        .unwrap();
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_do_not_decode_the_log_and_replay_reports_a_bad_one() {
    let storage = Arc::new(MemoryStorage::new());
    let db = transact(&Db::new(Schema::new()), 0..40);
    let stored = store(&db, &*storage, HEAD).await.unwrap();
    let expected = all(&stored.db);
    let garbled = garble_head_log(&storage).await;
    let commit_bytes = storage.get_many(&[garbled]).await.unwrap()[0]
        .clone()
        .unwrap();
    let commit = Commit::decode(garbled, &commit_bytes).unwrap();
    assert_eq!(commit.roots, stored.db.root_addresses());
    assert!(matches!(
        commit.log_entries(),
        Err(Error::MalformedLog { commit: Some(c), .. }) if c == garbled
    ));

    // Lazy restore, then materialize: only roots and nodes, never the log.
    let lazy = restore(storage.clone(), HEAD).await.unwrap().db;
    assert_eq!(lazy.base_commit(), Some(garbled));
    assert_eq!(all(&lazy), expected);
    let full = materialize(&lazy, &*storage).await.unwrap().db;
    assert_eq!(all(&full), expected);
    // Tree restore into a new replica, and a tree sync.
    let empty = Db::new(Schema::new());
    let tree = restore_from(&empty, &*storage, HEAD).await.unwrap().db;
    assert_eq!(tree.root_addresses(), stored.db.root_addresses());
    let synced = sync(&empty, &*storage, HEAD, SyncPolicy::Tree)
        .await
        .unwrap();
    assert_eq!(synced.route, SyncRoute::Tree);
    assert_eq!(all(&synced.db), expected);

    // Replaying the log needs it decoded: a typed error naming the commit.
    match sync_via_log(&empty, &*storage, HEAD).await {
        Err(StorageError::Core(Error::MalformedLog { commit, reason })) => {
            assert_eq!(commit, Some(garbled));
            assert!(!reason.is_empty());
        }
        other => panic!("expected MalformedLog, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_replay_reproduces_the_stored_roots() {
    let storage = MemoryStorage::new();
    let db1 = transact(&Db::new(Schema::new()), 0..30);
    let first = store(&db1, &storage, HEAD).await.unwrap();
    // A new replica replays the first commit's log.
    let empty = Db::new(Schema::new());
    let replayed = sync_via_log(&empty, &storage, HEAD).await.unwrap();
    assert_eq!(replayed.route, SyncRoute::Log);
    assert_eq!(replayed.db.root_addresses(), first.db.root_addresses());

    // Several transactions later (retractions included), one commit behind.
    let mut db2 = transact(&first.db, 30..45);
    db2 = db2
        .with_edn(r#"[[:db/retract 1 :person/age 0] [:db/add 2 :person/city "elsewhere"]]"#)
        .unwrap()
        .db_after;
    let second = store(&db2, &storage, HEAD).await.unwrap();
    let head: Commit = {
        let bytes = storage.get_many(&[second.commit]).await.unwrap()[0]
            .clone()
            .unwrap();
        Commit::decode(second.commit, &bytes).unwrap()
    };
    assert_eq!(head.log.txs(), 16);
    assert_eq!(
        head.log.datoms(),
        head.log_entries()
            .unwrap()
            .iter()
            .map(|e| e.datoms.len())
            .sum::<usize>()
    );
    for policy in [SyncPolicy::Log, SyncPolicy::Auto] {
        let synced = sync(&replayed.db, &storage, HEAD, policy).await.unwrap();
        assert_eq!(synced.route, SyncRoute::Log, "{policy:?}");
        assert_eq!(synced.db.root_addresses(), second.db.root_addresses());
        assert_eq!(all(&synced.db), all(&second.db));
        assert_eq!(synced.db.base_commit(), Some(second.commit));
    }
}
