//! Time views (issue #19): the db as of any transaction or commit of a head's history
//! equals the db right after that transaction, however the transactions were grouped
//! into commits; a view shares what a held db holds.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use datoms_core::{Datom, Db, IndexKind, Schema};
use datoms_storage::{as_of, since, store, At, MemoryStorage, Storage, StorageError};
use proptest::prelude::*;

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:p/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :p/n {:db/valueType :db.type/long :db/index true}}",
    )
    .unwrap()
}

fn datoms(db: &Db) -> Vec<Datom> {
    db.datoms(IndexKind::Eavt, &[])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Transactions in groups, each group stored as one commit: the db after every
/// transaction (the reference), and the storage.
async fn history(groups: &[usize]) -> (Arc<dyn Storage>, Vec<Db>, Vec<datoms_core::Address>) {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut db = Db::new(schema());
    let mut after = Vec::new();
    let mut commits = Vec::new();
    let mut i = 0;
    for group in groups {
        for _ in 0..*group {
            // An upsert that moves :p/n of one of three people, and a new person.
            let tx = format!(
                "[{{:p/name \"p{}\" :p/n {i}}} {{:p/name \"q{i}\" :p/n {}}}]",
                i % 3,
                i * 7
            );
            db = db.with_edn(&tx).unwrap().db_after;
            after.push(db.clone());
            i += 1;
        }
        let stored = store(&db, &*storage, "main").await.unwrap();
        commits.push(stored.commit);
        db = stored.db;
    }
    (storage, after, commits)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn as_of_a_transaction_is_the_db_right_after_it(
        groups in prop::collection::vec(1usize..5, 1..5),
    ) {
        rt().block_on(async {
            let (storage, after, _) = history(&groups).await;
            let first_tx = after[0].max_tx();
            for (k, reference) in after.iter().enumerate() {
                let view = as_of(storage.clone(), "main", At::Tx(reference.max_tx()), None)
                    .await
                    .unwrap();
                assert_eq!(datoms(&view.db), datoms(reference), "as of tx #{k}");
                assert!(view.txs_replayed <= *groups.iter().max().unwrap());
            }
            // Since each transaction: exactly what the rest of the history changed.
            let last = after.last().unwrap();
            for reference in after.iter().step_by(3) {
                let changed = since(storage.clone(), "main", At::Tx(reference.max_tx()), last)
                    .await
                    .unwrap();
                let expected = datoms_core::diff(reference, last).unwrap();
                assert_eq!(changed.added, expected.added);
                assert_eq!(changed.retracted, expected.retracted);
            }
            // Before the first transaction: nothing; past the last: the head.
            let before = as_of(storage.clone(), "main", At::Tx(first_tx - 1), None).await.unwrap();
            assert!(datoms(&before.db).is_empty());
            assert_eq!(before.commit, None);
            let past = as_of(storage.clone(), "main", At::Tx(u64::MAX), None).await.unwrap();
            assert_eq!(datoms(&past.db), datoms(after.last().unwrap()));
            assert_eq!(past.txs_replayed, 0);
        });
    }
}

#[test]
fn as_of_a_commit_shares_what_a_held_db_holds() {
    rt().block_on(async {
        let (storage, after, commits) = history(&[400, 1, 1]).await;
        let head = datoms_storage::restore_from(&Db::new(schema()), &*storage, "main")
            .await
            .unwrap()
            .db;
        let lazy = as_of(storage.clone(), "main", At::Commit(commits[1]), None)
            .await
            .unwrap();
        let shared = as_of(storage.clone(), "main", At::Commit(commits[1]), Some(&head))
            .await
            .unwrap();
        assert_eq!(datoms(&lazy.db), datoms(&after[400]));
        assert_eq!(datoms(&shared.db), datoms(&after[400]));
        assert_eq!(shared.commit, Some(commits[1]));
        // What a full restore of that commit fetches, against what the held head saves.
        let full = datoms_storage::restore_commit(
            &*storage,
            commits[1],
            None,
            datoms_core::restore::Mode::Eager,
        )
        .await
        .unwrap();
        assert!(full.stats.nodes_fetched > 20, "{:?}", full.stats);
        assert!(
            shared.stats.nodes_fetched * 2 < full.stats.nodes_fetched,
            "held: {:?}, full: {:?}",
            shared.stats,
            full.stats
        );
        assert!(shared.stats.nodes_reused > 0, "{:?}", shared.stats);
    });
}

#[test]
fn views_replay_inside_a_commit_and_a_missing_head_is_named() {
    rt().block_on(async {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let db = Db::new(schema())
            .with_edn("[{:p/name \"a\"}]")
            .unwrap()
            .db_after;
        let stored = store(&db, &*storage, "main").await.unwrap();
        // Two transactions in the next commit: an ident entity, then a use of it.
        let one = stored
            .db
            .with_edn("[{:db/ident :color/red} {:p/name \"b\"}]")
            .unwrap()
            .db_after;
        let two = one.with_edn("[{:p/name \"c\"}]").unwrap().db_after;
        store(&two, &*storage, "main").await.unwrap();
        let view = as_of(storage.clone(), "main", At::Tx(one.max_tx()), None)
            .await
            .unwrap();
        assert_eq!(view.txs_replayed, 1);
        assert_eq!(view.commit, Some(stored.commit));
        assert_eq!(datoms(&view.db), datoms(&one));
        let red = datoms_core::edn::parse(":color/red").unwrap();
        let red = datoms_core::QueryValue::from_edn(&red).unwrap();
        assert!(view.db.entid(&red).unwrap().is_some(), "the ident is there");
        let none = as_of(storage.clone(), "absent", At::Tx(1), None).await;
        assert!(matches!(none, Err(StorageError::NoHead { .. })));
    });
}
